/**
 * `gitroot publish`: writes a channel, static files any web server, CDN, object store or USB
 * stick serves as they are (docs/channel.md):
 *
 *   DIR/channel.manifest     the signed manifest machines poll (lib/channel/channel-manifest.ts)
 *   DIR/bundle-list          git's bundle-uri list of the same bundles (lib/channel/bundle-list.ts)
 *   DIR/bundles/*.bundle     git bundles (`git bundle verify` reads them): base, roll-ups, incrementals
 *   DIR/publish-log.json     the publisher's own record (releases, every bundle file); machines never read it
 *
 * Steps, in crash-safe order (a kill at any point leaves the directory serving the previous
 * manifest, whose files are all still there): lock, read the log, resolve the tip, plan
 * (publish-plan.ts), make the missing bundles (temp file, fsync, rename to a name holding
 * their SHA-256: a name is never reused for other bytes), write the log, the bundle list,
 * then the manifest (each atomically), then delete retired files past their grace period.
 * Nothing a machine may be downloading is rewritten.
 *
 * Bundles are made by `git pack-objects --revs --thin --delta-base-offset` (what `git bundle
 * create` runs) with one thread and no reuse of stored objects or deltas (all recompressed, deltas searched again) and no bitmap (which changes the object order), so the same commits give the same bytes
 * whatever the repository's own packing (the determinism git allows: same git version).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, GitCommandError, RevisionNotFoundError, UsageError } from '../errors/errors.js';
import { fsyncDir, writeFileAtomic, writeJsonAtomic } from '../fsutil/atomic-write.js';
import { acquireLockFile, releaseLock } from '../fsutil/process-lock.js';
import { gitSpawnFailure } from '../git/git-exec.js';
import { type SigningKey, parseOpenSshPrivateKey } from '../trust/ssh-signature.js';
import { BUNDLE_LIST_FILE, creationToken, renderBundleList } from '../channel/bundle-list.js';
import { renderBundleHeader } from '../channel/bundle-header.js';
import { type ChannelManifest, MANIFEST_FILE, type RolloutRamp, makeManifest, parseManifestUnverified, signManifest } from '../channel/channel-manifest.js';
import { isoSeconds } from '../channel/channel-time.js';
import { branchProblem } from '../store/ref-names.js';
import {
  type BundleSpec,
  DEFAULT_PUBLISH_OPTIONS,
  type PublishedBundle,
  type PublishOptions,
  layoutBundles,
  nextChain,
  reconcileBundles,
} from './publish-plan.js';

export const PUBLISH_LOG_FILE = 'publish-log.json';
export const BUNDLES_DIR = 'bundles';
const LOG_FORMAT = 'gitroot-publish-log 1';
const LOCK_FILE = '.publish.lock';

/** The publisher's record, DIR/publish-log.json. */
export interface PublishLog {
  format: typeof LOG_FORMAT;
  channel: string;
  /** The last manifest version written. */
  version: number;
  /** Published tips, oldest first (publish-plan.ts's chain). */
  chain: string[];
  /** Whether the manifest pins its tip (a halt), and since when. */
  pinned: { tip: string; since: string } | null;
  /** The ramp of the chain's last release, kept when the manifest is only signed again. */
  rollout: { tip: string; ramp: RolloutRamp } | null;
  /** Every bundle file made, listed or retired (not yet deleted). */
  bundles: PublishedBundle[];
  /** The serial the next bundle gets (its creationToken within its tier). */
  nextSerial: number;
}

export interface PublishRunOptions extends Partial<PublishOptions> {
  repo: string;
  out: string;
  /** The branch published (the channel's name); default master. */
  branch?: string;
  signKey: string;
  /** Seconds the manifest is valid (default 7 days). */
  expiresSeconds?: number;
  rollout?: { startMs: number; durationSeconds: number; fromPercent: number };
  /** Publish this revision with update-revision semantics (a halt, or a deliberate move). */
  pin?: string;
  /** Lift a pin: publish the branch tip again. */
  unpin?: boolean;
  /** Seconds a retired bundle stays (default 7 days). */
  graceSeconds?: number;
  /** The signed time (default now). */
  nowMs?: number;
  /**
   * Absolute URL the bundle list's URIs start with (default: relative to the list, as git's
   * design says). git 2.39 resolves relative bundle URIs against its working directory, not
   * the list: give the channel's URL for such clients, or to serve bundles from elsewhere.
   */
  bundleUriBase?: string;
  onProgress?: (p: { phase: 'bundle'; done: number; total: number; bytes: number }) => void;
}

