/**
 * fetchChannel: brings the commit a channel names into the machine's repository, from static
 * files (docs/channel.md): a conditional GET of the signed manifest, its signature and
 * freshness, the rollout decision, then exactly the bundles the machine needs, each checked
 * against the manifest's size and SHA-256 and unbundled through `git index-pack` like a
 * smart-HTTP pack (a bundle is a header and a pack). Steps, in crash-safe order:
 *
 *   1. manifest   GET DIR/channel.manifest with If-None-Match (a 304 reuses the kept copy)
 *   2. verify     SSH signature (namespace gitroot-channel) by a key gitroot.allowed-signers lists
 *   3. fresh      the branch it publishes, not older than the newest seen, not expired
 *   4. record     D/channel.json (version, clock floor, ETag, the manifest) under the home's
 *                 lock, before anything else: a replay is refused from now on even if the
 *                 rest fails
 *   5. decide     target (the tip, or update-revision=); the rollout ramp at the signed time
 *   6. plan       the cheapest bundles from the manifest commits this repository has
 *   7. download   into D/channel-downloads/ (resumable: Range + If-Range), size and SHA-256 checked
 *   8. unbundle   each header checked against the manifest, its pack streamed into index-pack
 *                 in a quarantine (thin bundles complete from the repository and the earlier ones)
 *   9. verify     the target and everything it reaches are present
 *  10. install    packs renamed into objects/pack, the ref recorded (repo-fetch.ts's rules)
 *  11. clean      downloads removed
 * Before step 10 nothing in the repository changes. A dry run stops after step 6 and
 * reports the plan's size from the manifest, writing nothing.
 */
