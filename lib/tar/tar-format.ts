/**
 * The tar format's fixed pieces, pure: 512-byte header blocks (POSIX ustar, GNU and old
 * v7), their numeric fields (octal or GNU base-256), checksums, pax extended-header records,
 * and GNU sparse maps (the old GNU `S` header and the pax 0.0, 0.1 and 1.0 formats).
 * tar-read.ts drives these over a stream; tar-write.ts encodes the headers `gitroot export`
 * writes. Nothing here does I/O.
 *
 * Values are kept as bytes wherever the format stores bytes (names, link targets, pax
 * values): pax values such as `SCHILY.xattr.*` are binary, so decoding them as text (what
 * the npm tar parsers do) would corrupt capabilities and ACL-like values.
 */

/** Size of a tar block; headers and member data are padded to it. */
export const BLOCK = 512;

/** A problem with the archive's bytes; the reader turns it into a user-facing error naming the member. */
export class TarProblem extends Error {}

/** The header block of one archive entry, as stored (before pax and GNU long names apply). */
export interface HeaderBlock {
  /** ustar name (with the ustar prefix joined in, for POSIX headers), bytes. */
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow the header (for sparse members: the stored segments). */
  size: number;
  /** Type flag character ('0', '5', 'x', 'L', ...; NUL is reported as '0'). */
  typeflag: string;
  linkname: Buffer;
  devmajor: number;
  devminor: number;
  format: 'ustar' | 'gnu' | 'v7';
  /** Old GNU sparse ('S'): the map entries in this header, whether extension blocks follow, the real size. */
  gnuSparse?: { map: SparseSegment[]; extended: boolean; realSize: number };
}

/** One stored data segment of a sparse file: `size` bytes belonging at `offset`. */
export interface SparseSegment {
  offset: number;
  size: number;
}

/** Bytes from `start` up to the first NUL or `end`. */
export function cString(block: Buffer, start: number, end: number): Buffer {
  const nul = block.indexOf(0, start);
  return block.subarray(start, nul < 0 || nul > end ? end : nul);
}

/**
 * A numeric header field: octal digits (leading spaces allowed, ended by space, NUL or the
 * field's end) or GNU base-256 (first byte's top bit set). Null when the field is not a
 * number, is negative, or is above 2^53.
 */
export function parseNumber(field: Buffer): number | null {
  if (field.length === 0) return 0;
  const first = field[0]!;
  if (first & 0x80) {
    if (first & 0x40) return null; // negative base-256
    let v = first & 0x3f;
    for (let i = 1; i < field.length; i++) {
      v = v * 256 + field[i]!;
      if (v > Number.MAX_SAFE_INTEGER) return null;
    }
    return v;
  }
  let i = 0;
  while (i < field.length && field[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < field.length; i++) {
    const c = field[i]!;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return null;
    v = v * 8 + (c - 0x30);
    digits++;
    if (v > Number.MAX_SAFE_INTEGER) return null;
  }
  // Only terminators may follow the digits.
  for (; i < field.length; i++) if (field[i] !== 0x20 && field[i] !== 0) return null;
  return digits === 0 ? 0 : v;
}

/** Whether every byte of `block` is zero (an end-of-archive block). */
export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i += 8) {
    if (block.readBigUInt64LE(i) !== 0n) return false;
  }
  return true;
}

/** Sums of the header bytes with the checksum field counted as spaces: unsigned and signed (old Sun tar). */
export function checksums(block: Buffer): { unsigned: number; signed: number } {
  let u = 0;
  let s = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    u += b;
    s += b > 127 ? b - 256 : b;
  }
  return { unsigned: u, signed: s };
}

const USTAR_MAGIC = Buffer.from('ustar\u000000', 'latin1');
const GNU_MAGIC = Buffer.from('ustar  \u0000', 'latin1');

