/**
 * Cross-process lock files, the one implementation gitroot has: the home's lock (`D/lock`,
 * lib/home/home-lock.ts) and the fetch lock of a repository (lib/fetch/fetch-lock.ts) are both
 * made here. A lock is a small JSON file naming its holder (pid, the process's start time
 * from /proc, the boot id, the command). It is taken atomically by writing the holder's
 * record to a temp file beside it and hard-linking it to the lock's name (link fails if the
 * lock exists), so the lock never exists without its record. A lock whose holder is gone (no
 * such pid, a different process under a reused pid, a zombie, or a record from an earlier boot)
 * is stale and is broken by renaming it away and checking that what was renamed is the stale
 * record; anything else is waited for up to `waitMs`, then refused with a LockedError.
 * Temp files of holders killed while taking the lock are swept by the next holder.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockedError, StateError } from '../errors/errors.js';

/** Who holds a lock, as recorded in the lock file. */
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
  /** The directory holding the lock file (for the home's lock: the gitroot home). */
  readonly dir: string;
  /** The lock file. */
  readonly path: string;
  readonly owner: LockOwner;
  /** Throws LockedError if the lock file is no longer this holding (it was removed or taken over). */
  assertHeld(): void;
}

/**
 * How long a command waits by default for another gitroot process holding a lock (a fetch,
 * prune, fsck; `--wait` of the CLI): long enough for a quick holder to finish, short enough
 * that a timer-driven run gives up and tries at its next turn.
 */
export const DEFAULT_LOCK_WAIT_MS = 5_000;

export interface LockOptions {
  /** How long to wait for another holder to finish (default 0: refuse at once). */
  waitMs?: number;
  /** What this process is doing, recorded for whoever meets the lock (default `gitroot`). */
  command?: string;
  /** Stops waiting (throws the signal's reason) when aborted. */
  signal?: AbortSignal;
  /** The refusal when a live holder keeps the lock past waitMs (default: names the holder and the file). */
  lockedError?: (path: string, owner: LockOwner | null) => LockedError;
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
  return text
    .slice(text.lastIndexOf(')') + 2)
    .trim()
    .split(' ');
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
    if (
      !Number.isInteger(v.pid) ||
      typeof v.startTime !== 'string' ||
      typeof v.bootId !== 'string' ||
      typeof v.command !== 'string' ||
      typeof v.token !== 'string'
    )
      return null;
    return {
      pid: v.pid as number,
      startTime: v.startTime,
      bootId: v.bootId,
      command: v.command,
      acquiredAt: typeof v.acquiredAt === 'string' ? v.acquiredAt : '',
      token: v.token,
    };
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
    throw new StateError(`cannot read the lock ${path}: ${(e as Error).message}; check the permissions of ${dirname(path)}`, { cause: e });
  }
  const owner = parseOwner(text);
  return owner === null ? { kind: 'garbage', text } : { kind: 'owner', owner, text };
}

/** The current holder of the lock file `path`, or null when it is free or unreadable. */
export function readLockFileOwner(path: string): LockOwner | null {
  const seen = readLock(path);
  return seen.kind === 'owner' ? seen.owner : null;
}

/** A private temp name beside the lock file `path` (`.<name>.new.<pid>.<random>`). */
function uniqueName(path: string, what: string): string {
  return join(dirname(path), `.${basename(path)}.${what}.${process.pid}.${randomBytes(6).toString('hex')}`);
}

function writeRecord(path: string, text: string): void {
  const fd = openSync(path, 'wx', 0o644);
  try {
    const buf = Buffer.from(text);
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
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
 * Removes a stale lock whose text was `staleText`: renames the lock to a private name, and if
 * what it renamed is not that stale record but a live holder's (it took the lock in between),
 * puts it back.
 */
function breakStale(path: string, staleText: string): void {
  const aside = uniqueName(path, 'stale');
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

/** Removes the `.<name>.new.*`/`.<name>.stale.*` temps of processes that are gone (killed mid-acquire). */
function sweepTemps(path: string): void {
  const dir = dirname(path);
  const prefix = `.${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const m = /^(?:new|stale)\.(\d+)\./.exec(n.slice(prefix.length));
    if (m !== null && Number(m[1]) !== process.pid && processStartTime(Number(m[1])) === null) unlinkQuiet(join(dir, n));
  }
}

function lockedError(path: string, owner: LockOwner | null): LockedError {
  const who = owner === null ? 'another gitroot process' : `another gitroot process (pid ${owner.pid}, '${owner.command}')`;
  return new LockedError(`${who} holds ${path}: wait for it or remove the lock if that process is gone`, {
    data: { path, pid: owner?.pid ?? null, command: owner?.command ?? null },
  });
}

/**
 * Takes the lock file `path` (its directory must exist), waiting up to `waitMs` for a live
 * holder; throws LockedError when it is still held then. Release it with releaseLock.
 */
export async function acquireLockFile(path: string, opts: LockOptions = {}): Promise<HeldLock> {
  const waitMs = opts.waitMs ?? 0;
  const dir = dirname(path);
  const startTime = processStartTime(process.pid);
  if (startTime === null) throw new StateError('cannot read /proc/self/stat: gitroot needs /proc mounted');
  const owner: LockOwner = {
    pid: process.pid,
    startTime,
    bootId: currentBootId(),
    command: opts.command ?? 'gitroot',
    acquiredAt: new Date().toISOString(),
    token: randomBytes(12).toString('hex'),
  };
  const text = JSON.stringify(owner) + '\n';
  const deadline = Date.now() + waitMs;
  let pause = 10;
  for (;;) {
    const tmp = uniqueName(path, 'new');
    try {
      writeRecord(tmp, text);
      linkSync(tmp, path);
      unlinkQuiet(tmp);
      sweepTemps(path);
      return makeHeld(dir, path, owner, text);
    } catch (e) {
      unlinkQuiet(tmp);
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StateError(`cannot take the lock ${path}: ${(e as Error).message}; check that ${dir} is writable`, { cause: e });
      }
    }
    const seen = readLock(path);
    if (seen.kind === 'none') continue;
    if (seen.kind === 'garbage' || ownerGone(seen.owner) !== null) {
      breakStale(path, seen.text);
      continue;
    }
    if (Date.now() >= deadline) throw (opts.lockedError ?? lockedError)(path, seen.owner);
    if (opts.signal?.aborted) throw opts.signal.reason;
    await sleep(Math.min(pause, Math.max(1, deadline - Date.now())));
    pause = Math.min(pause * 2, 250);
  }
}

function makeHeld(dir: string, path: string, owner: LockOwner, text: string): HeldLock {
  return {
    dir,
    path,
    owner,
    assertHeld() {
      const seen = readLock(path);
      if (seen.kind !== 'owner' || seen.text !== text) {
        throw new LockedError(
          `the lock ${path} was removed or taken over while this process held it: ` + 'run the command again (and do not remove the lock of a running gitroot)',
          { data: { path, pid: seen.kind === 'owner' ? seen.owner.pid : null } },
        );
      }
    },
  };
}

/** Releases a lock taken with acquireLockFile (only if the file is still this holding). */
export function releaseLock(lock: HeldLock): void {
  const seen = readLock(lock.path);
  if (seen.kind === 'owner' && seen.owner.token === lock.owner.token) unlinkQuiet(lock.path);
}
