/**
 * Running native git for the commit path: one small helper that captures output and turns
 * a failure into a GitCommandError carrying git's own first error line.
 */

import { spawn } from 'node:child_process';
import { GitCommandError } from '../errors/errors.js';

/** Exit status and captured output of a git run. */
export interface GitRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The line of git's stderr that says what went wrong (first fatal:/error: line, else the first line). */
export function firstErrorLine(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return lines.find((l) => /^(fatal|error):/.test(l)) ?? lines[0] ?? 'no error output';
}

/** Error for a failed git command, naming the command and git's first error line. */
export function gitFailure(args: readonly string[], run: { code: number | null; stderr: string }): GitCommandError {
  const cmd = args.find((a) => !a.startsWith('-')) ?? args[0] ?? '';
  return new GitCommandError(`git ${cmd} failed (exit ${run.code ?? 'by signal'}): ${firstErrorLine(run.stderr)}`, {
    data: { args: [...args], exitCode: run.code, stderr: run.stderr },
  });
}

/** Error for git that could not be started at all. */
export function gitSpawnFailure(err: unknown): GitCommandError {
  const code = (err as NodeJS.ErrnoException).code;
  return new GitCommandError(
    code === 'ENOENT' ? 'git is not installed or not on PATH: install git (apt-get install git)' : `cannot run git (${code ?? String(err)})`,
    { cause: err },
  );
}

/** Run git with `args`, resolving to its exit code and output whatever the code. */
export function runGit(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<GitRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', (err) => reject(gitSpawnFailure(err)));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => {
      /* git exited before reading its input: the exit code tells */
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Run git and return its stdout without the trailing newline; GitCommandError if it fails. */
export async function git(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<string> {
  const run = await runGit(args, opts);
  if (run.code !== 0) throw gitFailure(args, run);
  return run.stdout.replace(/\n$/, '');
}
