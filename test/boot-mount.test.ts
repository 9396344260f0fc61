/**
 * `gitroot boot` on the host (lib/boot/boot-mount.ts): a real gitroot home built with
 * `gitroot commit`, a real git-fs daemon, tmpfs and overlay mounts in temp directories.
 * The root it builds is writable, reads through to the revision, keeps /tmp 1777 and runs
 * setuid binaries; the daemon runs as `@gitroot` with its cwd in the home; booted.json says
 * what booted. Failures (nothing bootable, a busy target, a failing later step) leave nothing
 * mounted and no daemon running. The decision itself is boot-select's (tested there); here:
 * it is the one mounted, and it is written to state.json before mounting unless --no-persist.
 */
// needs: root fuse git
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { emptyState, readState } from '../lib/home/home-state.js';
import { gitroot, isMounted, sh, waitExit } from './helpers/cli.js';
import { tempDir } from './helpers/temp-dir.js';

interface Home {
  dir: string;
  home: string;
  sha: string;
  cmdline: string;
}

/** A gitroot home holding one small revision (with /tmp 1777 and a setuid copy of id), marked good. */
function makeHome(t: { teardown(fn: () => unknown): void }, good = true): Home {
  const dir = tempDir(t, 'boot');
  const src = join(dir, 'src');
  for (const d of ['etc', 'tmp', 'usr/bin', 'usr/lib']) mkdirSync(join(src, d), { recursive: true });
  chmodSync(join(src, 'tmp'), 0o1777);
  writeFileSync(join(src, 'etc', 'marker'), 'boot-mount test\n');
  copyFileSync('/usr/bin/id', join(src, 'usr/bin/id-setuid'));
  chmodSync(join(src, 'usr/bin/id-setuid'), 0o4755);
  const home = join(dir, 'home');
  const c = gitroot(['commit', src, '--repo', join(home, 'repo.git'), '-m', 'boot test']);
  if (c.status !== 0) throw new Error(`commit failed: ${c.stderr}`);
  const sha = c.stdout.trim();
  writeFileSync(join(home, 'state.json'), JSON.stringify(good ? { ...emptyState(), good: sha } : emptyState()));
  const cmdline = join(dir, 'cmdline');
  writeFileSync(cmdline, 'console=ttyS0 boot=gitroot\n');
  return { dir, home, sha, cmdline };
}

/** Unmounts whatever a boot under `dir` left and stops its daemon (by pid) when the test ends. */
function cleanupBoot(t: { teardown(fn: () => unknown): void }, dir: string): void {
  t.teardown(async () => {
    let pid: number | undefined;
    try {
      pid = JSON.parse(readFileSync(join(dir, 'run', 'booted.json'), 'utf8')).daemonPid;
    } catch {
      /* no record */
    }
    for (const p of ['target', 'run/home', 'run/rw', 'run/lower']) {
      if (isMounted(join(dir, p))) spawnSync('umount', ['-l', join(dir, p)]);
    }
    if (pid !== undefined && !(await waitExit(pid, 5000))) process.kill(pid, 'SIGKILL');
  });
}

