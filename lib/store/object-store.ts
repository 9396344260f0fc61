/**
 * The object store: reads git objects from every pack and loose object of a repository (and
 * of its alternates), resolves delta chains iteratively with a bounded base cache, and
 * verifies every object it returns against its id. Packs are read with positioned reads, so
 * memory stays bounded by the cache and the objects in flight, not by pack size.
 */
import fs from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import path from 'node:path';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { GitrootError, ObjectCorruptError, ObjectMissingError, ObjectTooLargeError, UsageError } from '../errors/errors.js';
import { applyDelta, readDeltaHeader } from './delta.js';
import { type CachedBase, DeltaBaseCache, DEFAULT_BASE_CACHE_BYTES } from './delta-base-cache.js';
import { type GitDirs, resolveGitDir } from './git-dir.js';
import { type GitObject, type ObjectHeader, type ObjectType, PACK_TYPES, hashObject } from './git-objects.js';
import { decodeLoose, decodeLooseHeader, findLooseByPrefix, loosePath, parseLooseHeader, readFileIfExists } from './loose-objects.js';
import { isHexPrefix, toOidBuffer } from './object-id.js';
import { OBJ_OFS_DELTA, type PackEntry, PackFile, ReadBuffer, preadAsync } from './pack-file.js';
import { InflateError, StreamInflater, inflateExact, inflatePrefix } from './zlib-inflate.js';

export type { GitObject, ObjectHeader, ObjectType } from './git-objects.js';

export interface ObjectStoreOptions {
  /** Bound of the delta base cache in bytes (default 24 MiB; 0 disables it). */
  baseCacheBytes?: number;
  /**
   * How packed objects are verified (loose objects always by SHA-1):
   * - 'sha1' (default): the object's id is recomputed from its content.
   * - 'crc32': every pack entry the object is built from (the object and each delta base)
   *   must match the CRC32 that index-pack recorded in the .idx after it verified the
   *   object's SHA-1, and zlib checks each entry's Adler-32 and exact size. Catches disk
   *   and memory corruption like git's own pack reuse does, at a fraction of the cost
   *   (no SHA-1 over every served byte: ~30% of a cold read). Entries of packs without
   *   CRCs (idx v1) fall back to SHA-1. `gitroot fsck` always checks SHA-1.
   */
  verify?: 'sha1' | 'crc32';
}

/** Longer chains than git ever writes (its limit is 4095) mean a cycle or a damaged pack. */
const MAX_CHAIN = 10_000;
/** Alternates may chain; git stops at depth 5 too. */
const MAX_ALTERNATE_DEPTH = 5;
/** Compressed bytes read to find a delta's result size. */
const HEADER_PROBE_BYTES = 512;
/** Chunk sizes when streaming a blob: compressed bytes read at once, inflated bytes written at once. */
const STREAM_CHUNK = 1024 * 1024;
const STREAM_OUT_CHUNK = 256 * 1024;
/** Compressed payloads up to this size are read into one reused buffer. */
const READ_BUFFER_BYTES = 2 * 1024 * 1024;
/** git's shortest abbreviated id. */
const MIN_ABBREV = 4;
const EMPTY: Buffer = Buffer.alloc(0);

type Location = { pack: PackFile; offset: number; loose?: undefined } | { loose: string; pack?: undefined };

/** One delta of a chain being resolved: where its entry is and its inflated instructions. */
interface DeltaLink {
  pack: PackFile;
  offset: number;
  delta: Buffer;
}

/** A stored copy of an object that failed to decode or verify (reads use another copy when there is one). */
export interface DamagedCopy {
  /** The object id, 40 hex. */
  oid: string;
  /** The pack or loose file holding the damaged copy. */
  path: string;
  /** Why it was refused (the error's message). */
  detail: string;
}

/** Errors that mean "this stored copy is damaged", as opposed to usage or I/O setup errors. */
function isDamage(err: unknown): boolean {
  return err instanceof ObjectCorruptError || err instanceof ObjectMissingError || err instanceof InflateError;
}

/** One objects directory (the repository's own or an alternate): its packs and loose files. */
class ObjectDir {
  packs: PackFile[] = [];
  /** Packs that could not be opened, with the reason; retried when the directory changes. */
  broken = new Map<string, string>();
  /** Inode of each open pack's .idx: a pack replaced under the same name (a repair) is reopened. */
  private readonly inodes = new Map<PackFile, bigint>();
  private stamp = -1n;

  constructor(readonly path: string) {}

