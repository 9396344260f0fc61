/**
 * Plans a mount's switch from the revision it serves to another: which inodes stay, which
 * paths get new inodes, and the new children of every loaded directory whose listing changes
 * (the batch the native side applies in one step, native/gitfs_fuse.c gitfs_swap).
 *
 * The rule, per path (docs/live.md):
 *   - a directory that stays a directory keeps its inode (its listing and attributes are
 *     brought up to date; the kernel's cache of it is invalidated);
 *   - anything else keeps its inode only when it is the same thing (same content id,
 *     permission bits, owner, xattrs and hardlink group: ChildDesc.key), so the kernel keeps
 *     its cached pages and attributes;
 *   - what changed gets a new inode; the old one stays valid for whoever holds it (an open
 *     file reads its old content to the end) and a directory that went away keeps listing its
 *     old revision for a process inside it.
 * Subtrees whose git tree and manifest records are equal are not even looked at, so a
 * one-package update of a whole OS visits a few directories. Only directories the kernel has
 * loaded need a new listing: the others are listed from the new revision when first asked.
 *
 * Planning reads the object store and yields between directories, so the daemon keeps
 * answering meanwhile; a directory listed (from the old revision) while it plans is planned
 * too before the batch is applied. Nothing changes until apply(): a revision that cannot be
 * read leaves the mount as it was.
 */
import { setImmediate as yieldNow } from 'node:timers/promises';
import { decodeChildren, encodeSwap, type FsEntry, type NativeChild, type SwapOp } from './entry-codec.js';
import { S_IFDIR } from '../fsutil/file-mode.js';
import { CommitTreeView, InodeTable, type ChildDesc, type ViewRef } from './tree-view.js';

/** How long planning works before it lets the event loop run (ms). */
const SLICE_MS = 8;

/** What a switch did, for logs and `gitroot switch --json`. */
export interface SwitchCounts {
  /** Directories whose listings were compared. */
  dirsCompared: number;
  /** Directories whose children changed (new listings sent). */
  dirsChanged: number;
  /** Entries of those directories that kept their inode. */
  kept: number;
  /** Entries that got a new inode. */
  created: number;
  /** Inodes left to their holders (replaced or removed paths the kernel knew). */
  detached: number;
}

/**
 * A planned switch: the batch for the native side and the JS side's part, applied together:
 * `const batch = plan.finish(); addon.swap(batch, ...); plan.apply();` in one tick.
 */
export interface SwitchPlan {
  counts: SwitchCounts;
  /** Plans the directories listed while planning, and returns the batch (synchronous). */
  finish(): Buffer;
  /** The JS side's part; call right after the native swap succeeded, in the same tick. */
  apply(): void;
  /** Undoes the inode numbers planning allocated (the switch was not applied). */
  abort(): void;
}

/** The native side's knowledge the planner needs. */
export interface NativeTree {
  /** A loaded directory's children, or null when it is not loaded (or unknown). */
  children(ino: number): NativeChild[] | null;
}

/** NativeTree over the addon's children() call. */
export function nativeTree(children: (ino: number) => Buffer | null): NativeTree {
  return {
    children: (ino) => {
      const b = children(ino);
      return b === null ? null : decodeChildren(b);
    },
  };
}

function sameTree(a: Buffer | null, b: Buffer | null): boolean {
  return a === null ? b === null : b !== null && a.equals(b);
}

/** A kept directory still to compare: its inode, path and its old and new trees. */
interface Visit {
  ino: number;
  path: string;
  oldTree: Buffer | null;
  newTree: Buffer | null;
}

/**
 * Plans the switch of `table` (whose current directories share `current`) from `oldView` to
 * `newView`. Reads the object store (throws, allocating nothing that stays, when the new
 * revision cannot be read); changes nothing until apply().
 */
