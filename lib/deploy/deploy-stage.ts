/**
 * Staging a revision to boot next. planStage decides (pure) whether there is anything to do;
 * stageRevision does it under the home's lock in named steps ordered so that a power cut at
 * any instant leaves a bootable configuration:
 *   1. kernel and initrd into `D/boot/<sha>/` (a new directory, published by rename);
 *   2. the state change with `pending` = sha (state-change.ts: entries of both states, then
 *      `D/state.json`, then the new state's entries only, then unused kernel directories).
 * Until the state is written it still describes the old configuration, whose entries and
 * files all still exist.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ObjectCorruptError, UsageError } from '../errors/errors.js';
import { ObjectStore } from '../store/object-store.js';
import { isSha } from '../store/object-id.js';
import { DEFAULT_BOOT_OPTIONS, type BootPlan, baseOptions } from '../bootloader/boot-plan.js';
import type { Bootloader, BootloaderName } from '../bootloader/bootloader.js';
import { createBootloader } from '../bootloader/create-bootloader.js';
import { step, stepAsync } from '../fsutil/named-step.js';
import { bootFilesDir, repoPath } from '../home/home-layout.js';
import { withLock } from '../home/home-lock.js';
import { type DeployState, type StagedRevision, planRetention, readState, withPrunedStaged } from '../home/home-state.js';
import { commitTree, selectKernel, stageKernel, storeTreeSource } from './stage-kernel.js';
import { applyStateChange } from './state-change.js';

/** What planStage decided. */
export type StageDecision =
  | { action: 'stage'; reason: string; replaces: string | null }
  | { action: 'up-to-date'; reason: string }
  | { action: 'clear-pending'; reason: string; replaces: string }
  | { action: 'refused'; reason: string };

/**
 * Decides what staging `sha` means for `state` (pure):
 * - already pending: nothing to do (its tries are not reset);
 * - the good revision: nothing to do, or, when another revision is pending, cancel that one
 *   (the fleet went back to the good revision);
 * - the booted revision with nothing pending: nothing to do;
 * - listed in `failed`: refused unless `force` (update-revision named it);
 * - otherwise: stage it (replacing any pending revision).
 */
export function planStage(state: DeployState, sha: string, force = false): StageDecision {
  const pending = state.pending?.revision ?? null;
  if (pending === sha) return { action: 'up-to-date', reason: `${sha} is already staged (${state.pending?.triesLeft} tries left)` };
  if (state.good === sha) {
    return pending === null
      ? { action: 'up-to-date', reason: `${sha} is the known-good revision` }
      : { action: 'clear-pending', reason: `${sha} is the known-good revision: the pending ${pending} is withdrawn`, replaces: pending };
  }
  if (state.booted === sha && pending === null) return { action: 'up-to-date', reason: `${sha} is the booted revision` };
  if (state.failed.includes(sha) && !force) {
    return { action: 'refused', reason: `${sha} failed to boot before: stage it again only by naming it with update-revision=${sha}` };
  }
  return {
    action: 'stage',
    reason: pending === null ? `${sha} staged` : `${sha} staged, replacing ${pending}`,
    replaces: pending,
  };
}

/**
 * Revisions whose kernel a revision without one keeps, in order of preference: the booted one
 * (the kernel running now), the good one, the pending one (pure).
 */
export function kernelDonors(state: DeployState): StagedRevision[] {
  const out: StagedRevision[] = [];
  for (const rev of [state.booted, state.good, state.pending?.revision ?? null]) {
    const s = rev === null ? undefined : state.staged[rev];
    if (s !== undefined && s.kernelDir !== null && !out.includes(s)) out.push(s);
  }
  return out;
}

/** Base options a revision staged without any inherits: those of the booted, good or pending revision (pure). */
export function inheritedOptions(state: DeployState): string {
  for (const rev of [state.booted, state.good, state.pending?.revision ?? null]) {
    const s = rev === null ? undefined : state.staged[rev];
    if (s !== undefined) return s.options;
  }
  return DEFAULT_BOOT_OPTIONS;
}

/** Pure: the state after staging `sha` with `staged` and `tries` (failed entry cleared, old records pruned). */
export function planStagedState(state: DeployState, sha: string, staged: StagedRevision, tries: number, now: Date): DeployState {
  return withPrunedStaged({
    ...state,
    pending: { revision: sha, triesLeft: tries, tries, stagedAt: now.toISOString() },
    failed: state.failed.filter((s) => s !== sha),
    staged: { ...state.staged, [sha]: staged },
  });
}

export interface StageRevisionOptions {
  /** The gitroot home `D`. */
  dir: string;
  /** The commit to stage (40 hex). */
  sha: string;
  /** A backend, or its name (then `bootDir` is `$BOOT`). */
  bootloader: Bootloader | BootloaderName;
  /** `$BOOT` (`gitroot.boot`), when `bootloader` is a name. */
  bootDir?: string;
  /** Boots the revision gets (`gitroot.tries`). */
  tries: number;
  /** Base kernel command line for its entries; default: that of the booted or good revision, else DEFAULT_BOOT_OPTIONS. */
  kernelCmdline?: string;
  /** Stage it even if it is listed as failed (update-revision named it). */
  force?: boolean;
  /** The bare repository (default `D/repo.git`). */
  repo?: string;
  /** How long to wait for the home's lock (default 0). */
  waitMs?: number;
  /** What to record as the lock holder (default `gitroot stage`). */
  command?: string;
  /** Refuse a kernel without an initrd (default true: gitroot boots through its initramfs). */
  requireInitrd?: boolean;
  /** Clock, for tests. */
  now?: Date;
}

