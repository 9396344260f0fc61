/**
 * fetchCommit end to end against real `git http-backend` (fixtures/git-http-server.ts) on
 * 127.0.0.1: first fetch, pinned SHA, up to date without a pack request, incremental fetch
 * measured at the server, dry run, protocol v0 fallback, and every failure (unknown branch
 * or SHA, 500, HTML, dumb HTTP, truncated pack, hang) as a typed one-line error with the
 * repository unchanged (same refs, same objects/ listing).
 */
// needs: git server
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { pkt, sideband, startGitHttpServer, type GitHttpFault, type GitHttpServer } from '../fixtures/git-http-server.js';
import { type FetchCommitOptions, type FetchProgress, fetchCommit } from '../lib/fetch/repo-fetch.js';
import { GitrootError } from '../lib/errors/errors.js';
import { type ServerRepo, gitSync, makeServerRepo, pushCommit, randomFiles, repoHealth, snapshotRepo } from './helpers/fetch-repos.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'gitroot-fetch-'));
const projectRoot = path.join(base, 'srv');
let server: GitHttpServer;
let repo: ServerRepo;
let n = 0;
const newGitdir = () => path.join(base, `D${++n}`, 'repo.git');

t.before(async () => {
  // 60 incompressible files of 100 KiB: a 6 MB first release.
  repo = makeServerRepo(base, projectRoot, 'os.git', { ...randomFiles(60, 100 * 1024), 'etc/os-release': 'ID=test\n' });
  server = await startGitHttpServer({ projectRoot });
});
t.teardown(async () => {
  await server?.close();
  rmSync(base, { recursive: true, force: true });
});

/** fetchCommit with test defaults: no retry delays, short timeout. */
function fetch(gitdir: string, o: Partial<FetchCommitOptions> = {}) {
  return fetchCommit({ gitdir, remote: server.url('os.git'), retries: 0, retryDelayMs: 10, timeoutMs: 5000, ...o });
}

/** Expects `promise` to fail with `code`, a one-line message, and `gitdir` unchanged. */
async function expectFailure(t: Test, gitdir: string, code: string, promise: Promise<unknown>, pattern?: RegExp) {
  const before = snapshotRepo(gitdir);
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  t.type(err, GitrootError, 'a GitrootError');
  const e = err as GitrootError;
  t.equal(e?.code, code, `code ${code}: ${e?.message}`);
  t.notMatch(e?.message ?? '', /\n/, 'one line');
  if (pattern) t.match(e?.message, pattern);
  t.same(snapshotRepo(gitdir), before, 'refs and objects/ unchanged');
  t.notOk(existsSync(path.join(gitdir, 'gitroot-fetch.lock')), 'lock released');
  t.notOk(existsSync(path.join(gitdir, 'gitroot-tmp')), 'quarantine removed');
  return e;
}

t.test('first fetch of a branch tip', async (t) => {
  const gitdir = newGitdir();
  server.resetStats();
  const phases: FetchProgress['phase'][] = [];
  const r = await fetch(gitdir, {
    branch: 'main',
    onProgress: (p) => {
      if (phases.at(-1) !== p.phase) phases.push(p.phase);
    },
  });
  t.equal(r.commit, repo.commits[0]);
  t.equal(r.upToDate, false);
  t.equal(r.protocol, 2);
  t.equal(r.ref, 'refs/gitroot/fetched/main');
  t.ok(r.objects > 60, `objects ${r.objects}`);
  t.equal(r.bytes, server.stats.bytesSent, 'bytes counted by the client = bytes sent by the server');
  t.same(phases, ['refs', 'negotiate', 'download', 'index']);
  t.equal(gitSync(['--git-dir', gitdir, 'rev-parse', 'refs/gitroot/fetched/main']), repo.commits[0]);
  const h = repoHealth(gitdir);
  t.equal(h.fsck, 0, h.fsckErr);
  t.equal(h.closure, 0, h.closureErr);
  t.notOk(existsSync(path.join(gitdir, 'gitroot-tmp')));
  const packs = gitSync(['--git-dir', gitdir, 'count-objects', '-v']);
  t.match(packs, /packs: 1/);
  t.notOk(
    readdirSync(path.join(gitdir, 'objects', 'pack')).some((f) => f.endsWith('.keep')),
    'no .keep left',
  );
  const h1 = server.log.find((l) => l.url.includes('info/refs'));
  t.equal(h1?.headers['git-protocol'], 'version=2');
  t.match(String(h1?.headers['user-agent']), /^gitroot\/\d/);
});