export async function planSwitch(o: {
  table: InodeTable;
  current: ViewRef;
  oldView: CommitTreeView;
  newView: CommitTreeView;
  native: NativeTree;
}): Promise<SwitchPlan> {
  const { table, current, oldView, newView, native } = o;
  const ops = new Map<string, SwapOp>(); // 'a<ino>' attrs, 'c<ino>' children: a later plan of the same wins
  const newTrees = new Map<number, Buffer | null>(); // kept directories whose tree changes
  const allocated: number[] = [];
  const detached = new Set<number>();
  const linkLists: FsEntry[][] = [];
  const counts: SwitchCounts = { dirsCompared: 0, dirsChanged: 0, kept: 0, created: 0, detached: 0 };
  /** Kept directories not loaded when planned: if one is listed before apply, it is planned again. */
  const unloaded = new Map<number, Visit>();
  const listedMeanwhile = new Set<number>();
  const queue: Visit[] = [];

  // Hardlink groups that stay the same keep their inode in directories listed later.
  seedHardlinks(oldView, newView);

  const visit = (v: Visit): void => {
    if (sameTree(v.oldTree, v.newTree) && oldView.subtreeDigest(v.path) === newView.subtreeDigest(v.path)) return;
    const kids = native.children(v.ino);
    if (kids === null) {
      unloaded.set(v.ino, v);
      return;
    }
    unloaded.delete(v.ino);
    counts.dirsCompared++;
    const oldDescs = new Map(oldView.describe(v.path, v.oldTree).map((d) => [d.name, d]));
    const natByName = new Map(kids.map((k) => [k.name, k]));
    const entries: FsEntry[] = [];
    let changed = false;
    let created = 0;
    let kept = 0;
    for (const d of newView.describe(v.path, v.newTree)) {
      const old = oldDescs.get(d.name);
      const nat = natByName.get(d.name);
      natByName.delete(d.name);
      if (old && nat && old.kind === 'dir' && d.kind === 'dir' && table.dir(nat.ino)) {
        // A directory stays a directory: same inode, new attributes and (when loaded) listing.
        kept++;
        entries.push(keepEntry(nat.ino, d.name, S_IFDIR));
        if (!sameTree(old.tree, d.tree)) newTrees.set(nat.ino, d.tree);
        if (!sameTree(old.tree, d.tree) || old.key !== d.key) ops.set(`a${nat.ino}`, { op: 'attr', entry: newView.entryOf(d, nat.ino) });
        const next = { ino: nat.ino, path: d.path, oldTree: old.tree, newTree: d.tree };
        if (nat.loaded) queue.push(next);
        else if (!sameTree(old.tree, d.tree) || oldView.subtreeDigest(d.path) !== newView.subtreeDigest(d.path)) unloaded.set(nat.ino, next);
        continue;
      }
      if (old && nat && old.kind !== 'dir' && old.kind === d.kind && old.key === d.key && table.get(nat.ino) !== undefined) {
        kept++;
        entries.push(keepEntry(nat.ino, d.name, 0));
        continue;
      }
      // New, or changed: a new inode (members of one hardlink group share it).
      changed = true;
      if (nat) detachTree(nat.ino);
      const ino = newInode(d);
      entries.push(newView.entryOf(d, ino));
      created++;
    }
    for (const gone of natByName.values()) {
      changed = true;
      detachTree(gone.ino);
    }
    if (!changed) return;
    counts.dirsChanged++;
    counts.kept += kept;
    counts.created += created;
    ops.set(`c${v.ino}`, { op: 'children', dir: v.ino, entries });
    linkLists.push(entries);
  };

  /** A new inode for `d` in the new revision (its directories belong to `current`). */
  const newInode = (d: ChildDesc): number => {
    const group = d.m?.inode;
    const before = group === undefined || d.kind === 'dir' ? undefined : newView.hardlinkInode(group);
    const ino = newView.allocFor(d, current);
    if (ino !== before) allocated.push(ino);
    return ino;
  };

  /** Marks an inode the switch takes out of the tree (its holders keep it). */
  const detachTree = (ino: number): void => {
    detached.add(ino);
  };

  const root: Visit = { ino: 1, path: '', oldTree: oldView.rootTree, newTree: newView.rootTree };
  if (oldView.rootKey() !== newView.rootKey() || !sameTree(oldView.rootTree, newView.rootTree)) {
    ops.set('a1', { op: 'attr', entry: newView.rootEntry() });
  }
  queue.push(root);
  const watch = table.onList;
  table.onList = (ino) => {
    listedMeanwhile.add(ino);
    watch?.(ino);
  };
  try {
    let slice = performance.now();
    while (queue.length) {
      visit(queue.shift()!);
      if (performance.now() - slice > SLICE_MS) {
        await yieldNow();
        slice = performance.now();
      }
    }
  } catch (e) {
    table.onList = watch;
    for (const ino of allocated) table.forget(ino);
    throw e;
  }

  /** The directories listed while planning that were planned as not loaded: planned again now. */
  const catchUp = (): void => {
    for (const ino of listedMeanwhile) {
      const v = unloaded.get(ino);
      if (v) queue.push(v);
    }
    listedMeanwhile.clear();
    while (queue.length) visit(queue.shift()!);
  };

  return {
    counts,
    finish(): Buffer {
      // Last-moment plans (synchronous from here to apply()): directories the kernel loaded meanwhile.
      catchUp();
      table.onList = watch;
      return encodeSwap(orderOps([...ops.values()]));
    },
    apply(): void {
      // Directories a switch removes keep listing the old revision for whoever is inside.
      const frozen: ViewRef = { view: oldView };
      const stack = [...detached];
      while (stack.length) {
        const ino = stack.pop()!;
        const node = table.dir(ino);
        if (!node || node.ref !== current) continue;
        node.ref = frozen;
        for (const k of native.children(ino) ?? []) stack.push(k.ino);
      }
      counts.detached = detached.size;
      for (const [ino, tree] of newTrees) {
        const node = table.dir(ino);
        if (node) node.tree = tree;
      }
      const rootNode = table.dir(1);
      if (rootNode) rootNode.tree = newView.rootTree;
      for (const list of linkLists) table.linkFiles(list);
      current.view = newView;
    },
    abort(): void {
      table.onList = watch;
      for (const ino of allocated) table.forget(ino);
    },
  };
}

/** An entry that keeps an existing inode (the native side does not read its attributes). */
function keepEntry(ino: number, name: string, mode: number): FsEntry {
  return { ino, name, mode, uid: 0, gid: 0, nlink: 1, size: 0, rdev: 0 };
}

/** Children before attributes, so each attribute update finds its inode (new ones included). */
function orderOps(ops: SwapOp[]): SwapOp[] {
  return [...ops.filter((o) => o.op === 'children'), ...ops.filter((o) => o.op === 'attr')];
}

/**
 * Hardlink groups the old view gave an inode and the new view has with the same members and
 * the same content and attributes: the new view gives them the same inode.
 */
function seedHardlinks(oldView: CommitTreeView, newView: CommitTreeView): void {
  for (const [path, group] of oldView.hardlinkGroups()) {
    const ino = oldView.hardlinkInode(group);
    if (ino === undefined) continue;
    const o = oldView.describePath(path);
    const n = newView.describePath(path);
    if (o && n && o.kind === n.kind && o.key === n.key && n.m?.inode !== undefined) newView.seedHardlink(n.m.inode, ino);
  }
}
