/**
 * The manifest format: vis encoding, format/parse round trips with every keyword and
 * awkward names, default modes, and every way parseManifest rejects a file.
 */
// needs: none
import t from 'tap';
import { ManifestError } from '../lib/errors/errors.js';
import {
  MANIFEST_NAME,
  MANIFEST_SIGNATURE,
  compareUtf8,
  formatEntry,
  formatManifest,
  gitDefaultMode,
  parseManifest,
  visDecode,
  visEncode,
  type EntryType,
  type ManifestEntry,
} from '../lib/manifest/mtree.js';

t.test('visEncode writes only printable ASCII minus \\ # = as themselves', async (t) => {
  for (let b = 0; b < 256; b++) {
    const enc = visEncode(Buffer.from([b]));
    const plain = b >= 0x21 && b <= 0x7e && b !== 0x5c && b !== 0x23 && b !== 0x3d;
    t.equal(enc, plain ? String.fromCharCode(b) : '\\' + b.toString(8).padStart(3, '0'), `byte ${b}`);
    t.same(visDecode(enc), Buffer.from([b]), `byte ${b} decodes back`);
  }
  t.equal(visEncode('a b'), 'a\\040b');
  t.equal(visEncode('back\\slash#hash=eq'), 'back\\134slash\\043hash\\075eq');
  t.equal(visEncode('é'), '\\303\\251');
  t.equal(visEncode('nl\nname\t'), 'nl\\012name\\011');
  t.equal(visEncode(''), '');
  t.equal(visEncode('plain/path-1.2_x'), 'plain/path-1.2_x');
});

t.test('visDecode round-trips arbitrary bytes and rejects malformed escapes', async (t) => {
  const all = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37) % 256));
  t.same(visDecode(visEncode(all)), all);
  t.same(visDecode('caf\\303\\251'), Buffer.from('café'));
  t.same(visDecode('café'), Buffer.from('café'), 'raw UTF-8 from a hand edit is accepted');
  t.same(visDecode('x😀y'), Buffer.from('x😀y'));
  for (const bad of ['\\', 'a\\1', 'a\\12', 'a\\9aa', 'a\\400', '\\x41', 'tail\\']) {
    t.throws(() => visDecode(bad), ManifestError, bad);
  }
});

t.test('compareUtf8 sorts by UTF-8 bytes, not UTF-16 units', async (t) => {
  const names = ['b', 'a/b', 'a b', 'a', 'Z', '\u{fffd}', '\u{1f600}', 'é', 'a.b', ''];
  const byBytes = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  t.same([...names].sort(compareUtf8), byBytes);
  t.ok(compareUtf8('\u{fffd}', '\u{1f600}') < 0, 'U+FFFD (EF..) before U+1F600 (F0..)');
});

t.test('gitDefaultMode: defaults for every type and git mode', async (t) => {
  const cases: Array<[EntryType, number | undefined, number]> = [
    ['file', 0o100644, 0o644],
    ['file', 0o100755, 0o755],
    ['file', undefined, 0o644],
    ['dir', undefined, 0o755],
    ['dir', 0o040000, 0o755],
    ['link', 0o120000, 0o777],
    ['link', undefined, 0o777],
    ['char', undefined, 0o644],
    ['block', undefined, 0o644],
    ['fifo', undefined, 0o644],
  ];
  for (const [type, gitMode, want] of cases) t.equal(gitDefaultMode(type, gitMode), want, `${type} ${gitMode?.toString(8)}`);
});

const weirdNames = [
  'with space',
  'caf\u00e9/\u65e5\u672c',
  'new\nline',
  'back\\slash',
  'hash#tag',
  'eq=sign',
  'tab\tx',
  'emoji\u{1f600}',
  '-dash',
  'x'.repeat(255),
];

