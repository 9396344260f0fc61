/**
 * The decision `gitroot boot` (and `gitroot select`, without persisting) makes: the rules of
 * boot-select.ts over `D/state.json`, `git-revision=` on the command line and the health of
 * each revision in the repository. With `persist`, the decided state (a try used, a failed
 * revision recorded, `booted`) is written under the home's lock before anything is mounted,
 * so a boot that dies later still used its try. The boot writes only state.json: the boot
 * entries are the next fetch's or transition's to change.
 */
import { step } from '../fsutil/named-step.js';
import { withLock } from '../home/home-lock.js';
import { type DeployState, readState, writeState } from '../home/home-state.js';
import type { AllowedSigners } from '../trust/allowed-signers.js';
import { type RevisionHealth, type Selection, cmdlineRevision, selectRevision } from './boot-select.js';
import { openHealthProbe } from './revision-health.js';
import { sameState } from '../deploy/state-change.js';

/** What decideBoot returns: the selection, what it was made from, and whether the state was written. */
export interface BootDecision extends Selection {
  /** `git-revision=` from the command line, or null. */
  cmdlineRevision: string | null;
  /** Health of every revision looked at. */
  health: Record<string, RevisionHealth>;
  /** True when `D/state.json` was written (persist was set and the state changed). */
  written: boolean;
}

export interface DecideBootOptions {
  /** The gitroot home. */
  dir: string;
  /** Kernel command line text (the content of /proc/cmdline). */
  cmdline: string;
  /** Write the decided state (under the lock) before returning: what `gitroot boot` needs. Default false. */
  persist?: boolean;
  /** How long to wait for the lock (default 10 s). */
  waitMs?: number;
  /** The initramfs's allowed-signers (lib/trust): unsigned or badly signed revisions are `untrusted`. */
  signers?: AllowedSigners | null;
}

/**
 * Decides the revision to boot from `D/state.json`, the command line and the repository;
 * with `persist`, writes the decided state (a try used, a failed revision recorded, `booted`)
 * under the lock before returning, so a power cut while the revision boots still counts.
 * A `none` decision is returned, not thrown: the caller says so and stops.
 */
export async function decideBoot(opts: DecideBootOptions): Promise<BootDecision> {
  const asked = cmdlineRevision(opts.cmdline);
  const decide = (state: DeployState): BootDecision => {
    const probe = openHealthProbe(opts.dir, opts.signers ?? null);
    try {
      const sel = selectRevision({ state, cmdlineRevision: asked, health: probe.health });
      // Why each untrusted revision was passed over, for the boot log.
      const notes = [...sel.notes, ...Object.entries(probe.distrust).map(([sha, why]) => `revision ${sha} is untrusted: ${why}`)];
      return { ...sel, notes, cmdlineRevision: asked, health: { ...probe.checked }, written: false };
    } finally {
      probe.close();
    }
  };
  if (!opts.persist) return decide(step('read state', () => readState(opts.dir)));
  return withLock(opts.dir, { waitMs: opts.waitMs ?? 10_000, command: 'gitroot boot' }, (lock) => {
    const before = step('read state', () => readState(opts.dir));
    const d = decide(before);
    if (sameState(d.state, before)) return d;
    step('write state', () => writeState(lock, d.state));
    return { ...d, written: true };
  });
}
