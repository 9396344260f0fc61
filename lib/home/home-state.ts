/**
 * Deployment state of a gitroot home `D`: the known-good revision, the revision staged to boot
 * next and its tries left, what the last boot booted, the revisions that failed, and the kernel
 * each staged revision boots with. It lives in `D/state.json`, is read with full validation
 * (a missing file is a fresh machine; anything unparseable is a StateError naming the file and
 * the fix) and is written only through writeState, which needs the home's lock and replaces the
 * file atomically. `D/last-fetch.json` records the last fetch attempt for `status`; it never
 * affects what boots (last-fetch.ts). docs/deploy.md describes every field.
 */
import { readFileSync } from 'node:fs';
import { StateError } from '../errors/errors.js';
import { writeJsonAtomic } from '../fsutil/atomic-write.js';
import type { HeldLock } from './home-lock.js';
import { isSha } from '../store/object-id.js';
import { statePath } from './home-layout.js';
import { Invalid, fail, fileNameOrNull, isObject, isoTime, shaList, shaOrNull, stringOrNull } from './state-fields.js';

/** Version of the state.json format this code reads and writes. */
export const STATE_VERSION = 1;
/** How many earlier known-good revisions `previousGood` keeps (newest first). */
export const PREVIOUS_GOOD_LIMIT = 10;
/** How many failed revisions `failed` keeps (newest first). */
export const FAILED_LIMIT = 32;
/** How many entries of `previousGood` keep their staged kernel (for a rollback without re-staging). */
export const KEEP_PREVIOUS_KERNELS = 1;

/** The revision staged to boot next. */
export interface PendingRevision {
  /** Commit id (40 lowercase hex). */
  revision: string;
  /** Boots left before it counts as failed (0 = used up, waiting for the decision). */
  triesLeft: number;
  /** Tries it was staged with (`gitroot.tries`). */
  tries: number;
  /** When it was staged (ISO 8601). */
  stagedAt: string;
}

/**
 * What a staged revision boots with. Its kernel and initrd are `D/boot/<kernelDir>/<kernel>`
 * and `D/boot/<kernelDir>/<initrd>`; `kernelDir` is the revision itself when its tree carries a
 * kernel, or the revision whose kernel it keeps when its tree has none.
 */
export interface StagedRevision {
  /** Commit id whose `D/boot/<id>/` holds the files; null when no kernel is known at all. */
  kernelDir: string | null;
  /** File name of the kernel in that directory (KERNEL_FILE), or null. */
  kernel: string | null;
  /** File name of the initrd in that directory (INITRD_FILE), or null. */
  initrd: string | null;
  /** Kernel version from the file name in the tree (`6.1.0-10-amd64`), when known. */
  kernelVersion: string | null;
  /** Path of the kernel in the tree of `kernelDir` (`boot/vmlinuz-6.1.0-10-amd64`), when known. */
  kernelSource: string | null;
  /** Base kernel command line its boot entries carry (`git-revision=<sha>` is added to it). */
  options: string;
  /** When it was staged (ISO 8601). */
  stagedAt: string;
}

/** The whole of `D/state.json`. */
export interface DeployState {
  version: typeof STATE_VERSION;
  /** The known-good revision (marked good after a complete boot), or null. */
  good: string | null;
  /** The revision to boot next, or null. */
  pending: PendingRevision | null;
  /** The revision the last boot recorded it booted, or null. */
  booted: string | null;
  /** Revisions that used up their tries or were marked bad, newest first, at most FAILED_LIMIT. */
  failed: string[];
  /** Earlier known-good revisions, newest first, never containing `good`, at most PREVIOUS_GOOD_LIMIT. */
  previousGood: string[];
  /** Kernel and options of every revision that is staged, keyed by commit id. */
  staged: Record<string, StagedRevision>;
}

/** The state of a fresh machine: nothing good, nothing pending, nothing booted. */
export function emptyState(): DeployState {
  return { version: STATE_VERSION, good: null, pending: null, booted: null, failed: [], previousGood: [], staged: {} };
}

function validatePending(v: unknown): PendingRevision | null {
  if (v === null) return null;
  if (!isObject(v)) fail("'pending' is neither null nor an object");
  const revision = shaOrNull(v.revision, 'pending.revision');
  if (revision === null) fail("'pending.revision' is missing");
  const tries = v.tries;
  if (!Number.isInteger(tries) || (tries as number) < 1) fail("'pending.tries' is not a whole number >= 1");
  const left = v.triesLeft;
  if (!Number.isInteger(left) || (left as number) < 0 || (left as number) > (tries as number)) {
    fail("'pending.triesLeft' is not a whole number between 0 and 'pending.tries'");
  }
  return { revision, triesLeft: left as number, tries: tries as number, stagedAt: isoTime(v.stagedAt, 'pending.stagedAt') };
}

function validateStaged(v: unknown): Record<string, StagedRevision> {
  if (!isObject(v)) fail("'staged' is not an object");
  const out: Record<string, StagedRevision> = {};
  for (const [sha, e] of Object.entries(v)) {
    const key = `staged.${sha}`;
    if (!isSha(sha)) fail(`'staged' has a key '${sha}' that is not a 40-hex commit id`);
    if (!isObject(e)) fail(`'${key}' is not an object`);
    const kernelDir = shaOrNull(e.kernelDir, `${key}.kernelDir`);
    const kernel = fileNameOrNull(e.kernel, `${key}.kernel`);
    const initrd = fileNameOrNull(e.initrd, `${key}.initrd`);
    if (kernelDir === null && (kernel !== null || initrd !== null)) fail(`'${key}' names kernel files but no kernelDir`);
    if (kernelDir !== null && kernel === null) fail(`'${key}' has a kernelDir but no kernel`);
    if (typeof e.options !== 'string' || /[\n\r]/.test(e.options)) fail(`'${key}.options' is not a one-line string`);
    out[sha] = {
      kernelDir,
      kernel,
      initrd,
      kernelVersion: stringOrNull(e.kernelVersion, `${key}.kernelVersion`),
      kernelSource: stringOrNull(e.kernelSource, `${key}.kernelSource`),
      options: e.options,
      stagedAt: isoTime(e.stagedAt, `${key}.stagedAt`),
    };
  }
  return out;
}

