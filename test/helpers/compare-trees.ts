/**
 * The judge: compares two directory trees entry by entry, metadata and content, and
 * returns one readable line per difference. Tests use it to prove that what gitroot
 * serves (or checks out) is exactly what was committed, so it shares no code with gitroot:
 * it uses only lstat/readdir/readlink, SHA-256 over file content, and one
 * `getfattr -R -h -P -d -m - -e hex --absolute-names` run per tree for xattrs.
 *
 * Names are handled as raw bytes end to end (a path key is the byte string of the
 * relative path, held in a latin1 string), so names that are not valid UTF-8 or hold
 * newlines, backslashes or `=` compare exactly. Timestamps are never compared.
 *
 * The walk and the hashing run in worker threads with synchronous I/O: that is several
 * times faster than promise-based fs calls, uses more than one core for SHA-256, and keeps
 * the main thread free, so the tree under test may be a FUSE mount served by the test's
 * own process without deadlock.
 */
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

/** Options for compareTrees. */
export interface CompareTreesOptions {
  /** Relative paths (UTF-8) skipped on both sides, each with everything below it. */
  ignore?: string[];
  /** Compare the SHA-256 of every regular file's content (default true). */
  contents?: boolean;
  /** Worker threads for walking and hashing (default: cores, at least 2, at most 4). */
  concurrency?: number;
}

/** Result of compareTrees. */
export interface CompareTreesResult {
  /** Entries in the expected tree that were examined (the root included, ignored ones not). */
  entries: number;
  /** One line per difference, sorted by path; empty when the trees match. */
  differences: string[];
}

type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket' | 'unknown';

/** What the walk records for one path. */
interface Entry {
  type: EntryType;
  /** Permission and special bits (st_mode & 07777). */
  perm: number;
  uid: number;
  gid: number;
  size: bigint;
  nlink: bigint;
  rdev: bigint;
  /** `dev:ino`, to find hard links within the tree. */
  inode: string;
  /** Raw symlink target bytes (latin1 string). */
  target?: string;
}

/** One tree as seen by the walk and by getfattr. */
interface TreeSnapshot {
  root: string;
  entries: Map<string, Entry>;
  /** path key -> xattr name key -> hex value. */
  xattrs: Map<string, Map<string, string>>;
  /** Entries that could not be read, and getfattr failures, already phrased as differences. */
  problems: string[];
}

/** Key of the tree root itself. */
const ROOT_KEY = '.';

/**
 * Worker thread source (plain JavaScript, evaluated as a script). Messages:
 * `{id, op: 'walk', root: string, ignore: string[]}` -> `{entries: [key, Entry][], problems}`;
 * `{id, op: 'hash', paths: Uint8Array[]}` -> one hex digest (or `error: CODE`) per path.
 */
