/**
 * The filesystem view of one commit: turns git trees plus the commit's metadata manifest
 * (.gitroot.mtree) into inodes with full POSIX attributes, one directory at a time.
 *
 * Inode numbers live in an InodeTable that outlives any one view: a mount starts with the
 * view of its first revision, and a switch (tree-switch.ts) moves it to the view of another
 * while unchanged paths keep their numbers. Each directory inode names the view it is listed
 * from (a shared ViewRef, so moving every current directory to a new view is one
 * assignment), so a directory that a switch removed still lists its old revision for whoever
 * holds it. Hardlink groups share one inode.
 *
 * A view owns the defaults for repos without a manifest (root:root, git's 644/755, dirs
 * 755), and the entries git cannot store (empty directories, devices, FIFOs), which live
 * only in the manifest and are merged into their parent directory's listing. The manifest
 * itself is hidden: the served root is exactly the committed directory.
 */
import { createHash } from 'node:crypto';
import { MANIFEST_NAME, gitDefaultMode, parseManifest, type ManifestEntry } from '../manifest/mtree.js';
import { MODE_EXECUTABLE, MODE_FILE, MODE_GITLINK, MODE_SYMLINK, MODE_TREE, parseCommit, parseTree } from '../store/git-objects.js';
import { ManifestError, ObjectCorruptError } from '../errors/errors.js';
import { makedev, type FsEntry } from './entry-codec.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from '../fsutil/file-mode.js';

/** The part of the object store this view needs. */
export interface ObjectReader {
  readObject(oid: string | Buffer): { type: string; data: Buffer };
  readHeader(oid: string | Buffer): { type: string; size: number };
}

/** Largest manifest served: a Debian root's is ~10 KB; this bounds what a hostile one can make the daemon hold. */
const MANIFEST_MAX_BYTES = 64 * 1024 * 1024;

/** Which view lists a directory inode: shared by every directory of the tree a mount serves now. */
export interface ViewRef {
  view: CommitTreeView;
}

/** What an inode number stands for, on the JS side. */
export interface DirNode {
  kind: 'dir';
  path: string;
  tree: Buffer | null; // null: a directory known only from the manifest
  ref: ViewRef;
}
export interface FileNode {
  kind: 'file';
  blob: Buffer;
  size: number;
}
export type Node = DirNode | FileNode | { kind: 'other' };
type TreeEntries = ReturnType<typeof parseTree>;

/** A directory a manifest entry implies (not stored by git): its children by name. */
type ManifestChildren = Map<string, Map<string, ManifestEntry | null>>;

/**
 * One child of a directory as a revision describes it, before it has an inode: enough to tell
 * whether two revisions hold the same thing at a path (`key`) without reading any blob.
 */
export interface ChildDesc {
  name: string;
  path: string;
  kind: 'dir' | 'file' | 'link' | 'special';
  /** Equal keys: the same inode (type, content id, permission bits, owner, xattrs, hardlink group). Directories: their own attributes only. */
  key: string;
  /** Directories: the git tree (null for a manifest-only directory or a submodule). */
  tree: Buffer | null;
  /** Files and symlinks: the blob. */
  oid: Buffer | null;
  gitMode: number;
  /** The manifest record of the path, when it has one that applies. */
  m: ManifestEntry | undefined;
}

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

function xattrKey(x: Map<string, Buffer> | undefined): string {
  if (!x || x.size === 0) return '';
  return [...x.keys()]
    .sort()
    .map((k) => `${k}=${x.get(k)!.toString('hex')}`)
    .join(',');
}

/**
 * Inode numbers of a mount and what each stands for, across every revision it served. Numbers
 * are never reused: an inode the kernel still holds after a switch keeps meaning its old file.
 */
export class InodeTable {
  private readonly nodes = new Map<number, Node>();
  /** Each regular file's next regular file in its directory, in readdir order (read-ahead). */
  private readonly nextFiles = new Map<number, number>();
  private next = 2;
  /** Called with every directory listed (tree-switch.ts watches for directories loaded while it plans). */
  onList: ((ino: number) => void) | null = null;

