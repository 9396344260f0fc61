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
  return (minor & 0xff) + (major & 0xfff) * 0x100 + Math.floor(minor / 0x100) * 0x100000 + Math.floor(major / 0x1000) * 0x100000000000;
}

function entrySize(e: FsEntry, name: Buffer): number {
  let n = 8 + 4 * 4 + 8 + 8 + 2 + name.length + 4 + (e.link ? e.link.length : 0) + 2;
  if (e.xattrs) for (const [k, v] of e.xattrs) n += 2 + Buffer.byteLength(k) + 4 + v.length;
  return n;
}

function writeEntry(buf: Buffer, off: number, e: FsEntry, name: Buffer): number {
  buf.writeBigUInt64LE(BigInt(e.ino), off);
  off += 8;
  buf.writeUInt32LE(e.mode >>> 0, off);
  off += 4;
  buf.writeUInt32LE(e.uid >>> 0, off);
  off += 4;
  buf.writeUInt32LE(e.gid >>> 0, off);
  off += 4;
  buf.writeUInt32LE(e.nlink >>> 0, off);
  off += 4;
  buf.writeBigUInt64LE(BigInt(e.size), off);
  off += 8;
  buf.writeBigUInt64LE(BigInt(e.rdev), off);
  off += 8;
  buf.writeUInt16LE(name.length, off);
  off += 2;
  off += name.copy(buf, off);
  const link = e.link ?? Buffer.alloc(0);
  buf.writeUInt32LE(link.length, off);
  off += 4;
  off += link.copy(buf, off);
  const xattrs = e.xattrs ? [...e.xattrs] : [];
  buf.writeUInt16LE(xattrs.length, off);
  off += 2;
  for (const [k, v] of xattrs) {
    const kb = Buffer.from(k);
    buf.writeUInt16LE(kb.length, off);
    off += 2;
    off += kb.copy(buf, off);
    buf.writeUInt32LE(v.length, off);
    off += 4;
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

/** One step of a revision switch (native gitfs_swap). */
export type SwapOp =
  /** New attributes of an inode that stays (a directory). */
  | { op: 'attr'; entry: FsEntry }
  /** A directory's new children; entries naming existing inodes keep them as they are. */
  | { op: 'children'; dir: number; entries: FsEntry[] };

/** Encodes a switch: u32 count, then per op u8 kind (1 attr, 2 children) and its entries. */
export function encodeSwap(ops: SwapOp[]): Buffer {
  let total = 4;
  const names = new Map<FsEntry, Buffer>();
  const nameOf = (e: FsEntry): Buffer => {
    let b = names.get(e);
    if (!b) names.set(e, (b = Buffer.from(e.name)));
    return b;
  };
  for (const o of ops) {
    total += 1;
    if (o.op === 'attr') total += entrySize(o.entry, nameOf(o.entry));
    else {
      total += 8 + 4;
      for (const e of o.entries) total += entrySize(e, nameOf(e));
    }
  }
  const buf = Buffer.alloc(total);
  buf.writeUInt32LE(ops.length, 0);
  let off = 4;
  for (const o of ops) {
    if (o.op === 'attr') {
      buf.writeUInt8(1, off++);
      off = writeEntry(buf, off, o.entry, nameOf(o.entry));
    } else {
      buf.writeUInt8(2, off++);
      buf.writeBigUInt64LE(BigInt(o.dir), off);
      off += 8;
      buf.writeUInt32LE(o.entries.length, off);
      off += 4;
      for (const e of o.entries) off = writeEntry(buf, off, e, nameOf(e));
    }
  }
  return buf;
}

/** A loaded directory's children as the native side holds them (native gitfs_children). */
export interface NativeChild {
  ino: number;
  name: string;
  /** A directory whose children are loaded. */
  loaded: boolean;
}

/** Decodes native children(): u32 count, then u64 ino, u8 loaded, u16 namelen, name. */
export function decodeChildren(buf: Buffer): NativeChild[] {
  const n = buf.readUInt32LE(0);
  const out: NativeChild[] = [];
  let off = 4;
  for (let i = 0; i < n; i++) {
    const ino = Number(buf.readBigUInt64LE(off));
    off += 8;
    const loaded = buf[off++] === 1;
    const len = buf.readUInt16LE(off);
    off += 2;
    out.push({ ino, loaded, name: buf.toString('utf8', off, off + len) });
    off += len;
  }
  return out;
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
