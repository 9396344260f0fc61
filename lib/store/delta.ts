/**
 * Git's binary delta format (pack OFS_DELTA/REF_DELTA payloads): reading the size header and
 * applying a delta to its base. Every bound is checked; a malformed delta raises
 * ObjectCorruptError and never yields partial output.
 */
import { ObjectCorruptError } from '../errors/errors.js';

/** Copies up to this many bytes byte by byte; longer runs go through Buffer#copy. */
const SMALL_COPY = 24;

function malformed(detail: string): ObjectCorruptError {
  return new ObjectCorruptError(`malformed delta: ${detail}`);
}

/** Sizes from a delta's header, and where its instructions start. */
export interface DeltaHeader {
  baseSize: number;
  resultSize: number;
  /** Offset of the first instruction. */
  opsStart: number;
}

function readSize(delta: Uint8Array, start: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  let p = start;
  for (;;) {
    if (p >= delta.length) throw malformed('truncated size header');
    const c = delta[p++];
    value += (c & 0x7f) * scale;
    if ((c & 0x80) === 0) return [value, p];
    scale *= 128;
    if (scale > 2 ** 49) throw malformed('size header too long');
  }
}

/** Reads the base and result sizes at the start of a delta (or of its first few bytes). */
export function readDeltaHeader(delta: Uint8Array): DeltaHeader {
  const [baseSize, p] = readSize(delta, 0);
  const [resultSize, opsStart] = readSize(delta, p);
  return { baseSize, resultSize, opsStart };
}

/** Size of the object a delta produces, from the delta's first bytes (20 are always enough). */
export function deltaResultSize(deltaPrefix: Uint8Array): number {
  return readDeltaHeader(deltaPrefix).resultSize;
}

/** Applies `delta` to `base` and returns the result; checks base size and every bound. */
export function applyDelta(base: Buffer, delta: Buffer): Buffer {
  const { baseSize, resultSize, opsStart } = readDeltaHeader(delta);
  if (baseSize !== base.length) throw malformed(`base is ${base.length} bytes, delta expects ${baseSize}`);
  const out = Buffer.allocUnsafe(resultSize);
  const dEnd = delta.length;
  let p = opsStart;
  let o = 0;
  while (p < dEnd) {
    const cmd = delta[p++];
    if (cmd & 0x80) {
      // Copy from base: bits 0-3 select offset bytes, bits 4-6 size bytes (little-endian).
      let off = 0;
      let size = 0;
      if (cmd & 0x01) off = delta[p++];
      if (cmd & 0x02) off |= delta[p++] << 8;
      if (cmd & 0x04) off |= delta[p++] << 16;
      if (cmd & 0x08) off = (off | (delta[p++] << 24)) >>> 0;
      if (cmd & 0x10) size = delta[p++];
      if (cmd & 0x20) size |= delta[p++] << 8;
      if (cmd & 0x40) size |= delta[p++] << 16;
      if (size === 0) size = 0x10000;
      if (p > dEnd) throw malformed('truncated copy instruction');
      if (off + size > baseSize) throw malformed(`copy of ${size} bytes at ${off} beyond base of ${baseSize}`);
      if (o + size > resultSize) throw malformed(`result exceeds declared ${resultSize} bytes`);
      if (size <= SMALL_COPY) {
        for (let i = 0; i < size; i++) out[o + i] = base[off + i];
      } else {
        base.copy(out, o, off, off + size);
      }
      o += size;
    } else if (cmd !== 0) {
      // Insert the next `cmd` bytes of the delta.
      if (p + cmd > dEnd) throw malformed('truncated insert instruction');
      if (o + cmd > resultSize) throw malformed(`result exceeds declared ${resultSize} bytes`);
      for (let i = 0; i < cmd; i++) out[o + i] = delta[p + i];
      p += cmd;
      o += cmd;
    } else {
      throw malformed('reserved instruction 0');
    }
  }
  if (o !== resultSize) throw malformed(`result is ${o} bytes, declared ${resultSize}`);
  return out;
}
