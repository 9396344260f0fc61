/**
 * Concurrency and crashes: the fetch lock (stale locks of dead processes are broken, a live
 * holder makes the second fetch wait or fail with LockedError), two fetches at once, and
 * kill -9 of a process running a fetch at random moments (24 trials): afterwards no ref
 * points at anything missing, `git fsck` is clean, and a clean fetch succeeds.
 *
 * The fetching child processes run the compiled module (dist/): build first (npx tsc).
 */
// needs: git server
import t from 'tap';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { fetchCommit } from '../lib/fetch/repo-fetch.js';
import { acquireFetchLock } from '../lib/fetch/fetch-lock.js';
import { GitrootError } from '../lib/errors/errors.js';
import { type ServerRepo, gitSync, makeServerRepo, pushCommit, randomFiles, repoHealth, snapshotRepo } from './helpers/fetch-repos.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MODULE = path.join(ROOT, 'dist', 'lib', 'fetch', 'repo-fetch.js');
const TRIALS = Number(process.env.FETCH_KILL_TRIALS ?? 24);

/** Child: fetches argv[2] (branch) from argv[1] into argv[0]; prints each new phase, then "done". */
const CHILD = `
const [gitdir, remote, branch, module] = process.argv.slice(1);
const { fetchCommit } = await import(module);
let last = '';
try {
  const r = await fetchCommit({ gitdir, remote, branch, retries: 0, lockWaitMs: 120000,
    onProgress: (p) => { if (p.phase !== last) { last = p.phase; process.stdout.write('phase ' + p.phase + '\\n'); } } });
  process.stdout.write('done ' + JSON.stringify(r) + '\\n');
} catch (e) {
  process.stdout.write('error ' + e.code + ' ' + e.message + '\\n');
  process.exitCode = 1;
}
`;

interface Child {
  proc: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
  waitFor: (text: string) => Promise<void>;
}

