/**
 * `D/channel.json`: what a machine remembers of the channels it fetched from, per channel
 * name (the branch published): the newest manifest version accepted and its signed bytes'
 * SHA-256 (a replayed older one is refused), the newest signed time seen (the clock floor),
 * the last manifest itself with its URL and ETag (a 304 reuses it), and the last rollout
 * decision (for `gitroot status`). Written atomically (temp file, fsync, rename) under the
 * home's lock; a damaged file is a StateError naming it, never a silent reset (that would
 * reopen the door to a rollback).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateError } from '../errors/errors.js';
import { writeJsonAtomic } from '../fsutil/atomic-write.js';
import type { HeldLock } from '../fsutil/process-lock.js';

/** The file, inside the home. */
export const CHANNEL_STATE_FILE = 'channel.json';
/** Partial and finished bundle downloads, inside the home. */
export const CHANNEL_DOWNLOADS_DIR = 'channel-downloads';
const FORMAT = 'gitroot-channel-state 1';

/** What a machine keeps of one channel. */
export interface ChannelRecord {
  /** The URL the manifest came from last (an https:// remote, or a file:// directory). */
  url: string;
  version: number;
  payloadSha256: string;
  /** The newest signed time seen, ISO 8601: the clock floor. */
  floor: string;
  /** ETag of the manifest at `url`, for If-None-Match. */
  etag: string | null;
  /** The manifest (signed text) accepted last. */
  manifest: string;
  checkedAt: string;
  /** The last rollout decision: waiting for the ramp, or taken. */
  rollout: { tip: string; take: boolean; machinePercent: number | null; rampPercent: number | null; reason: string } | null;
}

export interface ChannelState {
  format: typeof FORMAT;
  channels: Record<string, ChannelRecord>;
}

/** Path of the channel state in home `dir`. */
export function channelStatePath(dir: string): string {
  return join(dir, CHANNEL_STATE_FILE);
}

/** Path of the download directory in home `dir`. */
export function channelDownloadsDir(dir: string): string {
  return join(dir, CHANNEL_DOWNLOADS_DIR);
}

/** Reads D/channel.json: an empty state when there is none; StateError when it is damaged. */
export function readChannelState(dir: string): ChannelState {
  const file = channelStatePath(dir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { format: FORMAT, channels: {} };
    throw new StateError(`cannot read ${file}: ${(e as Error).message}; check that the gitroot home is readable`, { cause: e });
  }
  const bad = (why: string) =>
    new StateError(
      `${file} is damaged (${why}): restore it, or remove it to forget the channel (which also forgets the newest version seen, so a replayed older manifest would be accepted once)`,
      { data: { file } },
    );
  let v: ChannelState;
  try {
    v = JSON.parse(text) as ChannelState;
  } catch (e) {
    throw bad(`not JSON: ${(e as Error).message}`);
  }
  if (v.format !== FORMAT || typeof v.channels !== 'object' || v.channels === null) throw bad('not a channel state of this gitroot');
  for (const [name, r] of Object.entries(v.channels)) {
    if (
      !Number.isSafeInteger(r.version) ||
      typeof r.payloadSha256 !== 'string' ||
      typeof r.floor !== 'string' ||
      Number.isNaN(Date.parse(r.floor)) ||
      typeof r.manifest !== 'string' ||
      typeof r.url !== 'string'
    )
      throw bad(`channel '${name}' is incomplete`);
  }
  return v;
}

/** Replaces D/channel.json (the caller holds the home's lock). */
export function writeChannelState(lock: HeldLock, dir: string, state: ChannelState): void {
  lock.assertHeld();
  writeJsonAtomic(channelStatePath(dir), state);
}

/**
 * What `gitroot status` says of the channel the machine follows: the manifest accepted last
 * (version, signed, expiry, pin) and the rollout decision, one line each.
 */
export function channelStatusLines(state: ChannelState, follows: string, nowMs: number): { key: string; value: string }[] {
  const r = state.channels[follows];
  if (r === undefined) return [];
  let m: { version?: number; created?: string; expires?: string; tip?: string; pin?: boolean } = {};
  try {
    m = JSON.parse(r.manifest.slice(0, r.manifest.lastIndexOf('-----BEGIN SSH SIGNATURE-----'))) as typeof m;
  } catch {
    /* shown without the details */
  }
  const expired = m.expires !== undefined && Date.parse(m.expires) <= Math.max(nowMs, Date.parse(r.floor));
  const lines = [
    {
      key: 'channel',
      value: `${follows} version ${r.version} from ${r.url}, signed ${m.created ?? '?'}, ${expired ? 'EXPIRED' : 'expires'} ${m.expires ?? '?'}${m.pin ? ', pinned' : ''}`,
    },
    { key: 'channel tip', value: m.tip ?? '?' },
  ];
  if (expired)
    lines.push({
      key: 'warning',
      value: 'the channel manifest has expired: the publisher stopped re-signing it, or a server replays it (freeze risk); check the publisher',
    });
  if (r.rollout !== null && !r.rollout.take) lines.push({ key: 'rollout', value: r.rollout.reason });
  return lines;
}
