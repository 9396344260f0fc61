/**
 * Proves the judge (test/helpers/compare-trees.ts) can fail: a faithful copy of the edge
 * tree compares clean, and each single mutation of a copy (one mode bit, an owner, one
 * byte, a symlink target, an xattr, a broken hard link, an extra entry, other device
 * numbers, a changed type) is reported, naming the path and only the paths concerned.
 */
// needs: root
import t from 'tap';
import type { Test } from 'tap';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { buildEdgeTree, type EdgeTreeInfo } from '../fixtures/edge-tree.js';
import { compareTrees, formatPath } from './helpers/compare-trees.js';

const execFileAsync = promisify(execFile);

/** Runs a command, arguments passed as they are (no shell). */
async function run(cmd: string, ...args: string[]): Promise<void> {
  await execFileAsync(cmd, args);
}

/** Flips every bit of the byte at `offset` of a file, keeping its size. */
async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await fs.open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'gitroot-judge-'));
t.teardown(() => fs.rm(work, { recursive: true, force: true }));
const base: EdgeTreeInfo = await buildEdgeTree(path.join(work, 'base'), { bigFileBytes: 2 * 1024 * 1024 });
let copies = 0;

/** A faithful copy of the base tree (cp -a keeps modes, owners, hard links, xattrs, nodes). */
async function copyOfBase(t: Test): Promise<string> {
  const dst = path.join(work, `copy-${++copies}`);
  await run('cp', '-a', '--preserve=all', base.root, dst);
  t.teardown(() => fs.rm(dst, { recursive: true, force: true }));
  return dst;
}

t.test('a cp -a copy and a second build both compare clean', async (t) => {
  const copy = await copyOfBase(t);
  const r1 = await compareTrees(base.root, copy);
  t.same(r1.differences, [], 'copy');
  t.equal(r1.entries, base.expectedCounts.entries, 'every entry examined');
  const again = await buildEdgeTree(path.join(work, 'rebuild'), { bigFileBytes: 2 * 1024 * 1024 });
  t.teardown(() => fs.rm(again.root, { recursive: true, force: true }));
  t.same((await compareTrees(base.root, again.root)).differences, [], 'second build');
  t.same((await compareTrees(base.root, base.root)).differences, [], 'tree against itself');
});

/** One mutation: what to do to a copy, which lines must appear, and which paths may be named. */
interface Mutation {
  name: string;
  mutate: (root: string) => Promise<void>;
  /** Each must match at least one difference line. */
  expect: RegExp[];
  /** Paths (UTF-8, relative) the differences may name; every line must name one of them. */
  paths: string[];
}

const p = (root: string, rel: string) => path.join(root, rel);
const group3 = base.hardlinkGroups.find((g) => g.length === 3)!;
const oddXattr = 'user.odd name=with\\escapes\nand é';

