/**
 * `D/fsck.json`: the last full fsck's verdict on each revision the home keeps, which the boot
 * decision reads (boot-assess.ts openHealthProbe) so that a revision fsck found broken is
 * passed over like an unreadable one. The verdict is keyed by the repository's pack set (the
 * names of its .idx files): any fetch, repair or repack changes the set and so retires the
 * verdict, and a repaired revision is never kept out by a stale one. Small on purpose: the
 * boot path loads this module, not the walk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { writeJsonAtomic } from '../fsutil/atomic-write.js';
import type { HeldLock } from '../deploy/lock.js';

/** Version of the fsck.json format. */
export const FSCK_VERDICT_VERSION = 1;
/** Name of the verdict file in the home. */
export const FSCK_VERDICT_FILE = 'fsck.json';

/** What fsck found for one revision. */
export type FsckRevisionStatus = 'ok' | 'broken' | 'missing';

export interface FsckVerdict {
  version: typeof FSCK_VERDICT_VERSION;
  /** When the fsck ran (ISO 8601). */
  checkedAt: string;
  /** packSetKey of the repository when it ran: the verdict holds only while it is unchanged. */
  packSet: string;
  /** True when nothing at all was found. */
  clean: boolean;
  /** Every revision checked. */
  revisions: Record<string, FsckRevisionStatus>;
}

/** Path of the verdict of home `dir`. */
export function verdictPath(dir: string): string {
  return path.join(dir, FSCK_VERDICT_FILE);
}

/** SHA-1 over the sorted names of the .idx files in `gitdir/objects/pack` (hex). */
export function packSetKey(gitdir: string): string {
  let names: string[] = [];
  try {
    names = fs.readdirSync(path.join(gitdir, 'objects', 'pack')).filter((n) => n.endsWith('.idx')).sort();
  } catch { /* no packs */ }
  return createHash('sha1').update(names.join('\n')).digest('hex');
}

/** The verdict of home `dir`, or null when there is none or it cannot be read (then nothing is assumed). */
export function readVerdict(dir: string): FsckVerdict | null {
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(verdictPath(dir), 'utf8'));
  } catch {
    return null;
  }
  const o = v as Partial<FsckVerdict>;
  if (o === null || typeof o !== 'object' || o.version !== FSCK_VERDICT_VERSION || typeof o.packSet !== 'string'
    || typeof o.revisions !== 'object' || o.revisions === null) return null;
  return o as FsckVerdict;
}

/**
 * Pure: what the verdict says about `sha` now. `damaged` when the verdict still holds (its
 * pack set is `currentPackSet`) and names `sha` broken or missing; null otherwise (no verdict,
 * a stale one, or a revision it did not check or found fine).
 */
export function verdictHealth(verdict: FsckVerdict | null, currentPackSet: string, sha: string): 'damaged' | null {
  if (verdict === null || verdict.packSet !== currentPackSet) return null;
  const s = verdict.revisions[sha];
  return s === 'broken' || s === 'missing' ? 'damaged' : null;
}

/** Writes the verdict atomically; needs the home's lock. */
export function writeVerdict(lock: HeldLock, verdict: FsckVerdict): void {
  lock.assertHeld();
  writeJsonAtomic(verdictPath(lock.dir), verdict);
}