function num(block: Buffer, start: number, len: number, what: string): number {
  const v = parseNumber(block.subarray(start, start + len));
  if (v === null) throw new TarProblem(`its ${what} field is not a number`);
  return v;
}

/** Old GNU sparse map entries: `count` pairs of 12-byte offset and size fields from `start`; stops at an empty one. */
function gnuSparseEntries(block: Buffer, start: number, count: number): SparseSegment[] {
  const out: SparseSegment[] = [];
  for (let i = 0; i < count; i++) {
    const at = start + i * 24;
    if (block[at] === 0) break;
    out.push({ offset: num(block, at, 12, 'sparse offset'), size: num(block, at + 12, 12, 'sparse size') });
  }
  return out;
}

/**
 * Decodes a header block that is not all zeros. Throws TarProblem when the checksum does
 * not match (damaged data, or not a tar at all) or a numeric field is malformed.
 */
export function decodeHeader(block: Buffer): HeaderBlock {
  const stored = parseNumber(block.subarray(148, 156));
  const sums = checksums(block);
  if (stored === null || (stored !== sums.unsigned && stored !== sums.signed)) {
    throw new TarProblem('its header checksum does not match');
  }
  const magic = block.subarray(257, 265);
  const format = magic.equals(USTAR_MAGIC) || magic.subarray(0, 6).equals(USTAR_MAGIC.subarray(0, 6)) ? 'ustar' : magic.equals(GNU_MAGIC) ? 'gnu' : 'v7';
  let name = cString(block, 0, 100);
  if (format === 'ustar' && block[345] !== 0) {
    name = Buffer.concat([cString(block, 345, 500), Buffer.from('/'), name]);
  }
  const flag = block[156]!;
  const h: HeaderBlock = {
    name,
    mode: num(block, 100, 8, 'mode') & 0o7777,
    uid: num(block, 108, 8, 'uid'),
    gid: num(block, 116, 8, 'gid'),
    size: num(block, 124, 12, 'size'),
    typeflag: flag === 0 ? '0' : String.fromCharCode(flag),
    linkname: cString(block, 157, 257),
    devmajor: format === 'v7' ? 0 : num(block, 329, 8, 'devmajor'),
    devminor: format === 'v7' ? 0 : num(block, 337, 8, 'devminor'),
    format,
  };
  if (h.typeflag === 'S') {
    h.gnuSparse = {
      map: gnuSparseEntries(block, 386, 4),
      extended: block[482] !== 0,
      realSize: num(block, 483, 12, 'sparse real size'),
    };
  }
  return h;
}

/** An old GNU sparse extension block: up to 21 more map entries, and whether another block follows. */
export function decodeSparseExtension(block: Buffer): { map: SparseSegment[]; extended: boolean } {
  return { map: gnuSparseEntries(block, 0, 21), extended: block[504] !== 0 };
}

/** One pax record: its keyword (UTF-8) and raw value bytes. */
export interface PaxRecord {
  key: string;
  value: Buffer;
}

/**
 * Parses pax extended-header data: records `LEN KEY=VALUE\n`, LEN counting the whole
 * record. Values stay bytes. Trailing NUL padding is allowed. Throws TarProblem on a
 * malformed record.
 */
export function parsePaxRecords(data: Buffer): PaxRecord[] {
  const out: PaxRecord[] = [];
  let p = 0;
  while (p < data.length) {
    if (data[p] === 0) {
      for (let i = p; i < data.length; i++) if (data[i] !== 0) throw new TarProblem('its pax header has bytes after NUL padding');
      break;
    }
    const space = data.indexOf(0x20, p);
    const lenText = space < 0 ? '' : data.toString('latin1', p, space);
    if (!/^[0-9]{1,12}$/.test(lenText)) throw new TarProblem(`its pax header has a record without a length at byte ${p}`);
    const len = Number(lenText);
    const end = p + len;
    if (len <= lenText.length + 2 || end > data.length || data[end - 1] !== 0x0a) {
      throw new TarProblem(`its pax header has a record with a wrong length at byte ${p}`);
    }
    const eq = data.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= end - 1 || eq === space + 1) throw new TarProblem(`its pax header has a record without KEY=VALUE at byte ${p}`);
    out.push({ key: data.toString('utf8', space + 1, eq), value: data.subarray(eq + 1, end - 1) });
    p = end;
  }
  return out;
}