function sampleEntries(): ManifestEntry[] {
  const entries: ManifestEntry[] = [
    { path: '', type: 'dir', mode: 0o700 },
    { path: 'usr/bin/su', type: 'file', mode: 0o4755 },
    { path: 'usr/bin/wall', type: 'file', mode: 0o2755, gid: 5 },
    { path: 'tmp', type: 'dir', mode: 0o1777, uid: 0, gid: 0 },
    { path: 'etc/shadow', type: 'file', mode: 0o640, gid: 42 },
    { path: 'home/u', type: 'dir', mode: 0o700, uid: 1000, gid: 1000 },
    { path: 'nobody', type: 'file', uid: 65534, gid: 65534 },
    { path: 'zero', type: 'file', mode: 0 },
    { path: 'max', type: 'file', mode: 0o7777, uid: 4294967295, gid: 4294967295 },
    { path: 'dev/null', type: 'char', mode: 0o666, uid: 0, gid: 0, rdev: { major: 1, minor: 3 } },
    { path: 'dev/loop0', type: 'block', mode: 0o660, uid: 0, gid: 6, rdev: { major: 7, minor: 0 } },
    { path: 'dev/big', type: 'block', mode: 0o600, uid: 0, gid: 0, rdev: { major: 4095, minor: 1048575 } },
    { path: 'run/initctl', type: 'fifo', mode: 0o600, uid: 0, gid: 0 },
    { path: 'hl/a', type: 'file', inode: 1, nlink: 3 },
    { path: 'hl/b', type: 'file', inode: 1, nlink: 3 },
    { path: 'hl/c d', type: 'file', inode: 1, nlink: 3 },
    { path: 'hl2/x', type: 'file', mode: 0o4711, inode: 2, nlink: 2 },
    { path: 'hl2/y', type: 'file', mode: 0o4711, inode: 2, nlink: 2 },
    { path: 'usr/bin/ping', type: 'file', xattrs: new Map([['security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex')]]) },
    {
      path: 'x/attrs',
      type: 'file',
      xattrs: new Map([
        ['user.test', Buffer.from('hello')],
        ['user.empty', Buffer.alloc(0)],
        ['user.we ird=name#', Buffer.from('v a\\l=u#e\n')],
        ['user.bin', Buffer.from([0, 255, 128, 10])],
      ]),
    },
    { path: 'lnk', type: 'link', uid: 1000, xattrs: new Map([['trusted.x', Buffer.from('1')]]) },
    { path: 'empty', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
  ];
  weirdNames.forEach((n, i) => entries.push({ path: `weird/${n}`, type: 'file', mode: 0o600 + i }));
  return entries;
}

