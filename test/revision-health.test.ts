/**
 * readHealth and decideBoot (lib/boot/revision-health.ts, lib/boot/boot-decide.ts) on real repositories made with
 * `gitroot commit`: a healthy commit; unknown ids, blobs and a commit whose root tree is gone
 * are missing; a loose commit or tree rewritten with other content, garbage instead of zlib,
 * and a packed commit with one flipped byte are broken; no repository at all. Then the boot
 * decision persisted under the lock (a try used before mounting), not persisted for `select`,
 * and refused while another process holds the lock.
 */
// needs: git
import t from 'tap';
import type { Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createInterface } from 'node:readline';
import { decideBoot } from '../lib/boot/boot-decide.js';
import { openHealthProbe, readHealth } from '../lib/boot/revision-health.js';
import { type DeployState, emptyState, readState, writeState } from '../lib/home/home-state.js';
import { statePath } from '../lib/home/home-layout.js';
import { withLock } from '../lib/home/home-lock.js';
import { LockedError } from '../lib/errors/errors.js';
import { DEPLOY_CHILD, commitSpec } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';
import { sh } from './helpers/cli.js';

const T0 = '2026-05-06T07:08:09.000Z';

function git(repo: string, args: string[], input?: string): string {
  const r = spawnSync('git', ['--git-dir', repo, ...args], { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

const loose = (repo: string, oid: string): string => path.join(repo, 'objects', oid.slice(0, 2), oid.slice(2));

function rewriteLoose(repo: string, oid: string, content: Buffer): void {
  const file = loose(repo, oid);
  fs.chmodSync(file, 0o644);
  fs.writeFileSync(file, content);
}

function home(t: Test): { work: string; dir: string; repo: string } {
  const work = tempDir(t, 'health');
  const dir = path.join(work, 'gitroot');
  fs.mkdirSync(dir);
  return { work, dir, repo: path.join(dir, 'repo.git') };
}

t.test('readHealth: ok, missing and broken revisions of a real repository', async (t) => {
  const h = home(t);
  // Every commit first: `gitroot commit` builds on the previous one, which must still be readable.
  const ok = commitSpec(h.work, h.repo, { 'etc/os-release': 'ID=debian\n', 'usr/bin/true': '#!/bin/sh\n' });
  const other = commitSpec(h.work, h.repo, { a: 'a\n' }, 'other');
  const garbage = commitSpec(h.work, h.repo, { b: 'b\n' }, 'garbage');
  const badTree = commitSpec(h.work, h.repo, { c: 'c\n' }, 'bad tree');
  t.equal(readHealth(h.dir, ok), 'ok');
  t.equal(readHealth(h.dir, '0'.repeat(40)), 'missing', 'an id the repository does not have');
  t.equal(readHealth(h.dir, 'not-a-sha'), 'missing', 'not an id');
  const blob = git(h.repo, ['hash-object', '-w', '--stdin'], 'hello\n');
  t.equal(readHealth(h.dir, blob), 'missing', 'a blob is no commit');

  // A commit whose root tree is gone.
  const tree1 = git(h.repo, ['hash-object', '-w', '-t', 'tree', '--stdin'], '');
  const noTree = git(h.repo, ['commit-tree', tree1, '-m', 'x']);
  t.equal(readHealth(h.dir, noTree), 'ok');
  fs.rmSync(loose(h.repo, tree1));
  t.equal(readHealth(h.dir, noTree), 'missing', 'root tree removed');

  // A commit object whose file holds another object (the id does not match).
  const text = git(h.repo, ['cat-file', 'commit', other]).replace('other', 'tampered');
  rewriteLoose(h.repo, other, zlib.deflateSync(Buffer.from(`commit ${Buffer.byteLength(text) + 1}\0${text}\n`)));
  t.equal(readHealth(h.dir, other), 'broken', 'content does not hash to the id');

  // Garbage instead of a zlib stream.
  rewriteLoose(h.repo, garbage, Buffer.from('this is not zlib at all'));
  t.equal(readHealth(h.dir, garbage), 'broken', 'not zlib');

  // A healthy commit whose root tree is corrupt.
  const tree = git(h.repo, ['rev-parse', `${badTree}^{tree}`]);
  rewriteLoose(h.repo, tree, zlib.deflateSync(Buffer.from('tree 5\0xxxxx')));
  t.equal(readHealth(h.dir, badTree), 'broken', 'root tree does not verify');

  // The same through one open store, remembering answers.
  const probe = openHealthProbe(h.dir);
  t.teardown(() => probe.close());
  for (const s of [ok, other, noTree, ok]) probe.health(s);
  t.same(probe.checked, { [ok]: 'ok', [other]: 'broken', [noTree]: 'missing' });
});

t.test('readHealth: a packed commit with one flipped byte is broken', async (t) => {
  const h = home(t);
  const sha = commitSpec(h.work, h.repo, { 'etc/hostname': 'kiosk\n', big: 'x'.repeat(5000) });
  const before = commitSpec(h.work, h.repo, { 'etc/hostname': 'other\n' }, 'keep');
  git(h.repo, ['repack', '-a', '-d', '-q']);
  git(h.repo, ['prune-packed']);
  t.equal(readHealth(h.dir, sha), 'ok', 'packed and healthy');
  const pack = fs.readdirSync(path.join(h.repo, 'objects', 'pack')).find((f) => f.endsWith('.pack')) as string;
  const packPath = path.join(h.repo, 'objects', 'pack', pack);
  const verify = sh(`git verify-pack -v ${packPath.replace(/\.pack$/, '.idx')}`);
  const line = verify.split('\n').find((l) => l.startsWith(sha)) as string;
  const [, , , , offset] = line.split(/\s+/);
  const buf = fs.readFileSync(packPath);
  const at = Number(offset) + 8;
  buf[at] ^= 0x40;
  fs.chmodSync(packPath, 0o644);
  fs.writeFileSync(packPath, buf);
  t.equal(readHealth(h.dir, sha), 'broken', 'one byte of its pack entry flipped');
  t.equal(readHealth(h.dir, before), 'ok', 'the other commit of the pack is still fine');
});

t.test('readHealth: no repository means every revision is missing', async (t) => {
  const h = home(t);
  t.equal(readHealth(h.dir, 'a'.repeat(40)), 'missing');
  const probe = openHealthProbe(h.dir);
  t.equal(probe.health('a'.repeat(40)), 'missing');
  probe.close();
});

t.test('decideBoot persists the decision under the lock before returning', async (t) => {
  const h = home(t);
  const G = commitSpec(h.work, h.repo, { g: 'g\n' }, 'good');
  const P = commitSpec(h.work, h.repo, { p: 'p\n' }, 'pending');
  const start: DeployState = { ...emptyState(), good: G, booted: G, pending: { revision: P, triesLeft: 1, tries: 2, stagedAt: T0 } };
  await withLock(h.dir, {}, (lock) => writeState(lock, start));

  const look = await decideBoot({ dir: h.dir, cmdline: `boot=gitroot git-revision=${P}\n`, persist: false });
  t.match(look, { revision: P, kind: 'pending', written: false, cmdlineRevision: P, health: { [P]: 'ok' } });
  t.same(readState(h.dir), start, 'select writes nothing');

  const first = await decideBoot({ dir: h.dir, cmdline: `boot=gitroot git-revision=${P}\n`, persist: true });
  t.match(first, { revision: P, kind: 'pending', written: true });
  t.match(readState(h.dir), { booted: P, pending: { revision: P, triesLeft: 0 } }, 'the try is on disk before anything mounts');

  const second = await decideBoot({ dir: h.dir, cmdline: `git-revision=${P}`, persist: true });
  t.match(second, { revision: G, kind: 'good', written: true });
  t.match(readState(h.dir), { booted: G, pending: null, failed: [P] });

  const third = await decideBoot({ dir: h.dir, cmdline: `git-revision=${G}`, persist: true });
  t.match(third, { revision: G, written: false }, 'nothing to write: the state already says so');

  // Nothing readable: the decision is none, and the state still records what happened.
  fs.rmSync(h.repo, { recursive: true });
  const none = await decideBoot({ dir: h.dir, cmdline: '', persist: true });
  t.match(none, { revision: null, kind: 'none', health: { [G]: 'missing' } });
  t.match(none.reason, /^no bootable revision \(good revision .* is not in the repository\)/);
});

t.test('decideBoot waits for the lock, then refuses', async (t) => {
  const h = home(t);
  await withLock(h.dir, {}, (lock) => writeState(lock, { ...emptyState(), good: 'a'.repeat(40) }));
  const holder = spawn(process.execPath, [DEPLOY_CHILD, 'hold', h.dir, 'gitroot fetch'], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (holder.exitCode === null) holder.kill('SIGKILL');
  });
  await new Promise<void>((resolve) => createInterface({ input: holder.stdout! }).once('line', () => resolve()));
  const before = fs.readFileSync(statePath(h.dir), 'utf8');
  const err = await decideBoot({ dir: h.dir, cmdline: '', persist: true, waitMs: 300 }).catch((e: unknown) => e);
  t.type(err, LockedError);
  t.match((err as Error).message, /pid \d+, 'gitroot fetch'/);
  t.equal(fs.readFileSync(statePath(h.dir), 'utf8'), before);
  holder.stdin!.end();
  await new Promise((r) => holder.once('exit', r));
  t.match(await decideBoot({ dir: h.dir, cmdline: '', persist: true }), { kind: 'none' }, 'free again');
});
