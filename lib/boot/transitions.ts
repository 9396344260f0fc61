/**
 * The transitions `gitroot mark-good`, `mark-bad` and `rollback`: the pure plans of
 * boot-select.ts, refused in one line when they would make an unreadable revision the known
 * good one, name a revision this boot does not run, or leave the next boot without an entry;
 * otherwise applied under the home's lock as one state change (deploy/state-change.ts: the
 * entries of both states, then `D/state.json`, then the new state's entries only). Each first
 * folds in the boot loader's count of the pending revision's tries (loader-count.ts: a pending
 * kernel that never reached the initramfs used up its tries in the loader only). mark-good
 * runs the health checks first, outside the lock. docs/rollback.md explains the rules.
 */
import { planBootEntries } from '../bootloader/boot-plan.js';
import { type Bootloader, type BootloaderName, entryWarnings } from '../bootloader/bootloader.js';
import { createBootloader } from '../bootloader/create-bootloader.js';
import { applyStateChange } from '../deploy/state-change.js';
import { step } from '../fsutil/named-step.js';
import { repoPath } from '../home/home-layout.js';
import { withLock } from '../home/home-lock.js';
import { type DeployState, readState, withPrunedStaged } from '../home/home-state.js';
import {
  type RevisionHealth,
  type TransitionAction,
  type TransitionPlan,
  TransitionRefusedError,
  planMarkBad,
  planMarkGood,
  planRollback,
} from './boot-select.js';
import { DEFAULT_HEALTH_DIR, DEFAULT_HEALTH_TIMEOUT_MS, type HealthReport, healthVeto, runHealthChecks } from './health-checks.js';
import { readHealth } from './revision-health.js';
import { applyLoaderCount, pendingLoaderCount } from './loader-count.js';
import { sameState } from '../deploy/state-change.js';

/** What a transition did. */
export interface TransitionResult extends TransitionPlan {
  /** The entries now written, the default first (empty for `gitroot.bootloader=none`). */
  entries: Array<{ id: string; revision: string; role: string; tries: number | null }>;
  /** Kernel directories removed from `D/boot`. */
  pruned: string[];
  /** What else the state learnt, one line each (the boot loader's count of the pending revision's tries). */
  notes: string[];
  warnings: string[];
}

export interface TransitionOptions {
  /** The gitroot home. */
  dir: string;
  action: TransitionAction;
  /** A backend, or its name (then `bootDir` is `$BOOT`). */
  bootloader: Bootloader | BootloaderName;
  bootDir?: string;
  /** How long to wait for the lock (default 0). */
  waitMs?: number;
  /**
   * The revision this boot runs, from `/run/gitroot/booted.json`: mark-good and mark-bad are
   * refused when the state records another one as booted. Null or absent: not checked.
   */
  running?: string | null;
  /** Health of revisions (default readHealth on `D/repo.git`): mark-good and rollback refuse an unhealthy new good revision. */
  health?: (sha: string) => RevisionHealth;
}

const PLANS: Record<TransitionAction, (s: DeployState) => TransitionPlan> = {
  'mark-good': planMarkGood,
  'mark-bad': planMarkBad,
  rollback: planRollback,
};

/**
 * Refuses mark-good and mark-bad when the state records another booted revision than the one
 * this boot runs (`running`, from `/run/gitroot/booted.json`; not checked when null).
 */
export function checkRunning(action: TransitionAction, before: DeployState, running: string | null | undefined): void {
  if (action !== 'rollback' && running != null && running !== before.booted) {
    throw new TransitionRefusedError(
      action,
      'booted-mismatch',
      `${action}: state.json records ${before.booted ?? 'nothing'} as booted, but this boot runs ${running} ` +
        '(from /run/gitroot/booted.json): the boot could not record itself; nothing is changed',
      { booted: before.booted, running },
    );
  }
}

const HEALTH_WORDS: Record<Exclude<RevisionHealth, 'ok'>, string> = {
  missing: 'is not in',
  broken: 'is unreadable in',
  damaged: "has objects 'gitroot fsck' found damaged in",
  untrusted: 'has no valid signature from the boot trust root in',
};

/** Refuses making an unreadable revision the known-good one (mark-good, rollback). */
export function checkNewGood(plan: TransitionPlan, opts: Pick<TransitionOptions, 'health'> & { dir: string }): void {
  if (plan.action !== 'mark-bad' && plan.changed) {
    const h = (opts.health ?? ((sha: string) => readHealth(opts.dir, sha)))(plan.revision);
    if (h !== 'ok') {
      throw new TransitionRefusedError(
        plan.action,
        'unhealthy',
        `${plan.action}: revision ${plan.revision} ${HEALTH_WORDS[h]} ${repoPath(opts.dir)}, so it could not boot: ` +
          `${h === 'damaged' ? "repair it ('gitroot fsck --repair')" : h === 'untrusted' ? 'stage a revision signed by a listed key' : 'fetch it again (update-revision=)'} ` +
          'before making it the known-good revision',
        { revision: plan.revision, health: h },
      );
    }
  }
}

