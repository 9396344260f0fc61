/**
 * Tests of the edge-case tree fixture (fixtures/edge-tree.ts): the counts it reports match
 * an independent walk, the special entries are what they claim to be, the setuid and
 * setgid probes really change identity, builds are reproducible, and the default build
 * holds a file above 64 MiB. Needs root, setfattr/getfattr (attr) and setpriv.
 */
// needs: root
import t from 'tap';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { deflateRawSync } from 'node:zlib';
import { addSocket, buildEdgeTree, DEFAULT_BIG_FILE_BYTES, type EdgeTreeCounts } from '../fixtures/edge-tree.js';
import { compareTrees, parseGetfattr } from './helpers/compare-trees.js';
import { randomReadCompare } from './helpers/random-reads.js';
import { tempDir } from './helpers/temp-dir.js';

const execFileAsync = promisify(execFile);
const SMALL = { bigFileBytes: 2 * 1024 * 1024 };

/** Counts a tree the plain way (lstat walk over raw names), for checking expectedCounts. */
async function countTree(root: string): Promise<{ counts: Partial<EdgeTreeCounts>; inodes: Map<bigint, string[]>; sockets: number }> {
  const c = {
    entries: 0,
    directories: 0,
    regularFiles: 0,
    symlinks: 0,
    fifos: 0,
    charDevices: 0,
    blockDevices: 0,
    emptyFiles: 0,
    emptyDirectories: 0,
    setuid: 0,
    setgid: 0,
    sticky: 0,
    nonRootOwned: 0,
    maxDepth: 0,
  };
  let sockets = 0;
  const inodes = new Map<bigint, string[]>();
  const visit = async (abs: Buffer, rel: string, depth: number): Promise<void> => {
    const st = await fs.lstat(abs, { bigint: true });
    c.entries++;
    if (st.mode & 0o4000n) c.setuid++;
    if (st.mode & 0o2000n) c.setgid++;
    if (st.mode & 0o1000n) c.sticky++;
    if (st.uid !== 0n || st.gid !== 0n) c.nonRootOwned++;
    if (st.isDirectory()) {
      c.directories++;
      c.maxDepth = Math.max(c.maxDepth, depth);
      const names = await fs.readdir(abs, { encoding: 'buffer' });
      if (names.length === 0 && depth > 0) c.emptyDirectories++;
      for (const n of names) {
        await visit(Buffer.concat([abs, Buffer.from('/'), n]), rel === '' ? n.toString() : `${rel}/${n.toString()}`, depth + 1);
      }
    } else if (st.isFile()) {
      c.regularFiles++;
      if (st.size === 0n) c.emptyFiles++;
      if (st.nlink > 1n) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), rel]);
    } else if (st.isSymbolicLink()) c.symlinks++;
    else if (st.isFIFO()) c.fifos++;
    else if (st.isCharacterDevice()) c.charDevices++;
    else if (st.isBlockDevice()) c.blockDevices++;
    else if (st.isSocket()) sockets++;
  };
  await visit(Buffer.from(root), '', 0);
  return { counts: c, inodes, sockets };
}

