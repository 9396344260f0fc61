/**
 * Phased rollout, decided on the machine (Fedora CoreOS's model): the manifest carries a
 * ramp (start time, start percentage, duration); each machine has a bucket, a number in
 * [0, 100) from a hash of its stable id and the channel name, so the same machines go first
 * at every release of the channel; a machine takes the new tip once the ramp at the
 * manifest's signed time has passed its bucket. The signed time, not the local clock: a
 * machine cannot be talked into a release early by a wrong clock, and the ramp advances as
 * the publisher re-signs the manifest (its timer). Pure.
 */
import { createHash } from 'node:crypto';
import type { RolloutRamp } from './channel-manifest.js';
import { parseIsoTime } from './channel-time.js';

/** The machine's bucket in the channel: a percentage in [0, 100), stable across releases. */
export function rolloutBucket(fleetId: string, channel: string): number {
  const h = createHash('sha256').update(`gitroot-rollout\0${channel}\0${fleetId}`).digest();
  // 52 bits: exact in a double, uniform in [0, 1).
  const x = h.readUInt32BE(0) * 2 ** 20 + (h.readUInt32BE(4) >>> 12);
  return (x / 2 ** 52) * 100;
}

/** The share of machines (percent, 0..100) the ramp lets take the release at `nowMs`. */
export function rampPercent(ramp: RolloutRamp, nowMs: number): number {
  const start = parseIsoTime(ramp.start)!;
  if (nowMs < start) return 0;
  if (ramp.durationSeconds === 0) return 100;
  const f = Math.min(1, (nowMs - start) / (ramp.durationSeconds * 1000));
  return ramp.fromPercent + (100 - ramp.fromPercent) * f;
}

export type RolloutVerdict =
  | { take: true; machinePercent: number | null; rampPercent: number | null; reason: string }
  | { take: false; machinePercent: number; rampPercent: number; reason: string };

const pct = (x: number): string => `${Math.floor(x)}%`;

/**
 * Whether this machine takes `tip` now. No ramp, a pinned tip, or a tip the machine already
 * has: yes. Otherwise when its bucket is below the ramp's share at the signed time.
 */
export function decideRollout(i: {
  ramp: RolloutRamp | null;
  pin: boolean;
  tip: string;
  held: boolean;
  signedMs: number;
  fleetId: string;
  channel: string;
}): RolloutVerdict {
  if (i.ramp === null) return { take: true, machinePercent: null, rampPercent: null, reason: 'no rollout ramp' };
  const machinePercent = rolloutBucket(i.fleetId, i.channel);
  const ramp = rampPercent(i.ramp, i.signedMs);
  if (i.pin) return { take: true, machinePercent, rampPercent: ramp, reason: 'the tip is pinned (a halt applies to every machine at once)' };
  if (i.held) return { take: true, machinePercent, rampPercent: ramp, reason: 'this machine already has the tip' };
  if (machinePercent < ramp)
    return { take: true, machinePercent, rampPercent: ramp, reason: `this machine at ${pct(machinePercent)}, the ramp at ${pct(ramp)}` };
  return {
    take: false,
    machinePercent,
    rampPercent: ramp,
    reason: `release ${i.tip.slice(0, 12)} waits for the rollout: this machine at ${pct(machinePercent)}, the ramp at ${pct(ramp)}`,
  };
}