export interface PublishResult {
  channel: string;
  version: number;
  tip: string;
  pin: boolean;
  release: number;
  newRelease: boolean;
  note: string;
  created: string;
  expires: string;
  rollout: RolloutRamp | null;
  manifest: string;
  bundleList: string;
  bundles: { id: string; kind: string; uri: string; size: number; sha256: string; made: boolean }[];
  retired: string[];
  deleted: string[];
}

const DAY = 86400;

function gitSync(repo: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('git', ['--git-dir', repo, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw gitSpawnFailure(r.error);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function resolveCommit(repo: string, rev: string, what: string, shown = rev): string {
  const r = gitSync(repo, ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`]);
  if (r.code !== 0)
    throw new RevisionNotFoundError(`${what} '${shown}' is not a commit in ${repo}: check the name (git -C ${repo} log)`, { data: { rev, repo } });
  return r.stdout.trim();
}

function readLog(file: string, channel: string): PublishLog | null {
  if (!existsSync(file)) return null;
  let log: PublishLog;
  try {
    log = JSON.parse(readFileSync(file, 'utf8')) as PublishLog;
  } catch (e) {
    throw new ConfigError(`${file} is not a publish log (${(e as Error).message}): restore it from a backup, or publish into a new directory`, { cause: e });
  }
  if (log.format !== LOG_FORMAT || !Array.isArray(log.chain) || !Array.isArray(log.bundles)) {
    throw new ConfigError(`${file} is not a publish log of this gitroot (format ${JSON.stringify(log.format)}): publish into a new directory`);
  }
  if (log.channel !== channel) {
    throw new UsageError(`${path.dirname(file)} publishes branch '${log.channel}', not '${channel}': one directory per channel (use another --out)`);
  }
  return log;
}

/** Writes one bundle: header + pack from pack-objects, into a temp file; returns its size and SHA-256. */
async function makeBundle(repo: string, spec: BundleSpec, ref: string, tmp: string): Promise<{ size: number; sha256: string }> {
  const fd = openSync(tmp, 'wx', 0o644);
  const hash = createHash('sha256');
  let size = 0;
  const write = (buf: Buffer) => {
    hash.update(buf);
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
    size += buf.length;
  };
  try {
    write(Buffer.from(renderBundleHeader(spec.prerequisites, spec.tip, ref)));
    const args = [
      '--git-dir',
      repo,
      '-c',
      'pack.threads=1',
      '-c',
      'pack.useBitmaps=false',
      'pack-objects',
      '--revs',
      '--stdout',
      '--thin',
      '--delta-base-offset',
      '--no-reuse-object',
      '-q',
    ];
    const child = spawn('git', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-4096);
    });
    const closed = new Promise<number | null>((resolve, reject) => {
      child.on('error', (e) => reject(gitSpawnFailure(e)));
      child.on('close', resolve);
    });
    child.stdin.end([spec.tip, ...spec.prerequisites.map((p) => `^${p}`)].join('\n') + '\n');
    for await (const chunk of child.stdout) write(chunk as Buffer);
    const code = await closed;
    if (code !== 0)
      throw new GitCommandError(
        `git pack-objects failed (exit ${code}) making the ${spec.kind} bundle of ${spec.tip}: ${stderr.trim().split('\n').pop() ?? ''}`,
      );
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  return { size, sha256: hash.digest('hex') };
}

/** Publishes the branch tip (or the pinned revision) into `out` (see the module comment). */
export async function publishChannel(opts: PublishRunOptions): Promise<PublishResult> {
  const branch = opts.branch ?? 'master';
  const why = branchProblem(branch);
  if (why !== null) throw new UsageError(`--branch '${branch}' is not a branch name (${why})`);
  const R = opts.rollupEvery ?? DEFAULT_PUBLISH_OPTIONS.rollupEvery;
  const K = opts.rollupsKept ?? DEFAULT_PUBLISH_OPTIONS.rollupsKept;
  if (!Number.isInteger(R) || R < 2 || !Number.isInteger(K) || K < 2) throw new UsageError('--rollup-every and --rollups-kept need whole numbers >= 2');
  if (opts.pin !== undefined && opts.unpin) throw new UsageError('give --pin or --unpin, not both');
  let key: SigningKey;
  try {
    key = parseOpenSshPrivateKey(readFileSync(opts.signKey, 'utf8'));
  } catch (e) {
    throw new UsageError(`--sign-key ${opts.signKey} cannot be used: ${(e as Error).message}`, { cause: e });
  }
  if (gitSync(opts.repo, ['rev-parse', '--git-dir']).code !== 0) {
    throw new UsageError(`--repo ${opts.repo} is not a git repository`, { data: { repo: opts.repo } });
  }
  const out = path.resolve(opts.out);
  mkdirSync(path.join(out, BUNDLES_DIR), { recursive: true });
  const lock = await acquireLockFile(path.join(out, LOCK_FILE), { waitMs: 0, command: 'gitroot publish' });
  try {
    return await publishLocked(opts, out, branch, R, K, key);
  } finally {
    releaseLock(lock);
  }
}

async function publishLocked(opts: PublishRunOptions, out: string, branch: string, R: number, K: number, key: SigningKey): Promise<PublishResult> {
  const nowMs = opts.nowMs ?? Date.now();
  const logFile = path.join(out, PUBLISH_LOG_FILE);
  const log = readLog(logFile, branch);
  const manifestFile = path.join(out, MANIFEST_FILE);
  const lastVersion = Math.max(log?.version ?? 0, existsSync(manifestFile) ? parseManifestUnverified(readFileSync(manifestFile), manifestFile).version : 0);

  // Resolve and place the tip.
  const tip = opts.pin !== undefined ? resolveCommit(opts.repo, opts.pin, '--pin') : resolveCommit(opts.repo, `refs/heads/${branch}`, 'branch', branch);
  const isAncestor = (a: string, b: string) => a === b || gitSync(opts.repo, ['merge-base', '--is-ancestor', a, b]).code === 0;
  const step = nextChain({ chain: log?.chain ?? [], tip, pin: opts.pin !== undefined, unpin: opts.unpin === true, pinnedNow: log?.pinned != null, isAncestor });
  if (!step.ok) throw new UsageError(`publish: ${step.reason}`);
  const chain = step.chain;

  // Plan the bundles.
  const wanted = layoutBundles(chain, { rollupEvery: R, rollupsKept: K });
  const graceMs = (opts.graceSeconds ?? 7 * DAY) * 1000;
  const rec = reconcileBundles(log?.bundles ?? [], wanted, nowMs, graceMs);

  // Make the missing bundles.
  let serial = log?.nextSerial ?? 1;
  const made: PublishedBundle[] = [];
  const bundlesDir = path.join(out, BUNDLES_DIR);
  let bytes = 0;
  for (const [i, spec] of rec.create.entries()) {
    const tmp = path.join(bundlesDir, `.incoming-${process.pid}-${i}.bundle`);
    const { size, sha256 } = await makeBundle(opts.repo, spec, `refs/heads/${branch}`, tmp);
    const id = `${spec.kind}-${String(spec.release).padStart(5, '0')}-${spec.tip.slice(0, 12)}-${sha256.slice(0, 16)}`;
    const uri = `${BUNDLES_DIR}/${id}.bundle`;
    const dest = path.join(out, uri);
    if (existsSync(dest))
      rmSync(tmp); // the same bytes are already there (same name: same hash)
    else renameSync(tmp, dest);
    bytes += size;
    made.push({ ...spec, id, uri, size, sha256, creationToken: creationToken(spec.kind, serial++), createdAt: isoSeconds(nowMs), retiredAt: null });
    opts.onProgress?.({ phase: 'bundle', done: i + 1, total: rec.create.length, bytes });
  }
  if (made.length > 0) fsyncDir(bundlesDir);
  const listed = wanted.map(
    (w) =>
      rec.reuse.find((b) => b.tip === w.tip && b.kind === w.kind && b.prerequisites.join() === w.prerequisites.join()) ??
      made.find((b) => b.tip === w.tip && b.kind === w.kind && b.prerequisites.join() === w.prerequisites.join())!,
  );
  const retired = rec.retire.map((b) => ({ ...b, retiredAt: isoSeconds(nowMs) }));

  // The ramp: given now, or kept from the last publish of the same tip; a pin applies at once.
  let ramp: RolloutRamp | null = null;
  if (opts.rollout !== undefined) {
    ramp = { start: isoSeconds(opts.rollout.startMs), durationSeconds: opts.rollout.durationSeconds, fromPercent: opts.rollout.fromPercent };
  } else if (!step.newRelease && log?.rollout?.tip === tip && !step.pinned) {
    ramp = log.rollout.ramp;
  }
  const version = lastVersion + 1;
  const expiresMs = nowMs + (opts.expiresSeconds ?? 7 * DAY) * 1000;
  const manifest: ChannelManifest = makeManifest({
    channel: branch,
    version,
    tip,
    pin: step.pinned,
    createdMs: nowMs,
    expiresMs,
    rollout: ramp,
    bundles: listed.map((b) => ({
      id: b.id,
      uri: b.uri,
      kind: b.kind,
      tip: b.tip,
      prerequisites: b.prerequisites,
      size: b.size,
      sha256: b.sha256,
      creationToken: b.creationToken,
    })),
  });

  // Record, then the list, then the manifest: a manifest never names a file that is not there.
  const newLog: PublishLog = {
    format: LOG_FORMAT,
    channel: branch,
    version,
    chain,
    pinned: step.pinned ? { tip, since: log?.pinned?.tip === tip ? log.pinned.since : isoSeconds(nowMs) } : null,
    rollout: ramp === null ? null : { tip, ramp },
    bundles: [...listed, ...retired, ...rec.keepRetired],
    nextSerial: serial,
  };
  writeJsonAtomic(logFile, newLog);
  const base = opts.bundleUriBase === undefined ? '' : opts.bundleUriBase.replace(/\/*$/, '/');
  writeFileAtomic(path.join(out, BUNDLE_LIST_FILE), renderBundleList(manifest.bundles.map((b) => ({ ...b, uri: base + b.uri }))));
  // Web servers derive the manifest's ETag from its mtime in whole seconds and its size (nginx:
  // "mtime-size"), so a manifest of the same size published within the same second as the last
  // one would be answered 304 to machines holding the last one: its mtime is the next second then.
  const lastMtimeSec = existsSync(manifestFile) ? Math.floor(statSync(manifestFile).mtimeMs / 1000) : undefined;
  writeFileAtomic(manifestFile, signManifest(manifest, key), 0o644, { mtimeAtLeastSec: lastMtimeSec === undefined ? undefined : lastMtimeSec + 1 });

  // Retired files past their grace period: no listed manifest has named them for that long.
  for (const b of rec.remove) rmSync(path.join(out, b.uri), { force: true });
  if (rec.remove.length > 0) fsyncDir(bundlesDir);

  return {
    channel: branch,
    version,
    tip,
    pin: step.pinned,
    release: chain.length,
    newRelease: step.newRelease,
    note: step.note,
    created: manifest.created,
    expires: manifest.expires,
    rollout: ramp,
    manifest: manifestFile,
    bundleList: path.join(out, BUNDLE_LIST_FILE),
    bundles: listed.map((b) => ({ id: b.id, kind: b.kind, uri: b.uri, size: b.size, sha256: b.sha256, made: made.includes(b) })),
    retired: retired.map((b) => b.id),
    deleted: rec.remove.map((b) => b.id),
  };
}