/** Decodes %XX escapes (pax xattr names: libarchive url-encodes them, GNU tar escapes `%` and `=`). */
export function percentDecode(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (!bytes.includes(0x25)) return bytes;
  const out = Buffer.allocUnsafe(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === 0x25 && i + 2 < bytes.length && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
      out[n++] = parseInt(bytes.toString('latin1', i + 1, i + 3), 16);
      i += 2;
    } else {
      out[n++] = c;
    }
  }
  return out.subarray(0, n);
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

/** A decimal pax value (uid, size, ...); TarProblem naming the keyword if it is not one. */
export function paxNumber(r: PaxRecord): number {
  const text = r.value.toString('latin1');
  if (!/^[0-9]{1,16}$/.test(text) || Number(text) > Number.MAX_SAFE_INTEGER) {
    throw new TarProblem(`its pax ${r.key} value "${text.slice(0, 40)}" is not a number`);
  }
  return Number(text);
}

/** A sparse map written as `offset,size,offset,size,...` (pax GNU.sparse.map, format 0.1). */
export function parseSparseMapList(text: string): SparseSegment[] {
  if (text === '') return [];
  const parts = text.split(',');
  if (parts.length % 2 !== 0 || parts.some((p) => !/^[0-9]{1,16}$/.test(p))) {
    throw new TarProblem('its GNU.sparse.map is malformed');
  }
  const out: SparseSegment[] = [];
  for (let i = 0; i < parts.length; i += 2) out.push({ offset: Number(parts[i]), size: Number(parts[i + 1]) });
  return out;
}

/**
 * The sparse map at the start of a pax 1.0 sparse member's data: decimal numbers, one a
 * line (count, then offset and size pairs), padded to a block. `text` holds the blocks read
 * so far; returns null when more blocks are needed, else the map and the bytes it takes.
 */
export function parseSparseMapBlocks(text: Buffer): { map: SparseSegment[]; bytes: number } | null {
  const numbers: number[] = [];
  let p = 0;
  let want = -1;
  while (want < 0 || numbers.length < want) {
    const nl = text.indexOf(0x0a, p);
    if (nl < 0) return null;
    const t = text.toString('latin1', p, nl);
    if (!/^[0-9]{1,16}$/.test(t)) throw new TarProblem('its sparse map (pax format 1.0) is malformed');
    numbers.push(Number(t));
    p = nl + 1;
    if (want < 0) {
      if (numbers[0]! > 1_000_000) throw new TarProblem('its sparse map (pax format 1.0) has too many entries');
      want = 1 + 2 * numbers[0]!;
    }
  }
  const map: SparseSegment[] = [];
  for (let i = 1; i < numbers.length; i += 2) map.push({ offset: numbers[i]!, size: numbers[i + 1]! });
  return { map, bytes: Math.ceil(p / BLOCK) * BLOCK };
}

/**
 * Checks a sparse map against the member: segments in order, not overlapping, inside the
 * real size, their sizes adding up to the stored data. Throws TarProblem otherwise.
 */
export function checkSparseMap(map: SparseSegment[], realSize: number, storedBytes: number): void {
  let end = 0;
  let total = 0;
  for (const s of map) {
    if (s.offset < end || s.offset + s.size > realSize) throw new TarProblem('its sparse map has overlapping or out-of-range segments');
    end = s.offset + s.size;
    total += s.size;
  }
  if (total !== storedBytes) throw new TarProblem(`its sparse map describes ${total} bytes but ${storedBytes} are stored`);
}
