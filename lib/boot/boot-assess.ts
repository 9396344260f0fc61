/**
 * The I/O around the boot decisions of boot-select.ts: how healthy a revision is in the
 * repository (readHealth), the decision `gitroot boot` persists before it mounts
 * (decideBoot), the health checks that may veto `mark-good` (runHealthChecks), and the
 * transitions mark-good, mark-bad and rollback applied under the home's lock in named steps:
 *   1. read the state and plan the transition (pure; a refusal changes nothing);
 *   2. boot entries of both states (the new state's, plus the old state's it drops);
 *   3. `D/state.json`;
 *   4. the new state's entries only (the dropped ones and their kernel copies go);
 *   5. prune kernel directories the new state no longer keeps.
 * As in staging, at every instant the entries on disk include every entry of the state on
 * disk: a power cut before step 3 leaves the transition simply not done (the old state with
 * all of its entries); after it, the transition is done and only extra entries remain, which
 * the next write of entries removes. docs/rollback.md explains the rules.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GitrootError, StateError, UsageError } from '../errors/errors.js';
import { type BootPlan, planBootEntries, unionPlan } from '../bootloader/boot-plan.js';
import { entryWarnings, type Bootloader, type BootloaderName } from '../bootloader/bootloader.js';
import { createBootloader } from '../bootloader/create-bootloader.js';
import { type DeployState, isSha, readState, writeState } from '../deploy/deploy-state.js';
import { pruneBootFiles } from '../deploy/deploy-stage.js';
import { step } from '../deploy/deploy-steps.js';
import { withLock } from '../deploy/lock.js';
import { ObjectStore } from '../store/object-store.js';
import { parseCommit } from '../store/git-objects.js';
import type { AllowedSigners } from '../trust/allowed-signers.js';
import { judgeTaggedCommit } from '../trust/revision-trust.js';
import { readRef } from '../store/refs.js';
import { tagRefName } from '../store/gitroot-refs.js';
import { packSetKey, readVerdict, verdictHealth } from '../fsck/fsck-verdict.js';
import {
  type RevisionHealth, type Selection, type TransitionAction, type TransitionPlan, TransitionRefusedError,
  cmdlineRevision, planMarkBad, planMarkGood, planRollback, selectRevision,
} from './boot-select.js';

/** The repository inside a gitroot home. */
const REPO = 'repo.git';
/** Where the systemd unit's health checks live. */
export const DEFAULT_HEALTH_DIR = '/etc/gitroot/health.d';
/** How long one health check may run. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 60_000;
/** Output kept per health check (the end of it). */
const OUTPUT_LIMIT = 64 * 1024;
/** After SIGTERM at the timeout, how long a check's process group has before SIGKILL. */
const KILL_GRACE_MS = 2000;

/**
 * How healthy revision `sha` is in `dir/repo.git`: `ok` when the commit and its root tree are
 * there and read back verified; `missing` when the commit (or its root tree) is not in the
 * repository, or `sha` names no commit; `broken` when they are there but reading them fails
 * (ObjectCorruptError, a missing delta base, an I/O error). Pass `store` to reuse an open one.
 */
export function readHealth(dir: string, sha: string, store?: ObjectStore): RevisionHealth {
  if (!isSha(sha)) return 'missing';
  let s = store;
  if (s === undefined) {
    try {
      s = ObjectStore.open(join(dir, REPO));
    } catch (e) {
      return (e as GitrootError).code === 'ENOREPO' ? 'missing' : 'broken';
    }
  }
  try {
    if (!s.has(sha)) return 'missing';
    const commit = s.readObject(sha);
    if (commit.type !== 'commit') return 'missing';
    const tree = parseCommit(commit.data).tree;
    if (!s.has(tree)) return 'missing';
    return s.readObject(tree).type === 'tree' ? 'ok' : 'broken';
  } catch {
    return 'broken';
  } finally {
    if (store === undefined) s.close();
  }
}

/** A health function over one open repository, remembering what it answered (for --json). */
export interface HealthProbe {
  health: (sha: string) => RevisionHealth;
  /** Every revision asked about, with its answer. */
  checked: Record<string, RevisionHealth>;
  /** Why each `untrusted` revision is (with signers). */
  distrust: Record<string, string>;
  close(): void;
}

/**
 * Opens `dir/repo.git` once for many readHealth calls; with no repository every revision is
 * missing. A revision readHealth finds `ok` is `damaged` when the last full `gitroot fsck`
 * (`D/fsck.json`) found it broken and, if packs came or went since, one of the broken objects
 * it lists still fails to read. With `signers` (the
 * initramfs's allowed-signers, lib/trust), a readable revision with no valid signature from a
 * listed key (on its commit, or on the annotated tag it was fetched through) is `untrusted`.
 */
