/**
 * Commit a directory as a root filesystem tree: scan it, then stream every file, the
 * manifest and one commit through a single `git fast-import` process onto a branch.
 *
 * Steps, in order: check the branch name; check the git directory (create it later if
 * missing); resolve the author/committer idents; scan the tree (no side effects so far);
 * create the bare repository if needed; resolve the parent commit; stream blobs, the
 * manifest and the commit; read back the commit and tree ids.
 *
 * The content comes from a TreeSource: a directory (here) or a tar archive (commit-tar.ts).
 * Each streams its blobs through a BlobWriter and then says which paths the tree holds and
 * what the manifest records; the steps around it are the same for both.
 *
 * Safety: fast-import updates refs only after the whole stream has been read and ends with
 * `done` (`feature done`), so a failure at any point leaves the branch as it was. On an
 * error while streaming blobs, the stream is finished without a commit (so fast-import does
 * not write a crash report); leftover blobs are unreachable and `git gc` prunes them.
 *
 * A tree identical to the parent's still gets a new commit: each commit is a release
 * marker (who published what, when), and machines following the branch see a new id.
 */

import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { GitCommandError, RepoNotFoundError, SourceTreeError, UsageError } from '../errors/errors.js';
import { MANIFEST_NAME, formatManifest, pathToken, type ManifestEntry } from '../manifest/mtree.js';
import { MODE_FILE, MODE_SYMLINK } from '../store/git-objects.js';
import { blobHeader, commitHeader, fileLine, symlinkLines } from './fast-import-stream.js';
import { firstErrorLine, git, gitFailure, gitSpawnFailure, runGit } from '../git/git-exec.js';
import { scanTree } from './scan-tree.js';
import { OID_PATTERN } from '../store/object-id.js';
import { branchProblem } from '../store/ref-names.js';
import { loadSigningKey, signAndMove, unsignedBranchName } from './commit-sign.js';
import type { GitFileMode, ScannedFile } from './scan-plan.js';

/** Options of every commit, whatever its content comes from. */
export interface CommitTargetOptions {
  /** Git directory (bare repository); created when missing or an empty directory. */
  gitdir: string;
  /** Branch to commit onto; default master. */
  branch?: string;
  /** Commit message; default "Snapshot of ROOTDIR" (or of the archive). */
  message?: string;
  /** Environment for git and the idents (GIT_AUTHOR_*, GIT_COMMITTER_*, SOURCE_DATE_EPOCH); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** An unencrypted OpenSSH ed25519 private key file: the commit is SSH-signed (see commit-sign.ts). */
  signKey?: string;
}

/** Options of commitDirectory. */
export interface CommitOptions extends CommitTargetOptions {
  /** Directory to commit as the root of the tree. */
  rootdir: string;
  /** Called after each file's content is queued: (files done, files in total). */
  onProgress?: (done: number, total: number) => void;
}

/** A path of the new tree: a file whose blob was written as `mark`, or a symlink. */
export interface TreeFile {
  path: string;
  gitMode: GitFileMode;
  /** The blob's mark (files). */
  mark?: number;
  /** Symlink target, for gitMode 120000. */
  linkTarget?: string;
}

/** What a source streamed: the tree's paths, the manifest entries, and its warnings. */
export interface TreeContent {
  files: TreeFile[];
  manifest: ManifestEntry[];
  warnings: string[];
}

/** Where a source writes blobs: begin() one, then exactly `size` bytes of data() for it. */
export interface BlobWriter {
  /** Starts a blob of `size` bytes and returns its mark. */
  begin(size: number): Promise<number>;
  /** Content of the blob begun last. */
  data(chunk: Buffer): Promise<void>;
}

/** Where a commit's content comes from. */
export interface TreeSource {
  /** What the default message calls it: "Snapshot of <describe>". */
  describe: string;
  /** Checks that need no repository (a directory scan, an archive's first header); runs before anything is created. */
  prepare(): Promise<void>;
  /** Streams every blob through `blobs` and returns the tree (runs once, after prepare). */
  write(blobs: BlobWriter): Promise<TreeContent>;
  /** Releases what prepare opened; always called. */
  close(): void;
}

