/**
 * The pure part of a scan: file types, git modes, device numbers, name checks, which
 * directories git creates, hardlink grouping, and exactly what goes into the manifest.
 */
// needs: none
import t from 'tap';
import { SourceTreeError } from '../lib/errors/errors.js';
import { gitDefaultMode, type EntryType, type ManifestEntry } from '../lib/manifest/mtree.js';
import {
  checkName,
  dirsWithContent,
  fileTypeOf,
  gitModeForFile,
  planHardlinks,
  planManifestEntry,
  planScan,
  splitDev,
  type EntryFacts,
  type NodeFacts,
} from '../lib/commit/scan-plan.js';

const IFMT: Record<string, number> = { file: 0o100000, dir: 0o040000, link: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000, socket: 0o140000 };

t.test('fileTypeOf maps every S_IFMT value', async (t) => {
  for (const [type, bits] of Object.entries(IFMT)) {
    for (const perm of [0, 0o644, 0o7777]) t.equal(fileTypeOf(bits | perm), type);
  }
  for (const bits of [0, 0o030000, 0o050000, 0o070000, 0o110000, 0o130000, 0o150000, 0o160000, 0o170000]) {
    t.equal(fileTypeOf(bits | 0o644), null, `0${bits.toString(8)} is no Linux type`);
  }
});

t.test('gitModeForFile: 100755 exactly when some exec bit is set, for all 4096 modes', async (t) => {
  let exec = 0;
  for (let perm = 0; perm < 0o10000; perm++) {
    const want = perm & 0o100 || perm & 0o010 || perm & 0o001 ? 0o100755 : 0o100644;
    if (gitModeForFile(perm) !== want) t.fail(`mode ${perm.toString(8)}`);
    if (want === 0o100755) exec++;
  }
  t.equal(exec, 4096 - 512, 'all but the 512 modes without any x bit');
});

/** glibc's makedev, the inverse of splitDev. */
function makedev(major: number, minor: number): bigint {
  const M = BigInt(major);
  const m = BigInt(minor);
  return ((M & 0xfffn) << 8n) | ((M & ~0xfffn) << 32n) | (m & 0xffn) | ((m & ~0xffn) << 12n);
}

t.test('splitDev decodes glibc dev_t numbers', async (t) => {
  t.same(splitDev(0x103n), { major: 1, minor: 3 }, '/dev/null');
  t.same(splitDev(0x700n), { major: 7, minor: 0 }, '/dev/loop0');
  t.same(splitDev(0x10010300n), { major: 259, minor: 65536 }, 'nvme-like: major 259, minor 65536');
  for (const major of [0, 1, 8, 255, 256, 4095, 4096, 65535, 0xffffffff]) {
    for (const minor of [0, 1, 255, 256, 65535, 1048575, 0xffffffff]) {
      t.same(splitDev(makedev(major, minor)), { major, minor }, `${major},${minor}`);
    }
  }
});

t.test('checkName accepts ordinary and awkward UTF-8 names', async (t) => {
  for (const name of ['a', 'with space', 'new\nline', 'café', '日本', '.gitignore', '.gitx', '.GIT', 'git', '.gitroot.mtree.bak', '..a', '\\']) {
    t.equal(checkName(Buffer.from(name), ''), name);
    t.equal(checkName(Buffer.from(name), 'sub/dir'), name);
  }
  t.equal(checkName(Buffer.from('.gitroot.mtree'), 'etc'), '.gitroot.mtree', 'only the top-level manifest name is reserved');
});

