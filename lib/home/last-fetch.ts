/**
 * `D/last-fetch.json`: what the last fetch attempt did, for `gitroot status`. It never affects
 * what boots, so it is written without the home's lock (a concurrent writer only replaces it
 * whole) and an unreadable one is reported, never repaired in place.
 */
import { readFileSync } from 'node:fs';
import { StateError } from '../errors/errors.js';
import { writeJsonAtomic } from '../fsutil/atomic-write.js';
import { lastFetchPath } from './home-layout.js';
import { STATE_VERSION } from './home-state.js';
import { Invalid, fail, isObject, isoTime, shaOrNull } from './state-fields.js';

/** One fetch attempt, as `D/last-fetch.json` records it for `status`. */
export interface LastFetch {
  version: typeof STATE_VERSION;
  /** When the attempt ended (ISO 8601). */
  at: string;
  /** What came of it. */
  result: 'staged' | 'up-to-date' | 'disabled' | 'refused' | 'dry-run' | 'failed' | 'waiting';
  /** The commit fetched (and staged), when known. */
  revision: string | null;
  /** Bytes downloaded, when known. */
  bytes: number | null;
  /** For `failed`: the error's code and one-line message. */
  error: { code: string; message: string } | null;
}

const FETCH_RESULTS = new Set(['staged', 'up-to-date', 'disabled', 'refused', 'dry-run', 'failed', 'waiting']);

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
    throw new StateError(`${file} is not a valid fetch record: ${detail}; remove it (the next fetch writes a new one)`, { data: { file, detail }, cause: e });
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
      throw new StateError(`refusing to write an invalid fetch record: ${e.message}; this is a bug in gitroot, please report it`, { cause: e });
    }
    throw e;
  }
  writeJsonAtomic(lastFetchPath(dir), value);
}
