/**
 * Repositories for the fetch tests, built with native git at run time: a work tree whose
 * commits are pushed to a bare repository under the test server's project root, plus a
 * snapshot of a fetch target (refs and the objects/ listing) to prove "unchanged".
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const IDENT = {
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.org',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.org',
};

/** Runs git; throws with its stderr on failure; returns trimmed stdout. */
export function gitSync(args: string[], opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync('git', args, {
    cwd: opts.cwd,
    input: opts.input,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, ...IDENT, ...opts.env },
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim();
}

/** Exit status and output of a git run, without throwing. */
export function gitRun(args: string[], cwd?: string): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('git', args, { cwd, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return { status: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}

export interface ServerRepo {
  /** Work tree the commits are made in. */
  work: string;
  /** Bare repository served (projectRoot/name). */
  bare: string;
  name: string;
  /** Commit ids, oldest first. */
  commits: string[];
}

/** Writes `files` (relative path -> content) into `dir`. */
function writeFiles(dir: string, files: Record<string, Buffer | string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
}

/** Incompressible content, so sizes on the wire are predictable. */
export function randomFiles(count: number, bytes: number, prefix = 'pkg'): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (let i = 0; i < count; i++) out[`usr/share/${prefix}${i % 7}/file-${i}.bin`] = randomBytes(bytes);
  return out;
}

/** Creates a served repository `name` under `projectRoot` with one commit of `files` on `main`. */
export function makeServerRepo(base: string, projectRoot: string, name: string, files: Record<string, Buffer | string>): ServerRepo {
  const work = path.join(base, `${name}-work`);
  const bare = path.join(projectRoot, name);
  gitSync(['init', '-q', '-b', 'main', work]);
  writeFiles(work, files);
  gitSync(['add', '-A'], { cwd: work });
  gitSync(['commit', '-q', '-m', 'release 1'], { cwd: work });
  gitSync(['init', '-q', '--bare', bare]);
  gitSync(['remote', 'add', 'origin', bare], { cwd: work });
  gitSync(['push', '-q', 'origin', 'main'], { cwd: work });
  gitSync(['symbolic-ref', 'HEAD', 'refs/heads/main'], { cwd: bare });
  return { work, bare, name, commits: [gitSync(['rev-parse', 'HEAD'], { cwd: work })] };
}

/** Commits `files` (added or replaced) on top and pushes; returns the new commit id. */
export function pushCommit(repo: ServerRepo, files: Record<string, Buffer | string>, message = `release ${repo.commits.length + 1}`): string {
  writeFiles(repo.work, files);
  gitSync(['add', '-A'], { cwd: repo.work });
  gitSync(['commit', '-q', '-m', message], { cwd: repo.work });
  gitSync(['push', '-q', 'origin', 'main'], { cwd: repo.work });
  const sha = gitSync(['rev-parse', 'HEAD'], { cwd: repo.work });
  repo.commits.push(sha);
  return sha;
}

/** Refs (with targets) and every path under objects/ with its size: equal snapshots = unchanged repo. */
export interface RepoSnapshot {
  refs: string;
  objects: string[];
}

export function snapshotRepo(gitdir: string): RepoSnapshot {
  const objects: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p, `${rel}${name}/`);
      else objects.push(`${rel}${name} ${st.size}`);
    }
  };
  walk(path.join(gitdir, 'objects'), '');
  return { refs: gitSync(['--git-dir', gitdir, 'for-each-ref', '--format=%(objectname) %(refname)']), objects };
}

/** `git fsck` status and every ref's whole closure present (`rev-list --objects --all`). */
export function repoHealth(gitdir: string): { fsck: number; fsckErr: string; closure: number; closureErr: string } {
  const fsck = gitRun(['--git-dir', gitdir, 'fsck', '--no-progress', '--no-dangling']);
  const closure = gitRun(['--git-dir', gitdir, 'rev-list', '--objects', '--missing=error', '--all', '--quiet']);
  return { fsck: fsck.status, fsckErr: fsck.stderr + fsck.stdout, closure: closure.status, closureErr: closure.stderr };
}