const WORKER_SOURCE = String.raw`
(async () => {
  const { parentPort } = await import('node:worker_threads');
  const fs = await import('node:fs');
  const { createHash } = await import('node:crypto');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  const slash = Buffer.from('/');
  const TYPES = { 0o100000: 'file', 0o040000: 'dir', 0o120000: 'symlink', 0o010000: 'fifo',
    0o020000: 'char', 0o060000: 'block', 0o140000: 'socket' };
  const entryOf = (st) => ({
    type: TYPES[Number(st.mode & 0o170000n)] || 'unknown',
    perm: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid),
    size: st.size, nlink: st.nlink, rdev: st.rdev, inode: st.dev + ':' + st.ino,
  });
  const ignored = (key, ignore) => ignore.some((i) => key === i || key.startsWith(i + '/'));

  function walk(root, ignore) {
    const entries = [];
    const problems = [];
    const rootBuf = Buffer.from(root);
    const rootEntry = entryOf(fs.lstatSync(rootBuf, { bigint: true }));
    if (rootEntry.type !== 'dir') throw new Error(root + ' is not a directory');
    entries.push(['.', rootEntry]);
    const stack = [['.', rootBuf]];
    while (stack.length > 0) {
      const [dirKey, dirPath] = stack.pop();
      let names;
      try {
        names = fs.readdirSync(dirPath, { encoding: 'buffer' });
      } catch (e) {
        problems.push({ key: dirKey, message: 'cannot list directory: ' + e.message });
        continue;
      }
      for (const name of names) {
        const n = name.toString('latin1');
        const key = dirKey === '.' ? n : dirKey + '/' + n;
        if (ignored(key, ignore)) continue;
        const p = Buffer.concat([dirPath, slash, name]);
        try {
          const entry = entryOf(fs.lstatSync(p, { bigint: true }));
          if (entry.type === 'symlink') entry.target = fs.readlinkSync(p, { encoding: 'buffer' }).toString('latin1');
          entries.push([key, entry]);
          if (entry.type === 'dir') stack.push([key, p]);
        } catch (e) {
          problems.push({ key, message: 'cannot lstat: ' + e.message });
        }
      }
    }
    return { entries, problems };
  }

  function hashOne(p) {
    let fd;
    try {
      fd = fs.openSync(p, 'r');
      const h = createHash('sha256');
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        h.update(buf.subarray(0, n));
      }
      return h.digest('hex');
    } catch (e) {
      return 'error: ' + (e.code || e.message);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  parentPort.on('message', (msg) => {
    try {
      const result = msg.op === 'walk' ? walk(msg.root, msg.ignore) : msg.paths.map((p) => hashOne(Buffer.from(p)));
      parentPort.postMessage({ id: msg.id, result });
    } catch (e) {
      parentPort.postMessage({ id: msg.id, error: String((e && e.stack) || e) });
    }
  });
})();
`;

/** A few worker threads, each given one request at a time. */
class WorkerPool {
  private readonly workers: Worker[];
  private readonly idle: Worker[];
  private readonly waiting: ((w: Worker) => void)[] = [];
  private nextId = 0;

  constructor(size: number) {
    // execArgv []: plain-JS workers need none of the test runner's TypeScript hooks.
    this.workers = Array.from({ length: size }, () => new Worker(WORKER_SOURCE, { eval: true, execArgv: [] }));
    this.idle = [...this.workers];
  }

  /** Sends one request to the next free worker and resolves with its result. */
  async request<R>(msg: Record<string, unknown>): Promise<R> {
    const w = this.idle.pop() ?? (await new Promise<Worker>((resolve) => this.waiting.push(resolve)));
    const id = this.nextId++;
    try {
      return await new Promise<R>((resolve, reject) => {
        const cleanup = () => {
          w.off('message', onMessage);
          w.off('error', onError);
          w.off('exit', onExit);
        };
        const onMessage = (m: { id: number; result?: R; error?: string }) => {
          if (m.id !== id) return;
          cleanup();
          if (m.error !== undefined) reject(new Error(`compareTrees worker: ${m.error}`));
          else resolve(m.result as R);
        };
        const onError = (e: Error) => {
          cleanup();
          reject(e);
        };
        const onExit = (code: number) => {
          cleanup();
          reject(new Error(`compareTrees worker exited with status ${code}`));
        };
        w.on('message', onMessage);
        w.on('error', onError);
        w.on('exit', onExit);
        w.postMessage({ ...msg, id });
      });
    } finally {
      const next = this.waiting.shift();
      if (next) next(w);
      else this.idle.push(w);
    }
  }

