/**
 * SSH signatures (OpenSSH's PROTOCOL.sshsig, what `ssh-keygen -Y sign` and `git commit -S`
 * with gpg.format=ssh write): the armored SSHSIG wire format, verification of a signature
 * over a message, and signing with an unencrypted OpenSSH ed25519 private key. node:crypto
 * only: no ssh-keygen at run time (the initramfs has none, and a subprocess per revision
 * would cost more than the 50 ms budget of docs/trust.md). Key types: ssh-ed25519,
 * ssh-rsa (signatures rsa-sha2-256/512; SHA-1 `ssh-rsa` signatures are refused, as OpenSSH
 * refuses them), ecdsa-sha2-nistp256/384/521. Security-key (sk-*) types are refused.
 *
 * Pure functions on Buffers; a malformed signature or key is a SignatureFormatError (a
 * reason, not a crash): the caller decides how to word the refusal.
 */
import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';

const MAGIC = Buffer.from('SSHSIG');
const ARMOR_BEGIN = '-----BEGIN SSH SIGNATURE-----';
const ARMOR_END = '-----END SSH SIGNATURE-----';
const KEY_BEGIN = '-----BEGIN OPENSSH PRIVATE KEY-----';
const KEY_END = '-----END OPENSSH PRIVATE KEY-----';
const KEY_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');

/** A signature or key that cannot be decoded; `message` is a phrase for a one-line error. */
export class SignatureFormatError extends Error {}

/** Reads SSH wire-format fields (RFC 4251: uint32, string) from a buffer. */
class WireReader {
  private p = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}
  uint32(): number {
    if (this.p + 4 > this.buf.length) throw new SignatureFormatError(`${this.what} is truncated`);
    const v = this.buf.readUInt32BE(this.p);
    this.p += 4;
    return v;
  }
  string(): Buffer {
    const n = this.uint32();
    if (this.p + n > this.buf.length) throw new SignatureFormatError(`${this.what} is truncated`);
    const out = this.buf.subarray(this.p, this.p + n);
    this.p += n;
    return out;
  }
  text(): string {
    return this.string().toString('latin1');
  }
  bytes(n: number): Buffer {
    if (this.p + n > this.buf.length) throw new SignatureFormatError(`${this.what} is truncated`);
    const out = this.buf.subarray(this.p, this.p + n);
    this.p += n;
    return out;
  }
  get done(): boolean {
    return this.p === this.buf.length;
  }
  get rest(): Buffer {
    return this.buf.subarray(this.p);
  }
}

