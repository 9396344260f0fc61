/**
 * The channel manifest: the one small file a machine polls (`DIR/channel.manifest`). It says
 * which commit the channel's machines run (`tip`), which bundle files bring it and how big
 * they are (with their SHA-256), a version that only grows, when it was signed and when it
 * expires, and the rollout ramp. It is text: a JSON object, then an armored SSH signature
 * (SSHSIG, namespace `gitroot-channel`) over exactly the bytes before the signature, so stock
 * tools can check it:
 *
 *   sed '/^-----BEGIN SSH SIGNATURE-----$/,$d' channel.manifest > payload
 *   sed -n '/^-----BEGIN SSH SIGNATURE-----$/,$p' channel.manifest > payload.sig
 *   ssh-keygen -Y verify -f allowed-signers -I releases@example.com -n gitroot-channel -s payload.sig < payload
 *
 * One file, replaced by rename, so a reader never sees a body with another body's signature.
 * Parsing is strict and pure; verification uses lib/trust (node:crypto) against
 * gitroot.allowed-signers, whose line for the key must allow the namespace.
 */
import { TrustError } from '../errors/errors.js';
import type { AllowedSigners } from '../trust/allowed-signers.js';
import { judgeSignature } from '../trust/revision-trust.js';
import { type SigningKey, signSsh } from '../trust/ssh-signature.js';
import { isOidHex } from '../store/object-id.js';
import { branchProblem } from '../store/ref-names.js';
import { isoSeconds, parseIsoTime } from './channel-time.js';

/** The SSH signature namespace of channel manifests (never `git`: a commit signature cannot pass for a manifest). */
export const CHANNEL_NAMESPACE = 'gitroot-channel';
/** The manifest's file name inside a published directory. */
export const MANIFEST_FILE = 'channel.manifest';
/** The value of `format`: a machine refuses a manifest of another format (made by a newer publisher). */
export const MANIFEST_FORMAT = 'gitroot-channel 1';
/** Largest manifest a machine reads (it is held in memory and in D/channel.json). */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

const ARMOR_BEGIN = '-----BEGIN SSH SIGNATURE-----';

export type BundleKind = 'base' | 'rollup' | 'incremental' | 'pin';

/** One bundle file of the channel. */
export interface ManifestBundle {
  /** Unique within the channel; also the bundle-list id. */
  id: string;
  /** Path relative to the channel directory (no scheme, no `..`, no leading `/`). */
  uri: string;
  kind: BundleKind;
  /** The commit the bundle brings (its one ref). */
  tip: string;
  /** Commits the receiver must already have (ancestors of `tip`); none for a full bundle. */
  prerequisites: string[];
  size: number;
  /** SHA-256 of the whole file, lower-case hex. */
  sha256: string;
  /** git's bundle.<id>.creationToken (bundle-list.ts). */
  creationToken: number;
}

/** A rollout ramp: from `fromPercent` at `start` linearly to 100% at start + durationSeconds. */
export interface RolloutRamp {
  start: string;
  durationSeconds: number;
  fromPercent: number;
}

/** The signed content of a manifest. */
export interface ChannelManifest {
  format: typeof MANIFEST_FORMAT;
  /** The branch published: a machine follows the channel whose name is its fetch-revision. */
  channel: string;
  /** Grows with every manifest of the channel; a machine refuses a lower one than it has seen. */
  version: number;
  /** The commit the channel's machines should run. */
  tip: string;
  /** The tip is pinned (a halt or deliberate move): machines treat it like update-revision=, going back if needed. */
  pin: boolean;
  /** When it was signed (ISO 8601 UTC): the machines' clock for the rollout and their time floor. */
  created: string;
  /** After this, machines refuse it (a publisher that stopped signing, or a replay: freeze risk). */
  expires: string;
  rollout: RolloutRamp | null;
  bundles: ManifestBundle[];
}

/** A verified manifest: its content, the signed bytes' SHA-256 and who signed it. */
export interface VerifiedManifest {
  manifest: ChannelManifest;
  /** Milliseconds since the epoch of `created` and `expires`. */
  createdMs: number;
  expiresMs: number;
  keyFingerprint: string;
  principals: string[];
}

/** Why a manifest cannot be read (a phrase), thrown as ManifestFormatProblem by parsePayload. */
class Problem extends Error {}

