/**
 * `gitroot export REV --format tar` (lib/export/export-tar.ts) through the real CLI:
 * - round trips: export then `commit --from-tar` gives the same tree SHA, and `tar -x` of
 *   the export as root then `commit DIR` gives it too (Debian minbase, the edge-case tree,
 *   a tree with large owners, device numbers, a FIFO and long names);
 * - `tar -tv --numeric-owner` and `bsdtar -tv` of the export list exactly what a real
 *   `gitroot mount` of the revision serves (mode strings, owners, sizes, device numbers,
 *   symlink targets, hardlinks), read there with lstat;
 * - the output is deterministic, every member has the commit's committer time, and -o
 *   writes complete archives or nothing; errors are one line with the documented exit codes.
 */
// needs: root fuse git debian
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildEdgeTree } from '../fixtures/edge-tree.js';
import { CLI, gitroot, isMounted, mount, sh, waitExit } from './helpers/cli.js';
import { buildTarTree, debianTree, scratch, treeOf } from './helpers/tar-fixtures.js';

const X = `--xattrs --xattrs-include='*' --numeric-owner`;

function commitDir(dir: string, repo: string): string {
  const r = gitroot(['commit', dir, '--repo', repo, '--json'], { env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' } });
  if (r.status !== 0) throw new Error(`commit failed: ${r.stderr}`);
  return JSON.parse(r.stdout).tree as string;
}

function exportTo(repo: string, file: string, rev = 'master'): { commit: string; tree: string; entries: number; bytes: number; mtime: number } {
  const r = gitroot(['export', rev, '--repo', repo, '-o', file, '--json']);
  if (r.status !== 0) throw new Error(`export failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function fromTar(file: string, repo: string): string {
  const r = gitroot(['commit', '--from-tar', file, '--repo', repo, '--json']);
  if (r.status !== 0) throw new Error(`commit --from-tar failed: ${r.stderr}`);
  return JSON.parse(r.stdout).tree as string;
}

/** ls -l style mode string. */
function modeString(mode: number): string {
  const type = ({ 0o100000: '-', 0o040000: 'd', 0o120000: 'l', 0o020000: 'c', 0o060000: 'b', 0o010000: 'p' } as Record<number, string>)[mode & 0o170000] ?? '?';
  const bit = (m: number, c: string) => (mode & m ? c : '-');
  const special = (x: boolean, s: boolean, on: string, off: string) => (s ? (x ? on : off) : x ? 'x' : '-');
  return (
    type +
    bit(0o400, 'r') +
    bit(0o200, 'w') +
    special(!!(mode & 0o100), !!(mode & 0o4000), 's', 'S') +
    bit(0o40, 'r') +
    bit(0o20, 'w') +
    special(!!(mode & 0o10), !!(mode & 0o2000), 's', 'S') +
    bit(0o4, 'r') +
    bit(0o2, 'w') +
    special(!!(mode & 0o1), !!(mode & 0o1000), 't', 'T')
  );
}

/**
 * What a listing of the served tree must say, one line per entry (mode owner size name
 * [-> target | link to first name]), walking the mount depth first in byte order of names
 * (the order tar archives a directory in when told to sort): the second and later names of
 * an inode are hardlinks to the first.
 */
function servedListing(mnt: string): string[] {
  const out: string[] = [];
  const first = new Map<bigint, string>();
  const visit = (rel: string): void => {
    const abs = rel === '' ? mnt : join(mnt, rel);
    const st = lstatSync(abs, { bigint: true });
    const mode = Number(st.mode);
    const name = rel === '' ? './' : `./${rel}${(mode & 0o170000) === 0o040000 ? '/' : ''}`;
    let ms = modeString(mode);
    let size = '0';
    let tail = '';
    if (ms[0] === '-') {
      const f = first.get(st.ino);
      if (st.nlink > 1n && f !== undefined) {
        ms = 'h' + ms.slice(1);
        tail = ` link to ${f}`;
      } else {
        size = String(st.size);
        if (st.nlink > 1n) first.set(st.ino, name);
      }
    } else if (ms[0] === 'c' || ms[0] === 'b') {
      const r = st.rdev;
      size = `${((r >> 8n) & 0xfffn) | ((r >> 32n) & 0xfffff000n)},${(r & 0xffn) | ((r >> 12n) & 0xffffff00n)}`;
    } else if (ms[0] === 'l') {
      tail = ` -> ${readlinkSync(abs, 'utf8')}`;
    }
    out.push(`${ms} ${st.uid} ${st.gid} ${size} ${name}${tail}`);
    if (ms[0] === 'd') {
      const names = readdirSync(abs, { encoding: 'buffer' })
        .sort(Buffer.compare)
        .map((b) => b.toString('utf8'));
      for (const n of names) visit(rel === '' ? n : `${rel}/${n}`);
    }
  };
  visit('');
  return out;
}

/** `tar -tv --numeric-owner` lines in the servedListing form. */
function gnuListing(file: string): string[] {
  return sh(`LC_ALL=C.UTF-8 tar -tv --numeric-owner -f ${file}`)
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const m = /^(\S{10}) (\d+)\/(\d+) +(\S+) \d{4}-\d\d-\d\d \d\d:\d\d (.*)$/.exec(l);
      if (!m) throw new Error(`unexpected tar -tv line: ${l}`);
      return `${m[1]} ${m[2]} ${m[3]} ${m[4]} ${m[5]}`;
    });
}

/** `bsdtar -tv --numeric-owner` lines in the servedListing form. */
function bsdListing(file: string): string[] {
  return sh(`LC_ALL=C.UTF-8 bsdtar -tv --numeric-owner -f ${file}`)
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const m = /^(\S{10}) +\d+ (\d+) +(\d+) +(\S+) \w{3} +\d+ +\S+ (.*)$/.exec(l);
      if (!m) throw new Error(`unexpected bsdtar -tv line: ${l}`);
      return `${m[1]} ${m[2]} ${m[3]} ${m[4]} ${m[5]}`;
    });
}

t.test('round trips: export -> commit --from-tar, and export -> tar -x as root -> commit DIR', async (t) => {
  const dir = scratch(t, 'export-rt');
  const trees: Array<[string, string]> = [];
  trees.push(['Debian minbase', debianTree(join(dir, 'debian'))]);
  const edge = join(dir, 'edge');
  await buildEdgeTree(edge, { bigFileBytes: 17 * 1024 * 1024 });
  trees.push(['edge-case tree', edge]);
  const small = join(dir, 'small');
  buildTarTree(small);
  trees.push(['large owners, devices, FIFO, long names', small]);
  for (const [i, [label, src]] of trees.entries()) {
    const repo = join(dir, `src-${i}.git`);
    const want = commitDir(src, repo);
    const out = join(dir, `export-${i}.tar`);
    const res = exportTo(repo, out);
    t.equal(res.tree, want, `${label}: the export reports the revision's tree`);
    t.equal(fromTar(out, join(dir, `back-${i}.git`)), want, `${label}: commit --from-tar of the export gives the same tree`);
    const x = join(dir, `x-${i}`);
    mkdirSync(x);
    sh(`tar ${X} -xpf ${out} -C ${x}`);
    t.equal(commitDir(x, join(dir, `x-${i}.git`)), want, `${label}: tar -x of the export, then commit DIR, gives the same tree`);
  }

  t.test('standard output into a pipe gives the same bytes as -o', async (t) => {
    const repo = join(dir, 'src-1.git');
    const piped = join(dir, 'piped.tar');
    sh(`set -o pipefail; node ${CLI} export master --repo ${repo} | cat > ${piped}`);
    t.ok(readFileSync(piped).equals(readFileSync(join(dir, 'export-1.tar'))), 'identical');
    const tree = JSON.parse(
      sh(`set -o pipefail; node ${CLI} export master --repo ${repo} | node ${CLI} commit --from-tar - --repo ${dir}/piped.git --json`),
    ).tree;
    t.equal(tree, treeOf(repo, 'master'), 'export | commit --from-tar -');
  });
});

t.test('listings of the export match what gitroot mount serves', async (t) => {
  const dir = scratch(t, 'export-mount');
  const small = join(dir, 'small');
  buildTarTree(small);
  const sources: Array<[string, string]> = [
    ['Debian minbase', debianTree(join(dir, 'debian'))],
    ['large owners, devices, FIFO', small],
  ];
  for (const [i, [label, src]] of sources.entries()) {
    const repo = join(dir, `repo-${i}.git`);
    commitDir(src, repo);
    const out = join(dir, `export-${i}.tar`);
    exportTo(repo, out);
    const mnt = join(dir, `mnt-${i}`);
    mkdirSync(mnt);
    const m = mount(t, mnt, repo);
    const served = servedListing(mnt);
    t.equal(gitroot(['umount', mnt]).status, 0, `${label}: umount`);
    t.ok(await waitExit(m.pid), `${label}: the mount daemon exits`);
    t.notOk(isMounted(mnt));
    t.ok(served.some((l) => /^-rws/.test(l)) || i === 1, `${label}: the served tree has setuid files`);
    t.ok(
      served.some((l) => /^c/.test(l)),
      `${label}: and device nodes`,
    );
    t.ok(
      served.some((l) => / link to /.test(l)),
      `${label}: and hardlinks`,
    );
    t.same(gnuListing(out), served, `${label}: tar -tv lists what the mount serves`);
    t.same(bsdListing(out), served, `${label}: bsdtar -tv lists what the mount serves`);
  }
});

t.test('deterministic, with the commit time on every member', async (t) => {
  const dir = scratch(t, 'export-det');
  const src = join(dir, 'src');
  buildTarTree(src);
  const repo = join(dir, 'repo.git');
  commitDir(src, repo);
  const a = exportTo(repo, join(dir, 'a.tar'));
  const b = exportTo(repo, join(dir, 'b.tar'));
  t.ok(readFileSync(join(dir, 'a.tar')).equals(readFileSync(join(dir, 'b.tar'))), 'two exports are byte for byte the same');
  t.equal(a.mtime, 1700000000, 'mtime is the committer time (SOURCE_DATE_EPOCH here)');
  t.equal(b.bytes % 10240, 0, 'the archive is a whole number of 10240-byte records');
  t.equal(statSync(join(dir, 'a.tar')).size, a.bytes);
  const times = new Set(
    sh(`TZ=UTC tar -tv --full-time -f ${dir}/a.tar`)
      .split('\n')
      .filter((l) => l)
      .map((l) => / (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) /.exec(l)![1]),
  );
  t.same([...times], ['2023-11-14 22:13:20'], 'every member carries it');
  t.match(
    readFileSync(join(dir, 'a.tar')).toString('latin1'),
    // eslint-disable-next-line no-control-regex -- the raw bytes of a capability xattr are the point
    /SCHILY\.xattr\.security\.capability=\x01\x00\x00\x02/,
    'xattrs as SCHILY.xattr with raw values',
  );
});

t.test('errors: one line, documented exit codes, and -o leaves nothing half-written', async (t) => {
  const dir = scratch(t, 'export-err');
  const src = join(dir, 'src');
  mkdirSync(src);
  sh(`head -c 300000 /dev/urandom > ${src}/victim.bin && echo fine > ${src}/ok.txt`);
  const repo = join(dir, 'repo.git');
  commitDir(src, repo);
  const oneLine = (r: { stderr: string }) => r.stderr.trim().split('\n').length === 1;
  const out = join(dir, 'out', 'x.tar');
  mkdirSync(join(dir, 'out'));

  const cases: Array<[string, string[], number, RegExp]> = [
    ['unknown revision', ['export', 'nope', '--repo', repo, '-o', out], 3, /unknown revision 'nope'/],
    ['not a repository', ['export', 'master', '--repo', join(dir, 'none.git'), '-o', out], 3, /not a git repository/],
    ['--json without -o', ['export', 'master', '--repo', repo, '--json'], 2, /--json needs -o FILE: without it, standard output carries the archive/],
    ['unknown format', ['export', 'master', '--repo', repo, '--format', 'zip', '-o', out], 2, /unknown archive format "zip": only --format tar is supported/],
    [
      'output directory missing',
      ['export', 'master', '--repo', repo, '-o', join(dir, 'no/such/dir.tar')],
      5,
      /cannot create .*dir\.tar \(ENOENT\): give a path in a writable directory/,
    ],
  ];
  for (const [what, args, code, re] of cases) {
    const r = gitroot(args);
    t.equal(r.status, code, `${what}: exit ${code}`);
    t.ok(oneLine(r), `${what}: one line`);
    t.match(r.stderr, new RegExp(`^gitroot: .*${re.source}`), what);
  }
  t.same(readdirSync(join(dir, 'out')), [], 'nothing left in the output directory');

  t.test('a damaged object mid-export: exit 4, no archive and no temp file', async (t) => {
    sh(`git -C ${repo} repack -adq`);
    const blob = sh(`git -C ${repo} rev-parse HEAD:victim.bin`).trim();
    const line = sh(`git -C ${repo} verify-pack -v ${repo}/objects/pack/*.idx | grep ^${blob}`).split(/\s+/);
    const pack = sh(`ls ${repo}/objects/pack/*.pack`).trim();
    sh(`printf '\\x55\\xaa' | dd of=${pack} bs=1 seek=${Number(line[4]) + Math.floor(Number(line[3]) / 2)} conv=notrunc status=none`);
    const r = gitroot(['export', 'master', '--repo', repo, '-o', out]);
    t.equal(r.status, 4, `exit 4: ${r.stderr.trim()}`);
    t.ok(oneLine(r));
    t.match(r.stderr, /^gitroot: object [0-9a-f]{40} .* is corrupt/);
    t.same(readdirSync(join(dir, 'out')), [], 'neither x.tar nor its temp file');
  });

  t.test('the reader of standard output goes away: one line, exit 5', async (t) => {
    const big = join(dir, 'big');
    mkdirSync(big);
    sh(`head -c 20000000 /dev/urandom > ${big}/f`);
    const r2 = join(dir, 'big.git');
    commitDir(big, r2);
    const r = spawnSync('bash', ['-c', `node ${CLI} export master --repo ${r2} | head -c 1000 > /dev/null; echo "status=\${PIPESTATUS[0]}"`], {
      encoding: 'utf8',
    });
    t.match(r.stdout, /status=5/);
    t.match(r.stderr, /^gitroot: cannot write the archive to standard output \(EPIPE\): /);
    t.equal(r.stderr.trim().split('\n').length, 1);
  });
});