  /** Re-reads objects/pack if it changed since the last scan; true if the set of packs changed. */
  scan(onDrop: (pack: PackFile) => void): boolean {
    const idxPaths = this.listIndexes();
    if (idxPaths === null) return false;
    const kept = this.dropGone(idxPaths, onDrop);
    let changed = kept.length !== this.packs.length;
    if (this.openNew(idxPaths, kept)) changed = true;
    if (changed) sortNewestFirst(kept);
    this.packs = kept;
    return changed;
  }

  /** Paths of the .idx files in objects/pack, or null when it has not changed since the last scan. */
  private listIndexes(): Set<string> | null {
    const packDir = path.join(this.path, 'pack');
    let stamp: bigint;
    let names: string[];
    try {
      stamp = fs.statSync(packDir, { bigint: true }).mtimeNs;
      if (stamp === this.stamp) return null;
      names = fs.readdirSync(packDir);
    } catch {
      stamp = -2n;
      names = [];
    }
    this.stamp = stamp;
    return new Set(names.filter((n) => n.endsWith('.idx')).map((n) => path.join(packDir, n)));
  }

  /** The open packs whose .idx is still there (same inode); the others go to `onDrop`. */
  private dropGone(idxPaths: Set<string>, onDrop: (pack: PackFile) => void): PackFile[] {
    return this.packs.filter((p) => {
      if (idxPaths.has(p.index.path) && inodeOf(p.index.path) === this.inodes.get(p)) return true;
      this.inodes.delete(p);
      onDrop(p);
      return false;
    });
  }

  /** Opens the packs of `idxPaths` not in `kept` and appends them; records those that fail. True if any opened. */
  private openNew(idxPaths: Set<string>, kept: PackFile[]): boolean {
    const known = new Set(kept.map((p) => p.index.path));
    this.broken.clear();
    let opened = false;
    for (const idx of idxPaths) {
      if (known.has(idx)) continue;
      try {
        const ino = inodeOf(idx);
        const pack = PackFile.open(idx);
        this.inodes.set(pack, ino);
        kept.push(pack);
        opened = true;
      } catch (err) {
        // An .idx without its .pack is a pack being deleted; anything else is worth reporting.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.broken.set(idx, (err as Error).message);
      }
    }
    return opened;
  }
}

/** Sorts packs newest first, as git does: recent objects are read most. */
function sortNewestFirst(packs: PackFile[]): void {
  const mtime = (p: PackFile): number => {
    try {
      return fs.statSync(p.packPath).mtimeMs;
    } catch {
      return 0;
    }
  };
  const order = new Map(packs.map((p) => [p, mtime(p)]));
  packs.sort((a, b) => (order.get(b) as number) - (order.get(a) as number));
}

function inodeOf(file: string): bigint {
  try {
    return fs.statSync(file, { bigint: true }).ino;
  } catch {
    return -1n;
  }
}

/** Object directories of `objectsDir` and, recursively, of its `info/alternates`. */
function objectDirs(objectsDir: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  const visit = (dir: string, depth: number): void => {
    let real: string;
    try {
      real = fs.realpathSync(dir);
    } catch {
      return;
    }
    if (seen.has(real)) return;
    seen.add(real);
    out.push(dir);
    if (depth >= MAX_ALTERNATE_DEPTH) return;
    const text = readFileIfExists(path.join(dir, 'info', 'alternates'));
    if (text === null) return;
    for (const line of text.toString('utf8').split('\n')) {
      const alt = line.trim();
      if (alt !== '' && !alt.startsWith('#')) visit(path.resolve(dir, alt), depth + 1);
    }
  };
  visit(objectsDir, 0);
  return out;
}

function writeAll(fd: number, buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number): void => {
      if (off >= buf.length) {
        resolve();
        return;
      }
      fs.write(fd, buf, off, buf.length - off, null, (err, n) => (err ? reject(err) : step(off + n)));
    };
    step(0);
  });
}

/** Reads up to `len` bytes at `pos` into the start of `buf`; resolves to the count read. */
type PositionedRead = (buf: Buffer, len: number, pos: number) => Promise<number>;

/** Chunks of the bytes [start, end) that `read` returns, each in a fresh buffer. */
async function* readRange(read: PositionedRead, start: number, end: number): AsyncGenerator<Buffer> {
  for (let pos = start; pos < end;) {
    const len = Math.min(STREAM_CHUNK, end - pos);
    const buf = Buffer.allocUnsafe(len);
    const n = await read(buf, len, pos);
    if (n === 0) throw new ObjectCorruptError(`file ends at offset ${pos}, inside an object`);
    pos += n;
    yield buf.subarray(0, n);
  }
}

