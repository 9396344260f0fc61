/**
 * fetchCommit: brings one commit (a branch tip, a tag, or a pinned SHA) and everything it needs
 * from a smart-HTTP git server into the machine's bare repository, or leaves the repository
 * exactly as it was. An annotated tag (named by fetch-revision when no such branch exists, or
 * by its SHA in update-revision) is fetched with its commit and peeled; it is recorded as
 * refs/gitroot/tag/<commit>, so its signature can vouch for the commit (lib/trust) at fetch
 * and at every boot, and prune keeps it as long as the commit.
 *
 * Why not isomorphic-git's fetch (measured on the 90 MB Debian minbase pack, see
 * docs/fetch.md): it buffered the whole pack and inflated every object in memory (536 MB
 * peak RSS, growing with pack size), took 2.5x native `git clone --bare`, and speaks only
 * protocol v1. So gitroot speaks smart-HTTP protocol v2 itself on got (smart-http.ts; v0/v1
 * fallback), negotiates with `have`s so updates carry only what is new, and streams the pack
 * into native `git index-pack --stdin --fix-thin` (pack-receive.ts), which verifies every
 * object's SHA-1 and the pack checksum in bounded memory.
 *
 * Steps, each failure a one-line typed error:
 *   1. lock        one fetch per repository (fetch-lock.ts); clean what a killed fetch left
 *   2. refs        discover the server, resolve the branch (else the tag) with ls-refs (or take the SHA)
 *   3. present?    commit already here and complete: record the ref, no pack request
 *   4. negotiate   our ref tips and their recent ancestors as `have`s, one round
 *   5. download    pack streamed into index-pack in a quarantine objects directory
 *   6. verify      a tag peels to a commit; the commit's whole tree is present (rev-list --objects)
 *   7. install     .keep, .pack, then .idx renamed into objects/pack (fsync), dir fsync
 *   8. record      refs/gitroot/tag/<commit> (for a tag), then refs/gitroot/fetched/<name-or-sha>,
 *                  each written atomically; .keep removed
 * Before step 7 nothing in the repository changes; a kill -9 between 7 and 8 leaves a
 * complete, verified pack no ref names (the next fetch finds the commit and records it).
 */
import { mkdirSync, promises as fsp, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GitrootError, NoSpaceError, RemoteError, RepoNotFoundError, UsageError } from '../errors/errors.js';
import { fsyncDir, fsyncFile, isAtomicTemp, removeFilesUnder, writeFileAtomic } from '../fsutil/atomic-write.js';
import { DEFAULT_LOCK_WAIT_MS } from '../fsutil/process-lock.js';
import { git, gitFailure, runGit } from '../git/git-exec.js';
import { ObjectStore } from '../store/object-store.js';
import { parseCommit } from '../store/git-objects.js';
import { listRefs } from '../store/refs.js';
import { isOidHex } from '../store/object-id.js';
import { isValidBranchName } from '../store/ref-names.js';
import { FETCHED_REF_PREFIX, TAG_REF_PREFIX, fetchedRefName, tagRefName } from '../store/gitroot-refs.js';
import { MAX_TAG_DEPTH, type PeelOutcome, peelTag, peelTagAsync } from '../store/tag-peel.js';
import { acquireFetchLock } from './fetch-lock.js';
import { type ReceivedPack, receivePack } from './pack-receive.js';
import { redactUrl } from '../http/url-redact.js';
import { SmartHttpRemote } from './smart-http.js';
import type { TlsFiles } from '../http/delivery-identity.js';

export { FETCHED_REF_PREFIX, TAG_REF_PREFIX, fetchedRefName, tagRefName };
/** Directory (inside the repository, outside objects/) holding quarantines. */
export const FETCH_TMP_DIR = 'gitroot-tmp';
/** Most `have` lines sent: ref tips first, then their ancestors newest first. */
export const MAX_HAVES = 256;
export const KEEP_MARKER = 'gitroot fetch';

export interface FetchProgress {
  phase: 'refs' | 'negotiate' | 'download' | 'index';
  /** Response bytes received so far (all requests). */
  bytes: number;
  objects?: number;
  totalObjects?: number;
  /** Download rate (download phase). */
  bytesPerSecond?: number;
}

