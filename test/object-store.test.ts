/**
 * Tests of the object store (lib/store/object-store.ts) against native git, on repositories
 * built at run time: loose objects, one pack, long delta chains (OFS_DELTA and REF_DELTA),
 * several packs plus loose objects, packs appearing after open, alternates, worktrees and
 * index v1 / 64-bit offsets. Every object must read back exactly as `git cat-file` shows it;
 * damaged packs and loose files must raise ObjectCorruptError and never return data.
 */
// needs: git
import t from 'tap';
import type { Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ObjectStore, type ObjectStoreOptions } from '../lib/store/object-store.js';
import { PackFile } from '../lib/store/pack-file.js';
import { parseTree } from '../lib/store/git-objects.js';
import { useInflateImplementation } from '../lib/store/zlib-inflate.js';
import { tempDir } from './helpers/temp-dir.js';

const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Store Test',
  GIT_AUTHOR_EMAIL: 'store@test',
  GIT_AUTHOR_DATE: '1700000000 +0000',
  GIT_COMMITTER_NAME: 'Store Test',
  GIT_COMMITTER_EMAIL: 'store@test',
  GIT_COMMITTER_DATE: '1700000000 +0000',
};

/** Runs git in `cwd` (no automatic gc) and returns stdout. */
function git(cwd: string, args: string[], input?: string | Buffer): Buffer {
  return execFileSync('git', ['-c', 'gc.auto=0', '-c', 'maintenance.auto=false', ...args], { cwd, env: GIT_ENV, input, maxBuffer: 1 << 30 });
}

function gitText(cwd: string, ...args: string[]): string {
  return git(cwd, args).toString('utf8').trim();
}

function initRepo(t: Test, prefix: string, bare = false): string {
  const dir = tempDir(t, prefix);
  git(dir, ['init', '-q', '-b', 'main', ...(bare ? ['--bare'] : [])]);
  return dir;
}

/** Deterministic pseudo-random bytes (xorshift), so runs are reproducible. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** ~`bytes` of text lines, deterministic for a seed. */
function textFile(seed: number, bytes: number): string {
  const r = prng(seed);
  const lines: string[] = [];
  let n = 0;
  while (n < bytes) {
    const line = `line ${r() % 100000} ${r().toString(36)} ${r().toString(36)} ${'x'.repeat(r() % 40)}`;
    lines.push(line);
    n += line.length + 1;
  }
  return lines.join('\n') + '\n';
}

type FileSpec = string | Buffer | { exec: string } | { link: string };

/** Writes one commit per element with git fast-import (fast, writes a pack). */
function fastImport(repo: string, commits: { files: Record<string, FileSpec | null>; message: string }[], branch = 'refs/heads/main'): void {
  const parts: Buffer[] = [];
  let time = 1700000000;
  for (const c of commits) {
    time += 60;
    const msg = Buffer.from(c.message);
    parts.push(Buffer.from(`commit ${branch}\ncommitter Store Test <store@test> ${time} +0000\n` + `data ${msg.length}\n`), msg, Buffer.from('\n'));
    for (const [name, spec] of Object.entries(c.files)) {
      if (spec === null) {
        parts.push(Buffer.from(`D ${name}\n`));
        continue;
      }
      let mode = '100644';
      let data: Buffer;
      if (typeof spec === 'string') data = Buffer.from(spec);
      else if (Buffer.isBuffer(spec)) data = spec;
      else if ('exec' in spec) {
        mode = '100755';
        data = Buffer.from(spec.exec);
      } else {
        mode = '120000';
        data = Buffer.from(spec.link);
      }
      parts.push(Buffer.from(`M ${mode} inline ${name}\ndata ${data.length}\n`), data, Buffer.from('\n'));
    }
  }
  git(repo, ['fast-import', '--quiet'], Buffer.concat(parts));
}

interface GitObjectInfo {
  oid: string;
  type: string;
  size: number;
  data: Buffer;
}