t.test('up to date: no pack request, ref recorded', async (t) => {
  const gitdir = newGitdir();
  await fetch(gitdir, { branch: 'main' });
  server.resetStats();
  const r = await fetch(gitdir, { branch: 'main' });
  t.equal(r.upToDate, true);
  t.equal(r.objects, 0);
  t.equal(server.stats.byCommand.fetch, undefined, 'no fetch command sent');
  t.same(Object.keys(server.stats.byCommand), ['ls-refs']);
});

t.test('incremental fetch downloads far less than the first', async (t) => {
  const gitdir = newGitdir();
  server.resetStats();
  const first = await fetch(gitdir, { branch: 'main' });
  const firstBytes = server.stats.bytesSent;
  t.ok(firstBytes > 5 * 1024 * 1024, `first fetch ${firstBytes} bytes`);
  // One "package" changes: one file replaced, one added (100 KiB each).
  const sha = pushCommit(repo, { 'usr/share/pkg3/file-3.bin': randomBytes(100 * 1024), 'usr/share/doc/changed/new.bin': randomBytes(100 * 1024) });
  server.resetStats();
  const second = await fetch(gitdir, { branch: 'main' });
  const secondBytes = server.stats.bytesSent;
  t.equal(second.commit, sha);
  t.not(second.commit, first.commit);
  t.ok(secondBytes < firstBytes * 0.2, `incremental ${secondBytes} bytes < 20% of ${firstBytes}`);
  t.ok(second.objects < 20, `objects ${second.objects}`);
  const fetchReq = server.log.find((l) => l.command === 'fetch');
  t.ok(fetchReq, 'one pack request');
  const h = repoHealth(gitdir);
  t.equal(h.fsck, 0, h.fsckErr);
  t.equal(h.closure, 0, h.closureErr);
});

t.test('pin an older SHA (sha mode) into a fresh repository', async (t) => {
  const gitdir = newGitdir();
  const old = repo.commits[0];
  const r = await fetch(gitdir, { sha: old.toUpperCase() });
  t.equal(r.commit, old);
  t.equal(r.upToDate, false);
  t.equal(r.ref, `refs/gitroot/fetched/${old}`);
  t.equal(gitSync(['--git-dir', gitdir, 'rev-parse', r.ref!]), old);
  t.equal(repoHealth(gitdir).closure, 0);
  // Then the tip: only the difference comes, the old commit is an ancestor.
  server.resetStats();
  const tip = await fetch(gitdir, { branch: 'main' });
  t.ok(server.stats.bytesSent < 1024 * 1024, `tip after pin: ${server.stats.bytesSent} bytes`);
  t.equal(tip.commit, repo.commits.at(-1));
  // An older SHA already present (an ancestor): up to date, recorded, no pack request.
  server.resetStats();
  const again = await fetch(gitdir, { sha: old });
  t.equal(again.upToDate, true);
  t.equal(server.stats.byCommand.fetch, undefined);
});

t.test('dry run measures and changes nothing', async (t) => {
  const missing = newGitdir();
  const r0 = await fetch(missing, { branch: 'main', mode: 'dry-run' });
  t.ok(r0.objects > 60);
  t.equal(r0.ref, null);
  t.notOk(existsSync(missing), 'no repository created');

  const gitdir = newGitdir();
  await fetch(gitdir, { sha: repo.commits[0] });
  const before = snapshotRepo(gitdir);
  server.resetStats();
  const r = await fetch(gitdir, { branch: 'main', mode: 'dry-run' });
  t.equal(r.upToDate, false);
  t.ok(r.objects > 0 && r.objects < 20, `objects ${r.objects}`);
  t.equal(r.bytes, server.stats.bytesSent);
  t.same(snapshotRepo(gitdir), before);
  t.notOk(existsSync(path.join(gitdir, 'gitroot-tmp')));
});