/**
 * What a fetch is for:
 * - `update` (default): steps 1-8; the commit is recorded as refs/gitroot/fetched/<name-or-sha>.
 * - `dry-run`: refs, negotiation and the download (into a temp dir, then deleted): measure,
 *   change nothing (no lock, no repository created).
 * - `repair` (`gitroot fsck --repair`): ask for the commit with no `have`s even when it is here,
 *   index the full pack in a scratch repository with no alternates (so index-pack never reads
 *   the damaged local copies), check it is complete on its own, install it; no ref is written.
 */
export type FetchMode = 'update' | 'dry-run' | 'repair';

export interface FetchCommitOptions {
  /** The local bare repository (D/repo.git); created if missing. */
  gitdir: string;
  /** Smart-HTTP(S) URL of the repository. */
  remote: string;
  /**
   * Branch whose tip to fetch (short name, as under refs/heads/); when the server has no such
   * branch, the tag of that name (refs/tags/). Exactly one of branch/sha.
   */
  branch?: string;
  /** Full 40-hex id of a commit or an annotated tag to fetch (older ones too: a deliberate downgrade). */
  sha?: string;
  /** Connect, response and idle-between-bytes timeout in ms (default 30 s). */
  timeoutMs?: number;
  /** Retries of the idempotent steps (discovery, ls-refs) with exponential backoff (default 3). */
  retries?: number;
  /** First retry delay in ms (default 500, doubled per attempt). */
  retryDelayMs?: number;
  /** How long to wait for another fetch holding the lock (default 5 s), then LockedError. */
  lockWaitMs?: number;
  /** Extra HTTP headers (authentication, the delivery identity), like git's http.extraHeader. */
  headers?: Record<string, string>;
  /** A private CA and a client certificate (lib/http/delivery-identity.ts). */
  tls?: TlsFiles;
  /** Proxy URL; undefined: from the environment; null: none. */
  proxy?: string | null;
  onProgress?: (p: FetchProgress) => void;
  /** What the fetch is for (default 'update'); see FetchMode. */
  mode?: FetchMode;
  signal?: AbortSignal;
}

export interface FetchCommitResult {
  /** The fetched commit (40 hex). */
  commit: string;
  /** The annotated tag named (fetch-revision resolved to a tag, or update-revision is a tag's id) that peels to `commit`, else null. */
  tag: string | null;
  /** The commit was already present: no pack was requested. */
  upToDate: boolean;
  /** HTTP response body bytes received (discovery, ls-refs and pack). */
  bytes: number;
  /** Objects in the received pack (0 when up to date). */
  objects: number;
  durationMs: number;
  /** The ref recorded (not in a dry run). */
  ref: string | null;
  /** Protocol the server spoke. */
  protocol: 0 | 2;
}

type Target = { kind: 'branch'; branch: string } | { kind: 'sha'; sha: string };

function checkTarget(opts: FetchCommitOptions): Target {
  if ((opts.branch === undefined) === (opts.sha === undefined)) {
    throw new UsageError('give exactly one of branch or sha to fetch');
  }
  if (opts.sha !== undefined) {
    if (!isOidHex(opts.sha)) {
      throw new UsageError(`'${opts.sha}' is not a full commit or tag id: give all 40 hex digits of the SHA`);
    }
    return { kind: 'sha', sha: opts.sha.toLowerCase() };
  }
  const branch = opts.branch!.replace(/^refs\/heads\//, '');
  if (!isValidBranchName(branch)) throw new UsageError(`'${opts.branch}' is not a valid branch name`);
  return { kind: 'branch', branch };
}

function isGitRepo(dir: string): boolean {
  try {
    return statSync(path.join(dir, 'HEAD')).isFile() && statSync(path.join(dir, 'objects')).isDirectory() && statSync(path.join(dir, 'refs')).isDirectory();
  } catch {
    return false;
  }
}

function dirState(dir: string): 'missing' | 'empty' | 'repo' | 'other' {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return 'other';
    throw e;
  }
  if (names.length === 0) return 'empty';
  return isGitRepo(dir) ? 'repo' : 'other';
}

