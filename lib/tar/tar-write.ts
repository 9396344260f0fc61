/**
 * Encodes the headers of a POSIX pax archive, pure: a ustar header per member, preceded by
 * a pax extended header when the member needs one (names or link targets that do not fit
 * ustar or are not ASCII, sizes and owners too large for octal fields, extended attributes
 * as `SCHILY.xattr.NAME`, the keyword GNU tar and libarchive both read). Numeric owners only
 * (no user or group names), so extraction never maps owners through the extracting host's
 * /etc/passwd. Deterministic: the same entries give the same bytes.
 */

import { BLOCK } from './tar-format.js';
import type { TarMemberType } from './tar-read.js';

/** One member to write. */
export interface TarEntry {
  /** Archive name (UTF-8), e.g. `./usr/bin/su`; directories end with `/`. */
  name: string;
  type: TarMemberType;
  /** Permission bits (12 bits). */
  mode: number;
  uid: number;
  gid: number;
  /** Content bytes that follow (regular files only). */
  size: number;
  /** Modification time, seconds since the epoch. */
  mtime: number;
  /** Symlink target, or the archive name of the hardlink's first member. */
  linkname?: Buffer | string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Buffer>;
}

const TYPEFLAG: Readonly<Record<TarMemberType, string>> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

/** Largest values the octal fields hold: 7 digits (mode, uid, gid, devices), 11 digits (size, mtime). */
const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

/** Zero bytes for padding (never written to). */
const ZERO_BLOCKS = Buffer.alloc(20 * BLOCK);

/** Bytes of padding after `size` bytes of data, to the next block. */
export function paddingFor(size: number): Buffer {
  const r = size % BLOCK;
  return r === 0 ? ZERO_BLOCKS.subarray(0, 0) : ZERO_BLOCKS.subarray(0, BLOCK - r);
}

/**
 * The end of an archive that has `written` bytes so far: two zero blocks, then zeros up to
 * a multiple of 10240 bytes (GNU tar's and bsdtar's default record size).
 */
export function archiveEnd(written: number): Buffer {
  const record = 20 * BLOCK;
  const total = Math.ceil((written + 2 * BLOCK) / record) * record;
  return Buffer.alloc(total - written);
}

/** A numeric field of `len` bytes: octal digits and a NUL, or GNU base-256 when the value does not fit. */
function putNumber(block: Buffer, off: number, len: number, value: number): void {
  const octal = value.toString(8);
  if (octal.length <= len - 1) {
    block.write(octal.padStart(len - 1, '0'), off, 'latin1');
    block[off + len - 1] = 0;
    return;
  }
  let v = value;
  for (let i = off + len - 1; i > off; i--) {
    block[i] = v % 256;
    v = Math.floor(v / 256);
  }
  block[off] = 0x80;
}

/** `LEN key=value\n`, LEN counting the whole record. */
function paxRecord(key: string, value: Buffer | string): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8'), Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

/** An xattr name as a pax keyword suffix: `%` and `=` escaped as GNU tar does (libarchive and GNU tar decode it). */
export function encodeXattrName(name: string): string {
  return name.replace(/%/g, '%25').replace(/=/g, '%3D');
}

function isAscii(b: Buffer): boolean {
  for (const c of b) if (c < 0x20 || c > 0x7e) return false;
  return true;
}

/** Name and prefix fields for a ustar header, or null when the name fits neither way. */
function splitName(name: Buffer): { name: Buffer; prefix: Buffer } | null {
  if (name.length <= 100) return { name, prefix: Buffer.alloc(0) };
  for (let i = name.indexOf(0x2f); i >= 0 && i <= 155; i = name.indexOf(0x2f, i + 1)) {
    if (name.length - i - 1 <= 100 && i > 0 && i < name.length - 1) return { name: name.subarray(i + 1), prefix: name.subarray(0, i) };
  }
  return null;
}

/** One ustar header block. */
function ustarBlock(f: {
  name: Buffer;
  prefix: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: Buffer;
  devmajor: number;
  devminor: number;
}): Buffer {
  const b = Buffer.alloc(BLOCK);
  f.name.copy(b, 0, 0, Math.min(100, f.name.length));
  putNumber(b, 100, 8, f.mode);
  putNumber(b, 108, 8, f.uid);
  putNumber(b, 116, 8, f.gid);
  putNumber(b, 124, 12, f.size);
  putNumber(b, 136, 12, f.mtime);
  b.write(f.typeflag, 156, 'latin1');
  f.linkname.copy(b, 157, 0, Math.min(100, f.linkname.length));
  b.write('ustar\u000000', 257, 'latin1');
  putNumber(b, 329, 8, f.devmajor);
  putNumber(b, 337, 8, f.devminor);
  f.prefix.copy(b, 345, 0, Math.min(155, f.prefix.length));
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, '0'), 148, 'latin1');
  b[154] = 0;
  b[155] = 0x20;
  return b;
}

/**
 * The header blocks of `e`: a pax extended header (`x`) when needed, then its ustar header.
 * The content (for files) and paddingFor(size) follow.
 */
export function encodeEntry(e: TarEntry): Buffer {
  const name = Buffer.from(e.name, 'utf8');
  const link = e.linkname === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.linkname) ? e.linkname : Buffer.from(e.linkname, 'utf8');
  const records: Buffer[] = [];
  let split = isAscii(name) ? splitName(name) : null;
  if (split === null) {
    records.push(paxRecord('path', name));
    split = { name: name.subarray(0, 100), prefix: Buffer.alloc(0) };
  }
  if (link.length > 100 || !isAscii(link)) records.push(paxRecord('linkpath', link));
  if (e.size > MAX_OCTAL_11) records.push(paxRecord('size', String(e.size)));
  if (e.uid > MAX_OCTAL_7) records.push(paxRecord('uid', String(e.uid)));
  if (e.gid > MAX_OCTAL_7) records.push(paxRecord('gid', String(e.gid)));
  const devmajor = e.devmajor ?? 0;
  const devminor = e.devminor ?? 0;
  if (devmajor > MAX_OCTAL_7) records.push(paxRecord('SCHILY.devmajor', String(devmajor)));
  if (devminor > MAX_OCTAL_7) records.push(paxRecord('SCHILY.devminor', String(devminor)));
  for (const xname of [...(e.xattrs?.keys() ?? [])].sort()) {
    records.push(paxRecord(`SCHILY.xattr.${encodeXattrName(xname)}`, e.xattrs!.get(xname)!));
  }
  const main = ustarBlock({
    ...split,
    mode: e.mode & 0o7777,
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    mtime: e.mtime,
    typeflag: TYPEFLAG[e.type],
    linkname: link.subarray(0, 100),
    devmajor: Math.min(devmajor, MAX_OCTAL_7),
    devminor: Math.min(devminor, MAX_OCTAL_7),
  });
  if (records.length === 0) return main;
  const data = Buffer.concat(records);
  // The pax header's own name, as GNU tar writes it: PaxHeaders/<base name>, ASCII, cut to fit.
  const base = e.name.replace(/\/+$/, '').split('/').pop() || '.';
  const paxName = Buffer.from(`PaxHeaders/${base.replace(/[^\x21-\x7e]/g, '_')}`.slice(0, 100), 'latin1');
  const header = ustarBlock({
    name: paxName,
    prefix: Buffer.alloc(0),
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: data.length,
    mtime: e.mtime,
    typeflag: 'x',
    linkname: Buffer.alloc(0),
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([header, data, paddingFor(data.length), main]);
}