  /** Stops every worker. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Turns a path key (raw bytes as latin1) into the UTF-8 text shown in differences, quoted. */
export function formatPath(key: string): string {
  return JSON.stringify(Buffer.from(key, 'latin1').toString('utf8'));
}

/** The key of a relative UTF-8 path given by a caller (`./a/b/` -> `a/b`). */
function keyOf(utf8Path: string): string {
  const clean = utf8Path.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  return clean === '' || clean === '.' ? ROOT_KEY : Buffer.from(clean, 'utf8').toString('latin1');
}

/** Absolute path, as bytes, of a key under `root`. */
function fsPath(root: string, key: string): Buffer {
  const rootBuf = Buffer.from(root, 'utf8');
  if (key === ROOT_KEY) return rootBuf;
  return Buffer.concat([rootBuf, Buffer.from(root.endsWith('/') ? '' : '/'), Buffer.from(key, 'latin1')]);
}

function isIgnored(key: string, ignore: string[]): boolean {
  return ignore.some((i) => key === i || key.startsWith(`${i}/`));
}

/** Linux dev_t decoding (as glibc's gnu_dev_major/gnu_dev_minor). */
function devMajor(rdev: bigint): bigint {
  return ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
}
function devMinor(rdev: bigint): bigint {
  return (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
}

function octal(perm: number): string {
  return perm.toString(8).padStart(4, '0');
}

/** Decodes getfattr's quoting: `\ooo` octal escapes stand for one byte, all else is literal. */
function unescapeGetfattr(raw: Buffer): Buffer {
  if (!raw.includes(0x5c)) return raw;
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    const digits = raw.subarray(i + 1, i + 4).toString('latin1');
    if (c === 0x5c && /^[0-7]{3}$/.test(digits)) {
      out.push(parseInt(digits, 8));
      i += 3;
    } else {
      out.push(c);
    }
  }
  return Buffer.from(out);
}

/**
 * Parses the output of `getfattr -d -e hex --absolute-names` into path key -> name key -> hex
 * value, relative to `root`. Lines are split on raw newlines (getfattr escapes those in
 * names); the first `=` splits name from value (getfattr escapes `=` in names).
 */
export function parseGetfattr(output: Buffer, root: string): Map<string, Map<string, string>> {
  const result = new Map<string, Map<string, string>>();
  const rootBytes = Buffer.from(root, 'utf8');
  let current: Map<string, string> | undefined;
  let start = 0;
  while (start < output.length) {
    let end = output.indexOf(0x0a, start);
    if (end < 0) end = output.length;
    const line = output.subarray(start, end);
    start = end + 1;
    if (line.length === 0) continue;
    if (line.subarray(0, 8).toString('latin1') === '# file: ') {
      const abs = unescapeGetfattr(line.subarray(8));
      if (!abs.subarray(0, rootBytes.length).equals(rootBytes)) {
        throw new Error(`compareTrees: getfattr listed ${JSON.stringify(abs.toString('utf8'))}, outside ${root}`);
      }
      let rel = abs.subarray(rootBytes.length);
      while (rel[0] === 0x2f) rel = rel.subarray(1);
      current = new Map();
      result.set(rel.length === 0 ? ROOT_KEY : rel.toString('latin1'), current);
      continue;
    }
    if (line[0] === 0x23) continue; // other comment lines
    const eq = line.indexOf(0x3d);
    const value = line.subarray(eq + 1).toString('latin1');
    if (!current || eq < 0 || !value.startsWith('0x')) {
      throw new Error(`compareTrees: cannot parse getfattr line ${JSON.stringify(line.toString('utf8'))}`);
    }
    current.set(unescapeGetfattr(line.subarray(0, eq)).toString('latin1'), value.slice(2).toLowerCase());
  }
  return result;
}

/** Runs getfattr once over a whole tree; errors on single entries become problems. */
async function readXattrs(root: string, side: string): Promise<{ xattrs: Map<string, Map<string, string>>; problems: string[] }> {
  const args = ['-R', '-h', '-P', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root];
  const child = spawn('getfattr', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT' ? new Error('compareTrees: getfattr not found (install the Debian package "attr")') : e);
    });
    child.on('close', (c) => resolve(c ?? -1));
  });
  const problems: string[] = [];
  if (code !== 0) {
    const lines = Buffer.concat(err)
      .toString('utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');
    for (const l of lines.slice(0, 20)) problems.push(`getfattr on ${side} tree: ${l}`);
    if (lines.length > 20) problems.push(`getfattr on ${side} tree: ... ${lines.length - 20} more error lines`);
    if (lines.length === 0) problems.push(`getfattr on ${side} tree: exit status ${code}`);
  }
  return { xattrs: parseGetfattr(Buffer.concat(out), root), problems };
}