t.test('the reported counts match an independent walk', async (t) => {
  const dir = tempDir(t, 'edge');
  const info = await buildEdgeTree(path.join(dir, 'tree'), SMALL);
  const { counts, inodes, sockets } = await countTree(info.root);
  for (const [k, v] of Object.entries(counts)) {
    t.equal(v, info.expectedCounts[k as keyof EdgeTreeCounts], `${k} matches`);
  }
  t.equal(sockets, 0, 'no socket in the tree');
  const groups = [...inodes.values()].map((g) => [...g].sort()).sort();
  t.same(groups, info.hardlinkGroups.map((g) => [...g].sort()).sort(), 'hard-link groups match');
  t.equal(info.expectedCounts.hardlinkGroups, 2);
  t.ok(
    info.hardlinkGroups.some((g) => g.length === 3 && new Set(g.map((p) => path.dirname(p))).size === 3),
    'a group of 3 names in 3 directories',
  );
  t.ok(
    info.hardlinkGroups.some((g) => g.length === 2),
    'a group of 2',
  );

  // Xattrs as getfattr sees them, against what the builder says it set.
  const { stdout } = await execFileAsync('getfattr', ['-R', '-h', '-P', '-d', '-m', '-', '-e', 'hex', '--absolute-names', info.root], {
    encoding: 'buffer',
    maxBuffer: 64 * 1024 * 1024,
  });
  const listed = parseGetfattr(stdout, info.root);
  const want = new Map(
    Object.entries(info.xattrs).map(([p, attrs]) => [
      Buffer.from(p).toString('latin1'),
      new Map(Object.entries(attrs).map(([n, v]) => [Buffer.from(n).toString('latin1'), v.toString('hex')])),
    ]),
  );
  t.same(listed, want, 'getfattr lists exactly the xattrs the builder set');
  t.equal(listed.size, info.expectedCounts.pathsWithXattrs);
  t.equal(
    [...listed.values()].reduce((n, m) => n + m.size, 0),
    info.expectedCounts.xattrs,
  );
  t.ok(info.expectedCounts.regularFiles >= 300, 'a few hundred files');
  t.ok(info.expectedCounts.duplicateContentFiles > 0, 'some files share content');
  t.ok(info.expectedCounts.maxDepth >= 40, 'at least 40 levels deep');
});

t.test('special entries are what they claim to be', async (t) => {
  const dir = tempDir(t, 'edge');
  const info = await buildEdgeTree(path.join(dir, 'tree'), SMALL);
  const at = (rel: string) => path.join(info.root, rel);

  const big = await fs.readFile(at(info.bigFile));
  t.equal(big.length, SMALL.bigFileBytes);
  t.ok(deflateRawSync(big).length > big.length * 0.99, 'big file content does not compress');

  const root = await fs.lstat(info.root);
  t.equal(root.mode & 0o7777, 0o755, 'root is 0755');
  t.equal(root.uid, 0);

  const fifo = await fs.lstat(at(info.fifo));
  t.ok(fifo.isFIFO(), 'fifo is a FIFO');
  const nul = await fs.lstat(at(info.charDevice), { bigint: true });
  t.ok(nul.isCharacterDevice(), 'char device');
  t.equal(nul.rdev, (1n << 8n) | 3n, 'char device is 1,3');
  const loop = await fs.lstat(at(info.blockDevice), { bigint: true });
  t.ok(loop.isBlockDevice(), 'block device');
  t.equal(loop.rdev, 7n << 8n, 'block device is 7,0');

  const shadow = await fs.lstat(at('etc/shadow'));
  t.same([shadow.mode & 0o7777, shadow.uid, shadow.gid], [0o640, 0, 42], 'etc/shadow is 0640 root:42');
  const priv = await fs.lstat(at('empty/private-0700'));
  t.same(
    [priv.mode & 0o7777, priv.uid, priv.gid, (await fs.readdir(at('empty/private-0700'))).length],
    [0o700, 1000, 1000, 0],
    'empty 0700 directory owned by 1000:1000',
  );
  t.equal((await fs.lstat(at('tmp'))).mode & 0o7777, 0o1777, 'tmp is 1777');

  for (const [rel, target] of Object.entries(info.symlinks)) {
    t.equal(await fs.readlink(at(rel)), target, `symlink ${JSON.stringify(rel)}`);
  }
  t.ok(await fs.stat(at('links/to-dir')).then((s) => s.isDirectory()), 'a symlink to a directory');
  await t.rejects(fs.stat(at('links/dangling')), { code: 'ENOENT' }, 'a dangling symlink');

  const longNames = info.oddNames.map((p) => path.basename(p)).filter((n) => Buffer.byteLength(n) === 255);
  t.equal(longNames.length, 2, 'two 255-byte names');
  for (const rel of info.oddNames) t.ok((await fs.lstat(at(rel))).isFile(), `odd name ${JSON.stringify(rel)} exists`);
  t.ok(
    info.oddNames.some((p) => p.includes('\n')),
    'a name with a newline',
  );
  t.ok(info.deepestFile.split('/').length > 40, 'deepest file is more than 40 levels down');
  t.ok((await fs.lstat(at(info.deepestFile))).isFile());

  const cap = await execFileAsync('getfattr', ['-h', '-n', 'security.capability', '-e', 'hex', '--absolute-names', at(info.capabilityFile)]);
  t.match(cap.stdout, `security.capability=0x${info.capabilityValue.toString('hex')}`, 'capability xattr set');
  const getcap = await execFileAsync('getcap', [at(info.capabilityFile)]).catch(() => undefined);
  if (getcap) t.match(getcap.stdout, /cap_net_raw[=+]ep/, 'getcap reads cap_net_raw+ep');
  else t.comment('getcap not installed (libcap2-bin): capability checked through getfattr only');
});

