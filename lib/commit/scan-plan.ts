/**
 * Pure decisions of a tree scan: from lstat facts about every path, decide what git stores
 * (files and symlinks with their git modes) and what the manifest must record (everything
 * git cannot). No I/O here; scan-tree.ts gathers the facts and calls planScan.
 */

import { isUtf8 } from 'node:buffer';
import { SourceTreeError } from '../errors/errors.js';
import { MODE_EXECUTABLE, MODE_FILE, MODE_SYMLINK } from '../store/git-objects.js';
import { MANIFEST_NAME, compareUtf8, gitDefaultMode, pathToken, visEncode, type EntryType, type ManifestEntry } from '../manifest/mtree.js';
import { fileTypeBits, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK } from '../fsutil/file-mode.js';

/** Git tree modes of what a scan commits. */
export type GitFileMode = typeof MODE_FILE | typeof MODE_EXECUTABLE | typeof MODE_SYMLINK;

/**
 * A file or symlink to store in git. `S` is where its content comes from: a path on disk
 * for a directory scan, a blob already streamed for a tar member.
 */
export interface ScannedFile<S = string> {
  /** Tree path, '/'-separated, no leading './'. */
  path: string;
  gitMode: GitFileMode;
  /** Where the content is: for a directory scan, the absolute path of the file (for symlinks, the link itself). */
  source: S;
  /** Symlink target, for gitMode 120000. */
  linkTarget?: string;
  /** Bytes: file size, or symlink target length. */
  size: number;
  /** Hardlink group number (same as the manifest's inode=): paths sharing content. */
  hardlink?: number;
}

/** What a scan found: git's part, the manifest's part, and what was skipped. */
export interface ScanResult<S = string> {
  files: ScannedFile<S>[];
  manifest: ManifestEntry[];
  warnings: string[];
}

/**
 * lstat facts about one path, as the walk gathered them (or as a tar member states them:
 * see commit/tar-facts.ts).
 */
export interface NodeFacts<S = string> {
  /** Tree path; '' is the root directory itself. */
  path: string;
  /** Where the content is: the absolute path on disk for a directory scan. */
  source: S;
  /** st_mode: file type bits and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  /** st_rdev (meaningful for devices only). */
  rdev: bigint;
  /** st_dev and st_ino, to recognise hardlinks. */
  dev: bigint;
  ino: bigint;
  nlink: number;
  size: number;
  linkTarget?: string;
  xattrs?: Map<string, Buffer>;
}

const FILE_TYPES: ReadonlyMap<number, EntryType | 'socket'> = new Map([
  [S_IFREG, 'file'],
  [S_IFDIR, 'dir'],
  [S_IFLNK, 'link'],
  [S_IFCHR, 'char'],
  [S_IFBLK, 'block'],
  [S_IFIFO, 'fifo'],
  [S_IFSOCK, 'socket'],
] as const);

/** The entry type of an st_mode, 'socket', or null for a type Linux does not have. */
export function fileTypeOf(mode: number): EntryType | 'socket' | null {
  return FILE_TYPES.get(fileTypeBits(mode)) ?? null;
}

/** Git mode for a regular file's permissions: 100755 if any exec bit is set, else 100644. */
export function gitModeForFile(perm: number): typeof MODE_FILE | typeof MODE_EXECUTABLE {
  return (perm & 0o111) !== 0 ? MODE_EXECUTABLE : MODE_FILE;
}

/** A Linux dev_t (glibc encoding) from major and minor numbers; the inverse of splitDev. */
export function joinDev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

/** Split a Linux dev_t (glibc encoding) into major and minor numbers. */
export function splitDev(dev: bigint): { major: number; minor: number } {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return { major: Number(major & 0xffffffffn), minor: Number(minor & 0xffffffffn) };
}

/**
 * Check one directory entry name (raw bytes) under `parent` (a tree path) and return it
 * as a string. Throws SourceTreeError for names git or the manifest cannot hold: `.git`
 * anywhere, the manifest's own name at the top, names that are not UTF-8.
 */
export function checkName(name: Buffer, parent: string): string {
  if (!isUtf8(name)) {
    const shown = (parent === '' ? './' : pathToken(parent) + '/') + visEncode(name);
    throw new SourceTreeError(`file name ${shown} is not valid UTF-8: rename it (e.g. with convmv) before committing`, { data: { path: shown } });
  }
  const s = name.toString('utf8');
  const path = parent === '' ? s : `${parent}/${s}`;
  if (s === '.git') {
    throw new SourceTreeError(`${pathToken(path)} is a git directory or file, which a git tree cannot contain: remove it or move it out of the tree`, {
      data: { path },
    });
  }
  if (parent === '' && s === MANIFEST_NAME) {
    throw new SourceTreeError(`${pathToken(path)} exists in the source tree, but gitroot writes its own manifest there: remove or rename it`, {
      data: { path },
    });
  }
  return s;
}

/** A symlink's target (raw bytes) as a string; SourceTreeError if it is not UTF-8, which git and the manifest need. */
export function checkLinkTarget(target: Buffer, path: string): string {
  if (!isUtf8(target)) {
    throw new SourceTreeError(`symlink ${pathToken(path)} points to a name that is not valid UTF-8: change its target before committing`, { data: { path } });
  }
  return target.toString('utf8');
}

/** Directories whose subtree holds at least one git-stored path (git creates those). */
export function dirsWithContent(gitPaths: Iterable<string>): Set<string> {
  const dirs = new Set<string>(['']);
  for (const p of gitPaths) {
    let end = p.lastIndexOf('/');
    while (end > 0) {
      const d = p.slice(0, end);
      if (dirs.has(d)) break;
      dirs.add(d);
      end = d.lastIndexOf('/');
    }
  }
  return dirs;
}

