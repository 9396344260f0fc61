/**
 * Pure decisions of `gitroot commit --from-tar`: turns tar members into the same lstat-like
 * facts (NodeFacts) a directory scan gathers, so that planScan (scan-plan.ts), the one owner
 * of what git stores and what the manifest records, decides the tree of an archive exactly
 * as it decides the tree `tar -x` would have made (extracted by root, `-p`, numeric owners).
 *
 * What extraction would do, and so what is recorded:
 * - Paths are normalised (`./a//b/` is `a/b`, `./` is the root); absolute paths and `..`
 *   components are refused, as are names that are not UTF-8, `.git` and a top-level
 *   `.gitroot.mtree` (the same rules as a directory scan, from checkName).
 * - A directory that appears only implicitly (a member `a/b/c` without `a/`) is created
 *   by GNU tar as root with mkdir(0777 & ~umask): 0755 root:root under the usual umask
 *   022, with no xattrs. The root itself, when the archive has no `./` member, is the
 *   directory extracted into, made the same way.
 * - A hardlink member gets the facts of the member it links to (one inode): owners, mode,
 *   xattrs and content; its own header fields are ignored, as link(2) ignores them.
 * - Symlinks have mode 0777 whatever the archive says (Linux has no symlink modes).
 * - Extended attributes Linux would refuse (outside the security., system., trusted. and
 *   user. namespaces, or over its size limits) are errors: extraction would drop them with
 *   a warning and the extracted tree would differ from the archive.
 * Refused outright, because extraction would lose data silently: a path given twice, a
 * hardlink to a member not seen before it (or to a directory), a member inside a path the
 * archive holds as something other than a directory.
 */

import { SourceTreeError } from '../errors/errors.js';
import { XATTR_LIST_MAX, XATTR_NAME_MAX, XATTR_SIZE_MAX, pathToken } from '../manifest/mtree.js';
import { memberLabel, type TarMember, type TarMemberType } from '../tar/tar-read.js';
import { checkLinkTarget, checkName, joinDev, type NodeFacts } from './scan-plan.js';
import { fileTypeBits, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG } from '../fsutil/file-mode.js';

/** Where a regular file's content went: the fast-import mark of its blob. */
export interface TarBlob {
  mark: number;
}

/** Facts of one tree path from an archive; `source` is set for regular files once their blob is written. */
export type TarNodeFacts = NodeFacts<TarBlob | null>;

const S_IFMT_OF: Readonly<Record<Exclude<TarMemberType, 'hardlink'>, number>> = {
  file: S_IFREG,
  dir: S_IFDIR,
  symlink: S_IFLNK,
  char: S_IFCHR,
  block: S_IFBLK,
  fifo: S_IFIFO,
};

/** Mode and owner of a directory that extraction creates on its own (see the header). */
export const IMPLICIT_DIR = { mode: S_IFDIR | 0o755, uid: 0, gid: 0 } as const;

const XATTR_NAMESPACES = ['security.', 'system.', 'trusted.', 'user.'];

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

function memberError(name: Buffer, archive: string, what: string, fix: string): SourceTreeError {
  return new SourceTreeError(`member ${memberLabel(name)} of ${archive} ${what}: ${fix}`, { data: { archive, member: memberLabel(name) } });
}

/**
 * The tree path of a member name: './' and empty components dropped, '' for the root.
 * Throws SourceTreeError for absolute paths, `..` components, NUL bytes and what
 * checkName refuses.
 */
export function memberPath(name: Buffer, archive: string): string {
  if (name.length === 0) throw memberError(name, archive, 'has an empty name', 'create the archive again with tar or bsdtar');
  if (name.includes(0)) throw memberError(name, archive, 'has a NUL byte in its name', 'create the archive again with tar or bsdtar');
  if (name[0] === 0x2f) {
    throw memberError(name, archive, 'has an absolute path', 'archive the tree relative to its root (tar -C DIR -cf OUT .), so names read ./etc/...');
  }
  let path = '';
  let start = 0;
  for (let i = 0; i <= name.length; i++) {
    if (i < name.length && name[i] !== 0x2f) continue;
    const part = name.subarray(start, i);
    start = i + 1;
    if (part.length === 0 || (part.length === 1 && part[0] === 0x2e)) continue;
    if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e) {
      throw memberError(
        name,
        archive,
        'has a ".." component, which would climb out of the tree',
        'archive the tree from its root (tar -C DIR -cf OUT .), without .. in any name',
      );
    }
    let s: string;
    try {
      s = checkName(part, path);
    } catch (err) {
      // The directory scan's own rule and words, with the archive named.
      if (err instanceof SourceTreeError) throw new SourceTreeError(`${archive}: ${err.message}`, { data: { ...err.data, archive } });
      throw err;
    }
    path = path === '' ? s : `${path}/${s}`;
  }
  return path;
}