/** Validates parsed JSON as a DeployState; throws Invalid with what is wrong. */
function validateState(v: unknown): DeployState {
  if (!isObject(v)) fail('it is not a JSON object');
  if (v.version !== STATE_VERSION) {
    fail(
      typeof v.version === 'number' && v.version > STATE_VERSION
        ? `it has format version ${v.version}, written by a newer gitroot`
        : `'version' is not ${STATE_VERSION}`,
    );
  }
  const state: DeployState = {
    version: STATE_VERSION,
    good: shaOrNull(v.good, 'good'),
    pending: validatePending(v.pending),
    booted: shaOrNull(v.booted, 'booted'),
    failed: shaList(v.failed, 'failed', FAILED_LIMIT),
    previousGood: shaList(v.previousGood, 'previousGood', PREVIOUS_GOOD_LIMIT),
    staged: validateStaged(v.staged),
  };
  if (state.good !== null && state.previousGood.includes(state.good)) fail("'previousGood' contains 'good'");
  return state;
}

/** Parses the text of a state file; throws StateError naming `file` and the fix. */
export function parseState(text: string, file: string): DeployState {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw corruptState(file, `it is not JSON (${(e as Error).message})`, e);
  }
  try {
    return validateState(json);
  } catch (e) {
    if (e instanceof Invalid) throw corruptState(file, e.message, e);
    throw e;
  }
}

function corruptState(file: string, detail: string, cause: unknown): StateError {
  return new StateError(
    `${file} is not valid gitroot state: ${detail}; repair it, or move it away to start as a fresh machine ` +
      '(nothing good, nothing pending) and stage a revision again',
    { data: { file, detail }, cause },
  );
}

/** Reads `D/state.json`; a missing file is a fresh machine (emptyState). Needs no lock: writes are atomic. */
export function readState(dir: string): DeployState {
  const file = statePath(dir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw new StateError(`cannot read ${file}: ${(e as Error).message}; check that the gitroot home is mounted and readable`, { data: { file }, cause: e });
  }
  return parseState(text, file);
}

/**
 * Replaces `D/state.json` with `state` (temp file, fsync, rename, fsync dir). Needs the home's
 * lock, checked to still be ours just before the write; the state is validated first, so an
 * inconsistent state is never written.
 */
export function writeState(lock: HeldLock, state: DeployState): void {
  const file = statePath(lock.dir);
  try {
    validateState(JSON.parse(JSON.stringify(state)));
  } catch (e) {
    if (e instanceof Invalid) {
      throw new StateError(`refusing to write an inconsistent ${file}: ${e.message}; this is a bug in gitroot, please report it`, { data: { file }, cause: e });
    }
    throw e;
  }
  lock.assertHeld();
  writeJsonAtomic(file, state);
}

/**
 * Pure: `state` with `sha` as the known-good revision; the old good one moves to the front of
 * `previousGood` (bounded), `sha` leaves `failed`, and a pending entry for `sha` is done.
 */
export function withGood(state: DeployState, sha: string): DeployState {
  if (state.good === sha) {
    return state.pending?.revision === sha ? { ...state, pending: null } : state;
  }
  const previousGood = [...(state.good === null ? [] : [state.good]), ...state.previousGood].filter((s) => s !== sha).slice(0, PREVIOUS_GOOD_LIMIT);
  return {
    ...state,
    good: sha,
    previousGood,
    failed: state.failed.filter((s) => s !== sha),
    pending: state.pending?.revision === sha ? null : state.pending,
  };
}

/** Pure: `state` with `sha` recorded as failed (newest first, bounded); a pending entry for it is dropped. */
export function withFailed(state: DeployState, sha: string): DeployState {
  return {
    ...state,
    failed: [sha, ...state.failed.filter((s) => s !== sha)].slice(0, FAILED_LIMIT),
    pending: state.pending?.revision === sha ? null : state.pending,
  };
}

/**
 * Pure: which revisions keep their `staged` record and which `D/boot/<id>/` directories are
 * still needed: those of the pending, good and booted revisions and of the newest
 * KEEP_PREVIOUS_KERNELS earlier good ones.
 */
export function planRetention(state: DeployState): { revisions: Set<string>; kernelDirs: Set<string> } {
  const revisions = new Set<string>();
  for (const s of [state.pending?.revision ?? null, state.good, state.booted, ...state.previousGood.slice(0, KEEP_PREVIOUS_KERNELS)]) {
    if (s !== null && state.staged[s] !== undefined) revisions.add(s);
  }
  const kernelDirs = new Set<string>();
  for (const s of revisions) {
    const dir = state.staged[s].kernelDir;
    if (dir !== null) kernelDirs.add(dir);
  }
  return { revisions, kernelDirs };
}

/** Pure: `state` without the `staged` records planRetention does not keep. */
export function withPrunedStaged(state: DeployState): DeployState {
  const { revisions } = planRetention(state);
  const staged: Record<string, StagedRevision> = {};
  for (const s of Object.keys(state.staged).sort()) if (revisions.has(s)) staged[s] = state.staged[s];
  return { ...state, staged };
}
