/**
 * The trust gates `gitroot fetch` runs between the fetch and the staging (lib/update/update-run.ts):
 *   1. signature  with gitroot.allowed-signers set, the fetched commit, or the annotated tag
 *                 it was fetched through, must be signed by a listed key (revision-trust.ts);
 *   2. downgrade  a fetch-revision tip must descend from the booted, good and pending
 *                 revisions (downgrade-check.ts).
 * Either refusal is a TrustError; the caller stages nothing. Reads only the local object
 * store and the allowed-signers file; writes nothing.
 */
import type { DeployState } from '../home/home-state.js';
import { ObjectStore } from '../store/object-store.js';
import type { AllowedSigners } from './allowed-signers.js';
import { type DowngradeVerdict, checkDowngrade, heldRevisions } from './downgrade-check.js';
import { type TrustReport, requireTrustedRevision } from './revision-trust.js';

export interface TrustGateInput {
  /** The bare repository holding the fetched objects. */
  repo: string;
  /** The fetched commit. */
  commit: string;
  /** The annotated tag the commit was fetched through (fetch-revision named a tag, or update-revision a tag's id), or null. */
  tag?: string | null;
  /** Branch tip (fetch-revision) or explicit pin (update-revision). */
  target: 'branch' | 'pin';
  /** The parsed gitroot.allowed-signers (loadTrustSettings), or null (no signature required). */
  signers: AllowedSigners | null;
  /** gitroot.allow-downgrade. */
  allowDowngrade: boolean;
  /** The deployment state (booted, good, pending). */
  state: Pick<DeployState, 'booted' | 'good' | 'pending'>;
}

/** What the gates checked (for `gitroot fetch --json` and the benchmark). */
export interface TrustGateResult {
  /** Null when gitroot.allowed-signers is not set. */
  signature: TrustReport | null;
  downgrade: DowngradeVerdict;
  /** Time the signature gate took (opening the store, reading the commit, verifying), wall clock. */
  verifyMs: number;
  /** The same in CPU time of this process (user + system): what it costs on an idle machine. */
  verifyCpuMs: number;
  /** Time spent on the downgrade walk. */
  downgradeMs: number;
  warnings: string[];
}

/** Runs both gates; TrustError (or ConfigError for a bad allowed-signers file) when one refuses. */
export function runTrustGates(input: TrustGateInput): TrustGateResult {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const store = ObjectStore.open(input.repo);
  try {
    let signature: TrustReport | null = null;
    if (input.signers !== null) signature = requireTrustedRevision(store, input.signers, input.commit, input.tag ?? null);
    const c1 = process.cpuUsage(c0);
    const t1 = performance.now();
    const downgrade = checkDowngrade(store, {
      tip: input.commit,
      target: input.target,
      held: heldRevisions(input.state),
      allowDowngrade: input.allowDowngrade,
    });
    const t2 = performance.now();
    const warnings = downgrade.why === 'allowed-downgrade' ? [`downgrade allowed: ${downgrade.reason}`] : [];
    return { signature, downgrade, verifyMs: t1 - t0, verifyCpuMs: (c1.user + c1.system) / 1000, downgradeMs: t2 - t1, warnings };
  } finally {
    store.close();
  }
}