/**
 * Inflates the bytes [start, end) that `read` returns with one input and one output buffer,
 * reused throughout; each piece of output goes to `sink`, which must be done with it when
 * its promise settles.
 */
async function inflateRange(inflater: StreamInflater, read: PositionedRead, start: number, end: number, sink: (piece: Buffer) => Promise<void>): Promise<void> {
  const input = Buffer.allocUnsafe(Math.max(1, Math.min(STREAM_CHUNK, end - start)));
  const output = Buffer.allocUnsafe(STREAM_OUT_CHUNK);
  let pos = start;
  let inOff = 0;
  let inLen = 0;
  for (;;) {
    if (inOff === inLen && pos < end) {
      inLen = await read(input, Math.min(input.length, end - pos), pos);
      if (inLen === 0) throw new ObjectCorruptError(`file ends at offset ${pos}, inside an object`);
      pos += inLen;
      inOff = 0;
    }
    const step = inflater.step(input, inOff, inLen - inOff, output, pos >= end);
    inOff += step.consumed;
    if (step.produced > 0) await sink(output.subarray(0, step.produced));
    if (step.ended) return;
  }
}

/**
 * Checks a pack entry against the CRC32 its .idx records (index-pack's, after it verified the
 * object): false when the .idx records none (v1); throws ObjectCorruptError on a mismatch.
 */
function entryCrcMatches(pack: PackFile, offset: number, entry: PackEntry): boolean {
  const want = pack.index.crc32AtOffset(offset);
  if (want === undefined) return false;
  if (zlib.crc32(entry.raw!) !== want) {
    throw new ObjectCorruptError(`the pack entry at offset ${offset} of ${pack.packPath} fails its CRC32 check`);
  }
  return true;
}

/** Key of a packed copy: the opened pack (a pack replaced under the same name is a new one) and the id. */
function packKey(pack: PackFile, id: Buffer): string {
  return `p${pack.id}:${id.toString('hex')}`;
}

/** Key of a loose copy: its path and inode (a file written again under the same name is a new copy). */
function looseKey(file: string): string {
  return `l${inodeOf(file)}:${file}`;
}

export class ObjectStore {
  /** The repository's directories. */
  readonly dirs: GitDirs;
  private readonly objectDirs: ObjectDir[];
  private readonly cache: DeltaBaseCache;
  private readonly readBuffer = new ReadBuffer(READ_BUFFER_BYTES);
  private lastPack: PackFile | null = null;
  private closed = false;
  private readonly verifyMode: 'sha1' | 'crc32';
  /** Copies that failed, keyed by copyKey: lookups skip them so a good copy elsewhere wins. */
  private readonly damagedCopies = new Map<string, DamagedCopy>();

  private constructor(dirs: GitDirs, opts: ObjectStoreOptions) {
    this.dirs = dirs;
    this.cache = new DeltaBaseCache(opts.baseCacheBytes ?? DEFAULT_BASE_CACHE_BYTES);
    this.verifyMode = opts.verify ?? 'sha1';
    this.objectDirs = objectDirs(dirs.objectsDir).map((d) => new ObjectDir(d));
    this.rescan();
  }

  /** Opens the store of a bare repository, a `.git` directory, or a work tree holding `.git`. */
  static open(gitdir: string, opts: ObjectStoreOptions = {}): ObjectStore {
    const dirs = resolveGitDir(gitdir);
    const config = readFileIfExists(path.join(dirs.commonDir, 'config'))?.toString('utf8') ?? '';
    if (/^\s*objectformat\s*=\s*sha256\s*$/im.test(config)) {
      throw new UsageError(`${dirs.gitDir} uses SHA-256 object ids, which gitroot does not read: ` + 'use a SHA-1 repository (git init --object-format=sha1)', {
        data: { repo: dirs.gitDir },
      });
    }
    return new ObjectStore(dirs, opts);
  }