t.test('failures: typed one-line errors, repository unchanged', async (t) => {
  const gitdir = newGitdir();
  await fetch(gitdir, { sha: repo.commits[0] });
  pushCommit(repo, randomFiles(3, 200 * 1024, 'update'));
  const withFault = async (t: Test, fault: GitHttpFault, code: string, o: Partial<FetchCommitOptions> = {}, pattern?: RegExp) => {
    server.setFault(fault);
    try {
      return await expectFailure(t, gitdir, code, fetch(gitdir, { branch: 'main', ...o }), pattern);
    } finally {
      server.setFault(null);
    }
  };

  await t.test('unknown branch', async (t) => {
    const e = await expectFailure(t, gitdir, 'EREMOTE', fetch(gitdir, { branch: 'no-such-branch' }), /no-such-branch/);
    t.equal(e.data.branch, 'no-such-branch');
  });
  await t.test('unknown SHA', async (t) => {
    const e = await expectFailure(t, gitdir, 'EREMOTE', fetch(gitdir, { sha: 'deadbeef'.repeat(5) }), /deadbeef/);
    t.equal(e.data.sha, 'deadbeef'.repeat(5));
  });
  await t.test('not a full SHA', async (t) => {
    await expectFailure(t, gitdir, 'EUSAGE', fetch(gitdir, { sha: repo.commits[0].slice(0, 12) }));
  });
  await t.test('repository missing on the server', async (t) => {
    await expectFailure(t, gitdir, 'EREMOTE', fetch(gitdir, { branch: 'main', remote: server.url('nope.git') }));
  });
  await t.test('HTTP 500 everywhere, retried with backoff', async (t) => {
    server.resetStats();
    const e = await withFault(t, { kind: 'status', code: 500 }, 'ENETWORK', { retries: 2 });
    t.equal(server.stats.byPath['GET /os.git/info/refs']?.requests, 3, 'discovery tried 1 + 2 times');
    t.equal(e.data.attempts, 3);
  });
  await t.test('HTTP 500 once, then the retry succeeds', async (t) => {
    server.setFault({ kind: 'status', code: 503, times: 1 });
    const r = await fetch(gitdir, { branch: 'main', retries: 1, mode: 'dry-run' });
    t.equal(r.upToDate, false);
    server.setFault(null);
  });
  await t.test('HTTP 500 on the pack request: not retried', async (t) => {
    server.resetStats();
    await withFault(t, { kind: 'status', code: 500, scope: 'fetch' }, 'ENETWORK', { retries: 3 });
    t.equal(server.stats.byCommand.fetch?.requests, 1);
  });
  await t.test('HTML page instead of git', async (t) => {
    await withFault(t, { kind: 'html' }, 'ENETWORK', {}, /HTML/);
  });
  await t.test('HTML page answering the pack request', async (t) => {
    await withFault(t, { kind: 'html', scope: 'fetch' }, 'ENETWORK', {}, /HTML/);
  });
  await t.test('dumb HTTP server', async (t) => {
    gitSync(['update-server-info'], { cwd: repo.bare });
    await withFault(t, { kind: 'dumb' }, 'ENETWORK', {}, /dumb HTTP/);
  });
  await t.test('truncated pack (connection closed cleanly)', async (t) => {
    await withFault(t, { kind: 'truncate', afterBytes: 20000, scope: 'fetch' }, 'ENETWORK', {}, /before the pack was complete/);
  });
  await t.test('truncated pack (connection dropped)', async (t) => {
    await withFault(t, { kind: 'truncate', afterBytes: 20000, abort: true, scope: 'fetch' }, 'ENETWORK');
  });
  await t.test('truncated inside the pkt-line framing', async (t) => {
    await withFault(t, { kind: 'truncate', afterBytes: 13, scope: 'fetch' }, 'ENETWORK');
  });
  await t.test('hang on the pack request -> timeout', async (t) => {
    await withFault(t, { kind: 'hang', scope: 'fetch' }, 'ENETWORK', { timeoutMs: 500 }, /no answer within/);
  });
  await t.test('hang on discovery -> timeout', async (t) => {
    await withFault(t, { kind: 'hang' }, 'ENETWORK', { timeoutMs: 500 });
  });
  await t.test('nothing listening', async (t) => {
    const srv = await startGitHttpServer({ projectRoot });
    const url = srv.url('os.git');
    await srv.close();
    await expectFailure(t, gitdir, 'ENETWORK', fetch(gitdir, { branch: 'main', remote: url }), /refused/);
  });
  await t.test('not an http(s) remote', async (t) => {
    await expectFailure(t, gitdir, 'EUSAGE', fetch(gitdir, { branch: 'main', remote: 'ssh://host/x.git' }));
  });
  await t.test('abort signal', async (t) => {
    server.setFault({ kind: 'slow', bytesPerSecond: 50_000, scope: 'fetch' });
    const ac = new AbortController();
    const before = snapshotRepo(gitdir);
    const p = fetch(gitdir, {
      branch: 'main',
      signal: ac.signal,
      onProgress: (pr) => {
        if (pr.phase === 'download') ac.abort();
      },
    });
    const err = await p.then(
      () => null,
      (e: Error) => e,
    );
    server.setFault(null);
    t.equal(err?.name, 'AbortError');
    t.same(snapshotRepo(gitdir), before);
  });
  await t.test('after all that, a clean fetch works', async (t) => {
    const r = await fetch(gitdir, { branch: 'main' });
    t.equal(r.commit, repo.commits.at(-1));
    const h = repoHealth(gitdir);
    t.equal(h.fsck, 0, h.fsckErr);
  });
});

