/**
 * The filesystem view of one commit: turns git trees plus the commit's metadata manifest
 * (.gitroot.mtree) into inodes with full POSIX attributes, one directory at a time.
 *
 * Owns inode numbering (stable for the life of a mount; hardlink groups share one inode),
 * the defaults for repos without a manifest (root:root, git's 644/755, dirs 755), and the
 * entries git cannot store (empty directories, devices, FIFOs), which live only in the
 * manifest and are merged into their parent directory's listing. The manifest itself is
 * hidden: the served root is exactly the committed directory.
 */
import { MANIFEST_NAME, gitDefaultMode, parseManifest, type ManifestEntry } from '../manifest/mtree.js';
import { MODE_EXECUTABLE, MODE_FILE, MODE_GITLINK, MODE_SYMLINK, MODE_TREE, parseCommit, parseTree } from '../store/git-objects.js';
import { ManifestError, ObjectCorruptError } from '../errors/errors.js';
import { makedev, type FsEntry } from './entry-codec.js';

/** The part of the object store this view needs. */
export interface ObjectReader {
  readObject(oid: string | Buffer): { type: string; data: Buffer };
  readHeader(oid: string | Buffer): { type: string; size: number };
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

/** Largest manifest served: a Debian root's is ~10 KB; this bounds what a hostile one can make the daemon hold. */
const MANIFEST_MAX_BYTES = 64 * 1024 * 1024;


/** What an inode number stands for, on the JS side. */
interface DirNode {
  kind: 'dir';
  path: string;
  tree: Buffer | null; // null: a directory known only from the manifest
}
interface FileNode {
  kind: 'file';
  blob: Buffer;
  size: number;
}
type Node = DirNode | FileNode | { kind: 'other' };
type TreeEntries = ReturnType<typeof parseTree>;

/** A directory a manifest entry implies (not stored by git): its children by name. */
type ManifestChildren = Map<string, Map<string, ManifestEntry | null>>;

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}
function baseOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

export class CommitTreeView {
  readonly commit: string;
  readonly time: number;
  readonly rootTree: Buffer;
  private readonly store: ObjectReader;
  private readonly manifest: Map<string, ManifestEntry>;
  private readonly manifestOnly: ManifestChildren = new Map();
  private readonly nodes: Node[] = [];
  private readonly hardlinkInodes = new Map<number, number>();
  /** Each regular file's next regular file in its directory, in readdir order (read-ahead). */
  private readonly nextFiles = new Map<number, number>();
  private nextIno = 2;

  private constructor(store: ObjectReader, commit: string, time: number, rootTree: Buffer, manifest: Map<string, ManifestEntry>) {
    this.store = store;
    this.commit = commit;
    this.time = time;
    this.rootTree = rootTree;
    this.manifest = manifest;
    this.nodes[1] = { kind: 'dir', path: '', tree: rootTree };
    this.indexManifestOnly();
  }

  /** Opens the view of `commit` (a resolved 40-hex commit id): reads the commit, root tree and manifest. */
  static open(store: ObjectReader, commit: string): CommitTreeView {
    const obj = store.readObject(commit);
    if (obj.type !== 'commit') throw new ObjectCorruptError(`${commit} is a ${obj.type}, not a commit: give a commit SHA, branch or tag`);
    const c = parseCommit(obj.data);
    const rootTree = Buffer.from(c.tree, 'hex');
    let manifest = new Map<string, ManifestEntry>();
    const rootObj = store.readObject(rootTree);
    if (rootObj.type !== 'tree') {
      throw new ObjectCorruptError(`commit ${commit} names ${c.tree} as its tree, but that is a ${rootObj.type}: the revision is damaged; serve another revision`);
    }
    const root = parseTree(rootObj.data);
    const m = root.find((e) => e.name === MANIFEST_NAME && (e.mode === MODE_FILE || e.mode === MODE_EXECUTABLE));
    if (m) {
      const size = store.readHeader(m.oid).size;
      if (size > MANIFEST_MAX_BYTES) {
        throw new ManifestError(`${commit.slice(0, 12)}:${MANIFEST_NAME} is ${size} bytes, over the ${MANIFEST_MAX_BYTES}-byte limit: the revision is damaged or hostile; serve another revision`);
      }
      const text = store.readObject(m.oid).data.toString('utf8');
      manifest = parseManifest(text, `${commit.slice(0, 12)}:${MANIFEST_NAME}`);
    }
    return new CommitTreeView(store, commit, c.committerTime, rootTree, manifest);
  }

