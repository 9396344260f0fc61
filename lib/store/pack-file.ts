/**
 * One packfile and its index: reads single entries by offset with positioned reads (pread),
 * never the whole pack. Parses entry headers (types 1-4, OFS_DELTA, REF_DELTA) and hands out
 * the compressed payload; inflating and delta resolution belong to object-store.ts.
 */
import fs from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { ObjectCorruptError, ObjectTooLargeError } from '../errors/errors.js';
import { OID_BYTES } from './object-id.js';
import { PackIndex } from './pack-index.js';

export const OBJ_OFS_DELTA = 6;
export const OBJ_REF_DELTA = 7;

/** Header bytes an entry can need: type/size varint, then a base offset or a base id. */
const MAX_HEADER_BYTES = 10 + OID_BYTES;
/** Largest Buffer this Node can allocate. */
const MAX_LENGTH = bufferConstants.MAX_LENGTH;

export interface PackEntry {
  /** Pack type code: 1-4 (commit, tree, blob, tag), 6 (OFS_DELTA) or 7 (REF_DELTA). */
  typeCode: number;
  /** Size from the entry header: the object's size, or the delta's size for deltas. */
  size: number;
  /** OFS_DELTA: offset of the base in this pack; otherwise -1. */
  baseOffset: number;
  /** REF_DELTA: id of the base (20 bytes); otherwise null. */
  baseOid: Buffer | null;
  /** Compressed payload (or its first bytes, from readEntryStart). */
  payload: Buffer;
  /** Absolute pack offset where the payload starts. */
  payloadOffset: number;
  /** Absolute pack offset where the entry ends (next entry or trailer). */
  end: number;
  /** The whole entry as stored (header and payload), when it was read whole. */
  raw?: Buffer;
}