/** What commitDirectory made. */
export interface CommitResult {
  commit: string;
  tree: string;
  parent: string | null;
  branch: string;
  /** Files and symlinks in the tree (the manifest not counted). */
  files: number;
  /** Bytes of file content streamed to git (each hardlinked file once). */
  bytes: number;
  manifestEntries: number;
  warnings: string[];
  /** With signKey: SHA256 fingerprint of the key that signed the commit. */
  signedBy?: string;
}

const DEFAULT_BRANCH = 'master';
const BIG_FILE_THRESHOLD = '16m';
/** Bytes read per chunk from a file; smaller files are read in one go. */
const CHUNK = 1 << 20;
/** The commit id fast-import reports last: SHA-1, or SHA-256 (24 more digits) in such a repository. */
const FAST_IMPORT_ID = new RegExp(`^${OID_PATTERN}([0-9a-f]{24})?$`);
/** Bytes queued for fast-import before waiting for it to catch up. */
const QUEUE_LIMIT = 8 << 20;

/**
 * Environment for `git var` that yields gitroot's idents: name and email default to
 * gitroot <gitroot@localhost> (git's config is not consulted), and SOURCE_DATE_EPOCH sets
 * both dates unless GIT_AUTHOR_DATE / GIT_COMMITTER_DATE say otherwise.
 */
export function identityEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  out.GIT_AUTHOR_NAME ??= 'gitroot';
  out.GIT_AUTHOR_EMAIL ??= 'gitroot@localhost';
  out.GIT_COMMITTER_NAME ??= 'gitroot';
  out.GIT_COMMITTER_EMAIL ??= 'gitroot@localhost';
  const epoch = env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined && epoch !== '') {
    if (!/^[0-9]+$/.test(epoch)) {
      throw new UsageError(`SOURCE_DATE_EPOCH="${epoch}" is not a number of seconds: set it to an integer such as 1700000000 or unset it`);
    }
    out.GIT_AUTHOR_DATE ??= `@${epoch} +0000`;
    out.GIT_COMMITTER_DATE ??= `@${epoch} +0000`;
  }
  return out;
}

/** Checks a branch name with git's rules (lib/store/ref-names.ts); UsageError if git would refuse it. */
function checkBranch(branch: string): void {
  const why = branchProblem(branch);
  if (why === null) return;
  throw new UsageError(`invalid branch name "${branch}" (it ${why}): use a name git accepts, such as master or releases/stable`, { data: { branch } });
}

/** An ident line from `git var` (git parses the dates); UsageError if the environment holds a bad one. */
async function ident(which: 'GIT_AUTHOR_IDENT' | 'GIT_COMMITTER_IDENT', env: NodeJS.ProcessEnv): Promise<string> {
  const run = await runGit(['var', which], { env });
  if (run.code !== 0) {
    const vars = which === 'GIT_AUTHOR_IDENT' ? 'GIT_AUTHOR_NAME/EMAIL/DATE' : 'GIT_COMMITTER_NAME/EMAIL/DATE';
    throw new UsageError(`git rejects the commit identity (${firstErrorLine(run.stderr)}): fix or unset ${vars}`, { data: { stderr: run.stderr } });
  }
  return run.stdout.trim();
}