  /** Number of manifest records (for logs and tests). */
  get manifestSize(): number {
    return this.manifest.size;
  }

  /** Indexes manifest entries that git cannot hold, plus every directory on their way up. */
  private indexManifestOnly(): void {
    const add = (parent: string, name: string, entry: ManifestEntry | null) => {
      let kids = this.manifestOnly.get(parent);
      if (!kids) this.manifestOnly.set(parent, (kids = new Map()));
      if (!kids.has(name) || entry) kids.set(name, entry);
    };
    for (const e of this.manifest.values()) {
      if (e.path === '' || !(e.type === 'dir' || e.type === 'char' || e.type === 'block' || e.type === 'fifo')) continue;
      add(parentOf(e.path), baseOf(e.path), e);
      for (let p = parentOf(e.path); p !== ''; p = parentOf(p)) add(parentOf(p), baseOf(p), this.manifest.get(p) ?? null);
    }
  }

  /** The root directory's own entry (inode 1). */
  rootEntry(): FsEntry {
    const m = this.manifest.get('');
    return this.dirEntry(1, '', m, this.countSubdirs('', this.readTree(this.rootTree)));
  }

  /** Parsed trees, briefly: a directory's tree is read for its parent's nlink, then listed. */
  private readonly treeCache = new Map<string, TreeEntries>();

  private readTree(oid: Buffer): TreeEntries {
    const key = oid.toString('latin1');
    const hit = this.treeCache.get(key);
    if (hit) return hit;
    const obj = this.store.readObject(oid);
    if (obj.type !== 'tree') throw new ObjectCorruptError(`object ${oid.toString('hex')} should be a tree but is a ${obj.type}: the repository is damaged; run 'git fsck'`);
    const entries = parseTree(obj.data);
    if (this.treeCache.size >= 128) this.treeCache.delete(this.treeCache.keys().next().value as string);
    this.treeCache.set(key, entries);
    return entries;
  }

  private countSubdirs(path: string, entries: TreeEntries): number {
    let n = 0;
    const names = new Set<string>();
    for (const e of entries) {
      if (path === '' && e.name === MANIFEST_NAME) continue;
      names.add(e.name);
      if (e.mode === MODE_TREE || e.mode === MODE_GITLINK) n++;
    }
    for (const [name, m] of this.manifestOnly.get(path) ?? []) if (!names.has(name) && (!m || m.type === 'dir')) n++;
    return n;
  }

  /**
   * A child directory's subdirectory count (for its nlink). A damaged or hostile child tree
   * counts as empty here: listing the child fails with EIO, the parent still lists.
   */
  private subdirsOrZero(path: string, tree: Buffer): number {
    try {
      return this.countSubdirs(path, this.readTree(tree));
    } catch {
      return 0;
    }
  }

  private dirEntry(ino: number, name: string, m: ManifestEntry | null | undefined, subdirs: number): FsEntry {
    const ok = m && m.type === 'dir';
    return {
      ino, name,
      mode: S_IFDIR | (ok && m.mode !== undefined ? m.mode : 0o755),
      uid: (ok && m.uid) || 0,
      gid: (ok && m.gid) || 0,
      nlink: 2 + subdirs,
      size: 4096,
      rdev: 0,
      xattrs: ok ? m.xattrs : undefined,
    };
  }

  private inodeFor(m: ManifestEntry | undefined, node: Node): number {
    if (m?.inode !== undefined) {
      const known = this.hardlinkInodes.get(m.inode);
      if (known !== undefined) return known;
      const ino = this.nextIno++;
      this.hardlinkInodes.set(m.inode, ino);
      this.nodes[ino] = node;
      return ino;
    }
    const ino = this.nextIno++;
    this.nodes[ino] = node;
    return ino;
  }

