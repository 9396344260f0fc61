/**
 * The metadata manifest `.gitroot.mtree`: what a root filesystem needs that git cannot store.
 *
 * Git keeps only 100644/100755/120000 modes and no owners. Everything else a faithful root
 * needs (setuid bits, owners, empty directories, device nodes, FIFOs, hardlinks, extended
 * attributes) is written to a BSD mtree (v2.0) text file at the top of the committed tree.
 * Lines use full paths (`./usr/bin/su type=file mode=4755`), always carry `type=`, and
 * list only what differs from the defaults git implies (see gitDefaultMode). Paths, xattr
 * names and xattr values are vis(3)-encoded: every byte outside printable ASCII, plus `\`,
 * `#` and `=`, becomes `\ooo` octal. (`=` is encoded too, as libarchive's writer does, so
 * `xattr.NAME=VALUE` splits unambiguously.) libarchive's bsdtar lists the file (checked
 * with bsdtar 3.6: `bsdtar -tvf .gitroot.mtree`); it warns about `xattr.`, gitroot's own
 * keyword, and exits 1 when one is present.
 *
 * This module is pure: formatting, parsing and default rules, no I/O.
 */

import { isUtf8 } from 'node:buffer';
import { ManifestError } from '../errors/errors.js';
import { MODE_EXECUTABLE } from '../store/git-objects.js';

/** File name of the manifest at the top level of every committed tree. */
export const MANIFEST_NAME = '.gitroot.mtree';

/** First line of every manifest: the mtree signature libarchive looks for. */
export const MANIFEST_SIGNATURE = '#mtree v2.0';

/** Second line: says what the file is to someone who opens it. */
export const MANIFEST_COMMENT = '# gitroot metadata manifest: modes, owners, devices, empty dirs, hardlinks and xattrs that git does not store';

/** Kinds of entries a manifest can describe (mtree `type=` values). */
export type EntryType = 'file' | 'dir' | 'link' | 'char' | 'block' | 'fifo';

/** One manifest line. Absent optional fields mean "the default". */
export interface ManifestEntry {
  /** Path relative to the tree top, '/'-separated, no leading './'; '' is the root itself. */
  path: string;
  type: EntryType;
  /** Full 12-bit permission bits, setuid/setgid/sticky included. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Device number, only for char and block devices. */
  rdev?: { major: number; minor: number };
  /** Hardlink group number, unique within the manifest (with nlink). */
  inode?: number;
  /** Number of paths of the hardlink group inside the tree (with inode). */
  nlink?: number;
  /** Extended attributes by name, values as raw bytes. */
  xattrs?: Map<string, Buffer>;
}

const ENTRY_TYPES: ReadonlySet<string> = new Set<EntryType>(['file', 'dir', 'link', 'char', 'block', 'fifo']);

/** Largest uid, gid, device number part, inode group or nlink (unsigned 32-bit). */
const MAX_U32 = 0xffffffff;

/** Linux's limits (linux/limits.h): an xattr name, one value, and all names of a file together. */
export const XATTR_NAME_MAX = 255;
export const XATTR_SIZE_MAX = 65536;
export const XATTR_LIST_MAX = 65536;

/**
 * Permission bits an entry has when the manifest says nothing about its mode: what git's
 * mode implies for files (0755 for 100755, else 0644), 0755 for directories, 0777 for
 * symlinks, and 0644 (mknod's default under umask 022) for devices and FIFOs.
 */
export function gitDefaultMode(type: EntryType, gitMode?: number): number {
  switch (type) {
    case 'file':
      return gitMode === MODE_EXECUTABLE ? 0o755 : 0o644;
    case 'dir':
      return 0o755;
    case 'link':
      return 0o777;
    case 'char':
    case 'block':
    case 'fifo':
      return 0o644;
  }
}

// ---------------------------------------------------------------------------------------
// vis(3) encoding

/** True for bytes written as themselves: printable ASCII except `\`, `#` and `=`. */
function isPlainByte(b: number): boolean {
  return b >= 0x21 && b <= 0x7e && b !== 0x5c && b !== 0x23 && b !== 0x3d;
}

