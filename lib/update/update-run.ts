/**
 * `gitroot fetch` as a sequence of named steps: settings -> plan -> fetch -> stage ->
 * record. Each step's errors say which step failed. Whatever happens, the outcome of the
 * attempt is written to D/last-fetch.json (for `status`), which boot decisions never read;
 * state.json, D/boot and the boot entries change only through stageRevision, atomically.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { readCmdline } from '../params/cmdline-file.js';
import { loadSettings } from '../params/settings-load.js';
import type { Settings } from '../params/settings-schema.js';
import { type FetchCommitResult, fetchCommit, type FetchProgress } from '../fetch/repo-fetch.js';
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
import { heldRevisions } from '../trust/downgrade-check.js';
import type { DeliveryIdentity } from '../http/delivery-identity.js';
import type { ChannelFetchResult } from '../fetch/channel-fetch.js';
import { fetchIfChannel, machineDelivery } from './update-channel.js';

export interface UpdateOptions {
  /** The gitroot home D (created if missing). */
  dir: string;
  cmdlineFile?: string;
  configPath?: string;
  dryRun?: boolean;
  onProgress?: (p: FetchProgress) => void;
  /** How long to wait for another gitroot process's lock (ms). */
  lockWaitMs?: number;
  /**
   * `gitroot fetch --from DIR`: take the update from a published channel directory (a USB
   * stick) instead of gitroot.remote, with the same checks; the fleet config is not downloaded.
   */
  from?: string;
}