function startChild(gitdir: string, remote: string, branch = 'main'): Child {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', CHILD, gitdir, remote, branch, MODULE], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (const w of waiters.filter((w) => out.includes(w.text))) w.resolve();
  });
  proc.stderr!.resume();
  const exited = new Promise<number | null>((r) => proc.on('close', (code) => r(code)));
  return {
    proc,
    out: () => out,
    exited,
    waitFor: (text) =>
      new Promise<void>((resolve, reject) => {
        if (out.includes(text)) return resolve();
        waiters.push({ text, resolve });
        void exited.then(() => (out.includes(text) ? resolve() : reject(new Error(`child exited before '${text}': ${out}`))));
      }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const base = mkdtempSync(path.join(os.tmpdir(), 'gitroot-fetchc-'));
const projectRoot = path.join(base, 'srv');
let server: GitHttpServer;
let repo: ServerRepo;
let n = 0;
const newGitdir = () => path.join(base, `D${++n}`, 'repo.git');

t.before(async () => {
  if (!existsSync(MODULE)) throw new Error(`${MODULE} is missing: build first (npx tsc -p tsconfig.json)`);
  repo = makeServerRepo(base, projectRoot, 'os.git', randomFiles(40, 100 * 1024));
  server = await startGitHttpServer({ projectRoot });
});
t.teardown(async () => {
  await server?.close();
  rmSync(base, { recursive: true, force: true });
});

t.test('lock: a stale lock of a dead process is broken', async (t) => {
  const gitdir = newGitdir();
  mkdirSync(gitdir, { recursive: true });
  gitSync(['init', '-q', '--bare', gitdir]);
  const dead = spawnSync('true').pid!;
  writeFileSync(path.join(gitdir, 'gitroot-fetch.lock'), JSON.stringify({ pid: dead, start: '1', since: 'then' }));
  const r = await fetchCommit({ gitdir, remote: server.url('os.git'), branch: 'main', lockWaitMs: 0 });
  t.equal(r.commit, repo.commits.at(-1));
  t.notOk(existsSync(path.join(gitdir, 'gitroot-fetch.lock')));
});

t.test('lock: an empty or unparseable lock file is broken (a live holder always has its record: it is linked in complete)', async (t) => {
  for (const content of ['', '{"pid":', 'garbage\n']) {
    const dir = mkdtempSync(path.join(base, 'lk-'));
    const file = path.join(dir, 'gitroot-fetch.lock');
    writeFileSync(file, content);
    const lock = await acquireFetchLock(dir, { waitMs: 0 });
    t.match(JSON.parse(readFileSync(file, 'utf8')), { pid: process.pid, command: 'gitroot fetch' }, `${JSON.stringify(content)}: taken over, our record in it`);
    lock.release();
    t.same(readdirSync(dir), [], 'released: nothing left behind');
  }
});

t.test('lock: held by this live process', async (t) => {
  const dir = mkdtempSync(path.join(base, 'lk-'));
  const a = await acquireFetchLock(dir);
  const e = await acquireFetchLock(dir, { waitMs: 150 }).then(
    () => null,
    (err: GitrootError) => err,
  );
  t.type(e, GitrootError);
  t.equal(e?.code, 'ELOCKED');
  t.match(e?.message ?? '', new RegExp(`another fetch into ${dir} is running: process ${process.pid} \\('gitroot fetch'`));
  const waiting = acquireFetchLock(dir, { waitMs: 10_000 });
  await sleep(150);
  a.release();
  const b = await waiting;
  b.release();
  t.same(readdirSync(dir), []);
});

t.test('two fetches into one repository: the second waits or gives up', async (t) => {
  const gitdir = newGitdir();
  const sha = pushCommit(repo, randomFiles(10, 100 * 1024, 'conc'));
  // The pack request crawls, so the child holds the lock for a while.
  server.setFault({ kind: 'slow', bytesPerSecond: 1024 * 1024, scope: 'fetch', times: 1 });
  const child = startChild(gitdir, server.url('os.git'));
  t.teardown(() => {
    child.proc.kill('SIGKILL');
  });
  await child.waitFor('phase download');
  const before = snapshotRepo(gitdir);
  const e = await fetchCommit({ gitdir, remote: server.url('os.git'), branch: 'main', lockWaitMs: 200 }).then(
    () => null,
    (err: GitrootError) => err,
  );
  t.equal(e?.code, 'ELOCKED', e?.message ?? 'no error');
  t.match(e?.message ?? '', new RegExp(`process ${child.proc.pid}`), 'names the holder');
  t.same(snapshotRepo(gitdir), before, 'the refused fetch touched nothing');
  server.resetStats();
  const waited = await fetchCommit({ gitdir, remote: server.url('os.git'), branch: 'main', lockWaitMs: 120_000 });
  t.equal(await child.exited, 0, child.out());
  t.equal(waited.commit, sha);
  t.equal(waited.upToDate, true, 'the waiting fetch found the work done');
  t.equal(server.stats.byCommand.fetch?.requests ?? 0, 0, 'no second pack request');

  // Two in one process at once: one downloads, the other then finds it present.
  const gitdir2 = newGitdir();
  server.resetStats();
  const both = await Promise.all([0, 1].map(() => fetchCommit({ gitdir: gitdir2, remote: server.url('os.git'), branch: 'main', lockWaitMs: 120_000 })));
  t.same(both.map((r) => r.upToDate).sort(), [false, true]);
  t.equal(server.stats.byCommand.fetch?.requests, 1, 'one pack request');
  t.equal(repoHealth(gitdir2).fsck, 0);
});

t.test(`kill -9 of a fetching process at random moments (${TRIALS} trials)`, async (t) => {
  // The machine has release N; the server has N+1 with ~3 MB new.
  const seed = newGitdir();
  await fetchCommit({ gitdir: seed, remote: server.url('os.git'), branch: 'main' });
  const target = pushCommit(repo, { ...randomFiles(30, 100 * 1024, 'kill'), 'usr/share/pkg0/file-0.bin': randomBytes(1000) });
  const seedRefs = snapshotRepo(seed).refs;

  // Calibration (not asserted): how long an undisturbed fetch takes here.
  const cal = path.join(base, 'cal', 'repo.git');
  spawnSync('cp', ['-a', path.dirname(seed), path.dirname(cal)]);
  const t0 = Date.now();
  const c0 = startChild(cal, server.url('os.git'));
  t.equal(await c0.exited, 0, c0.out());
  const fullMs = Math.max(50, Date.now() - t0);
  t.comment(`undisturbed child fetch: ${fullMs} ms`);

  const outcomes: Record<string, number> = {};
  for (let i = 0; i < TRIALS; i++) {
    const gitdir = path.join(base, `kill-${i}`, 'repo.git');
    spawnSync('cp', ['-a', path.dirname(seed), path.dirname(gitdir)]);
    const mode = i % 3;
    if (mode === 1) server.setFault({ kind: 'slow', bytesPerSecond: 4 * 1024 * 1024, scope: 'fetch', times: 1 });
    const child = startChild(gitdir, server.url('os.git'));
    let when: string;
    if (mode === 2) {
      // Land in verify / install / record: after the download finished.
      await child.waitFor('phase index').catch(() => {});
      const d = Math.floor(Math.random() * 40);
      await sleep(d);
      when = `index+${d}ms`;
    } else {
      const d = Math.floor(Math.random() * (mode === 1 ? fullMs + 1000 : fullMs * 1.2));
      await sleep(d);
      when = `${d}ms`;
    }
    child.proc.kill('SIGKILL');
    await child.exited;
    server.setFault(null);
    const phase = /phase (\w+)\n(?!.*phase)/s.exec(child.out())?.[1] ?? (child.out().includes('done') ? 'done' : 'start');
    const finished = child.out().includes('done ');
    outcomes[finished ? 'finished' : phase] = (outcomes[finished ? 'finished' : phase] ?? 0) + 1;

    const h = repoHealth(gitdir);
    const refs = snapshotRepo(gitdir).refs;
    const refOk = refs === seedRefs || refs.includes(`${target} refs/gitroot/fetched/main`);
    if (h.fsck !== 0 || h.closure !== 0 || !refOk) {
      t.fail(`trial ${i} (killed at ${when}, last phase ${phase}): fsck ${h.fsck} ${h.fsckErr} closure ${h.closure} ${h.closureErr} refs ${refs}`);
      continue;
    }
    // A clean fetch afterwards succeeds and leaves a clean repository.
    const r = await fetchCommit({ gitdir, remote: server.url('os.git'), branch: 'main', lockWaitMs: 10_000 }).then(
      (x) => x,
      (e: Error) => e,
    );
    const h2 = repoHealth(gitdir);
    const leftovers = readdirSync(gitdir).filter((f) => f.startsWith('gitroot-') || f.startsWith('.'));
    const keeps = readdirSync(path.join(gitdir, 'objects', 'pack')).filter((f) => f.endsWith('.keep'));
    if (r instanceof Error || r.commit !== target || h2.fsck !== 0 || h2.closure !== 0 || leftovers.length > 0 || keeps.length > 0) {
      t.fail(
        `trial ${i} (killed at ${when}): clean fetch ${r instanceof Error ? r.message : r.commit}, fsck ${h2.fsck} ${h2.fsckErr}, leftovers ${leftovers} ${keeps}`,
      );
      continue;
    }
    t.pass(`trial ${i}: killed at ${when} (last phase ${finished ? 'finished' : phase}); repo consistent, clean fetch ok`);
    rmSync(path.dirname(gitdir), { recursive: true, force: true });
  }
  t.comment(`kill points by last reported phase: ${JSON.stringify(outcomes)}`);
});
