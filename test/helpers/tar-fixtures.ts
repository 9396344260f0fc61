/**
 * What the tar tests share: scratch directories that are cleaned up safely (anything still
 * mounted below them is unmounted first, and removal never crosses into another
 * filesystem), a small tree holding every kind of entry a tar can carry, the real Debian
 * fixture, and helpers that read a tree SHA or the refs of a repository with native git.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, symlinkSync, linkSync, chmodSync, lchownSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SHARED, sh } from './cli.js';

/** Mount points at or below `dir`, deepest first. */
export function mountsBelow(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(dir + '/')))
    .sort((a, b) => b.length - a.length);
}

/**
 * A fresh directory under the system temp dir, removed in teardown: mounts below it are
 * unmounted (umount -R, checked again in /proc), and removal stays on its filesystem.
 */
export function scratch(t: { teardown(fn: () => void): void }, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `gitroot-${name}-`));
  t.teardown(() => {
    for (const m of mountsBelow(dir)) spawnSync('umount', ['-R', m]);
    const left = mountsBelow(dir);
    if (left.length > 0) throw new Error(`still mounted below ${dir}: ${left.join(', ')}; not removing it`);
    spawnSync('rm', ['-rf', '--one-file-system', dir]);
  });
  return dir;
}

/** The real Debian bookworm minbase tree (cached by the shared fixture) at `dir`. */
export function debianTree(dir: string): string {
  sh(`bash ${SHARED}/fixtures/debian-rootfs.sh ${dir} > /dev/null`);
  return dir;
}

/** `git rev-parse REV^{tree}`. */
export function treeOf(repo: string, rev = 'HEAD'): string {
  return execFileSync('git', [`--git-dir=${repo}`, 'rev-parse', `${rev}^{tree}`], { encoding: 'utf8' }).trim();
}

/** Every ref of `repo` with its value (empty when there is no repository). */
export function refsOf(repo: string): string {
  const r = spawnSync('git', [`--git-dir=${repo}`, 'for-each-ref', '--format=%(refname) %(objectname)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : '';
}

/** security.capability for cap_net_raw=ep (what Debian's ping carries). */
export const CAP_NET_RAW = Buffer.from('0100000200200000000000000000000000000000', 'hex');

/**
 * A small tree with every kind of entry and metadata a tar carries (needs root): setuid,
 * setgid and sticky modes, owners (one above 2^21, which ustar's octal fields cannot hold),
 * an empty directory, devices with large numbers, a FIFO, a hardlink pair, symlinks (one
 * with a 300-byte target), a 250-byte path, binary xattrs (bytes above 0x7f) and a file
 * capability, and a sparse file with more than four holes.
 */
export function buildTarTree(root: string): void {
  mkdirSync(root);
  const file = (rel: string, content: string | Buffer, mode = 0o644, uid = 0, gid = 0): void => {
    const p = join(root, rel);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, content);
    chownSync(p, uid, gid);
    chmodSync(p, mode);
  };
  file('bin/su', 'setuid\n', 0o4755);
  file('bin/sgid', 'setgid\n', 0o2755, 0, 42);
  file('bin/ping', 'ping\n', 0o755);
  file('etc/shadow', 'root:*:1::::::\n', 0o640, 0, 42);
  file('home/big-uid', 'owner above 2^21\n', 0o600, 3000000, 3000001);
  file('hard/a', 'two names\n', 0o640, 1000, 1000);
  linkSync(join(root, 'hard/a'), join(root, 'hard/b'));
  const deep = `${'long-directory-name/'.repeat(10)}file-at-the-end.txt`; // 219 bytes
  file(deep, 'deep\n');
  file(`${'x'.repeat(120)}`, 'a 120-byte name\n');
  file('names/café ü', 'utf-8 name\n');
  mkdirSync(join(root, 'tmp'));
  chmodSync(join(root, 'tmp'), 0o1777);
  mkdirSync(join(root, 'empty/inner'), { recursive: true });
  chownSync(join(root, 'empty/inner'), 1000, 100);
  mkdirSync(join(root, 'dev'));
  sh(`mknod -m 0666 ${root}/dev/null c 1 3 && mknod -m 0600 ${root}/dev/big b 259 1048575 && mkfifo -m 0620 ${root}/dev/fifo`);
  symlinkSync('../bin/su', join(root, 'bin/su-link'));
  symlinkSync(`/${'t'.repeat(299)}`, join(root, 'bin/long-target'));
  lchownSync(join(root, 'bin/su-link'), 1000, 1000);
  sh(`setfattr -n user.bin -v 0x00ff80fe7f ${root}/etc/shadow`);
  sh(`setfattr -n user.text -v hello ${root}/empty`);
  sh(`setfattr -n security.capability -v 0x${CAP_NET_RAW.toString('hex')} ${root}/bin/ping`);
  // Sparse: data at six offsets of a 12 MiB file (GNU's old format then needs an extension block).
  const sparse = join(root, 'var/sparse.img');
  mkdirSync(join(sparse, '..'), { recursive: true });
  sh(`truncate -s 12M ${sparse} && for i in 0 2 4 6 8 10; do printf 'segment %s' $i | dd of=${sparse} bs=1M seek=$i conv=notrunc status=none; done`);
}
