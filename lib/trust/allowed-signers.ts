/**
 * The allowed-signers file of ssh-keygen(1) ("ALLOWED SIGNERS", git's
 * gpg.ssh.allowedSignersFile): one key per line as `principals [options] keytype base64
 * [comment]`, with the options namespaces="...", valid-after="...", valid-before="..." and
 * cert-authority (refused here: gitroot verifies plain key signatures, not certificates).
 * Parsing is pure and strict: a line gitroot would read differently from ssh-keygen is a
 * ConfigError naming `file:line`, never silently skipped. Reading the file is the one I/O.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors/errors.js';
import { SignatureFormatError, keyTypeOf, publicKeyObject } from './ssh-signature.js';

/** One key line. */
export interface AllowedSigner {
  /** 1-based line number in the file. */
  line: number;
  principals: string[];
  /** namespaces="..." patterns, or null when the line allows every namespace. */
  namespaces: string[] | null;
  /** valid-after / valid-before as seconds since the epoch, or null. */
  validAfter: number | null;
  validBefore: number | null;
  keyType: string;
  /** The public key blob (decoded base64). */
  publicKey: Buffer;
}

/** A parsed allowed-signers file. */
export interface AllowedSigners {
  /** Where it was read from (for messages). */
  source: string;
  signers: AllowedSigner[];
}

const KEY_TYPES = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com|ssh-dss)$/;

/** Splits on unquoted blanks; quotes are kept in the tokens (options need them). */
function tokenize(text: string): { tokens: string[]; rests: number[] } | string {
  const tokens: string[] = [];
  const rests: number[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
    if (i >= text.length) break;
    const start = i;
    let quoted = false;
    while (i < text.length && (quoted || (text[i] !== ' ' && text[i] !== '\t'))) {
      if (text[i] === '"') quoted = !quoted;
      i++;
    }
    if (quoted) return 'has an unterminated double quote';
    rests.push(start);
    tokens.push(text.slice(start, i));
  }
  return { tokens, rests };
}

/** Splits a comma-separated list, honouring double quotes; returns the parts unquoted where whole. */
function splitComma(text: string): string[] {
  const parts: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

const unquote = (s: string): string => (s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s);

/**
 * A timestamp of valid-after/valid-before: YYYYMMDD or YYYYMMDDHHMM[SS], local time, or UTC
 * with a trailing Z (ssh-keygen's rules). Seconds since the epoch, or null when malformed.
 */
export function parseSignerTime(text: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/i.exec(text);
  if (m === null) return null;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4] ?? '0', m[5] ?? '0', m[6] ?? '0'].map(Number) as number[];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return null;
  const ms = m[7] !== '' ? Date.UTC(y, mo - 1, d, h, mi, s) : new Date(y, mo - 1, d, h, mi, s).getTime();
  return Math.floor(ms / 1000);
}

/** ssh's pattern match: `*` any run, `?` one character; whole string. */
export function matchPattern(text: string, pattern: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    's',
  );
  return re.test(text);
}

/** ssh's pattern-list match: true if some pattern matches and no negated (`!`) one does. */
export function matchPatternList(text: string, patterns: readonly string[]): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (matchPattern(text, p.slice(1))) return false;
    } else if (matchPattern(text, p)) matched = true;
  }
  return matched;
}

/** Parses the text of an allowed-signers file (pure). ConfigError naming `source:line` on the first bad line. */
export function parseAllowedSigners(text: string, source: string): AllowedSigners {
  const signers: AllowedSigner[] = [];
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n].replace(/\r$/, '');
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const where = `${source}:${n + 1}`;
    const bad = (why: string): ConfigError =>
      new ConfigError(`${where}: ${why}; write lines as 'PRINCIPALS [namespaces="git"] ssh-ed25519 AAAA...' (ssh-keygen ALLOWED SIGNERS format)`, {
        data: { file: source, line: n + 1 },
      });
    const tok = tokenize(trimmed);
    if (typeof tok === 'string') throw bad(tok);
    const { tokens } = tok;
    if (tokens.length < 3) throw bad('has fewer than three fields (principals, key type, key)');
    const principals = splitComma(unquote(tokens[0])).filter((p) => p !== '');
    if (principals.length === 0) throw bad('names no principal');
    let i = 1;
    let namespaces: string[] | null = null;
    let validAfter: number | null = null;
    let validBefore: number | null = null;
    if (!KEY_TYPES.test(tokens[1])) {
      for (const opt of splitComma(tokens[1])) {
        const eq = opt.indexOf('=');
        const name = (eq < 0 ? opt : opt.slice(0, eq)).toLowerCase();
        const value = eq < 0 ? null : unquote(opt.slice(eq + 1));
        if (name === 'cert-authority') {
          throw bad(
            'uses cert-authority, which gitroot does not support (it verifies plain key signatures, not SSH certificates): list the signing keys themselves',
          );
        }
        if (value === null) throw bad(`has option '${opt}' without a value`);
        if (name === 'namespaces') namespaces = value.split(',').filter((s) => s !== '');
        else if (name === 'valid-after' || name === 'valid-before') {
          const t = parseSignerTime(value);
          if (t === null) throw bad(`has ${name}="${value}", not a YYYYMMDD[HHMM[SS]][Z] time`);
          if (name === 'valid-after') validAfter = t;
          else validBefore = t;
        } else throw bad(`has unknown option '${name}'`);
      }
      i = 2;
    }
    const keyType = tokens[i];
    const b64 = tokens[i + 1];
    if (keyType === undefined || b64 === undefined) throw bad('lacks the key type or the key');
    if (!KEY_TYPES.test(keyType)) throw bad(`has '${keyType}' where a key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...) belongs`);
    if (keyType.startsWith('sk-') || keyType === 'ssh-dss')
      throw bad(`has a ${keyType} key, which gitroot cannot verify (use ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521)`);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw bad('has a key that is not base64');
    const publicKey = Buffer.from(b64, 'base64');
    try {
      if (keyTypeOf(publicKey) !== keyType) throw bad(`says ${keyType} but its key is a ${keyTypeOf(publicKey)} key`);
      publicKeyObject(publicKey);
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw bad(`has a key that cannot be decoded (${e instanceof SignatureFormatError ? e.message : String(e)})`);
    }
    signers.push({ line: n + 1, principals, namespaces, validAfter, validBefore, keyType, publicKey });
  }
  return { source, signers };
}

/**
 * Reads and parses an allowed-signers file. ConfigError when it cannot be read or has a bad
 * line; an empty file is an error too (it would refuse every revision, surely not meant).
 */
export function readAllowedSigners(path: string, setting = 'gitroot.allowed-signers'): AllowedSigners {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `${setting}=${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? e}): create it (ssh-keygen ALLOWED SIGNERS format) or fix the setting`,
      { data: { file: path }, cause: e },
    );
  }
  const parsed = parseAllowedSigners(text, path);
  if (parsed.signers.length === 0) {
    throw new ConfigError(`${path} lists no key, so no revision could be trusted: add a line 'PRINCIPAL namespaces="git" ssh-ed25519 AAAA...'`, {
      data: { file: path },
    });
  }
  return parsed;
}
