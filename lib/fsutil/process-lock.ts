/**
 * The cross-process lock of a gitroot home: `D/lock`, a small JSON file naming its holder (pid,
 * the process's start time from /proc, the boot id, the command). It is taken atomically by
 * writing the holder's record to a temp file and hard-linking it to `D/lock` (link fails if the
 * lock exists), so the lock never exists without its record. A lock whose holder is gone (no
 * such pid, a different process under a reused pid, a zombie, or a record from an earlier boot)
 * is stale and is broken by renaming it away and checking that what was renamed is the stale
 * record; anything else is waited for up to `waitMs`, then refused with a LockedError.
 * Temp files of holders killed while taking the lock are swept by the next holder.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockedError, StateError } from '../errors/errors.js';

/** Who holds a lock, as recorded in `D/lock`. */
export interface LockOwner {
  pid: number;
  /** Start time of the process in clock ticks since boot (field 22 of /proc/PID/stat). */
  startTime: string;
  /** /proc/sys/kernel/random/boot_id of the boot the holder ran in. */
  bootId: string;
  /** What the holder is doing, e.g. `gitroot fetch`. */
  command: string;
  /** When it took the lock (ISO 8601). */
  acquiredAt: string;
  /** Random token telling this holding apart from any other. */
  token: string;
}

/** A lock this process holds; pass it to writers that need the lock (writeState). */
export interface HeldLock {
  /** The gitroot home. */
  readonly dir: string;
  /** `D/lock`. */
  readonly path: string;
  readonly owner: LockOwner;
  /** Throws LockedError if `D/lock` is no longer this holding (it was removed or taken over). */
  assertHeld(): void;
}

export interface LockOptions {
  /** How long to wait for another holder to finish (default 0: refuse at once). */
  waitMs?: number;
  /** What this process is doing, recorded for whoever meets the lock (default `gitroot`). */
  command?: string;
}

/** Path of the lock of home `dir`. */
export function lockPath(dir: string): string {
  return join(dir, 'lock');
}

/** Fields of /proc/PID/stat after the command name: [state, ppid, ...]; null if the process is gone. */
function procStat(pid: number): string[] | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name is in parentheses and may itself contain ') ': split after the last one.
  return text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
}

/** Start time of a process in clock ticks since boot, or null if there is no such process. */
export function processStartTime(pid: number): string | null {
  const f = procStat(pid);
  return f === null ? null : (f[19] ?? null);
}

let bootIdCache: string | undefined;
/** This boot's id (a lock recorded in another boot is always stale). */
export function currentBootId(): string {
  bootIdCache ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return bootIdCache;
}

/** Why the recorded holder is gone, or null if it is still running. */
export function ownerGone(owner: LockOwner): string | null {
  if (owner.bootId !== currentBootId()) return 'it was taken in an earlier boot';
  const f = procStat(owner.pid);
  if (f === null) return `pid ${owner.pid} is not running`;
  if (f[19] !== owner.startTime) return `pid ${owner.pid} is now another process`;
  if (f[0] === 'Z' || f[0] === 'X') return `pid ${owner.pid} has exited`;
  return null;
}

function parseOwner(text: string): LockOwner | null {
  try {
    const v = JSON.parse(text) as Partial<LockOwner>;
    if (typeof v !== 'object' || v === null) return null;
    if (!Number.isInteger(v.pid) || typeof v.startTime !== 'string' || typeof v.bootId !== 'string'
      || typeof v.command !== 'string' || typeof v.token !== 'string') return null;
    return { pid: v.pid as number, startTime: v.startTime, bootId: v.bootId, command: v.command,
      acquiredAt: typeof v.acquiredAt === 'string' ? v.acquiredAt : '', token: v.token };
  } catch {
    return null;
  }
}

type Seen = { kind: 'none' } | { kind: 'owner'; owner: LockOwner; text: string } | { kind: 'garbage'; text: string };

function readLock(path: string): Seen {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    throw new StateError(`cannot read the lock ${path}: ${(e as Error).message}; check the gitroot home's permissions`, { cause: e });
  }
  const owner = parseOwner(text);
  return owner === null ? { kind: 'garbage', text } : { kind: 'owner', owner, text };
}

/** The current holder of the home's lock, or null when it is free or unreadable. */
export function readLockOwner(dir: string): LockOwner | null {
  const seen = readLock(lockPath(dir));
  return seen.kind === 'owner' ? seen.owner : null;
}

function uniqueName(dir: string, what: string): string {
  return join(dir, `.lock.${what}.${process.pid}.${randomBytes(6).toString('hex')}`);
}

