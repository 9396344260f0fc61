/**
 * git-fs end to end: trees recorded with `gitroot commit` and served by `gitroot mount`
 * (a real FUSE mount) must be exactly the source tree, entry by entry: type, mode with
 * setuid/setgid/sticky, owner, size, symlink target, device numbers, hardlinks, xattrs and
 * content. Setuid binaries must run setuid and device nodes must work through the mount.
 */
// needs: root fuse git debian
import t from 'tap';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildEdgeTree } from '../fixtures/edge-tree.js';
import { compareTrees } from './helpers/compare-trees.js';
import { randomReadCompare } from './helpers/random-reads.js';
import { tempDir } from './helpers/temp-dir.js';
import { gitroot, isMounted, mount, sh, SHARED, waitExit } from './helpers/cli.js';

t.test('/dev/fuse is usable (a missing one fails, never skips)', async (t) => {
  t.ok(existsSync('/dev/fuse'), '/dev/fuse exists');
});

t.test('edge-case tree: commit, mount, identical entry by entry', async (t) => {
  const dir = tempDir(t, 'edge');
  const src = join(dir, 'src');
  const info = await buildEdgeTree(src);
  const repo = join(dir, 'repo.git');
  const commit = gitroot(['commit', src, '--repo', repo, '-m', 'edge cases']);
  t.equal(commit.status, 0, `commit succeeds: ${commit.stderr}`);
  t.match(commit.stdout.trim(), /^[0-9a-f]{40}$/, 'prints the new commit SHA');

  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const m = mount(t, mnt, repo);
  t.equal(m.commit, commit.stdout.trim(), 'mounts the branch tip by default');

  const cmp = await compareTrees(src, mnt);
  t.same(cmp.differences, [], 'no differences');
  t.ok(cmp.entries >= info.expectedCounts.entries, `compared ${cmp.entries} entries`);
  t.notOk(readdirSync(mnt).includes('.gitroot.mtree'), 'the manifest is not visible in the served tree');

  const big = statSync(join(src, info.bigFile)).size;
  t.ok(big > 64 * 1024 * 1024, 'the big file is over 64 MiB');
  const rr = await randomReadCompare(join(src, info.bigFile), join(mnt, info.bigFile), { reads: 300, seed: 7, maxLen: 2 * 1024 * 1024 });
  t.equal(rr.mismatches, 0, `${rr.reads} random reads of the big file match`);

  const uid = sh(`setpriv --reuid=65534 --regid=65534 --clear-groups ${JSON.stringify(join(mnt, info.setuidProbe))}`);
  t.match(uid, /euid=0\(root\)/, 'the setuid binary runs with euid 0 for an unprivileged user');
  const gid = sh(`setpriv --reuid=65534 --regid=65534 --clear-groups ${JSON.stringify(join(mnt, info.setgidProbe))}`);
  t.match(gid, /egid=42\b/, 'the setgid binary runs with egid 42');

  // Device nodes work through the mount (a nodev mount would refuse to open them).
  sh(`echo written > ${JSON.stringify(join(mnt, info.charDevice))}`);
  t.equal(sh(`head -c 10 ${JSON.stringify(join(mnt, info.charDevice))} | wc -c`).trim(), '0', 'the (1,3) device reads like /dev/null');

  t.match(sh(`getcap ${JSON.stringify(join(mnt, info.capabilityFile))}`), /cap_net_raw[=+]ep/, 'file capability is served');
  t.throws(() => writeFileSync(join(mnt, 'new-file'), 'x'), { code: 'EROFS' }, 'the mount is read-only');

  const um = gitroot(['umount', mnt]);
  t.equal(um.status, 0, `umount succeeds: ${um.stderr}`);
  t.notOk(isMounted(mnt), 'no longer mounted');
  t.ok(await waitExit(m.pid), 'the serving process exits after umount');
});