/** Facts about one path after classification, the input of planManifestEntry. */
export interface EntryFacts {
  path: string;
  type: EntryType;
  /** Permission bits (12 bits). */
  perm: number;
  uid: number;
  gid: number;
  /** Git mode, for files and symlinks. */
  gitMode?: number;
  /** Whether git will have this path (files, symlinks, directories with git content). */
  gitStored: boolean;
  rdev?: { major: number; minor: number };
  hardlink?: { inode: number; nlink: number };
  xattrs?: Map<string, Buffer>;
}

/**
 * The manifest entry for one path, or null when git's defaults already say everything.
 * Paths git stores get only what differs from the defaults (mode, uid, gid, hardlink
 * group, xattrs); paths git cannot store (devices, FIFOs, directories without git
 * content) always get type, mode, uid and gid so they can be recreated.
 */
export function planManifestEntry(f: EntryFacts): ManifestEntry | null {
  const e: ManifestEntry = { path: f.path, type: f.type };
  let needed = !f.gitStored;
  if (!f.gitStored || f.perm !== gitDefaultMode(f.type, f.gitMode)) {
    e.mode = f.perm;
    needed = true;
  }
  if (!f.gitStored || f.uid !== 0) {
    e.uid = f.uid;
    needed = true;
  }
  if (!f.gitStored || f.gid !== 0) {
    e.gid = f.gid;
    needed = true;
  }
  if (f.rdev !== undefined && (f.type === 'char' || f.type === 'block')) e.rdev = f.rdev;
  if (f.hardlink !== undefined) {
    e.inode = f.hardlink.inode;
    e.nlink = f.hardlink.nlink;
    needed = true;
  }
  if (f.xattrs !== undefined && f.xattrs.size > 0) {
    e.xattrs = f.xattrs;
    needed = true;
  }
  return needed ? e : null;
}

/**
 * Number hardlink groups: paths sharing a key (dev:ino) form a group when there are at
 * least two of them; groups are numbered 1, 2, ... in path order of their first path.
 */
export function planHardlinks(candidates: Array<{ path: string; key: string }>): Map<string, { inode: number; nlink: number }> {
  const byKey = new Map<string, string[]>();
  for (const c of candidates) {
    const list = byKey.get(c.key);
    if (list) list.push(c.path);
    else byKey.set(c.key, [c.path]);
  }
  const groups = [...byKey.values()].filter((g) => g.length > 1).map((g) => g.sort(compareUtf8));
  groups.sort((a, b) => compareUtf8(a[0]!, b[0]!));
  const out = new Map<string, { inode: number; nlink: number }>();
  groups.forEach((g, i) => {
    for (const p of g) out.set(p, { inode: i + 1, nlink: g.length });
  });
  return out;
}

/**
 * Decide the whole scan from the facts of every path (the root '' included): files and
 * symlinks for git, manifest entries, and warnings for what is skipped (sockets).
 */
export function planScan<S>(nodes: NodeFacts<S>[]): ScanResult<S> {
  const warnings: string[] = [];
  const kept: Array<{ n: NodeFacts<S>; type: EntryType }> = [];
  for (const n of nodes) {
    const type = fileTypeOf(n.mode);
    if (type === 'socket') {
      warnings.push(`skipped socket ${pathToken(n.path)}: sockets cannot be stored; the program that listens on it recreates it`);
      continue;
    }
    if (type === null) {
      throw new SourceTreeError(`${pathToken(n.path)} has an unknown file type (st_mode ${n.mode.toString(8)}): remove it from the tree`, {
        data: { path: n.path },
      });
    }
    if (n.path === '' && type !== 'dir') {
      const root = typeof n.source === 'string' ? n.source : 'the root "."';
      throw new SourceTreeError(`${root} is not a directory: give the root directory to commit`, { data: { path: root } });
    }
    kept.push({ n, type });
  }
  kept.sort((a, b) => compareUtf8(a.n.path, b.n.path));

  const links = planHardlinks(kept.filter(({ n, type }) => type === 'file' && n.nlink > 1).map(({ n }) => ({ path: n.path, key: `${n.dev}:${n.ino}` })));
  const files: ScannedFile<S>[] = [];
  for (const { n, type } of kept) {
    if (type === 'file') {
      const f: ScannedFile<S> = { path: n.path, gitMode: gitModeForFile(n.mode), source: n.source, size: n.size };
      const h = links.get(n.path);
      if (h) f.hardlink = h.inode;
      files.push(f);
    } else if (type === 'link') {
      files.push({ path: n.path, gitMode: MODE_SYMLINK, source: n.source, linkTarget: n.linkTarget ?? '', size: n.size });
    }
  }
  const withContent = dirsWithContent(files.map((f) => f.path));

  const manifest: ManifestEntry[] = [];
  for (const { n, type } of kept) {
    const facts: EntryFacts = {
      path: n.path,
      type,
      perm: n.mode & 0o7777,
      uid: n.uid,
      gid: n.gid,
      gitStored: type === 'file' || type === 'link' || (type === 'dir' && withContent.has(n.path)),
    };
    if (type === 'file') facts.gitMode = gitModeForFile(n.mode);
    if (type === 'link') facts.gitMode = MODE_SYMLINK;
    if (type === 'char' || type === 'block') facts.rdev = splitDev(n.rdev);
    const h = links.get(n.path);
    if (h) facts.hardlink = h;
    if (n.xattrs) facts.xattrs = n.xattrs;
    const e = planManifestEntry(facts);
    if (e) manifest.push(e);
  }
  return { files, manifest, warnings };
}