/**
 * Applies mark-good, mark-bad or rollback to home `dir` under its lock (see the module
 * comment for the steps). A refusal (TransitionRefusedError) or a failed step leaves the
 * state as it was; if the entries were rewritten but the state could not be, the entries of
 * the old state are written back. When the state already says what the transition asks for,
 * only the entries are brought in line with it (this also repairs an extlinux DEFAULT still
 * naming a revision that has failed since).
 */
export async function applyTransition(opts: TransitionOptions): Promise<TransitionResult> {
  const bootloader = typeof opts.bootloader === 'string' ? createBootloader(opts.bootloader, { homeDir: opts.dir, bootDir: opts.bootDir }) : opts.bootloader;
  return withLock(opts.dir, { waitMs: opts.waitMs ?? 0, command: `gitroot ${opts.action}` }, (lock) => {
    const before = step('read state', () => readState(opts.dir));
    checkRunning(opts.action, before, opts.running);
    const loader = step('read boot loader counts', () => applyLoaderCount(before, pendingLoaderCount(before, bootloader.readEntries().entries)));
    let plan = PLANS[opts.action](loader.state);
    if (loader.note !== null && !plan.changed) plan = { ...plan, changed: true, state: withPrunedStaged(plan.state) };
    checkNewGood(plan, opts);
    const bootPlan = planBootEntries(plan.state, bootloader.location);
    if (plan.changed && bootloader.name !== 'none' && plan.nextBoot !== null && bootPlan.entries[0]?.revision !== plan.nextBoot) {
      throw new TransitionRefusedError(
        plan.action,
        'no-boot-entry',
        `${plan.action}: revision ${plan.nextBoot} would boot next but has no staged kernel, so no boot entry can start it: ` +
          `stage it again (update-revision=${plan.nextBoot}) first; nothing is changed`,
        { revision: plan.nextBoot, warnings: entryWarnings(bootloader, bootPlan) },
      );
    }
    // An unchanged plan's state is `before`: then only the entries are brought in line with it.
    const change = applyStateChange({ dir: opts.dir, lock, bootloader, before, next: plan.state });
    const entries = bootloader.name === 'none' ? [] : change.plan.entries.map((e) => ({ id: e.id, revision: e.revision, role: e.role, tries: e.tries }));
    return {
      ...plan,
      changed: !sameState(before, plan.state),
      entries,
      pruned: change.pruned,
      notes: loader.note === null ? [] : [loader.note],
      warnings: change.warnings,
    };
  });
}

export interface JudgeOptions {
  /** The gitroot home. */
  dir: string;
  /** The revision this boot runs (booted.json); refused when the state records another. Null or absent: not checked. */
  running?: string | null;
  /** Health checks to run (default DEFAULT_HEALTH_DIR). */
  healthDir?: string;
  /** Per check (default DEFAULT_HEALTH_TIMEOUT_MS). */
  healthTimeoutMs?: number;
}

/** What judgeBoot found: the revision judged and the checks' report (all passed). */
export interface BootJudgement {
  revision: string;
  health: HealthReport;
}

/**
 * The health checks of the booted revision (`gitroot health`, run by gitroot-health.service
 * before boot-complete.target; mark-good runs them too): refused at once when nothing is booted
 * or another revision is booted (TransitionRefusedError); then every check, each with GITROOT_DIR
 * and GITROOT_REVISION in its environment; any failing check vetoes (HealthCheckError naming it
 * and its last output line, with the report in `data.health`). Changes nothing.
 */
export async function judgeBoot(opts: JudgeOptions, who: 'mark-good' | 'health' = 'health'): Promise<BootJudgement> {
  const state = step('read state', () => readState(opts.dir));
  checkRunning('mark-good', state, opts.running);
  const revision = planMarkGood(state).revision;
  const timeoutMs = opts.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;
  const health = await runHealthChecks({
    healthDir: opts.healthDir ?? DEFAULT_HEALTH_DIR,
    timeoutMs,
    env: { GITROOT_DIR: opts.dir, GITROOT_REVISION: revision },
  });
  if (!health.ok) {
    const err = healthVeto(health, timeoutMs, who);
    err.data.health = health;
    throw err;
  }
  return { revision, health };
}

export interface MarkGoodOptions extends Omit<TransitionOptions, 'action'>, Omit<JudgeOptions, 'dir' | 'running'> {
  /** Do not run the health checks (gitroot-health.service ran them before boot-complete.target). */
  skipHealth?: boolean;
}

/** What markGood did: the health checks (null when skipped), and the transition when they all passed. */
export interface MarkGoodResult extends TransitionResult {
  health: HealthReport | null;
}

/**
 * `gitroot mark-good`: the health checks (judgeBoot, outside the lock: they may take minutes)
 * unless skipped, then the transition, under the lock, for the revision the checks judged.
 */
export async function markGood(opts: MarkGoodOptions): Promise<MarkGoodResult> {
  let revision: string;
  let health: HealthReport | null = null;
  if (opts.skipHealth) {
    const state = step('read state', () => readState(opts.dir));
    checkRunning('mark-good', state, opts.running);
    revision = planMarkGood(state).revision;
  } else {
    ({ revision, health } = await judgeBoot(opts, 'mark-good'));
  }
  // Under the lock, the booted revision must still be the one the checks judged.
  const result = await applyTransition({ ...opts, action: 'mark-good', running: opts.running ?? revision });
  return { ...result, health };
}