t.test('Debian root filesystem: commit, mount, identical entry by entry', async (t) => {
  const dir = tempDir(t, 'debian');
  const src = join(dir, 'rootfs');
  sh(`bash ${SHARED}/fixtures/debian-rootfs.sh ${src} > /dev/null`);
  const repo = join(dir, 'repo.git');
  const c = gitroot(['commit', src, '--repo', repo, '-m', 'debian']);
  t.equal(c.status, 0, `commit succeeds: ${c.stderr}`);
  sh(`git -C ${repo} repack -adq`);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const m = mount(t, mnt, repo);
  const cmp = await compareTrees(src, mnt);
  t.same(cmp.differences, [], 'no differences');
  t.ok(cmp.entries > 5000, `compared ${cmp.entries} entries`);
  t.match(statSync(join(mnt, 'tmp')).mode & 0o7777, 0o1777, '/tmp is 1777');
  t.equal(statSync(join(mnt, 'usr/bin/su')).mode & 0o7777, 0o4755, 'su is setuid');
  t.equal(statSync(join(mnt, 'etc/shadow')).gid, 42, '/etc/shadow belongs to group shadow');
  t.match(
    sh(`setpriv --reuid=65534 --regid=65534 --clear-groups ${mnt}/usr/bin/passwd -S root 2>&1 || true`),
    /root/,
    'passwd (setuid root) can read /etc/shadow as nobody',
  );
  t.equal(gitroot(['umount', mnt]).status, 0, 'umount');
  t.ok(await waitExit(m.pid), 'daemon exits');
});

t.test('a repo made with plain git serves exactly what git archive gives', async (t) => {
  const dir = tempDir(t, 'plain');
  const wt = join(dir, 'wt');
  mkdirSync(join(wt, 'a/b/c'), { recursive: true });
  writeFileSync(join(wt, 'README'), 'plain git repo\n');
  writeFileSync(join(wt, 'a/run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(wt, 'a/run.sh'), 0o755);
  writeFileSync(join(wt, 'a/b/c/deep.txt'), 'deep\n'.repeat(1000));
  writeFileSync(join(wt, 'a/b/empty'), '');
  sh(`ln -s a/b/c/deep.txt ${wt}/link && ln -s /nowhere ${wt}/dangling`);
  sh(`git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm one`, wt);
  const ref = join(dir, 'ref');
  mkdirSync(ref);
  chmodSync(ref, 0o755);
  sh(`git -C ${wt} -c tar.umask=022 archive HEAD | tar -x -C ${ref}`);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const m = mount(t, mnt, join(wt, '.git'));
  const cmp = await compareTrees(ref, mnt);
  t.same(cmp.differences, [], 'identical to git archive (root-owned, git modes)');
  t.equal(statSync(join(mnt, 'README')).uid, 0, 'owned by root');
  t.equal(readFileSync(join(mnt, 'a/b/c/deep.txt'), 'utf8'), 'deep\n'.repeat(1000), 'content');
  t.equal(gitroot(['umount', mnt]).status, 0, 'umount');
  t.ok(await waitExit(m.pid), 'daemon exits');
});

t.test('--rev serves older commits, tags and branches', async (t) => {
  const dir = tempDir(t, 'revs');
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'version'), '1\n');
  const repo = join(dir, 'repo.git');
  const one = gitroot(['commit', src, '--repo', repo]).stdout.trim();
  writeFileSync(join(src, 'version'), '2\n');
  const two = gitroot(['commit', src, '--repo', repo]).stdout.trim();
  t.not(one, two, 'two commits');
  sh(`git -C ${repo} tag -a v1 -m v1 ${one} && git -C ${repo} branch old ${one}`);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  for (const [rev, want] of [
    [one, '1\n'],
    [one.slice(0, 10), '1\n'],
    ['v1', '1\n'],
    ['old', '1\n'],
    ['master', '2\n'],
    ['HEAD', '2\n'],
  ]) {
    const m = mount(t, mnt, repo, ['--rev', rev]);
    t.equal(readFileSync(join(mnt, 'version'), 'utf8'), want, `--rev ${rev}`);
    t.equal(gitroot(['umount', mnt]).status, 0);
    await waitExit(m.pid);
  }
});

t.test('--foreground serves until unmounted, then exits 0', async (t) => {
  const dir = tempDir(t, 'fg');
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'f'), 'foreground\n');
  const repo = join(dir, 'repo.git');
  t.equal(gitroot(['commit', src, '--repo', repo]).status, 0);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const { spawn } = await import('node:child_process');
  const { CLI } = await import('./helpers/cli.js');
  const child = spawn(process.execPath, [CLI, 'mount', mnt, '--repo', repo, '--foreground'], { stdio: 'ignore' });
  t.teardown(() => {
    if (child.exitCode === null) {
      sh(`umount -l ${mnt} || true`);
      child.kill('SIGKILL');
    }
  });
  for (let i = 0; i < 500 && !isMounted(mnt); i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(readFileSync(join(mnt, 'f'), 'utf8'), 'foreground\n', 'serves');
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.equal(gitroot(['umount', mnt]).status, 0, 'umount');
  t.equal(await exited, 0, 'the foreground process exits 0');
});