  /**
   * Reads and verifies an object; throws ObjectMissingError or ObjectCorruptError. A copy that
   * fails to decode or verify is remembered (see damaged()) and the next copy is tried: another
   * pack, a loose file, or a pack that appeared since (a repair); the first error is thrown
   * when no copy is good.
   */
  readObject(oid: string | Buffer): GitObject {
    const id = this.checkOid(oid);
    let firstError: unknown = null;
    for (let vanished = 0; vanished < 2;) {
      // When every copy is known damaged, the first one is read again: its own error is the
      // answer (and a damage that has gone away, e.g. a transient read error, heals).
      const loc = this.find(id) ?? (firstError === null ? this.find(id, true) : null);
      if (loc === null) break;
      try {
        if (loc.pack !== undefined) return this.readPacked(id, loc.pack, loc.offset);
        const file = readFileIfExists(loc.loose);
        if (file !== null) return this.verify(id, this.decodeLooseFile(id, file, loc.loose), loc.loose);
      } catch (err) {
        if (!isDamage(err)) throw err;
        firstError ??= err;
        // Each failure marks a new copy, so this ends; a copy failing twice means none is left.
        if (!this.markDamaged(id, loc, err)) break;
        continue;
      }
      // The loose file went away between lookup and read (a concurrent gc packed it): look again.
      this.rescan();
      vanished++;
    }
    if (firstError !== null) throw firstError;
    throw this.missing(id);
  }

  /** Every damaged copy met so far (each also skipped by later reads), in the order met. */
  damaged(): DamagedCopy[] {
    return [...this.damagedCopies.values()];
  }

  /** Type and size of an object without reading its content (not verified against the id). */
  readHeader(oid: string | Buffer): ObjectHeader {
    const id = this.checkOid(oid);
    const loc = this.find(id) ?? this.find(id, true);
    if (loc === null) throw this.missing(id);
    const where = loc.pack?.packPath ?? loc.loose ?? '';
    try {
      return loc.pack !== undefined ? this.packedHeader(loc.pack, loc.offset) : this.looseHeader(loc.loose);
    } catch (err) {
      throw this.wrap(err, id, where);
    }
  }

  /** True if the repository (or an alternate) holds the object. Does not read or verify it. */
  has(oid: string | Buffer): boolean {
    return this.find(this.checkOid(oid), true) !== null;
  }

  /**
   * Writes a blob's content to `fd` (at its current position) and returns its size. Whole
   * packed and loose blobs are streamed (inflated and hashed in chunks), deltified ones are read
   * whole first. The hash is checked at the end: on rejection, what was written is garbage.
   */
  async copyBlobToFd(oid: string | Buffer, fd: number): Promise<number> {
    return this.copyBlobTo(oid, (piece) => writeAll(fd, piece));
  }

  /**
   * Streams a blob's content to `sink` in pieces and returns its size, as copyBlobToFd does.
   * A piece may be a view of a buffer that is reused once `sink`'s promise settles: copy
   * what must outlive it.
   */
  async copyBlobTo(oid: string | Buffer, sink: (piece: Buffer) => Promise<void>): Promise<number> {
    const id = this.checkOid(oid);
    const loc = this.find(id) ?? this.find(id, true);
    if (loc === null) throw this.missing(id);
    try {
      return await this.copyBlobFrom(id, loc, sink);
    } catch (err) {
      // Bytes may have reached `fd` already, so no retry here: the copy is remembered as damaged
      // and the caller's next attempt (a re-read of the file) gets another copy if there is one.
      if (isDamage(err)) this.markDamaged(id, loc, err);
      throw err;
    }
  }

  private async copyBlobFrom(id: Buffer, loc: Location, out: (piece: Buffer) => Promise<void>): Promise<number> {
    if (loc.pack !== undefined) {
      const pack = loc.pack;
      let entry: PackEntry;
      try {
        entry = pack.readEntryStart(loc.offset, 0);
      } catch (err) {
        throw this.wrap(err, id, pack.packPath);
      }
      if (entry.typeCode > 4) return this.copyWhole(id, out, pack.packPath);
      this.expectBlob(id, PACK_TYPES[entry.typeCode] as ObjectType, pack.packPath);
      pack.pin();
      try {
        const read: PositionedRead = (buf, len, pos) => pack.readAtAsync(buf, len, pos);
        const crc = this.verifyMode === 'crc32' ? pack.index.crc32AtOffset(loc.offset) : undefined;
        const known = { type: 'blob' as const, size: entry.size };
        if (crc !== undefined) return await this.streamCrcChecked(id, pack, loc.offset, entry, crc, read, out);
        return await this.streamObject(id, pack.packPath, read, entry.payloadOffset, entry.end, out, known);
      } finally {
        pack.unpin();
      }
    }
    let file: number;
    try {
      file = fs.openSync(loc.loose, 'r');
    } catch {
      // Packed away by a concurrent gc since the lookup: the whole-object path looks again.
      return this.copyWhole(id, out, loc.loose);
    }
    try {
      return await this.streamObject(id, loc.loose, (buf, len, pos) => preadAsync(file, buf, len, pos), 0, fs.fstatSync(file).size, out, null);
    } finally {
      fs.closeSync(file);
    }
  }

