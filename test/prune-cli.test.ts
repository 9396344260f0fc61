/**
 * `gitroot prune` end to end through the real CLI on a real home: releases served by a real
 * `git http-backend` on 127.0.0.1, fetched and staged with `gitroot fetch` (BLS entries), the
 * boot history (booted, good, earlier good, a failed pinned side revision) recorded in
 * state.json as the boot and mark-good steps would. Checks: what is kept and removed, git fsck
 * and every kept revision's closure, entries untouched, a git-fs mount of the booted revision
 * still serving every byte after its packs were deleted, the next fetch still up to date, the
 * disk use measured against a fresh clone of the kept revisions, dry run, a held lock, and the
 * pre-fetch space check (refusal, auto-prune).
 */
// needs: root fuse git server
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { commitSpec, debianRoot, noise } from './helpers/deploy-fixtures.js';
import { type Machine, machine } from './helpers/machine.js';
import { tempDir } from './helpers/temp-dir.js';
import { gitrootAsync as gitroot, mount, sh } from './helpers/cli.js';
import { gitRun, gitSync } from './helpers/fetch-repos.js';
import { acquireLock, releaseLock } from '../lib/home/home-lock.js';

let server: GitHttpServer;
let work: string;
let repo: string;
let url: string;
const rel: string[] = [];
let side: string;

/** A release: a 2 MB library that changes a little each time (deltas), plus the kernel. */
function release(n: number, extra: Record<string, Buffer | string> = {}) {
  const lib = Buffer.from(noise('libbig', 2 * 1024 * 1024));
  lib.write(`release ${n}`.padEnd(64, '.'), 4096 * n);
  return debianRoot(`6.1.0-${10 + n}`, `r${n}`, { 'usr/lib/libbig.so': lib, 'etc/motd': `release ${n}\n`, ...extra });
}