/** Every object in the repository, with its content, as git sees it. */
function allObjects(repo: string): GitObjectInfo[] {
  const list = gitText(repo, 'cat-file', '--batch-all-objects', '--batch-check');
  if (list === '') return [];
  const oids = list.split('\n').map((l) => l.split(' ')[0]);
  const out = git(repo, ['cat-file', '--batch'], oids.join('\n') + '\n');
  const objects: GitObjectInfo[] = [];
  let p = 0;
  while (p < out.length) {
    const nl = out.indexOf(10, p);
    const [oid, type, size] = out.toString('latin1', p, nl).split(' ');
    const start = nl + 1;
    objects.push({ oid, type, size: Number(size), data: out.subarray(start, start + Number(size)) });
    p = start + Number(size) + 1;
  }
  return objects;
}

/** Reads every object with the store and compares it with git; returns how many it read. */
function checkAll(t: Test, repo: string, opts: ObjectStoreOptions = {}, order: 'forward' | 'reverse' = 'forward'): number {
  const objects = allObjects(repo);
  if (order === 'reverse') objects.reverse();
  const store = ObjectStore.open(repo, opts);
  const bad: string[] = [];
  try {
    for (const o of objects) {
      const obj = store.readObject(o.oid);
      if (obj.type !== o.type || !obj.data.equals(o.data)) bad.push(`${o.oid} content`);
      const h = store.readHeader(Buffer.from(o.oid, 'hex'));
      if (h.type !== o.type || h.size !== o.size) bad.push(`${o.oid} header ${h.type} ${h.size}`);
      if (!store.has(o.oid)) bad.push(`${o.oid} has`);
    }
  } finally {
    store.close();
  }
  t.same(bad, [], `all ${objects.length} objects read back as git shows them`);
  t.ok(objects.length > 0, 'the repository has objects');
  return objects.length;
}

function packs(repo: string): string[] {
  const dir = fs.existsSync(path.join(repo, 'objects')) ? path.join(repo, 'objects', 'pack') : path.join(repo, '.git', 'objects', 'pack');
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.pack'))
    .map((n) => path.join(dir, n));
}

function looseCount(repo: string): number {
  const m = /^count: (\d+)$/m.exec(gitText(repo, 'count-objects', '-v'));
  return Number(m?.[1]);
}

/** A small repository with every kind of entry, as loose objects (porcelain commits). */
function smallRepo(t: Test): string {
  const repo = initRepo(t, 'small');
  const w = (rel: string, data: string | Buffer, mode = 0o644): void => {
    fs.mkdirSync(path.dirname(path.join(repo, rel)), { recursive: true });
    fs.writeFileSync(path.join(repo, rel), data, { mode });
  };
  w('README', 'hello\n');
  w('empty', '');
  w('bin/tool', '#!/bin/sh\necho hi\n', 0o755);
  w('data/random.bin', Buffer.from(randomBytes(70000)));
  w('data/text.txt', textFile(1, 50000));
  w('deep/a/b/c/d/e/leaf', 'leaf\n');
  w('names/ünïcödé name.txt', 'utf8 name\n');
  fs.symlinkSync('../README', path.join(repo, 'deep/link'));
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'first']);
  w('data/text.txt', textFile(1, 50000) + 'more\n');
  git(repo, ['commit', '-q', '-am', 'second']);
  git(repo, ['tag', '-a', '-m', 'annotated', 'v1']);
  return repo;
}

/** 30 versions of three ~200 KB files with small edits: long delta chains once repacked. */
function historyRepo(t: Test): string {
  const repo = initRepo(t, 'history', true);
  const files = [textFile(11, 200_000), textFile(12, 200_000), textFile(13, 200_000)];
  const r = prng(99);
  const commits = [];
  for (let v = 0; v < 30; v++) {
    const set: Record<string, string> = {};
    files.forEach((f, i) => {
      const lines = f.split('\n');
      for (let k = 0; k < 3; k++) lines[r() % lines.length] = `edit ${v} ${k} ${r()}`;
      lines.splice(r() % lines.length, 0, `inserted in version ${v}`);
      files[i] = lines.join('\n');
      set[`dir${i}/file${i}.txt`] = files[i];
    });
    commits.push({ files: set, message: `version ${v}\n` });
  }
  fastImport(repo, commits);
  return repo;
}

