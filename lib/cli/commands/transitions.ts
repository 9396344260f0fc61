/**
 * `gitroot select`, `mark-good`, `mark-bad`, `rollback`: the boot decision shown without
 * acting on it, and the transitions after a boot (docs/rollback.md). The work is in
 * lib/boot/ (boot-decide.ts, transitions.ts, health-checks.ts); this file reads options and settings and renders the results.
 */
import type { Command } from 'commander';
import { DEFAULT_RUN_DIR } from '../../boot/boot-mount.js';
import { runningRevision as liveRunningRevision } from '../../live/live-record.js';
import { type BootDecision, decideBoot } from '../../boot/boot-decide.js';
import { type HealthReport, DEFAULT_HEALTH_DIR, DEFAULT_HEALTH_TIMEOUT_MS, HealthCheckError, describeFailure } from '../../boot/health-checks.js';
import { type MarkGoodResult, type TransitionResult, applyTransition, judgeBoot, markGood } from '../../boot/transitions.js';
import { type SharedOpts, addCmdlineOption, addConfigOption, addDirOption, addJsonOption, addWaitOption, parseSeconds, secondsToMs } from '../cli-options.js';
import type { TransitionAction } from '../../boot/boot-select.js';
import type { BootloaderName } from '../../bootloader/bootloader.js';
import { RevisionNotFoundError } from '../../errors/errors.js';
import { readCmdline } from '../../params/cmdline-file.js';
import { loadSettings } from '../../params/settings-load.js';
import { note, printJson, printLine } from '../output.js';
import { requireHome } from '../../home/home-layout.js';

type CommonOpts = SharedOpts;

interface TransitionOpts extends CommonOpts {
  runDir: string;
}

interface HealthOpts {
  dir: string;
  runDir: string;
  healthDir: string;
  healthTimeout: number;
  json?: boolean;
}

interface MarkGoodOpts extends TransitionOpts, HealthOpts {
  /** false with --no-health-checks. */
  healthChecks: boolean;
}

/**
 * `--wait` of the transitions: longer than a fetch's. What the next boot runs must not be lost
 * to a fetch or prune holding the lock for a while, least of all mark-good at boot, which
 * gitroot-mark-good.service runs while the fetch timer may be staging.
 */
const TRANSITION_WAIT_SECONDS = 60;

/**
 * The revision this boot runs: RUN/live.json's after `gitroot apply-live`, else RUN/booted.json's;
 * null when gitroot did not boot this system. mark-good and mark-bad judge that one.
 */
function runningRevision(runDir: string): string | null {
  return liveRunningRevision(runDir);
}

function describeDecision(d: BootDecision): string[] {
  const lines = [`${d.kind} ${d.revision ?? '-'}`, d.reason];
  for (const n of d.notes) lines.push(`note: ${n}`);
  const p = d.state.pending;
  lines.push(
    `would write: booted ${d.state.booted ?? '-'}, pending ${p === null ? '-' : `${p.revision} (${p.triesLeft} of ${p.tries} tries left)`}` +
      `, failed ${d.state.failed.length === 0 ? '-' : d.state.failed.join(' ')}`,
  );
  return lines;
}

function describeHealth(h: HealthReport | null, timeoutMs: number): string[] {
  if (h === null) return ['health checks: not run (--no-health-checks)'];
  if (h.checks.length === 0) return [`health checks: none in ${h.healthDir}`];
  return h.checks.map((c) => `health check ${c.name}: ${c.ok ? 'passed' : `failed (${describeFailure(c, timeoutMs)})`} in ${c.durationMs} ms`);
}

function describeTransition(r: TransitionResult): string[] {
  const lines = [...r.notes.map((n) => `note: ${n}`), r.changed ? r.reason : `nothing to change: ${r.reason}`];
  lines.push(`next boot: ${r.nextBoot ?? 'none'}`);
  return lines;
}

async function settingsFor(opts: CommonOpts): Promise<{ bootloader: BootloaderName; bootDir: string }> {
  // Never touch the network here: the fleet config comes from its cache.
  const loaded = await loadSettings({ dir: opts.dir, cmdlineFile: opts.cmdline, configPath: opts.config, offline: true });
  for (const w of loaded.warnings) note(`warning: ${w}`);
  return { bootloader: loaded.settings['gitroot.bootloader'], bootDir: loaded.settings['gitroot.boot'] };
}

function common(c: Command, what: string): Command {
  addDirOption(c);
  addCmdlineOption(c);
  addConfigOption(c);
  addWaitOption(c, what, TRANSITION_WAIT_SECONDS, "longer than a fetch's: the next boot's choice must not be lost to a fetch staging at boot");
  return addJsonOption(c, 'the outcome');
}

async function transition(action: TransitionAction, opts: TransitionOpts | CommonOpts): Promise<void> {
  requireHome(opts.dir);
  const s = await settingsFor(opts);
  const r = await applyTransition({
    dir: opts.dir,
    action,
    bootloader: s.bootloader,
    bootDir: s.bootDir,
    waitMs: secondsToMs(opts.wait),
    running: 'runDir' in opts ? runningRevision(opts.runDir) : null,
  });
  for (const w of r.warnings) note(`warning: ${w}`);
  if (opts.json) printJson(r);
  else for (const l of describeTransition(r)) printLine(l);
}

