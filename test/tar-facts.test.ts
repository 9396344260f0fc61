/**
 * The pure part of `commit --from-tar` (lib/commit/tar-facts.ts): member names to tree
 * paths, what extraction would create on its own (implicit directories, the root), how
 * hardlinks, symlinks and xattrs are recorded, and every member it must refuse, checked
 * through planScan's manifest where the rule shows there.
 */
// needs: none
import t from 'tap';
import { SourceTreeError } from '../lib/errors/errors.js';
import { formatManifest } from '../lib/manifest/mtree.js';
import { planScan, splitDev } from '../lib/commit/scan-plan.js';
import { memberPath, TarTreeFacts, type TarNodeFacts } from '../lib/commit/tar-facts.js';
import type { TarMember } from '../lib/tar/tar-read.js';

const A = '/srv/x.tar';

function member(name: string | Buffer, fields: Partial<TarMember> = {}): TarMember {
  return {
    name: Buffer.isBuffer(name) ? name : Buffer.from(name),
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    linkname: Buffer.alloc(0),
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
    offset: 0,
    ...fields,
  };
}

/** Admits the members in order, giving each regular file a mark; returns the finished facts by path. */
function facts(members: TarMember[]): Map<string, TarNodeFacts> {
  const f = new TarTreeFacts(A);
  let mark = 1;
  for (const m of members) {
    const n = f.admit(m);
    if (m.type === 'file') n.source = { mark: mark++ };
  }
  return new Map(f.finish().map((n) => [n.path, n]));
}

function manifestOf(members: TarMember[]): string {
  return formatManifest(planScan([...facts(members).values()]).manifest);
}

t.test('member names become tree paths', async (t) => {
  const ok: Array<[string, string]> = [
    ['./', ''],
    ['.', ''],
    ['./etc/passwd', 'etc/passwd'],
    ['etc/passwd', 'etc/passwd'],
    ['./usr//lib/', 'usr/lib'],
    ['a/./b', 'a/b'],
    ['x/.gitroot.mtree', 'x/.gitroot.mtree'],
    ['..dots/...', '..dots/...'],
    ['café/日本', 'café/日本'],
  ];
  for (const [name, path] of ok) t.equal(memberPath(Buffer.from(name), A), path, JSON.stringify(name));
  const bad: Array<[string | Buffer, RegExp]> = [
    ['/etc/passwd', /^member \/etc\/passwd of \/srv\/x\.tar has an absolute path: archive the tree relative to its root/],
    ['//etc', /has an absolute path/],
    ['../etc/passwd', /^member \.\.\/etc\/passwd of \/srv\/x\.tar has a "\.\." component, which would climb out of the tree: /],
    ['./a/../../b', /has a "\.\." component/],
    ['a/..', /has a "\.\." component/],
    ['./.git/config', /^\/srv\/x\.tar: \.\/\.git is a git directory or file/],
    ['srv/repo/.git', /\.\/srv\/repo\/\.git is a git directory/],
    ['./.gitroot.mtree', /^\/srv\/x\.tar: \.\/\.gitroot\.mtree exists in the source tree, but gitroot writes its own manifest there/],
    [Buffer.from([0x2e, 0x2f, 0x63, 0x61, 0x66, 0xe9]), /^\/srv\/x\.tar: file name \.\/caf\\351 is not valid UTF-8: rename it/],
    [Buffer.from('a\0b'), /has a NUL byte/],
    ['', /has an empty name/],
  ];
  for (const [name, re] of bad) {
    t.throws(() => memberPath(Buffer.isBuffer(name) ? name : Buffer.from(name), A), { code: 'ESOURCE', message: re }, JSON.stringify(name.toString()));
  }
});

t.test('directories extraction creates on its own are 0755 root:root', async (t) => {
  const f = facts([member('./usr/lib/deep/file', { size: 3, uid: 7 }), member('./run/initctl', { type: 'fifo', mode: 0o600 })]);
  t.same([...f.keys()].sort(), ['', 'run', 'run/initctl', 'usr', 'usr/lib', 'usr/lib/deep', 'usr/lib/deep/file']);
  for (const p of ['', 'usr', 'usr/lib', 'usr/lib/deep', 'run']) {
    t.match(f.get(p), { mode: 0o040755, uid: 0, gid: 0 }, `${JSON.stringify(p)} implicit`);
    t.notOk(f.get(p)!.xattrs);
  }
  // run/ holds only a FIFO, so git cannot create it: the manifest must say what it is.
  t.match(
    manifestOf([member('./run/initctl', { type: 'fifo', mode: 0o600 })]),
    /\n\.\/run type=dir mode=0755 uid=0 gid=0\n\.\/run\/initctl type=fifo mode=0600 uid=0 gid=0\n$/,
  );
});

t.test('an explicit directory member wins over the implicit one, whatever the order', async (t) => {
  for (const order of ['child first', 'dir first']) {
    const dir = member('./home/user/', { type: 'dir', mode: 0o700, uid: 1000, gid: 1000, xattrs: new Map([['user.x', Buffer.from('1')]]) });
    const child = member('./home/user/.profile', { size: 1, uid: 1000, gid: 1000 });
    const f = facts(order === 'dir first' ? [dir, child] : [child, dir]);
    t.match(f.get('home/user'), { mode: 0o040700, uid: 1000, gid: 1000 }, order);
    t.same(f.get('home/user')!.xattrs, new Map([['user.x', Buffer.from('1')]]));
    t.match(f.get('home'), { mode: 0o040755, uid: 0 }, `${order}: the parent stays implicit`);
  }
});