function maxChain(repo: string): number {
  const out = gitText(repo, 'verify-pack', '-s', ...packs(repo).map((p) => p.replace(/\.pack$/, '.idx')));
  const lengths = [...out.matchAll(/chain length = (\d+)/g)].map((m) => Number(m[1]));
  return Math.max(0, ...lengths);
}

/** Pack type codes of every entry in a pack, counted. */
function entryTypes(packPath: string): Map<number, number> {
  const pack = PackFile.open(packPath.replace(/\.pack$/, '.idx'));
  const counts = new Map<number, number>();
  try {
    for (let i = 0; i < pack.index.count; i++) {
      const code = pack.readEntryStart(pack.index.offsetAt(i), 0).typeCode;
      counts.set(code, (counts.get(code) ?? 0) + 1);
    }
  } finally {
    pack.close();
  }
  return counts;
}

t.test('loose objects', async (t) => {
  const repo = smallRepo(t);
  t.equal(packs(repo).length, 0, 'no packs yet');
  checkAll(t, repo);
  checkAll(t, path.join(repo, '.git'));
});

t.test('one pack after git gc', async (t) => {
  const repo = smallRepo(t);
  git(repo, ['gc', '-q']);
  t.equal(looseCount(repo), 0, 'everything is packed');
  checkAll(t, repo);
  checkAll(t, repo, {}, 'reverse');
});

t.test('deltified history, OFS_DELTA', async (t) => {
  const repo = historyRepo(t);
  git(repo, ['repack', '-adf', '-q', '--depth=50', '--window=50']);
  t.ok(maxChain(repo) >= 10, `delta chains are long (max ${maxChain(repo)})`);
  const types = entryTypes(packs(repo)[0]);
  t.ok((types.get(6) ?? 0) > 50, 'the pack has OFS_DELTA entries');
  checkAll(t, repo);
  checkAll(t, repo, { baseCacheBytes: 0 }, 'reverse');
  checkAll(t, repo, { baseCacheBytes: 300_000 });
  t.equal(useInflateImplementation('portable'), 'portable');
  try {
    checkAll(t, repo, {}, 'reverse');
  } finally {
    useInflateImplementation('handle');
  }
});

t.test('deltified history, REF_DELTA', async (t) => {
  const repo = historyRepo(t);
  git(repo, ['-c', 'repack.useDeltaBaseOffset=false', 'repack', '-adf', '-q', '--depth=50', '--window=50']);
  const types = entryTypes(packs(repo)[0]);
  t.ok((types.get(7) ?? 0) > 50, 'the pack has REF_DELTA entries');
  t.equal(types.get(6) ?? 0, 0, 'and no OFS_DELTA');
  checkAll(t, repo);
  checkAll(t, repo, { baseCacheBytes: 0 }, 'reverse');
});

t.test('a chain of hundreds of deltas decodes without recursion', async (t) => {
  const repo = initRepo(t, 'deep', true);
  // Each version rewrites one more block: every version is nearest to its neighbours, so git
  // chains them one after another instead of basing all of them on one version.
  const r = prng(7);
  const noise = (n: number): string => Buffer.from(Array.from({ length: n }, () => r() & 0xff)).toString('base64');
  let text = noise(75_000);
  const commits = [];
  for (let v = 0; v < 400; v++) {
    const at = (v * 7919) % (text.length - 300);
    text = text.slice(0, at) + noise(150) + text.slice(at + 200);
    commits.push({ files: { 'f.txt': text }, message: `v${v}\n` });
  }
  fastImport(repo, commits);
  git(repo, ['repack', '-adf', '-q', '--depth=4095', '--window=400']);
  const depth = maxChain(repo);
  t.ok(depth >= 200, `max chain length ${depth}`);
  // Without a cache every read walks its whole chain; read the deepest objects that way.
  const deepest = gitText(repo, 'verify-pack', '-v', packs(repo)[0].replace(/\.pack$/, '.idx'))
    .split('\n')
    .map((l) => l.split(/\s+/))
    .filter((f) => f.length >= 7 && Number(f[5]) >= depth - 2)
    .map((f) => f[0]);
  t.ok(deepest.length > 0);
  const store = ObjectStore.open(repo, { baseCacheBytes: 0 });
  for (const oid of deepest) {
    t.ok(store.readObject(oid).data.equals(git(repo, ['cat-file', 'blob', oid])), `deep object ${oid.slice(0, 8)}`);
  }
  store.close();
  checkAll(t, repo);
});