export function openHealthProbe(dir: string, signers: AllowedSigners | null = null): HealthProbe {
  const verdict = readVerdict(dir);
  const packSet = verdict === null ? '' : packSetKey(join(dir, REPO));
  let store: ObjectStore | null = null;
  let openError: RevisionHealth | null = null;
  try {
    store = ObjectStore.open(join(dir, REPO));
  } catch (e) {
    openError = (e as GitrootError).code === 'ENOREPO' ? 'missing' : 'broken';
  }
  const checked: Record<string, RevisionHealth> = {};
  const distrust: Record<string, string> = {};
  /** An object fsck found broken still fails to read (verified) now. */
  const stillBroken = (oid: string): boolean => {
    try {
      store?.readObject(oid);
      return store === null;
    } catch {
      return true;
    }
  };
  /**
   * The trust check of a readable revision: a signature from a listed key on its commit, or on
   * the annotated tag it was fetched through (refs/gitroot/tag/<sha>, re-verified here).
   */
  const trust = (sha: string): RevisionHealth => {
    if (signers === null || store === null) return 'ok';
    try {
      const tag = readRef(join(dir, REPO), tagRefName(sha));
      const v = judgeTaggedCommit(store, signers, sha, tag).verdict;
      if (v.trusted) return 'ok';
      distrust[sha] = `${v.detail}; ${v.fix}`;
      return 'untrusted';
    } catch {
      return 'broken';
    }
  };
  return {
    checked,
    distrust,
    health: (sha) => {
      if (checked[sha] === undefined) {
        let h = store === null ? (isSha(sha) ? (openError as RevisionHealth) : 'missing') : readHealth(dir, sha, store);
        if (h === 'ok') h = trust(sha);
        checked[sha] = h === 'ok' ? (verdictHealth(verdict, packSet, sha, stillBroken) ?? 'ok') : h;
      }
      return checked[sha];
    },
    close: () => store?.close(),
  };
}

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
    if (JSON.stringify(d.state) === JSON.stringify(before)) return d;
    step('write state', () => writeState(lock, d.state));
    return { ...d, written: true };
  });
}

/** One health check's outcome. */
export interface HealthCheckResult {
  /** File name in the health directory. */
  name: string;
  path: string;
  ok: boolean;
  /** Exit status, or null when it was ended by a signal. */
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  /** The end of its stdout and stderr, interleaved as written (at most 64 KiB). */
  output: string;
  /** Its last non-empty output line, or null. */
  lastLine: string | null;
}

/** What runHealthChecks found. */
export interface HealthReport {
  healthDir: string;
  /** Every check run, in name order. */
  checks: HealthCheckResult[];
  /** Files not run, with why (not executable, hidden, a backup). */
  skipped: Array<{ name: string; why: string }>;
  ok: boolean;
}

export interface HealthCheckOptions {
  /** Directory of the checks (DEFAULT_HEALTH_DIR); a missing one means no checks. */
  healthDir: string;
  /** Per check (default DEFAULT_HEALTH_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Added to the checks' environment (e.g. GITROOT_DIR, GITROOT_REVISION). */
  env?: Record<string, string>;
}

/** A health check or its directory could not be run or vetoed the boot. */
export class HealthCheckError extends StateError {}

/** Why a file in the health directory is not a check to run, or null when it is one. */
function skipReason(path: string, name: string): string | null {
  if (name.startsWith('.')) return 'hidden';
  if (name.endsWith('~') || /\.(dpkg-[a-z]+|ucf-[a-z]+|rpm(save|new|orig)|bak|orig|swp)$/.test(name)) return 'a backup or package-manager leftover';
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    return `cannot be read (${(e as NodeJS.ErrnoException).code ?? e})`;
  }
  if (!st.isFile()) return 'not a regular file';
  try {
    accessSync(path, constants.X_OK);
  } catch {
    return 'not executable';
  }
  return null;
}

function lastLineOf(text: string): string | null {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const last = lines[lines.length - 1];
  if (last === undefined) return null;
  return last.length > 300 ? `${last.slice(0, 300)}...` : last;
}

/** Runs one check in its own process group; on timeout the whole group is ended. */
function runCheck(path: string, name: string, timeoutMs: number, env: NodeJS.ProcessEnv): Promise<HealthCheckResult> {
  const start = performance.now();
  return new Promise((resolve) => {
    let output = '';
    const keep = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.length > OUTPUT_LIMIT) output = output.slice(output.length - OUTPUT_LIMIT);
    };
    const child = spawn(path, [], { cwd: '/', env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const signalGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // the group is gone already
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    }, timeoutMs);
    let done = false;
    const finish = (exitCode: number | null, signal: string | null, spawnError?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (killTimer !== undefined) clearTimeout(killTimer);
      // A check that left a background process holding its output must not hold mark-good up.
      child.stdout.destroy();
      child.stderr.destroy();
      if (spawnError !== undefined) output += `${output === '' || output.endsWith('\n') ? '' : '\n'}cannot run it: ${spawnError.message}\n`;
      const ok = !timedOut && spawnError === undefined && exitCode === 0;
      resolve({
        name, path, ok, exitCode, signal, timedOut, durationMs: Math.round(performance.now() - start), output, lastLine: lastLineOf(output),
      });
    };
    child.on('error', (e) => finish(null, null, e));
    // 'exit' then a moment for the pipes to drain; 'close' usually comes first.
    child.on('close', (code, signal) => finish(code, signal));
    child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 200));
  });
}