const OCTAL_ESCAPES: string[] = Array.from({ length: 256 }, (_, b) => '\\' + b.toString(8).padStart(3, '0'));

/** Append the UTF-8 bytes of code point `cp` as escapes (lone surrogates as U+FFFD, like Buffer.from). */
function escapeCodePoint(cp: number): string {
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
  if (cp < 0x800) return OCTAL_ESCAPES[0xc0 | (cp >> 6)]! + OCTAL_ESCAPES[0x80 | (cp & 0x3f)]!;
  if (cp < 0x10000) {
    return OCTAL_ESCAPES[0xe0 | (cp >> 12)]! + OCTAL_ESCAPES[0x80 | ((cp >> 6) & 0x3f)]! + OCTAL_ESCAPES[0x80 | (cp & 0x3f)]!;
  }
  return (
    OCTAL_ESCAPES[0xf0 | (cp >> 18)]! +
    OCTAL_ESCAPES[0x80 | ((cp >> 12) & 0x3f)]! +
    OCTAL_ESCAPES[0x80 | ((cp >> 6) & 0x3f)]! +
    OCTAL_ESCAPES[0x80 | (cp & 0x3f)]!
  );
}

/** vis-encode bytes (or a string's UTF-8 bytes): non-plain bytes become `\ooo`. */
export function visEncode(input: string | Buffer): string {
  let out = '';
  let start = 0;
  if (typeof input === 'string') {
    for (let i = 0; i < input.length; i++) {
      const c = input.charCodeAt(i);
      if (isPlainByte(c)) continue;
      if (i > start) out += input.slice(start, i);
      if (c < 0x80) {
        out += OCTAL_ESCAPES[c];
      } else {
        const cp = input.codePointAt(i)!;
        out += escapeCodePoint(cp);
        if (cp > 0xffff) i++;
      }
      start = i + 1;
    }
    return start === 0 ? input : start < input.length ? out + input.slice(start) : out;
  }
  for (let i = 0; i < input.length; i++) {
    const b = input[i]!;
    if (isPlainByte(b)) continue;
    if (i > start) out += input.toString('latin1', start, i);
    out += OCTAL_ESCAPES[b];
    start = i + 1;
  }
  if (start < input.length) out += input.toString('latin1', start);
  return out;
}

function isOctalDigit(c: number, max: number): boolean {
  return c >= 0x30 && c <= max;
}

/** Decode `\ooo` escapes; null when an escape is malformed. Other characters are UTF-8. */
function tryVisDecode(text: string): Buffer | null {
  if (!text.includes('\\')) return Buffer.from(text, 'utf8');
  const buf = Buffer.allocUnsafe(text.length * 3);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) {
      const a = text.charCodeAt(i + 1);
      const b = text.charCodeAt(i + 2);
      const d = text.charCodeAt(i + 3);
      if (!isOctalDigit(a, 0x33) || !isOctalDigit(b, 0x37) || !isOctalDigit(d, 0x37)) return null;
      buf[n++] = ((a - 0x30) << 6) | ((b - 0x30) << 3) | (d - 0x30);
      i += 3;
    } else if (c < 0x80) {
      buf[n++] = c;
    } else {
      // Raw non-ASCII text (a hand edit): keep its UTF-8 bytes, surrogate pairs included.
      const len = c >= 0xd800 && c <= 0xdbff ? 2 : 1;
      n += buf.write(text.slice(i, i + len), n, 'utf8');
      i += len - 1;
    }
  }
  return buf.subarray(0, n);
}