/** Walks one tree (in a worker) and reads its xattrs (getfattr), at the same time. */
async function snapshot(pool: WorkerPool, root: string, side: string, ignore: string[]): Promise<TreeSnapshot> {
  type WalkResult = { entries: [string, Entry][]; problems: { key: string; message: string }[] };
  const [walked, x] = await Promise.all([pool.request<WalkResult>({ op: 'walk', root, ignore }), readXattrs(root, side)]);
  const entries = new Map(walked.entries);
  const problems = walked.problems.map((p) => `${formatPath(p.key)}: ${side} tree: ${p.message}`);
  problems.push(...x.problems);
  for (const key of [...x.xattrs.keys()]) {
    if (isIgnored(key, ignore)) x.xattrs.delete(key);
    else if (!entries.has(key)) {
      // Guards the parser: every listed path must be one the walk found.
      problems.push(`${formatPath(key)}: getfattr on ${side} tree lists xattrs for a path the walk did not find`);
    }
  }
  return { root, entries, xattrs: x.xattrs, problems };
}

/** Hashes the given files of both trees, each inode once per tree, spread over the pool. */
async function hashBoth(pool: WorkerPool, keys: string[], a: TreeSnapshot, b: TreeSnapshot): Promise<{ a: Map<string, string>; b: Map<string, string> }> {
  const jobs: { tree: TreeSnapshot; inode: string; key: string; size: bigint }[] = [];
  for (const tree of [a, b]) {
    const seen = new Set<string>();
    for (const key of keys) {
      const e = tree.entries.get(key)!;
      if (seen.has(e.inode)) continue;
      seen.add(e.inode);
      jobs.push({ tree, inode: e.inode, key, size: e.size });
    }
  }
  // Largest first so one big file does not finish alone at the end; small files in batches
  // (up to 64 files or 8 MiB) to keep message overhead low.
  jobs.sort((x, y) => (y.size > x.size ? 1 : y.size < x.size ? -1 : 0));
  const batches: (typeof jobs)[] = [];
  let batch: typeof jobs = [];
  let bytes = 0n;
  for (const job of jobs) {
    if (batch.length > 0 && (batch.length >= 64 || bytes + job.size > 8n * 1024n * 1024n)) {
      batches.push(batch);
      batch = [];
      bytes = 0n;
    }
    batch.push(job);
    bytes += job.size;
  }
  if (batch.length > 0) batches.push(batch);

  const byInode = new Map<TreeSnapshot, Map<string, string>>([
    [a, new Map()],
    [b, new Map()],
  ]);
  await Promise.all(
    batches.map(async (bt) => {
      const digests = await pool.request<string[]>({ op: 'hash', paths: bt.map((j) => fsPath(j.tree.root, j.key)) });
      bt.forEach((j, i) => byInode.get(j.tree)!.set(j.inode, digests[i]!));
    }),
  );
  const perKey = (tree: TreeSnapshot) => new Map(keys.map((k) => [k, byInode.get(tree)!.get(tree.entries.get(k)!.inode)!]));
  return { a: perKey(a), b: perKey(b) };
}

/** For every non-directory: the other paths of the tree that share its inode, sorted. */
function hardlinkPeers(entries: Map<string, Entry>): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const [key, e] of entries) {
    if (e.type === 'dir') continue;
    const g = groups.get(e.inode);
    if (g) g.push(key);
    else groups.set(e.inode, [key]);
  }
  const peers = new Map<string, string[]>();
  for (const g of groups.values()) {
    for (const key of g) peers.set(key, g.filter((k) => k !== key).sort());
  }
  return peers;
}

function showHex(hex: string | undefined): string {
  if (hex === undefined) return '(absent)';
  return hex.length > 64 ? `0x${hex.slice(0, 64)}... (${hex.length / 2} bytes)` : `0x${hex}`;
}

function showPeers(p: string[]): string {
  return p.length === 0 ? 'no other name' : `[${p.map(formatPath).join(', ')}]`;
}