  /**
   * Full hex ids of objects starting with the hex `prefix` (4-40 digits, any case), sorted,
   * at most `limit` of them. Used to resolve abbreviated ids.
   */
  findByPrefix(prefix: string, limit = 16): string[] {
    if (prefix.length < MIN_ABBREV || !isHexPrefix(prefix)) {
      throw new UsageError(`invalid abbreviated object id '${prefix}': give ${MIN_ABBREV} to 40 hex digits`);
    }
    const p = prefix.toLowerCase();
    const collect = (): string[] => {
      const found = new Set<string>();
      for (const dir of this.objectDirs) {
        for (const pack of dir.packs) {
          for (const oid of pack.index.findByPrefix(p, limit)) found.add(oid.toString('hex'));
        }
        for (const hex of findLooseByPrefix(dir.path, p, limit)) found.add(hex);
      }
      return [...found].sort().slice(0, limit);
    };
    const first = collect();
    return first.length === 0 && this.rescan() ? collect() : first;
  }

  /** Closes every pack file; streams already running finish first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const dir of this.objectDirs) {
      for (const pack of dir.packs) pack.close();
      dir.packs = [];
    }
    this.cache.clear();
    this.lastPack = null;
  }

  private checkOid(oid: string | Buffer): Buffer {
    if (this.closed) throw new UsageError('the object store is closed: open a new one with ObjectStore.open');
    return toOidBuffer(oid);
  }

  /** Rescans every objects/pack directory that changed; true if any set of packs changed. */
  private rescan(): boolean {
    let changed = false;
    const drop = (pack: PackFile): void => {
      this.cache.dropPack(pack.id);
      if (this.lastPack === pack) this.lastPack = null;
      pack.close();
    };
    for (const dir of this.objectDirs) if (dir.scan(drop)) changed = true;
    return changed;
  }

  private findPacked(id: Buffer, includeDamaged: boolean): Location | null {
    const skip = (pack: PackFile): boolean => !includeDamaged && this.damagedCopies.size > 0 && this.damagedCopies.has(packKey(pack, id));
    const last = this.lastPack;
    if (last !== null) {
      const offset = last.index.lookup(id);
      if (offset >= 0 && !skip(last)) return { pack: last, offset };
    }
    for (const dir of this.objectDirs) {
      for (const pack of dir.packs) {
        if (pack === last) continue;
        const offset = pack.index.lookup(id);
        if (offset >= 0 && !skip(pack)) {
          this.lastPack = pack;
          return { pack, offset };
        }
      }
    }
    return null;
  }

  /**
   * Where an object is: packs first, then loose files, then again after a rescan of the packs.
   * Copies found damaged are skipped unless `includeDamaged`.
   */
  private find(id: Buffer, includeDamaged = false): Location | null {
    for (let attempt = 0; attempt < 2; attempt++) {
      const packed = this.findPacked(id, includeDamaged);
      if (packed !== null) return packed;
      const hex = id.toString('hex');
      for (const dir of this.objectDirs) {
        const file = loosePath(dir.path, hex);
        if (!fs.existsSync(file)) continue;
        if (includeDamaged || this.damagedCopies.size === 0 || !this.damagedCopies.has(looseKey(file))) return { loose: file };
      }
      if (!this.rescan()) break;
    }
    return null;
  }

  /** Remembers a copy that failed, so lookups pass it over; false if it was already known. */
  private markDamaged(id: Buffer, loc: Location, err: unknown): boolean {
    const key = loc.pack !== undefined ? packKey(loc.pack, id) : looseKey(loc.loose);
    if (this.damagedCopies.has(key)) return false;
    this.damagedCopies.set(key, {
      oid: id.toString('hex'),
      path: loc.pack?.packPath ?? loc.loose ?? '',
      detail: (err as Error).message,
    });
    return true;
  }

  /** Reads and verifies the packed copy of `id` at `offset`; errors name the object and the pack. */
  private readPacked(id: Buffer, pack: PackFile, offset: number): GitObject {
    try {
      return this.decodePacked(id, pack, offset);
    } catch (err) {
      throw this.wrap(err, id, pack.packPath);
    }
  }

