/**
 * Streaming tar reader: turns a stream of (already decompressed) bytes into archive members
 * one at a time, each with its metadata and, for regular files, its content streamed in
 * chunks. Nothing is buffered beyond one header and the chunk in hand, so archives of any
 * size read from a pipe in bounded memory.
 *
 * Understands POSIX ustar and pax (`path`, `linkpath`, `size`, `uid`, `gid`, global
 * headers, `SCHILY.xattr.*`, `LIBARCHIVE.xattr.*` with its url-encoded names and base64
 * values, `SCHILY.devmajor/devminor`), GNU (long names `L`/`K`, base-256 numbers) and old
 * v7 headers, and sparse files in every format GNU tar and libarchive write (old GNU `S`
 * headers with extension blocks, pax sparse 0.0, 0.1 and 1.0): their holes come back as
 * zeros, as extraction would write them.
 *
 * Hand-written rather than tar-stream or node-tar: both decode pax values as UTF-8 text,
 * which corrupts binary xattr values (checked: tar-stream turns user.bin=00ff80fe into
 * 00 efbfbd efbfbd efbfbd) and hides names that are not UTF-8, and neither reads sparse
 * members (their extension blocks would be taken for data).
 *
 * Strict where extraction would silently lose something: a damaged header, an archive that
 * ends without its end-of-archive block, POSIX ACLs or SELinux labels in pax keywords
 * (which gitroot cannot record from a tar) and member types it cannot represent are errors
 * naming the member; pax keywords that carry nothing gitroot records (times, user and
 * group names, inode numbers) are ignored, and unknown ones are reported as warnings.
 */

import { SourceTreeError } from '../errors/errors.js';
import { visEncode } from '../manifest/mtree.js';
import {
  BLOCK,
  TarProblem,
  checkSparseMap,
  decodeHeader,
  decodeSparseExtension,
  isZeroBlock,
  paxNumber,
  parsePaxRecords,
  parseSparseMapBlocks,
  parseSparseMapList,
  percentDecode,
  type HeaderBlock,
  type PaxRecord,
  type SparseSegment,
} from './tar-format.js';

/** Kinds of members a tar holds that a root filesystem has. */
export type TarMemberType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

/** One member, with pax and GNU extensions applied. */
export interface TarMember {
  /** Path as stored in the archive (bytes; may start with './'). */
  name: Buffer;
  type: TarMemberType;
  /** Permission bits (12 bits: setuid, setgid, sticky included). */
  mode: number;
  uid: number;
  gid: number;
  /** Content bytes of a regular file (the real size for a sparse one); 0 for others. */
  size: number;
  /** Symlink target or hardlink target member (bytes). */
  linkname: Buffer;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer>;
  /** Byte offset (in the uncompressed archive) of the member's first header. */
  offset: number;
}

/** Largest pax extended header read (xattrs of one file included). */
const MAX_PAX_BYTES = 16 << 20;
/** Largest GNU long name or long link name. */
const MAX_LONG_NAME = 64 << 10;
/** Zeros for sparse holes (never written to). */
const ZEROS = Buffer.alloc(256 << 10);
const EMPTY = Buffer.alloc(0);

const TYPES: Readonly<Record<string, TarMemberType>> = {
  '0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
  // GNU incremental dump directory: extracted as a plain directory; its listing is skipped.
  D: 'dir',
};

const UNSUPPORTED_TYPES: Readonly<Record<string, string>> = {
  M: 'a continuation of a multi-volume archive',
  N: 'an old GNU long-name record',
};

/** Pax keywords that carry nothing gitroot records (times, names, inode numbers, file flags). */
const IGNORED_KEYS = new Set([
  'mtime',
  'atime',
  'ctime',
  'comment',
  'charset',
  'hdrcharset',
  'uname',
  'gname',
  'SCHILY.dev',
  'SCHILY.ino',
  'SCHILY.nlink',
  'SCHILY.fflags',
  'LIBARCHIVE.creationtime',
  'LIBARCHIVE.symlinktype',
]);

/** How a name or message shows the bytes of a member name. */
export function memberLabel(name: Buffer): string {
  return name.length === 0 ? '(empty name)' : visEncode(name);
}

