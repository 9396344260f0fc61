/**
 * Pack index (.idx) files, versions 2 and 1: object id -> pack offset by fanout and binary
 * search over the raw file (kept as one Buffer, no per-object JS values), abbreviated id
 * search, and each object's extent in the pack from a sorted table of offsets built once.
 */
import fs from 'node:fs';
import { ObjectCorruptError } from '../errors/errors.js';
import { OID_BYTES } from './object-id.js';

const V2_MAGIC = 0xff744f63; // "\377tOc"
const FANOUT_BYTES = 256 * 4;
const TRAILER_BYTES = 2 * OID_BYTES;

export class PackIndex {
  /** Number of objects in the pack. */
  readonly count: number;
  /** 1 or 2. */
  readonly version: number;
  /** SHA-1 of the pack file, as recorded at the end of the index. */
  readonly packChecksum: Buffer;

  private readonly buf: Buffer;
  private readonly fanout: number;
  private readonly oidBase: number;
  private readonly oidStride: number;
  private readonly offsetBase: number;
  private readonly offsetStride: number;
  private readonly largeBase: number;
  private readonly largeCount: number;
  private sorted: Float64Array | null = null;
  /** Index position of each entry of `sorted` (offset order -> position order). */
  private sortedPos: Uint32Array | null = null;

  private constructor(
    readonly path: string,
    buf: Buffer,
  ) {
    this.buf = buf;
    const bad = (detail: string): ObjectCorruptError =>
      new ObjectCorruptError(`pack index ${path} is corrupt (${detail}): delete it and run 'git index-pack' on its .pack`, { data: { path } });
    if (buf.length < FANOUT_BYTES + TRAILER_BYTES) throw bad('too short');
    if (buf.readUInt32BE(0) === V2_MAGIC) {
      this.version = buf.readUInt32BE(4);
      if (this.version !== 2) throw bad(`unsupported version ${this.version}`);
      this.fanout = 8;
    } else {
      this.version = 1;
      this.fanout = 0;
    }
    let prev = 0;
    for (let i = 0; i < 256; i++) {
      const v = buf.readUInt32BE(this.fanout + i * 4);
      if (v < prev) throw bad('fanout table not sorted');
      prev = v;
    }
    const n = prev;
    this.count = n;
    const tableStart = this.fanout + FANOUT_BYTES;
    if (this.version === 2) {
      this.oidBase = tableStart;
      this.oidStride = OID_BYTES;
      this.offsetBase = tableStart + n * (OID_BYTES + 4);
      this.offsetStride = 4;
      this.largeBase = this.offsetBase + n * 4;
      const largeBytes = buf.length - TRAILER_BYTES - this.largeBase;
      if (largeBytes < 0 || largeBytes % 8 !== 0) throw bad(`size ${buf.length} does not fit ${n} objects`);
      this.largeCount = largeBytes / 8;
    } else {
      this.offsetBase = tableStart;
      this.offsetStride = 4 + OID_BYTES;
      this.oidBase = tableStart + 4;
      this.oidStride = 4 + OID_BYTES;
      this.largeBase = 0;
      this.largeCount = 0;
      if (buf.length !== tableStart + n * (4 + OID_BYTES) + TRAILER_BYTES) {
        throw bad(`size ${buf.length} does not fit ${n} objects`);
      }
    }
    this.packChecksum = buf.subarray(buf.length - TRAILER_BYTES, buf.length - OID_BYTES);
  }

  /** Reads and checks the structure of an .idx file. */
  static load(path: string): PackIndex {
    return new PackIndex(path, fs.readFileSync(path));
  }