/** Decode a vis-encoded string to its bytes; ManifestError on a malformed escape. */
export function visDecode(text: string): Buffer {
  const out = tryVisDecode(text);
  if (out === null) {
    throw new ManifestError(`malformed escape in "${text}": write bytes as \\ooo (three octal digits)`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Formatting

/** Compare two strings by their UTF-8 bytes (the manifest's and git's sort order). */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // UTF-16 order equals UTF-8 byte order except that surrogates (U+10000 and up) must
    // sort after U+E000..U+FFFF: lift them above the BMP before comparing.
    const xs = x >= 0xd800 && x <= 0xdfff ? x + 0x10000 : x;
    const ys = y >= 0xd800 && y <= 0xdfff ? y + 0x10000 : y;
    return xs - ys;
  }
  return a.length - b.length;
}

const SURROGATE = /[\ud800-\udfff]/;

/** Sort items by their `path` in UTF-8 byte order, in place; native comparison when no path needs more. */
export function sortByPath<T extends { path: string }>(items: T[]): T[] {
  if (items.some((x) => SURROGATE.test(x.path))) return items.sort((a, b) => compareUtf8(a.path, b.path));
  return items.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The path token of a line: `.` for the root, `./` + vis-encoded path; also for messages. */
export function pathToken(path: string): string {
  return path === '' ? '.' : './' + visEncode(path);
}

function formatMode(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/** One manifest line (without newline) for an entry. */
export function formatEntry(e: ManifestEntry): string {
  let line = `${pathToken(e.path)} type=${e.type}`;
  if (e.mode !== undefined) line += ` mode=${formatMode(e.mode)}`;
  if (e.uid !== undefined) line += ` uid=${e.uid}`;
  if (e.gid !== undefined) line += ` gid=${e.gid}`;
  if (e.rdev !== undefined) line += ` device=native,${e.rdev.major},${e.rdev.minor}`;
  if (e.inode !== undefined) line += ` inode=${e.inode}`;
  if (e.nlink !== undefined) line += ` nlink=${e.nlink}`;
  if (e.xattrs !== undefined) {
    for (const name of [...e.xattrs.keys()].sort(compareUtf8)) {
      line += ` xattr.${visEncode(name)}=${visEncode(e.xattrs.get(name)!)}`;
    }
  }
  return line;
}

/**
 * Render entries as manifest text: signature, comment, then one line per entry sorted by
 * path bytes. Throws ManifestError on a duplicate path (the result would not parse back).
 */
export function formatManifest(entries: Iterable<ManifestEntry>): string {
  const sorted = sortByPath([...entries]);
  const lines = [MANIFEST_SIGNATURE, MANIFEST_COMMENT];
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i]!;
    if (i > 0 && sorted[i - 1]!.path === e.path) {
      throw new ManifestError(`duplicate manifest entry for ${pathToken(e.path)}: each path may appear once`);
    }
    lines.push(formatEntry(e));
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------
// Parsing

const KNOWN_KEYWORDS = 'type, mode, uid, gid, device, inode, nlink, xattr.NAME';

/** Parse an unsigned 32-bit decimal; null if it is not one. */
function parseU32(value: string): number | null {
  if (!/^[0-9]{1,10}$/.test(value)) return null;
  const n = Number(value);
  return n <= MAX_U32 ? n : null;
}

/** Turn a path token into a tree path, or return why it is not acceptable. */
function parsePathToken(token: string): { path: string } | { problem: string } {
  if (token === '.') return { path: '' };
  if (!token.startsWith('./')) {
    return {
      problem: token.startsWith('/')
        ? `absolute path "${token}": write paths relative to the tree top as ./PATH`
        : `path "${token}" does not start with "./": write full paths as ./PATH (/set and relative mtree lines are not supported)`,
    };
  }
  let path = token.slice(2);
  if (path.includes('\\')) {
    const bytes = tryVisDecode(path);
    if (bytes === null) return { problem: `malformed escape in path "${token}": write bytes as \\ooo (three octal digits)` };
    if (!isUtf8(bytes)) return { problem: `path "${token}" is not valid UTF-8: gitroot paths must be UTF-8` };
    path = bytes.toString('utf8');
  }
  if (path.includes('\0')) return { problem: `path "${token}" contains a NUL byte: remove it` };
  for (const part of path.split('/')) {
    if (part === '' || part === '.' || part === '..') {
      return { problem: `path "${token}" has an empty, "." or ".." component: write a plain ./a/b path` };
    }
    if (part === '.git') return { problem: `path "${token}" has a .git component, which git cannot store: remove the line` };
  }
  return { path };
}

function lineError(source: string, line: number, what: string): ManifestError {
  return new ManifestError(`${source}:${line}: ${what}`, { data: { source, line } });
}

/** Bits of the fixed keywords, to catch one given twice on a line. */
const KEYWORD_BITS: Record<string, number> = { type: 1, mode: 2, uid: 4, gid: 8, device: 16, inode: 32, nlink: 64 };

/**
 * Parse manifest text into entries by path ('' = root). `source` names the text in errors
 * (e.g. "<commit>:.gitroot.mtree"). Rejects, as ManifestError naming source:line, unknown
 * keywords, bad numbers and octal modes, unsafe or duplicate paths, and hardlink groups
 * whose nlink does not match the number of their paths.
 */
export function parseManifest(text: string, source: string): Map<string, ManifestEntry> {
  const entries = new Map<string, ManifestEntry>();
  const groups = new Map<number, HardlinkGroup>();
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();

  for (let ln = 0; ln < lines.length; ln++) {
    const trimmed = lines[ln]!.trim();
    if (trimmed === '' || trimmed.charCodeAt(0) === 0x23 /* # */) continue;
    const fail: Fail = (what) => {
      throw lineError(source, ln + 1, what);
    };
    const tokens = trimmed.split(/[ \t]+/);
    const p = parsePathToken(tokens[0]!);
    if ('problem' in p) fail(p.problem);
    else if (entries.has(p.path)) fail(`duplicate entry for "${tokens[0]}": keep one line per path`);
    const e = parseKeywords((p as { path: string }).path, tokens, fail);
    if (e.inode !== undefined) joinHardlinkGroup(groups, e, ln + 1, fail);
    entries.set(e.path, e);
  }

  for (const [inode, g] of groups) {
    if (g.count !== g.nlink) {
      throw lineError(source, g.line, `hardlink group inode=${inode} says nlink=${g.nlink} but has ${g.count} paths: fix nlink or add the missing paths`);
    }
  }
  return entries;
}

/** Paths seen so far of one hardlink group (by its inode= number). */
interface HardlinkGroup {
  nlink: number;
  count: number;
  /** The line of the group's first path. */
  line: number;
}

type Fail = (what: string) => never;

/** The keywords of one manifest line (`tokens`: its path token, then keyword=value pairs) as the entry of `path`, checked on its own. */
function parseKeywords(path: string, tokens: string[], fail: Fail): ManifestEntry {
  const e: ManifestEntry = { path, type: 'file' };
  let seen = 0;
  let xattrList = 0;
  for (let i = 1; i < tokens.length; i++) {
    const tok = tokens[i]!;
    const eq = tok.indexOf('=');
    if (eq <= 0) fail(`"${tok}" is not a keyword=value pair: known keywords are ${KNOWN_KEYWORDS}`);
    const key = tok.slice(0, eq);
    const value = tok.slice(eq + 1);
    if (key.startsWith('xattr.')) {
      xattrList += parseXattr(e, tok, key, value, fail);
      if (xattrList > XATTR_LIST_MAX) fail(`the xattr names of "${tokens[0]}" take over ${XATTR_LIST_MAX} bytes: Linux allows at most that many`);
      continue;
    }
    const bit = KEYWORD_BITS[key];
    if (bit === undefined) fail(`unknown keyword "${key}": known keywords are ${KNOWN_KEYWORDS}`);
    if (seen & bit!) fail(`keyword "${key}" given twice: keep one`);
    seen |= bit!;
    if (value === '') fail(`keyword "${key}" has no value: give one or remove it`);
    parseKeyword(e, key, value, fail);
  }
  if (!(seen & KEYWORD_BITS.type!)) fail(`no type= keyword: every line needs one (file, dir, link, char, block or fifo)`);
  checkEntry(e, fail);
  return e;
}

/** An `xattr.NAME=VALUE` keyword into `e.xattrs`; returns the bytes the name takes in the xattr list. */
function parseXattr(e: ManifestEntry, tok: string, key: string, value: string, fail: Fail): number {
  const name = tryVisDecode(key.slice(6));
  const val = tryVisDecode(value);
  if (name === null || val === null) return fail(`malformed escape in "${tok}": write bytes as \\ooo (three octal digits)`);
  if (name.length === 0 || !isUtf8(name) || name.includes(0)) fail(`bad xattr name in "${tok}": names are non-empty UTF-8`);
  const nameStr = name.toString('utf8');
  if (name.length > XATTR_NAME_MAX) fail(`xattr name of ${name.length} bytes: Linux allows at most ${XATTR_NAME_MAX}`);
  if (val.length > XATTR_SIZE_MAX) fail(`xattr ${nameStr} has a value of ${val.length} bytes: Linux allows at most ${XATTR_SIZE_MAX}`);
  e.xattrs ??= new Map();
  if (e.xattrs.has(nameStr)) fail(`keyword "${key}" given twice: keep one`);
  e.xattrs.set(nameStr, val);
  return name.length + 1;
}

/** One of the fixed keywords (KEYWORD_BITS), its value not empty, into `e`. */
function parseKeyword(e: ManifestEntry, key: string, value: string, fail: Fail): void {
  switch (key) {
    case 'type':
      if (!ENTRY_TYPES.has(value)) fail(`unknown type "${value}": use file, dir, link, char, block or fifo`);
      e.type = value as EntryType;
      return;
    case 'mode':
      if (!/^[0-7]{1,4}$/.test(value)) fail(`bad mode "${value}": write permission bits in octal, at most 7777`);
      e.mode = parseInt(value, 8);
      return;
    case 'device': {
      const m = /^native,([0-9]+),([0-9]+)$/.exec(value);
      const major = m ? parseU32(m[1]!) : null;
      const minor = m ? parseU32(m[2]!) : null;
      if (major === null || minor === null) return fail(`bad device "${value}": write device=native,MAJOR,MINOR`);
      e.rdev = { major, minor };
      return;
    }
    default: {
      const n = parseU32(value);
      if (n === null) return fail(`bad ${key} "${value}": write a decimal number from 0 to ${MAX_U32}`);
      e[key as 'uid' | 'gid' | 'inode' | 'nlink'] = n;
    }
  }
}

/** The rules between the keywords of one entry: the root is a directory, devices have numbers, hardlinks are files. */
function checkEntry(e: ManifestEntry, fail: Fail): void {
  const type = e.type;
  if (e.path === '' && type !== 'dir') fail(`the root "." must have type=dir`);
  const isDevice = type === 'char' || type === 'block';
  if (isDevice && e.rdev === undefined) fail(`type=${type} needs device=native,MAJOR,MINOR`);
  if (!isDevice && e.rdev !== undefined) fail(`device= is only allowed on char and block devices, not type=${type}`);
  if ((e.inode === undefined) !== (e.nlink === undefined)) fail(`inode= and nlink= go together: give both or neither`);
  if (e.inode !== undefined) {
    if (type !== 'file') fail(`inode=/nlink= (hardlinks) are only allowed on type=file`);
    if (e.nlink! < 2) fail(`nlink=${e.nlink} is below 2: a hardlink group has at least two paths`);
  }
}

/** Counts `e` (which has inode= and nlink=) into its hardlink group; every path of a group must say the same nlink. */
function joinHardlinkGroup(groups: Map<number, HardlinkGroup>, e: ManifestEntry, line: number, fail: Fail): void {
  const g = groups.get(e.inode!);
  if (g === undefined) groups.set(e.inode!, { nlink: e.nlink!, count: 1, line });
  else if (g.nlink !== e.nlink) fail(`inode=${e.inode} has nlink=${e.nlink} here but nlink=${g.nlink} on line ${g.line}: make them equal`);
  else g.count++;
}
