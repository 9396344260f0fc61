/**
 * Serves one commit over FUSE: opens the object store, resolves the revision, mounts the
 * native session and answers its two questions (a directory's entries, a file's content)
 * from CommitTreeView and the verified object store. Everything else is answered natively.
 * A running mount can switch to another revision (switchTo, tree-switch.ts): unchanged paths
 * keep their inodes and the kernel's caches, an open file keeps reading what it opened.
 *
 * Content up to `spillThreshold` is decoded in memory and copied into the native cache;
 * bigger blobs are streamed once into an unlinked spill file that the native side reads
 * with pread, so memory stays bounded however big a file is. A corrupt or missing object
 * fails that file's reads with EIO, never with wrong bytes.
 */
import { closeSync, openSync, statSync, unlinkSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  native,
  KIND_CONTENT,
  KIND_FREED,
  KIND_HINT,
  KIND_LOADDIR,
  type FuseHandle,
  type FuseStats,
  type NativeAddon,
  type SwapNotified,
} from '../native/addon.js';
import { ObjectStore } from '../store/object-store.js';
import { readRef, resolveRevision } from '../store/refs.js';
import { tagRefName } from '../store/gitroot-refs.js';
import { GitrootError, LockedError, MountError, UsageError } from '../errors/errors.js';
import type { AllowedSigners } from '../trust/allowed-signers.js';
import { requireTrustedRevision } from '../trust/revision-trust.js';
import { CommitTreeView, type InodeTable, type ViewRef } from './tree-view.js';
import { encodeDirectory, encodeEntry } from './entry-codec.js';
import { GITFS_FSTYPE, mountAt } from './mount-table.js';
import { nativeTree, planSwitch, type SwitchCounts } from './tree-switch.js';

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

/** What a switch did (the answer of `gitroot switch`). */
export interface SwitchResult {
  /** The revision served before, and now. */
  from: string;
  to: string;
  /** False when the mount already served `to`. */
  changed: boolean;
  counts: SwitchCounts;
  /** The kernel invalidations: how many were needed, sent, and found nothing cached. */
  notified: SwapNotified;
  /** Milliseconds: planning (reading the trees), the native swap, the invalidations, and in all. */
  ms: { plan: number; swap: number; notify: number; total: number };
}

/** Options of a switch. */
export interface SwitchOptions {
  /** With these, the revision must carry a valid signature from a listed key (lib/trust), like `gitroot boot`'s. */
  signers?: AllowedSigners | null;
}