  /** A new inode number for `node`. */
  alloc(node: Node): number {
    const ino = this.next++;
    this.nodes.set(ino, node);
    return ino;
  }

  set(ino: number, node: Node): void {
    this.nodes.set(ino, node);
  }

  get(ino: number): Node | undefined {
    return this.nodes.get(ino);
  }

  /** The directory node of `ino`, if it is one. */
  dir(ino: number): DirNode | undefined {
    const n = this.nodes.get(ino);
    return n && n.kind === 'dir' ? n : undefined;
  }

  /** Forgets an inode nothing can reach any more (the native side freed it). */
  forget(ino: number): void {
    this.nodes.delete(ino);
    this.nextFiles.delete(ino);
  }

  /** Number of inodes known. */
  get size(): number {
    return this.nodes.size;
  }

  /** Lists directory `ino` from the view it belongs to: every child with its attributes. Allocates the children's inodes. */
  listDirectory(ino: number): FsEntry[] {
    const node = this.dir(ino);
    if (!node) throw new Error(`inode ${ino} is not a directory`);
    const out = node.ref.view.listNode(node);
    this.onList?.(ino);
    return out;
  }

  /** The blob behind a regular file's inode, or undefined for anything else. */
  fileBlob(ino: number): { blob: Buffer; size: number } | undefined {
    const node = this.nodes.get(ino);
    return node && node.kind === 'file' ? node : undefined;
  }

  /** The regular file after `ino` in its directory's listing, if any. */
  nextFile(ino: number): number | undefined {
    return this.nextFiles.get(ino);
  }

  /** Records the readdir order (byte order of names, as the native side sorts) of regular files. */
  linkFiles(entries: FsEntry[]): void {
    const files = entries.filter((e) => (e.mode & S_IFMT) === S_IFREG);
    files.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    for (let i = 0; i + 1 < files.length; i++) this.nextFiles.set(files[i].ino, files[i + 1].ino);
  }
}

export class CommitTreeView {
  readonly commit: string;
  readonly time: number;
  readonly rootTree: Buffer;
  readonly table: InodeTable;
  private readonly store: ObjectReader;
  private readonly manifest: Map<string, ManifestEntry>;
  private readonly manifestOnly: ManifestChildren = new Map();
  /** Manifest hardlink group -> inode (seeded by a switch for groups that stay). */
  private readonly hardlinkInodes = new Map<number, number>();
  private groupPaths: Map<number, string> | null = null;
  private digests: Map<string, string> | null = null;

  private constructor(store: ObjectReader, commit: string, time: number, rootTree: Buffer, manifest: Map<string, ManifestEntry>, table: InodeTable) {
    this.store = store;
    this.commit = commit;
    this.time = time;
    this.rootTree = rootTree;
    this.manifest = manifest;
    this.table = table;
    this.indexManifestOnly();
  }

