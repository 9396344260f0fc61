/**
 * RUN/live.json: what runs live on this boot, written by `gitroot apply-live` (atomic) and
 * read by `gitroot status`, mark-good/mark-bad and the next apply-live. It lives under the run
 * directory (a tmpfs) on purpose: a live update lasts until the next boot, so its record must
 * too; what survives a reboot (the known-good revision, what boots next) is `D/state.json`'s,
 * changed by apply-live through the one crash-ordered state change (live-decision.ts
 * planLiveState). docs/live.md says which record answers which question.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateError } from '../errors/errors.js';
import { writeJsonAtomic } from '../fsutil/atomic-write.js';
import { BOOT_RECORD_FILE, LIVE_RECORD_FILE } from '../home/home-layout.js';
import type { PendingRevision } from '../home/home-state.js';
import { isSha } from '../store/object-id.js';

export const LIVE_RECORD_VERSION = 1;

/** One live update of this boot. */
export interface LiveRound {
  /** The revision it switched to, and from. */
  revision: string;
  from: string;
  /** ISO 8601, when it was applied. */
  at: string;
  mode: 'live' | 'soft-reboot';
  /** Its writable layer, relative to the run directory (`rw/live-1`), or null. */
  layer: string | null;
  /** Directories given fresh views (tree paths), for `live`. */
  points: string[];
  /** Where the new root was prepared, for `soft-reboot`. */
  nextRoot: string | null;
}

export interface LiveRecord {
  version: typeof LIVE_RECORD_VERSION;
  /** What the kernel booted (RUN/booted.json). */
  booted: string;
  /** What runs now (or is being switched to, while `state` is `switching`). */
  revision: string;
  /** `switching` while apply-live is between its state change and its record: the daemon may serve either. */
  state: 'switching' | 'live';
  /** ISO 8601: since when `revision` runs. */
  since: string;
  /** The pending entry of `revision` the update took over, if any (for the record). */
  withdrawnPending: PendingRevision | null;
  /** Every live update of this boot, oldest first. */
  rounds: LiveRound[];
}

/** Path of the live record in run directory `runDir`. */
export function liveRecordPath(runDir: string): string {
  return join(runDir, LIVE_RECORD_FILE);
}

/** Reads RUN/live.json: null when nothing ran live this boot; a damaged record is a StateError. */
export function readLiveRecord(runDir: string): LiveRecord | null {
  const file = liveRecordPath(runDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateError(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  let r: LiveRecord;
  try {
    r = JSON.parse(text) as LiveRecord;
  } catch (e) {
    throw new StateError(`${file} is not JSON: remove it only after checking what the root's mounts are (grep gitroot-live /proc/mounts)`, { cause: e });
  }
  if (
    r.version !== LIVE_RECORD_VERSION ||
    !isSha(r.booted) ||
    !isSha(r.revision) ||
    !Array.isArray(r.rounds) ||
    (r.state !== 'live' && r.state !== 'switching')
  ) {
    throw new StateError(`${file} is not a live record this gitroot reads (version ${String(r.version)})`);
  }
  return r;
}

/** Writes RUN/live.json atomically. */
export function writeLiveRecord(runDir: string, r: LiveRecord): void {
  writeJsonAtomic(liveRecordPath(runDir), r);
}

/** The revision RUN/booted.json says booted, or null. */
export function bootedRevision(runDir: string): string | null {
  try {
    const rev = (JSON.parse(readFileSync(join(runDir, BOOT_RECORD_FILE), 'utf8')) as { revision?: unknown }).revision;
    return isSha(rev) ? rev : null;
  } catch {
    return null;
  }
}

/**
 * The revision this system runs: the live record's when a live update finished, else what
 * booted (RUN/booted.json); null when gitroot did not boot it. A damaged live record counts
 * as none here (status and the transitions then judge the booted revision, and say so).
 */
export function runningRevision(runDir: string): string | null {
  let live: LiveRecord | null = null;
  try {
    live = readLiveRecord(runDir);
  } catch {
    live = null;
  }
  return live !== null && live.state === 'live' ? live.revision : bootedRevision(runDir);
}