  /**
   * Decodes the pack entry at `offset` and verifies the result: by the CRC32 of every entry it
   * is built from when the store verifies so and the .idx records them, else by SHA-1. For a
   * delta, walks down its chain (iteratively, and through other packs for REF_DELTA bases) to a
   * whole object or a cached base, then applies the deltas back up, caching each intermediate
   * base. The returned data is never shared with the cache.
   */
  private decodePacked(id: Buffer, pack: PackFile, offset: number): GitObject {
    const chain: DeltaLink[] = [];
    let p = pack;
    let off = offset;
    let base: CachedBase;
    let shared = false;
    let crcOk = this.verifyMode === 'crc32';
    for (;;) {
      const hit = this.cache.get(p.id, off);
      if (hit !== undefined) {
        base = hit;
        shared = true;
        break;
      }
      const entry = p.readEntry(off, this.readBuffer);
      if (crcOk) crcOk = entryCrcMatches(p, off, entry);
      if (entry.typeCode <= 4) {
        base = this.inflateWhole(p, off, entry, chain.length > 0);
        break;
      }
      const next = this.pushDelta(chain, p, off, entry);
      if (next.pack === undefined) {
        // A REF_DELTA base stored loose: whole by definition, read and verified on its own.
        base = this.readObject(entry.baseOid as Buffer);
        crcOk = false; // the whole object is then verified by SHA-1 below
        break;
      }
      p = next.pack;
      off = next.offset;
    }
    const obj = chain.length === 0 ? { type: base.type, data: shared ? Buffer.from(base.data) : base.data } : this.applyChain(base, chain);
    return crcOk ? obj : this.verify(id, obj, pack.packPath);
  }

  /** Inflates a whole (undeltified) entry; caches it when it is the base of a delta chain. */
  private inflateWhole(pack: PackFile, offset: number, entry: PackEntry, isChainBase: boolean): CachedBase {
    if (entry.size >= bufferConstants.MAX_LENGTH) {
      throw new ObjectTooLargeError(`a ${entry.size}-byte object is too large to read into memory: stream it with copyBlobToFd`);
    }
    const base = { type: PACK_TYPES[entry.typeCode] as ObjectType, data: inflateExact(entry.payload, entry.size) };
    if (isChainBase) this.cache.set(pack.id, offset, base.type, base.data);
    return base;
  }

  /** Inflates a delta entry onto `chain` and says where its base is. */
  private pushDelta(chain: DeltaLink[], pack: PackFile, offset: number, entry: PackEntry): Location {
    // Inflate now: the payload lives in the shared read buffer until the next read.
    chain.push({ pack, offset, delta: inflateExact(entry.payload, entry.size) });
    if (chain.length > MAX_CHAIN) throw new ObjectCorruptError(`delta chain longer than ${MAX_CHAIN}`);
    return this.deltaBase(pack, entry);
  }

  /** Applies the deltas of `chain` (outermost first) to `base`, caching each intermediate result. */
  private applyChain(base: CachedBase, chain: DeltaLink[]): GitObject {
    let data = base.data;
    for (let i = chain.length - 1; i >= 0; i--) {
      const link = chain[i];
      data = applyDelta(data, link.delta);
      if (i > 0) this.cache.set(link.pack.id, link.offset, base.type, data);
    }
    return { type: base.type, data };
  }

  /** Where the base of a delta entry is. */
  private deltaBase(pack: PackFile, entry: PackEntry): Location {
    if (entry.typeCode === OBJ_OFS_DELTA) return { pack, offset: entry.baseOffset };
    const baseOid = entry.baseOid as Buffer;
    const offset = pack.index.lookup(baseOid);
    if (offset >= 0) return { pack, offset };
    const loc = this.find(baseOid);
    if (loc === null) {
      throw new ObjectMissingError(`delta base ${baseOid.toString('hex')} is missing`, { data: { oid: baseOid.toString('hex') } });
    }
    return loc;
  }

  private packedHeader(pack: PackFile, offset: number): ObjectHeader {
    let p = pack;
    let off = offset;
    let size = -1;
    for (let depth = 0; depth <= MAX_CHAIN; depth++) {
      const hit = this.cache.get(p.id, off);
      if (hit !== undefined) return { type: hit.type, size: size < 0 ? hit.data.length : size };
      const entry = p.readEntryStart(off, size < 0 ? HEADER_PROBE_BYTES : 0);
      if (entry.typeCode <= 4) return { type: PACK_TYPES[entry.typeCode] as ObjectType, size: size < 0 ? entry.size : size };
      if (size < 0) size = this.deltaResultSize(p, off, entry);
      const next = this.deltaBase(p, entry);
      if (next.pack === undefined) return { type: this.looseHeader(next.loose).type, size };
      p = next.pack;
      off = next.offset;
    }
    throw new ObjectCorruptError(`delta chain longer than ${MAX_CHAIN}`);
  }