export interface UpdateResult {
  action: 'disabled' | 'up-to-date' | 'staged' | 'withdrawn' | 'refused' | 'dry-run' | 'waiting';
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
  /** How the update came: a git smart-HTTP remote or a channel of static files (docs/channel.md). */
  transport?: 'smart-http' | 'channel';
  /** A channel's manifest, rollout decision and downloads. */
  channel?: Omit<ChannelFetchResult, 'commit' | 'bytes' | 'objects' | 'durationMs' | 'ref'>;
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

/** What an attempt knows so far, for the record written when it fails. */
interface Attempt {
  bytes: number | null;
  revision: string | null;
}

/** An update attempt past planning: its inputs, settings and plan, and the result's common part (whose warnings grow). */
interface UpdateContext {
  opts: UpdateOptions;
  dir: string;
  repo: string;
  s: Settings;
  plan: Extract<UpdatePlan, { action: 'fetch' }>;
  base: { plan: UpdatePlan; warnings: string[]; reboot: 'not-requested' };
  /** The machine's identity for update servers (TLS, headers). */
  delivery?: DeliveryIdentity;
  /** The revision comes with update-revision semantics (a pinned channel manifest). */
  pinned?: boolean;
}

/** Free space (docs/prune.md): refuse before downloading anything; prune first when allowed. */
async function makeRoom(ctx: UpdateContext): Promise<void> {
  const { dir, s, opts } = ctx;
  ctx.base.warnings.push(
    ...(
      await ensureSpaceForFetch({
        dir,
        minFreeMiB: s['gitroot.min-free'],
        autoPrune: s['gitroot.auto-prune'],
        keep: s['gitroot.keep'],
        bootloader: s['gitroot.bootloader'],
        bootDir: s['gitroot.boot'],
        waitMs: opts.lockWaitMs,
      })
    ).warnings,
  );
}

/** Fetches the planned revision into D/repo.git (a dry run keeps nothing it downloads). */
function fetchPlanned(ctx: UpdateContext): Promise<FetchCommitResult> {
  const { plan, s, opts } = ctx;
  return fetchCommit({
    gitdir: ctx.repo,
    remote: plan.remote,
    ...(plan.target.kind === 'branch' ? { branch: plan.target.branch } : { sha: plan.target.sha }),
    timeoutMs: s['gitroot.timeout'] * 1000,
    retries: s['gitroot.retries'],
    lockWaitMs: opts.lockWaitMs,
    onProgress: opts.onProgress,
    mode: opts.dryRun ? 'dry-run' : 'update',
    headers: ctx.delivery?.headers,
    tls: ctx.delivery?.tls,
  });
}

/**
 * Trust gates (lib/trust/trust-gate.ts): signature, then downgrade. A refusal throws
 * TrustError before anything is staged. A dry run keeps no objects: checked only when present.
 */
function checkTrust(ctx: UpdateContext, signers: ReturnType<typeof loadTrustSettings>, fetched: FetchCommitResult): TrustGateResult | undefined {
  const warnings = ctx.base.warnings;
  if (ctx.opts.dryRun && !fetched.upToDate) {
    warnings.push('dry run: the signature and downgrade checks run when the revision is fetched for real');
    return undefined;
  }
  const trust = runTrustGates({
    repo: ctx.repo,
    commit: fetched.commit,
    tag: fetched.tag,
    target: ctx.plan.target.kind === 'sha' || ctx.pinned ? 'pin' : 'branch',
    signers,
    allowDowngrade: ctx.s['gitroot.allow-downgrade'],
    state: readState(ctx.dir),
  });
  warnings.push(...trust.warnings);
  return trust;
}

/** A dry run's answer: what staging would do and, when both revisions are in the repository, what changes. */
function dryRunResult(ctx: UpdateContext, fetched: FetchCommitResult, fetch: UpdateResult['fetch'], trust: TrustGateResult | undefined): UpdateResult {
  const state = readState(ctx.dir);
  const decision = planStage(state, fetched.commit, ctx.plan.force);
  const result: UpdateResult = {
    ...ctx.base,
    action: 'dry-run',
    revision: fetched.commit,
    reason: `${ctx.plan.reason}: ${decision.reason}`,
    fetch,
    wouldStage: decision.action,
    trust,
  };
  // Files changed, when both revisions are in the repo (a dry run keeps nothing it downloads).
  const from = state.pending?.revision ?? state.booted ?? state.good;
  if (from && from !== fetched.commit) {
    const store = ObjectStore.open(ctx.repo);
    try {
      if (store.has(from) && store.has(fetched.commit)) {
        result.diff = { from, to: fetched.commit, ...diffCommits(store, from, fetched.commit).summary };
      }
    } finally {
      store.close();
    }
  }
  lastFetch(ctx.dir, 'dry-run', fetched.commit, fetched.bytes, null);
  return result;
}

/** Stages the fetched revision (atomically, through stageRevision), records the attempt, and reboots when asked to. */
async function stageFetched(
  ctx: UpdateContext,
  fetched: FetchCommitResult,
  fetch: UpdateResult['fetch'],
  trust: TrustGateResult | undefined,
): Promise<UpdateResult> {
  const { dir, s, opts } = ctx;
  const staged = await stageRevision({
    dir,
    sha: fetched.commit,
    // New entries keep this boot's options (console=, gitroot.medium=, ...); the
    // per-boot keys (git-revision=, update-revision=, noupgrade) are dropped by the planner.
    kernelCmdline: currentCmdline(opts.cmdlineFile),
    bootloader: s['gitroot.bootloader'],
    bootDir: s['gitroot.boot'],
    tries: s['gitroot.tries'],
    force: ctx.plan.force || ctx.pinned === true,
    waitMs: opts.lockWaitMs,
    command: 'gitroot fetch',
  });
  ctx.base.warnings.push(...staged.warnings);
  const action = staged.action === 'stage' ? 'staged' : staged.action === 'clear-pending' ? 'withdrawn' : staged.action;
  lastFetch(dir, action === 'staged' || action === 'withdrawn' ? 'staged' : action, fetched.commit, fetched.bytes, null);
  let reboot: UpdateResult['reboot'] = 'not-requested';
  if (action === 'staged' && s['gitroot.reboot-after-update']) {
    const [cmd, ...args] = rebootCommand();
    await promisify(execFile)(cmd, args);
    reboot = 'requested';
  }
  return { ...ctx.base, action, revision: fetched.commit, reason: staged.reason, fetch, kernel: staged.kernel, reboot, trust };
}

/** The steps of one attempt: settings, plan, trust settings, space, fetch, trust gates, then stage (or the dry run's answer). */
async function attemptUpdate(opts: UpdateOptions, attempt: Attempt): Promise<UpdateResult> {
  const dir = opts.dir;
  // --from promises no network: the fleet config comes from its cache.
  const loaded = await loadSettings({ dir, cmdlineFile: opts.cmdlineFile, configPath: opts.configPath, offline: opts.from !== undefined });
  const s = loaded.settings;
  const plan = planUpdate(opts.from === undefined ? s : { ...s, 'gitroot.remote': pathToFileURL(path.resolve(opts.from)).href });
  const base = { plan, warnings: [...loaded.warnings], reboot: 'not-requested' as const };
  if (plan.action === 'disabled') {
    lastFetch(dir, 'disabled', null, null, null);
    return { ...base, action: 'disabled', revision: null, reason: plan.reason, fetch: null };
  }
  if (plan.action === 'no-remote') throw new UsageError(plan.reason);
  // Trust settings (lib/trust): gpg-keyring refused, allowed-signers parsed, before any network.
  const signers = loadTrustSettings(s);
  const ctx: UpdateContext = { opts, dir, repo: repoPath(dir), s, plan, base };

  if (!opts.dryRun) await makeRoom(ctx);
  const state = readState(dir);
  ctx.delivery = machineDelivery(dir, s, state);
  const channel = await fetchIfChannel({
    dir,
    gitdir: ctx.repo,
    remote: plan.remote,
    offline: opts.from !== undefined,
    s,
    signers,
    identity: ctx.delivery,
    held: heldRevisions(state).map((h) => h.sha),
    pinSha: plan.target.kind === 'sha' ? plan.target.sha : null,
    dryRun: opts.dryRun === true,
    lockWaitMs: opts.lockWaitMs,
    onProgress: opts.onProgress,
  });
  if (channel !== null) return channelOutcome(ctx, signers, channel, attempt);
  const fetched = await fetchPlanned(ctx);
  attempt.bytes = fetched.bytes;
  attempt.revision = fetched.commit;
  const fetch = {
    bytes: fetched.bytes,
    objects: fetched.objects,
    upToDate: fetched.upToDate,
    durationMs: fetched.durationMs,
    protocol: fetched.protocol,
    tag: fetched.tag,
  };
  const trust = checkTrust(ctx, signers, fetched);
  return opts.dryRun ? dryRunResult(ctx, fetched, fetch, trust) : stageFetched(ctx, fetched, fetch, trust);
}

/** After a channel fetch: waiting for the rollout, or the same trust gates and staging as a git fetch. */
function channelOutcome(
  ctx: UpdateContext,
  signers: ReturnType<typeof loadTrustSettings>,
  ch: ChannelFetchResult,
  attempt: Attempt,
): Promise<UpdateResult> | UpdateResult {
  const { commit: _c, bytes: _b, objects: _o, durationMs: _d, ref: _r, ...channel } = ch;
  ctx.pinned = ch.pin;
  attempt.revision = ch.commit;
  attempt.bytes = ch.bytes;
  const fetch = {
    bytes: ctx.opts.dryRun ? ch.download.bytes : ch.bytes,
    objects: ch.objects,
    upToDate: ch.outcome === 'up-to-date',
    durationMs: ch.durationMs,
    protocol: 0,
    tag: null,
  };
  const extra = { transport: 'channel' as const, channel };
  if (ch.outcome === 'waiting') {
    lastFetch(ctx.dir, 'waiting', ch.commit, ch.bytes, null);
    return { ...ctx.base, action: 'waiting', revision: ch.commit, reason: ch.rollout.reason, fetch, ...extra };
  }
  const fetched: FetchCommitResult = {
    commit: ch.commit,
    tag: null,
    upToDate: ch.outcome === 'up-to-date',
    bytes: fetch.bytes,
    objects: ch.objects,
    durationMs: ch.durationMs,
    ref: ch.ref,
    protocol: 0,
  };
  const trust = checkTrust(ctx, signers, fetched);
  if (ctx.opts.dryRun) return { ...dryRunResult(ctx, fetched, fetch, trust), ...extra };
  return stageFetched(ctx, fetched, fetch, trust).then((r) => ({ ...r, ...extra }));
}

/** Runs one update attempt. Throws typed errors; records the outcome either way. */
export async function runUpdate(opts: UpdateOptions): Promise<UpdateResult> {
  mkdirSync(opts.dir, { recursive: true });
  const attempt: Attempt = { bytes: null, revision: null };
  try {
    return await attemptUpdate(opts, attempt);
  } catch (e) {
    if (e instanceof GitrootError) lastFetch(opts.dir, e.code === 'ETRUST' ? 'refused' : 'failed', attempt.revision, attempt.bytes, e);
    throw e;
  }
}