/**
 * Runs every executable file of the health directory, sorted by name, one after the other,
 * each with a timeout, stdin from /dev/null, cwd `/`, and its output captured. Hidden files,
 * backups (`~`, `.dpkg-old`, ...) and files without an execute bit are skipped (and listed).
 * A missing directory means no checks. Every check runs even after one fails, so the report
 * names every problem. Never throws for a failing check; HealthCheckError only when the
 * directory exists but cannot be listed.
 */
export async function runHealthChecks(opts: HealthCheckOptions): Promise<HealthReport> {
  const report: HealthReport = { healthDir: opts.healthDir, checks: [], skipped: [], ok: true };
  let names: string[];
  try {
    names = readdirSync(opts.healthDir).sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return report;
    throw new HealthCheckError(`cannot list the health checks in ${opts.healthDir} (${code ?? e}): fix its permissions, or remove it to run none`,
      { data: { healthDir: opts.healthDir }, cause: e });
  }
  const env = { ...process.env, ...(opts.env ?? {}) };
  for (const name of names) {
    const path = join(opts.healthDir, name);
    const why = skipReason(path, name);
    if (why !== null) {
      report.skipped.push({ name, why });
      continue;
    }
    const r = await runCheck(path, name, opts.timeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS, env);
    report.checks.push(r);
    if (!r.ok) report.ok = false;
  }
  return report;
}

/** One line saying how a check failed: `exit 3`, `killed by SIGSEGV`, `timed out after 60 s`. */
export function describeFailure(r: HealthCheckResult, timeoutMs = DEFAULT_HEALTH_TIMEOUT_MS): string {
  if (r.timedOut) return `timed out after ${Math.round(timeoutMs / 1000)} s`;
  if (r.exitCode === null && r.signal === null) return 'could not be started';
  return r.exitCode !== null ? `exit ${r.exitCode}` : `killed by ${r.signal}`;
}

/** The error of a vetoed mark-good: names the first failing check and its last output line. */
export function healthVeto(report: HealthReport, timeoutMs = DEFAULT_HEALTH_TIMEOUT_MS): HealthCheckError {
  const failed = report.checks.filter((c) => !c.ok);
  const first = failed[0];
  const more = failed.length > 1 ? ` (and ${failed.length - 1} more: ${failed.slice(1).map((c) => c.name).join(', ')})` : '';
  return new HealthCheckError(
    `mark-good: health check ${first.path} failed (${describeFailure(first, timeoutMs)})` +
      `${first.lastLine === null ? ', printing nothing' : `: ${first.lastLine}`}${more}; the revision is not marked good and the state is unchanged`,
    { data: { script: first.path, failed: failed.map((c) => c.name), lastLine: first.lastLine, exitCode: first.exitCode, timedOut: first.timedOut } },
  );
}