  /** Result size of a delta entry from the first bytes of its inflated payload. */
  private deltaResultSize(pack: PackFile, offset: number, entry: PackEntry): number {
    try {
      return readDeltaHeader(inflatePrefix(entry.payload, 32)).resultSize;
    } catch (err) {
      // The probe may have cut a large zlib block header short: retry with the whole payload.
      if (entry.payloadOffset + entry.payload.length >= entry.end) throw err;
      return readDeltaHeader(inflatePrefix(pack.readEntry(offset).payload, 32)).resultSize;
    }
  }

  private looseHeader(file: string): ObjectHeader {
    const fd = fs.openSync(file, 'r');
    try {
      const start = Buffer.alloc(HEADER_PROBE_BYTES);
      const n = fs.readSync(fd, start, 0, start.length, 0);
      try {
        return decodeLooseHeader(start.subarray(0, n));
      } catch (err) {
        if (n < start.length) throw err;
        return decodeLooseHeader(fs.readFileSync(file));
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  private decodeLooseFile(id: Buffer, file: Buffer, where: string): GitObject {
    try {
      return decodeLoose(file);
    } catch (err) {
      throw this.wrap(err, id, where);
    }
  }

  private verify(id: Buffer, obj: GitObject, where: string): GitObject {
    const actual = hashObject(obj.type, obj.data);
    if (!actual.equals(id)) {
      // Whatever produced the bad bytes may sit in the cache: start clean.
      this.cache.clear();
      throw this.corrupt(id, where, `content hashes to ${actual.toString('hex')}`);
    }
    return obj;
  }

  private expectBlob(id: Buffer, type: ObjectType, where: string): void {
    if (type !== 'blob') throw this.corrupt(id, where, `it is a ${type}, where a blob was expected`);
  }

  /** Reads a (deltified) blob whole and hands it to `out`. */
  private async copyWhole(id: Buffer, out: (piece: Buffer) => Promise<void>, where: string): Promise<number> {
    const obj = this.readObject(id);
    this.expectBlob(id, obj.type, where);
    await out(obj.data);
    return obj.data.length;
  }

  /**
   * Streams a whole packed blob checked like decodePacked's 'crc32' mode: the CRC32 of the
   * entry's compressed bytes (header included) must be the one index-pack recorded after it
   * verified the object's SHA-1, and zlib checks its Adler-32 and the exact size. No SHA-1
   * over the inflated bytes (the spill of a 177 MB library: ~0.3 s of CPU less). As with
   * streamObject, what reached `out` is garbage when this rejects.
   */
  private async streamCrcChecked(
    id: Buffer,
    pack: PackFile,
    offset: number,
    entry: PackEntry,
    want: number,
    read: PositionedRead,
    out: (piece: Buffer) => Promise<void>,
  ): Promise<number> {
    const head = Buffer.allocUnsafe(entry.payloadOffset - offset);
    let crc = 0;
    try {
      if ((await read(head, head.length, offset)) !== head.length) throw new ObjectCorruptError(`pack ends inside the entry at offset ${offset}`);
      crc = zlib.crc32(head);
    } catch (err) {
      throw this.wrap(err, id, pack.packPath);
    }
    // inflateRange reads [payloadOffset, end) front to back exactly once: the CRC follows the reads.
    const checked: PositionedRead = async (buf, len, pos) => {
      const n = await read(buf, len, pos);
      crc = zlib.crc32(buf.subarray(0, n), crc);
      return n;
    };
    let written = 0;
    const sink = async (piece: Buffer): Promise<void> => {
      if (written + piece.length > entry.size) throw new ObjectCorruptError(`inflates to more than ${entry.size} bytes`);
      await out(piece);
      written += piece.length;
    };
    const inflater = StreamInflater.create();
    if (inflater === null) {
      return this.streamObject(id, pack.packPath, read, entry.payloadOffset, entry.end, out, { type: 'blob', size: entry.size });
    }
    try {
      await inflateRange(inflater, checked, entry.payloadOffset, entry.end, sink);
    } catch (err) {
      throw this.wrap(err, id, pack.packPath);
    } finally {
      inflater.close();
    }
    if (written !== entry.size) throw this.corrupt(id, pack.packPath, `inflates to ${written} bytes, expected ${entry.size}`);
    if (crc !== want) {
      throw this.corrupt(id, pack.packPath, `the pack entry at offset ${offset} fails its CRC32 check`);
    }
    return written;
  }

  /**
   * Inflates the compressed bytes [start, end) that `read` returns and writes the object body
   * to `out`, hashing as it goes. `known` gives type and size for pack entries; loose objects
   * carry them in their first inflated bytes.
   */
  private async streamObject(
    id: Buffer,
    where: string,
    read: PositionedRead,
    start: number,
    end: number,
    out: (piece: Buffer) => Promise<void>,
    known: ObjectHeader | null,
  ): Promise<number> {
    const hash = createHash('sha1');
    let header = known;
    let head = EMPTY;
    let written = 0;
    if (header !== null) hash.update(`${header.type} ${header.size}\0`);
    // Chunks may be views of a reused buffer: everything is consumed before returning.
    const sink = async (piece: Buffer): Promise<void> => {
      let chunk = piece;
      if (header === null) {
        // Loose object: collect the "<type> <size>\0" header first.
        head = Buffer.concat([head, chunk]);
        if (head.indexOf(0) < 0 && head.length < 64) return;
        const h = parseLooseHeader(head);
        this.expectBlob(id, h.type, where);
        header = { type: h.type, size: h.size };
        hash.update(head.subarray(0, h.length));
        chunk = head.subarray(h.length);
      }
      if (written + chunk.length > header.size) throw new ObjectCorruptError(`inflates to more than ${header.size} bytes`);
      hash.update(chunk);
      await out(chunk);
      written += chunk.length;
    };
    try {
      const inflater = StreamInflater.create();
      if (inflater !== null) {
        try {
          await inflateRange(inflater, read, start, end, sink);
        } finally {
          inflater.close();
        }
      } else {
        await pipeline(readRange(read, start, end), zlib.createInflate({ chunkSize: STREAM_OUT_CHUNK }), async (inflated: AsyncIterable<Buffer>) => {
          for await (const chunk of inflated) await sink(chunk);
        });
      }
    } catch (err) {
      throw this.wrap(err, id, where);
    }
    if (header === null || written !== header.size) {
      throw this.corrupt(id, where, `inflates to ${written} bytes, expected ${header?.size ?? 'a header'}`);
    }
    const actual = hash.digest();
    if (!actual.equals(id)) throw this.corrupt(id, where, `content hashes to ${actual.toString('hex')}`);
    return written;
  }

  private corrupt(id: Buffer, where: string, detail: string, cause?: unknown): ObjectCorruptError {
    const oid = id.toString('hex');
    return new ObjectCorruptError(
      `object ${oid} in ${where} is corrupt (${detail}): run 'git -C ${this.dirs.gitDir} fsck' ` + 'to see the damage, then restore or re-fetch the repository',
      { data: { oid, path: where }, cause },
    );
  }

  /** Turns an error met while decoding `id` into one that names the object and its file. */
  private wrap(err: unknown, id: Buffer, where: string): Error {
    if (err instanceof ObjectMissingError) {
      const oid = id.toString('hex');
      return new ObjectMissingError(
        `object ${oid} in ${where} cannot be decoded: ${err.message}; ` + `run 'git -C ${this.dirs.gitDir} fsck' and re-fetch the repository`,
        { data: { oid, path: where, ...err.data }, cause: err },
      );
    }
    if (err instanceof ObjectCorruptError && String(err.data.oid) === id.toString('hex')) return err;
    if (err instanceof ObjectCorruptError || err instanceof InflateError) {
      return this.corrupt(id, where, err.message, err);
    }
    if (err instanceof GitrootError) return err;
    if (err instanceof Error && typeof (err as NodeJS.ErrnoException).errno === 'number' && String((err as NodeJS.ErrnoException).code).startsWith('Z_')) {
      return this.corrupt(id, where, err.message, err);
    }
    return err instanceof Error ? err : new Error(String(err));
  }

  private missing(id: Buffer): ObjectMissingError {
    const oid = id.toString('hex');
    const broken = this.objectDirs.flatMap((d) => [...d.broken].map(([p, why]) => `${p}: ${why}`));
    const also = broken.length === 0 ? '' : ` (unreadable packs: ${broken.join('; ')})`;
    return new ObjectMissingError(
      `object ${oid} is not in ${this.dirs.objectsDir}${also}: fetch the commit that needs it again ` + `or run 'git -C ${this.dirs.gitDir} fsck'`,
      { data: { oid } },
    );
  }
}
