/**
 * Drives the real gitroot CLI (the compiled dist/bin/gitroot.js) from tests, and keeps
 * track of the mounts a test makes so they are always unmounted and their serving
 * processes (and only those, by PID) stopped.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project's root: the nearest directory above this file that holds package.json (the same
 * from test/ and from a compiled or transpiled copy of it).
 */
export const PROJECT_ROOT = projectRoot(dirname(fileURLToPath(import.meta.url)));
export const CLI = join(PROJECT_ROOT, 'dist', 'bin', 'gitroot.js');
export const SHARED = resolve(PROJECT_ROOT, '..', 'shared');

function projectRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `gitroot ARGS` to completion. */
export function gitroot(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'bash scripts/setup.sh' (it builds dist/)`);
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    input: opts.input ?? '',
    env: opts.env ?? process.env,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Runs `gitroot ARGS` without blocking this process's event loop: needed whenever the test
 * itself serves something the CLI talks to (a git HTTP server in the test process).
 */
export function gitrootAsync(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ status: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

/** Runs a shell command; throws with its stderr if it fails. */
export function sh(cmd: string, cwd?: string): string {
  const r = spawnSync('bash', ['-c', cmd], { cwd, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`command failed (${r.status}): ${cmd}\n${r.stderr}`);
  return r.stdout;
}

/** Whether `path` is a mount point right now. */
export function isMounted(path: string): boolean {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return false;
  }
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4]?.replace(/\\040/g, ' ') === real);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until `pid` has exited (up to `ms`); true if it did. */
export async function waitExit(pid: number, ms = 30000): Promise<boolean> {
  for (let t = 0; t < ms && alive(pid); t += 20) await new Promise((r) => setTimeout(r, 20));
  return !alive(pid);
}

export interface Mounted {
  pid: number;
  commit: string;
  mountpoint: string;
  readyMs: number;
}

/**
 * `gitroot mount --json` in the background; registers a teardown that unmounts and stops
 * the serving process (by its PID) if the test did not.
 */
export function mount(t: { teardown(fn: () => unknown): void }, mountpoint: string, repo: string, extra: string[] = []): Mounted {
  const r = gitroot(['mount', mountpoint, '--repo', repo, '--json', ...extra]);
  if (r.status !== 0) throw new Error(`gitroot mount failed (${r.status}): ${r.stderr}`);
  const m = JSON.parse(r.stdout) as Mounted;
  t.teardown(async () => {
    if (isMounted(mountpoint)) spawnSync('umount', ['-l', mountpoint]);
    if (!(await waitExit(m.pid, 5000))) process.kill(m.pid, 'SIGKILL');
  });
  return m;
}
