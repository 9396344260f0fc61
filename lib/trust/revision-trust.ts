/**
 * Whether a revision is acceptable under an allowed-signers file: the commit (or the
 * annotated tag naming it) must carry an SSH signature in namespace "git", by a key the file
 * lists for that namespace, valid at the signed timestamp (git's rule: the committer or
 * tagger date, as `git verify-commit` passes it to ssh-keygen -Overify-time), that verifies
 * over the object without its signature. judgeCommit/judgeTag are pure and return a verdict;
 * requireTrusted turns a refusal into a one-line TrustError naming the object and the fix.
 */
import { ConfigError, TrustError } from '../errors/errors.js';
import type { Settings } from '../params/settings-schema.js';
import { parseCommit, parseTag } from '../store/git-objects.js';
import { peelTag } from '../store/tag-peel.js';
import type { ObjectStore } from '../store/object-store.js';
import { type AllowedSigner, type AllowedSigners, matchPatternList, readAllowedSigners } from './allowed-signers.js';
import { SignatureFormatError, fingerprint, keyTypeOf, parseSshSignature, verifySshSignature } from './ssh-signature.js';

/** The namespace git signs commits and tags in. */
export const GIT_NAMESPACE = 'git';

/** Why a revision is refused (`data.why` of the TrustError). */
export type Distrust =
  | 'unsigned'
  | 'openpgp'
  | 'malformed'
  | 'wrong-namespace'
  | 'unlisted-key'
  | 'namespace-not-allowed'
  | 'not-yet-valid'
  | 'expired'
  | 'bad-signature'
  | 'not-a-revision';

/** What judgeCommit/judgeTag decided. */
export type TrustVerdict =
  | { trusted: true; keyFingerprint: string; keyType: string; principals: string[]; line: number }
  | { trusted: false; why: Distrust; detail: string; fix: string; keyFingerprint?: string };

const iso = (t: number): string => new Date(t * 1000).toISOString().replace('.000Z', 'Z');

/** Seconds since the epoch of an identity line "Name <email> 1700000000 +0100", or null. */
function identityTime(ident: string | undefined): number | null {
  const m = ident === undefined ? null : /> (-?\d+)(?: [+-]\d{4})?$/.exec(ident);
  return m === null ? null : Number(m[1]);
}

/**
 * Judges an armored signature over `payload`, signed at `time` (seconds; null when the object
 * has no date), against the allowed signers, in `namespace` (git's by default; the channel
 * manifest has its own, lib/channel/channel-manifest.ts). Pure.
 */
export function judgeSignature(signers: AllowedSigners, armored: string, payload: Buffer, time: number | null, namespace = GIT_NAMESPACE): TrustVerdict {
  const file = signers.source;
  const signHint = `sign it with 'git commit -S' (gpg.format=ssh) or 'gitroot commit --sign-key KEY' using a key listed in ${file}`;
  let sig;
  try {
    sig = parseSshSignature(armored);
  } catch (e) {
    const msg = e instanceof SignatureFormatError ? e.message : String(e);
    if (/OpenPGP/.test(msg)) {
      return {
        trusted: false,
        why: 'openpgp',
        detail: 'it carries an OpenPGP signature, and gitroot verifies SSH signatures only',
        fix: `re-sign it with gpg.format=ssh using a key listed in ${file}`,
      };
    }
    return { trusted: false, why: 'malformed', detail: `its signature cannot be decoded (${msg})`, fix: signHint };
  }
  const fp = fingerprint(sig.publicKey);
  let keyType = 'unknown';
  try {
    keyType = keyTypeOf(sig.publicKey);
  } catch {
    /* reported as unlisted below */
  }
  if (sig.namespace !== namespace) {
    return {
      trusted: false,
      why: 'wrong-namespace',
      keyFingerprint: fp,
      detail: `it is signed in namespace '${sig.namespace}', not '${namespace}'`,
      fix: namespace === GIT_NAMESPACE ? `sign it with 'git commit -S' (which uses namespace '${GIT_NAMESPACE}')` : `sign it in namespace '${namespace}'`,
    };
  }
  const listed = signers.signers.filter((s) => s.publicKey.equals(sig.publicKey));
  if (listed.length === 0) {
    return {
      trusted: false,
      why: 'unlisted-key',
      keyFingerprint: fp,
      detail: `it is signed by ${keyType} key ${fp}, which ${file} does not list`,
      fix: `add that key to ${file} if it is yours, or sign with a listed key`,
    };
  }
  // ssh-keygen uses the first line that lists the key and allows the namespace and the time.
  let refusal: TrustVerdict | null = null;
  let usable: AllowedSigner | null = null;
  for (const s of listed) {
    if (s.namespaces !== null && !matchPatternList(namespace, s.namespaces)) {
      refusal ??= {
        trusted: false,
        why: 'namespace-not-allowed',
        keyFingerprint: fp,
        detail: `${file}:${s.line} allows key ${fp} only for namespaces "${s.namespaces.join(',')}"`,
        fix: `add ${namespace} to its namespaces="..." option`,
      };
      continue;
    }
    if (s.validAfter !== null && (time === null || time < s.validAfter)) {
      refusal ??= {
        trusted: false,
        why: 'not-yet-valid',
        keyFingerprint: fp,
        detail: `${file}:${s.line} allows key ${fp} only from ${iso(s.validAfter)}, and it is dated ${time === null ? 'nothing' : iso(time)}`,
        fix: 'sign it again now, or correct valid-after',
      };
      continue;
    }
    if (s.validBefore !== null && (time === null || time > s.validBefore)) {
      refusal ??= {
        trusted: false,
        why: 'expired',
        keyFingerprint: fp,
        detail: `${file}:${s.line} allows key ${fp} only until ${iso(s.validBefore)}, and it is dated ${time === null ? 'nothing' : iso(time)}`,
        fix: 'sign it with a current key listed in the file, or extend valid-before',
      };
      continue;
    }
    usable = s;
    break;
  }
  if (usable === null) return refusal!;
  const bad = verifySshSignature(sig, payload);
  if (bad !== null) {
    return {
      trusted: false,
      why: 'bad-signature',
      keyFingerprint: fp,
      detail: `its signature by ${fp} does not verify (${bad}): the object was altered after signing or the signature is damaged`,
      fix: 'publish a freshly signed revision',
    };
  }
  return { trusted: true, keyFingerprint: fp, keyType, principals: usable.principals, line: usable.line };
}

