/**
 * The home lock (lib/home/home-lock.ts) with real child processes: a held lock refuses or makes
 * a second process wait, names its holder; a holder killed with SIGKILL leaves a stale lock
 * that is broken; a recorded pid that now belongs to another process (pid reuse), a record
 * from another boot, a zombie-free dead pid and garbage are stale; two processes incrementing
 * a counter under the lock never lose an update; assertHeld notices a lock taken over.
 */
// needs: none
import t from 'tap';
import type { Test } from 'tap';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { LockedError } from '../lib/errors/errors.js';
import { acquireLock, currentBootId, ownerGone, processStartTime, readLockOwner, releaseLock, withLock } from '../lib/home/home-lock.js';
import { lockPath } from '../lib/home/home-layout.js';
import { DEPLOY_CHILD } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';

t.before(() => {
  if (!fs.existsSync(DEPLOY_CHILD)) throw new Error(`${DEPLOY_CHILD} is missing: run 'npx tsc -p tsconfig.json' first`);
});

interface Child {
  proc: ChildProcess;
  /** Resolves with the next stdout line. */
  line(): Promise<string>;
  exited: Promise<number | null>;
}

function child(t: Test, args: string[]): Child {
  const proc = spawn(process.execPath, [DEPLOY_CHILD, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l);
    else lines.push(l);
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      if (code !== 0 && code !== null) t.comment(`child stderr: ${stderr}`);
      resolve(code);
    }),
  );
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return {
    proc,
    exited,
    line: () =>
      new Promise((resolve) => {
        const l = lines.shift();
        if (l !== undefined) resolve(l);
        else waiters.push(resolve);
      }),
  };
}

t.test('a held lock refuses at once with waitMs 0, naming pid and command', async (t) => {
  const home = tempDir(t, 'lock');
  const c = child(t, ['hold', home, 'gitroot fetch']);
  t.equal(await c.line(), 'locked');
  const owner = readLockOwner(home);
  t.equal(owner?.pid, c.proc.pid);
  t.equal(owner?.command, 'gitroot fetch');
  const err = await withLock(home, { waitMs: 0 }, () => 'no').catch((e: unknown) => e);
  t.type(err, LockedError);
  t.equal((err as LockedError).code, 'ELOCKED');
  t.equal((err as LockedError).data.pid, c.proc.pid);
  t.equal((err as LockedError).data.command, 'gitroot fetch');
  t.match((err as Error).message, new RegExp(`pid ${c.proc.pid}, 'gitroot fetch'\\) holds ${lockPath(home)}`));
  t.notMatch((err as Error).message, /\n/);
  c.proc.stdin!.end('release\n');
  t.equal(await c.line(), 'released');
  t.equal(await c.exited, 0);
  t.equal(fs.existsSync(lockPath(home)), false, 'released lock is removed');
  t.equal(await withLock(home, {}, () => 'mine'), 'mine');
});

t.test('a second process waits for the holder when waitMs allows', async (t) => {
  const home = tempDir(t, 'lock');
  const c = child(t, ['hold', home, 'gitroot fetch']);
  t.equal(await c.line(), 'locked');
  let entered = false;
  const waiting = withLock(home, { waitMs: 60_000 }, (lock) => {
    entered = true;
    return lock.owner.pid;
  });
  // Let the waiter poll a few times, then release the holder.
  await new Promise((r) => setTimeout(r, 100));
  t.equal(entered, false, 'not entered while the child holds the lock');
  c.proc.stdin!.end('release\n');
  t.equal(await waiting, process.pid);
  t.equal(await c.exited, 0);
});

t.test('a holder killed with SIGKILL leaves a stale lock that is broken', async (t) => {
  const home = tempDir(t, 'lock');
  const c = child(t, ['hold', home, 'gitroot fetch']);
  t.equal(await c.line(), 'locked');
  c.proc.kill('SIGKILL');
  await c.exited;
  t.equal(fs.existsSync(lockPath(home)), true, 'the dead holder left its lock');
  const owner = readLockOwner(home);
  t.ok(owner !== null && ownerGone(owner) !== null, `judged gone: ${owner && ownerGone(owner)}`);
  t.equal(await withLock(home, { waitMs: 0 }, (lock) => lock.owner.pid), process.pid);
  t.equal(fs.readdirSync(home).filter((n) => n.startsWith('.lock')).length, 0, 'no temp or stale files left');
});

t.test('stale records: pid reuse, earlier boot, dead pid, garbage; a live record is respected', async (t) => {
  const home = tempDir(t, 'lock');
  const base = {
    pid: process.ppid,
    startTime: processStartTime(process.ppid) as string,
    bootId: currentBootId(),
    command: 'gitroot fetch',
    acquiredAt: new Date().toISOString(),
    token: 'x',
  };
  const cases: [string, string, boolean][] = [
    ['live parent process', JSON.stringify(base), false],
    ['pid reused by another process (start time differs)', JSON.stringify({ ...base, startTime: '1' }), true],
    ['taken in an earlier boot', JSON.stringify({ ...base, bootId: '00000000-0000-0000-0000-000000000000' }), true],
    ['pid that does not exist', JSON.stringify({ ...base, pid: 4194304 + 7 }), true],
    ['garbage', 'not json at all', true],
    ['empty file (power cut after link)', '', true],
  ];
  for (const [name, text, stale] of cases) {
    fs.writeFileSync(lockPath(home), text);
    const r = await withLock(home, { waitMs: 0 }, () => 'acquired').catch((e: unknown) => e);
    if (stale) t.equal(r, 'acquired', `${name}: broken`);
    else {
      t.type(r, LockedError, `${name}: respected`);
      t.equal(fs.readFileSync(lockPath(home), 'utf8'), text, `${name}: left untouched`);
    }
  }
  fs.rmSync(lockPath(home), { force: true });
});

t.test('two processes incrementing a counter under the lock never lose an update', async (t) => {
  const home = tempDir(t, 'lock');
  const counter = path.join(home, 'counter');
  fs.writeFileSync(counter, '0');
  const n = 60;
  const a = child(t, ['count', home, String(n), counter]);
  const b = child(t, ['count', home, String(n), counter]);
  t.equal(await a.exited, 0);
  t.equal(await b.exited, 0);
  t.equal(Number(fs.readFileSync(counter, 'utf8')), 2 * n);
});

t.test('assertHeld notices a lock removed and taken by someone else; release leaves a foreign lock alone', async (t) => {
  const home = tempDir(t, 'lock');
  const lock = await acquireLock(home, { command: 'gitroot test' });
  t.doesNotThrow(() => lock.assertHeld());
  fs.rmSync(lockPath(home));
  const c = child(t, ['hold', home, 'gitroot fetch']);
  t.equal(await c.line(), 'locked');
  t.throws(() => lock.assertHeld(), LockedError);
  releaseLock(lock);
  t.equal(readLockOwner(home)?.pid, c.proc.pid, "the other process's lock survives our release");
  c.proc.stdin!.end('release\n');
  t.equal(await c.exited, 0);
});

t.test('withLock releases on a throwing callback', async (t) => {
  const home = tempDir(t, 'lock');
  await t.rejects(
    withLock(home, {}, () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  t.equal(fs.existsSync(lockPath(home)), false);
});