import { closeSync, createReadStream, mkdirSync, openSync, promises as fsp, readdirSync, readSync, rmdirSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { RemoteError, TrustError } from '../errors/errors.js';
import { withLock } from '../home/home-lock.js';
import { redactUrl } from '../http/url-redact.js';
import { ObjectStore } from '../store/object-store.js';
import { fetchedRefName } from '../store/gitroot-refs.js';
import type { AllowedSigners } from '../trust/allowed-signers.js';
import { ancestorsAmong, storeParents } from '../trust/downgrade-check.js';
import { type ManifestBundle, MANIFEST_FILE, MAX_MANIFEST_BYTES, splitManifest, verifyManifest, type VerifiedManifest } from '../channel/channel-manifest.js';
import { checkFreshness } from '../channel/channel-freshness.js';
import { decideRollout, type RolloutVerdict } from '../channel/channel-rollout.js';
import { planBundles, manifestCommits } from '../channel/bundle-plan.js';
import { MAX_BUNDLE_HEADER, parseBundleHeader } from '../channel/bundle-header.js';
import { type ChannelRecord, channelDownloadsDir, readChannelState, writeChannelState } from '../channel/channel-state.js';
import { isoSeconds } from '../channel/channel-time.js';
import { acquireFetchLock } from './fetch-lock.js';
import { DEFAULT_LOCK_WAIT_MS } from '../fsutil/process-lock.js';
import { receivePack } from './pack-receive.js';
import type { SidebandPiece } from './pkt-line.js';
import {
  FETCH_TMP_DIR,
  KEEP_MARKER,
  type ObjectsEnv,
  cleanupStale,
  ensureRepo,
  installPack,
  isComplete,
  localTips,
  recordRefs,
  uninstallPack,
} from './repo-fetch.js';
import { type DownloadReport, type SmallGet, type StaticHttpOptions, downloadResumable, getSmall, removePartial } from './static-http.js';

/** The manifest URL of a channel remote (its directory, with or without a trailing slash). */
export function manifestUrlOf(remote: string): string {
  return `${remote.replace(/\/+$/, '')}/${MANIFEST_FILE}`;
}

/** What a GET of the manifest URL found: a channel (with the answer, to reuse), or no channel there. */
export type ChannelProbe = { kind: 'channel'; got: SmallGet; url: string } | { kind: 'none'; url: string; status: number };

/**
 * Is `remote` a channel? One GET of its manifest (conditional on the kept ETag). A 404 (or
 * 410) means no: a git remote. A 304 or a 200 whose body is signed text means yes.
 */
export async function probeChannel(dir: string, remote: string, follows: string, http: StaticHttpOptions): Promise<ChannelProbe> {
  const url = manifestUrlOf(remote);
  const kept = readChannelState(dir).channels[follows];
  const got = await getSmall(url, { etag: kept?.url === url ? kept.etag : null, maxBytes: MAX_MANIFEST_BYTES }, http);
  if (got.status === 'missing') return { kind: 'none', url, status: got.code };
  if (got.status === 'ok' && splitManifest(got.body).signature === null && !got.body.subarray(0, 64).toString('utf8').trimStart().startsWith('{')) {
    return { kind: 'none', url, status: 200 };
  }
  return { kind: 'channel', got, url };
}

export interface ChannelFetchOptions {
  /** The gitroot home (D/channel.json, downloads, the lock). */
  dir: string;
  gitdir: string;
  /** The channel's directory URL (http(s):// or file://). */
  remote: string;
  /** The branch this machine follows (fetch-revision): the manifest must publish it. */
  follows: string;
  /** update-revision=: fetch this release of the channel instead of its tip. */
  pinSha: string | null;
  signers: AllowedSigners;
  /** The machine's id for the rollout bucket (lib/http/delivery-identity.ts fleetIdOf). */
  fleetId: string;
  /** Commits the machine runs or has staged (booted, good, pending). */
  held: readonly string[];
  mode: 'update' | 'dry-run';
  http: StaticHttpOptions & { rateLimit?: number | null };
  /** The probe's answer, so the manifest is not asked for twice. */
  probe?: Extract<ChannelProbe, { kind: 'channel' }>;
  lockWaitMs?: number;
  onProgress?: (p: { phase: 'refs' | 'download' | 'index'; bytes: number; objects?: number; totalObjects?: number; bytesPerSecond?: number }) => void;
  /** The local clock (ms); default Date.now(). */
  nowMs?: number;
}

export interface ChannelFetchResult {
  outcome: 'fetched' | 'up-to-date' | 'waiting' | 'dry-run';
  /** The commit the channel names for this machine (the tip or the pin). */
  commit: string;
  /** The tip comes with update-revision semantics (a pinned manifest, or update-revision=). */
  pin: boolean;
  /** Response body bytes received (manifest and bundles). */
  bytes: number;
  /** Objects in the received packs. */
  objects: number;
  durationMs: number;
  ref: string | null;
  manifest: { url: string; version: number; created: string; expires: string; tip: string; pin: boolean; notModified: boolean; keyFingerprint: string };
  rollout: RolloutVerdict;
  /** The bundles planned (all of them in a dry run) and what downloading them took. */
  download: {
    bytes: number;
    bundles: { id: string; kind: string; size: number; report?: DownloadReport }[];
    received: number;
    requests: number;
    interruptions: number;
    discarded: number;
  };
}

/** Step 1: the manifest text (from the answer, or the kept copy for a 304). */
async function readManifest(
  o: ChannelFetchOptions,
  kept: ChannelRecord | undefined,
  count: (n: number) => void,
): Promise<{ text: Buffer; url: string; etag: string | null; notModified: boolean }> {
  const url = manifestUrlOf(o.remote);
  const got =
    o.probe?.got ?? (await getSmall(url, { etag: kept?.url === url ? kept.etag : null, maxBytes: MAX_MANIFEST_BYTES }, { ...o.http, onBytes: count }));
  if (got.status === 'missing') {
    throw new RemoteError(
      `there is no channel manifest at ${redactUrl(url)} (HTTP ${got.code}): check gitroot.remote, or publish the channel with 'gitroot publish'`,
      { data: { url: redactUrl(url) } },
    );
  }
  if (got.status === 'not-modified') {
    if (kept === undefined) throw new RemoteError(`${redactUrl(url)} answered 304 Not Modified to a request without a validator: the server is broken`);
    return { text: Buffer.from(kept.manifest, 'latin1'), url, etag: kept.etag, notModified: true };
  }
  if (o.probe !== undefined) count(got.body.length);
  return { text: got.body, url, etag: got.etag, notModified: false };
}

/** Steps 2-4: signature, freshness, then the record (not in a dry run). */
async function acceptManifest(
  o: ChannelFetchOptions,
  m: { text: Buffer; url: string; etag: string | null },
  kept: ChannelRecord | undefined,
  nowMs: number,
): Promise<VerifiedManifest> {
  const shown = redactUrl(m.url);
  const v = verifyManifest(m.text, o.signers, shown);
  const payloadSha256 = createHash('sha256').update(splitManifest(m.text).payload).digest('hex');
  const seen = kept === undefined ? null : { version: kept.version, payloadSha256: kept.payloadSha256, floorMs: Date.parse(kept.floor) };
  const fresh = checkFreshness({
    channel: v.manifest.channel,
    version: v.manifest.version,
    payloadSha256,
    createdMs: v.createdMs,
    expiresMs: v.expiresMs,
    follows: o.follows,
    seen,
    nowMs,
  });
  if (!fresh.ok) {
    throw new TrustError(`refusing channel manifest ${shown} (version ${v.manifest.version}): ${fresh.reason}`, {
      data: { why: fresh.why, url: shown, version: v.manifest.version, seenVersion: kept?.version ?? null, expires: v.manifest.expires },
    });
  }
  if (o.mode !== 'dry-run') {
    await withLock(o.dir, { waitMs: o.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS, command: 'gitroot fetch' }, (lock) => {
      const state = readChannelState(o.dir);
      const prev = state.channels[o.follows];
      // Re-checked under the lock: another fetch may have accepted a newer one meanwhile.
      if (prev !== undefined && prev.version > v.manifest.version) {
        throw new TrustError(`refusing channel manifest ${shown} (version ${v.manifest.version}): version ${prev.version} was accepted meanwhile`, {
          data: { why: 'rollback' },
        });
      }
      state.channels[o.follows] = {
        url: m.url,
        version: v.manifest.version,
        payloadSha256,
        floor: isoSeconds(fresh.floorMs),
        etag: m.etag,
        manifest: m.text.toString('latin1'),
        checkedAt: isoSeconds(nowMs),
        rollout: prev?.rollout ?? null,
      };
      writeChannelState(lock, o.dir, state);
    });
  }
  return v;
}

/** Records the rollout decision for `gitroot status` (not in a dry run). */
async function recordRollout(o: ChannelFetchOptions, tip: string, r: RolloutVerdict): Promise<void> {
  if (o.mode === 'dry-run') return;
  await withLock(o.dir, { waitMs: o.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS, command: 'gitroot fetch' }, (lock) => {
    const state = readChannelState(o.dir);
    const rec = state.channels[o.follows];
    if (rec === undefined) return;
    rec.rollout = { tip, take: r.take, machinePercent: r.machinePercent, rampPercent: r.rampPercent, reason: r.reason };
    writeChannelState(lock, o.dir, state);
  });
}

/** Which manifest commits this repository has, complete (reachable from its refs). */
function presentCommits(gitdir: string, bundles: readonly ManifestBundle[]): { has: Set<string>; tips: string[] } {
  let store: ObjectStore;
  try {
    store = ObjectStore.open(gitdir);
  } catch {
    return { has: new Set(), tips: [] };
  }
  try {
    const tips = localTips(gitdir, store);
    const targets = new Set(manifestCommits(bundles).filter((c) => store.has(c)));
    const has = new Set<string>();
    const parents = storeParents(store);
    for (const tip of tips) for (const c of ancestorsAmong(tip, targets, parents).found) has.add(c);
    return { has, tips };
  } finally {
    store.close();
  }
}

/** The header of a downloaded bundle, checked against its manifest entry. */
function checkedHeader(file: string, b: ManifestBundle, shown: string) {
  const fd = openSync(file, 'r');
  const head = Buffer.alloc(MAX_BUNDLE_HEADER);
  let n: number;
  try {
    n = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const h = parseBundleHeader(head.subarray(0, n));
  const bad = (why: string) =>
    new RemoteError(`bundle ${b.id} from ${shown} is not what the manifest says: ${why}; the publisher must publish it again`, { data: { bundle: b.id } });
  if (typeof h === 'string') throw bad(h);
  if (h.refs.length !== 1 || h.refs[0]!.oid !== b.tip) throw bad(`it brings ${h.refs.map((r) => r.oid).join(', ')}, not ${b.tip}`);
  if ([...h.prerequisites].sort().join() !== [...b.prerequisites].sort().join()) throw bad('its prerequisites differ');
  return h;
}

async function* packOf(file: string, offset: number): AsyncGenerator<SidebandPiece[]> {
  for await (const chunk of createReadStream(file, { start: offset, highWaterMark: 256 * 1024 })) yield [{ band: 1, data: chunk as Buffer, packetEnd: true }];
}

/** Fetches from a channel (see the module comment). Throws typed one-line errors. */
export async function fetchChannel(o: ChannelFetchOptions): Promise<ChannelFetchResult> {
  const started = performance.now();
  const nowMs = o.nowMs ?? Date.now();
  const meter = { bytes: 0 };
  const count = (n: number) => {
    meter.bytes += n;
  };
  o.onProgress?.({ phase: 'refs', bytes: meter.bytes });
  const kept = readChannelState(o.dir).channels[o.follows];
  const m = await readManifest(o, kept, count);
  const v = await acceptManifest(o, m, kept, nowMs);
  const shown = redactUrl(o.remote);
  const { target, pin, rollout } = await decideTarget(o, v, shown);
  const base = { commit: target, pin, objects: 0, manifest: manifestSummary(m, v), rollout };
  const done = (r: Pick<ChannelFetchResult, 'outcome' | 'ref' | 'download'> & { objects?: number }): ChannelFetchResult => ({
    ...base,
    ...r,
    bytes: meter.bytes,
    durationMs: performance.now() - started,
  });
  if (!rollout.take) return done({ outcome: 'waiting', ref: null, download: emptyDownload() });

  // Step 6: the plan.
  const plan = planBundles(v.manifest.bundles, presentCommits(o.gitdir, v.manifest.bundles).has, target);
  if (plan.action === 'unreachable') throw new RemoteError(`channel ${shown}: ${plan.reason}`, { data: { url: shown } });
  const download = { ...emptyDownload(), bytes: plan.bytes, bundles: plan.bundles.map((b) => ({ id: b.id, kind: b.kind, size: b.size })) };
  if (o.mode === 'dry-run') return done({ outcome: plan.action === 'up-to-date' ? 'up-to-date' : 'dry-run', ref: null, download });

  const ref = fetchedRefName(o.pinSha !== null ? { sha: o.pinSha } : { branch: o.follows });
  await ensureRepo(o.gitdir);
  const lock = await acquireFetchLock(o.gitdir, { waitMs: o.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS, signal: o.http.signal });
  let tmpRoot: string | null = null;
  try {
    cleanupStale(o.gitdir);
    if (plan.action === 'up-to-date') {
      recordRefs(o.gitdir, ref, target, null);
      return done({ outcome: 'up-to-date', ref, download });
    }
    const files = await downloadBundles(o, plan.bundles, download, meter, count);
    await fsp.mkdir(path.join(o.gitdir, FETCH_TMP_DIR), { recursive: true });
    tmpRoot = await fsp.mkdtemp(path.join(o.gitdir, FETCH_TMP_DIR, `incoming-${process.pid}-`));
    const where: ObjectsEnv = { gitdir: o.gitdir, quarantine: path.join(tmpRoot, 'objects') };
    const received = await unbundle(o, plan.bundles, files, where, shown, meter);
    await installFetched(o, where, received.packFiles, ref, target, shown);
    return done({ outcome: 'fetched', objects: received.objects, ref, download });
  } finally {
    if (tmpRoot !== null) rmSync(tmpRoot, { recursive: true, force: true, maxRetries: 3 });
    try {
      rmdirSync(path.join(o.gitdir, FETCH_TMP_DIR));
    } catch {
      /* absent, or another quarantine in it */
    }
    lock.release();
  }
}

/** Step 5: the commit to fetch (the tip, or update-revision= if the channel lists it) and the rollout verdict for it, recorded. */
async function decideTarget(o: ChannelFetchOptions, v: VerifiedManifest, shown: string): Promise<{ target: string; pin: boolean; rollout: RolloutVerdict }> {
  const man = v.manifest;
  const target = o.pinSha ?? man.tip;
  const pin = o.pinSha !== null || man.pin;
  if (o.pinSha !== null && !man.bundles.some((b) => b.tip === o.pinSha) && !o.held.includes(o.pinSha)) {
    throw new RemoteError(
      `update-revision=${o.pinSha} is not a release the channel at ${shown} lists: pin one of its releases, or publish it (gitroot publish --pin)`,
      { data: { sha: o.pinSha } },
    );
  }
  const rollout = decideRollout({
    ramp: o.pinSha !== null ? null : man.rollout,
    pin,
    tip: target,
    held: o.held.includes(target),
    signedMs: v.createdMs,
    fleetId: o.fleetId,
    channel: man.channel,
  });
  await recordRollout(o, target, rollout);
  return { target, pin, rollout };
}

/** What the result says about the manifest. */
function manifestSummary(m: { url: string; notModified: boolean }, v: VerifiedManifest): ChannelFetchResult['manifest'] {
  const man = v.manifest;
  return {
    url: redactUrl(m.url),
    version: man.version,
    created: man.created,
    expires: man.expires,
    tip: man.tip,
    pin: man.pin,
    notModified: m.notModified,
    keyFingerprint: v.keyFingerprint,
  };
}

function emptyDownload(): ChannelFetchResult['download'] {
  return { bytes: 0, bundles: [], received: 0, requests: 0, interruptions: 0, discarded: 0 };
}

/** Step 7: each planned bundle into D/channel-downloads/ (resumable), its report added to `download`; the files in plan order. */
async function downloadBundles(
  o: ChannelFetchOptions,
  bundles: readonly ManifestBundle[],
  download: ChannelFetchResult['download'],
  meter: { bytes: number },
  count: (n: number) => void,
): Promise<string[]> {
  const downloads = channelDownloadsDir(o.dir);
  mkdirSync(downloads, { recursive: true });
  const files: string[] = [];
  for (const [i, b] of bundles.entries()) {
    const file = path.join(downloads, `${b.id}.bundle`);
    const url = o.remote.replace(/\/+$/, '') + '/' + b.uri;
    const t0 = Date.now();
    let got = 0;
    const onBytes = (n: number) => {
      count(n);
      got += n;
      const bytesPerSecond = got / Math.max(0.001, (Date.now() - t0) / 1000);
      o.onProgress?.({ phase: 'download', bytes: meter.bytes, objects: i, totalObjects: bundles.length, bytesPerSecond });
    };
    const report = await downloadResumable(url, file, { size: b.size, sha256: b.sha256 }, { ...o.http, onBytes });
    download.bundles[i]!.report = report;
    download.received += report.received;
    download.requests += report.requests;
    download.interruptions += report.interruptions;
    download.discarded += report.discarded;
    files.push(file);
  }
  return files;
}

/** Step 8: each bundle's header checked against the manifest, its pack indexed into the quarantine. */
async function unbundle(
  o: ChannelFetchOptions,
  bundles: readonly ManifestBundle[],
  files: string[],
  where: ObjectsEnv,
  shown: string,
  meter: { bytes: number },
): Promise<{ objects: number; packFiles: string[] }> {
  const packFiles: string[] = [];
  let objects = 0;
  for (const [i, b] of bundles.entries()) {
    const h = checkedHeader(files[i]!, b, shown);
    o.onProgress?.({ phase: 'index', bytes: meter.bytes, objects: i, totalObjects: bundles.length });
    const received = await receivePack(packOf(files[i]!, h.packOffset), {
      gitdir: o.gitdir,
      quarantine: where.quarantine!,
      alternates: [path.join(o.gitdir, 'objects')],
      keepMessage: `${KEEP_MARKER} ${b.tip} pid ${process.pid}`,
      source: `bundle ${b.id} from ${shown}`,
      signal: o.http.signal,
    });
    objects += received.objects;
    packFiles.push(...received.files.filter((f) => !packFiles.includes(f)));
  }
  return { objects, packFiles };
}

/** Steps 9-11: the target complete, the packs installed and the ref recorded (or nothing installed), the downloads dropped. */
async function installFetched(o: ChannelFetchOptions, where: ObjectsEnv, packFiles: string[], ref: string, target: string, shown: string): Promise<void> {
  const { tips } = presentCommits(o.gitdir, []);
  if (!(await isComplete(where, target, tips))) {
    throw new RemoteError(`the bundles of ${shown} do not bring everything ${target} needs: the channel is damaged; publish it again`, {
      data: { sha: target },
    });
  }
  const installed = installPack(o.gitdir, packFiles);
  try {
    recordRefs(o.gitdir, ref, target, null);
  } catch (e) {
    uninstallPack(installed);
    throw e;
  }
  for (const f of installed.filter((x) => x.endsWith('.keep'))) rmSync(f, { force: true });
  // The downloads are in the repository now; drop them and any stale partial.
  const downloads = channelDownloadsDir(o.dir);
  for (const name of readdirSync(downloads)) removePartial(path.join(downloads, name.replace(/\.json$/, '')));
}