/** SSH `string`: uint32 length, then the bytes. */
function sshString(b: Buffer | string): Buffer {
  const data = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

/** A decoded SSHSIG blob. */
export interface SshSignature {
  /** The signer's public key, SSH wire blob (compare with allowed-signers keys). */
  publicKey: Buffer;
  namespace: string;
  /** 'sha256' or 'sha512': the hash of the message that was signed. */
  hashAlgorithm: string;
  /** Signature algorithm named inside the signature (ssh-ed25519, rsa-sha2-512, ...). */
  signatureAlgorithm: string;
  /** The raw signature bytes of that algorithm. */
  signature: Buffer;
}

/** The base64 inside an armored SSH signature (leading/trailing blank lines and spaces tolerated). */
export function dearmorSignature(armored: string): Buffer {
  const lines = armored
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (lines[0] !== ARMOR_BEGIN) {
    throw new SignatureFormatError(
      lines[0]?.startsWith('-----BEGIN PGP') ? 'it is an OpenPGP signature, not an SSH one' : 'it is not an armored SSH signature',
    );
  }
  const end = lines.indexOf(ARMOR_END);
  if (end < 0) throw new SignatureFormatError(`the SSH signature has no '${ARMOR_END}' line`);
  const b64 = lines.slice(1, end).join('');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new SignatureFormatError('the SSH signature is not valid base64');
  return Buffer.from(b64, 'base64');
}

/** Decodes an armored SSHSIG (PROTOCOL.sshsig version 1). */
export function parseSshSignature(armored: string): SshSignature {
  const blob = dearmorSignature(armored);
  if (blob.length < 6 || !blob.subarray(0, 6).equals(MAGIC)) throw new SignatureFormatError('the SSH signature lacks the SSHSIG magic');
  const r = new WireReader(blob.subarray(6), 'the SSH signature');
  const version = r.uint32();
  if (version !== 1) throw new SignatureFormatError(`SSH signature version ${version} is not supported (only 1)`);
  const publicKey = Buffer.from(r.string());
  const namespace = r.text();
  r.string(); // reserved
  const hashAlgorithm = r.text();
  const sigBlob = r.string();
  if (!r.done) throw new SignatureFormatError('the SSH signature has trailing bytes');
  const s = new WireReader(sigBlob, 'the SSH signature');
  const signatureAlgorithm = s.text();
  const signature = Buffer.from(s.string());
  return { publicKey, namespace, hashAlgorithm, signatureAlgorithm, signature };
}

/** The key type named at the start of a public key blob (ssh-ed25519, ssh-rsa, ...). */
export function keyTypeOf(publicKey: Buffer): string {
  return new WireReader(publicKey, 'the public key').text();
}

/** SHA-256 fingerprint of a public key blob, as ssh-keygen -l prints it ("SHA256:..."). */
export function fingerprint(publicKey: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKey).digest('base64').replace(/=+$/, '')}`;
}

const b64u = (b: Buffer): string => b.toString('base64url');
/** An mpint's magnitude without leading zero bytes. */
const unsigned = (b: Buffer): Buffer => {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
};

const CURVES: Record<string, { name: string; crv: string; size: number; hash: string }> = {
  'ecdsa-sha2-nistp256': { name: 'nistp256', crv: 'P-256', size: 32, hash: 'sha256' },
  'ecdsa-sha2-nistp384': { name: 'nistp384', crv: 'P-384', size: 48, hash: 'sha384' },
  'ecdsa-sha2-nistp521': { name: 'nistp521', crv: 'P-521', size: 66, hash: 'sha512' },
};

/** A node:crypto public key from an SSH public key blob. */
export function publicKeyObject(publicKey: Buffer): KeyObject {
  const r = new WireReader(publicKey, 'the public key');
  const type = r.text();
  try {
    if (type === 'ssh-ed25519') {
      const x = r.string();
      if (x.length !== 32) throw new SignatureFormatError('the ed25519 public key is not 32 bytes');
      return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64u(x) }, format: 'jwk' });
    }
    if (type === 'ssh-rsa') {
      const e = unsigned(r.string());
      const n = unsigned(r.string());
      if (n.length * 8 < 1024) throw new SignatureFormatError(`the RSA key has only ${n.length * 8} bits (at least 1024 needed)`);
      return createPublicKey({ key: { kty: 'RSA', n: b64u(n), e: b64u(e) }, format: 'jwk' });
    }
    const curve = CURVES[type];
    if (curve !== undefined) {
      if (r.text() !== curve.name) throw new SignatureFormatError(`the ${type} key names another curve`);
      const q = r.string();
      if (q.length !== 1 + 2 * curve.size || q[0] !== 4) throw new SignatureFormatError(`the ${type} key is not an uncompressed point`);
      return createPublicKey({
        key: { kty: 'EC', crv: curve.crv, x: b64u(q.subarray(1, 1 + curve.size)), y: b64u(q.subarray(1 + curve.size)) },
        format: 'jwk',
      });
    }
  } catch (e) {
    if (e instanceof SignatureFormatError) throw e;
    throw new SignatureFormatError(`the ${type} public key is malformed (${(e as Error).message})`);
  }
  throw new SignatureFormatError(`key type ${type} is not supported (use ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521)`);
}

/** The bytes an SSHSIG signature covers: magic, namespace, reserved, hash algorithm, H(message). */
export function signedBlob(namespace: string, hashAlgorithm: string, message: Buffer): Buffer {
  const digest = createHash(hashAlgorithm).update(message).digest();
  return Buffer.concat([MAGIC, sshString(namespace), sshString(''), sshString(hashAlgorithm), sshString(digest)]);
}

/**
 * Checks `sig` over `message` cryptographically (the namespace and the key's listing are the
 * caller's business). Returns null when it verifies, else why not (a phrase).
 */
export function verifySshSignature(sig: SshSignature, message: Buffer): string | null {
  if (sig.hashAlgorithm !== 'sha256' && sig.hashAlgorithm !== 'sha512') {
    return `its hash algorithm ${sig.hashAlgorithm} is not sha256 or sha512`;
  }
  let key: KeyObject;
  try {
    key = publicKeyObject(sig.publicKey);
  } catch (e) {
    return (e as Error).message;
  }
  const keyType = keyTypeOf(sig.publicKey);
  const data = signedBlob(sig.namespace, sig.hashAlgorithm, message);
  try {
    if (keyType === 'ssh-ed25519') {
      if (sig.signatureAlgorithm !== 'ssh-ed25519') return `an ${keyType} key cannot make a ${sig.signatureAlgorithm} signature`;
      return cryptoVerify(null, data, key, sig.signature) ? null : 'the signature does not match the signed content';
    }
    if (keyType === 'ssh-rsa') {
      const hash = sig.signatureAlgorithm === 'rsa-sha2-512' ? 'sha512' : sig.signatureAlgorithm === 'rsa-sha2-256' ? 'sha256' : null;
      if (hash === null) return `RSA signature algorithm ${sig.signatureAlgorithm} is refused (SHA-1); sign with rsa-sha2-512`;
      return cryptoVerify(hash, data, key, sig.signature) ? null : 'the signature does not match the signed content';
    }
    const curve = CURVES[keyType];
    if (curve !== undefined) {
      if (sig.signatureAlgorithm !== keyType) return `an ${keyType} key cannot make a ${sig.signatureAlgorithm} signature`;
      const s = new WireReader(sig.signature, 'the ECDSA signature');
      const rr = unsigned(s.string());
      const ss = unsigned(s.string());
      if (rr.length > curve.size || ss.length > curve.size) return 'the ECDSA signature is malformed';
      const p1363 = Buffer.concat([Buffer.alloc(curve.size - rr.length), rr, Buffer.alloc(curve.size - ss.length), ss]);
      return cryptoVerify(curve.hash, data, { key, dsaEncoding: 'ieee-p1363' }, p1363) ? null : 'the signature does not match the signed content';
    }
  } catch (e) {
    return e instanceof SignatureFormatError ? e.message : `the signature cannot be checked (${(e as Error).message})`;
  }
  return `key type ${keyType} is not supported`;
}

/** An ed25519 signing key read from an OpenSSH private key file. */
export interface SigningKey {
  /** Public key blob (as in the allowed-signers line). */
  publicKey: Buffer;
  privateKey: KeyObject;
  comment: string;
}

/**
 * Reads an unencrypted OpenSSH private key ("-----BEGIN OPENSSH PRIVATE KEY-----", what
 * ssh-keygen writes by default) holding an ed25519 key. Encrypted keys, other key types and
 * other formats are refused with a SignatureFormatError naming the fix.
 */
export function parseOpenSshPrivateKey(text: string): SigningKey {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (lines[0] !== KEY_BEGIN) {
    throw new SignatureFormatError(
      lines[0]?.startsWith('-----BEGIN') && lines[0].includes('PRIVATE KEY')
        ? `it is a ${lines[0].replace(/-/g, '').trim()}, not an OpenSSH private key: convert it with 'ssh-keygen -p -f KEY' (which rewrites it in the OpenSSH format)`
        : 'it is not an OpenSSH private key (no -----BEGIN OPENSSH PRIVATE KEY----- line)',
    );
  }
  const end = lines.indexOf(KEY_END);
  if (end < 0) throw new SignatureFormatError(`it has no '${KEY_END}' line`);
  const blob = Buffer.from(lines.slice(1, end).join(''), 'base64');
  if (!blob.subarray(0, KEY_MAGIC.length).equals(KEY_MAGIC)) throw new SignatureFormatError('it lacks the openssh-key-v1 magic');
  const r = new WireReader(blob.subarray(KEY_MAGIC.length), 'the private key');
  const cipher = r.text();
  const kdf = r.text();
  r.string(); // kdf options
  if (cipher !== 'none' || kdf !== 'none') {
    throw new SignatureFormatError(
      `it is encrypted (${cipher}, ${kdf}): gitroot cannot ask for a passphrase; use a key without one (ssh-keygen -p -N '' -f KEY on a copy)`,
    );
  }
  const count = r.uint32();
  if (count !== 1) throw new SignatureFormatError(`it holds ${count} keys (exactly 1 expected)`);
  const publicKey = Buffer.from(r.string());
  const priv = new WireReader(r.string(), 'the private key');
  if (priv.uint32() !== priv.uint32()) throw new SignatureFormatError('its check bytes differ (damaged, or encrypted)');
  const type = priv.text();
  if (type !== 'ssh-ed25519')
    throw new SignatureFormatError(`it is a ${type} key: gitroot commit --sign-key signs with ssh-ed25519 keys only (ssh-keygen -t ed25519)`);
  const pub = priv.string();
  const secret = priv.string();
  const comment = priv.text();
  if (pub.length !== 32 || secret.length !== 64 || !secret.subarray(32).equals(pub)) throw new SignatureFormatError('its ed25519 key is malformed');
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64u(secret.subarray(0, 32)), x: b64u(pub) }, format: 'jwk' });
  return { publicKey, privateKey, comment };
}

/** The armored SSHSIG of `message` under `namespace` (hash sha512, as ssh-keygen writes), 70-column lines. */
export function signSsh(key: SigningKey, namespace: string, message: Buffer): string {
  const hashAlgorithm = 'sha512';
  const sig = cryptoSign(null, signedBlob(namespace, hashAlgorithm, message), key.privateKey);
  const blob = Buffer.concat([
    MAGIC,
    Buffer.from([0, 0, 0, 1]),
    sshString(key.publicKey),
    sshString(namespace),
    sshString(''),
    sshString(hashAlgorithm),
    sshString(Buffer.concat([sshString('ssh-ed25519'), sshString(sig)])),
  ]);
  const b64 = blob.toString('base64');
  const body: string[] = [];
  for (let i = 0; i < b64.length; i += 70) body.push(b64.slice(i, i + 70));
  return [ARMOR_BEGIN, ...body, ARMOR_END].join('\n') + '\n';
}