t.test('checkName rejects .git, the top-level manifest name and non-UTF-8 names', async (t) => {
  const cases: Array<[Buffer, string, RegExp, string]> = [
    [Buffer.from('.git'), '', /^\.\/\.git is a git directory/, '.git'],
    [Buffer.from('.git'), 'srv/my repo', /^\.\/srv\/my\\040repo\/\.git is a git directory/, 'srv/my repo/.git'],
    [Buffer.from('.gitroot.mtree'), '', /^\.\/\.gitroot\.mtree exists in the source tree/, '.gitroot.mtree'],
    [Buffer.from([0x66, 0xff]), '', /^file name \.\/f\\377 is not valid UTF-8: rename it/, './f\\377'],
    [Buffer.from([0xc3, 0x28]), 'usr/lib', /^file name \.\/usr\/lib\/\\303\(/, './usr/lib/\\303('],
    [Buffer.from([0xed, 0xa0, 0x80]), '', /not valid UTF-8/, './\\355\\240\\200'],
  ];
  for (const [name, parent, msg, path] of cases) {
    t.throws(() => checkName(name, parent), SourceTreeError);
    t.throws(() => checkName(name, parent), { code: 'ESOURCE', message: msg, data: { path } });
  }
});

t.test('dirsWithContent: the root and every ancestor of a git path', async (t) => {
  t.same([...dirsWithContent([])], ['']);
  t.same([...dirsWithContent(['a/b/c/file', 'a/x', 'top', 'd/e/link'])].sort(), ['', 'a', 'a/b', 'a/b/c', 'd', 'd/e']);
});

t.test('planHardlinks groups by key, drops singletons, numbers groups in path order', async (t) => {
  const out = planHardlinks([
    { path: 'z/one', key: '1:10' },
    { path: 'b', key: '1:20' },
    { path: 'a', key: '1:20' },
    { path: 'single', key: '1:30' },
    { path: 'z/two', key: '1:10' },
    { path: 'c', key: '1:20' },
    { path: 'other-dev', key: '2:10' },
  ]);
  t.same(Object.fromEntries(out), {
    a: { inode: 1, nlink: 3 },
    b: { inode: 1, nlink: 3 },
    c: { inode: 1, nlink: 3 },
    'z/one': { inode: 2, nlink: 2 },
    'z/two': { inode: 2, nlink: 2 },
  });
});

/** The rule, written independently of the code: what the manifest line must hold. */
function expectedEntry(f: EntryFacts): ManifestEntry | null {
  const e: ManifestEntry = { path: f.path, type: f.type };
  const always = !f.gitStored;
  if (always || f.perm !== gitDefaultMode(f.type, f.gitMode)) e.mode = f.perm;
  if (always || f.uid !== 0) e.uid = f.uid;
  if (always || f.gid !== 0) e.gid = f.gid;
  if (f.type === 'char' || f.type === 'block') e.rdev = f.rdev!;
  if (f.hardlink) {
    e.inode = f.hardlink.inode;
    e.nlink = f.hardlink.nlink;
  }
  if (f.xattrs && f.xattrs.size > 0) e.xattrs = f.xattrs;
  const onlyType = Object.keys(e).length === 2;
  return always || !onlyType ? e : null;
}

t.test('planManifestEntry: every type x all 4096 modes x owners x stored-or-not', async (t) => {
  const owners: Array<[number, number]> = [
    [0, 0],
    [1000, 0],
    [0, 65534],
    [1000, 1000],
  ];
  const types: Array<[EntryType, boolean]> = [
    ['file', true],
    ['link', true],
    ['dir', true],
    ['dir', false],
    ['char', false],
    ['block', false],
    ['fifo', false],
  ];
  let checked = 0;
  let mismatches = 0;
  for (const [type, gitStored] of types) {
    for (let perm = 0; perm < 0o10000; perm++) {
      for (const [uid, gid] of owners) {
        const f: EntryFacts = { path: 'p', type, perm, uid, gid, gitStored };
        if (type === 'file') f.gitMode = gitModeForFile(perm);
        if (type === 'link') f.gitMode = 0o120000;
        if (type === 'char' || type === 'block') f.rdev = { major: 1, minor: 3 };
        const got = planManifestEntry(f);
        checked++;
        if (JSON.stringify(got) !== JSON.stringify(expectedEntry(f))) {
          if (mismatches++ < 5) t.fail(`${type} stored=${gitStored} mode=${perm.toString(8)} ${uid}:${gid}`, { got, want: expectedEntry(f) });
        }
      }
    }
  }
  t.equal(mismatches, 0, `${checked} cases agree with the rule`);
});

t.test('planManifestEntry: the cases that matter, spelled out', async (t) => {
  const file = (perm: number, extra: Partial<EntryFacts> = {}): EntryFacts => ({
    path: 'f',
    type: 'file',
    perm,
    uid: 0,
    gid: 0,
    gitStored: true,
    gitMode: gitModeForFile(perm),
    ...extra,
  });
  t.equal(planManifestEntry(file(0o644)), null, '0644 root file: nothing to say');
  t.equal(planManifestEntry(file(0o755)), null, '0755 root file: nothing to say');
  t.same(planManifestEntry(file(0o4755)), { path: 'f', type: 'file', mode: 0o4755 }, 'setuid');
  t.same(planManifestEntry(file(0o2755)), { path: 'f', type: 'file', mode: 0o2755 }, 'setgid');
  t.same(planManifestEntry(file(0o600)), { path: 'f', type: 'file', mode: 0o600 });
  t.same(planManifestEntry(file(0o640, { gid: 42 })), { path: 'f', type: 'file', mode: 0o640, gid: 42 }, 'like /etc/shadow');
  t.same(planManifestEntry(file(0)), { path: 'f', type: 'file', mode: 0 }, '0000');
  t.same(planManifestEntry(file(0o700)), { path: 'f', type: 'file', mode: 0o700 }, 'exec but not 0755');
  t.same(planManifestEntry(file(0o644, { uid: 1000 })), { path: 'f', type: 'file', uid: 1000 });
  t.same(planManifestEntry(file(0o644, { hardlink: { inode: 2, nlink: 3 } })), { path: 'f', type: 'file', inode: 2, nlink: 3 }, 'hardlink alone is enough');
  const caps = new Map([['security.capability', Buffer.from('01', 'hex')]]);
  t.same(planManifestEntry(file(0o755, { xattrs: caps })), { path: 'f', type: 'file', xattrs: caps }, 'xattr alone is enough');
  t.equal(planManifestEntry(file(0o644, { xattrs: new Map() })), null, 'empty xattr map is nothing');
  const dir = (perm: number, gitStored: boolean): EntryFacts => ({ path: 'd', type: 'dir', perm, uid: 0, gid: 0, gitStored });
  t.equal(planManifestEntry(dir(0o755, true)), null, 'ordinary directory with files');
  t.same(planManifestEntry(dir(0o1777, true)), { path: 'd', type: 'dir', mode: 0o1777 }, 'sticky dir with files');
  t.same(planManifestEntry(dir(0o755, false)), { path: 'd', type: 'dir', mode: 0o755, uid: 0, gid: 0 }, 'empty dir: always full');
  t.same(planManifestEntry(dir(0o1777, false)), { path: 'd', type: 'dir', mode: 0o1777, uid: 0, gid: 0 }, 'empty /tmp');
  t.equal(planManifestEntry({ path: 'l', type: 'link', perm: 0o777, uid: 0, gid: 0, gitStored: true, gitMode: 0o120000 }), null, 'root symlink');
  t.same(
    planManifestEntry({ path: 'l', type: 'link', perm: 0o777, uid: 1000, gid: 1000, gitStored: true, gitMode: 0o120000 }),
    { path: 'l', type: 'link', uid: 1000, gid: 1000 },
    'symlink owner (lchown)',
  );
  t.same(planManifestEntry({ path: 'n', type: 'char', perm: 0o666, uid: 0, gid: 0, gitStored: false, rdev: { major: 1, minor: 3 } }), {
    path: 'n',
    type: 'char',
    mode: 0o666,
    uid: 0,
    gid: 0,
    rdev: { major: 1, minor: 3 },
  });
  t.same(planManifestEntry({ path: 'p', type: 'fifo', perm: 0o600, uid: 0, gid: 0, gitStored: false }), {
    path: 'p',
    type: 'fifo',
    mode: 0o600,
    uid: 0,
    gid: 0,
  });
  t.equal(planManifestEntry({ path: '', type: 'dir', perm: 0o755, uid: 0, gid: 0, gitStored: true }), null, 'default root');
  t.same(planManifestEntry({ path: '', type: 'dir', perm: 0o700, uid: 0, gid: 0, gitStored: true }), { path: '', type: 'dir', mode: 0o700 }, 'root 0700');
});

function node(path: string, type: keyof typeof IFMT, perm: number, extra: Partial<NodeFacts> = {}): NodeFacts {
  return {
    path,
    source: `/src/${path}`,
    mode: IFMT[type]! | perm,
    uid: 0,
    gid: 0,
    rdev: 0n,
    dev: 1n,
    ino: BigInt(path.length + 1000),
    nlink: 1,
    size: 0,
    ...extra,
  };
}

t.test('planScan: files, symlinks, manifest and warnings from lstat facts', async (t) => {
  const nodes: NodeFacts[] = [
    node('', 'dir', 0o755),
    node('usr', 'dir', 0o755),
    node('usr/bin', 'dir', 0o755),
    node('usr/bin/su', 'file', 0o4755, { size: 10 }),
    node('usr/bin/sh', 'link', 0o777, { linkTarget: 'dash', size: 4 }),
    node('usr/bin/dash', 'file', 0o755, { size: 5 }),
    node('tmp', 'dir', 0o1777),
    node('dev', 'dir', 0o755),
    node('dev/null', 'char', 0o666, { rdev: 0x103n }),
    node('dev/loop0', 'block', 0o660, { gid: 6, rdev: 0x700n }),
    node('run', 'dir', 0o755),
    node('run/initctl', 'fifo', 0o600),
    node('run/sock', 'socket', 0o755),
    node('var', 'dir', 0o755),
    node('var/only-subdirs', 'dir', 0o700),
    node('var/only-subdirs/inner', 'dir', 0o755),
    node('h', 'dir', 0o755),
    node('h/a', 'file', 0o644, { nlink: 4, ino: 77n, size: 3 }),
    node('h/b', 'file', 0o644, { nlink: 4, ino: 77n, size: 3 }),
    node('h/c', 'file', 0o644, { nlink: 4, ino: 77n, size: 3 }),
    node('h/other-dev', 'file', 0o644, { nlink: 2, ino: 77n, dev: 2n, size: 3 }),
    node('h/lone', 'file', 0o644, { nlink: 2, ino: 78n, size: 3 }),
    node('h/slink1', 'link', 0o777, { nlink: 2, ino: 79n, linkTarget: 'a', size: 1 }),
    node('h/slink2', 'link', 0o777, { nlink: 2, ino: 79n, linkTarget: 'a', size: 1 }),
    node('x', 'file', 0o644, { xattrs: new Map([['user.test', Buffer.from('hello')]]) }),
    node('o', 'file', 0o644, { uid: 1000, gid: 65534 }),
  ];
  const r = planScan([...nodes].reverse());
  t.same(r.warnings.length, 1);
  t.match(r.warnings[0], /^skipped socket \.\/run\/sock: /);
  t.same(
    r.files.map((f) => [f.path, f.gitMode.toString(8), f.linkTarget, f.hardlink]),
    [
      ['h/a', '100644', undefined, 1],
      ['h/b', '100644', undefined, 1],
      ['h/c', '100644', undefined, 1],
      ['h/lone', '100644', undefined, undefined],
      ['h/other-dev', '100644', undefined, undefined],
      ['h/slink1', '120000', 'a', undefined],
      ['h/slink2', '120000', 'a', undefined],
      ['o', '100644', undefined, undefined],
      ['usr/bin/dash', '100755', undefined, undefined],
      ['usr/bin/sh', '120000', 'dash', undefined],
      ['usr/bin/su', '100755', undefined, undefined],
      ['x', '100644', undefined, undefined],
    ],
  );
  t.equal(r.files.find((f) => f.path === 'usr/bin/su')!.source, '/src/usr/bin/su');
  t.same(r.manifest, [
    { path: 'dev', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: 'dev/loop0', type: 'block', mode: 0o660, uid: 0, gid: 6, rdev: { major: 7, minor: 0 } },
    { path: 'dev/null', type: 'char', mode: 0o666, uid: 0, gid: 0, rdev: { major: 1, minor: 3 } },
    { path: 'h/a', type: 'file', inode: 1, nlink: 3 },
    { path: 'h/b', type: 'file', inode: 1, nlink: 3 },
    { path: 'h/c', type: 'file', inode: 1, nlink: 3 },
    { path: 'o', type: 'file', uid: 1000, gid: 65534 },
    { path: 'run', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: 'run/initctl', type: 'fifo', mode: 0o600, uid: 0, gid: 0 },
    { path: 'tmp', type: 'dir', mode: 0o1777, uid: 0, gid: 0 },
    { path: 'usr/bin/su', type: 'file', mode: 0o4755 },
    { path: 'var', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: 'var/only-subdirs', type: 'dir', mode: 0o700, uid: 0, gid: 0 },
    { path: 'var/only-subdirs/inner', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: 'x', type: 'file', xattrs: new Map([['user.test', Buffer.from('hello')]]) },
  ]);
});

t.test('planScan: a tree with only empty directories, and the root', async (t) => {
  const r = planScan([node('', 'dir', 0o700, { uid: 5 }), node('e', 'dir', 0o755)]);
  t.same(r.files, []);
  t.same(r.manifest, [
    { path: '', type: 'dir', mode: 0o700, uid: 5 },
    { path: 'e', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
  ]);
});

t.test('planScan rejects an unknown file type and a root that is not a directory', async (t) => {
  t.throws(() => planScan([node('', 'dir', 0o755), { ...node('w', 'file', 0), mode: 0o160000 }]), {
    code: 'ESOURCE',
    message: /\.\/w has an unknown file type/,
  });
  t.throws(() => planScan([node('', 'file', 0o644)]), { code: 'ESOURCE', message: /is not a directory/ });
});