  /** Position of `oid` (20 bytes) in the sorted table, or -1. */
  position(oid: Buffer): number {
    const first = oid[0];
    let lo = first === 0 ? 0 : this.buf.readUInt32BE(this.fanout + (first - 1) * 4);
    let hi = this.buf.readUInt32BE(this.fanout + first * 4);
    const w0 = oid.readUInt32BE(0);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.compareAt(mid, oid, w0);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  /** Pack offset of `oid`, or -1 if this pack does not hold it. */
  lookup(oid: Buffer): number {
    const i = this.position(oid);
    return i < 0 ? -1 : this.offsetAt(i);
  }

  /** The object id at a position (a view into the index). */
  oidAt(i: number): Buffer {
    const p = this.oidBase + i * this.oidStride;
    return this.buf.subarray(p, p + OID_BYTES);
  }

  /** The pack offset of the object at a position. */
  offsetAt(i: number): number {
    const v = this.buf.readUInt32BE(this.offsetBase + i * this.offsetStride);
    if (this.version === 1 || v < 0x80000000) return v;
    const k = v & 0x7fffffff;
    if (k >= this.largeCount) {
      throw new ObjectCorruptError(`pack index ${this.path} is corrupt (bad large offset): ` + `delete it and run 'git index-pack' on its .pack`, {
        data: { path: this.path },
      });
    }
    const p = this.largeBase + k * 8;
    return this.buf.readUInt32BE(p) * 2 ** 32 + this.buf.readUInt32BE(p + 4);
  }

  /** CRC32 of the object's packed bytes at a position (version 2 only, else undefined). */
  crc32At(i: number): number | undefined {
    return this.version === 2 ? this.buf.readUInt32BE(this.oidBase + this.count * OID_BYTES + i * 4) : undefined;
  }

  /** Ids (20-byte views) starting with the hex `prefix` (1-40 lower-case digits), at most `limit`. */
  findByPrefix(prefix: string, limit: number): Buffer[] {
    const want = Buffer.alloc(OID_BYTES);
    want.write(prefix.length % 2 === 0 ? prefix : prefix + '0', 'hex');
    const fullBytes = prefix.length >> 1;
    const odd = prefix.length % 2 === 1;
    let lo = 0;
    let hi = this.count;
    if (prefix.length >= 2) {
      lo = want[0] === 0 ? 0 : this.buf.readUInt32BE(this.fanout + (want[0] - 1) * 4);
      hi = this.buf.readUInt32BE(this.fanout + want[0] * 4);
    }
    const w0 = want.readUInt32BE(0);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareAt(mid, want, w0) < 0) lo = mid + 1;
      else hi = mid;
    }
    const found: Buffer[] = [];
    for (let i = lo; i < this.count && found.length < limit; i++) {
      const p = this.oidBase + i * this.oidStride;
      if (this.buf.compare(want, 0, fullBytes, p, p + fullBytes) !== 0) break;
      if (odd && (this.buf[p + fullBytes] & 0xf0) !== want[fullBytes]) break;
      found.push(this.oidAt(i));
    }
    return found;
  }

  /**
   * End of the object that starts at `offset`: the next object's offset, or `dataEnd` (pack
   * size minus its 20-byte trailer) for the last one. -1 if no object starts at `offset`.
   */
  entryEnd(offset: number, dataEnd: number): number {
    const k = this.sortedIndexOf(offset);
    if (k < 0) return -1;
    const s = this.sorted!;
    return k + 1 < s.length ? s[k + 1] : dataEnd;
  }

  /** Where `offset` stands in the offset-sorted table, or -1 if no entry starts there. */
  private sortedIndexOf(offset: number): number {
    const s = this.sorted ?? this.buildSorted();
    let lo = 0;
    let hi = s.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const v = s[mid];
      if (v === offset) return mid;
      if (v < offset) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  private buildSorted(): Float64Array {
    const offsets = new Float64Array(this.count);
    for (let i = 0; i < this.count; i++) offsets[i] = this.offsetAt(i);
    const pos = new Uint32Array(this.count);
    for (let i = 0; i < this.count; i++) pos[i] = i;
    pos.sort((a, b) => offsets[a] - offsets[b]);
    const s = new Float64Array(this.count);
    for (let k = 0; k < this.count; k++) s[k] = offsets[pos[k]];
    this.sorted = s;
    this.sortedPos = pos;
    return s;
  }

  /**
   * CRC32 recorded for the entry that starts at `offset` (version 2 indexes; written by
   * index-pack after it verified the object's SHA-1), or undefined.
   */
  crc32AtOffset(offset: number): number | undefined {
    if (this.version !== 2) return undefined;
    const k = this.sortedIndexOf(offset);
    return k < 0 ? undefined : this.crc32At(this.sortedPos![k]);
  }

  private compareAt(i: number, oid: Buffer, w0: number): number {
    const buf = this.buf;
    const p = this.oidBase + i * this.oidStride;
    const a0 = buf.readUInt32BE(p);
    if (a0 !== w0) return a0 < w0 ? -1 : 1;
    for (let k = 4; k < OID_BYTES; k += 4) {
      const a = buf.readUInt32BE(p + k);
      const b = oid.readUInt32BE(k);
      if (a !== b) return a < b ? -1 : 1;
    }
    return 0;
  }
}