t.test('the setuid and setgid probes change identity when run by nobody', async (t) => {
  const dir = tempDir(t, 'edge');
  const info = await buildEdgeTree(path.join(dir, 'tree'), SMALL);
  // The temp dir is mode 0700; nobody must be able to reach the probes.
  await fs.chmod(dir, 0o755);
  const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
  const u = await execFileAsync('setpriv', [...asNobody, path.join(info.root, info.setuidProbe)]);
  t.match(u.stdout, /\buid=65534\b/, 'runs as nobody');
  t.match(u.stdout, /\beuid=0\b/, 'setuid root gives euid=0');
  const g = await execFileAsync('setpriv', [...asNobody, path.join(info.root, info.setgidProbe)]);
  t.match(g.stdout, /\begid=42\b/, 'setgid gives egid=42');
});

t.test('two builds are identical to the judge', async (t) => {
  const dir = tempDir(t, 'edge');
  const a = await buildEdgeTree(path.join(dir, 'a'), SMALL);
  const b = await buildEdgeTree(path.join(dir, 'b'), SMALL);
  t.same(a.expectedCounts, b.expectedCounts);
  const r = await compareTrees(a.root, b.root);
  t.same(r.differences, []);
  t.equal(r.entries, a.expectedCounts.entries);
});

t.test('refuses a non-empty directory', async (t) => {
  const dir = tempDir(t, 'edge');
  await fs.writeFile(path.join(dir, 'something'), 'x');
  await t.rejects(buildEdgeTree(dir, SMALL), /not empty/);
});

t.test('addSocket makes a socket the judge reports', async (t) => {
  const dir = tempDir(t, 'edge');
  const info = await buildEdgeTree(path.join(dir, 'a'), SMALL);
  await execFileAsync('cp', ['-a', info.root, path.join(dir, 'b')]);
  const sock = await addSocket(path.join(dir, 'b'), 'run/some.sock');
  t.ok((await fs.lstat(sock)).isSocket(), 'a socket file stays after the server closed');
  const r = await compareTrees(info.root, path.join(dir, 'b'));
  t.same(r.differences, ['"run/some.sock": extra in actual (socket)']);
});

t.test('default build: big file above 64 MiB, copy compares equal', async (t) => {
  const dir = tempDir(t, 'edge');
  let t0 = Date.now();
  const info = await buildEdgeTree(path.join(dir, 'a'));
  t.comment(`buildEdgeTree with the default ${DEFAULT_BIG_FILE_BYTES} byte file: ${Date.now() - t0} ms`);
  const big = await fs.lstat(path.join(info.root, info.bigFile));
  t.equal(big.size, DEFAULT_BIG_FILE_BYTES);
  t.ok(big.size > 64 * 1024 * 1024, 'big file is larger than 64 MiB');
  await execFileAsync('cp', ['-a', info.root, path.join(dir, 'b')]);
  t0 = Date.now();
  const r = await compareTrees(info.root, path.join(dir, 'b'));
  t.comment(`compareTrees on ${r.entries} entries, ${info.expectedCounts.contentBytes} bytes: ${Date.now() - t0} ms`);
  t.same(r.differences, []);
  t0 = Date.now();
  const reads = await randomReadCompare(path.join(info.root, info.bigFile), path.join(dir, 'b', info.bigFile), { reads: 500, seed: 1 });
  t.comment(`randomReadCompare, 500 reads of the big file: ${Date.now() - t0} ms`);
  t.same(reads, { reads: 500, mismatches: 0, examples: [] });
});