function fail(why: string): never {
  throw new Problem(why);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nat = (v: unknown, what: string): number => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : fail(`${what} is not a whole number >= 0`));
const sha = (v: unknown, what: string): string =>
  typeof v === 'string' && isOidHex(v) && v === v.toLowerCase() ? v : fail(`${what} is not a 40-hex commit id`);
const time = (v: unknown, what: string): string => (typeof v === 'string' && parseIsoTime(v) !== null ? v : fail(`${what} is not an ISO 8601 time`));

/** Whether `uri` is a safe path inside the channel directory. */
export function isChannelPath(uri: string): boolean {
  if (uri === '' || uri.startsWith('/') || uri.includes('\\') || /^[a-z][a-z0-9+.-]*:/i.test(uri) || /[?#%\s]/.test(uri)) return false;
  return uri.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

function parseBundle(v: unknown, i: number): ManifestBundle {
  const at = `bundles[${i}]`;
  if (!isObj(v)) fail(`${at} is not an object`);
  const id = typeof v.id === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(v.id) ? v.id : fail(`${at}.id is not a plain name`);
  const uri = typeof v.uri === 'string' && isChannelPath(v.uri) ? v.uri : fail(`${at}.uri is not a relative path inside the channel`);
  const kind = v.kind === 'base' || v.kind === 'rollup' || v.kind === 'incremental' || v.kind === 'pin' ? v.kind : fail(`${at}.kind is unknown`);
  if (!Array.isArray(v.prerequisites)) fail(`${at}.prerequisites is not a list`);
  const sha256 = typeof v.sha256 === 'string' && /^[0-9a-f]{64}$/.test(v.sha256) ? v.sha256 : fail(`${at}.sha256 is not 64 hex digits`);
  return {
    id,
    uri,
    kind,
    tip: sha(v.tip, `${at}.tip`),
    prerequisites: v.prerequisites.map((p, j) => sha(p, `${at}.prerequisites[${j}]`)),
    size: nat(v.size, `${at}.size`),
    sha256,
    creationToken: nat(v.creationToken, `${at}.creationToken`),
  };
}

/** Validates the JSON of a manifest's payload (pure); throws Problem. */
function parseContent(v: unknown): ChannelManifest {
  if (!isObj(v)) fail('it is not a JSON object');
  if (v.format !== MANIFEST_FORMAT) fail(`its format is ${JSON.stringify(v.format)}, not "${MANIFEST_FORMAT}" (made by a newer gitroot publish?)`);
  const channel = typeof v.channel === 'string' && branchProblem(v.channel) === null ? v.channel : fail('channel is not a branch name');
  const version = nat(v.version, 'version');
  if (version < 1) fail('version is 0');
  const tip = sha(v.tip, 'tip');
  if (typeof v.pin !== 'boolean') fail('pin is not true or false');
  const created = time(v.created, 'created');
  const expires = time(v.expires, 'expires');
  let rollout: RolloutRamp | null = null;
  if (v.rollout !== null) {
    if (!isObj(v.rollout)) fail('rollout is neither null nor an object');
    const r = v.rollout;
    const fromPercent =
      typeof r.fromPercent === 'number' && r.fromPercent >= 0 && r.fromPercent <= 100 ? r.fromPercent : fail('rollout.fromPercent is not 0..100');
    rollout = { start: time(r.start, 'rollout.start'), durationSeconds: nat(r.durationSeconds, 'rollout.durationSeconds'), fromPercent };
  }
  if (!Array.isArray(v.bundles)) fail('bundles is not a list');
  const bundles = v.bundles.map(parseBundle);
  const ids = new Set<string>();
  for (const b of bundles) {
    if (ids.has(b.id)) fail(`bundle id ${b.id} is listed twice`);
    ids.add(b.id);
  }
  if (!bundles.some((b) => b.tip === tip)) fail(`no bundle brings the tip ${tip}`);
  return { format: MANIFEST_FORMAT, channel, version, tip, pin: v.pin, created, expires, rollout, bundles };
}

/** The manifest's payload as the publisher writes it: pretty JSON and a newline. */
export function renderPayload(m: ChannelManifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}

/** Signs a manifest: payload, then the armored signature in the channel namespace. */
export function signManifest(m: ChannelManifest, key: SigningKey): string {
  const payload = renderPayload(m);
  return payload + signSsh(key, CHANNEL_NAMESPACE, Buffer.from(payload));
}

/** Splits a manifest file into its signed payload and the armored signature (null when unsigned). */
export function splitManifest(text: Buffer): { payload: Buffer; signature: string | null } {
  const s = text.toString('latin1');
  const at = s.startsWith(`${ARMOR_BEGIN}\n`) ? 0 : s.lastIndexOf(`\n${ARMOR_BEGIN}\n`);
  if (at < 0) return { payload: text, signature: null };
  const cut = at === 0 ? 0 : at + 1;
  return { payload: text.subarray(0, cut), signature: text.subarray(cut).toString('utf8') };
}

/**
 * Parses a manifest without checking its signature (the publisher reading its own last
 * manifest). Throws TrustError (`why: 'malformed-manifest'`) naming `source`.
 */
export function parseManifestUnverified(text: Buffer, source: string): ChannelManifest {
  const { payload } = splitManifest(text);
  try {
    return parseContent(JSON.parse(payload.toString('utf8')));
  } catch (e) {
    const why = e instanceof Problem ? e.message : `it is not JSON (${(e as Error).message})`;
    throw new TrustError(`channel manifest ${source} cannot be read: ${why}; publish a new one with 'gitroot publish'`, {
      data: { why: 'malformed-manifest', source },
    });
  }
}

/**
 * Verifies a manifest file against the allowed signers (signature in namespace
 * gitroot-channel by a listed key, valid at its `created` time), then parses it. Freshness
 * (version, expiry) is channel-freshness.ts's business. Throws TrustError naming `source`,
 * the cause and the fix; `data.why` says which.
 */
export function verifyManifest(text: Buffer, signers: AllowedSigners, source: string): VerifiedManifest {
  if (text.length > MAX_MANIFEST_BYTES) {
    throw new TrustError(`channel manifest ${source} is ${text.length} bytes, more than the ${MAX_MANIFEST_BYTES} gitroot reads: check the channel URL`, {
      data: { why: 'malformed-manifest', source },
    });
  }
  const { payload, signature } = splitManifest(text);
  if (signature === null) {
    throw new TrustError(`channel manifest ${source} is not signed: publish it with 'gitroot publish --sign-key KEY' using a key listed in ${signers.source}`, {
      data: { why: 'unsigned', source },
    });
  }
  // The signature is checked before the content is trusted enough to parse its fields.
  let created: number | null = null;
  try {
    const raw = JSON.parse(payload.toString('utf8')) as { created?: unknown };
    created = typeof raw.created === 'string' ? parseIsoTime(raw.created) : null;
  } catch {
    /* judged as not JSON after the signature */
  }
  const verdict = judgeSignature(signers, signature, payload, created === null ? null : Math.floor(created / 1000), CHANNEL_NAMESPACE);
  if (!verdict.trusted) {
    throw new TrustError(`refusing channel manifest ${source}: ${verdict.detail}; ${manifestFix(verdict.why, signers.source, verdict.fix)}`, {
      data: { why: verdict.why, source, keyFingerprint: verdict.keyFingerprint },
    });
  }
  const manifest = parseManifestUnverified(text, source);
  return {
    manifest,
    createdMs: parseIsoTime(manifest.created)!,
    expiresMs: parseIsoTime(manifest.expires)!,
    keyFingerprint: verdict.keyFingerprint,
    principals: verdict.principals,
  };
}

function manifestFix(why: string, file: string, fallback: string): string {
  switch (why) {
    case 'unlisted-key':
      return `if that key is the publisher's, add it to ${file} with namespaces="git,${CHANNEL_NAMESPACE}"; otherwise the server is not the fleet's publisher`;
    case 'namespace-not-allowed':
      return `add ${CHANNEL_NAMESPACE} to that line's namespaces="..." option`;
    case 'wrong-namespace':
      return `sign manifests with 'gitroot publish' (namespace ${CHANNEL_NAMESPACE})`;
    case 'bad-signature':
      return 'the manifest was altered after signing or damaged on the way: publish it again';
    default:
      return fallback;
  }
}

/** Manifest fields as the publisher makes them. */
export function makeManifest(fields: Omit<ChannelManifest, 'format' | 'created' | 'expires'> & { createdMs: number; expiresMs: number }): ChannelManifest {
  const { createdMs, expiresMs, ...rest } = fields;
  return { format: MANIFEST_FORMAT, ...rest, created: isoSeconds(createdMs), expires: isoSeconds(expiresMs) };
}