t.test('two packs plus loose objects, and packs that appear after open', async (t) => {
  const repo = smallRepo(t);
  git(repo, ['gc', '-q']);
  fs.writeFileSync(path.join(repo, 'second.txt'), textFile(5, 30000));
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'third']);
  git(repo, ['repack', '-d', '-q']);
  fs.writeFileSync(path.join(repo, 'third.txt'), 'loose\n');
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'fourth']);
  t.equal(packs(repo).length, 2, 'two packs');
  t.ok(looseCount(repo) > 0, 'and loose objects');
  checkAll(t, repo);

  const store = ObjectStore.open(repo);
  t.teardown(() => store.close());
  const before = store.readObject(gitText(repo, 'rev-parse', 'HEAD'));
  t.equal(before.type, 'commit');
  // New commit, then pack everything and drop the loose copies: the store must find them.
  fs.writeFileSync(path.join(repo, 'late.txt'), 'written after open\n');
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'late']);
  const lateBlob = gitText(repo, 'rev-parse', 'HEAD:late.txt');
  t.equal(store.readObject(lateBlob).data.toString(), 'written after open\n', 'a loose object written after open');
  fs.writeFileSync(path.join(repo, 'later.txt'), 'packed after open\n');
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'later']);
  const laterBlob = gitText(repo, 'rev-parse', 'HEAD:later.txt');
  git(repo, ['repack', '-a', '-d', '-q']);
  git(repo, ['prune-packed']);
  t.equal(looseCount(repo), 0, 'all packed into a new pack');
  t.equal(store.readObject(laterBlob).data.toString(), 'packed after open\n', 'an object only in a new pack');
  t.equal(store.readObject(lateBlob).data.toString(), 'written after open\n', 'an object moved from loose to pack');
  t.equal(store.readObject(before.data.toString().slice(5, 45)).type, 'tree', 'old objects, now in the new pack');
});

t.test('index version 1 and 64-bit offsets', async (t) => {
  const repo = historyRepo(t);
  git(repo, ['repack', '-adf', '-q', '--depth=50', '--window=50']);
  const pack = packs(repo)[0];
  const expected = allObjects(repo);
  for (const version of ['1', '2,0x200']) {
    const dir = initRepo(t, 'idx', true);
    const dest = path.join(dir, 'objects', 'pack', path.basename(pack));
    fs.copyFileSync(pack, dest);
    git(dir, ['index-pack', `--index-version=${version}`, '-o', dest.replace(/\.pack$/, '.idx'), dest]);
    const store = ObjectStore.open(dir);
    const bad = expected.filter((o) => !store.readObject(o.oid).data.equals(o.data)).length;
    store.close();
    t.equal(bad, 0, `index version ${version}: all ${expected.length} objects read back`);
    const idx = PackFile.open(dest.replace(/\.pack$/, '.idx'));
    t.equal(idx.index.version, Number(version[0]), `the index is version ${version[0]}`);
    if (idx.index.version === 2) {
      // Each recorded CRC32 covers the entry's raw bytes, from its offset to the next entry.
      const raw = fs.readFileSync(dest);
      let mismatches = 0;
      for (let i = 0; i < idx.index.count; i++) {
        const start = idx.index.offsetAt(i);
        if (zlib.crc32(raw.subarray(start, idx.entryEnd(start))) !== idx.index.crc32At(i)) mismatches++;
      }
      t.equal(mismatches, 0, 'CRC32 table and entry extents agree with the pack');
    }
    idx.close();
  }
});

