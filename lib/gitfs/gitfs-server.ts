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
import { native, KIND_CONTENT, KIND_HINT, KIND_LOADDIR, type FuseHandle, type FuseStats, type NativeAddon } from '../native/addon.js';
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

/** Options of a native mount (see NativeAddon.mount). */
type FuseMountOptions = Parameters<NativeAddon['mount']>[1];

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

/** How a session serves file content, and where it reports problems. */
interface ContentSettings {
  /** Files bigger than this are served from a spill file. */
  spillThreshold: number;
  spillDir: string;
  log: (line: string) => void;
}

/**
 * The JavaScript side of one mount: answers the native session's requests (a directory's
 * entries, a file's content, a read-ahead hint) from the tree view and the verified store.
 * Its handlers are bound once, so serving a request creates no closure beyond a spill job.
 */
class GitfsSession {
  private handle: FuseHandle | undefined;
  private unmounted = false;
  /** Spill jobs running, by inode: a second read of the same big file waits for the first. */
  private readonly spilling = new Map<number, Promise<void>>();
  /** Messages already logged (each problem is logged once). */
  private readonly reported = new Set<string>();
  /** Read-ahead queue: inodes to decode between requests, and the set of them. */
  private readonly ahead: number[] = [];
  private readonly queued = new Set<number>();
  private pumping = false;

  constructor(
    private readonly addon: NativeAddon,
    private readonly store: ObjectStore,
    private readonly view: CommitTreeView,
    private readonly settings: ContentSettings,
  ) {}

