/**
 * The cross-process lock of a gitroot home: `D/lock`. Every write of the home's state
 * (state.json, D/boot, boot entries, fsck verdicts, prune) happens under it. The locking
 * itself (atomic record, stale holders broken, waiting) is lib/fsutil/process-lock.ts.
 */
import { mkdirSync } from 'node:fs';
import { StateError } from '../errors/errors.js';
import { lockPath } from './home-layout.js';
import { acquireLockFile, readLockFileOwner, releaseLock, type HeldLock, type LockOptions, type LockOwner } from '../fsutil/process-lock.js';

export { currentBootId, ownerGone, processStartTime, releaseLock } from '../fsutil/process-lock.js';
export type { HeldLock, LockOptions, LockOwner } from '../fsutil/process-lock.js';

/** The current holder of the home's lock, or null when it is free or unreadable. */
export function readLockOwner(dir: string): LockOwner | null {
  return readLockFileOwner(lockPath(dir));
}

/**
 * Takes the lock of home `dir` (created if missing), waiting up to `waitMs` for a live holder;
 * throws LockedError when it is still held then. Release it with releaseLock.
 */
export async function acquireLock(dir: string, opts: LockOptions = {}): Promise<HeldLock> {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new StateError(`cannot create the gitroot home ${dir}: ${(e as Error).message}; check the path and its permissions`, { cause: e });
  }
  return acquireLockFile(lockPath(dir), opts);
}

/**
 * Runs `fn` holding the lock of home `dir`, and releases it afterwards whatever happens. A
 * second process waits up to `waitMs`, then gets a LockedError naming the holder.
 */
export async function withLock<T>(dir: string, opts: LockOptions, fn: (lock: HeldLock) => T | Promise<T>): Promise<T> {
  const lock = await acquireLock(dir, opts);
  try {
    return await fn(lock);
  } finally {
    releaseLock(lock);
  }
}
