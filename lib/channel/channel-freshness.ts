/**
 * Is a verified manifest fresh enough to act on? Pure, decided from what the machine has
 * seen before (D/channel.json) and its clock, which is trusted to go
 * forward only: the newest signed time the machine has seen is a floor under it, so a clock
 * reset to 1970 by a dead RTC battery cannot make an expired manifest look current.
 *
 *   1. channel  the manifest publishes the branch this machine follows (fetch-revision)
 *   2. rollback a lower version than the newest seen is a replay of an old manifest: refused
 *   3. same     the same version must be the same manifest (the same signed bytes)
 *   4. expiry   `expires` must be after max(local clock, floor): an expired manifest means
 *               the publisher stopped signing or someone replays the last one (freeze risk)
 */

/** What the machine remembers of a channel (the part freshness needs). */
export interface SeenChannel {
  /** The newest manifest version accepted. */
  version: number;
  /** SHA-256 of that manifest's signed payload. */
  payloadSha256: string;
  /** The newest signed `created` time seen (ms), the machine's clock floor. */
  floorMs: number;
}

export interface FreshnessInput {
  channel: string;
  version: number;
  payloadSha256: string;
  createdMs: number;
  expiresMs: number;
  /** The branch this machine follows (fetch-revision). */
  follows: string;
  seen: SeenChannel | null;
  /** The local clock (ms). */
  nowMs: number;
}

export type FreshnessVerdict =
  | { ok: true; newer: boolean; effectiveNowMs: number; floorMs: number }
  | { ok: false; why: 'wrong-channel' | 'rollback' | 'version-reused' | 'expired'; reason: string };

const iso = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');

/** Decides whether the manifest may be used (see the module comment). */
export function checkFreshness(i: FreshnessInput): FreshnessVerdict {
  if (i.channel !== i.follows) {
    return {
      ok: false,
      why: 'wrong-channel',
      reason: `it publishes branch '${i.channel}' and this machine follows '${i.follows}' (fetch-revision): point gitroot.remote at the '${i.follows}' channel or set fetch-revision=${i.channel}`,
    };
  }
  const seen = i.seen;
  if (seen !== null && i.version < seen.version) {
    return {
      ok: false,
      why: 'rollback',
      reason: `its version ${i.version} is older than version ${seen.version} this machine already accepted: a stale copy (a cache or mirror behind) or a replayed manifest (rollback attack); wait for the server to serve the current one`,
    };
  }
  if (seen !== null && i.version === seen.version && i.payloadSha256 !== seen.payloadSha256) {
    return {
      ok: false,
      why: 'version-reused',
      reason: `its version ${i.version} was accepted before with other content: the publisher signed two manifests with one version; publish a new one (gitroot publish)`,
    };
  }
  const floorMs = Math.max(seen?.floorMs ?? 0, i.createdMs);
  const effectiveNowMs = Math.max(i.nowMs, seen?.floorMs ?? 0);
  if (i.expiresMs <= effectiveNowMs) {
    return {
      ok: false,
      why: 'expired',
      reason: `it expired at ${iso(i.expiresMs)} (signed ${iso(i.createdMs)}, now ${iso(effectiveNowMs)}): the publisher has stopped re-signing it, or a server replays an old one to keep this machine on old code (freeze attack); check the publisher's 'gitroot publish' timer`,
    };
  }
  return { ok: true, newer: seen === null || i.version > seen.version, effectiveNowMs, floorMs };
}