  /**
   * Opens the view of `commit` (a resolved 40-hex commit id): reads the commit, root tree and
   * manifest. Without `table` it is a fresh mount's view: inode 1 is its root. With `table`
   * (a switch), nothing in the table changes until the switch is applied.
   */
  static open(store: ObjectReader, commit: string, table?: InodeTable): CommitTreeView {
    const obj = store.readObject(commit);
    if (obj.type !== 'commit') throw new ObjectCorruptError(`${commit} is a ${obj.type}, not a commit: give a commit SHA, branch or tag`);
    const c = parseCommit(obj.data);
    const rootTree = Buffer.from(c.tree, 'hex');
    let manifest = new Map<string, ManifestEntry>();
    const rootObj = store.readObject(rootTree);
    if (rootObj.type !== 'tree') {
      throw new ObjectCorruptError(
        `commit ${commit} names ${c.tree} as its tree, but that is a ${rootObj.type}: the revision is damaged; serve another revision`,
      );
    }
    const root = parseTree(rootObj.data);
    const m = root.find((e) => e.name === MANIFEST_NAME && (e.mode === MODE_FILE || e.mode === MODE_EXECUTABLE));
    if (m) {
      const size = store.readHeader(m.oid).size;
      if (size > MANIFEST_MAX_BYTES) {
        throw new ManifestError(
          `${commit.slice(0, 12)}:${MANIFEST_NAME} is ${size} bytes, over the ${MANIFEST_MAX_BYTES}-byte limit: the revision is damaged or hostile; serve another revision`,
        );
      }
      const text = store.readObject(m.oid).data.toString('utf8');
      manifest = parseManifest(text, `${commit.slice(0, 12)}:${MANIFEST_NAME}`);
    }
    const fresh = table === undefined;
    const view = new CommitTreeView(store, commit, c.committerTime, rootTree, manifest, table ?? new InodeTable());
    if (fresh) view.table.set(1, { kind: 'dir', path: '', tree: rootTree, ref: { view } });
    return view;
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

  /** The root directory's own key (see ChildDesc.key). */
  rootKey(): string {
    return this.dirKey(this.manifest.get(''));
  }

  /** Parsed trees, briefly: a directory's tree is read for its parent's nlink, then listed. */
  private readonly treeCache = new Map<string, TreeEntries>();

  private readTree(oid: Buffer): TreeEntries {
    const key = oid.toString('latin1');
    const hit = this.treeCache.get(key);
    if (hit) return hit;
    const obj = this.store.readObject(oid);
    if (obj.type !== 'tree')
      throw new ObjectCorruptError(`object ${oid.toString('hex')} should be a tree but is a ${obj.type}: the repository is damaged; run 'git fsck'`);
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
      ino,
      name,
      mode: S_IFDIR | (ok && m.mode !== undefined ? m.mode : 0o755),
      uid: (ok && m.uid) || 0,
      gid: (ok && m.gid) || 0,
      nlink: 2 + subdirs,
      size: 4096,
      rdev: 0,
      xattrs: ok ? m.xattrs : undefined,
    };
  }

  private dirKey(m: ManifestEntry | null | undefined): string {
    const ok = m && m.type === 'dir';
    return ok ? `d ${m.mode ?? 0o755} ${m.uid ?? 0} ${m.gid ?? 0} ${xattrKey(m.xattrs)}` : 'd';
  }

  /** Paths of each hardlink group, joined: what a group is, whatever number a manifest gives it. */
  private groupOf(m: ManifestEntry | undefined): string {
    if (m?.inode === undefined) return '';
    if (this.groupPaths === null) {
      const groups = new Map<number, string[]>();
      for (const e of this.manifest.values()) {
        if (e.inode === undefined) continue;
        let list = groups.get(e.inode);
        if (!list) groups.set(e.inode, (list = []));
        list.push(e.path);
      }
      this.groupPaths = new Map([...groups].map(([k, v]) => [k, v.sort().join('\0')]));
    }
    return this.groupPaths.get(m.inode) ?? '';
  }