t.test('formatManifest/parseManifest round-trip every keyword and awkward names', async (t) => {
  const entries = sampleEntries();
  const text = formatManifest(entries);
  const lines = text.split('\n');
  t.equal(lines[0], MANIFEST_SIGNATURE);
  t.match(lines[1], /^# gitroot metadata manifest/);
  t.equal(lines.at(-1), '', 'ends with a newline');
  t.equal(lines.length, entries.length + 3);
  for (const line of lines.slice(2, -1)) {
    t.match(line, /^\.(\/[!-~]+)? type=(file|dir|link|char|block|fifo)( [a-z]+(\.[!-~]+)?=[!-~]*)*$/, 'one printable-ASCII line');
  }
  const sortedPaths = lines.slice(2, -1).map((l) => l.split(' ')[0]!);
  const back = parseManifest(text, 'sample');
  t.equal(back.size, entries.length);
  for (const e of entries) t.same(back.get(e.path), e, `entry ${JSON.stringify(e.path)}`);
  t.same(
    [...back.keys()].map((p) => (p === '' ? '.' : './' + visEncode(p))),
    sortedPaths,
    'Map keeps file order',
  );
  t.same([...back.keys()], [...back.keys()].sort(compareUtf8), 'lines sorted by path bytes');
  t.equal(formatManifest([...back.values()]), text, 'format(parse(x)) === x');
});

t.test('formatEntry writes keywords in a fixed order with 4-digit octal modes', async (t) => {
  t.equal(formatEntry({ path: '', type: 'dir', mode: 0o700 }), '. type=dir mode=0700');
  t.equal(formatEntry({ path: 'usr/bin/su', type: 'file', mode: 0o4755 }), './usr/bin/su type=file mode=4755');
  t.equal(formatEntry({ path: 'a b', type: 'file', mode: 0 }), './a\\040b type=file mode=0000');
  t.equal(
    formatEntry({ path: 'd/n', type: 'char', mode: 0o666, uid: 1, gid: 2, rdev: { major: 1, minor: 3 } }),
    './d/n type=char mode=0666 uid=1 gid=2 device=native,1,3',
  );
  t.equal(
    formatEntry({
      path: 'f',
      type: 'file',
      inode: 3,
      nlink: 2,
      xattrs: new Map([
        ['user.b', Buffer.from('2')],
        ['user.a', Buffer.from('x y')],
      ]),
    }),
    './f type=file inode=3 nlink=2 xattr.user.a=x\\040y xattr.user.b=2',
  );
  t.equal(
    formatManifest([]),
    `${MANIFEST_SIGNATURE}\n# gitroot metadata manifest: modes, owners, devices, empty dirs, hardlinks and xattrs that git does not store\n`,
  );
});

t.test('formatManifest refuses duplicate paths', async (t) => {
  t.throws(
    () =>
      formatManifest([
        { path: 'a', type: 'file' },
        { path: 'a', type: 'dir' },
      ]),
    ManifestError,
  );
});

t.test('parseManifest accepts comments, blank lines, tabs, extra spaces and raw UTF-8', async (t) => {
  const m = parseManifest('#mtree\n\n   # indented comment\n./a\t type=file   mode=600 \n./café type=dir\n', 'x');
  t.same(m.get('a'), { path: 'a', type: 'file', mode: 0o600 });
  t.same(m.get('café'), { path: 'café', type: 'dir' });
  t.equal(parseManifest('', 'empty').size, 0);
  t.equal(parseManifest('./a type=file', 'no-newline').size, 1);
  t.equal(MANIFEST_NAME, '.gitroot.mtree');
});

t.test('parseManifest rejects malformed lines with ManifestError naming source:line', async (t) => {
  const head = '#mtree v2.0\n./ok type=file\n';
  const cases: Array<[string, string, RegExp]> = [
    ['unknown keyword', './a type=file size=12', /unknown keyword "size"/],
    ['unknown keyword (sha256)', './a type=file sha256digest=ab', /unknown keyword/],
    ['not key=value', './a type=file mode', /not a keyword=value/],
    ['empty key', './a type=file =3', /not a keyword=value/],
    ['empty value', './a type=file uid=', /has no value/],
    ['missing type', './a mode=0644', /no type= keyword/],
    ['unknown type', './a type=socket', /unknown type "socket"/],
    ['bad octal digit', './a type=file mode=0789', /bad mode "0789"/],
    ['octal too big', './a type=file mode=17777', /bad mode/],
    ['symbolic mode', './a type=file mode=u+rwx', /bad mode/],
    ['negative uid', './a type=file uid=-1', /bad uid/],
    ['uid not a number', './a type=file uid=root', /bad uid/],
    ['uid too big', './a type=file uid=4294967296', /bad uid/],
    ['gid hex', './a type=file gid=0x10', /bad gid/],
    ['duplicate keyword', './a type=file mode=0600 mode=0644', /given twice/],
    ['duplicate path', './ok type=dir', /duplicate entry/],
    ['absolute path', '/etc/passwd type=file', /absolute path/],
    ['relative path without ./', 'etc/passwd type=file', /does not start with "\.\/"/],
    ['/set line', '/set type=file uid=0', /absolute path|\/set/],
    ['dot-dot component', './a/../../etc type=file', /"\.\."/],
    ['leading dot-dot', './.. type=dir', /"\.\."/],
    ['dot component', './a/./b type=file', /"\."/],
    ['empty component', './a//b type=file', /empty/],
    ['trailing slash', './a/ type=dir', /empty/],
    ['.git component', './.git/config type=file', /\.git component/],
    ['nested .git', './srv/repo/.git type=dir', /\.git component/],
    ['bad escape', './a\\9 type=file', /malformed escape/],
    ['short escape', './a\\04 type=file', /malformed escape/],
    ['non-UTF-8 path', './\\377 type=file', /not valid UTF-8/],
    ['NUL in path', './a\\000b type=file', /NUL/],
    ['bad xattr escape', './a type=file xattr.user.x=\\8', /malformed escape/],
    ['empty xattr name', './a type=file xattr.=1', /bad xattr name/],
    ['root not a dir', '. type=file', /root/],
    ['device without numbers', './d type=char mode=0600 uid=0 gid=0', /needs device=/],
    ['device bad format', './d type=char device=1,3', /bad device/],
    ['device on file', './d type=file device=native,1,3', /only allowed on char and block/],
    ['inode without nlink', './a type=file inode=1', /go together/],
    ['nlink without inode', './a type=file nlink=2', /go together/],
    ['hardlink on dir', './a type=dir inode=1 nlink=2', /only allowed on type=file/],
    ['nlink below 2', './a type=file inode=1 nlink=1', /below 2/],
    ['nlink disagrees within group', './a type=file inode=1 nlink=2\n./b type=file inode=1 nlink=3', /make them equal/],
    ['group with missing paths', './a type=file inode=1 nlink=3\n./b type=file inode=1 nlink=3', /has 2 paths/],
  ];
  for (const [name, body, msg] of cases) {
    const err = (() => {
      try {
        parseManifest(head + body + '\n', 'HEAD:.gitroot.mtree');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    t.type(err, ManifestError, name);
    if (!(err instanceof ManifestError)) continue;
    t.equal(err.code, 'EMANIFEST', name);
    t.match(err.message, msg, name);
    t.match(err.message, /^HEAD:\.gitroot\.mtree:\d+: /, `${name}: names source:line`);
    t.equal(err.data.source, 'HEAD:.gitroot.mtree');
    t.ok((err.data.line as number) >= 3, `${name}: line number points past the header`);
    t.notMatch(err.message, /\n/, `${name}: one line`);
  }
});

t.test('parseManifest reports the right line number', async (t) => {
  const text = '#mtree v2.0\n# c\n\n./a type=file\n./b type=file bogus=1\n';
  t.throws(() => parseManifest(text, 'm'), { code: 'EMANIFEST', data: { line: 5 }, message: /^m:5: / });
});

t.test('parseManifest handles a 100k-line manifest', async (t) => {
  const entries: ManifestEntry[] = [];
  for (let i = 0; i < 100_000; i++) {
    entries.push({ path: `usr/share/d${i % 500}/file ${i}`, type: 'file', mode: 0o600, uid: i % 7, gid: 42 });
  }
  const text = formatManifest(entries);
  const back = parseManifest(text, 'big');
  t.equal(back.size, 100_000);
  t.same(back.get('usr/share/d7/file 12007'), { path: 'usr/share/d7/file 12007', type: 'file', mode: 0o600, uid: 12007 % 7, gid: 42 });
});