/** Reads exact byte counts from an async iterator of chunks; chunks handed out are views, never copies. */
class ByteSource {
  private buf: Buffer = EMPTY;
  private off = 0;
  private ended = false;
  /** Bytes consumed so far. */
  position = 0;

  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    this.buf = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    this.off = 0;
    return true;
  }

  /** `n` bytes, or fewer only at the end of the input. */
  async read(n: number): Promise<Buffer> {
    if (this.buf.length - this.off >= n) {
      const out = this.buf.subarray(this.off, this.off + n);
      this.off += n;
      this.position += n;
      return out;
    }
    const parts: Buffer[] = [this.buf.subarray(this.off)];
    let have = parts[0]!.length;
    this.buf = EMPTY;
    this.off = 0;
    while (have < n && (await this.pull())) {
      const take = Math.min(n - have, this.buf.length);
      parts.push(this.buf.subarray(0, take));
      this.off = take;
      have += take;
    }
    this.position += have;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
  }

  /** Passes up to `n` bytes to `sink` (skips them without one); returns how many there were. */
  async forward(n: number, sink?: (chunk: Buffer) => Promise<void> | void): Promise<number> {
    let left = n;
    while (left > 0) {
      if (this.off === this.buf.length && !(await this.pull())) break;
      const take = Math.min(left, this.buf.length - this.off);
      const chunk = this.buf.subarray(this.off, this.off + take);
      this.off += take;
      this.position += take;
      left -= take;
      if (sink) await sink(chunk);
    }
    return n - left;
  }
}

/** What is left of the current member's data. */
interface Body {
  member: TarMember;
  /** Stored bytes still unread (sparse: of the segments). */
  stored: number;
  /** Padding after the stored bytes. */
  padding: number;
  /** Sparse members: where the stored segments belong. */
  sparse?: SparseSegment[];
  /** True once readBody started: the content can be read only once. */
  read: boolean;
}

/** What a member's pax records say about its stored bytes and sparse layout (TarReader.applyPax). */
interface PaxExtensions {
  /** Bytes stored in the archive (pax size=, else the header's). */
  stored: number;
  /** GNU.sparse.name: the real name of a pax sparse member. */
  sparseName: Buffer | null;
  sparse: { major?: number; minor?: number; realSize?: number; map?: SparseSegment[]; offsets: number[]; sizes: number[] };
}