t.test('alternates, worktrees, bare clones', async (t) => {
  const repo = smallRepo(t);
  git(repo, ['gc', '-q']);
  const shared = path.join(tempDir(t, 'shared'), 'clone');
  git(repo, ['clone', '-q', '--shared', repo, shared]);
  t.ok(fs.existsSync(path.join(shared, '.git', 'objects', 'info', 'alternates')), 'clone uses alternates');
  t.equal(looseCount(shared), 0);
  checkAll(t, shared);

  const wt = path.join(tempDir(t, 'wt'), 'tree');
  git(repo, ['worktree', 'add', '-q', wt, 'HEAD']);
  t.ok(fs.statSync(path.join(wt, '.git')).isFile(), 'worktree has a .git file');
  const store = ObjectStore.open(wt);
  t.equal(store.readObject(gitText(wt, 'rev-parse', 'HEAD')).type, 'commit', 'reads through a linked worktree');
  store.close();

  const bare = path.join(tempDir(t, 'bare'), 'repo.git');
  git(repo, ['clone', '-q', '--bare', repo, bare]);
  checkAll(t, bare);
});

t.test('missing objects and directories that are not repositories', async (t) => {
  const repo = smallRepo(t);
  const store = ObjectStore.open(repo);
  const nothing = 'f'.repeat(40);
  t.throws(() => store.readObject(nothing), { code: 'ENOOBJECT', name: 'ObjectMissingError' });
  t.throws(() => store.readHeader(nothing), { code: 'ENOOBJECT' });
  await t.rejects(store.copyBlobToFd(nothing, 1), { code: 'ENOOBJECT' });
  t.equal(store.has(nothing), false);
  t.throws(() => store.readObject('not-hex'), { code: 'EUSAGE' });
  t.throws(() => store.readObject(Buffer.alloc(5)), { code: 'EUSAGE' });
  store.close();
  t.throws(() => store.readObject(nothing), { code: 'EUSAGE' }, 'a closed store refuses reads');

  const sha256 = tempDir(t, 'sha256');
  git(sha256, ['init', '-q', '--object-format=sha256']);
  t.throws(() => ObjectStore.open(sha256), { code: 'EUSAGE', message: /SHA-256/ }, 'SHA-256 repositories are refused');

  const empty = tempDir(t, 'empty');
  t.throws(() => ObjectStore.open(empty), { code: 'ENOREPO', name: 'RepoNotFoundError' });
  t.throws(() => ObjectStore.open(path.join(empty, 'nope')), { code: 'ENOREPO' });
  try {
    ObjectStore.open(empty);
  } catch (err) {
    t.match((err as Error).message, `not a git repository: ${empty}`);
    t.match((err as Error).message, 'gitroot commit');
  }
});

/** Offset and on-disk size of a pack entry, from `git verify-pack -v`. */
function packEntry(repo: string, oid: string): { offset: number; size: number } {
  const line = gitText(repo, 'verify-pack', '-v', packs(repo)[0].replace(/\.pack$/, '.idx'))
    .split('\n')
    .find((l) => l.startsWith(oid));
  if (line === undefined) throw new Error(`${oid} not in pack`);
  const f = line.split(/\s+/);
  return { offset: Number(f[4]), size: Number(f[3]) };
}

function flipByte(file: string, at: number): void {
  fs.chmodSync(file, 0o644);
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0] ^= 0x55;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);
}

