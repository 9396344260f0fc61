/**
 * Loads gitroot's native addon (native/*.c, built by node-gyp into build/Release) and
 * types its surface. One place knows where the binary lives: next to the package
 * (source or dist layout), or GITROOT_NATIVE_ADDON for a single-file bundle.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Opaque handle of a mounted FUSE session. */
export type FuseHandle = { readonly __brand: 'FuseHandle' };

/** What the kernel side asks JavaScript for. */
export const KIND_LOADDIR = 1;
export const KIND_CONTENT = 2;
/** Not a question: a file installed ahead of demand is being read (keep reading ahead). */
export const KIND_HINT = 3;
/** Not a question: inodes were freed (the kernel forgot them and no directory lists them); drainFreed says which. */
export const KIND_FREED = 4;

/** What a swap's invalidations did (see NativeAddon.swap). */
export interface SwapNotified {
  /** Invalidations to send: entries (directory, name) and inodes. */
  notes: number;
  sent: number;
  /** The kernel had nothing cached for them. */
  gone: number;
  failed: number;
  ms: number;
}

export interface FuseStats {
  inodes: number;
  cacheBytes: number;
  spillFds: number;
  jsCalls: number;
  lookups: number;
  reads: number;
  readBytes: number;
  evictions: number;
  opens: number;
  /** Revision switches applied. */
  swaps: number;
  /** Inodes freed (forgotten by the kernel and listed by no directory). */
  freed: number;
  /** Entry and inode invalidations sent to the kernel by switches. */
  invalEntries: number;
  invalInodes: number;
}

export interface NativeAddon {
  readXattrs(path: string): Array<[string, Buffer]>;
  /** mount(2) MS_MOVE of each (source, target) pair, in order, back to back: [how many moved, errno of the one that failed or 0]. */
  moveMounts(paths: string[]): [number, number];
  mount(
    mountpoint: string,
    options: { fsOptions: string; cacheBytes: number; maxSpillFds: number; time: number; threads: number },
    rootEntry: Buffer,
    handler: (kind: number, ino: number, id: number) => void,
    onExit: (status: number) => void,
  ): FuseHandle;
  complete(handle: FuseHandle, id: number, kind: number, ino: number, errno: number, payload?: Buffer | number, size?: number): boolean;
  unmount(handle: FuseHandle): void;
  stats(handle: FuseHandle): FuseStats;
  cached(handle: FuseHandle, ino: number): boolean;
  /** A loaded directory's children (see native/gitfs_fuse.c gitfs_children), or null. */
  children(handle: FuseHandle, ino: number): Buffer | null;
  /** The inodes freed since the last call. */
  drainFreed(handle: FuseHandle): number[];
  /**
   * Applies a revision switch (entry-codec.ts encodeSwap) in one step; `onDone` gets the
   * invalidations' outcome once they are sent (from a native thread). Throws, changing
   * nothing, on a malformed batch.
   */
  swap(handle: FuseHandle, batch: Buffer, time: number, onDone: (n: SwapNotified) => void): { notes: number };
}

let cached: NativeAddon | undefined;

function addonPath(): string {
  const override = process.env.GITROOT_NATIVE_ADDON;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'build', 'Release', 'gitroot_native.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error(
    "gitroot's native addon is not built: run 'bash scripts/setup.sh' (it installs libfuse3-dev and builds it), or 'npm run build' when libfuse3-dev is installed",
  );
}

/** The native addon, loaded once. */
export function native(): NativeAddon {
  if (!cached) cached = createRequire(import.meta.url)(addonPath()) as NativeAddon;
  return cached;
}