/** Creates the bare repository if missing: initialized beside it, then renamed into place. */
export async function ensureRepo(gitdir: string): Promise<void> {
  const state = dirState(gitdir);
  if (state === 'repo') return;
  if (state === 'other') {
    throw new RepoNotFoundError(`${gitdir} exists but is not a git repository: move it away or choose another directory`, { data: { repo: gitdir } });
  }
  const parent = path.dirname(gitdir);
  mkdirSync(parent, { recursive: true });
  const tmp = path.join(parent, `.${path.basename(gitdir)}.init-${process.pid}-${Date.now().toString(36)}`);
  try {
    await git(['init', '--bare', '--quiet', tmp]);
    if (state === 'empty') rmdirSync(gitdir);
    try {
      renameSync(tmp, gitdir);
    } catch (e) {
      // Another process created it in the meantime: use theirs.
      if (!isGitRepo(gitdir)) throw e;
    }
    fsyncDir(parent);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Removes what an interrupted fetch left (only called under the lock): quarantines, temp
 * files of ref writes, and our .keep markers (a kept pack is complete and verified: it was
 * moved in only after the connectivity check; one without its .idx is dropped).
 */
export function cleanupStale(gitdir: string): void {
  rmSync(path.join(gitdir, FETCH_TMP_DIR), { recursive: true, force: true, maxRetries: 3 });
  const packDir = path.join(gitdir, 'objects', 'pack');
  let names: string[] = [];
  try {
    names = readdirSync(packDir);
  } catch {
    /* no packs yet */
  }
  for (const keep of names.filter((n) => n.endsWith('.keep'))) {
    let text = '';
    try {
      text = readFileSync(path.join(packDir, keep), 'utf8');
    } catch {
      continue;
    }
    if (!text.startsWith(KEEP_MARKER)) continue;
    const stem = keep.slice(0, -'.keep'.length);
    if (!names.includes(`${stem}.idx`)) {
      for (const n of names.filter((x) => x.startsWith(`${stem}.`) && x !== keep)) rmSync(path.join(packDir, n), { force: true });
    }
    rmSync(path.join(packDir, keep), { force: true });
  }
  removeFilesUnder(gitdir, 'refs/gitroot', isAtomicTemp);
}

/** Ids our refs point to (peeled) that the store holds: the fetched closure we trust. */
export function localTips(gitdir: string, store: ObjectStore): string[] {
  const tips = new Set<string>();
  for (const r of listRefs(gitdir)) {
    const oid = r.peeled ?? r.oid;
    if (store.has(oid)) tips.add(oid);
  }
  return [...tips];
}

/** `have`s: commit tips, then their ancestors newest first, at most `max`. */
function collectHaves(store: ObjectStore, tips: readonly string[], max: number): string[] {
  const haves: string[] = [];
  const seen = new Set<string>();
  const queue: { oid: string; time: number; parents: string[] }[] = [];
  const visit = (oid: string) => {
    if (seen.has(oid) || !store.has(oid)) return;
    seen.add(oid);
    try {
      const obj = store.readObject(oid);
      if (obj.type !== 'commit') return;
      const c = parseCommit(obj.data);
      queue.push({ oid, time: c.committerTime, parents: c.parents });
    } catch {
      /* unreadable: not a have */
    }
  };
  tips.forEach(visit);
  while (queue.length > 0 && haves.length < max) {
    queue.sort((a, b) => b.time - a.time);
    const next = queue.shift()!;
    haves.push(next.oid);
    next.parents.forEach(visit);
  }
  return haves;
}

export interface ObjectsEnv {
  /** Quarantine objects directory, if the objects are not in the repository yet. */
  quarantine: string | null;
  /** The repository whose objects are the alternate. */
  gitdir: string;
}

export function gitEnv(where: ObjectsEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0' };
  delete env.GIT_DIR;
  delete env.GIT_OBJECT_DIRECTORY;
  delete env.GIT_ALTERNATE_OBJECT_DIRECTORIES;
  if (where.quarantine !== null) {
    env.GIT_OBJECT_DIRECTORY = where.quarantine;
    env.GIT_ALTERNATE_OBJECT_DIRECTORIES = path.join(where.gitdir, 'objects');
  }
  return env;
}

/**
 * True if `commit` and every object it reaches are present (objects reachable from `tips`
 * are trusted: they were verified when fetched). Uses `git rev-list --objects`.
 */
export async function isComplete(where: ObjectsEnv, commit: string, tips: readonly string[]): Promise<boolean> {
  if (tips.includes(commit)) return true; // a ref already names it: verified when it was fetched
  const input = [commit, ...tips.filter((t) => t !== commit).map((t) => `^${t}`)].join('\n') + '\n';
  const args = ['--git-dir', where.gitdir, 'rev-list', '--objects', '--missing=error', '--quiet', '--stdin'];
  const run = await runGit(args, { env: gitEnv(where), input });
  return run.code === 0;
}

async function objectType(where: ObjectsEnv, oid: string): Promise<string | null> {
  const run = await runGit(['--git-dir', where.gitdir, 'cat-file', '-t', oid], { env: gitEnv(where) });
  return run.code === 0 ? run.stdout.trim() : null;
}

/** Moves a verified pack into objects/pack: .keep, .pack (and others), .idx last; durable on return. */
export function installPack(gitdir: string, files: readonly string[]): string[] {
  const packDir = path.join(gitdir, 'objects', 'pack');
  mkdirSync(packDir, { recursive: true });
  const rank = (f: string) => (f.endsWith('.keep') ? 0 : f.endsWith('.idx') ? 2 : 1);
  const ordered = [...files].sort((a, b) => rank(a) - rank(b));
  const installed: string[] = [];
  try {
    for (const f of ordered) {
      fsyncFile(f);
      const dest = path.join(packDir, path.basename(f));
      renameSync(f, dest);
      installed.push(dest);
    }
    fsyncDir(packDir);
  } catch (e) {
    uninstallPack(installed);
    throw e;
  }
  return installed;
}

/** Removes an installed pack (index first, so no reader ever sees an index without its pack). */
export function uninstallPack(installed: readonly string[]): void {
  const rank = (f: string) => (f.endsWith('.idx') ? 0 : f.endsWith('.keep') ? 2 : 1);
  for (const f of [...installed].sort((a, b) => rank(a) - rank(b))) rmSync(f, { force: true });
}

function refPath(gitdir: string, ref: string): string {
  return path.join(gitdir, ...ref.split('/'));
}

function readLooseRef(gitdir: string, ref: string): string | null {
  try {
    return readFileSync(refPath(gitdir, ref), 'utf8').trim();
  } catch {
    return null;
  }
}

/**
 * The commit and tag of a peel of `oid` (lib/store/tag-peel.ts), or a RemoteError when it
 * reaches no commit. `tag` is `oid` when it was a tag (the signed object fetch-revision/update-revision named).
 */
function peeledOrThrow(oid: string, r: PeelOutcome, where = ''): { commit: string; tag: string | null } {
  if (r.ok) return { commit: r.commit, tag: r.tag };
  switch (r.problem) {
    case 'missing':
      throw new RemoteError(`tag ${oid} points at ${r.at}, which was not sent${where}: the server repository is damaged`, {
        data: { sha: oid, missing: r.at },
      });
    case 'not-a-commit': {
      const what = r.at === oid ? `${oid} is a ${r.type}${where}` : `tag ${oid} points at a ${r.type}${where}`;
      throw new RemoteError(`${what}, not a commit: give a commit SHA or an annotated tag of one`, { data: { sha: oid, type: r.type } });
    }
    case 'malformed':
      throw new RemoteError(`tag ${r.at}${where} cannot be parsed (${r.cause.message}): the server repository is damaged`, {
        data: { sha: oid },
        cause: r.cause,
      });
    case 'too-deep':
      throw new RemoteError(`tag ${oid} is nested more than ${MAX_TAG_DEPTH} deep${where}: tag the commit itself`, { data: { sha: oid } });
  }
}

/** Reads an object with git (from a quarantine and the repository), or null when absent. */
async function readObjectGit(where: ObjectsEnv, oid: string): Promise<{ type: string; data: Buffer } | null> {
  const type = await objectType(where, oid);
  if (type === null) return null;
  const args = ['--git-dir', where.gitdir, 'cat-file', type, oid];
  const run = await runGit(args, { env: gitEnv(where) });
  if (run.code !== 0) throw gitFailure(args, run);
  return { type, data: Buffer.from(run.stdout, 'utf8') }; // only the ASCII headers are read
}

/** Records a fetch: the tag ref first (harmless alone), then the ref naming the fetched commit. */
export function recordRefs(gitdir: string, ref: string, commit: string, tag: string | null): void {
  if (tag !== null) recordRef(gitdir, tagRefName(commit), tag);
  recordRef(gitdir, ref, commit);
}

/** Points `ref` at `commit` (temp file, fsync, rename, fsync dir); no-op if it already does. */
function recordRef(gitdir: string, ref: string, commit: string): void {
  if (readLooseRef(gitdir, ref) === commit) return;
  writeFileAtomic(refPath(gitdir, ref), `${commit}\n`);
}

/** One fetch under way: its resolved inputs, the bytes received so far, and what to clean up. */
class FetchRun {
  readonly started = performance.now();
  readonly target: Target;
  readonly gitdir: string;
  readonly mode: FetchMode;
  /** HTTP response body bytes received so far (all requests). */
  bytes = 0;
  /** Whether `gitdir` holds a repository (false only in a dry run without one). */
  repoExists = true;
  remote: SmartHttpRemote | null = null;
  /** Directory holding the quarantine (and a scratch repository), removed at the end. */
  tmpRoot: string | null = null;

  constructor(readonly opts: FetchCommitOptions) {
    this.target = checkTarget(opts);
    this.gitdir = path.resolve(opts.gitdir);
    this.mode = opts.mode ?? 'update';
  }

  /** Reports progress with the bytes received so far. */
  progress(p: Omit<FetchProgress, 'bytes'>): void {
    this.opts.onProgress?.({ ...p, bytes: this.bytes });
  }

  /** Milliseconds since the fetch started. */
  elapsed(): number {
    return performance.now() - this.started;
  }
}

/** Step 1, before the lock: the repository, created if missing (a dry run only checks it). */
async function prepareRepo(run: FetchRun): Promise<void> {
  if (run.mode !== 'dry-run') {
    await ensureRepo(run.gitdir);
    return;
  }
  const state = dirState(run.gitdir);
  run.repoExists = state === 'repo';
  if (state === 'other') {
    throw new RepoNotFoundError(`${run.gitdir} exists but is not a git repository: move it away or choose another directory`, { data: { repo: run.gitdir } });
  }
}

/**
 * Step 2: discovers the server and resolves `want`, the object asked for: the branch's tip
 * (else the tag of that name, an annotated tag peeled after it arrives), or the SHA.
 */
async function resolveWant(run: FetchRun): Promise<string> {
  const opts = run.opts;
  run.progress({ phase: 'refs' });
  const remote = await SmartHttpRemote.discover(opts.remote, {
    timeoutMs: opts.timeoutMs,
    retries: opts.retries,
    retryDelayMs: opts.retryDelayMs,
    headers: opts.headers,
    tls: opts.tls,
    proxy: opts.proxy,
    signal: opts.signal,
    onBytes: (n) => {
      run.bytes += n;
    },
  });
  run.remote = remote;
  const target = run.target;
  if (target.kind === 'sha') return target.sha;
  const heads = `refs/heads/${target.branch}`;
  const tags = `refs/tags/${target.branch}`;
  const listed = await remote.listRefs([heads, tags]);
  const found = listed.find((r) => r.name === heads) ?? listed.find((r) => r.name === tags);
  if (found === undefined) {
    throw new RemoteError(`neither a branch nor a tag '${target.branch}' exists on ${redactUrl(opts.remote)}: check fetch-revision (or push it)`, {
      data: { branch: target.branch, remote: redactUrl(opts.remote) },
    });
  }
  return found.oid;
}

/** What the local repository offers a fetch: the commit when it is already here and complete, else `have`s. */
interface LocalSurvey {
  /** Ids our refs name (trusted as complete). */
  tips: string[];
  haves: string[];
  /** `want` peeled, when it and everything it reaches are already here. */
  present: { commit: string; tag: string | null } | null;
}

/** Steps 3-4: is the commit already here and complete? If not, the `have`s to negotiate with (none in a repair). */
async function surveyLocal(run: FetchRun, want: string): Promise<LocalSurvey> {
  if (!run.repoExists || run.mode === 'repair') return { tips: [], haves: [], present: null };
  const store = ObjectStore.open(run.gitdir);
  try {
    const tips = localTips(run.gitdir, store);
    if (store.has(want)) {
      const peeled = peeledOrThrow(
        want,
        peelTag(want, (oid) => (store.has(oid) ? store.readObject(oid) : null)),
      );
      if (await isComplete({ gitdir: run.gitdir, quarantine: null }, peeled.commit, tips)) return { tips, haves: [], present: peeled };
    }
    return { tips, haves: collectHaves(store, tips, MAX_HAVES), present: null };
  } finally {
    store.close();
  }
}

/** Step 3's answer: the ref recorded (not in a dry run), no pack requested. */
function upToDate(run: FetchRun, ref: string, present: { commit: string; tag: string | null }): FetchCommitResult {
  const { commit, tag } = present;
  if (run.mode !== 'dry-run') recordRefs(run.gitdir, ref, commit, tag);
  return {
    commit,
    tag,
    upToDate: true,
    bytes: run.bytes,
    objects: 0,
    durationMs: run.elapsed(),
    ref: run.mode === 'dry-run' ? null : ref,
    protocol: run.remote!.protocol,
  };
}

/**
 * Step 5's place: a quarantine objects directory (in the repository, so step 7 is a rename;
 * in a dry run, in the system temp directory) and the repository index-pack runs for: the
 * repository itself, or a scratch one (a repair, or a dry run without a repository).
 */
async function makeQuarantine(run: FetchRun): Promise<ObjectsEnv> {
  let indexGitdir = run.gitdir;
  let tmpRoot: string;
  if (run.mode === 'dry-run') {
    tmpRoot = run.tmpRoot = await fsp.mkdtemp(path.join(os.tmpdir(), 'gitroot-dryrun-'));
  } else {
    await fsp.mkdir(path.join(run.gitdir, FETCH_TMP_DIR), { recursive: true });
    tmpRoot = run.tmpRoot = await fsp.mkdtemp(path.join(run.gitdir, FETCH_TMP_DIR, `incoming-${process.pid}-`));
  }
  if (run.mode === 'repair' || !run.repoExists) {
    indexGitdir = path.join(tmpRoot, 'repo.git');
    await git(['init', '--bare', '--quiet', indexGitdir]);
  }
  return { gitdir: indexGitdir, quarantine: path.join(tmpRoot, 'objects') };
}

/** Step 5: the pack for `want` streamed into index-pack in the quarantine. */
function download(run: FetchRun, want: string, haves: string[], where: ObjectsEnv): Promise<ReceivedPack> {
  const remote = run.remote!;
  return receivePack(remote.fetchPack([want], haves), {
    gitdir: where.gitdir,
    quarantine: where.quarantine!,
    alternates: run.repoExists && run.mode !== 'repair' ? [path.join(run.gitdir, 'objects')] : [],
    keepMessage: `${KEEP_MARKER} ${want} pid ${process.pid}`,
    source: redactUrl(remote.baseUrl),
    signal: run.opts.signal,
    onProgress: (p) => {
      if (p.phase === 'download') run.progress({ phase: 'download', objects: p.objects, totalObjects: p.totalObjects, bytesPerSecond: p.bytesPerSecond });
    },
  });
}

/** Step 6: `want` arrived, peels to a commit, and everything that commit reaches is present. */
async function verifyReceived(run: FetchRun, want: string, where: ObjectsEnv, tips: readonly string[]): Promise<{ commit: string; tag: string | null }> {
  const remoteUrl = redactUrl(run.opts.remote);
  if ((await objectType(where, want)) === null) {
    throw new RemoteError(`${remoteUrl} did not send ${want}: it does not have that commit`, { data: { sha: want } });
  }
  const peeled = peeledOrThrow(want, await peelTagAsync(want, (oid) => readObjectGit(where, oid)), ` on ${remoteUrl}`);
  if (!(await isComplete(where, peeled.commit, tips))) {
    const args = ['--git-dir', where.gitdir, 'rev-list', '--objects', '--missing=error', '--quiet', peeled.commit];
    const detail = gitFailure(args, await runGit(args, { env: gitEnv(where) }));
    throw new RemoteError(`${remoteUrl} sent an incomplete pack for ${peeled.commit} (${detail.message}): the server repository is damaged`, {
      data: { sha: peeled.commit },
      cause: detail,
    });
  }
  return peeled;
}

/** Steps 7-8: installs the pack, records the refs (not in a repair; the pack goes again if that fails), removes the .keep. */
function installAndRecord(run: FetchRun, files: readonly string[], ref: string, peeled: { commit: string; tag: string | null }): void {
  const installed = installPack(run.gitdir, files);
  try {
    if (run.mode !== 'repair') recordRefs(run.gitdir, ref, peeled.commit, peeled.tag);
  } catch (e) {
    uninstallPack(installed);
    throw e;
  }
  const keep = installed.find((f) => f.endsWith('.keep'));
  if (keep !== undefined) unlinkSync(keep);
}

/** The error a failed fetch throws: typed ones and aborts as they are, a full disk as NoSpaceError. */
function fetchError(run: FetchRun, e: unknown): unknown {
  if (e instanceof GitrootError || run.opts.signal?.aborted) return e;
  if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
    return new NoSpaceError(`no space left on the filesystem of ${run.gitdir}: free space and fetch again`, { cause: e });
  }
  return e;
}

/** Whatever happened: closes the connection, removes the quarantine (and gitroot-tmp when empty), releases the lock. */
function finishFetch(run: FetchRun, lock: { release(): void } | null): void {
  run.remote?.close();
  if (run.tmpRoot !== null) rmSync(run.tmpRoot, { recursive: true, force: true, maxRetries: 3 });
  if (run.mode !== 'dry-run') {
    try {
      rmdirSync(path.join(run.gitdir, FETCH_TMP_DIR));
    } catch {
      /* absent, or another quarantine in it */
    }
  }
  lock?.release();
}

/**
 * Fetches a branch tip or a pinned commit from `remote` into `gitdir` (see the module
 * comment for the steps and guarantees). Errors: UsageError (bad arguments), NetworkError
 * (unreachable, timeout, not a git answer, damaged or cut-off pack), RemoteError (no such
 * repository, branch or SHA on the server), LockedError, NoSpaceError, GitCommandError.
 */
export async function fetchCommit(opts: FetchCommitOptions): Promise<FetchCommitResult> {
  const run = new FetchRun(opts);
  await prepareRepo(run);
  const lock = run.mode === 'dry-run' ? null : await acquireFetchLock(run.gitdir, { waitMs: opts.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS, signal: opts.signal });
  try {
    if (run.mode !== 'dry-run') cleanupStale(run.gitdir);
    const want = await resolveWant(run);
    const ref = fetchedRefName(run.target.kind === 'branch' ? { branch: run.target.branch } : { sha: run.target.sha });
    const local = await surveyLocal(run, want);
    if (local.present !== null) return upToDate(run, ref, local.present);

    run.progress({ phase: 'negotiate' });
    const where = await makeQuarantine(run);
    const received = await download(run, want, local.haves, where);
    run.progress({ phase: 'index', objects: received.objects, totalObjects: received.objects });
    const { commit, tag } = await verifyReceived(run, want, where, local.tips);
    const result = {
      commit,
      tag,
      upToDate: false,
      bytes: run.bytes,
      objects: received.objects,
      protocol: run.remote!.protocol,
    };
    if (run.mode === 'dry-run') return { ...result, ref: null, durationMs: run.elapsed() };

    if (opts.signal?.aborted) throw opts.signal.reason;
    installAndRecord(run, received.files, ref, { commit, tag });
    return { ...result, ref: run.mode === 'repair' ? null : ref, durationMs: run.elapsed() };
  } catch (e) {
    throw fetchError(run, e);
  } finally {
    finishFetch(run, lock);
  }
}