/** What stageRevision did. */
export interface StageResult {
  action: StageDecision['action'];
  revision: string;
  /** One line for people. */
  reason: string;
  /** The kernel the revision boots with, when it was staged. */
  kernel: { kernelDir: string | null; source: string | null; version: string | null; kept: boolean } | null;
  /** The state now in `D/state.json`. */
  state: DeployState;
  /** The boot entries written, when any were. */
  plan: BootPlan | null;
  warnings: string[];
}

function kernelFilesExist(dir: string, s: StagedRevision): boolean {
  if (s.kernelDir === null || s.kernel === null) return false;
  const base = join(bootFilesDir(dir), s.kernelDir);
  return existsSync(join(base, s.kernel)) && (s.initrd === null || existsSync(join(base, s.initrd)));
}

/**
 * Stages revision `sha` to boot next (see the module comment for the order of steps). When
 * planStage says `up-to-date` or `refused`, the state is not touched, and the boot entries and
 * `D/boot` are only brought back in line with it if an interrupted staging left extra ones.
 * Errors name their step; on any error `D/state.json` is unchanged.
 */
export async function stageRevision(opts: StageRevisionOptions): Promise<StageResult> {
  const { dir, sha } = opts;
  if (!isSha(sha)) throw new UsageError(`'${sha}' is not a full commit id: give all 40 hex digits (lowercase)`);
  if (!Number.isInteger(opts.tries) || opts.tries < 1 || opts.tries > 100) {
    throw new UsageError(`gitroot.tries must be a whole number from 1 to 100, not ${opts.tries}`);
  }
  const bootloader = typeof opts.bootloader === 'string' ? createBootloader(opts.bootloader, { homeDir: dir, bootDir: opts.bootDir }) : opts.bootloader;
  const repo = opts.repo ?? repoPath(dir);
  const now = opts.now ?? new Date();

  return withLock(dir, { waitMs: opts.waitMs ?? 0, command: opts.command ?? 'gitroot stage' }, async (lock) => {
    const state = step('read state', () => readState(dir));
    const decision = planStage(state, sha, opts.force === true);
    const warnings: string[] = [];
    if (decision.action === 'up-to-date' || decision.action === 'refused') {
      // Nothing to stage; the entries and D/boot are only brought back in line with the state.
      const r = applyStateChange({ dir, lock, bootloader, before: state, next: state });
      return { action: decision.action, revision: sha, reason: decision.reason, kernel: null, state, plan: r.plan, warnings: r.warnings };
    }

    if (decision.action === 'clear-pending') {
      const next = withPrunedStaged({ ...state, pending: null });
      const r = applyStateChange({ dir, lock, bootloader, before: state, next });
      return { action: decision.action, revision: sha, reason: decision.reason, kernel: null, state: next, plan: r.plan, warnings: r.warnings };
    }

    const store = step('open repository', () => ObjectStore.open(repo));
    let staged: StagedRevision;
    let kept: boolean;
    let created: string | null = null;
    try {
      const selection = step('find kernel', () => selectKernel(storeTreeSource(store), commitTree(store, sha, repo)));
      warnings.push(...selection.warnings);
      const options = baseOptions(opts.kernelCmdline ?? inheritedOptions(state));
      const stagedAt = now.toISOString();
      if (selection.kernel !== null) {
        const kernel = selection.kernel;
        if (selection.initrd === null && opts.requireInitrd !== false) {
          throw new ObjectCorruptError(
            `find kernel: revision ${sha} has ${kernel.path} but no initrd ` +
              `(initrd.img${kernel.version === null ? '' : `-${kernel.version}`} in boot/): gitroot boots through its initramfs; ` +
              'commit the initrd with the kernel',
            { data: { step: 'find kernel', path: kernel.path } },
          );
        }
        const files = await stepAsync('stage kernel', () => stageKernel({ dir, sha, store, selection: { ...selection, kernel } }));
        if (!files.reused && planRetention(state).kernelDirs.has(sha) === false) created = sha;
        staged = {
          kernelDir: files.kernelDir,
          kernel: files.kernel,
          initrd: files.initrd,
          kernelVersion: files.kernelVersion,
          kernelSource: files.kernelSource,
          options,
          stagedAt,
        };
        kept = false;
      } else {
        const donor = kernelDonors(state).find((s) => kernelFilesExist(dir, s));
        if (donor === undefined && bootloader.name !== 'none') {
          throw new ConfigError(
            `find kernel: revision ${sha} has no kernel (boot/vmlinuz-<version>) and no kernel was staged ` +
              `before, but gitroot.bootloader=${bootloader.name} needs one: commit a kernel and initrd in boot/, ` +
              'or set gitroot.bootloader=none',
            { data: { step: 'find kernel' } },
          );
        }
        staged = {
          kernelDir: donor?.kernelDir ?? null,
          kernel: donor?.kernel ?? null,
          initrd: donor?.initrd ?? null,
          kernelVersion: donor?.kernelVersion ?? null,
          kernelSource: donor?.kernelSource ?? null,
          options,
          stagedAt,
        };
        kept = true;
        warnings.push(
          donor === undefined
            ? `revision ${sha} has no kernel: the boot loader's current kernel stays`
            : `revision ${sha} has no kernel: it keeps kernel ${donor.kernelVersion ?? donor.kernelSource ?? ''} of ${donor.kernelDir}`,
        );
      }
    } finally {
      store.close();
    }

    const next = planStagedState(state, sha, staged, opts.tries, now);
    const r = applyStateChange({ dir, lock, bootloader, before: state, next, created });
    return {
      action: 'stage',
      revision: sha,
      reason: decision.reason,
      kernel: { kernelDir: staged.kernelDir, source: staged.kernelSource, version: staged.kernelVersion, kept },
      state: next,
      plan: r.plan,
      warnings: [...warnings, ...r.warnings],
    };
  });
}