function checkXattrs(m: TarMember, archive: string): void {
  let list = 0;
  for (const [name, value] of m.xattrs) {
    const bytes = Buffer.byteLength(name);
    if (!XATTR_NAMESPACES.some((ns) => name.startsWith(ns) && name.length > ns.length)) {
      throw memberError(
        m.name,
        archive,
        `has xattr ${name}, outside the namespaces Linux knows (security., system., trusted., user.)`,
        'remove it before archiving; extraction could not set it',
      );
    }
    if (bytes > XATTR_NAME_MAX)
      throw memberError(m.name, archive, `has an xattr name of ${bytes} bytes`, `Linux allows at most ${XATTR_NAME_MAX}; remove it before archiving`);
    if (value.length > XATTR_SIZE_MAX)
      throw memberError(m.name, archive, `has xattr ${name} with ${value.length} bytes`, `Linux allows at most ${XATTR_SIZE_MAX}; remove it before archiving`);
    list += bytes + 1;
  }
  if (list > XATTR_LIST_MAX)
    throw memberError(m.name, archive, `has xattr names of over ${XATTR_LIST_MAX} bytes together`, 'Linux allows no more; remove some before archiving');
}

/**
 * Collects the facts of an archive's members in the order they come, checking each as it
 * arrives, then completes the tree (implicit directories, hardlink counts) in finish().
 */
export class TarTreeFacts {
  private readonly byPath = new Map<string, TarNodeFacts>();
  private nextIno = 1n;

  constructor(private readonly archive: string) {}

  /**
   * Records member `m` and returns its facts. For a regular file that is not a hardlink,
   * `source` is null: the caller streams the content and sets it.
   */
  admit(m: TarMember): TarNodeFacts {
    const path = memberPath(m.name, this.archive);
    const earlier = this.byPath.get(path);
    if (earlier !== undefined) {
      throw memberError(
        m.name,
        this.archive,
        `names ${pathToken(path)}, which an earlier member already holds`,
        'extraction would keep only the last one; create the archive with each path once',
      );
    }
    let n: TarNodeFacts;
    if (m.type === 'hardlink') {
      const targetPath = memberPath(m.linkname, this.archive);
      const target = this.byPath.get(targetPath);
      if (target === undefined) {
        throw memberError(
          m.name,
          this.archive,
          `is a hardlink to ${memberLabel(m.linkname)}, which no member before it holds`,
          'put the file itself into the archive before its other names (tar and bsdtar do this when they archive both)',
        );
      }
      if (fileTypeBits(target.mode) === S_IFDIR) {
        throw memberError(
          m.name,
          this.archive,
          `is a hardlink to the directory ${pathToken(targetPath)}`,
          'directories cannot be hardlinked; remove the member',
        );
      }
      n = { ...target, path };
    } else {
      checkXattrs(m, this.archive);
      const perm = m.type === 'symlink' ? 0o777 : m.mode & 0o7777;
      n = {
        path,
        source: null,
        mode: S_IFMT_OF[m.type] | perm,
        uid: m.uid,
        gid: m.gid,
        rdev: m.type === 'char' || m.type === 'block' ? joinDev(m.devmajor, m.devminor) : 0n,
        dev: 0n,
        ino: this.nextIno++,
        nlink: 1,
        size: m.type === 'file' ? m.size : m.type === 'symlink' ? m.linkname.length : 0,
      };
      if (m.type === 'symlink') n.linkTarget = checkLinkTarget(m.linkname, path);
      if (m.xattrs.size > 0) n.xattrs = m.xattrs;
    }
    if (path === '' && fileTypeBits(n.mode) !== S_IFDIR) {
      throw memberError(m.name, this.archive, 'is the root of the tree but not a directory', 'archive a directory tree (tar -C DIR -cf OUT .)');
    }
    this.byPath.set(path, n);
    return n;
  }

  /**
   * Every path of the tree, the root and the directories extraction would create on its
   * own included, with hardlink counts. Throws SourceTreeError for a member inside a path
   * that is not a directory.
   */
  finish(): TarNodeFacts[] {
    const implicit: TarNodeFacts[] = [];
    const addImplicit = (path: string): void => {
      const n: TarNodeFacts = { path, source: null, ...IMPLICIT_DIR, rdev: 0n, dev: 0n, ino: this.nextIno++, nlink: 1, size: 0 };
      this.byPath.set(path, n);
      implicit.push(n);
    };
    if (!this.byPath.has('')) addImplicit('');
    const links = new Map<bigint, number>();
    for (const n of [...this.byPath.values()]) {
      if (fileTypeBits(n.mode) === S_IFREG) links.set(n.ino, (links.get(n.ino) ?? 0) + 1);
      for (let p = n.path; p !== '';) {
        p = parentOf(p);
        const up = this.byPath.get(p);
        if (up === undefined) {
          addImplicit(p);
          continue;
        }
        if (fileTypeBits(up.mode) !== S_IFDIR) {
          const what = fileTypeBits(up.mode) === S_IFLNK ? 'a symlink' : 'not a directory';
          throw new SourceTreeError(
            `member ${pathToken(n.path)} of ${this.archive} is inside ${pathToken(p)}, which the archive holds as ${what}: remove one of the two from the archive`,
            { data: { archive: this.archive, member: pathToken(n.path) } },
          );
        }
        break; // a directory already seen: its own parents were checked when it was
      }
    }
    const out = [...this.byPath.values()];
    for (const n of out) if (fileTypeBits(n.mode) === S_IFREG) n.nlink = links.get(n.ino) ?? 1;
    return out;
  }
}
