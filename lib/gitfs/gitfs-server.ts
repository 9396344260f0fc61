/**
 * Serves one commit over FUSE: opens the object store, resolves the revision, mounts the
 * native session and answers its two questions (a directory's entries, a file's content)
 * from CommitTreeView and the verified object store. Everything else is answered natively.
 *
 * Content up to `spillThreshold` is decoded in memory and copied into the native cache;
 * bigger blobs are streamed once into an unlinked spill file that the native side reads
 * with pread, so memory stays bounded however big a file is. A corrupt or missing object
 * fails that file's reads with EIO, never with wrong bytes.
 */
import { closeSync, openSync, statSync, unlinkSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, KIND_CONTENT, KIND_HINT, KIND_LOADDIR, type FuseHandle, type FuseStats } from '../native/addon.js';
import { ObjectStore } from '../store/object-store.js';
import { resolveRevision } from '../store/refs.js';
import { GitrootError, MountError, UsageError } from '../errors/errors.js';
import { CommitTreeView } from './tree-view.js';
import { encodeDirectory, encodeEntry } from './entry-codec.js';
import { GITFS_FSTYPE, mountAt } from './mount-table.js';

const EIO = 5;

/** Read-ahead across files: how many files and bytes to decode ahead of a sequential reader. */
const READAHEAD_FILES = 6;
const READAHEAD_MAX_FILE = 1024 * 1024;

export interface MountOptions {
  /** Git directory (bare repo or a work tree's .git). */
  gitdir: string;
  /** SHA, branch or tag; default HEAD. */
  rev?: string;
  mountpoint: string;
  /** Bytes of decoded file content kept natively (default 6 MiB: the kernel keeps pages once read). */
  cacheBytes?: number;
  /** Files bigger than this are served from a spill file (default half of cacheBytes). */
  spillThreshold?: number;
  /** Where spill files go (default the system temp dir); they are unlinked at once. */
  spillDir?: string;
  /** FUSE worker threads (default 8). */
  threads?: number;
  /** Where problems (corrupt objects) are reported; default stderr. */
  log?: (line: string) => void;
}

export interface GitfsMount {
  readonly mountpoint: string;
  readonly commit: string;
  /** Resolves with the loop's status when the filesystem is unmounted (by us or from outside). */
  readonly exited: Promise<number>;
  stats(): FuseStats;
  unmount(): void;
}

/** Checks that `mountpoint` can take a mount; returns its resolved path. */
export function checkMountpoint(mountpoint: string): string {
  let real: string;
  try {
    real = realpathSync(mountpoint);
  } catch {
    throw new UsageError(`mountpoint ${mountpoint} does not exist: create it with 'mkdir -p ${mountpoint}'`);
  }
  if (!statSync(real).isDirectory()) throw new UsageError(`mountpoint ${mountpoint} is not a directory: give an empty directory`);
  const existing = mountAt(real);
  if (existing) {
    const what = existing.fstype === GITFS_FSTYPE ? `gitroot (${existing.source})` : existing.fstype;
    throw new MountError(`mountpoint ${real} is already in use by a ${what} mount: run 'gitroot umount ${real}' or pick another directory`);
  }
  return real;
}