function padOf(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

/**
 * Reads members of a tar archive from `chunks`. `label` names the archive in messages (a
 * file name, or "the archive on standard input"). Call next() for each member and, for
 * regular files, readBody() to stream the content; unread content is skipped.
 */
export class TarReader {
  /** Pax keywords that were ignored because gitroot does not know them (one message each). */
  readonly warnings: string[] = [];
  private readonly src: ByteSource;
  private body: Body | null = null;
  private last: TarMember | null = null;
  private global: PaxRecord[] = [];
  private done = false;
  private readonly warned = new Set<string>();

  constructor(
    chunks: AsyncIterable<Buffer>,
    private readonly label: string,
  ) {
    this.src = new ByteSource(chunks[Symbol.asyncIterator]());
  }

  private where(): string {
    return this.last === null ? 'at the start of the archive' : `after member ${memberLabel(this.last.name)}`;
  }

  private truncated(detail: string): SourceTreeError {
    return new SourceTreeError(`${this.label} is truncated: it ends ${detail}: the archive was cut short; create or download it again`, {
      data: { archive: this.label, offset: this.src.position },
    });
  }

  private damaged(offset: number, problem: string): SourceTreeError {
    if (offset === 0) {
      return new SourceTreeError(
        `${this.label} is not a tar archive (${problem.replace(/^its /, 'the ')} at byte 0): give a tar file, plain or compressed with gzip, xz or zstd`,
        { data: { archive: this.label, offset } },
      );
    }
    return new SourceTreeError(
      `${this.label} is damaged: the header at byte ${offset} (${this.where()}) is invalid (${problem.replace(/^its /, 'the ')}): create or download the archive again`,
      { data: { archive: this.label, offset } },
    );
  }

  private memberError(m: { name: Buffer; offset: number }, what: string, fix: string): SourceTreeError {
    return new SourceTreeError(`member ${memberLabel(m.name)} of ${this.label} ${what}: ${fix}`, {
      data: { archive: this.label, member: memberLabel(m.name), offset: m.offset },
    });
  }

  /** Reads the data of an extension header (pax, GNU long name) whole. */
  private async extensionData(h: HeaderBlock, offset: number, limit: number): Promise<Buffer> {
    if (h.size > limit) throw this.damaged(offset, `its extension header claims ${h.size} bytes, over the ${limit}-byte limit`);
    const data = await this.src.read(h.size);
    if (data.length < h.size) throw this.truncated(`inside an extended header at byte ${offset} (${this.where()})`);
    const pad = padOf(h.size);
    if ((await this.src.forward(pad)) < pad) throw this.truncated(`inside an extended header at byte ${offset} (${this.where()})`);
    return Buffer.from(data); // a copy: it outlives the chunk it came from
  }

  /** Finishes the current member: skips whatever of its data was not read. */
  private async skipBody(): Promise<void> {
    const b = this.body;
    if (b === null) return;
    this.body = null;
    const n = b.stored + b.padding;
    if ((await this.src.forward(n)) < n) throw this.truncated(`inside the data of member ${memberLabel(b.member.name)}`);
  }

  /** The next member, or null after the end-of-archive block. */
  async next(): Promise<TarMember | null> {
    if (this.done) return null;
    await this.skipBody();
    let local: PaxRecord[] = [];
    let longName: Buffer | null = null;
    let longLink: Buffer | null = null;
    let first = -1;
    for (;;) {
      const offset = this.src.position;
      if (first < 0) first = offset;
      const block = await this.src.read(BLOCK);
      if (block.length === 0) {
        if (offset === 0) {
          throw new SourceTreeError(`${this.label} is empty: give a tar archive`, { data: { archive: this.label } });
        }
        throw this.truncated(
          offset === first && local.length === 0 && longName === null && longLink === null
            ? `${this.where()} without the end-of-archive block`
            : `after an extended header at byte ${first}, before its member`,
        );
      }
      if (block.length < BLOCK) {
        if (offset === 0) throw this.damaged(0, `it is ${block.length} bytes, shorter than one tar header`);
        throw this.truncated(`inside the header at byte ${offset} (${this.where()})`);
      }
      if (isZeroBlock(block)) {
        if (offset !== first) throw this.damaged(offset, 'an extended header is followed by the end of the archive');
        this.done = true;
        return null;
      }
      let h: HeaderBlock;
      try {
        h = decodeHeader(block);
      } catch (err) {
        if (err instanceof TarProblem) throw this.damaged(offset, err.message);
        throw err;
      }
      switch (h.typeflag) {
        case 'x':
        case 'X':
          local = local.concat(this.pax(await this.extensionData(h, offset, MAX_PAX_BYTES), offset));
          continue;
        case 'g':
          this.global = this.global.concat(this.pax(await this.extensionData(h, offset, MAX_PAX_BYTES), offset));
          continue;
        case 'L':
          longName = trimNuls(await this.extensionData(h, offset, MAX_LONG_NAME));
          continue;
        case 'K':
          longLink = trimNuls(await this.extensionData(h, offset, MAX_LONG_NAME));
          continue;
        case 'V': {
          // A volume label: not a file; extraction skips it too.
          const n = h.size + padOf(h.size);
          if ((await this.src.forward(n)) < n) throw this.truncated(`inside the volume label at byte ${offset}`);
          first = -1;
          continue;
        }
      }
      return this.member(h, first, [...this.global, ...local], longName, longLink);
    }
  }

  private pax(data: Buffer, offset: number): PaxRecord[] {
    try {
      return parsePaxRecords(data);
    } catch (err) {
      if (err instanceof TarProblem) throw this.damaged(offset, err.message);
      throw err;
    }
  }

  /** Builds the member from its header and the extensions before it. */
  private async member(h: HeaderBlock, offset: number, pax: PaxRecord[], longName: Buffer | null, longLink: Buffer | null): Promise<TarMember> {
    const m: TarMember = {
      name: longName ?? h.name,
      type: 'file',
      mode: h.mode,
      uid: h.uid,
      gid: h.gid,
      size: h.size,
      linkname: longLink ?? h.linkname,
      devmajor: h.devmajor,
      devminor: h.devminor,
      xattrs: new Map(),
      offset,
    };
    const fail = (problem: string): never => {
      throw this.damaged(offset, problem);
    };
    let ext: PaxExtensions;
    try {
      ext = this.applyPax(m, pax, h.size);
    } catch (err) {
      if (err instanceof TarProblem) fail(err.message);
      throw err;
    }
    m.type = this.memberType(h, m);
    const body: Body = { member: m, stored: ext.stored, padding: padOf(ext.stored), read: false };
    try {
      if (h.gnuSparse) await this.readOldGnuSparse(h.gnuSparse, m, body);
      else if (ext.sparse.major !== undefined || ext.sparse.map !== undefined || ext.sparse.offsets.length > 0) await this.readPaxSparse(ext, m, body);
    } catch (err) {
      if (err instanceof TarProblem) fail(err.message);
      throw err;
    }
    if (m.type !== 'file') m.size = 0;
    this.body = body;
    this.last = m;
    return m;
  }

  /** The member's pax records into `m` (name, owner, xattrs...); what they say of its stored size and sparse layout. Throws TarProblem for a bad number. */
  private applyPax(m: TarMember, pax: PaxRecord[], headerSize: number): PaxExtensions {
    const ext: PaxExtensions = { stored: headerSize, sparseName: null, sparse: { offsets: [], sizes: [] } };
    const sparse = ext.sparse;
    const libarchiveXattrs = new Map<string, Buffer>();
    for (const r of pax) {
      const k = r.key;
      if (k === 'path') m.name = r.value;
      else if (k === 'linkpath') m.linkname = r.value;
      else if (k === 'size') ext.stored = paxNumber(r);
      else if (k === 'uid') m.uid = paxNumber(r);
      else if (k === 'gid') m.gid = paxNumber(r);
      else if (k === 'SCHILY.devmajor') m.devmajor = paxNumber(r);
      else if (k === 'SCHILY.devminor') m.devminor = paxNumber(r);
      else if (k.startsWith('SCHILY.xattr.')) m.xattrs.set(this.xattrName(m, k.slice(13)), r.value);
      else if (k.startsWith('LIBARCHIVE.xattr.')) libarchiveXattrs.set(this.xattrName(m, k.slice(17)), Buffer.from(r.value.toString('latin1'), 'base64'));
      else if (k === 'GNU.sparse.major') sparse.major = paxNumber(r);
      else if (k === 'GNU.sparse.minor') sparse.minor = paxNumber(r);
      else if (k === 'GNU.sparse.name') ext.sparseName = r.value;
      else if (k === 'GNU.sparse.realsize' || k === 'GNU.sparse.size') sparse.realSize = paxNumber(r);
      else if (k === 'GNU.sparse.map') sparse.map = parseSparseMapList(r.value.toString('latin1'));
      else if (k === 'GNU.sparse.offset') sparse.offsets.push(paxNumber(r));
      else if (k === 'GNU.sparse.numbytes') sparse.sizes.push(paxNumber(r));
      else if (k === 'GNU.sparse.numblocks') paxNumber(r);
      else if (k.startsWith('SCHILY.acl.') && r.value.length > 0) {
        throw this.memberError(
          m,
          `carries a POSIX ACL (pax ${k})`,
          "gitroot records ACLs only as system.posix_acl_* xattrs: create the archive with GNU tar --xattrs --xattrs-include='*' and without --acls, or commit the extracted tree",
        );
      } else if (k === 'RHT.security.selinux' && r.value.length > 0) {
        throw this.memberError(
          m,
          `carries an SELinux label (pax ${k})`,
          'create the archive without --selinux, or store the label as an xattr (tar --xattrs --xattrs-include=security.selinux)',
        );
      } else if (!IGNORED_KEYS.has(k) && !k.startsWith('SCHILY.acl.') && !k.startsWith('GNU.volume.') && k !== 'RHT.security.selinux') {
        if (!this.warned.has(k)) {
          this.warned.add(k);
          this.warnings.push(`ignored pax keyword ${k} (first on member ${memberLabel(m.name)} of ${this.label}): gitroot does not know what it records`);
        }
      }
    }
    // libarchive writes each xattr twice (SCHILY and LIBARCHIVE); its own base64 copy wins.
    for (const [name, value] of libarchiveXattrs) m.xattrs.set(name, value);
    return ext;
  }

  /** The member's type from its typeflag; refuses the ones gitroot cannot record. */
  private memberType(h: HeaderBlock, m: TarMember): TarMember['type'] {
    const type = h.typeflag === 'S' ? 'file' : TYPES[h.typeflag];
    if (type === undefined) {
      const what = UNSUPPORTED_TYPES[h.typeflag] ?? `of unknown type '${visEncode(Buffer.from(h.typeflag, 'latin1'))}'`;
      throw this.memberError(
        m,
        `is ${what}, which gitroot cannot record`,
        'create the archive with plain GNU tar, bsdtar or mmdebstrap, without multi-volume or vendor extensions',
      );
    }
    // Old tars mark directories with a trailing slash on a regular-file header.
    if (type === 'file' && h.typeflag === '0' && m.name.length > 0 && m.name[m.name.length - 1] === 0x2f) return 'dir';
    return type;
  }

  /** An old GNU sparse member ('S'): its map from the header and the extension blocks after it. */
  private async readOldGnuSparse(g: NonNullable<HeaderBlock['gnuSparse']>, m: TarMember, body: Body): Promise<void> {
    const map = [...g.map];
    for (let ext = g.extended; ext;) {
      const block = await this.src.read(BLOCK);
      if (block.length < BLOCK) throw this.truncated(`inside the sparse map of member ${memberLabel(m.name)}`);
      const e = decodeSparseExtension(block);
      map.push(...e.map);
      ext = e.extended;
    }
    checkSparseMap(map, g.realSize, body.stored);
    body.sparse = map;
    m.size = g.realSize;
  }

  /** A pax sparse member (GNU formats 0.0, 0.1 and 1.0): its real name, size and map. */
  private async readPaxSparse(ext: PaxExtensions, m: TarMember, body: Body): Promise<void> {
    const sparse = ext.sparse;
    if (ext.sparseName !== null) m.name = ext.sparseName;
    if (sparse.realSize === undefined) throw new TarProblem('its pax sparse header gives no real size');
    let map: SparseSegment[];
    if (sparse.major === 1) {
      if (sparse.minor !== 0) throw new TarProblem(`its pax sparse format ${sparse.major}.${sparse.minor} is unknown`);
      // Format 1.0: the map is at the start of the data, in whole blocks.
      let text: Buffer = EMPTY;
      let parsed: { map: SparseSegment[]; bytes: number } | null = null;
      while (parsed === null) {
        if (text.length >= ext.stored || text.length >= MAX_PAX_BYTES) throw new TarProblem('its sparse map (pax format 1.0) is malformed');
        const block = await this.src.read(BLOCK);
        if (block.length < BLOCK) throw this.truncated(`inside the sparse map of member ${memberLabel(m.name)}`);
        text = Buffer.concat([text, block]);
        parsed = parseSparseMapBlocks(text);
      }
      map = parsed.map;
      body.stored = ext.stored - parsed.bytes;
    } else if (sparse.major === undefined || sparse.major === 0) {
      if (sparse.map !== undefined) map = sparse.map;
      else {
        if (sparse.offsets.length !== sparse.sizes.length) throw new TarProblem('its GNU.sparse.offset and numbytes records do not pair up');
        map = sparse.offsets.map((o, i) => ({ offset: o, size: sparse.sizes[i]! }));
      }
    } else {
      throw new TarProblem(`its pax sparse format ${sparse.major}.${sparse.minor ?? 0} is unknown`);
    }
    checkSparseMap(map, sparse.realSize, body.stored);
    body.sparse = map;
    m.size = sparse.realSize;
  }

  private xattrName(m: TarMember, encoded: string): string {
    const name = percentDecode(encoded);
    if (name.length === 0 || name.includes(0) || !Buffer.from(name.toString('utf8'), 'utf8').equals(name)) {
      throw this.memberError(m, `has an xattr whose name is empty or not UTF-8 (${visEncode(name)})`, 'remove that attribute before archiving');
    }
    return name.toString('utf8');
  }

  /**
   * Streams the current member's content (a regular file: exactly `size` bytes, holes of a
   * sparse file as zeros) to `sink`, which may hold on to the chunks it is given.
   */
  async readBody(sink: (chunk: Buffer) => Promise<void> | void): Promise<void> {
    const b = this.body;
    if (b === null || b.read || b.member.type !== 'file') throw new Error('readBody: no regular-file member to read');
    b.read = true;
    const cut = (): SourceTreeError => this.truncated(`inside the data of member ${memberLabel(b.member.name)}`);
    const copy = async (n: number): Promise<void> => {
      const got = await this.src.forward(n, sink);
      b.stored -= got;
      if (got < n) throw cut();
    };
    const zeros = async (n: number): Promise<void> => {
      for (let left = n; left > 0; left -= ZEROS.length) await sink(ZEROS.subarray(0, Math.min(left, ZEROS.length)));
    };
    if (b.sparse === undefined) {
      await copy(b.stored);
    } else {
      let pos = 0;
      for (const s of b.sparse) {
        await zeros(s.offset - pos);
        await copy(s.size);
        pos = s.offset + s.size;
      }
      await zeros(b.member.size - pos);
    }
  }
}

function trimNuls(b: Buffer): Buffer {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}