t.test('damaged objects give EIO for that file, never wrong bytes', async (t) => {
  const dir = tempDir(t, 'corrupt');
  const src = join(dir, 'src');
  mkdirSync(src);
  const victim = Buffer.alloc(300_000);
  for (let i = 0; i < victim.length; i++) victim[i] = (i * 7919) % 251;
  writeFileSync(join(src, 'victim.bin'), victim);
  writeFileSync(join(src, 'healthy.txt'), 'still fine\n');
  const repo = join(dir, 'repo.git');
  t.equal(gitroot(['commit', src, '--repo', repo]).status, 0);
  sh(`git -C ${repo} repack -adq`);
  const blob = sh(`git -C ${repo} rev-parse HEAD:victim.bin`).trim();
  const line = sh(`git -C ${repo} verify-pack -v ${repo}/objects/pack/*.idx | grep ^${blob}`).split(/\s+/);
  const [size, offset] = [Number(line[3]), Number(line[4])];
  const pack = sh(`ls ${repo}/objects/pack/*.pack`).trim();
  const bytes = readFileSync(pack);
  bytes[offset + Math.floor(size / 2)] ^= 0x40;
  writeFileSync(pack, bytes);

  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  mount(t, mnt, repo);
  t.equal(statSync(join(mnt, 'victim.bin')).size, victim.length, 'metadata is still served');
  t.throws(() => readFileSync(join(mnt, 'victim.bin')), { code: 'EIO' }, 'reading the damaged file fails with EIO');
  t.equal(readFileSync(join(mnt, 'healthy.txt'), 'utf8'), 'still fine\n', 'other files still read');
  t.equal(gitroot(['umount', mnt]).status, 0);
});

t.test('bad arguments: one-line errors, non-zero exits', async (t) => {
  const dir = tempDir(t, 'args');
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'f'), 'x');
  const repo = join(dir, 'repo.git');
  t.equal(gitroot(['commit', src, '--repo', repo]).status, 0);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);

  const oneLine = (r: { stderr: string }) => r.stderr.trim().split('\n').length === 1 && !/\n\s+at /.test(r.stderr);
  const cases: Array<[string, string[], number, RegExp]> = [
    ['missing repo', ['mount', mnt, '--repo', join(dir, 'nope.git')], 3, /not a git repository/],
    ['unknown revision', ['mount', mnt, '--repo', repo, '--rev', 'no-such-branch'], 3, /unknown revision 'no-such-branch'/],
    ['unknown full SHA', ['mount', mnt, '--repo', repo, '--rev', 'f'.repeat(40)], 3, /f{40}/],
    ['missing mountpoint', ['mount', join(dir, 'absent'), '--repo', repo], 2, /does not exist.*mkdir/],
    ['mountpoint is a file', ['mount', join(src, 'f'), '--repo', repo], 2, /not a directory/],
    ['no --repo', ['mount', mnt], 2, /--repo/],
    ['unknown option', ['mount', mnt, '--repo', repo, '--bogus'], 2, /bogus/],
    ['unknown command', ['frobnicate'], 2, /frobnicate/],
    ['umount of a plain directory', ['umount', mnt], 2, /not a gitroot mount/],
    ['commit of a missing directory', ['commit', join(dir, 'absent'), '--repo', repo], 4, /absent/],
    ['commit into a file', ['commit', src, '--repo', join(src, 'f')], 3, /not a git repository|not a directory/],
  ];
  for (const [name, args, code, re] of cases) {
    const r = gitroot(args);
    t.equal(r.status, code, `${name}: exit ${code} (${r.stderr.trim()})`);
    t.match(r.stderr, re, `${name}: names the cause`);
    t.ok(oneLine(r), `${name}: one line, no stack trace`);
  }

  const m = mount(t, mnt, repo);
  const again = gitroot(['mount', mnt, '--repo', repo]);
  t.equal(again.status, 5, 'mounting on a mountpoint in use fails');
  t.match(again.stderr, /already in use.*gitroot umount/, 'names the fix');
  t.ok(oneLine(again), 'one line');
  t.equal(gitroot(['umount', mnt]).status, 0);
  await waitExit(m.pid);
});

t.test('--help everywhere', async (t) => {
  for (const args of [['--help'], ['commit', '--help'], ['mount', '--help'], ['umount', '--help']]) {
    const r = gitroot(args);
    t.equal(r.status, 0, `${args.join(' ')} exits 0`);
    t.match(r.stdout, /Usage: gitroot/, `${args.join(' ')} prints usage`);
  }
});