function writeRecord(path: string, text: string): void {
  const fd = openSync(path, 'wx', 0o644);
  try {
    const buf = Buffer.from(text);
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/**
 * Removes a stale lock whose text was `staleText`: renames `D/lock` to a private name, and if
 * what it renamed is not that stale record but a live holder's (it took the lock in between),
 * puts it back.
 */
function breakStale(path: string, dir: string, staleText: string): void {
  const aside = uniqueName(dir, 'stale');
  try {
    renameSync(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  let moved = '';
  try {
    moved = readFileSync(aside, 'utf8');
  } catch {
    return;
  }
  if (moved !== staleText) {
    const owner = parseOwner(moved);
    if (owner !== null && ownerGone(owner) === null) {
      // We moved a live holder's lock: restore it (if someone else got in meanwhile, the live holder's
      // assertHeld() will notice before it writes anything).
      try {
        linkSync(aside, path);
      } catch {
        // another process holds it now
      }
    }
  }
  unlinkQuiet(aside);
}

/** Removes `.lock.new.*`/`.lock.stale.*` files of processes that are gone (killed mid-acquire). */
function sweepTemps(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^\.lock\.(?:new|stale)\.(\d+)\./.exec(n);
    if (m !== null && Number(m[1]) !== process.pid && processStartTime(Number(m[1])) === null) unlinkQuiet(join(dir, n));
  }
}

function lockedError(path: string, owner: LockOwner | null): LockedError {
  const who = owner === null ? 'another gitroot process' : `another gitroot process (pid ${owner.pid}, '${owner.command}')`;
  return new LockedError(`${who} holds ${path}: wait for it or remove the lock if that process is gone`,
    { data: { path, pid: owner?.pid ?? null, command: owner?.command ?? null } });
}

/**
 * Takes the lock of home `dir` (created if missing), waiting up to `waitMs` for a live holder;
 * throws LockedError when it is still held then. Release it with releaseLock.
 */
export async function acquireLock(dir: string, opts: LockOptions = {}): Promise<HeldLock> {
  const waitMs = opts.waitMs ?? 0;
  const path = lockPath(dir);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new StateError(`cannot create the gitroot home ${dir}: ${(e as Error).message}; check the path and its permissions`, { cause: e });
  }
  const startTime = processStartTime(process.pid);
  if (startTime === null) throw new StateError('cannot read /proc/self/stat: gitroot needs /proc mounted');
  const owner: LockOwner = {
    pid: process.pid, startTime, bootId: currentBootId(), command: opts.command ?? 'gitroot',
    acquiredAt: new Date().toISOString(), token: randomBytes(12).toString('hex'),
  };
  const text = JSON.stringify(owner) + '\n';
  const deadline = Date.now() + waitMs;
  let pause = 10;
  for (;;) {
    const tmp = uniqueName(dir, 'new');
    try {
      writeRecord(tmp, text);
      linkSync(tmp, path);
      unlinkQuiet(tmp);
      sweepTemps(dir);
      return makeHeld(dir, path, owner, text);
    } catch (e) {
      unlinkQuiet(tmp);
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StateError(`cannot take the lock ${path}: ${(e as Error).message}; check that the gitroot home is writable`, { cause: e });
      }
    }
    const seen = readLock(path);
    if (seen.kind === 'none') continue;
    if (seen.kind === 'garbage' || ownerGone(seen.owner) !== null) {
      breakStale(path, dir, seen.text);
      continue;
    }
    if (Date.now() >= deadline) throw lockedError(path, seen.owner);
    await sleep(Math.min(pause, Math.max(1, deadline - Date.now())));
    pause = Math.min(pause * 2, 250);
  }
}

function makeHeld(dir: string, path: string, owner: LockOwner, text: string): HeldLock {
  return {
    dir, path, owner,
    assertHeld() {
      const seen = readLock(path);
      if (seen.kind !== 'owner' || seen.text !== text) {
        throw new LockedError(`the lock ${path} was removed or taken over while this process held it: ` +
          'run the command again (and do not remove the lock of a running gitroot)',
        { data: { path, pid: seen.kind === 'owner' ? seen.owner.pid : null } });
      }
    },
  };
}

/** Releases a lock taken with acquireLock (only if `D/lock` is still this holding). */
export function releaseLock(lock: HeldLock): void {
  const seen = readLock(lock.path);
  if (seen.kind === 'owner' && seen.owner.token === lock.owner.token) unlinkQuiet(lock.path);
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
