/**
 * `gitroot export REV --format tar`: writes a revision as a POSIX pax archive, straight
 * from the git objects (no mount, no checkout, no root), with what `gitroot mount` serves
 * for that revision: numeric owners, full modes (setuid, setgid, sticky), device numbers,
 * FIFOs, empty directories, hardlinks (one member with the content, the other names as
 * links to it) and extended attributes (`SCHILY.xattr.*`).
 *
 * What each entry is comes from CommitTreeView, the same view the mount serves, so the
 * archive cannot disagree with the mounted tree. Entries are written depth first, names in
 * byte order, every one with the commit's committer time as mtime (the manifest records no
 * times; the mount serves that time too): the same revision always gives the same bytes.
 * Memory stays bounded: one directory listing at a time, blobs streamed in pieces.
 */

import * as fs from 'node:fs/promises';
import { resolve } from 'node:path';
import { ObjectCorruptError, NoSpaceError, OutputError } from '../errors/errors.js';
import { fsyncDir, tempPathFor } from '../fsutil/atomic-write.js';
import { splitDev } from '../commit/scan-plan.js';
import type { FsEntry } from '../gitfs/entry-codec.js';
import { CommitTreeView } from '../gitfs/tree-view.js';
import { ObjectStore } from '../store/object-store.js';
import { resolveRevision } from '../store/refs.js';
import { archiveEnd, encodeEntry, paddingFor, type TarEntry } from '../tar/tar-write.js';
import type { TarMemberType } from '../tar/tar-read.js';
import { fileTypeBits, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG } from '../fsutil/file-mode.js';

/** Options of exportTar. */
export interface ExportOptions {
  /** Git directory holding the revision. */
  gitdir: string;
  /** Revision: SHA, branch or tag. */
  rev: string;
  /** Takes each piece of the archive (it owns the buffer); resolves when it may be given the next. */
  write: (chunk: Buffer) => Promise<void>;
  /** Names the output in messages (a file name, "standard output"). */
  outputLabel: string;
}

/** What exportTar wrote. */
export interface ExportResult {
  commit: string;
  tree: string;
  /** mtime of every member: the commit's committer time. */
  mtime: number;
  /** Members written, the root included. */
  entries: number;
  /** Regular-file members with content (hardlinked files once). */
  files: number;
  /** Hardlink members (second and later names of a file). */
  hardlinks: number;
  /** Bytes of the archive. */
  bytes: number;
}

/** Bytes collected before handing a piece to the output. */
const OUTPUT_CHUNK = 1 << 20;

const TYPE_OF: ReadonlyMap<number, TarMemberType> = new Map([
  [S_IFREG, 'file'],
  [S_IFDIR, 'dir'],
  [S_IFLNK, 'symlink'],
  [S_IFCHR, 'char'],
  [S_IFBLK, 'block'],
  [S_IFIFO, 'fifo'],
] as const);

/** Collects small writes into pieces of OUTPUT_CHUNK bytes for `write`. */
class ArchiveOutput {
  bytes = 0;
  private buf = Buffer.allocUnsafe(OUTPUT_CHUNK);
  private len = 0;

  constructor(
    private readonly write: (chunk: Buffer) => Promise<void>,
    private readonly label: string,
  ) {}

  /** Bytes added so far, handed on or not. */
  get written(): number {
    return this.bytes + this.len;
  }

  async add(data: Buffer): Promise<void> {
    for (let off = 0; off < data.length;) {
      const n = data.copy(this.buf, this.len, off);
      this.len += n;
      off += n;
      if (this.len === this.buf.length) await this.flush();
    }
  }

  async flush(): Promise<void> {
    if (this.len === 0) return;
    const piece = this.buf.subarray(0, this.len);
    this.buf = Buffer.allocUnsafe(OUTPUT_CHUNK);
    this.len = 0;
    try {
      await this.write(piece);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'ENOSPC')
        throw new NoSpaceError(`no space left to write the archive to ${this.label}: free space there, or write it elsewhere with -o`, { cause: err });
      throw new OutputError(
        `cannot write the archive to ${this.label} (${code}): check that the file can be written, or that the program reading it is still running`,
        { cause: err },
      );
    }
    this.bytes += piece.length;
  }
}

/**
 * Writes revision `rev` of `gitdir` as a pax archive through `write`. Throws
 * RevisionNotFoundError, ObjectMissingError/ObjectCorruptError (a damaged repository; the
 * archive written so far is then incomplete), OutputError or NoSpaceError.
 */