const mutations: Mutation[] = [
  {
    name: 'setuid bit removed',
    mutate: (r) => fs.chmod(p(r, 'bin/id-setuid'), 0o755),
    expect: [/^"bin\/id-setuid": mode expected 4755, actual 0755$/],
    paths: ['bin/id-setuid'],
  },
  {
    name: 'setgid bit removed from a directory',
    mutate: (r) => fs.chmod(p(r, 'perms/dir-2755'), 0o755),
    expect: [/^"perms\/dir-2755": mode expected 2755, actual 0755$/],
    paths: ['perms/dir-2755'],
  },
  {
    name: 'sticky bit removed from tmp',
    mutate: (r) => fs.chmod(p(r, 'tmp'), 0o777),
    expect: [/^"tmp": mode expected 1777, actual 0777$/],
    paths: ['tmp'],
  },
  {
    name: 'one permission bit added',
    mutate: (r) => fs.chmod(p(r, 'etc/mode-0000'), 0o004),
    expect: [/mode expected 0000, actual 0004/],
    paths: ['etc/mode-0000'],
  },
  {
    name: 'root directory mode',
    mutate: (r) => fs.chmod(r, 0o700),
    expect: [/^"\.": mode expected 0755, actual 0700$/],
    paths: ['.'],
  },
  {
    name: 'owner changed',
    mutate: (r) => fs.chown(p(r, 'etc/shadow'), 1000, 42),
    expect: [/^"etc\/shadow": uid expected 0, actual 1000$/],
    paths: ['etc/shadow'],
  },
  {
    name: 'group changed',
    mutate: (r) => fs.chown(p(r, 'etc/shadow'), 0, 0),
    expect: [/^"etc\/shadow": gid expected 42, actual 0$/],
    paths: ['etc/shadow'],
  },
  {
    name: 'symlink owner changed',
    mutate: (r) => fs.lchown(p(r, 'links/owned-by-1000'), 0, 0),
    expect: [/uid expected 1000, actual 0/, /gid expected 1000, actual 0/],
    paths: ['links/owned-by-1000'],
  },
  {
    name: 'one byte changed in the middle of the big file',
    mutate: (r) => flipByte(p(r, base.bigFile), Math.floor(base.bigFileBytes / 2)),
    expect: [/^"files\/big\.bin": content sha256 expected [0-9a-f]{64}, actual [0-9a-f]{64}$/],
    paths: [base.bigFile],
  },
  {
    name: 'one byte changed in a file with a newline in its name',
    mutate: (r) => flipByte(p(r, 'names/new\nline'), 0),
    expect: [/^"names\/new\\nline": content sha256/],
    paths: ['names/new\nline'],
  },
  {
    name: 'file grown by one byte',
    mutate: (r) => fs.appendFile(p(r, 'files/medium/1mib-plus-1'), 'x'),
    expect: [/size expected 1048577, actual 1048578/],
    paths: ['files/medium/1mib-plus-1'],
  },
  {
    name: 'symlink target changed (same length)',
    mutate: async (r) => {
      await fs.rm(p(r, 'links/chain-3'));
      await fs.symlink('../etc/shadow', p(r, 'links/chain-3'));
    },
    expect: [/^"links\/chain-3": symlink target expected "\.\.\/etc\/passwd", actual "\.\.\/etc\/shadow"$/],
    paths: ['links/chain-3'],
  },
  {
    name: 'user xattr removed',
    mutate: (r) => run('setfattr', '-x', 'user.comment', p(r, 'xattr/text')),
    expect: [/^"xattr\/text": xattr "user\.comment" expected 0x68656c6c6f2c20776f726c64, actual \(absent\)$/],
    paths: ['xattr/text'],
  },
  {
    name: 'binary xattr value changed',
    mutate: (r) => run('setfattr', '-n', 'user.blob', '-v', '0x00', p(r, 'xattr/binary')),
    expect: [/xattr "user\.blob" expected 0x000102.*\(256 bytes\), actual 0x00$/],
    paths: ['xattr/binary'],
  },
  {
    name: 'xattr with an escaped name removed',
    mutate: (r) => run('setfattr', '-x', oddXattr, p(r, 'xattr/odd-name')),
    expect: [new RegExp(`xattr ${escapeRe(formatPath(Buffer.from(oddXattr).toString('latin1')))} expected 0x6f6464`)],
    paths: ['xattr/odd-name'],
  },
  {
    name: 'security.capability removed',
    mutate: (r) => run('setfattr', '-x', 'security.capability', p(r, base.capabilityFile)),
    expect: [/"bin\/id-cap": xattr "security\.capability" expected 0x01000002/],
    paths: [base.capabilityFile],
  },
  {
    name: 'trusted xattr removed from a symlink',
    mutate: (r) => run('setfattr', '-h', '-x', 'trusted.on-symlink', p(r, 'links/relative')),
    expect: [/"links\/relative": xattr "trusted\.on-symlink"/],
    paths: ['links/relative'],
  },
  {
    name: 'xattr added to a file with a tab in its name',
    mutate: (r) => run('setfattr', '-n', 'user.new', '-v', 'x', p(r, 'names/tab\there')),
    expect: [/^"names\/tab\\there": xattr "user\.new" expected \(absent\), actual 0x78$/],
    paths: ['names/tab\there'],
  },
  {
    name: 'hard link broken by cp + mv',
    mutate: async (r) => {
      await run('cp', '-a', p(r, group3[1]!), p(r, 'tmp/broken'));
      await run('mv', p(r, 'tmp/broken'), p(r, group3[1]!));
    },
    expect: [
      new RegExp(`^${escapeRe(formatPath(group3[1]!))}: nlink expected 3, actual 1$`),
      new RegExp(`^${escapeRe(formatPath(group3[1]!))}: hard links expected \\[.*\\], actual no other name$`),
      new RegExp(`^${escapeRe(formatPath(group3[0]!))}: nlink expected 3, actual 2$`),
    ],
    paths: group3,
  },
  {
    name: 'two separate files joined into a hard link',
    mutate: async (r) => {
      await fs.rm(p(r, 'files/empty-2'));
      await fs.link(p(r, 'files/empty'), p(r, 'files/empty-2'));
    },
    expect: [/^"files\/empty-2": hard links expected no other name, actual \["files\/empty"\]$/],
    paths: ['files/empty', 'files/empty-2'],
  },
  {
    name: 'file added',
    mutate: (r) => fs.writeFile(p(r, 'etc/new-file'), 'new'),
    expect: [/^"etc\/new-file": extra in actual \(file\)$/],
    paths: ['etc/new-file'],
  },
  {
    name: 'empty directory added (its parent gains a link)',
    mutate: (r) => fs.mkdir(p(r, 'empty/new-dir')),
    expect: [/^"empty\/new-dir": extra in actual \(dir\)$/, /^"empty": nlink expected 5, actual 6$/],
    paths: ['empty/new-dir', 'empty'],
  },
  {
    name: 'file with a decomposed (NFD) name removed, precomposed one kept',
    mutate: (r) => fs.rm(p(r, 'names/cafe\u0301')),
    expect: [new RegExp(`^${escapeRe(JSON.stringify('names/cafe\u0301'))}: missing in actual \\(file\\)$`)],
    paths: ['names/cafe\u0301'],
  },
  {
    name: 'device node with other numbers',
    mutate: async (r) => {
      await fs.rm(p(r, 'dev/null'));
      await run('mknod', '-m', '666', p(r, 'dev/null'), 'c', '1', '7');
    },
    expect: [/^"dev\/null": device expected 1,3, actual 1,7$/],
    paths: ['dev/null'],
  },
  {
    name: 'device minor above 255 changed',
    mutate: async (r) => {
      await fs.rm(p(r, 'dev/large-numbers'));
      await run('mknod', '-m', '600', p(r, 'dev/large-numbers'), 'c', '511', '70001');
    },
    expect: [/device expected 511,70000, actual 511,70001$/],
    paths: ['dev/large-numbers'],
  },
  {
    name: 'block device replaced by a char device',
    mutate: async (r) => {
      await fs.rm(p(r, base.blockDevice));
      await run('mknod', '-m', '660', p(r, base.blockDevice), 'c', '7', '0');
      await fs.chown(p(r, base.blockDevice), 0, 6);
    },
    expect: [/^"dev\/loop0": type expected block, actual char$/],
    paths: [base.blockDevice],
  },
  {
    name: 'FIFO replaced by an empty file',
    mutate: async (r) => {
      await fs.rm(p(r, base.fifo));
      await fs.writeFile(p(r, base.fifo), '', { mode: 0o600 });
    },
    expect: [/^"run\/initctl": type expected fifo, actual file$/],
    paths: [base.fifo],
  },
  {
    name: 'symlink to a directory replaced by a directory',
    mutate: async (r) => {
      await fs.rm(p(r, 'links/to-dir'));
      await fs.mkdir(p(r, 'links/to-dir'));
    },
    expect: [/^"links\/to-dir": type expected symlink, actual dir$/],
    // The parent's link count changes too.
    paths: ['links/to-dir', 'links'],
  },
  {
    name: 'mode of the deepest file',
    mutate: (r) => fs.chmod(p(r, base.deepestFile), 0o600),
    expect: [/level-45\/bottom\.txt": mode expected 0644, actual 0600$/],
    paths: [base.deepestFile],
  },
];

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

for (const m of mutations) {
  t.test(`reports: ${m.name}`, async (t) => {
    const copy = await copyOfBase(t);
    await m.mutate(copy);
    const { differences } = await compareTrees(base.root, copy);
    t.ok(differences.length > 0, 'at least one difference');
    for (const re of m.expect) {
      t.ok(
        differences.some((d) => re.test(d)),
        `a line matches ${re}`,
        { differences },
      );
    }
    const named = m.paths.map((x) => `${JSON.stringify(x)}: `);
    const stray = differences.filter((d) => !named.some((n) => d.startsWith(n)));
    t.same(stray, [], 'no line about other paths');
  });
}

t.test('several mutations at once are all reported, sorted by path', async (t) => {
  const copy = await copyOfBase(t);
  await fs.chmod(p(copy, 'bin/id-setuid'), 0o755);
  await fs.chown(p(copy, 'etc/shadow'), 0, 0);
  await fs.writeFile(p(copy, 'zz-extra'), '');
  const { differences } = await compareTrees(base.root, copy);
  t.same(differences, ['"bin/id-setuid": mode expected 4755, actual 0755', '"etc/shadow": gid expected 42, actual 0', '"zz-extra": extra in actual (file)']);
});

t.test('contents: false skips hashing but still sees sizes', async (t) => {
  const copy = await copyOfBase(t);
  await flipByte(p(copy, base.bigFile), 0);
  t.same((await compareTrees(base.root, copy, { contents: false })).differences, [], 'same-size change not seen');
  await fs.appendFile(p(copy, 'etc/passwd'), 'x');
  t.match((await compareTrees(base.root, copy, { contents: false })).differences, [/^"etc\/passwd": size expected/]);
});

t.test('ignore skips paths and whole subtrees on both sides', async (t) => {
  const copy = await copyOfBase(t);
  await fs.rm(p(copy, 'files/small'), { recursive: true });
  await fs.writeFile(p(copy, 'names/new\nline'), 'changed');
  await fs.writeFile(p(copy, 'extra-ignored'), '');
  const r = await compareTrees(base.root, copy, { ignore: ['files/small', './names/new\nline', 'extra-ignored/'] });
  // Removing files/small changes the link count of files/ itself, which is not ignored.
  t.same(r.differences, ['"files": nlink expected 4, actual 3']);
  t.ok(r.entries < base.expectedCounts.entries - 300, 'ignored entries are not counted');
});

t.test('names that are not valid UTF-8 compare byte-exactly, xattrs included', async (t) => {
  const a = await copyOfBase(t);
  const b = await copyOfBase(t);
  // 0xff 0xfe and a lone 0x80: no UTF-8 decoder can round-trip these names.
  const raw = (root: string, tail: number[]) => Buffer.concat([Buffer.from(`${root}/names/raw-`), Buffer.from(tail)]);
  for (const root of [a, b]) {
    await fs.writeFile(raw(root, [0xff, 0xfe]), 'raw');
    await fs.writeFile(raw(root, [0x80]), 'raw');
    // Arguments of execFile are UTF-8 strings: let printf produce the raw bytes instead.
    await execFileAsync('bash', ['-c', 'setfattr -n user.raw -v v "$(printf \'raw-\\377\\376\')"'], { cwd: path.join(root, 'names') });
  }
  t.same((await compareTrees(a, b)).differences, [], 'identical raw names compare clean');
  await execFileAsync('bash', ['-c', 'setfattr -n user.raw -v w "$(printf \'raw-\\377\\376\')"'], { cwd: path.join(b, 'names') });
  await fs.rm(raw(b, [0x80]));
  const { differences } = await compareTrees(a, b);
  t.same(differences, ['"names/raw-\uFFFD": missing in actual (file)', '"names/raw-\uFFFD\uFFFD": xattr "user.raw" expected 0x76, actual 0x77']);
});
