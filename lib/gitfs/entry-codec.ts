/**
 * Binary encoding of directory entries handed to the native FUSE session (the layout is
 * read by native/gitfs_fuse.c, install_entry). One Buffer per directory keeps a cold
 * directory load to a single JS -> C crossing.
 */

/** One inode as the kernel will see it. `mode` is a full st_mode (type bits included). */
export interface FsEntry {
  ino: number;
  name: string;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  rdev: number;
  link?: Buffer;
  xattrs?: Map<string, Buffer>;
}

/** Linux's dev_t encoding of major/minor (glibc makedev). */
export function makedev(major: number, minor: number): number {
  // Arithmetic instead of bitwise operators: the high parts do not fit 32 bits.
  return (minor & 0xff) + (major & 0xfff) * 0x100 + Math.floor(minor / 0x100) * 0x100000 +
    Math.floor(major / 0x1000) * 0x100000000000;
}

function entrySize(e: FsEntry, name: Buffer): number {
  let n = 8 + 4 * 4 + 8 + 8 + 2 + name.length + 4 + (e.link ? e.link.length : 0) + 2;
  if (e.xattrs) for (const [k, v] of e.xattrs) n += 2 + Buffer.byteLength(k) + 4 + v.length;
  return n;
}

function writeEntry(buf: Buffer, off: number, e: FsEntry, name: Buffer): number {
  buf.writeBigUInt64LE(BigInt(e.ino), off); off += 8;
  buf.writeUInt32LE(e.mode >>> 0, off); off += 4;
  buf.writeUInt32LE(e.uid >>> 0, off); off += 4;
  buf.writeUInt32LE(e.gid >>> 0, off); off += 4;
  buf.writeUInt32LE(e.nlink >>> 0, off); off += 4;
  buf.writeBigUInt64LE(BigInt(e.size), off); off += 8;
  buf.writeBigUInt64LE(BigInt(e.rdev), off); off += 8;
  buf.writeUInt16LE(name.length, off); off += 2;
  off += name.copy(buf, off);
  const link = e.link ?? Buffer.alloc(0);
  buf.writeUInt32LE(link.length, off); off += 4;
  off += link.copy(buf, off);
  const xattrs = e.xattrs ? [...e.xattrs] : [];
  buf.writeUInt16LE(xattrs.length, off); off += 2;
  for (const [k, v] of xattrs) {
    const kb = Buffer.from(k);
    buf.writeUInt16LE(kb.length, off); off += 2;
    off += kb.copy(buf, off);
    buf.writeUInt32LE(v.length, off); off += 4;
    off += v.copy(buf, off);
  }
  return off;
}

/** Encodes a single entry (the root of a mount). */
export function encodeEntry(e: FsEntry): Buffer {
  const name = Buffer.from(e.name);
  const buf = Buffer.alloc(entrySize(e, name));
  writeEntry(buf, 0, e, name);
  return buf;
}

/** Encodes a directory listing: u32 count, then the entries. */
export function encodeDirectory(entries: FsEntry[]): Buffer {
  const names = entries.map((e) => Buffer.from(e.name));
  let total = 4;
  for (let i = 0; i < entries.length; i++) total += entrySize(entries[i], names[i]);
  const buf = Buffer.alloc(total);
  buf.writeUInt32LE(entries.length, 0);
  let off = 4;
  for (let i = 0; i < entries.length; i++) off = writeEntry(buf, off, entries[i], names[i]);
  return buf;
}