function daemonPids(dir: string): number[] {
  const out = spawnSync('pgrep', ['-f', `mount ${join(dir, 'run', 'lower')} `], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter(Boolean).map(Number);
}

t.test('boot: a writable root over the good revision, recorded in booted.json', async (t) => {
  const h = makeHome(t);
  cleanupBoot(t, h.dir);
  const target = join(h.dir, 'target');
  mkdirSync(target);
  const run = join(h.dir, 'run');
  const r = gitroot(['boot', '--dir', h.home, '--cmdline', h.cmdline, '--target', target, '--run-dir', run, '--json']);
  t.equal(r.status, 0, `boot succeeds: ${r.stderr}`);
  const rec = JSON.parse(r.stdout);
  t.match(rec, { revision: h.sha, kind: 'good', stateWritten: true, lower: join(run, 'lower'), home: join(run, 'home'), target });
  t.equal(readState(h.home).booted, h.sha, 'state.json records the booted revision');
  t.same(JSON.parse(readFileSync(join(run, 'booted.json'), 'utf8')), rec, 'booted.json holds the same record');
  t.match(r.stderr, /boot: serve: \d+ ms/, 'steps and their times are logged on stderr');

  t.ok(isMounted(target) && isMounted(join(run, 'lower')) && isMounted(join(run, 'rw')) && isMounted(join(run, 'home')), 'all four mounts are up');
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  t.match(mounts, new RegExp(`^gitroot ${target} overlay rw.*lowerdir=${join(run, 'lower')}`, 'm'), 'the target is an overlay on the git-fs mount');
  t.match(mounts, new RegExp(`^\\S+ ${join(run, 'lower')} fuse.gitfs ro`, 'm'), 'the lower layer is git-fs, read-only');

  t.equal(readFileSync(join(target, 'etc/marker'), 'utf8'), 'boot-mount test\n', 'files of the revision read through');
  writeFileSync(join(target, 'etc/new'), 'written');
  t.ok(existsSync(join(run, 'rw/upper/etc/new')), 'writes land in the tmpfs upper layer');
  t.equal(statSync(join(target, 'tmp')).mode & 0o7777, 0o1777, '/tmp is 1777');
  t.match(
    sh(`setpriv --reuid=65534 --regid=65534 --clear-groups ${join(target, 'usr/bin/id-setuid')}`),
    /euid=0\(root\)/,
    'a setuid binary runs setuid through the overlay',
  );
  t.ok(existsSync(join(run, 'home', 'repo.git')), 'the home is reachable under the run dir');

  const pid: number = rec.daemonPid;
  t.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0], '@gitroot', "the daemon's argv[0] is @gitroot");
  t.equal(readlinkSync(`/proc/${pid}/cwd`), h.home, "the daemon's cwd is the home (relative paths survive the root switch)");
  const adj = readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim();
  if (rec.oomScoreAdj === null) t.match(r.stderr, /oom_score_adj/, 'no CAP_SYS_RESOURCE here: the boot warns');
  else t.equal(adj, '-1000', 'the daemon is OOM-protected');
});

t.test('boot: git-revision= on the command line wins when the repository has it', async (t) => {
  const h = makeHome(t, false);
  cleanupBoot(t, h.dir);
  writeFileSync(h.cmdline, `quiet git-revision=${h.sha}\n`);
  mkdirSync(join(h.dir, 'target'));
  const r = gitroot(['boot', '--dir', h.home, '--cmdline', h.cmdline, '--target', join(h.dir, 'target'), '--run-dir', join(h.dir, 'run'), '--json']);
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { revision: h.sha, kind: 'cmdline' });
});

t.test('boot --no-persist leaves state.json alone', async (t) => {
  const h = makeHome(t);
  cleanupBoot(t, h.dir);
  mkdirSync(join(h.dir, 'target'));
  const before = readFileSync(join(h.home, 'state.json'), 'utf8');
  const r = gitroot([
    'boot',
    '--dir',
    h.home,
    '--cmdline',
    h.cmdline,
    '--target',
    join(h.dir, 'target'),
    '--run-dir',
    join(h.dir, 'run'),
    '--no-persist',
    '--json',
  ]);
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { revision: h.sha, kind: 'good', stateWritten: false });
  t.equal(readFileSync(join(h.home, 'state.json'), 'utf8'), before, 'state.json unchanged');
});