t.test('index-pack may finish before the answer ends: a pack followed by a long progress tail is fetched', async (t) => {
  // git index-pack exits (0) at the pack's trailer; the server may still be sending side-band
  // progress. Under load that exit used to be seen mid-answer and reported as a damaged pack.
  const tip = gitSync(['--git-dir', repo.bare, 'rev-parse', 'main']).trim();
  const made = spawnSync('git', ['--git-dir', repo.bare, 'pack-objects', '--revs', '--stdout', '-q'], { input: `${tip}\n`, maxBuffer: 256 << 20 });
  t.equal(made.status, 0, 'git pack-objects made the pack');
  const pack = made.stdout;
  const parts: Buffer[] = [pkt('packfile\n')];
  for (let off = 0; off < pack.length; off += 65000) parts.push(sideband(pack.subarray(off, off + 65000)));
  const progress = Buffer.from(`Counting objects: done, ${'.'.repeat(900)}\r`);
  for (let i = 0; i < 8000; i++) parts.push(sideband(progress, 2)); // about 7 MB of progress after the pack
  parts.push(Buffer.from('0000'));
  const gitdir = newGitdir();
  server.setFault({ kind: 'raw', body: Buffer.concat(parts), scope: 'fetch', times: 1 });
  try {
    const r = await fetch(gitdir, { branch: 'main' });
    t.equal(r.commit, tip, 'the tip is fetched');
    t.match(repoHealth(gitdir), { fsck: 0, closure: 0 }, 'and complete');
  } finally {
    server.setFault(null);
  }
});

t.test('protocol v0 server (Git-Protocol header not passed through)', async (t) => {
  const srv = await startGitHttpServer({ projectRoot, protocolV2: false });
  t.teardown(() => srv.close());
  const gitdir = newGitdir();
  const f = (o: Partial<FetchCommitOptions>, remote = srv.url('os.git')) => fetchCommit({ gitdir, remote, retries: 0, timeoutMs: 5000, ...o });
  // Over HTTP (stateless RPC) v0 upload-pack serves any SHA reachable from a ref.
  const r0 = await f({ sha: repo.commits[0] });
  t.equal(r0.protocol, 0);
  t.equal(r0.commit, repo.commits[0]);
  const r1 = await f({ branch: 'main' });
  t.equal(r1.commit, repo.commits.at(-1));
  t.equal(repoHealth(gitdir).closure, 0);
  const sha = pushCommit(repo, randomFiles(1, 50 * 1024, 'v0'));
  srv.resetStats();
  const r2 = await f({ branch: 'main' });
  t.equal(r2.commit, sha);
  t.ok(srv.stats.bytesSent < 300 * 1024, `v0 incremental ${srv.stats.bytesSent} bytes`);
  t.same(Object.keys(srv.stats.byCommand), ['v0-fetch']);

  // A commit no ref reaches (force-pushed away): v0 refuses it unless the server sets
  // uploadpack.allowAnySHA1InWant; protocol v2 serves any object the server has.
  const dangling = gitSync(['commit-tree', '-m', 'unreachable', `${repo.commits[0]}^{tree}`], { cwd: repo.bare });
  await expectFailure(t, gitdir, 'EREMOTE', f({ sha: dangling }), /unknown to/);
  const srv2 = await startGitHttpServer({
    projectRoot,
    protocolV2: false,
    env: { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'uploadpack.allowAnySHA1InWant', GIT_CONFIG_VALUE_0: 'true' },
  });
  t.teardown(() => srv2.close());
  t.equal((await f({ sha: dangling }, srv2.url('os.git'))).commit, dangling);
  t.equal((await fetch(newGitdir(), { sha: dangling })).commit, dangling, 'v2: no server setting needed');
});

t.test('an existing directory that is not a repository is refused', async (t) => {
  const dir = path.join(base, 'not-a-repo');
  gitSync(['init', '-q', dir]); // a work tree: objects/ is under .git, not here
  const err = await fetch(dir, { branch: 'main' }).then(
    () => null,
    (e: GitrootError) => e,
  );
  t.equal(err?.code, 'ENOREPO');
});