/**
 * Compares two trees entry by entry: paths, type, mode bits, owner, size, symlink target,
 * device numbers, link count, hard-link structure, xattrs and content (SHA-256).
 *
 * @param expected the reference tree (e.g. what was committed)
 * @param actual the tree under test (e.g. the FUSE mount)
 * @returns the number of entries examined and one line per difference
 */
export async function compareTrees(expected: string, actual: string, opts: CompareTreesOptions = {}): Promise<CompareTreesResult> {
  const ignore = (opts.ignore ?? []).map(keyOf);
  const pool = new WorkerPool(opts.concurrency ?? Math.min(4, Math.max(2, os.availableParallelism())));
  try {
    const [a, b] = await Promise.all([snapshot(pool, path.resolve(expected), 'expected', ignore), snapshot(pool, path.resolve(actual), 'actual', ignore)]);
    const diffs: { key: string; line: string }[] = [];
    const add = (key: string, what: string, exp: string, act: string) =>
      diffs.push({ key, line: `${formatPath(key)}: ${what} expected ${exp}, actual ${act}` });

    const peersA = hardlinkPeers(a.entries);
    const peersB = hardlinkPeers(b.entries);
    const toHash: string[] = [];
    for (const key of new Set([...a.entries.keys(), ...b.entries.keys()])) {
      const ea = a.entries.get(key);
      const eb = b.entries.get(key);
      if (!ea || !eb) {
        diffs.push({ key, line: `${formatPath(key)}: ${ea ? 'missing in actual' : 'extra in actual'} (${(ea ?? eb)!.type})` });
        continue;
      }
      if (ea.type !== eb.type) {
        add(key, 'type', ea.type, eb.type);
        continue;
      }
      if (ea.perm !== eb.perm) add(key, 'mode', octal(ea.perm), octal(eb.perm));
      if (ea.uid !== eb.uid) add(key, 'uid', String(ea.uid), String(eb.uid));
      if (ea.gid !== eb.gid) add(key, 'gid', String(ea.gid), String(eb.gid));
      if ((ea.type === 'file' || ea.type === 'symlink') && ea.size !== eb.size) {
        add(key, 'size', String(ea.size), String(eb.size));
      }
      if (ea.type === 'symlink' && ea.target !== eb.target) {
        add(key, 'symlink target', formatPath(ea.target ?? ''), formatPath(eb.target ?? ''));
      }
      if ((ea.type === 'char' || ea.type === 'block') && ea.rdev !== eb.rdev) {
        add(key, 'device', `${devMajor(ea.rdev)},${devMinor(ea.rdev)}`, `${devMajor(eb.rdev)},${devMinor(eb.rdev)}`);
      }
      if (ea.nlink !== eb.nlink) add(key, 'nlink', String(ea.nlink), String(eb.nlink));
      if (ea.type !== 'dir') {
        const pa = peersA.get(key)!;
        const pb = peersB.get(key)!;
        if (pa.join('\0') !== pb.join('\0')) add(key, 'hard links', showPeers(pa), showPeers(pb));
      }
      const xa = a.xattrs.get(key);
      const xb = b.xattrs.get(key);
      for (const name of [...new Set([...(xa?.keys() ?? []), ...(xb?.keys() ?? [])])].sort()) {
        const va = xa?.get(name);
        const vb = xb?.get(name);
        if (va !== vb) add(key, `xattr ${formatPath(name)}`, showHex(va), showHex(vb));
      }
      if (ea.type === 'file' && ea.size === eb.size && opts.contents !== false) toHash.push(key);
    }

    if (toHash.length > 0) {
      const hashes = await hashBoth(pool, toHash, a, b);
      for (const key of toHash) {
        const ha = hashes.a.get(key)!;
        const hb = hashes.b.get(key)!;
        // A read error is a difference even when both sides fail alike.
        if (ha !== hb || ha.startsWith('error')) add(key, 'content sha256', ha, hb);
      }
    }

    const order = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
    diffs.sort((x, y) => order(x.key, y.key) || order(x.line, y.line));
    return {
      entries: a.entries.size,
      differences: [...a.problems, ...b.problems, ...diffs.map((d) => d.line)],
    };
  } finally {
    await pool.close();
  }
}