/** Whether the git directory must be created; RepoNotFoundError if it is something else. */
async function gitdirNeedsInit(gitdir: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  let isDir: boolean;
  try {
    isDir = (await fs.stat(gitdir)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw new RepoNotFoundError(`cannot use ${gitdir} as git directory (${(err as NodeJS.ErrnoException).code}): check the path`, {
      data: { gitdir },
      cause: err,
    });
  }
  if (isDir && (await fs.readdir(gitdir)).length === 0) return true;
  const run = isDir ? await runGit([`--git-dir=${gitdir}`, 'rev-parse', '--git-dir'], { env }) : null;
  if (run === null || run.code !== 0) {
    throw new RepoNotFoundError(`${gitdir} is not a git repository: give a bare repository, or a path that does not exist yet to create one`, {
      data: { gitdir },
    });
  }
  return false;
}

/** Raised inside the stream when fast-import has gone away; the exit status tells why. */
class FastImportGone extends Error {}

/** Writes to fast-import's stdin with backpressure, and knows how much blob data is owed. */
class StreamWriter {
  /** Bytes still owed to the current `data` command. */
  owed = 0;
  private gone = false;

  constructor(
    private readonly stdin: Writable,
    private readonly exited: Promise<unknown>,
  ) {
    stdin.on('error', () => {
      this.gone = true;
    });
    const mark = (): void => {
      this.gone = true;
    };
    exited.then(mark, mark);
  }

  async write(chunk: string | Buffer): Promise<void> {
    if (this.gone) throw new FastImportGone();
    this.stdin.write(chunk);
    if (this.stdin.writableLength <= QUEUE_LIMIT) return;
    const ac = new AbortController();
    try {
      await Promise.race([
        once(this.stdin, 'drain', { signal: ac.signal }),
        this.exited.then(() => {
          throw new FastImportGone();
        }),
      ]);
    } catch (err) {
      throw err instanceof Error && err.name === 'AbortError' ? new FastImportGone() : err;
    } finally {
      ac.abort();
    }
  }

  /** Blob content, counted against what the `data` header promised. */
  async writeData(chunk: Buffer): Promise<void> {
    this.owed -= chunk.length;
    await this.write(chunk);
  }

  /** Pay what the current blob still owes with zeros, so the stream stays well-formed. */
  async settle(): Promise<void> {
    while (this.owed > 0) await this.writeData(Buffer.alloc(Math.min(this.owed, CHUNK)));
  }

  end(): void {
    if (!this.gone) this.stdin.end();
  }
}

/** Stream one regular file as a blob; returns its mark. */
async function streamFile(blobs: BlobWriter, f: ScannedFile): Promise<number> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(f.source, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw new SourceTreeError(
      `cannot read ${pathToken(f.path)} (${(err as NodeJS.ErrnoException).code}): make it readable, and do not change the tree while committing`,
      { data: { path: f.path }, cause: err },
    );
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      throw new SourceTreeError(`${pathToken(f.path)} is no longer a regular file: do not change the tree while committing`, { data: { path: f.path } });
    }
    const size = st.size;
    const mark = await blobs.begin(size);
    for (let pos = 0; pos < size;) {
      const want = Math.min(size - pos, CHUNK);
      const buf = Buffer.allocUnsafe(want);
      let got: number;
      try {
        got = (await fh.read(buf, 0, want, pos)).bytesRead;
      } catch (err) {
        throw new SourceTreeError(`cannot read ${pathToken(f.path)} (${(err as NodeJS.ErrnoException).code}): check the disk and retry`, {
          data: { path: f.path },
          cause: err,
        });
      }
      if (got === 0) {
        throw new SourceTreeError(`${pathToken(f.path)} shrank while being read: do not change the tree while committing`, { data: { path: f.path } });
      }
      await blobs.data(got === want ? buf : buf.subarray(0, got));
      pos += got;
    }
    return mark;
  } finally {
    await fh.close();
  }
}

/** A directory as a TreeSource: scanned in prepare(), each file read from disk in write(). */
function directorySource(rootdir: string, onProgress?: (done: number, total: number) => void): TreeSource {
  let scan: Awaited<ReturnType<typeof scanTree>> | null = null;
  return {
    describe: rootdir,
    async prepare() {
      scan = await scanTree(rootdir);
    },
    async write(blobs) {
      const { files, manifest, warnings } = scan!;
      // Blobs: each file once; paths of one hardlink group share the first one's blob.
      const blobFiles = files.filter((f) => f.gitMode !== MODE_SYMLINK);
      const groupMark = new Map<number, number>();
      const marks = new Map<ScannedFile, number>();
      const total = new Set(blobFiles.map((f) => f.hardlink ?? f.path)).size; // distinct contents
      let done = 0;
      for (const f of blobFiles) {
        const shared = f.hardlink === undefined ? undefined : groupMark.get(f.hardlink);
        if (shared !== undefined) {
          marks.set(f, shared);
          continue;
        }
        const mark = await streamFile(blobs, f);
        marks.set(f, mark);
        if (f.hardlink !== undefined) groupMark.set(f.hardlink, mark);
        onProgress?.(++done, total);
      }
      return {
        files: files.map((f) => ({ path: f.path, gitMode: f.gitMode, mark: marks.get(f), linkTarget: f.linkTarget })),
        manifest,
        warnings,
      };
    },
    close() {
      /* nothing held open */
    },
  };
}