export async function exportTar(opts: ExportOptions): Promise<ExportResult> {
  const store = ObjectStore.open(opts.gitdir);
  try {
    const commit = resolveRevision(opts.gitdir, opts.rev, store);
    const view = CommitTreeView.open(store, commit);
    const mtime = view.time;
    const out = new ArchiveOutput(opts.write, opts.outputLabel);
    const firstName = new Map<number, string>();
    const result: ExportResult = { commit, tree: view.rootTree.toString('hex'), mtime, entries: 0, files: 0, hardlinks: 0, bytes: 0 };

    const header = async (e: TarEntry): Promise<void> => {
      await out.add(encodeEntry(e));
      result.entries++;
    };
    const walk = async (ino: number, dir: string): Promise<void> => {
      const children = view.listDirectory(ino);
      const names = new Map(children.map((c) => [c, Buffer.from(c.name, 'utf8')] as const));
      children.sort((a, b) => Buffer.compare(names.get(a)!, names.get(b)!));
      for (const c of children) {
        const path = `${dir}${c.name}`;
        const type = TYPE_OF.get(fileTypeBits(c.mode));
        if (type === undefined) throw new ObjectCorruptError(`./${path} has an unknown file type: the revision is damaged`);
        if (type === 'dir') {
          await header(entryOf(c, `./${path}/`, 'dir', mtime));
          await walk(c.ino, `${path}/`);
        } else if (type === 'file') {
          await writeFile(c, `./${path}`);
        } else {
          await header(entryOf(c, `./${path}`, type, mtime));
        }
      }
    };
    const writeFile = async (c: FsEntry, name: string): Promise<void> => {
      if (c.nlink > 1) {
        const first = firstName.get(c.ino);
        if (first !== undefined) {
          await header({ ...entryOf(c, name, 'hardlink', mtime), linkname: first, xattrs: undefined });
          result.hardlinks++;
          return;
        }
        firstName.set(c.ino, name);
      }
      const blob = view.fileBlob(c.ino)!;
      await header({ ...entryOf(c, name, 'file', mtime), size: blob.size });
      const n = await store.copyBlobTo(blob.blob, (piece) => out.add(piece));
      if (n !== blob.size) throw new ObjectCorruptError(`${name} has ${n} bytes where its tree says ${blob.size}: the revision is damaged`);
      await out.add(paddingFor(n));
      result.files++;
    };

    await header(entryOf(view.rootEntry(), './', 'dir', mtime));
    await walk(1, '');
    await out.add(archiveEnd(out.written));
    await out.flush();
    result.bytes = out.bytes;
    return result;
  } finally {
    store.close();
  }
}

/** The archive member for a served entry (no content). */
function entryOf(c: FsEntry, name: string, type: TarMemberType, mtime: number): TarEntry {
  const e: TarEntry = { name, type, mode: c.mode & 0o7777, uid: c.uid, gid: c.gid, size: 0, mtime };
  if (type === 'symlink') e.linkname = c.link ?? Buffer.alloc(0);
  if (type === 'char' || type === 'block') {
    const { major, minor } = splitDev(BigInt(c.rdev));
    e.devmajor = major;
    e.devminor = minor;
  }
  if (c.xattrs !== undefined && c.xattrs.size > 0) e.xattrs = c.xattrs;
  return e;
}

/**
 * exportTar into `file`, atomically: the archive is written to a temp file beside it,
 * fsynced and renamed over `file`, so a failure never leaves a partial archive under the
 * name (the temp file is removed).
 */
export async function exportTarToFile(opts: { gitdir: string; rev: string; file: string }): Promise<ExportResult & { output: string }> {
  const file = resolve(opts.file);
  const tmp = tempPathFor(file);
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(tmp, 'wx', 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new OutputError(`cannot create ${file} (${code}): give a path in a writable directory`, { data: { file }, cause: err });
  }
  let done = false;
  try {
    const result = await exportTar({
      gitdir: opts.gitdir,
      rev: opts.rev,
      outputLabel: file,
      write: async (chunk) => {
        for (let off = 0; off < chunk.length;) off += (await fh.write(chunk, off)).bytesWritten;
      },
    });
    try {
      await fh.sync();
      await fh.close();
      await fs.rename(tmp, file);
      fsyncDir(resolve(file, '..'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'ENOSPC') throw new NoSpaceError(`no space left to write ${file}: free space there, or write it elsewhere`, { cause: err });
      throw new OutputError(`cannot write ${file} (${code}): check the filesystem`, { data: { file }, cause: err });
    }
    done = true;
    return { ...result, output: file };
  } finally {
    if (!done) {
      await fh.close().catch(() => undefined);
      await fs.rm(tmp, { force: true });
    }
  }
}
