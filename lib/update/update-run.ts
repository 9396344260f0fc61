/**
 * `gitroot fetch` as a sequence of named steps: settings -> plan -> fetch -> stage ->
 * record. Each step's errors say which step failed. Whatever happens, the outcome of the
 * attempt is written to D/last-fetch.json (for `status`), which boot decisions never read;
 * state.json, D/boot and the boot entries change only through stageRevision, atomically.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readCmdline } from '../params/cmdline-file.js';
import { loadSettings } from '../params/settings-load.js';
import { fetchCommit, type FetchProgress } from '../fetch/repo-fetch.js';
import { stageRevision, planStage, type StageResult } from '../deploy/deploy-stage.js';
import { readState } from '../home/home-state.js';
import { writeLastFetch, type LastFetch } from '../home/last-fetch.js';
import { ObjectStore } from '../store/object-store.js';
import { diffCommits, type TreeDiff } from '../diff/tree-diff.js';
import { GitrootError, UsageError } from '../errors/errors.js';
import { planUpdate, type UpdatePlan } from './update-plan.js';
import { ensureSpaceForFetch } from '../prune/prune-auto.js';
import { loadTrustSettings } from '../trust/revision-trust.js';
import { runTrustGates, type TrustGateResult } from '../trust/trust-gate.js';
import { repoPath } from '../home/home-layout.js';

export interface UpdateOptions {
  /** The gitroot home D (created if missing). */
  dir: string;
  cmdlineFile?: string;
  configPath?: string;
  dryRun?: boolean;
  onProgress?: (p: FetchProgress) => void;
  /** How long to wait for another gitroot process's lock (ms). */
  lockWaitMs?: number;
}

export interface UpdateResult {
  action: 'disabled' | 'up-to-date' | 'staged' | 'withdrawn' | 'refused' | 'dry-run';
  /** The revision fetched (and staged), when there was one. */
  revision: string | null;
  reason: string;
  plan: UpdatePlan;
  fetch: { bytes: number; objects: number; upToDate: boolean; durationMs: number; protocol: number; tag: string | null } | null;
  /** Dry run: what staging would do, and what changes against the booted (or good) revision when known. */
  wouldStage?: string;
  diff?: TreeDiff['summary'] & { from: string; to: string };
  kernel?: StageResult['kernel'];
  reboot: 'requested' | 'not-requested';
  warnings: string[];
  /** What the trust gates checked (signature, downgrade); absent when they did not run. */
  trust?: TrustGateResult;
}

/** The command that reboots after staging when `gitroot.reboot-after-update` is set. */
export function rebootCommand(): string[] {
  const custom = process.env.GITROOT_REBOOT_COMMAND;
  return custom ? ['sh', '-c', custom] : ['systemctl', 'reboot'];
}

function lastFetch(dir: string, result: LastFetch['result'], revision: string | null, bytes: number | null, error: GitrootError | null): void {
  try {
    writeLastFetch(dir, {
      at: new Date().toISOString(),
      result,
      revision,
      bytes,
      error: error ? { code: error.code, message: error.message } : null,
    });
  } catch {
    /* the record is informational; never let it hide the real outcome */
  }
}

/** The running kernel's command line (or the --cmdline file), or undefined if unreadable. */
function currentCmdline(file?: string): string | undefined {
  try {
    return readCmdline(file).trim();
  } catch {
    return undefined;
  }
}