t.test('an explicit root member sets the root', async (t) => {
  const f = facts([member('./', { type: 'dir', mode: 0o750, gid: 4 }), member('./a', { size: 1 })]);
  t.match(f.get(''), { mode: 0o040750, gid: 4 });
  t.match(manifestOf([member('./', { type: 'dir', mode: 0o750, gid: 4 }), member('./a')]), /\n\. type=dir mode=0750 gid=4\n/);
  t.throws(() => facts([member('./', { type: 'file' })]), {
    code: 'ESOURCE',
    message: /^member \.\/ of \/srv\/x\.tar is the root of the tree but not a directory/,
  });
});

t.test("hardlinks get their target's facts and count every name", async (t) => {
  const xattrs = new Map([['security.capability', Buffer.from([1, 0, 0, 2, 0x80, 0xff])]]);
  const f = facts([
    member('./usr/bin/perl', { size: 10, mode: 0o4755, uid: 3, gid: 4, xattrs }),
    member('./usr/bin/perl5', { type: 'hardlink', linkname: Buffer.from('./usr/bin/perl'), mode: 0o600, uid: 9 }),
    member('./other/perl-too', { type: 'hardlink', linkname: Buffer.from('usr/bin/perl') }),
  ]);
  for (const p of ['usr/bin/perl', 'usr/bin/perl5', 'other/perl-too']) {
    t.match(f.get(p), { mode: 0o104755, uid: 3, gid: 4, nlink: 3, size: 10, source: { mark: 1 } }, p);
    t.same(f.get(p)!.xattrs, xattrs);
  }
  t.equal(new Set([...f.values()].filter((n) => n.nlink > 1).map((n) => n.ino)).size, 1, 'one inode');
  const text = manifestOf([member('./a', { size: 1 }), member('./b', { type: 'hardlink', linkname: Buffer.from('./a') })]);
  t.match(text, /\n\.\/a type=file inode=1 nlink=2\n\.\/b type=file inode=1 nlink=2\n$/);

  t.throws(() => facts([member('./b', { type: 'hardlink', linkname: Buffer.from('./a') }), member('./a')]), {
    code: 'ESOURCE',
    message: /^member \.\/b of \/srv\/x\.tar is a hardlink to \.\/a, which no member before it holds: put the file itself into the archive before/,
  });
  t.throws(() => facts([member('./d/', { type: 'dir' }), member('./l', { type: 'hardlink', linkname: Buffer.from('./d') })]), {
    code: 'ESOURCE',
    message: /is a hardlink to the directory \.\/d/,
  });
  t.throws(() => facts([member('./a'), member('./b', { type: 'hardlink', linkname: Buffer.from('../a') })]), { message: /has a "\.\." component/ });
});

t.test('symlinks are 0777 whatever the header says; devices keep their numbers', async (t) => {
  const f = facts([
    member('./lib', { type: 'symlink', mode: 0o755, linkname: Buffer.from('usr/lib'), uid: 5 }),
    member('./dev/big', { type: 'block', mode: 0o660, devmajor: 259, devminor: 1048575, gid: 6 }),
  ]);
  t.match(f.get('lib'), { mode: 0o120777, uid: 5, linkTarget: 'usr/lib', size: 7 });
  t.same(splitDev(f.get('dev/big')!.rdev), { major: 259, minor: 1048575 });
  t.match(
    manifestOf([member('./lib', { type: 'symlink', mode: 0o755, linkname: Buffer.from('usr/lib') })]),
    /^#mtree v2\.0\n#[^\n]*\n$/,
    'a root-owned symlink needs no manifest line',
  );
  t.throws(() => facts([member('./l', { type: 'symlink', linkname: Buffer.from([0x61, 0xff]) })]), {
    message: /symlink \.\/l points to a name that is not valid UTF-8/,
  });
});

t.test('refused: duplicates, members inside non-directories, xattrs Linux would not set', async (t) => {
  const refuse = (members: TarMember[], re: RegExp, what: string) => {
    let err: unknown;
    try {
      facts(members);
    } catch (e) {
      err = e;
    }
    t.type(err, SourceTreeError, what);
    t.match((err as Error).message, re, what);
    t.notOk((err as Error).message.includes('\n'), `${what}: one line`);
  };
  refuse(
    [member('./etc/passwd'), member('etc/passwd')],
    /^member etc\/passwd of \/srv\/x\.tar names \.\/etc\/passwd, which an earlier member already holds: extraction would keep only the last one/,
    'duplicate',
  );
  refuse([member('./', { type: 'dir' }), member('.', { type: 'dir' })], /names \., which an earlier member already holds/, 'root twice');
  refuse(
    [member('./etc', { type: 'file' }), member('./etc/passwd')],
    /^member \.\/etc\/passwd of \/srv\/x\.tar is inside \.\/etc, which the archive holds as not a directory: remove one of the two/,
    'inside a file',
  );
  refuse(
    [member('./lib', { type: 'symlink', linkname: Buffer.from('usr/lib') }), member('./lib/x.so')],
    /is inside \.\/lib, which the archive holds as a symlink/,
    'inside a symlink',
  );
  refuse([member('./f', { xattrs: new Map([['foo.bar', Buffer.from('1')]]) })], /has xattr foo\.bar, outside the namespaces Linux knows/, 'unknown namespace');
  refuse([member('./f', { xattrs: new Map([['user.', Buffer.from('1')]]) })], /has xattr user\., outside the namespaces/, 'empty name after the namespace');
  refuse(
    [member('./f', { xattrs: new Map([[`user.${'n'.repeat(260)}`, Buffer.from('1')]]) })],
    /has an xattr name of 265 bytes: Linux allows at most 255/,
    'long name',
  );
  refuse(
    [member('./f', { xattrs: new Map([['user.big', Buffer.alloc(65537)]]) })],
    /has xattr user\.big with 65537 bytes: Linux allows at most 65536/,
    'big value',
  );
});