/** Registers select, health, mark-good, mark-bad and rollback. */
export function registerTransitions(program: Command): void {
  const select = program.command('select').description('show which revision the next boot would serve and why, and the state it would write; changes nothing');
  addDirOption(select);
  addCmdlineOption(select, 'git-revision=');
  addJsonOption(select, 'the decision').action(async (opts: Omit<SharedOpts, 'config' | 'wait'>) => {
    requireHome(opts.dir);
    const d = await decideBoot({ dir: opts.dir, cmdline: readCmdline(opts.cmdline), persist: false });
    if (opts.json) {
      printJson({
        revision: d.revision,
        kind: d.kind,
        reason: d.reason,
        notes: d.notes,
        cmdlineRevision: d.cmdlineRevision,
        health: d.health,
        state: d.state,
      });
    } else for (const l of describeDecision(d)) printLine(l);
    // Nothing bootable is an answer, and also what `gitroot boot` would fail on: exit non-zero.
    if (d.revision === null) throw new RevisionNotFoundError(d.reason, { data: { notes: d.notes } });
  });

  const healthOptions = (c: Command): Command =>
    c
      .option('--health-dir <dir>', 'health checks: every executable file here runs, sorted; one failing vetoes', DEFAULT_HEALTH_DIR)
      .option('--health-timeout <seconds>', 'how long one health check may run', parseSeconds, DEFAULT_HEALTH_TIMEOUT_MS / 1000)
      .option('--run-dir <dir>', 'where gitroot boot recorded this boot (booted.json); checked against state.json', DEFAULT_RUN_DIR);

  /** Runs `fn` (which runs the health checks); a veto still reports every check: in the log, and as JSON for tools. */
  const reportingVeto = async <T>(opts: HealthOpts, timeoutMs: number, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      const health = e instanceof HealthCheckError ? (e.data.health as HealthReport | undefined) : undefined;
      if (health !== undefined) {
        if (opts.json) printJson({ ok: false, error: { code: e instanceof HealthCheckError ? e.code : 'ESTATE', message: (e as Error).message }, health });
        else for (const l of describeHealth(health, timeoutMs)) note(l);
      }
      throw e;
    }
  };

  healthOptions(common(program.command('mark-good'), 'marking'))
    .description('run the health checks, then make the booted revision the known-good one (run by gitroot-mark-good.service)')
    .option('--no-health-checks', 'do not run the health checks (gitroot-health.service ran them before boot-complete.target)')
    .action(async (opts: MarkGoodOpts) => {
      requireHome(opts.dir);
      const s = await settingsFor(opts);
      const timeoutMs = secondsToMs(opts.healthTimeout, '--health-timeout');
      const r: MarkGoodResult = await reportingVeto(opts, timeoutMs, () =>
        markGood({
          dir: opts.dir,
          bootloader: s.bootloader,
          bootDir: s.bootDir,
          waitMs: secondsToMs(opts.wait),
          running: runningRevision(opts.runDir),
          healthDir: opts.healthDir,
          healthTimeoutMs: timeoutMs,
          skipHealth: !opts.healthChecks,
        }),
      );
      for (const w of r.warnings) note(`warning: ${w}`);
      for (const sk of r.health?.skipped ?? []) note(`health check ${sk.name} skipped: ${sk.why}`);
      if (opts.json) printJson({ ok: true, ...r });
      else for (const l of [...describeHealth(r.health, timeoutMs), ...describeTransition(r)]) printLine(l);
    });

  healthOptions(addJsonOption(addDirOption(program.command('health')), "the checks' report"))
    .description(
      'run the health checks of the booted revision and change nothing; exit 4 when one fails ' +
        '(run by gitroot-health.service before boot-complete.target, so a failing check keeps the boot from counting as complete)',
    )
    .action(async (opts: HealthOpts) => {
      requireHome(opts.dir);
      const timeoutMs = secondsToMs(opts.healthTimeout, '--health-timeout');
      const r = await reportingVeto(opts, timeoutMs, () =>
        judgeBoot({
          dir: opts.dir,
          running: runningRevision(opts.runDir),
          healthDir: opts.healthDir,
          healthTimeoutMs: timeoutMs,
        }),
      );
      for (const sk of r.health.skipped) note(`health check ${sk.name} skipped: ${sk.why}`);
      if (opts.json) printJson({ ok: true, ...r });
      else for (const l of [...describeHealth(r.health, timeoutMs), `${r.revision} passed its health checks`]) printLine(l);
    });

  common(program.command('mark-bad'), 'marking')
    .description('abandon the booted revision at once: record it as failed; the known-good revision boots next')
    .option('--run-dir <dir>', 'where gitroot boot recorded this boot (booted.json); checked against state.json', DEFAULT_RUN_DIR)
    .action((opts: TransitionOpts) => transition('mark-bad', opts));

  common(program.command('rollback'), 'rolling back')
    .description('make the previous known-good revision the next boot (a second rollback undoes the first)')
    .action((opts: CommonOpts) => transition('rollback', opts));
}