interface ImportPlan {
  gitdir: string;
  env: NodeJS.ProcessEnv;
  source: TreeSource;
  header: { branch: string; author: string; committer: string; message: string; parent: string | null };
}

/** Run one fast-import for the whole commit; returns the commit id, what the source streamed, bytes, git's warnings. */
async function fastImport(p: ImportPlan): Promise<{ commit: string; content: TreeContent; bytes: number; stderr: string }> {
  // --depth=0: no deltas. fast-import would only try the previous blob in the stream (an
  // unrelated file), which on a Debian tree saved 3% of the pack for 40% more time and
  // 3x the memory; git gc and pack-objects find real deltas (old versions) later.
  const args = [`--git-dir=${p.gitdir}`, 'fast-import', '--quiet', `--big-file-threshold=${BIG_FILE_THRESHOLD}`, '--depth=0'];
  const child = spawn('git', args, { env: p.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((res, rej) => {
    child.on('error', (err) => rej(gitSpawnFailure(err)));
    child.on('close', (code) => res(code));
  });
  exited.catch(() => {
    /* reported below */
  });
  const w = new StreamWriter(child.stdin, exited);

  let next = 1;
  let bytes = 0;
  const blobs: BlobWriter = {
    async begin(size) {
      if (w.owed !== 0) throw new Error(`BlobWriter: a blob began with ${w.owed} bytes of the previous one unwritten`);
      const mark = next++;
      await w.write(blobHeader(mark, size));
      w.owed = size;
      bytes += size;
      return mark;
    },
    async data(chunk) {
      if (chunk.length > w.owed) throw new Error(`BlobWriter: ${chunk.length} bytes given where the blob needs ${w.owed}`);
      await w.writeData(chunk);
    },
  };
  let inCommit = false;
  let content: TreeContent;
  try {
    await w.write('feature done\nfeature get-mark\n');
    content = await p.source.write(blobs);
    if (w.owed !== 0) throw new Error(`BlobWriter: the last blob lacks ${w.owed} bytes`);
    const manifest = content.manifest.length > 0 ? formatManifest(content.manifest) : null;
    const manifestMark = next++;
    if (manifest !== null) await w.write(blobHeader(manifestMark, Buffer.byteLength(manifest)) + manifest);
    const commitMark = next++;

    inCommit = true;
    const lines = [commitHeader({ ...p.header, mark: commitMark })];
    for (const f of content.files) {
      lines.push(f.gitMode === MODE_SYMLINK ? symlinkLines(f.path, f.linkTarget ?? '') : fileLine(f.gitMode, f.mark!, f.path));
    }
    if (manifest !== null) lines.push(fileLine(MODE_FILE, manifestMark, MANIFEST_NAME));
    lines.push(`get-mark :${commitMark}\n`, 'done\n');
    await w.write(lines.join(''));
    w.end();
  } catch (err) {
    if (err instanceof GitCommandError) throw err;
    if (err instanceof FastImportGone) {
      const code = await exited;
      throw gitFailure(args, { code, stderr });
    }
    // Our side failed (unreadable file, damaged archive, progress callback): end the
    // stream without a commit so nothing is updated, or kill fast-import if the commit had begun.
    try {
      if (inCommit) child.kill('SIGKILL');
      else {
        await w.settle();
        await w.write('done\n');
        w.end();
      }
    } catch {
      child.kill('SIGKILL');
    }
    await exited.catch(() => undefined);
    throw err;
  }
  const code = await exited;
  if (code !== 0) throw gitFailure(args, { code, stderr });
  const commit = stdout.trim().split('\n').pop() ?? '';
  if (!FAST_IMPORT_ID.test(commit)) {
    throw new GitCommandError(`git fast-import did not report the new commit (got "${commit}"): ${firstErrorLine(stderr)}`);
  }
  return { commit, content, bytes, stderr };
}

/**
 * Commit `rootdir` onto `branch` of `gitdir` (created as a bare repository if missing):
 * files and symlinks as git entries, everything else in `.gitroot.mtree`. The branch's
 * current commit becomes the parent. Throws UsageError (bad branch), RepoNotFoundError
 * (gitdir is not a repository), SourceTreeError (the tree cannot be recorded) or
 * GitCommandError (git failed; the branch is then unchanged).
 */
export async function commitDirectory(opts: CommitOptions): Promise<CommitResult> {
  const rootdir = resolve(opts.rootdir);
  return commitSource(opts, directorySource(rootdir, opts.onProgress));
}

/**
 * Commit what `source` streams onto `branch` of `gitdir`, with the steps and guarantees of
 * commitDirectory (which is this with a directory as the source).
 */
export async function commitSource(opts: CommitTargetOptions, source: TreeSource): Promise<CommitResult> {
  const env = opts.env ?? process.env;
  const branch = opts.branch ?? DEFAULT_BRANCH;
  const gitdir = resolve(opts.gitdir);
  try {
    checkBranch(branch);
    // The key first: an unreadable or encrypted key must fail before anything is recorded.
    const signKey = opts.signKey === undefined ? undefined : loadSigningKey(opts.signKey);
    const needsInit = await gitdirNeedsInit(gitdir, env);
    // Idents first (they need no repository): a bad GIT_*_DATE fails before anything is made.
    const identEnv = identityEnv(env);
    const [author, committer] = await Promise.all([ident('GIT_AUTHOR_IDENT', identEnv), ident('GIT_COMMITTER_IDENT', identEnv)]);
    await source.prepare();

    if (needsInit) {
      await fs.mkdir(gitdir, { recursive: true });
      await git(['init', '--bare', '-q', `--initial-branch=${branch}`, gitdir], { env });
      await git([`--git-dir=${gitdir}`, 'config', 'core.bigFileThreshold', BIG_FILE_THRESHOLD], { env });
    }
    const g = `--git-dir=${gitdir}`;
    const parentRun = await runGit([g, 'rev-parse', '--verify', '-q', `refs/heads/${branch}^{commit}`], { env });
    const parent = parentRun.code === 0 ? parentRun.stdout.trim() : null;

    // Signing: fast-import writes onto a temporary branch; the signed commit then replaces it.
    const importBranch = signKey === undefined ? branch : unsignedBranchName();
    const imported = await fastImport({
      gitdir,
      env,
      source,
      header: { branch: importBranch, author, committer, message: opts.message ?? `Snapshot of ${source.describe}`, parent },
    });
    let signedBy: string | undefined;
    if (signKey !== undefined) {
      const signed = await signAndMove({ gitdir, env, key: signKey, unsigned: imported.commit, tmpBranch: importBranch, branch, parent });
      imported.commit = signed.commit;
      signedBy = signed.keyFingerprint;
    }
    const tree = await git([g, 'rev-parse', '--verify', `${imported.commit}^{tree}`], { env });
    const gitWarnings = imported.stderr
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => `git fast-import: ${l.trim()}`);
    const { content } = imported;
    return {
      commit: imported.commit,
      tree,
      parent,
      branch,
      files: content.files.length,
      bytes: imported.bytes,
      manifestEntries: content.manifest.length,
      warnings: [...content.warnings, ...gitWarnings],
      ...(signedBy === undefined ? {} : { signedBy }),
    };
  } finally {
    source.close();
  }
}
