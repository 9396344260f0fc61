/**
 * Git object formats: object types, the "<type> <size>\0" header and its SHA-1, and parsers
 * for tree, commit and tag bodies. Pure functions on Buffers; malformed input raises
 * ObjectCorruptError.
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { ObjectCorruptError } from '../errors/errors.js';
import { OID_BYTES, isSha } from './object-id.js';

export type ObjectType = 'commit' | 'tree' | 'blob' | 'tag';

/** A decoded object: its type and its full content. */
export interface GitObject {
  type: ObjectType;
  data: Buffer;
}

/** What readHeader returns: type and content size, without the content. */
export interface ObjectHeader {
  type: ObjectType;
  size: number;
}

/** Object types by pack type code (1-4); codes 6 and 7 are deltas, 0 and 5 are invalid. */
export const PACK_TYPES: readonly (ObjectType | undefined)[] = [undefined, 'commit', 'tree', 'blob', 'tag'];

const TYPES = new Set<string>(['commit', 'tree', 'blob', 'tag']);

/** True if `s` names one of the four object types. */
export function isObjectType(s: string): s is ObjectType {
  return TYPES.has(s);
}

/** SHA-1 of `"<type> <size>\0" + data`: the object's id. */
export function hashObject(type: ObjectType, data: Uint8Array): Buffer {
  return createHash('sha1').update(`${type} ${data.byteLength}\0`).update(data).digest();
}

/** Tree entry modes git writes, the one table of them (gitfs, manifest, commit, diff, fsck, staging). */
export const MODE_TREE = 0o040000;
export const MODE_FILE = 0o100644;
export const MODE_EXECUTABLE = 0o100755;
export const MODE_SYMLINK = 0o120000;
export const MODE_GITLINK = 0o160000;
/** A mode only very old git wrote (a group-writable file); read like MODE_FILE. */
export const MODE_GROUP_WRITABLE = 0o100664;

export interface TreeEntry {
  /** Numeric mode, e.g. 0o100644; compare with the MODE_* constants. */
  mode: number;
  /** Entry name decoded as UTF-8. */
  name: string;
  /** 20-byte object id (a view into the tree's data). */
  oid: Buffer;
}

function corrupt(what: string, detail: string): ObjectCorruptError {
  return new ObjectCorruptError(`malformed ${what}: ${detail}; the repository is damaged: run 'git fsck' on it and restore or re-fetch it`);
}

/** Modes a tree entry may have: git's five, plus 100664 that very old git wrote for files. */
const TREE_MODES: ReadonlySet<number> = new Set([MODE_TREE, MODE_FILE, MODE_EXECUTABLE, MODE_GROUP_WRITABLE, MODE_SYMLINK, MODE_GITLINK]);

/**
 * Parses a tree body into its entries, in stored order. A tree git itself (or `gitroot
 * commit`) never writes is rejected as corruption, whole: names that could escape a
 * directory ('', '.', '..', anything with '/'), `.git`, names that are not UTF-8 (they would
 * decode to a different name), a name given twice, and modes git does not know.
 */
export function parseTree(data: Buffer): TreeEntry[] {
  const entries: TreeEntry[] = [];
  const names = new Set<string>();
  const end = data.length;
  let p = 0;
  while (p < end) {
    let mode = 0;
    const modeStart = p;
    let c = data[p];
    while (c !== 0x20) {
      if (c < 0x30 || c > 0x37 || p - modeStart >= 7) throw corrupt('tree', `bad mode at byte ${modeStart}`);
      mode = mode * 8 + (c - 0x30);
      c = data[++p];
    }
    if (p === modeStart) throw corrupt('tree', `empty mode at byte ${modeStart}`);
    const nameStart = ++p;
    const nul = data.indexOf(0, nameStart);
    if (nul < 0 || nul + 1 + OID_BYTES > end) throw corrupt('tree', `truncated entry at byte ${modeStart}`);
    const name = data.toString('utf8', nameStart, nul);
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name === '.git') {
      throw corrupt('tree', `unsafe entry name '${name}'`);
    }
    if (!isUtf8(data.subarray(nameStart, nul))) throw corrupt('tree', `entry name '${name}' is not valid UTF-8`);
    if (!TREE_MODES.has(mode)) throw corrupt('tree', `entry '${name}' has mode ${mode.toString(8)}, which git does not write`);
    if (names.has(name)) throw corrupt('tree', `entry name '${name}' appears twice`);
    names.add(name);
    entries.push({ mode, name, oid: data.subarray(nul + 1, nul + 1 + OID_BYTES) });
    p = nul + 1 + OID_BYTES;
  }
  return entries;
}