/** Judges a commit object's body (pure). */
export function judgeCommit(signers: AllowedSigners, data: Buffer): TrustVerdict {
  const c = parseCommit(data);
  if (c.gpgsig === undefined || c.signedData === undefined) {
    return {
      trusted: false,
      why: 'unsigned',
      detail: 'it is not signed',
      fix: `sign it with 'git commit -S' (gpg.format=ssh) or 'gitroot commit --sign-key KEY' using a key listed in ${signers.source}`,
    };
  }
  return judgeSignature(signers, c.gpgsig, c.signedData, c.committerTime);
}

/** Where the signature of a tag body starts (the last line opening one, git's rule), or -1. */
function tagSignatureStart(data: Buffer): number {
  let match = -1;
  let p = 0;
  while (p < data.length) {
    if (data.subarray(p, p + 11).toString('latin1') === '-----BEGIN ') match = p;
    const nl = data.indexOf(0x0a, p);
    p = nl < 0 ? data.length : nl + 1;
  }
  return match;
}

/** Judges an annotated tag object's body (pure): the signature appended to its message. */
export function judgeTag(signers: AllowedSigners, data: Buffer): TrustVerdict {
  const tag = parseTag(data);
  const start = tagSignatureStart(data);
  if (start < 0) {
    return {
      trusted: false,
      why: 'unsigned',
      detail: 'it is not signed',
      fix: `sign it with 'git tag -s' (gpg.format=ssh) using a key listed in ${signers.source}`,
    };
  }
  return judgeSignature(signers, data.subarray(start).toString('latin1'), data.subarray(0, start), identityTime(tag.tagger));
}

/** What was verified, for the fetch result and the benchmark. */
export interface TrustReport {
  /** The object that carried the signature (the commit, or the annotated tag). */
  object: string;
  kind: 'commit' | 'tag';
  keyFingerprint: string;
  keyType: string;
  principals: string[];
  /** Line of the allowed-signers file that allowed the key. */
  line: number;
}

const short = (sha: string): string => sha.slice(0, 12);

/**
 * Judges `sha` (a commit, or an annotated tag whose signature then counts) in `store`.
 * Returns the verdict and the object's kind. Reading errors propagate (ObjectCorruptError...).
 */
export function judgeRevision(store: ObjectStore, signers: AllowedSigners, sha: string): { kind: 'commit' | 'tag'; verdict: TrustVerdict } {
  const obj = store.readObject(sha);
  if (obj.type === 'commit') return { kind: 'commit', verdict: judgeCommit(signers, obj.data) };
  if (obj.type === 'tag') return { kind: 'tag', verdict: judgeTag(signers, obj.data) };
  return { kind: 'commit', verdict: { trusted: false, why: 'not-a-revision', detail: `it is a ${obj.type}, not a commit or a tag`, fix: 'name a commit' } };
}

/** Whether the annotated tag `tag` peels (lib/store/tag-peel.ts) to `commit`; reading errors and a tag that does not parse throw. */
function tagPeelsTo(store: ObjectStore, tag: string, commit: string): boolean {
  const r = peelTag(tag, (oid) => store.readObject(oid));
  if (!r.ok && r.problem === 'malformed') throw r.cause;
  return r.ok && r.commit === commit;
}

/**
 * The verdict on annotated tag `tag` vouching for `commit`: it must peel to the commit and be
 * signed. A tag that cannot be read (damaged, or gone) vouches for nothing; the commit's own
 * signature may still count.
 */
