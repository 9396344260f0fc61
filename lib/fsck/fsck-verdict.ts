/**
 * `D/fsck.json`: the last full fsck's verdict on each revision the home keeps, which the boot
 * decision reads (revision-health.ts openHealthProbe) so that a revision fsck found broken is
 * passed over like an unreadable one. While the repository's pack set (the names of its .idx
 * files) is the one fsck saw, the verdict holds as it is. Once it changed (a fetch, a repair,
 * a repack), a revision stays damaged only if one of the broken objects the verdict lists for
 * it still fails to read: a repaired revision is never kept out by a stale verdict, and an
 * unrelated fetch does not make fsck's findings forgotten. Small on purpose: the boot path
 * loads this module, not the walk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fsckVerdictPath } from '../home/home-layout.js';
import { writeJsonAtomic } from '../fsutil/atomic-write.js';
import type { HeldLock } from '../home/home-lock.js';

/** Version of the fsck.json format. */
export const FSCK_VERDICT_VERSION = 1;
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
  /** For each broken revision, the ids of (at most VERDICT_MAX_OBJECTS of) its broken objects. */
  brokenObjects?: Record<string, string[]>;
}

/** Broken objects listed per revision: a boot re-reads at most these when the packs changed. */
export const VERDICT_MAX_OBJECTS = 32;

/** SHA-1 over the sorted names of the .idx files in `gitdir/objects/pack` (hex). */
export function packSetKey(gitdir: string): string {
  let names: string[] = [];
  try {
    names = fs
      .readdirSync(path.join(gitdir, 'objects', 'pack'))
      .filter((n) => n.endsWith('.idx'))
      .sort();
  } catch {
    /* no packs */
  }
  return createHash('sha1').update(names.join('\n')).digest('hex');
}

/** The verdict of home `dir`, or null when there is none or it cannot be read (then nothing is assumed). */
export function readVerdict(dir: string): FsckVerdict | null {
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(fsckVerdictPath(dir), 'utf8'));
  } catch {
    return null;
  }
  const o = v as Partial<FsckVerdict>;
  if (
    o === null ||
    typeof o !== 'object' ||
    o.version !== FSCK_VERDICT_VERSION ||
    typeof o.packSet !== 'string' ||
    typeof o.revisions !== 'object' ||
    o.revisions === null
  )
    return null;
  return o as FsckVerdict;
}

/**
 * What the verdict says about `sha` now: null when there is no verdict or it did not find
 * `sha` broken; `damaged` when it did and the pack set is still `currentPackSet`; after the
 * pack set changed, `damaged` only while one of the broken objects it lists for `sha` still
 * fails `stillBroken` (which reads the object; the rest is pure), else null.
 */
export function verdictHealth(
  verdict: FsckVerdict | null,
  currentPackSet: string,
  sha: string,
  stillBroken: (oid: string) => boolean = () => false,
): 'damaged' | null {
  if (verdict === null) return null;
  const s = verdict.revisions[sha];
  if (s !== 'broken' && s !== 'missing') return null;
  if (verdict.packSet === currentPackSet) return 'damaged';
  const listed = verdict.brokenObjects?.[sha] ?? [];
  return listed.some((oid) => stillBroken(oid)) ? 'damaged' : null;
}

/** Writes the verdict atomically; needs the home's lock. */
export function writeVerdict(lock: HeldLock, verdict: FsckVerdict): void {
  lock.assertHeld();
  writeJsonAtomic(fsckVerdictPath(lock.dir), verdict);
}
