/**
 * Finding a repository's directories from what a user passes: a bare repository, a work tree
 * holding `.git` (a directory, or a `gitdir:` file as in linked worktrees and submodules),
 * or a `.git` directory itself. Anything else is RepoNotFoundError.
 */
import fs from 'node:fs';
import path from 'node:path';
import { RepoNotFoundError } from '../errors/errors.js';

export interface GitDirs {
  /** The git directory proper: HEAD lives here (one per worktree). */
  gitDir: string;
  /** Where refs, packed-refs and objects live; differs from gitDir only in linked worktrees. */
  commonDir: string;
  /** The object directory: `<commonDir>/objects`. */
  objectsDir: string;
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function notARepo(repo: string, detail?: string): RepoNotFoundError {
  return new RepoNotFoundError(
    `not a git repository: ${repo}${detail === undefined ? '' : ` (${detail})`} ` + `(create one with 'gitroot commit DIR --repo ${repo}')`,
    { data: { repo } },
  );
}

/**
 * Resolves the git, common and object directories of `repo`; throws RepoNotFoundError.
 * A relative `repo` gives paths relative to the working directory: the boot daemon relies
 * on that, since it runs with its cwd in the gitroot home and, after the switch to the new
 * root, absolute paths of the initramfs no longer lead anywhere (its cwd still does).
 */
export function resolveGitDir(repo: string): GitDirs {
  const dirs = resolveAbsolute(repo);
  if (path.isAbsolute(repo)) return dirs;
  const rel = (p: string): string => path.relative(process.cwd(), p) || '.';
  return { gitDir: rel(dirs.gitDir), commonDir: rel(dirs.commonDir), objectsDir: rel(dirs.objectsDir) };
}

function resolveAbsolute(repo: string): GitDirs {
  const abs = path.resolve(repo);
  let gitDir = abs;
  const dotGit = path.join(abs, '.git');
  if (isDir(dotGit)) {
    gitDir = dotGit;
  } else if (isFile(dotGit)) {
    const m = /^gitdir: (.+)$/m.exec(fs.readFileSync(dotGit, 'utf8'));
    if (m === null) throw notARepo(abs, `${dotGit} has no 'gitdir:' line`);
    gitDir = path.resolve(abs, m[1].trim());
  }
  let commonDir = gitDir;
  const commonFile = path.join(gitDir, 'commondir');
  if (isFile(commonFile)) commonDir = path.resolve(gitDir, fs.readFileSync(commonFile, 'utf8').trim());
  const objectsDir = path.join(commonDir, 'objects');
  if (!isFile(path.join(gitDir, 'HEAD')) || !isDir(objectsDir)) throw notARepo(abs);
  return { gitDir, commonDir, objectsDir };
}
