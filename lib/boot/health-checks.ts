/**
 * The health checks that may veto `gitroot mark-good`: every executable file of
 * `/etc/gitroot/health.d`, run one after the other in name order, each in its own process
 * group with a timeout, stdin from /dev/null and its output captured. A failing check names
 * itself and its last output line in the one-line veto. docs/rollback.md says how to write one.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { StateError } from '../errors/errors.js';

/** Where the systemd unit's health checks live. */
export const DEFAULT_HEALTH_DIR = '/etc/gitroot/health.d';
/** How long one health check may run. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 60_000;
/** Output kept per health check (the end of it). */
const OUTPUT_LIMIT = 64 * 1024;
/** After SIGTERM at the timeout, how long a check's process group has before SIGKILL. */
const KILL_GRACE_MS = 2000;

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
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
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
        name,
        path,
        ok,
        exitCode,
        signal,
        timedOut,
        durationMs: Math.round(performance.now() - start),
        output,
        lastLine: lastLineOf(output),
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
    throw new HealthCheckError(`cannot list the health checks in ${opts.healthDir} (${code ?? e}): fix its permissions, or remove it to run none`, {
      data: { healthDir: opts.healthDir },
      cause: e,
    });
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

/** What a veto means, by the command that ran the checks. */
const VETO_MEANS = {
  'mark-good': 'the revision is not marked good and the state is unchanged',
  health: 'the boot does not count as complete (boot-complete.target): the boot entry is not blessed and the revision not marked good',
} as const;

/**
 * The error of a vetoed mark-good (or `gitroot health`, `who`): names the first failing check
 * and its last output line.
 */
export function healthVeto(report: HealthReport, timeoutMs = DEFAULT_HEALTH_TIMEOUT_MS, who: keyof typeof VETO_MEANS = 'mark-good'): HealthCheckError {
  const failed = report.checks.filter((c) => !c.ok);
  const first = failed[0];
  const more =
    failed.length > 1
      ? ` (and ${failed.length - 1} more: ${failed
          .slice(1)
          .map((c) => c.name)
          .join(', ')})`
      : '';
  return new HealthCheckError(
    `${who}: health check ${first.path} failed (${describeFailure(first, timeoutMs)})` +
      `${first.lastLine === null ? ', printing nothing' : `: ${first.lastLine}`}${more}; ${VETO_MEANS[who]}`,
    { data: { script: first.path, failed: failed.map((c) => c.name), lastLine: first.lastLine, exitCode: first.exitCode, timedOut: first.timedOut } },
  );
}
