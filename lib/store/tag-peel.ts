/**
 * Tag peeling, the one rule for every place that follows annotated tags to a commit (revision
 * syntax in refs.ts, the fetcher's check of what it was sent, the boot's trust check, fsck's
 * walk): a commit ends the chain, a tag goes on to the object it names, anything else is not
 * a revision, and at most MAX_TAG_DEPTH tags are followed. The rule is one step function over
 * an object reader; peelTag drives it with a synchronous reader (the store), peelTagAsync with
 * an asynchronous one (git in the fetcher's quarantine). Failures are returned, not thrown:
 * each caller phrases them for its own context (a damaged server, a bad revision, a verdict).
 */
import { parseTag } from './git-objects.js';

/** Most tags peeled in a row from a named tag to its commit, everywhere; git itself has no limit. */
export const MAX_TAG_DEPTH = 8;

/** An object as peeling reads it: its type and, for a tag, its body. */
export interface PeelObject {
  readonly type: string;
  readonly data: Buffer;
}

/** Reads one object for a peel; null when it is absent (a reader may also throw its own errors). */
export type PeelReader = (oid: string) => PeelObject | null;
/** The asynchronous form of {@link PeelReader}. */
export type AsyncPeelReader = (oid: string) => Promise<PeelObject | null>;

/** A chain that reached a commit: `tag` is the starting id when it was a tag, else null. */
export interface Peeled {
  ok: true;
  commit: string;
  tag: string | null;
}

/**
 * A chain that did not reach a commit, at object `at`: `missing` (absent), `not-a-commit` (a
 * tree or blob; `type` says which), `malformed` (a tag that does not parse; `cause`), or
 * `too-deep` (`at` is the tag past MAX_TAG_DEPTH).
 */
export type PeelFailure =
  | { ok: false; problem: 'missing'; at: string }
  | { ok: false; problem: 'not-a-commit'; at: string; type: string }
  | { ok: false; problem: 'malformed'; at: string; cause: Error }
  | { ok: false; problem: 'too-deep'; at: string };

/** The outcome of peeling one id. */
export type PeelOutcome = Peeled | PeelFailure;

/**
 * One step of the rule: `obj` is what the reader gave for `at`, the object reached after
 * `depth` tags from `start`. Returns the outcome, or the id to read next.
 */
export function peelStep(start: string, at: string, obj: PeelObject | null, depth: number): PeelOutcome | string {
  if (obj === null) return { ok: false, problem: 'missing', at };
  if (obj.type === 'commit') return { ok: true, commit: at, tag: at === start ? null : start };
  if (obj.type !== 'tag') return { ok: false, problem: 'not-a-commit', at, type: obj.type };
  if (depth >= MAX_TAG_DEPTH) return { ok: false, problem: 'too-deep', at };
  try {
    return parseTag(obj.data).object;
  } catch (e) {
    return { ok: false, problem: 'malformed', at, cause: e as Error };
  }
}

/** Peels `oid` (a commit, or an annotated tag of one through at most MAX_TAG_DEPTH tags) with `read`. */
export function peelTag(oid: string, read: PeelReader): PeelOutcome {
  for (let at = oid, depth = 0; ; depth++) {
    const step = peelStep(oid, at, read(at), depth);
    if (typeof step !== 'string') return step;
    at = step;
  }
}

/** {@link peelTag} with an asynchronous reader. */
export async function peelTagAsync(oid: string, read: AsyncPeelReader): Promise<PeelOutcome> {
  for (let at = oid, depth = 0; ; depth++) {
    const step = peelStep(oid, at, await read(at), depth);
    if (typeof step !== 'string') return step;
    at = step;
  }
}