/** Mounts `opts.rev` of `opts.gitdir` at `opts.mountpoint`, read-only, and serves it in this process. */
export function mountGitfs(opts: MountOptions): GitfsMount {
  const log = opts.log ?? ((line: string) => process.stderr.write(`gitroot: ${line}\n`));
  const mountpoint = checkMountpoint(opts.mountpoint);
  // CRC32-verified pack reads (see ObjectStoreOptions.verify): SHA-1 over every served
  // byte was ~30% of a cold full read. The base cache is kept small for the RSS budget.
  const store = ObjectStore.open(opts.gitdir, { baseCacheBytes: 6 * 1024 * 1024, verify: 'crc32' });
  const commit = resolveRevision(opts.gitdir, opts.rev ?? 'HEAD', store);
  const view = CommitTreeView.open(store, commit);
  const cacheBytes = opts.cacheBytes ?? 6 * 1024 * 1024;
  // Content up to half the native ring is served from memory; bigger files from a spill file.
  const spillThreshold = opts.spillThreshold ?? Math.floor(cacheBytes / 2);
  const spillDir = opts.spillDir ?? tmpdir();
  const addon = native();
  const spilling = new Map<number, Promise<void>>();
  const reported = new Set<string>();
  let handle: FuseHandle | undefined;
  let unmounted = false;

  const fail = (id: number, kind: number, ino: number, err: unknown) => {
    const msg = err instanceof GitrootError ? err.message : String((err as Error)?.stack ?? err);
    if (!reported.has(msg)) {
      reported.add(msg);
      log(`I/O error on inode ${ino}: ${msg}`);
    }
    addon.complete(handle!, id, kind, ino, EIO);
  };

  /** Decodes a small file's verified content (throws on a damaged object). */
  const decode = (file: { blob: Buffer; size: number }): Buffer => {
    const obj = store.readObject(file.blob);
    if (obj.type !== 'blob' || obj.data.length !== file.size) {
      throw new Error(`object ${file.blob.toString('hex')} is a ${obj.type} of ${obj.data.length} bytes, expected a blob of ${file.size}`);
    }
    return obj.data;
  };

  // Read-ahead: a reader going through a directory's files in order (tar, cp -a, rsync,
  // boot-time loading of /usr/lib) finds the next files already decoded. Each file decoded
  // ahead is handed to the native cache unasked; when the reader reaches it, the native
  // side sends a hint and the window moves on. Runs between requests (setImmediate), one
  // file at a time, so demand reads never wait behind more than one small file.
  const ahead: number[] = [];
  const queued = new Set<number>();
  let pumping = false;
  const readAheadFrom = (ino: number) => {
    let next = view.nextFile(ino);
    for (let i = 0; i < READAHEAD_FILES && next !== undefined; i++, next = view.nextFile(next)) {
      if (queued.has(next)) continue;
      const f = view.fileBlob(next);
      if (!f || f.size === 0 || f.size > READAHEAD_MAX_FILE) continue;
      queued.add(next);
      ahead.push(next);
    }
    if (!pumping && ahead.length) {
      pumping = true;
      setImmediate(pump);
    }
  };
  const pump = () => {
    const ino = ahead.shift();
    if (ino === undefined || unmounted) { pumping = false; return; }
    try {
      if (!addon.cached(handle!, ino)) addon.complete(handle!, 0, KIND_CONTENT, ino, 0, decode(view.fileBlob(ino)!));
    } catch {
      /* a damaged object: the demand read will report it */
    }
    queued.delete(ino);
    setImmediate(pump);
  };

  const loadContent = (id: number, ino: number) => {
    const file = view.fileBlob(ino);
    if (!file) return fail(id, KIND_CONTENT, ino, new Error(`inode ${ino} is not a regular file`));
    if (file.size <= spillThreshold) {
      if (addon.cached(handle!, ino)) addon.complete(handle!, id, KIND_CONTENT, ino, 0);
      else addon.complete(handle!, id, KIND_CONTENT, ino, 0, decode(file));
      readAheadFrom(ino);
      return;
    }
    let job = spilling.get(ino);
    const first = !job;
    if (!job) {
      job = (async () => {
        const path = join(spillDir, `.gitroot-spill-${process.pid}-${ino}`);
        const fd = openSync(path, 'w+', 0o600);
        unlinkSync(path);
        try {
          const size = await store.copyBlobToFd(file.blob, fd);
          if (size !== file.size) throw new Error(`blob ${file.blob.toString('hex')} has ${size} bytes, expected ${file.size}`);
        } catch (e) {
          closeSync(fd);
          throw e;
        }
        addon.complete(handle!, id, KIND_CONTENT, ino, 0, fd, file.size);
      })().finally(() => spilling.delete(ino));
      spilling.set(ino, job);
    }
    job.then(
      () => { if (!first) addon.complete(handle!, id, KIND_CONTENT, ino, 0); },
      (e) => fail(id, KIND_CONTENT, ino, e),
    );
  };

  const handler = (kind: number, ino: number, id: number) => {
    try {
      if (kind === KIND_LOADDIR) addon.complete(handle!, id, kind, ino, 0, encodeDirectory(view.listDirectory(ino)));
      else if (kind === KIND_CONTENT) loadContent(id, ino);
      else if (kind === KIND_HINT) readAheadFrom(ino);
      else fail(id, kind, ino, new Error(`unknown request kind ${kind}`));
    } catch (e) {
      fail(id, kind, ino, e);
    }
  };

  let resolveExit!: (status: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));
  try {
    handle = addon.mount(
      mountpoint,
      {
        fsOptions: `ro,default_permissions,allow_other,suid,dev,fsname=gitroot:${commit.slice(0, 12)},subtype=gitfs`,
        cacheBytes,
        maxSpillFds: 32,
        time: view.time,
        threads: opts.threads ?? 8,
      },
      encodeEntry(view.rootEntry()),
      handler,
      (status) => {
        if (!unmounted) {
          unmounted = true;
          addon.unmount(handle!);
          store.close();
        }
        resolveExit(status);
      },
    );
  } catch (e) {
    store.close();
    throw new MountError(`cannot mount ${mountpoint}: ${(e as Error).message}`, { cause: e });
  }

  return {
    mountpoint,
    commit,
    exited,
    stats: () => addon.stats(handle!),
    unmount: () => {
      if (unmounted) return;
      unmounted = true;
      addon.unmount(handle!);
      store.close();
      resolveExit(0);
    },
  };
}