/** Reads up to `length` bytes at `position`, looping over short reads; returns bytes read. */
export function preadFully(fd: number, buf: Buffer, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * A reusable buffer for compressed payloads that are consumed before the next read: saves an
 * allocation (and fresh pages to fault in) per object. Larger requests get a fresh buffer.
 */
export class ReadBuffer {
  private buf = Buffer.alloc(0);

  constructor(private readonly keepBytes: number) {}

  /** A buffer of exactly `n` bytes, valid until the next take(). */
  take(n: number): Buffer {
    if (n > this.keepBytes) return Buffer.allocUnsafe(n);
    if (this.buf.length < n) this.buf = Buffer.allocUnsafe(Math.min(this.keepBytes, Math.max(n, 2 * this.buf.length, 65536)));
    return this.buf.subarray(0, n);
  }
}

/** Positioned read into the start of `buf` without blocking; resolves to the bytes read. */
export function preadAsync(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

let nextPackId = 1;

export class PackFile {
  /** Unique per opened pack in this process: keys the delta base cache. */
  readonly id = nextPackId++;
  readonly packPath: string;
  readonly index: PackIndex;
  /** Size of the .pack file in bytes. */
  readonly size: number;
  /** Where entries end: the pack size minus its 20-byte checksum trailer. */
  readonly dataEnd: number;
  private fd: number;
  private pins = 0;
  private closing = false;

  private constructor(packPath: string, index: PackIndex, fd: number, size: number) {
    this.packPath = packPath;
    this.index = index;
    this.fd = fd;
    this.size = size;
    this.dataEnd = size - OID_BYTES;
  }

  /** Opens `<name>.pack` next to `<name>.idx` and checks they belong together. */
  static open(idxPath: string): PackFile {
    const index = PackIndex.load(idxPath);
    const packPath = idxPath.replace(/\.idx$/, '.pack');
    const fd = fs.openSync(packPath, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const head = Buffer.alloc(12);
      const tail = Buffer.alloc(OID_BYTES);
      const bad = (detail: string): ObjectCorruptError =>
        new ObjectCorruptError(`pack ${packPath} is corrupt (${detail}): restore it from a good copy or re-fetch the repository`, { data: { path: packPath } });
      if (size < 12 + OID_BYTES || preadFully(fd, head, 12, 0) !== 12) throw bad('too short');
      if (head.toString('latin1', 0, 4) !== 'PACK') throw bad('no PACK signature');
      const version = head.readUInt32BE(4);
      if (version !== 2 && version !== 3) throw bad(`unsupported version ${version}`);
      if (head.readUInt32BE(8) !== index.count) {
        throw bad(`holds ${head.readUInt32BE(8)} objects, its index ${index.count}`);
      }
      preadFully(fd, tail, OID_BYTES, size - OID_BYTES);
      if (!tail.equals(index.packChecksum)) throw bad('checksum differs from the one in its .idx');
      return new PackFile(packPath, index, fd, size);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** End offset of the entry at `offset`; throws if no entry starts there. */
  entryEnd(offset: number): number {
    const end = this.index.entryEnd(offset, this.dataEnd);
    if (end < 0) throw new ObjectCorruptError(`no pack entry starts at offset ${offset}`);
    return end;
  }

  /**
   * Reads the whole entry at `offset` with one pread of exactly its bytes, into `into` if given
   * (then the payload is only valid until that buffer's next use).
   */
  readEntry(offset: number, into?: ReadBuffer): PackEntry {
    const end = this.entryEnd(offset);
    if (end - offset >= MAX_LENGTH) {
      throw new ObjectTooLargeError(
        `the pack entry at offset ${offset} of ${this.packPath} is too large to read ` + 'into memory: stream it with copyBlobToFd',
      );
    }
    const raw = into === undefined ? Buffer.allocUnsafe(end - offset) : into.take(end - offset);
    if (preadFully(this.fd, raw, raw.length, offset) !== raw.length) {
      throw new ObjectCorruptError(`pack ends inside the entry at offset ${offset}`);
    }
    const entry = parseEntry(raw, offset, end);
    entry.raw = raw;
    return entry;
  }

  /** Reads an entry's header and at most `payloadBytes` of its payload. */
  readEntryStart(offset: number, payloadBytes: number): PackEntry {
    const end = this.entryEnd(offset);
    const len = Math.min(end - offset, MAX_HEADER_BYTES + payloadBytes);
    const raw = Buffer.allocUnsafe(len);
    if (preadFully(this.fd, raw, len, offset) !== len) {
      throw new ObjectCorruptError(`pack ends inside the entry at offset ${offset}`);
    }
    return parseEntry(raw, offset, end);
  }

  /** Positioned read without blocking, for streaming a payload. */
  readAtAsync(buf: Buffer, length: number, position: number): Promise<number> {
    return preadAsync(this.fd, buf, length, position);
  }

  /** Keeps the file open until unpin(), even if close() is called meanwhile. */
  pin(): void {
    this.pins++;
  }

  unpin(): void {
    this.pins--;
    if (this.closing && this.pins === 0) this.closeNow();
  }

  /** Closes the file now, or when the last pin is released. */
  close(): void {
    this.closing = true;
    if (this.pins === 0) this.closeNow();
  }

  private closeNow(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}

/** Parses the entry header at the start of `raw` (which holds bytes from `offset` on). */
function parseEntry(raw: Buffer, offset: number, end: number): PackEntry {
  const bad = (detail: string): ObjectCorruptError => new ObjectCorruptError(`bad entry header at offset ${offset} (${detail})`);
  let p = 0;
  let c = raw[p++];
  const typeCode = (c >> 4) & 7;
  let size = c & 0x0f;
  let scale = 16;
  while (c & 0x80) {
    if (p >= raw.length) throw bad('truncated size');
    c = raw[p++];
    size += (c & 0x7f) * scale;
    scale *= 128;
    if (scale > 2 ** 53) throw bad('size too large');
  }
  let baseOffset = -1;
  let baseOid: Buffer | null = null;
  if (typeCode === OBJ_OFS_DELTA) {
    if (p >= raw.length) throw bad('truncated base offset');
    c = raw[p++];
    let rel = c & 0x7f;
    while (c & 0x80) {
      if (p >= raw.length || rel > 2 ** 45) throw bad('truncated base offset');
      c = raw[p++];
      rel = (rel + 1) * 128 + (c & 0x7f);
    }
    baseOffset = offset - rel;
    if (rel === 0 || baseOffset < 12) throw bad(`base offset ${baseOffset} out of range`);
  } else if (typeCode === OBJ_REF_DELTA) {
    if (p + OID_BYTES > raw.length) throw bad('truncated base id');
    baseOid = Buffer.from(raw.subarray(p, p + OID_BYTES));
    p += OID_BYTES;
  } else if (typeCode < 1 || typeCode > 4) {
    throw bad(`invalid type ${typeCode}`);
  }
  return { typeCode, size, baseOffset, baseOid, payload: raw.subarray(p), payloadOffset: offset + p, end };
}