  /** Lists directory `ino`: every child with its attributes. Allocates the children's inodes. */
  listDirectory(ino: number): FsEntry[] {
    const node = this.nodes[ino];
    if (!node || node.kind !== 'dir') throw new Error(`inode ${ino} is not a directory`);
    const out: FsEntry[] = [];
    const seen = new Set<string>();
    const gitEntries = node.tree ? this.readTree(node.tree) : [];
    for (const e of gitEntries) {
      if (node.path === '' && e.name === MANIFEST_NAME) continue;
      seen.add(e.name);
      const path = join(node.path, e.name);
      const m = this.manifest.get(path);
      if (e.mode === MODE_TREE || e.mode === MODE_GITLINK) {
        const tree = e.mode === MODE_TREE ? e.oid : null;
        const child = this.inodeFor(undefined, { kind: 'dir', path, tree });
        const sub = tree ? this.subdirsOrZero(path, tree) : this.countSubdirs(path, []);
        out.push(this.dirEntry(child, e.name, m, sub));
      } else if (e.mode === MODE_SYMLINK) {
        const target = this.store.readObject(e.oid);
        if (target.type !== 'blob') throw new ObjectCorruptError(`symlink ${path} points at a ${target.type}, not a blob: the repository is damaged`);
        const child = this.inodeFor(undefined, { kind: 'other' });
        const ok = m && m.type === 'link';
        out.push({
          ino: child, name: e.name, mode: S_IFLNK | 0o777,
          uid: (ok && m.uid) || 0, gid: (ok && m.gid) || 0, nlink: 1,
          size: target.data.length, rdev: 0, link: target.data,
          xattrs: ok ? m.xattrs : undefined,
        });
      } else {
        const header = this.store.readHeader(e.oid);
        if (header.type !== 'blob') throw new ObjectCorruptError(`file ${path} points at a ${header.type}, not a blob: the repository is damaged`);
        const size = header.size;
        const ok = m && m.type === 'file';
        const dflt = gitDefaultMode('file', e.mode);
        const child = this.inodeFor(ok ? m : undefined, { kind: 'file', blob: e.oid, size });
        out.push({
          ino: child, name: e.name,
          mode: S_IFREG | (ok && m.mode !== undefined ? m.mode : dflt),
          uid: (ok && m.uid) || 0, gid: (ok && m.gid) || 0,
          nlink: (ok && m.nlink) || 1,
          size, rdev: 0,
          xattrs: ok ? m.xattrs : undefined,
        });
      }
    }
    for (const [name, m] of this.manifestOnly.get(node.path) ?? []) {
      if (seen.has(name)) continue;
      const path = join(node.path, name);
      if (!m || m.type === 'dir') {
        const child = this.inodeFor(undefined, { kind: 'dir', path, tree: null });
        out.push(this.dirEntry(child, name, m, this.countSubdirs(path, [])));
        continue;
      }
      const type = m.type === 'char' ? S_IFCHR : m.type === 'block' ? S_IFBLK : S_IFIFO;
      out.push({
        ino: this.inodeFor(m, { kind: 'other' }), name,
        mode: type | (m.mode ?? 0o644),
        uid: m.uid ?? 0, gid: m.gid ?? 0, nlink: m.nlink ?? 1, size: 0,
        rdev: m.rdev ? makedev(m.rdev.major, m.rdev.minor) : 0,
        xattrs: m.xattrs,
      });
    }
    this.linkFiles(out);
    return out;
  }

  /** Records the readdir order (byte order of names, as the native side sorts) of regular files. */
  private linkFiles(entries: FsEntry[]): void {
    const files = entries.filter((e) => (e.mode & 0o170000) === S_IFREG);
    files.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    for (let i = 0; i + 1 < files.length; i++) this.nextFiles.set(files[i].ino, files[i + 1].ino);
  }

  /** The regular file after `ino` in its directory's listing, if any. */
  nextFile(ino: number): number | undefined {
    return this.nextFiles.get(ino);
  }

  /** The blob behind a regular file's inode, or undefined for anything else. */
  fileBlob(ino: number): { blob: Buffer; size: number } | undefined {
    const node = this.nodes[ino];
    return node && node.kind === 'file' ? node : undefined;
  }
}