/** What a transition did. */
export interface TransitionResult extends TransitionPlan {
  /** The entries now written, the default first (empty for `gitroot.bootloader=none`). */
  entries: Array<{ id: string; revision: string; role: string; tries: number | null }>;
  /** Kernel directories removed from `D/boot`. */
  pruned: string[];
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

/** True when `D/state.json` holds `state` now (after a write that reported an error). */
function stateOnDiskIs(dir: string, state: DeployState): boolean {
  try {
    return JSON.stringify(readState(dir)) === JSON.stringify(state);
  } catch {
    return false;
  }
}

/**
 * Refuses mark-good and mark-bad when the state records another booted revision than the one
 * this boot runs (`running`, from `/run/gitroot/booted.json`; not checked when null).
 */
export function checkRunning(action: TransitionAction, before: DeployState, running: string | null | undefined): void {
  if (action !== 'rollback' && running != null && running !== before.booted) {
    throw new TransitionRefusedError(action, 'booted-mismatch',
      `${action}: state.json records ${before.booted ?? 'nothing'} as booted, but this boot runs ${running} ` +
        '(from /run/gitroot/booted.json): the boot could not record itself; nothing is changed',
      { booted: before.booted, running });
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
      throw new TransitionRefusedError(plan.action, 'unhealthy',
        `${plan.action}: revision ${plan.revision} ${HEALTH_WORDS[h]} ${join(opts.dir, REPO)}, so it could not boot: ` +
          `${h === 'damaged' ? "repair it ('gitroot fsck --repair')" : h === 'untrusted' ? 'stage a revision signed by a listed key' : 'fetch it again (update-revision=)'} ` +
          'before making it the known-good revision',
        { revision: plan.revision, health: h });
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
  const bootloader = typeof opts.bootloader === 'string'
    ? createBootloader(opts.bootloader, { homeDir: opts.dir, bootDir: opts.bootDir })
    : opts.bootloader;
  return withLock(opts.dir, { waitMs: opts.waitMs ?? 0, command: `gitroot ${opts.action}` }, (lock) => {
    const before = step('read state', () => readState(opts.dir));
    checkRunning(opts.action, before, opts.running);
    const plan = PLANS[opts.action](before);
    checkNewGood(plan, opts);
    const bootPlan: BootPlan = planBootEntries(plan.state, bootloader.location);
    const warnings = entryWarnings(bootloader, bootPlan);
    if (plan.changed && bootloader.name !== 'none' && plan.nextBoot !== null && bootPlan.entries[0]?.revision !== plan.nextBoot) {
      throw new TransitionRefusedError(plan.action, 'no-boot-entry',
        `${plan.action}: revision ${plan.nextBoot} would boot next but has no staged kernel, so no boot entry can start it: ` +
          `stage it again (update-revision=${plan.nextBoot}) first; nothing is changed`,
        { revision: plan.nextBoot, warnings });
    }
    try {
      // Entries of both states first (a power cut before the state write leaves the old state's
      // entries in place), the state, then only the new state's entries.
      const both = plan.changed ? unionPlan(bootPlan, planBootEntries(before, bootloader.location)) : bootPlan;
      step('write boot entries', () => bootloader.writeEntries(both));
      if (plan.changed) step('write state', () => writeState(lock, plan.state));
    } catch (e) {
      if (plan.changed && !stateOnDiskIs(opts.dir, plan.state)) {
        try {
          bootloader.writeEntries(planBootEntries(before, bootloader.location));
        } catch {
          // The original error is what the caller needs; the next transition or staging repairs the entries.
        }
      }
      throw e;
    }
    let pruned: string[] = [];
    if (plan.changed) {
      try {
        // The state is written: a failure here only leaves extra entries (the next write removes them).
        step('remove old boot entries', () => bootloader.writeEntries(bootPlan));
        pruned = pruneBootFiles(opts.dir, plan.state);
      } catch (e) {
        warnings.push(`prune staged kernels: ${(e as Error).message} (the next staging tries again)`);
      }
    }
    const entries = bootloader.name === 'none' ? []
      : bootPlan.entries.map((e) => ({ id: e.id, revision: e.revision, role: e.role, tries: e.tries }));
    return { ...plan, entries, pruned, warnings };
  });
}

export interface MarkGoodOptions extends Omit<TransitionOptions, 'action'> {
  /** Health checks to run first (default DEFAULT_HEALTH_DIR). */
  healthDir?: string;
  /** Per check (default DEFAULT_HEALTH_TIMEOUT_MS). */
  healthTimeoutMs?: number;
}

/** What markGood did: the health checks, and the transition when they all passed. */
export interface MarkGoodResult extends TransitionResult {
  health: HealthReport;
}

/**
 * `gitroot mark-good`: refuses at once what the state does not allow (nothing booted, another
 * revision booted), then runs the health checks (outside the lock: they may take minutes),
 * each with GITROOT_DIR and GITROOT_REVISION in its environment; any failing check vetoes
 * (HealthCheckError naming it and its last output line; the state is unchanged). Then the
 * transition, under the lock.
 */
export async function markGood(opts: MarkGoodOptions): Promise<MarkGoodResult> {
  const state = step('read state', () => readState(opts.dir));
  checkRunning('mark-good', state, opts.running);
  const pre = planMarkGood(state);
  const timeoutMs = opts.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;
  const health = await runHealthChecks({
    healthDir: opts.healthDir ?? DEFAULT_HEALTH_DIR,
    timeoutMs,
    env: { GITROOT_DIR: opts.dir, GITROOT_REVISION: pre.revision },
  });
  if (!health.ok) {
    const err = healthVeto(health, timeoutMs);
    err.data.health = health;
    throw err;
  }
  // Under the lock, the booted revision must still be the one the checks judged.
  const result = await applyTransition({ ...opts, action: 'mark-good', running: opts.running ?? pre.revision });
  return { ...result, health };
}

/** Checks a `--wait` value in seconds; returns milliseconds. */
export function secondsToMs(seconds: number, option = '--wait'): number {
  if (!Number.isFinite(seconds) || seconds < 0) throw new UsageError(`${option} needs a number of seconds >= 0, not '${seconds}'`);
  return Math.round(seconds * 1000);
}