t.test('boot failures leave nothing mounted and no daemon', async (t) => {
  t.test('nothing bootable', async (t) => {
    const h = makeHome(t, false);
    cleanupBoot(t, h.dir);
    mkdirSync(join(h.dir, 'target'));
    const r = gitroot(['boot', '--dir', h.home, '--cmdline', h.cmdline, '--target', join(h.dir, 'target'), '--run-dir', join(h.dir, 'run')]);
    t.equal(r.status, 3, 'exit status of ENOREV');
    t.match(r.stderr, /^gitroot: boot step 'select': no bootable revision.*gitroot fetch/m);
    t.equal(readState(h.home).booted, null, 'nothing recorded as booted');
    t.notOk(isMounted(join(h.dir, 'run', 'lower')));
  });
  t.test('a later step fails (tmpfs refuses the size): the git-fs mount is undone', async (t) => {
    const h = makeHome(t);
    cleanupBoot(t, h.dir);
    mkdirSync(join(h.dir, 'target'));
    const r = gitroot([
      'boot',
      '--dir',
      h.home,
      '--cmdline',
      h.cmdline,
      '--target',
      join(h.dir, 'target'),
      '--run-dir',
      join(h.dir, 'run'),
      '--overlay-size',
      'lots',
    ]);
    t.equal(r.status, 5, 'exit status of EMOUNT');
    t.match(r.stderr, /^gitroot: boot step 'tmpfs': mount -t tmpfs/m);
    for (const p of ['target', 'run/lower', 'run/rw', 'run/home']) t.notOk(isMounted(join(h.dir, p)), `${p} is not mounted`);
    for (let i = 0; i < 100 && daemonPids(h.dir).length; i++) await new Promise((r) => setTimeout(r, 50));
    t.same(daemonPids(h.dir), [], 'the daemon is gone');
  });
  t.test('the target is already a mount point', async (t) => {
    const h = makeHome(t);
    cleanupBoot(t, h.dir);
    const target = join(h.dir, 'target');
    mkdirSync(target);
    sh(`mount -t tmpfs busy ${target}`);
    const r = gitroot(['boot', '--dir', h.home, '--cmdline', h.cmdline, '--target', target, '--run-dir', join(h.dir, 'run')]);
    t.equal(r.status, 5);
    t.match(r.stderr, /boot step 'check': target .* is already a mount point/);
    t.notOk(isMounted(join(h.dir, 'run', 'lower')), 'no git-fs mount was made');
  });
  t.test('the home has no repository', async (t) => {
    const dir = tempDir(t, 'boot-empty');
    mkdirSync(join(dir, 'target'));
    writeFileSync(join(dir, 'cmdline'), '');
    const r = gitroot(['boot', '--dir', dir, '--cmdline', join(dir, 'cmdline'), '--target', join(dir, 'target'), '--run-dir', join(dir, 'run')]);
    t.equal(r.status, 2);
    t.match(r.stderr, /has no repo\.git: check gitroot\.dir/);
  });
});

t.test('boot: gitroot.overlay-size= and gitroot.cache-mb= on the command line size the writable layer and the daemon', async (t) => {
  const h = makeHome(t);
  cleanupBoot(t, h.dir);
  mkdirSync(join(h.dir, 'target'));
  writeFileSync(h.cmdline, 'console=ttyS0 boot=gitroot gitroot.overlay-size=16m gitroot.cache-mb=8\n');
  const run = join(h.dir, 'run');
  const r = gitroot(['boot', '--dir', h.home, '--cmdline', h.cmdline, '--target', join(h.dir, 'target'), '--run-dir', run, '--json']);
  t.equal(r.status, 0, `boot succeeds: ${r.stderr}`);
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  t.match(mounts, new RegExp(`^gitroot-rw ${join(run, 'rw')} tmpfs \\S*size=16384k`, 'm'), 'the tmpfs is 16 MiB');
  const pid: number = JSON.parse(r.stdout).daemonPid;
  t.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '), /--cache-mb 8 /, 'the daemon got --cache-mb 8');
});

t.test('boot: a malformed gitroot.overlay-size= warns and boots with the default; an option smuggled in --overlay-size is refused', async (t) => {
  const h = makeHome(t);
  cleanupBoot(t, h.dir);
  mkdirSync(join(h.dir, 'target'));
  writeFileSync(h.cmdline, 'console=ttyS0 gitroot.overlay-size=1g,exec\n');
  const run = join(h.dir, 'run');
  const r = gitroot(['boot', '--dir', h.home, '--cmdline', h.cmdline, '--target', join(h.dir, 'target'), '--run-dir', run, '--json']);
  t.equal(r.status, 0, `the machine still boots: ${r.stderr}`);
  t.match(r.stderr, /warning: .*gitroot\.overlay-size needs a size like 512m.*booting with the default/, 'the bad value is named');
  const line =
    readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`gitroot-rw ${join(run, 'rw')} `)) ?? '';
  t.notMatch(line, /size=1048576k|exec/, 'the malformed value was not used');

  const h2 = makeHome(t);
  cleanupBoot(t, h2.dir);
  mkdirSync(join(h2.dir, 'target'));
  const r2 = gitroot([
    'boot',
    '--dir',
    h2.home,
    '--cmdline',
    h2.cmdline,
    '--target',
    join(h2.dir, 'target'),
    '--run-dir',
    join(h2.dir, 'run'),
    '--overlay-size',
    '1g,exec',
  ]);
  t.equal(r2.status, 2, 'usage error');
  t.match(r2.stderr, /^gitroot: boot step 'check': overlay size '1g,exec' is not a size/m);
  t.notOk(isMounted(join(h2.dir, 'run', 'lower')), 'nothing mounted');
});