  /**
   * A digest of every manifest record at or under `path` (without the group numbers, which
   * mean nothing across commits): equal digests and equal trees mean an unchanged subtree.
   */
  subtreeDigest(path: string): string {
    if (this.digests === null) {
      const parts = new Map<string, string[]>();
      const records = [...this.manifest.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      for (const e of records) {
        const line = `${e.path}\0${e.type} ${e.mode ?? ''} ${e.uid ?? ''} ${e.gid ?? ''} ${e.rdev ? `${e.rdev.major},${e.rdev.minor}` : ''} ${e.nlink ?? ''} ${this.groupOf(e)} ${xattrKey(e.xattrs)}`;
        for (let p: string | null = e.path; p !== null; p = p === '' ? null : parentOf(p)) {
          let list = parts.get(p);
          if (!list) parts.set(p, (list = []));
          list.push(line);
        }
      }
      this.digests = new Map([...parts].map(([p, lines]) => [p, createHash('sha1').update(lines.join('\n')).digest('hex')]));
    }
    return this.digests.get(path) ?? '';
  }

  /** The manifest record of `path` when it is of `type`. */
  private record(path: string, type: ManifestEntry['type']): ManifestEntry | undefined {
    const m = this.manifest.get(path);
    return m && m.type === type ? m : undefined;
  }

  /** Describes the children of directory `path` (its git tree `tree`): no blob is read. */
  describe(path: string, tree: Buffer | null): ChildDesc[] {
    const out: ChildDesc[] = [];
    const seen = new Set<string>();
    for (const e of tree ? this.readTree(tree) : []) {
      if (path === '' && e.name === MANIFEST_NAME) continue;
      seen.add(e.name);
      const p = join(path, e.name);
      if (e.mode === MODE_TREE || e.mode === MODE_GITLINK) {
        const m = this.manifest.get(p);
        out.push({ name: e.name, path: p, kind: 'dir', key: this.dirKey(m), tree: e.mode === MODE_TREE ? e.oid : null, oid: null, gitMode: e.mode, m });
      } else if (e.mode === MODE_SYMLINK) {
        const m = this.record(p, 'link');
        out.push({
          name: e.name,
          path: p,
          kind: 'link',
          key: `l ${e.oid.toString('hex')} ${m?.uid ?? 0} ${m?.gid ?? 0} ${xattrKey(m?.xattrs)}`,
          tree: null,
          oid: e.oid,
          gitMode: e.mode,
          m,
        });
      } else {
        const m = this.record(p, 'file');
        const mode = m?.mode ?? gitDefaultMode('file', e.mode);
        const key = `f ${e.oid.toString('hex')} ${mode} ${m?.uid ?? 0} ${m?.gid ?? 0} ${m?.nlink ?? 1} ${this.groupOf(m)} ${xattrKey(m?.xattrs)}`;
        out.push({ name: e.name, path: p, kind: 'file', key, tree: null, oid: e.oid, gitMode: e.mode, m });
      }
    }
    for (const [name, m] of this.manifestOnly.get(path) ?? []) {
      if (seen.has(name)) continue;
      const p = join(path, name);
      if (!m || m.type === 'dir') {
        out.push({ name, path: p, kind: 'dir', key: this.dirKey(m), tree: null, oid: null, gitMode: MODE_TREE, m: m ?? undefined });
        continue;
      }
      const key = `s ${m.type} ${m.mode ?? 0o644} ${m.uid ?? 0} ${m.gid ?? 0} ${m.rdev ? `${m.rdev.major},${m.rdev.minor}` : ''} ${m.nlink ?? 1} ${this.groupOf(m)} ${xattrKey(m.xattrs)}`;
      out.push({ name, path: p, kind: 'special', key, tree: null, oid: null, gitMode: 0, m });
    }
    return out;
  }

  /** The node a child stands for (a directory's belongs to `ref`). */
  nodeOf(d: ChildDesc, ref: ViewRef): Node {
    if (d.kind === 'dir') return { kind: 'dir', path: d.path, tree: d.tree, ref };
    if (d.kind === 'file') return { kind: 'file', blob: d.oid!, size: this.blobSize(d) };
    return { kind: 'other' };
  }

  private blobSize(d: ChildDesc): number {
    const header = this.store.readHeader(d.oid!);
    if (header.type !== 'blob') throw new ObjectCorruptError(`file ${d.path} points at a ${header.type}, not a blob: the repository is damaged`);
    return header.size;
  }

  /**
   * The inode of a child that gets a new one: a hardlink group's members share the first
   * number given to the group (or the number a switch kept for it, see seedHardlink).
   */
  allocFor(d: ChildDesc, ref: ViewRef): number {
    const group = d.m?.inode;
    if (group !== undefined && d.kind !== 'dir') {
      const known = this.hardlinkInodes.get(group);
      // (A group's inode can be gone only in a view a switch left: then it gets a new one.)
      if (known !== undefined && this.table.get(known) !== undefined) return known;
      const ino = this.table.alloc(this.nodeOf(d, ref));
      this.hardlinkInodes.set(group, ino);
      return ino;
    }
    return this.table.alloc(this.nodeOf(d, ref));
  }

  /** Every path of a hardlink group, with its group number. */
  hardlinkGroups(): Array<[string, number]> {
    return [...this.manifest.values()].filter((e) => e.inode !== undefined).map((e) => [e.path, e.inode!]);
  }

  /** Describes the entry at `path` (reading the trees on its way), or undefined when there is none. */
  describePath(path: string): ChildDesc | undefined {
    if (path === '') return undefined;
    const parts = path.split('/');
    let tree: Buffer | null = this.rootTree;
    let dir = '';
    for (let i = 0; i < parts.length - 1; i++) {
      const d: ChildDesc | undefined = this.describe(dir, tree).find((c) => c.name === parts[i]);
      if (!d || d.kind !== 'dir') return undefined;
      tree = d.tree;
      dir = d.path;
    }
    return this.describe(dir, tree).find((c) => c.name === parts[parts.length - 1]);
  }

  /** A switch kept inode `ino` for hardlink group `group` of this view: later members get it too. */
  seedHardlink(group: number, ino: number): void {
    this.hardlinkInodes.set(group, ino);
  }

  /** The inode a hardlink group of this view has, if one was given. */
  hardlinkInode(group: number): number | undefined {
    return this.hardlinkInodes.get(group);
  }

  /** The attributes of a child as inode `ino`. */
  entryOf(d: ChildDesc, ino: number): FsEntry {
    const m = d.m;
    if (d.kind === 'dir') {
      const sub = d.tree ? this.subdirsOrZero(d.path, d.tree) : this.countSubdirs(d.path, []);
      return this.dirEntry(ino, d.name, m, sub);
    }
    if (d.kind === 'link') {
      const target = this.store.readObject(d.oid!);
      if (target.type !== 'blob') throw new ObjectCorruptError(`symlink ${d.path} points at a ${target.type}, not a blob: the repository is damaged`);
      return {
        ino,
        name: d.name,
        mode: S_IFLNK | 0o777,
        uid: m?.uid ?? 0,
        gid: m?.gid ?? 0,
        nlink: 1,
        size: target.data.length,
        rdev: 0,
        link: target.data,
        xattrs: m?.xattrs,
      };
    }
    if (d.kind === 'file') {
      const node = this.table.fileBlob(ino);
      const size = node ? node.size : this.blobSize(d);
      return {
        ino,
        name: d.name,
        mode: S_IFREG | (m?.mode ?? gitDefaultMode('file', d.gitMode)),
        uid: m?.uid ?? 0,
        gid: m?.gid ?? 0,
        nlink: m?.nlink ?? 1,
        size,
        rdev: 0,
        xattrs: m?.xattrs,
      };
    }
    const type = m!.type === 'char' ? S_IFCHR : m!.type === 'block' ? S_IFBLK : S_IFIFO;
    return {
      ino,
      name: d.name,
      mode: type | (m!.mode ?? 0o644),
      uid: m!.uid ?? 0,
      gid: m!.gid ?? 0,
      nlink: m!.nlink ?? 1,
      size: 0,
      rdev: m!.rdev ? makedev(m!.rdev.major, m!.rdev.minor) : 0,
      xattrs: m!.xattrs,
    };
  }

  /** Lists a directory node of this view: every child with its attributes; allocates the children's inodes. */
  listNode(node: DirNode): FsEntry[] {
    const out: FsEntry[] = [];
    for (const d of this.describe(node.path, node.tree)) {
      const ino = this.allocFor(d, node.ref);
      out.push(this.entryOf(d, ino));
    }
    this.table.linkFiles(out);
    return out;
  }

  /** Lists directory `ino` (of the table this view belongs to). */
  listDirectory(ino: number): FsEntry[] {
    return this.table.listDirectory(ino);
  }

  /** The regular file after `ino` in its directory's listing, if any. */
  nextFile(ino: number): number | undefined {
    return this.table.nextFile(ino);
  }

  /** The blob behind a regular file's inode, or undefined for anything else. */
  fileBlob(ino: number): { blob: Buffer; size: number } | undefined {
    return this.table.fileBlob(ino);
  }
}
