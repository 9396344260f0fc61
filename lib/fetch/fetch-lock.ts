/**
 * The fetch lock: one fetch into a repository at a time, across processes. The lock is a
 * file created with O_EXCL (`<repo>/gitroot-fetch.lock`) holding the owner's pid and the
 * process start time from /proc (so a reused pid is not mistaken for the owner). A lock
 * whose owner is dead (kill -9, power cut) is stale and is broken by the next fetch.
 *
 * Breaking is itself serialized by a second O_EXCL file (`.break`): the breaker re-reads the
 * lock while holding it and unlinks it only if it still names the same dead owner, so two
 * waiters can never both remove a lock and then both believe they hold a new one. A `.break`
 * file older than BREAK_STALE_MS is left from a crash inside that few-millisecond window.
 */
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { LockedError } from '../errors/errors.js';

export const FETCH_LOCK_NAME = 'gitroot-fetch.lock';
const POLL_MS = 100;
const BREAK_STALE_MS = 30_000;
/** A lock file still empty this long after creation is from a crash between create and write. */
const EMPTY_STALE_MS = 10_000;

export interface FetchLock {
  readonly path: string;
  /** Removes the lock (only if it is still ours). */
  release(): void;
}

interface Owner {
  pid: number;
  start: string;
  since: string;
}

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or '' if unknown. */
export function processStartTime(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: fields restart after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? '';
  } catch {
    return '';
  }
}

function isAlive(owner: Owner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const now = processStartTime(owner.pid);
  return owner.start === '' || now === '' || now === owner.start;
}

function readOwner(file: string): { owner: Owner | null; raw: string; mtimeMs: number } | null {
  try {
    const raw = readFileSync(file, 'utf8');
    const mtimeMs = statSync(file).mtimeMs;
    try {
      const o = JSON.parse(raw) as Owner;
      return { owner: typeof o.pid === 'number' ? o : null, raw, mtimeMs };
    } catch {
      return { owner: null, raw, mtimeMs };
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function tryCreate(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}

function unlinkQuiet(file: string): void {
  try {
    unlinkSync(file);
  } catch { /* already gone */ }
}

/** If the lock at `file` is stale, removes it (serialized by the .break file). */
function breakIfStale(file: string): void {
  const seen = readOwner(file);
  if (seen === null) return;
  const stale = seen.owner === null ? Date.now() - seen.mtimeMs > EMPTY_STALE_MS : !isAlive(seen.owner);
  if (!stale) return;
  const breaker = `${file}.break`;
  if (!tryCreate(breaker, String(process.pid))) {
    try {
      if (Date.now() - statSync(breaker).mtimeMs > BREAK_STALE_MS) unlinkQuiet(breaker);
    } catch { /* gone */ }
    return;
  }
  try {
    const again = readOwner(file);
    if (again !== null && again.raw === seen.raw && again.mtimeMs === seen.mtimeMs) unlinkQuiet(file);
  } finally {
    unlinkQuiet(breaker);
  }
}

/**
 * Takes the fetch lock of `gitdir`, waiting up to `waitMs` for another fetch to finish.
 * Throws LockedError naming the holder when the wait runs out.
 */
export async function acquireFetchLock(gitdir: string, opts: { waitMs?: number; signal?: AbortSignal } = {}): Promise<FetchLock> {
  const file = path.join(gitdir, FETCH_LOCK_NAME);
  const me: Owner = { pid: process.pid, start: processStartTime(process.pid), since: new Date().toISOString() };
  const content = JSON.stringify(me) + '\n';
  const deadline = Date.now() + Math.max(0, opts.waitMs ?? 0);
  for (;;) {
    if (tryCreate(file, content)) {
      return {
        path: file,
        release() {
          const cur = readOwner(file);
          if (cur !== null && cur.raw === content) unlinkQuiet(file);
        },
      };
    }
    breakIfStale(file);
    if (Date.now() >= deadline) {
      const holder = readOwner(file)?.owner;
      if (holder === undefined) continue; // it went away just now: try again
      const who = holder === null ? 'another process' : `process ${holder.pid} (since ${holder.since})`;
      throw new LockedError(
        `another fetch into ${gitdir} is running: ${who} holds ${file}; wait for it to finish or retry later`,
        { data: { lock: file, holder } },
      );
    }
    if (opts.signal?.aborted) throw opts.signal.reason;
    await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(1, deadline - Date.now()))));
  }
}
