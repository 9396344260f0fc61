/**
 * Deployment state of a gitroot home `D`: the known-good revision, the revision staged to boot
 * next and its tries left, what the last boot booted, the revisions that failed, and the kernel
 * each staged revision boots with. It lives in `D/state.json`, is read with full validation
 * (a missing file is a fresh machine; anything unparseable is a StateError naming the file and
 * the fix) and is written only through writeState, which needs the home's lock and replaces the
 * file atomically. `D/last-fetch.json` records the last fetch attempt for `status`; it never
 * affects what boots. docs/deploy.md describes every field.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateError } from '../errors/errors.js';
import { writeJsonAtomic } from '../fsutil/atomic-write.js';
import type { HeldLock } from './lock.js';

/** Version of the state.json format this code reads and writes. */
export const STATE_VERSION = 1;
/** How many earlier known-good revisions `previousGood` keeps (newest first). */
export const PREVIOUS_GOOD_LIMIT = 10;
/** How many failed revisions `failed` keeps (newest first). */
export const FAILED_LIMIT = 32;
/** How many entries of `previousGood` keep their staged kernel (for a rollback without re-staging). */
export const KEEP_PREVIOUS_KERNELS = 1;
/** Name of the kernel file inside `D/boot/<sha>/`. */
export const KERNEL_FILE = 'vmlinuz';
/** Name of the initrd file inside `D/boot/<sha>/`. */
export const INITRD_FILE = 'initrd.img';

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

/** One fetch attempt, as `D/last-fetch.json` records it for `status`. */
export interface LastFetch {
  version: typeof STATE_VERSION;
  /** When the attempt ended (ISO 8601). */
  at: string;
  /** What came of it. */
  result: 'staged' | 'up-to-date' | 'disabled' | 'refused' | 'dry-run' | 'failed';
  /** The commit fetched (and staged), when known. */
  revision: string | null;
  /** Bytes downloaded, when known. */
  bytes: number | null;
  /** For `failed`: the error's code and one-line message. */
  error: { code: string; message: string } | null;
}

const SHA = /^[0-9a-f]{40}$/;
const FILE_NAME = /^[A-Za-z0-9._+-]+$/;
const FETCH_RESULTS = new Set(['staged', 'up-to-date', 'disabled', 'refused', 'dry-run', 'failed']);

/** True if `s` is a full commit id in the form state.json keeps (40 lowercase hex). */
export function isSha(s: unknown): s is string {
  return typeof s === 'string' && SHA.test(s);
}

/** Path of the state file of home `dir`. */
export function statePath(dir: string): string {
  return join(dir, 'state.json');
}

/** Path of the last-fetch record of home `dir`. */
export function lastFetchPath(dir: string): string {
  return join(dir, 'last-fetch.json');
}

/** The state of a fresh machine: nothing good, nothing pending, nothing booted. */
export function emptyState(): DeployState {
  return { version: STATE_VERSION, good: null, pending: null, booted: null, failed: [], previousGood: [], staged: {} };
}

/** Thrown inside validation; turned into a StateError naming the file. */
class Invalid extends Error {}

function fail(what: string): never {
  throw new Invalid(what);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function shaOrNull(v: unknown, key: string): string | null {
  if (v === null) return null;
  if (!isSha(v)) fail(`'${key}' is neither null nor a 40-hex commit id`);
  return v;
}

function isoTime(v: unknown, key: string): string {
  if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) fail(`'${key}' is not an ISO date`);
  return v;
}

function shaList(v: unknown, key: string, limit: number): string[] {
  if (!Array.isArray(v)) fail(`'${key}' is not a list`);
  const seen = new Set<string>();
  for (const [i, s] of v.entries()) {
    if (!isSha(s)) fail(`'${key}[${i}]' is not a 40-hex commit id`);
    if (seen.has(s)) fail(`'${key}' lists ${s} twice`);
    seen.add(s);
  }
  if (v.length > limit) fail(`'${key}' has ${v.length} entries, more than ${limit}`);
  return [...(v as string[])];
}

function fileNameOrNull(v: unknown, key: string): string | null {
  if (v === null) return null;
  if (typeof v !== 'string' || !FILE_NAME.test(v) || v === '.' || v === '..') fail(`'${key}' is not a plain file name`);
  return v;
}

function stringOrNull(v: unknown, key: string): string | null {
  if (v === null) return null;
  if (typeof v !== 'string') fail(`'${key}' is neither null nor a string`);
  return v;
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
      kernelDir, kernel, initrd,
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
    fail(typeof v.version === 'number' && v.version > STATE_VERSION
      ? `it has format version ${v.version}, written by a newer gitroot`
      : `'version' is not ${STATE_VERSION}`);
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
    throw new StateError(`cannot read ${file}: ${(e as Error).message}; check that the gitroot home is mounted and readable`,
      { data: { file }, cause: e });
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
      throw new StateError(`refusing to write an inconsistent ${file}: ${e.message}; this is a bug in gitroot, please report it`,
        { data: { file }, cause: e });
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
  const previousGood = [...(state.good === null ? [] : [state.good]), ...state.previousGood]
    .filter((s) => s !== sha)
    .slice(0, PREVIOUS_GOOD_LIMIT);
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

function validateLastFetch(v: unknown): LastFetch {
  if (!isObject(v)) fail('it is not a JSON object');
  if (v.version !== STATE_VERSION) fail(`'version' is not ${STATE_VERSION}`);
  if (typeof v.result !== 'string' || !FETCH_RESULTS.has(v.result)) fail("'result' is not a known fetch result");
  if (v.bytes !== null && !(Number.isInteger(v.bytes) && (v.bytes as number) >= 0)) fail("'bytes' is neither null nor a byte count");
  let error: LastFetch['error'] = null;
  if (v.error !== null) {
    if (!isObject(v.error) || typeof v.error.code !== 'string' || typeof v.error.message !== 'string') {
      fail("'error' is neither null nor { code, message }");
    }
    error = { code: v.error.code, message: v.error.message };
  }
  return {
    version: STATE_VERSION,
    at: isoTime(v.at, 'at'),
    result: v.result as LastFetch['result'],
    revision: shaOrNull(v.revision, 'revision'),
    bytes: v.bytes as number | null,
    error,
  };
}

/** Reads `D/last-fetch.json`: null when there is none; StateError when it is unreadable. */
export function readLastFetch(dir: string): LastFetch | null {
  const file = lastFetchPath(dir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateError(`cannot read ${file}: ${(e as Error).message}; check that the gitroot home is readable`, { cause: e });
  }
  try {
    return validateLastFetch(JSON.parse(text));
  } catch (e) {
    const detail = e instanceof Invalid ? e.message : `it is not JSON (${(e as Error).message})`;
    throw new StateError(`${file} is not a valid fetch record: ${detail}; remove it (the next fetch writes a new one)`,
      { data: { file, detail }, cause: e });
  }
}

/**
 * Records a fetch attempt in `D/last-fetch.json` (atomically). Takes no lock: the record is
 * informational and a concurrent writer only replaces it whole.
 */
export function writeLastFetch(dir: string, record: Omit<LastFetch, 'version'>): void {
  const value: LastFetch = { version: STATE_VERSION, ...record };
  try {
    validateLastFetch(JSON.parse(JSON.stringify(value)));
  } catch (e) {
    if (e instanceof Invalid) {
      throw new StateError(`refusing to write an invalid fetch record: ${e.message}; this is a bug in gitroot, please report it`,
        { cause: e });
    }
    throw e;
  }
  writeJsonAtomic(lastFetchPath(dir), value);
}
