/**
 * The fetch lock: one fetch (or repair, or repack by prune) into a repository at a time,
 * across processes: `<repo>/gitroot-fetch.lock`. The locking itself (an atomic record of
 * the holder with its pid, start time and boot id; a dead holder's lock broken by the next
 * taker; waiting) is lib/fsutil/process-lock.ts, shared with the home's lock.
 */
import path from 'node:path';
import { LockedError } from '../errors/errors.js';
import { acquireLockFile, releaseLock } from '../fsutil/process-lock.js';

export const FETCH_LOCK_NAME = 'gitroot-fetch.lock';

export interface FetchLock {
  readonly path: string;
  /** Removes the lock (only if it is still ours). */
  release(): void;
}

/**
 * Takes the fetch lock of `gitdir`, waiting up to `waitMs` for another fetch to finish.
 * Throws LockedError naming the holder when the wait runs out.
 */
export async function acquireFetchLock(gitdir: string, opts: { waitMs?: number; signal?: AbortSignal; command?: string } = {}): Promise<FetchLock> {
  const file = path.join(gitdir, FETCH_LOCK_NAME);
  const held = await acquireLockFile(file, {
    waitMs: opts.waitMs,
    signal: opts.signal,
    command: opts.command ?? 'gitroot fetch',
    lockedError: (p, owner) => {
      const who = owner === null ? 'another process' : `process ${owner.pid} ('${owner.command}', since ${owner.acquiredAt})`;
      return new LockedError(`another fetch into ${gitdir} is running: ${who} holds ${p}; wait for it to finish or retry later`, {
        data: { lock: p, pid: owner?.pid ?? null, command: owner?.command ?? null },
      });
    },
  });
  return { path: file, release: () => releaseLock(held) };
}