t.test('corruption in a pack is detected, never returned', async (t) => {
  const repo = smallRepo(t);
  git(repo, ['gc', '-q']);
  const blob = gitText(repo, 'rev-parse', 'HEAD:data/random.bin');
  const text = gitText(repo, 'rev-parse', 'HEAD:data/text.txt');
  const { offset, size } = packEntry(repo, blob);
  flipByte(packs(repo)[0], offset + Math.floor(size / 2));
  for (const impl of ['handle', 'portable'] as const) {
    useInflateImplementation(impl);
    const store = ObjectStore.open(repo);
    t.throws(() => store.readObject(blob), { code: 'ECORRUPT', name: 'ObjectCorruptError' });
    try {
      store.readObject(blob);
    } catch (err) {
      t.match((err as Error).message, blob, 'the message names the object');
      t.match((err as Error).message, '.pack', 'and the pack');
    }
    const out = path.join(tempDir(t, 'out'), 'blob');
    const fd = fs.openSync(out, 'w');
    await t.rejects(store.copyBlobToFd(blob, fd), { code: 'ECORRUPT' }, 'streaming copy fails too');
    fs.closeSync(fd);
    t.equal(store.readObject(text).type, 'blob', 'other objects still read');
    store.close();
  }
  useInflateImplementation('handle');

  // The index points a valid entry at the wrong id: the content is fine, the id check is not.
  const repo2 = smallRepo(t);
  git(repo2, ['gc', '-q']);
  const idxPath = packs(repo2)[0].replace(/\.pack$/, '.idx');
  fs.chmodSync(idxPath, 0o644);
  const idx = fs.readFileSync(idxPath);
  const n = idx.readUInt32BE(8 + 255 * 4);
  const offsets = 8 + 1024 + n * 24;
  const a = idx.readUInt32BE(offsets);
  idx.writeUInt32BE(idx.readUInt32BE(offsets + 4), offsets);
  idx.writeUInt32BE(a, offsets + 4);
  fs.writeFileSync(idxPath, idx);
  const swapped = [idx.subarray(1032, 1052).toString('hex'), idx.subarray(1052, 1072).toString('hex')];
  const store = ObjectStore.open(repo2);
  for (const oid of swapped) {
    t.throws(() => store.readObject(oid), { code: 'ECORRUPT' }, `swapped entry ${oid.slice(0, 8)} is refused`);
  }
  store.close();
});

t.test('a damaged pack index hides its pack, and missing-object errors say so', async (t) => {
  const repo = smallRepo(t);
  git(repo, ['gc', '-q']);
  const head = gitText(repo, 'rev-parse', 'HEAD');
  const idxPath = packs(repo)[0].replace(/\.pack$/, '.idx');
  fs.chmodSync(idxPath, 0o644);
  fs.truncateSync(idxPath, fs.statSync(idxPath).size - 7);
  const store = ObjectStore.open(repo);
  t.throws(() => store.readObject(head), { code: 'ENOOBJECT', message: /unreadable packs: .*\.idx/ });
  store.close();
});

t.test('corruption in a delta base breaks its dependents, loudly', async (t) => {
  const repo = historyRepo(t);
  git(repo, ['repack', '-adf', '-q', '--depth=50', '--window=50']);
  const idxPath = packs(repo)[0].replace(/\.pack$/, '.idx');
  const lines = gitText(repo, 'verify-pack', '-v', idxPath)
    .split('\n')
    .map((l) => l.split(/\s+/));
  const base = lines.find((f) => f[1] === 'blob' && f.length === 5 && Number(f[2]) > 100000);
  t.ok(base, 'found a whole blob that serves as a base');
  const dependents = lines.filter((f) => f.length >= 7 && f[6] === base?.[0]).map((f) => f[0]);
  t.ok(dependents.length > 0, 'with deltas on it');
  flipByte(packs(repo)[0], Number(base?.[4]) + Math.floor(Number(base?.[3]) / 2));
  const store = ObjectStore.open(repo);
  for (const oid of dependents) t.throws(() => store.readObject(oid), { code: 'ECORRUPT' });
  store.close();
});