  /** Mounts the native session at `mountpoint`; `onExit` runs when the FUSE loop ends. */
  mount(mountpoint: string, options: FuseMountOptions, onExit: (status: number) => void): void {
    try {
      this.handle = this.addon.mount(mountpoint, options, encodeEntry(this.view.rootEntry()), this.onRequest, (status) => {
        this.stop();
        onExit(status);
      });
    } catch (e) {
      this.store.close();
      throw new MountError(`cannot mount ${mountpoint}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Unmounts and closes the store, once; true if this call did it. */
  stop(): boolean {
    if (this.unmounted) return false;
    this.unmounted = true;
    this.addon.unmount(this.handle!);
    this.store.close();
    return true;
  }

  /** The native session's counters. */
  stats(): FuseStats {
    return this.addon.stats(this.handle!);
  }

  /** The request handler given to the native side. */
  private readonly onRequest = (kind: number, ino: number, id: number): void => {
    try {
      if (kind === KIND_LOADDIR) this.addon.complete(this.handle!, id, kind, ino, 0, encodeDirectory(this.view.listDirectory(ino)));
      else if (kind === KIND_CONTENT) this.loadContent(id, ino);
      else if (kind === KIND_HINT) this.readAheadFrom(ino);
      else this.fail(id, kind, ino, new Error(`unknown request kind ${kind}`));
    } catch (e) {
      this.fail(id, kind, ino, e);
    }
  };

  /** Answers request `id` with EIO, logging its cause once. */
  private fail(id: number, kind: number, ino: number, err: unknown): void {
    const msg = err instanceof GitrootError ? err.message : String((err as Error)?.stack ?? err);
    if (!this.reported.has(msg)) {
      this.reported.add(msg);
      this.settings.log(`I/O error on inode ${ino}: ${msg}`);
    }
    this.addon.complete(this.handle!, id, kind, ino, EIO);
  }

  /** Decodes a small file's verified content (throws on a damaged object). */
  private decode(file: { blob: Buffer; size: number }): Buffer {
    const obj = this.store.readObject(file.blob);
    if (obj.type !== 'blob' || obj.data.length !== file.size) {
      throw new Error(`object ${file.blob.toString('hex')} is a ${obj.type} of ${obj.data.length} bytes, expected a blob of ${file.size}`);
    }
    return obj.data;
  }

  /** Serves a file's content: small ones from memory (then reads ahead), big ones from a spill file. */
  private loadContent(id: number, ino: number): void {
    const file = this.view.fileBlob(ino);
    if (!file) return this.fail(id, KIND_CONTENT, ino, new Error(`inode ${ino} is not a regular file`));
    if (file.size <= this.settings.spillThreshold) {
      if (this.addon.cached(this.handle!, ino)) this.addon.complete(this.handle!, id, KIND_CONTENT, ino, 0);
      else this.addon.complete(this.handle!, id, KIND_CONTENT, ino, 0, this.decode(file));
      this.readAheadFrom(ino);
      return;
    }
    let job = this.spilling.get(ino);
    const first = !job;
    if (!job) {
      job = this.spill(id, ino, file).finally(() => this.spilling.delete(ino));
      this.spilling.set(ino, job);
    }
    job.then(
      () => { if (!first) this.addon.complete(this.handle!, id, KIND_CONTENT, ino, 0); },
      (e) => this.fail(id, KIND_CONTENT, ino, e),
    );
  }

  /** Streams a big blob into an unlinked spill file and hands its fd to the native side (answering `id`). */
  private async spill(id: number, ino: number, file: { blob: Buffer; size: number }): Promise<void> {
    const path = join(this.settings.spillDir, `.gitroot-spill-${process.pid}-${ino}`);
    const fd = openSync(path, 'w+', 0o600);
    unlinkSync(path);
    try {
      const size = await this.store.copyBlobToFd(file.blob, fd);
      if (size !== file.size) throw new Error(`blob ${file.blob.toString('hex')} has ${size} bytes, expected ${file.size}`);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    this.addon.complete(this.handle!, id, KIND_CONTENT, ino, 0, fd, file.size);
  }

  // Read-ahead: a reader going through a directory's files in order (tar, cp -a, rsync,
  // boot-time loading of /usr/lib) finds the next files already decoded. Each file decoded
  // ahead is handed to the native cache unasked; when the reader reaches it, the native
  // side sends a hint and the window moves on. Runs between requests (setImmediate), one
  // file at a time, so demand reads never wait behind more than one small file.

  /** Queues the next few small files after `ino` in its directory for decoding ahead. */
  private readAheadFrom(ino: number): void {
    const view = this.view;
    let next = view.nextFile(ino);
    for (let i = 0; i < READAHEAD_FILES && next !== undefined; i++, next = view.nextFile(next)) {
      if (this.queued.has(next)) continue;
      const f = view.fileBlob(next);
      if (!f || f.size === 0 || f.size > READAHEAD_MAX_FILE) continue;
      this.queued.add(next);
      this.ahead.push(next);
    }
    if (!this.pumping && this.ahead.length) {
      this.pumping = true;
      setImmediate(this.pump);
    }
  }

  /** Decodes one queued file into the native cache, then yields to pending requests. */
  private readonly pump = (): void => {
    const ino = this.ahead.shift();
    if (ino === undefined || this.unmounted) { this.pumping = false; return; }
    try {
      if (!this.addon.cached(this.handle!, ino)) this.addon.complete(this.handle!, 0, KIND_CONTENT, ino, 0, this.decode(this.view.fileBlob(ino)!));
    } catch {
      /* a damaged object: the demand read will report it */
    }
    this.queued.delete(ino);
    setImmediate(this.pump);
  };
}

/** Mounts `opts.rev` of `opts.gitdir` at `opts.mountpoint`, read-only, and serves it in this process. */
export function mountGitfs(opts: MountOptions): GitfsMount {
  const log = opts.log ?? ((line: string) => process.stderr.write(`gitroot: ${line}\n`));
  const mountpoint = checkMountpoint(opts.mountpoint);
  // CRC32-verified pack reads (see ObjectStoreOptions.verify): SHA-1 over every served
  // byte was ~30% of a cold full read. The base cache is kept small for the RSS budget.
  const store = ObjectStore.open(opts.gitdir, { baseCacheBytes: 6 * 1024 * 1024, verify: 'crc32' });
  let commit: string;
  let view: CommitTreeView;
  try {
    commit = resolveRevision(opts.gitdir, opts.rev ?? 'HEAD', store);
    view = CommitTreeView.open(store, commit);
  } catch (e) {
    // A revision that does not resolve or read: nothing is served, so nothing stays open.
    store.close();
    throw e;
  }
  const cacheBytes = opts.cacheBytes ?? 6 * 1024 * 1024;
  // Content up to half the native ring is served from memory; bigger files from a spill file.
  const spillThreshold = opts.spillThreshold ?? Math.floor(cacheBytes / 2);
  const session = new GitfsSession(native(), store, view, { spillThreshold, spillDir: opts.spillDir ?? tmpdir(), log });

  let resolveExit!: (status: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));
  session.mount(mountpoint, {
    fsOptions: `ro,default_permissions,allow_other,suid,dev,fsname=gitroot:${commit.slice(0, 12)},subtype=gitfs`,
    cacheBytes,
    maxSpillFds: 32,
    time: view.time,
    threads: opts.threads ?? 8,
  }, (status) => resolveExit(status));

  return {
    mountpoint,
    commit,
    exited,
    stats: () => session.stats(),
    unmount: () => {
      if (session.stop()) resolveExit(0);
    },
  };
}