export interface GitfsMount {
  readonly mountpoint: string;
  /** The revision served now. */
  readonly commit: string;
  /** Resolves with the loop's status when the filesystem is unmounted (by us or from outside). */
  readonly exited: Promise<number>;
  stats(): FuseStats;
  /** Starts serving revision `rev` (see GitfsSession.switchTo); refused, changing nothing, when it cannot be read or trusted. */
  switchTo(rev: string, opts?: SwitchOptions): Promise<SwitchResult>;
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
  /** The view every current directory is listed from (moved by a switch). */
  private readonly current: ViewRef;
  private readonly table: InodeTable;
  private switching = false;
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
    view: CommitTreeView,
    private readonly settings: ContentSettings & { gitdir: string },
  ) {
    this.table = view.table;
    this.current = this.table.dir(1)!.ref;
  }

  /** The revision served now. */
  get commit(): string {
    return this.current.view.commit;
  }

  /** Mounts the native session at `mountpoint`; `onExit` runs when the FUSE loop ends. */
  mount(mountpoint: string, options: FuseMountOptions, onExit: (status: number) => void): void {
    try {
      this.handle = this.addon.mount(mountpoint, options, encodeEntry(this.current.view.rootEntry()), this.onRequest, (status) => {
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
      if (kind === KIND_LOADDIR) this.addon.complete(this.handle!, id, kind, ino, 0, encodeDirectory(this.table.listDirectory(ino)));
      else if (kind === KIND_CONTENT) this.loadContent(id, ino);
      else if (kind === KIND_HINT) this.readAheadFrom(ino);
      else if (kind === KIND_FREED) this.forgetFreed();
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
    const file = this.table.fileBlob(ino);
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
      () => {
        if (!first) this.addon.complete(this.handle!, id, KIND_CONTENT, ino, 0);
      },
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

  /** Forgets the inodes the native side freed (the old revision's, once the kernel let them go). */
  private forgetFreed(): void {
    for (const ino of this.addon.drainFreed(this.handle!)) this.table.forget(ino);
  }

  /**
   * Starts serving revision `rev`: resolves it in this mount's repository, checks it (its
   * commit, root tree and manifest must read back verified; with `signers`, it must be
   * trusted like at boot), plans the switch (tree-switch.ts) and applies it in one native
   * step, then waits for the kernel invalidations to be sent. One switch at a time; a refused
   * switch changes nothing. The event loop keeps serving requests while it plans.
   */
  async switchTo(rev: string, opts: SwitchOptions = {}): Promise<SwitchResult> {
    if (this.unmounted) throw new MountError('the mount is gone: nothing to switch');
    if (this.switching) throw new LockedError(`a switch of this mount is already running: wait for it, then ask again`);
    this.switching = true;
    try {
      const t0 = performance.now();
      const from = this.commit;
      const to = resolveRevision(this.settings.gitdir, rev, this.store);
      if (opts.signers) requireTrustedRevision(this.store, opts.signers, to, readRef(this.settings.gitdir, tagRefName(to)));
      const none: SwapNotified = { notes: 0, sent: 0, gone: 0, failed: 0, ms: 0 };
      const zero: SwitchCounts = { dirsCompared: 0, dirsChanged: 0, kept: 0, created: 0, detached: 0 };
      if (to === from)
        return { from, to, changed: false, counts: zero, notified: none, ms: { plan: 0, swap: 0, notify: 0, total: Math.round(performance.now() - t0) } };
      const newView = CommitTreeView.open(this.store, to, this.table);
      const plan = await planSwitch({
        table: this.table,
        current: this.current,
        oldView: this.current.view,
        newView,
        native: nativeTree((ino) => this.addon.children(this.handle!, ino)),
      });
      if (this.unmounted) {
        plan.abort();
        throw new MountError('the mount went away during the switch');
      }
      const t1 = performance.now();
      let notified!: Promise<SwapNotified>;
      try {
        // From here to apply(): one tick, so no request sees a half-switched tree.
        const batch = plan.finish();
        notified = new Promise<SwapNotified>((resolve) => this.addon.swap(this.handle!, batch, newView.time, resolve));
      } catch (e) {
        plan.abort();
        throw new MountError(`cannot switch to ${to}: ${(e as Error).message}`, { cause: e });
      }
      plan.apply();
      const t2 = performance.now();
      const n = await notified;
      const t3 = performance.now();
      this.settings.log(
        `switched from ${from} to ${to}: ${plan.counts.dirsChanged} directories changed, ${plan.counts.created} new inodes, ${n.sent} cache entries invalidated`,
      );
      return {
        from,
        to,
        changed: true,
        counts: plan.counts,
        notified: n,
        ms: { plan: Math.round(t1 - t0), swap: Math.round(t2 - t1), notify: Math.round(n.ms), total: Math.round(t3 - t0) },
      };
    } finally {
      this.switching = false;
    }
  }

  // Read-ahead: a reader going through a directory's files in order (tar, cp -a, rsync,
  // boot-time loading of /usr/lib) finds the next files already decoded. Each file decoded
  // ahead is handed to the native cache unasked; when the reader reaches it, the native
  // side sends a hint and the window moves on. Runs between requests (setImmediate), one
  // file at a time, so demand reads never wait behind more than one small file.

  /** Queues the next few small files after `ino` in its directory for decoding ahead. */
  private readAheadFrom(ino: number): void {
    const table = this.table;
    let next = table.nextFile(ino);
    for (let i = 0; i < READAHEAD_FILES && next !== undefined; i++, next = table.nextFile(next)) {
      if (this.queued.has(next)) continue;
      const f = table.fileBlob(next);
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
    if (ino === undefined || this.unmounted) {
      this.pumping = false;
      return;
    }
    try {
      const file = this.table.fileBlob(ino); // gone when a switch freed it meanwhile
      if (file && !this.addon.cached(this.handle!, ino)) this.addon.complete(this.handle!, 0, KIND_CONTENT, ino, 0, this.decode(file));
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
  const session = new GitfsSession(native(), store, view, { spillThreshold, spillDir: opts.spillDir ?? tmpdir(), log, gitdir: opts.gitdir });

  let resolveExit!: (status: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));
  session.mount(
    mountpoint,
    {
      fsOptions: `ro,default_permissions,allow_other,suid,dev,fsname=gitroot:${commit.slice(0, 12)},subtype=gitfs`,
      cacheBytes,
      maxSpillFds: 32,
      time: view.time,
      threads: opts.threads ?? 8,
    },
    (status) => resolveExit(status),
  );

  return {
    mountpoint,
    get commit() {
      return session.commit;
    },
    exited,
    stats: () => session.stats(),
    switchTo: (rev, o) => session.switchTo(rev, o),
    unmount: () => {
      if (session.stop()) resolveExit(0);
    },
  };
}