t.test('corruption in loose objects is detected', async (t) => {
  const repo = smallRepo(t);
  const blob = gitText(repo, 'rev-parse', 'HEAD:data/text.txt');
  const readme = gitText(repo, 'rev-parse', 'HEAD:README');
  const tool = gitText(repo, 'rev-parse', 'HEAD:bin/tool');
  const file = (oid: string): string => path.join(repo, '.git', 'objects', oid.slice(0, 2), oid.slice(2));
  flipByte(file(blob), Math.floor(fs.statSync(file(blob)).size / 2));
  // A valid object file under the wrong name: only the id check catches it.
  fs.chmodSync(file(readme), 0o644);
  fs.copyFileSync(file(tool), file(readme));
  const store = ObjectStore.open(repo);
  t.throws(() => store.readObject(blob), { code: 'ECORRUPT' });
  t.throws(() => store.readObject(readme), { code: 'ECORRUPT' });
  try {
    store.readObject(readme);
  } catch (err) {
    t.match((err as Error).message, readme);
    t.match((err as Error).message, readme.slice(2), 'names the loose file');
  }
  const fd = fs.openSync(path.join(tempDir(t, 'out'), 'x'), 'w');
  for (const impl of ['handle', 'portable'] as const) {
    useInflateImplementation(impl);
    await t.rejects(store.copyBlobToFd(readme, fd), { code: 'ECORRUPT' }, `streaming copy refuses it (${impl})`);
    await t.rejects(store.copyBlobToFd(blob, fd), { code: 'ECORRUPT' }, `and the damaged one (${impl})`);
  }
  useInflateImplementation('handle');
  fs.closeSync(fd);
  t.equal(store.readObject(tool).data.toString(), '#!/bin/sh\necho hi\n');
  store.close();
});

t.test('copyBlobToFd streams big blobs exactly', async (t) => {
  const repo = initRepo(t, 'big');
  const big = randomBytes(20 * 1024 * 1024);
  fs.writeFileSync(path.join(repo, 'big.bin'), big);
  fs.writeFileSync(path.join(repo, 'small.txt'), 'small\n');
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'big']);
  const oid = gitText(repo, 'rev-parse', 'HEAD:big.bin');
  const tree = gitText(repo, 'rev-parse', 'HEAD^{tree}');
  const out = tempDir(t, 'out');
  /** Copies the big blob with each inflate implementation; true if every copy is exact. */
  const copy = async (name: string): Promise<boolean> => {
    let exact = true;
    for (const impl of ['handle', 'portable'] as const) {
      useInflateImplementation(impl);
      const store = ObjectStore.open(repo);
      const file = path.join(out, `${name}-${impl}`);
      const fd = fs.openSync(file, 'w');
      try {
        t.equal(await store.copyBlobToFd(oid, fd), big.length, `${name} (${impl}): returns the size`);
      } finally {
        fs.closeSync(fd);
        store.close();
        useInflateImplementation('handle');
      }
      exact &&= fs.readFileSync(file).equals(big);
    }
    return exact;
  };
  t.ok(await copy('loose'), 'loose blob copied exactly');
  git(repo, ['gc', '-q']);
  t.ok(await copy('packed'), 'packed blob copied exactly');
  const store = ObjectStore.open(repo);
  const fd = fs.openSync(path.join(out, 'tree'), 'w');
  await t.rejects(store.copyBlobToFd(tree, fd), { code: 'ECORRUPT' }, 'a tree is not a blob');
  fs.closeSync(fd);
  t.equal(createHash('sha1').update(store.readObject(oid).data).digest('hex'), createHash('sha1').update(big).digest('hex'), 'readObject agrees');
  store.close();

  // Deltified blobs take the read-whole path.
  const hist = historyRepo(t);
  git(hist, ['repack', '-adf', '-q', '--depth=50', '--window=50']);
  const delta = gitText(hist, 'verify-pack', '-v', packs(hist)[0].replace(/\.pack$/, '.idx'))
    .split('\n')
    .map((l) => l.split(/\s+/))
    .find((f) => f[1] === 'blob' && f.length >= 7)?.[0] as string;
  const hs = ObjectStore.open(hist);
  const dfd = fs.openSync(path.join(out, 'delta'), 'w');
  const n = await hs.copyBlobToFd(delta, dfd);
  fs.closeSync(dfd);
  hs.close();
  t.ok(fs.readFileSync(path.join(out, 'delta')).equals(git(hist, ['cat-file', 'blob', delta])), 'deltified blob copied');
  t.equal(n, fs.statSync(path.join(out, 'delta')).size);
});