export interface Commit {
  /** Tree id, 40 hex. */
  tree: string;
  /** Parent ids, 40 hex each, in order. */
  parents: string[];
  /** Raw author line value: "Name <email> 1700000000 +0100". */
  author: string;
  /** Raw committer line value. */
  committer: string;
  /** Committer time in seconds since the epoch. */
  committerTime: number;
  /** Everything after the blank line that ends the headers. */
  message: string;
  /** Signature from the `gpgsig` header (PGP, SSH or X.509), continuation lines joined. */
  gpgsig?: string;
  /** With gpgsig: the bytes that were signed (the commit without its gpgsig header). */
  signedData?: Buffer;
}

interface Header {
  key: string;
  value: string;
  /** Byte range of the whole header, continuation lines included. */
  start: number;
  end: number;
}

/** Splits "key value\n" headers (with " "-prefixed continuation lines) from the message. */
function parseHeaders(what: string, data: Buffer): { headers: Header[]; message: string } {
  const headers: Header[] = [];
  let p = 0;
  while (p < data.length) {
    if (data[p] === 0x0a) return { headers, message: data.toString('utf8', p + 1) };
    const start = p;
    let nl = data.indexOf(0x0a, p);
    if (nl < 0) nl = data.length;
    const line = data.toString('utf8', p, nl);
    p = nl + 1;
    if (line.startsWith(' ')) {
      const last = headers[headers.length - 1];
      if (last === undefined) throw corrupt(what, 'continuation line before any header');
      last.value += '\n' + line.slice(1);
      last.end = Math.min(p, data.length);
      continue;
    }
    const sp = line.indexOf(' ');
    if (sp <= 0) throw corrupt(what, `bad header line '${line.slice(0, 40)}'`);
    headers.push({ key: line.slice(0, sp), value: line.slice(sp + 1), start, end: Math.min(p, data.length) });
  }
  return { headers, message: '' };
}

function hexField(what: string, key: string, value: string | undefined): string {
  if (value === undefined || !isSha(value)) throw corrupt(what, `bad or missing '${key}' header`);
  return value;
}

/** Seconds since the epoch from an identity line "Name <email> 1700000000 +0100". */
function identityTime(what: string, ident: string): number {
  const m = /> (-?\d+) [+-]\d{4}$/.exec(ident) ?? /> (-?\d+)$/.exec(ident);
  if (m === null) throw corrupt(what, `bad identity '${ident.slice(0, 60)}'`);
  return Number(m[1]);
}

/** Parses a commit body. */
export function parseCommit(data: Buffer): Commit {
  const { headers, message } = parseHeaders('commit', data);
  if (headers[0]?.key !== 'tree') throw corrupt('commit', "first header is not 'tree'");
  const tree = hexField('commit', 'tree', headers[0].value);
  const parents: string[] = [];
  let i = 1;
  for (; headers[i]?.key === 'parent'; i++) parents.push(hexField('commit', 'parent', headers[i].value));
  const author = headers[i]?.key === 'author' ? headers[i++].value : undefined;
  const committer = headers[i]?.key === 'committer' ? headers[i++].value : undefined;
  if (author === undefined || committer === undefined) throw corrupt('commit', 'missing author or committer');
  const commit: Commit = {
    tree,
    parents,
    author,
    committer,
    committerTime: identityTime('commit', committer),
    message,
  };
  const sig = headers.find((h) => h.key === 'gpgsig');
  if (sig !== undefined) {
    commit.gpgsig = sig.value;
    commit.signedData = Buffer.concat([data.subarray(0, sig.start), data.subarray(sig.end)]);
  }
  return commit;
}

export interface Tag {
  /** Id of the tagged object, 40 hex. */
  object: string;
  type: ObjectType;
  tag: string;
  tagger?: string;
  /** Message, with any signature block at its end. */
  message: string;
}

/** Parses an annotated tag body. */
export function parseTag(data: Buffer): Tag {
  const { headers, message } = parseHeaders('tag', data);
  const get = (k: string): string | undefined => headers.find((h) => h.key === k)?.value;
  const object = hexField('tag', 'object', get('object'));
  const type = get('type');
  if (type === undefined || !isObjectType(type)) throw corrupt('tag', "bad or missing 'type' header");
  const tag = get('tag');
  if (tag === undefined) throw corrupt('tag', "missing 'tag' header");
  const tagger = get('tagger');
  return tagger === undefined ? { object, type, tag, message } : { object, type, tag, tagger, message };
}