function judgeTagOf(store: ObjectStore, signers: AllowedSigners, tag: string, commit: string): TrustVerdict {
  let data: Buffer;
  try {
    const obj = store.readObject(tag);
    if (obj.type !== 'tag' || !tagPeelsTo(store, tag, commit)) {
      return { trusted: false, why: 'not-a-revision', detail: `it is not an annotated tag of commit ${short(commit)}`, fix: 'name a tag of the commit' };
    }
    data = obj.data;
  } catch (e) {
    return { trusted: false, why: 'malformed', detail: `it cannot be read (${(e as Error).message})`, fix: `fetch it again (update-revision=${tag})` };
  }
  return judgeTag(signers, data);
}

/**
 * Judges the revision `commit`, fetched through the annotated tag `tag` (or null): trusted when
 * the tag peels to `commit` and carries a valid signature from a listed key (`git verify-tag`
 * plus the peel check), or else when the commit's own signature is valid. A refusal reports
 * the tag's reason (the object the fleet named) and the commit's. Pure over the store; reading
 * errors propagate.
 */
export function judgeTaggedCommit(
  store: ObjectStore,
  signers: AllowedSigners,
  commit: string,
  tag: string | null,
): { kind: 'commit' | 'tag'; object: string; verdict: TrustVerdict } {
  let tagVerdict: TrustVerdict | null = null;
  if (tag !== null) {
    tagVerdict = judgeTagOf(store, signers, tag, commit);
    if (tagVerdict.trusted) return { kind: 'tag', object: tag, verdict: tagVerdict };
  }
  const own = judgeRevision(store, signers, commit);
  if (own.verdict.trusted || tag === null || tagVerdict === null) return { kind: own.kind, object: commit, verdict: own.verdict };
  const why = own.verdict.detail.replace(/^it /, '');
  return { kind: 'tag', object: tag, verdict: { ...tagVerdict, detail: `${tagVerdict.detail}, and its commit ${short(commit)} ${why}` } };
}

/**
 * Requires `commit` (fetched through annotated tag `tag`, or null) to be trusted by the tag's
 * signature or its own; a one-line TrustError naming the object, the reason and the fix otherwise.
 */
export function requireTrustedRevision(store: ObjectStore, signers: AllowedSigners, commit: string, tag: string | null): TrustReport {
  if (tag === null) return requireTrusted(store, signers, commit);
  const { kind, object, verdict } = judgeTaggedCommit(store, signers, commit, tag);
  if (!verdict.trusted) {
    throw new TrustError(
      `refusing ${kind} ${short(object)} (${object})${kind === 'tag' ? ` of commit ${short(commit)}` : ''}: ${verdict.detail}; ${verdict.fix}`,
      {
        data: {
          why: verdict.why,
          revision: commit,
          kind,
          object,
          ...(kind === 'tag' ? { tag } : {}),
          allowedSigners: signers.source,
          ...(verdict.keyFingerprint ? { key: verdict.keyFingerprint } : {}),
        },
      },
    );
  }
  return { object, kind, keyFingerprint: verdict.keyFingerprint, keyType: verdict.keyType, principals: verdict.principals, line: verdict.line };
}

/**
 * Requires `sha` to be trusted; a TrustError naming it (short and full id), the reason and the
 * fix otherwise. `what` names the object in the message (default its kind).
 */
export function requireTrusted(store: ObjectStore, signers: AllowedSigners, sha: string): TrustReport {
  const { kind, verdict } = judgeRevision(store, signers, sha);
  if (!verdict.trusted) {
    throw new TrustError(`refusing ${kind} ${short(sha)} (${sha}): ${verdict.detail}; ${verdict.fix}`, {
      data: { why: verdict.why, revision: sha, kind, allowedSigners: signers.source, ...(verdict.keyFingerprint ? { key: verdict.keyFingerprint } : {}) },
    });
  }
  return { object: sha, kind, keyFingerprint: verdict.keyFingerprint, keyType: verdict.keyType, principals: verdict.principals, line: verdict.line };
}

/**
 * The trust settings, checked at settings load (before any network): `gitroot.gpg-keyring`
 * is refused (see docs/trust.md for why OpenPGP is not supported); the allowed-signers file,
 * when set, is read and parsed (ConfigError naming it or its bad line). Returns the signers,
 * or null when no signature is required.
 */
export function loadTrustSettings(s: Pick<Settings, 'gitroot.gpg-keyring' | 'gitroot.allowed-signers'>): AllowedSigners | null {
  if (s['gitroot.gpg-keyring'] !== null) {
    throw new ConfigError('gitroot.gpg-keyring is not supported in this build: use gitroot.allowed-signers (SSH signatures; see docs/trust.md)', {
      data: { key: 'gitroot.gpg-keyring' },
    });
  }
  const path = s['gitroot.allowed-signers'];
  return path === null ? null : readAllowedSigners(path);
}