t.test('crc32 mode streams a packed blob checked by its .idx CRC32, and refuses a mismatch', async (t) => {
  const repo = initRepo(t, 'crcbig');
  const big = randomBytes(3 * 1024 * 1024);
  fs.writeFileSync(path.join(repo, 'big.bin'), big);
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'big']);
  git(repo, ['gc', '-q']);
  const oid = gitText(repo, 'rev-parse', 'HEAD:big.bin');
  const out = tempDir(t, 'crcout');
  /** Streams the blob with a store verifying `verify`; the bytes written, or the error. */
  const stream = async (verify: 'sha1' | 'crc32', name: string): Promise<Buffer | Error> => {
    const store = ObjectStore.open(repo, { verify });
    const file = path.join(out, name);
    const fd = fs.openSync(file, 'w');
    try {
      const n = await store.copyBlobToFd(oid, fd);
      t.equal(n, big.length, `${name}: returns the size`);
      return fs.readFileSync(file);
    } catch (err) {
      return err as Error;
    } finally {
      fs.closeSync(fd);
      store.close();
    }
  };
  const good = await stream('crc32', 'good');
  t.ok(Buffer.isBuffer(good) && good.equals(big), 'an intact entry streams exactly');

  // The .idx records another CRC32 for the entry (its bytes are intact): only the CRC check can see it.
  const idxPath = packs(repo)[0].replace(/\.pack$/, '.idx');
  fs.chmodSync(idxPath, 0o644);
  const idx = fs.readFileSync(idxPath);
  const n = idx.readUInt32BE(8 + 255 * 4);
  let k = 0;
  while (idx.subarray(8 + 1024 + k * 20, 8 + 1024 + k * 20 + 20).toString('hex') !== oid) k++;
  const at = 8 + 1024 + n * 20 + k * 4;
  idx.writeUInt32BE((idx.readUInt32BE(at) ^ 1) >>> 0, at);
  fs.writeFileSync(idxPath, idx);
  const refused = await stream('crc32', 'mismatch');
  t.match(refused, { code: 'ECORRUPT', message: /CRC32/ }, 'a CRC32 mismatch is refused');
  const sha = await stream('sha1', 'sha1');
  t.ok(Buffer.isBuffer(sha) && sha.equals(big), 'sha1 mode checks the content itself and accepts it');

  // Damaged compressed bytes are refused too (zlib or the CRC, whichever sees it first).
  fs.writeFileSync(
    idxPath,
    (() => {
      idx.writeUInt32BE((idx.readUInt32BE(at) ^ 1) >>> 0, at);
      return idx;
    })(),
  );
  const { offset, size } = packEntry(repo, oid);
  flipByte(packs(repo)[0], offset + Math.floor(size / 2));
  t.match(await stream('crc32', 'flipped'), { code: 'ECORRUPT' }, 'a flipped byte is refused');
});

t.test('parseTree agrees with git ls-tree on real trees', async (t) => {
  const repo = smallRepo(t);
  const store = ObjectStore.open(repo);
  const trees = allObjects(repo).filter((o) => o.type === 'tree');
  for (const tree of trees) {
    const ours = parseTree(store.readObject(tree.oid).data).map((e) => `${e.mode.toString(8).padStart(6, '0')} ${e.oid.toString('hex')}\t${e.name}`);
    const theirs = git(repo, ['-c', 'core.quotePath=false', 'ls-tree', tree.oid])
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => l.replace(/ (blob|tree|commit) /, ' '));
    t.same(ours, theirs, `tree ${tree.oid.slice(0, 8)}`);
  }
  store.close();
});