/** Runs one update attempt. Throws typed errors; records the outcome either way. */
export async function runUpdate(opts: UpdateOptions): Promise<UpdateResult> {
  const dir = opts.dir;
  mkdirSync(dir, { recursive: true });
  let bytes: number | null = null;
  let revision: string | null = null;
  try {
    const loaded = await loadSettings({ dir, cmdlineFile: opts.cmdlineFile, configPath: opts.configPath });
    const s = loaded.settings;
    const warnings = [...loaded.warnings];
    const plan = planUpdate(s);
    const base = { plan, warnings, reboot: 'not-requested' as const };
    if (plan.action === 'disabled') {
      lastFetch(dir, 'disabled', null, null, null);
      return { ...base, action: 'disabled', revision: null, reason: plan.reason, fetch: null };
    }
    if (plan.action === 'no-remote') throw new UsageError(plan.reason);
    // Trust settings (lib/trust): gpg-keyring refused, allowed-signers parsed, before any network.
    const signers = loadTrustSettings(s);

    const repo = repoPath(dir);
    // Free space (docs/prune.md): refuse before downloading anything; prune first when allowed.
    if (!opts.dryRun) {
      warnings.push(...(await ensureSpaceForFetch({
        dir, minFreeMiB: s['gitroot.min-free'], autoPrune: s['gitroot.auto-prune'], keep: s['gitroot.keep'],
        bootloader: s['gitroot.bootloader'], bootDir: s['gitroot.boot'], waitMs: opts.lockWaitMs,
      })).warnings);
    }
    const fetched = await fetchCommit({
      gitdir: repo,
      remote: plan.remote,
      ...(plan.target.kind === 'branch' ? { branch: plan.target.branch } : { sha: plan.target.sha }),
      timeoutMs: s['gitroot.timeout'] * 1000,
      retries: s['gitroot.retries'],
      lockWaitMs: opts.lockWaitMs,
      onProgress: opts.onProgress,
      dryRun: opts.dryRun,
    });
    bytes = fetched.bytes;
    revision = fetched.commit;
    const fetch = {
      bytes: fetched.bytes, objects: fetched.objects, upToDate: fetched.upToDate, durationMs: fetched.durationMs, protocol: fetched.protocol,
      tag: fetched.tag,
    };

    // Trust gates (lib/trust/trust-gate.ts): signature, then downgrade. A refusal throws
    // TrustError before anything is staged. A dry run keeps no objects: checked only when present.
    let trust: TrustGateResult | undefined;
    if (!opts.dryRun || fetched.upToDate) {
      trust = runTrustGates({
        repo, commit: fetched.commit, tag: fetched.tag, target: plan.target.kind === 'sha' ? 'pin' : 'branch',
        signers, allowDowngrade: s['gitroot.allow-downgrade'], state: readState(dir),
      });
      warnings.push(...trust.warnings);
    } else {
      warnings.push('dry run: the signature and downgrade checks run when the revision is fetched for real');
    }

    if (opts.dryRun) {
      const state = readState(dir);
      const decision = planStage(state, fetched.commit, plan.force);
      const result: UpdateResult = { ...base, action: 'dry-run', revision, reason: `${plan.reason}: ${decision.reason}`, fetch, wouldStage: decision.action, trust };
      // Files changed, when both revisions are in the repo (a dry run keeps nothing it downloads).
      const from = state.pending?.revision ?? state.booted ?? state.good;
      if (from && from !== fetched.commit) {
        const store = ObjectStore.open(repo);
        try {
          if (store.has(from) && store.has(fetched.commit)) {
            result.diff = { from, to: fetched.commit, ...diffCommits(store, from, fetched.commit).summary };
          }
        } finally {
          store.close();
        }
      }
      lastFetch(dir, 'dry-run', revision, bytes, null);
      return result;
    }

    const staged = await stageRevision({
      dir,
      sha: fetched.commit,
      // New entries keep this boot's options (console=, gitroot.medium=, ...); the
      // per-boot keys (git-revision=, update-revision=, noupgrade) are dropped by the planner.
      kernelCmdline: currentCmdline(opts.cmdlineFile),
      bootloader: s['gitroot.bootloader'],
      bootDir: s['gitroot.boot'],
      tries: s['gitroot.tries'],
      force: plan.force,
      waitMs: opts.lockWaitMs,
      command: 'gitroot fetch',
    });
    warnings.push(...staged.warnings);
    const action = staged.action === 'stage' ? 'staged' : staged.action === 'clear-pending' ? 'withdrawn' : staged.action;
    lastFetch(dir, action === 'staged' || action === 'withdrawn' ? 'staged' : action, revision, bytes, null);
    let reboot: UpdateResult['reboot'] = 'not-requested';
    if (action === 'staged' && s['gitroot.reboot-after-update']) {
      const [cmd, ...args] = rebootCommand();
      await promisify(execFile)(cmd, args);
      reboot = 'requested';
    }
    return { ...base, action, revision, reason: staged.reason, fetch, kernel: staged.kernel, reboot, trust };
  } catch (e) {
    if (e instanceof GitrootError) lastFetch(dir, e.code === 'ETRUST' ? 'refused' : 'failed', revision, bytes, e);
    throw e;
  }
}