t.before(async () => {
  work = fs.mkdtempSync('/tmp/gitroot-prune-');
  const projectRoot = path.join(work, 'srv');
  fs.mkdirSync(projectRoot);
  repo = path.join(projectRoot, 'os.git');
  for (let n = 1; n <= 3; n++) rel.push(commitSpec(work, repo, release(n), `release ${n}`));
  // A side revision (not an ancestor of master) with 3 MB of its own.
  const root = fs.mkdtempSync(path.join(work, 'side-'));
  const { writeTree } = await import('./helpers/deploy-fixtures.js');
  writeTree(root, release(9, { 'usr/lib/experimental.bin': noise('experimental', 3 * 1024 * 1024) }));
  const r = spawnSync(
    process.execPath,
    [path.join(process.cwd(), 'dist', 'bin', 'gitroot.js'), 'commit', root, '--repo', repo, '--branch', 'experimental', '-m', 'side'],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(r.stderr);
  side = r.stdout.trim();
  server = await startGitHttpServer({ projectRoot });
  url = server.url('os.git');
});
t.teardown(async () => {
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

async function fetch(m: Machine, extraCmdline = '') {
  fs.writeFileSync(m.cmdline, `quiet ${extraCmdline}\n`);
  return gitroot(['fetch', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, '--json']);
}

async function prune(m: Machine, extra: string[] = []) {
  return gitroot(['prune', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, '--json', ...extra]);
}

function readState(m: Machine) {
  return JSON.parse(fs.readFileSync(path.join(m.dir, 'state.json'), 'utf8'));
}

/** Records what booting and marking good would (the boot tests cover those commands). */
function setState(m: Machine, change: (s: Record<string, unknown>) => void): void {
  const s = readState(m);
  change(s);
  fs.writeFileSync(path.join(m.dir, 'state.json'), JSON.stringify(s, null, 2) + '\n');
}

function bootGood(m: Machine, sha: string): void {
  setState(m, (s) => {
    const prev = s.good ? [s.good as string, ...(s.previousGood as string[])] : (s.previousGood as string[]);
    s.previousGood = prev.filter((x) => x !== sha).slice(0, 10);
    s.good = sha;
    s.booted = sha;
    s.pending = null;
  });
}

function entries(m: Machine): string {
  const dir = path.join(m.boot, 'loader', 'entries');
  return fs
    .readdirSync(dir)
    .sort()
    .map((f) => `${f}\n${fs.readFileSync(path.join(dir, f), 'utf8')}`)
    .join('\n');
}

/** A home with r1, r2, r3 booted and marked good in turn, and the side revision pinned, staged and failed. */
async function history(m: Machine): Promise<void> {
  // The server's master is at r3: r1 and r2 are pinned with update-revision (r3 is then already there).
  for (const sha of rel) {
    const p = await fetch(m, `update-revision=${sha}`);
    if (p.status !== 0) throw new Error(`fetch ${sha} failed: ${p.stderr}`);
    bootGood(m, sha);
  }
  const f = await fetch(m);
  if (f.status !== 0) throw new Error(`fetch of master failed: ${f.stderr}`);
  const s = await fetch(m, `update-revision=${side}`);
  if (s.status !== 0) throw new Error(`fetch of the side revision failed: ${s.stderr}`);
  // It failed to boot (the boot steps record that; the stale entry stays until the next staging or prune).
  setState(m, (st) => {
    st.failed = [side];
    st.pending = null;
  });
  // All of that happened more than an hour ago (prune keeps fetches younger than FETCH_GRACE_MS).
  sh(`find ${path.join(m.dir, 'repo.git', 'refs', 'gitroot')} -type f -exec touch -d '2 hours ago' {} +`);
}

function sizePack(gitdir: string): number {
  const out = gitSync(['--git-dir', gitdir, 'count-objects', '-v']);
  const kib = (k: string) =>
    Number(
      /^(?:size-pack|size): (\d+)$/m.exec(
        out
          .split('\n')
          .filter((l) => l.startsWith(k))
          .join('\n'),
      )?.[1] ?? 0,
    );
  return (kib('size-pack') + kib('size')) * 1024;
}

t.test('prune keeps booted, good and gitroot.keep earlier good revisions; removes the rest; repacks', async (t) => {
  const base = tempDir(t, 'prune-main');
  const m = machine(base, { remote: url });
  await history(m);
  const gitdir = path.join(m.dir, 'repo.git');
  const before = readState(m);
  t.same([before.good, before.previousGood], [rel[2], [rel[1], rel[0]]], 'history: r3 good, r2 and r1 earlier good');
  t.ok(fs.existsSync(path.join(m.dir, 'boot', side)), 'the side revision had its kernel staged');
  const entriesBefore = entries(m);
  const packsBefore = fs.readdirSync(path.join(gitdir, 'objects', 'pack')).filter((n) => n.endsWith('.pack')).length;
  t.ok(packsBefore >= 3, `one pack per fetch that downloaded (${packsBefore})`);

  // A git-fs daemon serves the booted revision from the packs that prune is about to delete.
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(mnt);
  const mounted = mount(t, mnt, gitdir, ['--rev', rel[2]]);
  t.equal(mounted.commit, rel[2]);
  // Touch the big file once so the daemon has the old pack open and part of it decoded.
  t.ok(fs.readFileSync(path.join(mnt, 'etc', 'motd'), 'utf8').includes('release 3'));

  // Dry run: plan only.
  const snap = () =>
    `${fs.readFileSync(path.join(m.dir, 'state.json'), 'utf8')}\n${gitSync(['--git-dir', gitdir, 'for-each-ref'])}\n` +
    `${fs
      .readdirSync(path.join(gitdir, 'objects', 'pack'))
      .sort()
      .join(',')}\n${fs.readdirSync(path.join(m.dir, 'boot')).sort().join(',')}`;
  const snapBefore = snap();
  const dry = await prune(m, ['--dry-run']);
  t.equal(dry.status, 0, dry.stderr);
  const dryOut = JSON.parse(dry.stdout);
  t.equal(dryOut.dryRun, true);
  t.same(dryOut.droppedPreviousGood, [rel[0]], 'dry run names r1 (beyond keep=1)');
  t.equal(snap(), snapBefore, 'dry run changed nothing');

  const duBefore = Number(sh(`du -sb --apparent-size ${m.dir} | cut -f1`));
  const r = await prune(m);
  t.equal(r.status, 0, `prune exits 0 (${r.stderr.trim()})`);
  const out = JSON.parse(r.stdout);
  t.same(
    out.kept.map((k: { revision: string }) => k.revision),
    [rel[2], rel[1]],
    'keeps r3 (booted, good) and r2 (earlier good)',
  );
  t.same(out.droppedPreviousGood, [rel[0]], 'r1 leaves previousGood');
  t.ok(out.kernelDirsRemoved.includes(side), 'the failed side revision loses its staged kernel');
  t.equal(out.packsAfter, 1, 'one pack after the repack');
  t.ok(out.bytesAfter < out.bytesBefore, `disk use shrinks (${out.bytesBefore} -> ${out.bytesAfter})`);

  const after = readState(m);
  t.same(
    [after.good, after.booted, after.pending, after.previousGood, after.failed],
    [rel[2], rel[2], null, [rel[1]], [side]],
    'state: only previousGood trimmed',
  );
  t.notOk(fs.existsSync(path.join(m.dir, 'boot', side)), 'side kernel directory gone');
  t.ok(fs.existsSync(path.join(m.dir, 'boot', rel[2], 'vmlinuz')), 'booted kernel stays');
  const good = (e: string) =>
    e
      .split(/\n(?=gitroot-)/)
      .filter((x) => x.includes(`git-revision=${rel[2]}`))
      .join('\n');
  t.ok(good(entriesBefore).length > 0, 'there was an entry for the good revision');
  t.equal(good(entries(m)), good(entriesBefore), 'the entry of the good revision is untouched');
  t.notMatch(entries(m), side, 'no entry names the failed side revision');

  const fsck = gitRun(['--git-dir', gitdir, 'fsck', '--connectivity-only', '--no-dangling']);
  t.equal(fsck.status, 0, `git fsck clean ${fsck.stderr}`);
  for (const sha of [rel[2], rel[1]]) {
    t.equal(gitRun(['--git-dir', gitdir, 'rev-list', '--objects', '--missing=error', '--quiet', sha]).status, 0, `${sha.slice(0, 8)} complete`);
    t.equal(gitSync(['--git-dir', gitdir, 'rev-parse', `refs/gitroot/keep/${sha}`]), sha, 'keep ref');
  }
  t.not(gitRun(['--git-dir', gitdir, 'cat-file', '-e', side]).status, 0, 'the side revision is gone from the repository');
  t.same(
    gitSync(['--git-dir', gitdir, 'for-each-ref', '--format=%(refname)', 'refs/gitroot/']).split('\n').sort(),
    [
      `refs/gitroot/fetched/master`,
      `refs/gitroot/keep/${rel[1]}`,
      `refs/gitroot/keep/${rel[2]}`,
      `refs/gitroot/fetched/${rel[1]}`,
      `refs/gitroot/fetched/${rel[2]}`,
    ].sort(),
    'refs: keep refs, and the fetched refs of kept revisions',
  );

  // The daemon still serves every byte of the booted revision (its old packs are deleted but open).
  const fromGit = sh(`git --git-dir ${gitdir} archive ${rel[2]} | tar -xOf - usr/lib/libbig.so | sha256sum`);
  const fromMount = sh(`sha256sum < ${path.join(mnt, 'usr', 'lib', 'libbig.so')}`);
  t.equal(fromMount, fromGit, 'the running git-fs serves the right bytes after the repack');
  const listGit = gitSync(['--git-dir', gitdir, 'ls-tree', '-r', '--name-only', rel[2]])
    .split('\n')
    .filter((p) => !p.startsWith('.gitroot'))
    .sort();
  let served = 0;
  for (const p of listGit) {
    const full = path.join(mnt, p);
    if (fs.lstatSync(full).isFile()) {
      const a = fs.readFileSync(full);
      const b = spawnSync('git', ['--git-dir', gitdir, 'cat-file', 'blob', `${rel[2]}:${p}`], { maxBuffer: 64 << 20 }).stdout;
      if (Buffer.compare(a, b) === 0) served++;
      else t.fail(`${p} differs through the mount`);
    } else served++;
  }
  t.equal(served, listGit.length, `all ${listGit.length} paths of the booted revision served correctly`);
  spawnSync('umount', [mnt]);

  // Measured: D's pack against a fresh clone of the kept revisions.
  const fresh = path.join(base, 'fresh.git');
  gitSync(['init', '-q', '--bare', fresh]);
  gitSync(['--git-dir', fresh, 'fetch', '-q', gitdir, 'refs/gitroot/keep/*:refs/keep/*']);
  gitSync(['--git-dir', fresh, 'repack', '-a', '-d', '-q']);
  const duAfter = Number(sh(`du -sb --apparent-size ${m.dir} | cut -f1`));
  const ours = sizePack(gitdir);
  const theirs = sizePack(fresh);
  t.comment(`measured: D ${duBefore} -> ${duAfter} bytes (apparent); repo.git objects ${ours} bytes vs fresh clone of kept revisions ${theirs} bytes`);
  t.ok(ours <= theirs * 1.2 + 64 * 1024, `repo.git within 20% of a fresh clone of the kept revisions (${ours} vs ${theirs})`);

  // The next fetch still finds master's tip complete: nothing downloaded.
  const again = await fetch(m);
  t.equal(again.status, 0, again.stderr);
  t.equal(JSON.parse(again.stdout).fetch.upToDate, true, 'next fetch is up to date');

  // A second prune has nothing left to remove.
  const second = await prune(m);
  t.equal(second.status, 0, second.stderr);
  const o2 = JSON.parse(second.stdout);
  t.same([o2.droppedPreviousGood, o2.kernelDirsRemoved, o2.refsDeleted], [[], [], []], 'second prune: nothing to remove');
});

t.test('--keep 0 and --keep 2; bad --keep; held lock', async (t) => {
  const m = machine(tempDir(t, 'prune-keep'), { remote: url });
  await history(m);
  const k2 = await prune(m, ['--keep', '2']);
  t.equal(k2.status, 0, k2.stderr);
  t.same(readState(m).previousGood, [rel[1], rel[0]], '--keep 2 keeps both earlier good revisions');
  const k0 = await prune(m, ['--keep', '0']);
  t.equal(k0.status, 0, k0.stderr);
  t.same(readState(m).previousGood, [], '--keep 0 keeps none');
  t.same(
    JSON.parse(k0.stdout).kept.map((k: { revision: string }) => k.revision),
    [rel[2]],
    'only the booted good revision',
  );

  const bad = await prune(m, ['--keep', '11']);
  t.equal(bad.status, 2, 'usage error');
  t.match(bad.stderr, /--keep must be a whole number from 0 to 10/);
  t.equal(bad.stderr.trim().split('\n').length, 1, 'one line');

  const lock = await acquireLock(m.dir, { command: 'test holder' });
  try {
    const locked = await prune(m, ['--wait', '0']);
    t.not(locked.status, 0, 'refused while the home is locked');
    t.match(locked.stderr, /holds .*lock/);
    t.equal(locked.stderr.trim().split('\n').length, 1, 'one line');
  } finally {
    releaseLock(lock);
  }
});

t.test('a power cut inside git update-ref leaves ref .lock files: the next prune removes them and finishes', async (t) => {
  const m = machine(tempDir(t, 'prune-stale-lock'), { remote: url });
  await history(m);
  const gitdir = path.join(m.dir, 'repo.git');
  const dry = await prune(m, ['--dry-run']);
  t.equal(dry.status, 0, dry.stderr);
  const doomed: string[] = JSON.parse(dry.stdout).refsDeleted;
  t.ok(doomed.length > 0, 'the plan drops refs');
  // What a kill -9 between "lock" and "commit" of `git update-ref --stdin` leaves behind.
  const stale = [`${doomed[0]}.lock`, 'packed-refs.lock'];
  for (const f of stale) fs.writeFileSync(path.join(gitdir, ...f.split('/')), '');
  const p = await prune(m);
  t.equal(p.status, 0, p.stderr);
  t.same(JSON.parse(p.stdout).refsDeleted, doomed, 'the refs the plan named are gone');
  for (const f of stale) t.notOk(fs.existsSync(path.join(gitdir, ...f.split('/'))), `${f} removed`);
  const left = gitSync(['--git-dir', gitdir, 'for-each-ref', '--format=%(refname)', 'refs/gitroot/']).split('\n');
  for (const r of doomed) t.notOk(left.includes(r), `${r} deleted`);
  t.equal(spawnSync('git', ['--git-dir', gitdir, 'fsck', '--no-dangling'], { encoding: 'utf8' }).status, 0, 'git fsck is clean');
});

t.test(
  "temps of killed writers (ref writes, prune.json, fsck.json, last-fetch.json, a first fetch's repository) are removed; a live writer's stay",
  async (t) => {
    const m = machine(tempDir(t, 'prune-dead-temps'), { remote: url });
    await history(m);
    const gitdir = path.join(m.dir, 'repo.git');
    // A pid that is gone, and one that is alive (a sleeping child).
    const dead = spawnSync('true').pid as number;
    const live = spawnSync('sh', ['-c', 'sleep 60 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
    const livePid = Number(live.stdout.trim());
    t.teardown(() => {
      try {
        process.kill(livePid);
      } catch {
        /* gone */
      }
    });
    const deadTemps = [
      path.join(gitdir, 'refs', 'gitroot', 'keep', `.${rel[0]}.tmp-${dead}-abc`),
      path.join(gitdir, 'refs', 'gitroot', 'fetched', `.main.tmp-${dead}-abc`),
      path.join(m.dir, `.prune.json.tmp-${dead}-abc`),
      path.join(m.dir, `.fsck.json.tmp-${dead}-abc`),
      path.join(m.dir, `.last-fetch.json.tmp-${dead}-abc`),
    ];
    for (const f of deadTemps) {
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, `${rel[0]}\n`);
    }
    const initDir = path.join(m.dir, `.repo.git.init-${dead}-abc`);
    fs.mkdirSync(path.join(initDir, 'objects'), { recursive: true });
    const liveTemp = path.join(m.dir, `.last-fetch.json.tmp-${livePid}-abc`);
    fs.writeFileSync(liveTemp, '{}');
    const p = await prune(m);
    t.equal(p.status, 0, p.stderr);
    for (const f of [...deadTemps, initDir]) t.notOk(fs.existsSync(f), `${path.relative(m.dir, f)} removed`);
    t.ok(fs.existsSync(liveTemp), 'the temp of a live writer stays');
  },
);

t.test('space check before a fetch: refuses with a one-line ENOSPACE, or prunes first', async (t) => {
  const m = machine(tempDir(t, 'prune-space'), { remote: url, settings: ['gitroot.min-free=1048576', 'gitroot.auto-prune=0'] });
  await fetch(m, `update-revision=${rel[0]}`);
  // the first fetch passes only if 1 TiB were free: it is refused; make it pass with min-free=0 first
  fs.appendFileSync(m.conf, 'gitroot.min-free=0\n');
  const first = await fetch(m, `update-revision=${rel[0]}`);
  t.equal(first.status, 0, first.stderr);
  bootGood(m, rel[0]);
  const gitdir = path.join(m.dir, 'repo.git');
  const refsBefore = gitSync(['--git-dir', gitdir, 'for-each-ref']);
  fs.appendFileSync(m.conf, 'gitroot.min-free=1048576\n');
  const refused = await fetch(m);
  t.equal(refused.status, 5, 'exit 5 (system)');
  t.equal(refused.stdout, '', 'nothing on stdout');
  const line = refused.stderr.trim();
  t.equal(line.split('\n').length, 1, 'one line');
  t.match(
    line,
    /not enough free space for the update in the gitroot home .*: [\d.]+ [kMGT]?B free, [\d.]+ [kMGT]?B needed \(gitroot\.min-free .* \+ 2 x last pack .*\): free space there \(e\.g\. 'gitroot prune --dir/,
  );
  t.equal(gitSync(['--git-dir', gitdir, 'for-each-ref']), refsBefore, 'nothing fetched');
  t.equal(JSON.parse(fs.readFileSync(path.join(m.dir, 'last-fetch.json'), 'utf8')).error.code, 'ENOSPACE', 'recorded as ENOSPACE');

  fs.appendFileSync(m.conf, 'gitroot.auto-prune=1\n');
  const withPrune = await fetch(m);
  t.equal(withPrune.status, 5);
  t.match(withPrune.stderr, /even after pruning/, 'auto-prune ran, and says so');
  t.ok(fs.existsSync(path.join(m.dir, 'prune.json')), 'the prune left its record');
});
