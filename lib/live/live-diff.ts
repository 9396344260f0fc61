/**
 * What a live update changes, as the running system sees it: the served trees of two
 * revisions (git trees plus the manifest, lib/gitfs/tree-view.ts) compared entry by entry,
 * with the same notion of "the same thing" the daemon's switch uses (ChildDesc.key). Unlike
 * `gitroot diff` (lib/diff/tree-diff.ts), the manifest is not a file here: a changed owner
 * or mode is a change of that path, and entries git cannot store (empty directories,
 * devices) are entries. Subtrees with equal trees and manifest records are skipped unread.
 */
import type { ChildDesc, CommitTreeView } from '../gitfs/tree-view.js';

/** What is at a path. */
export type LiveEntryType = 'dir' | 'file' | 'link' | 'special';

/**
 * How a path changed: `added`, `removed`; `replaced` (another type); `modified` (same type,
 * other content: blob, symlink target, device number); `attrs` (same content, other mode,
 * owner, xattrs or hardlink group).
 */
export type LiveChangeKind = 'added' | 'removed' | 'replaced' | 'modified' | 'attrs';

export interface LiveChange {
  /** Path in the tree, no leading slash. */
  path: string;
  change: LiveChangeKind;
  before: LiveEntryType | null;
  after: LiveEntryType | null;
  /** Inside a directory that was added, removed or replaced as a whole (its topmost change is listed too). */
  nested: boolean;
}

function sameTree(a: Buffer | null, b: Buffer | null): boolean {
  return a === null ? b === null : b !== null && a.equals(b);
}

/** Contents differ (for entries of the same type): blob, symlink target, or a special file's type and device. */
function contentDiffers(a: ChildDesc, b: ChildDesc): boolean {
  if (a.kind === 'special') {
    const dev = (d: ChildDesc) => `${d.m?.type} ${d.m?.rdev ? `${d.m.rdev.major},${d.m.rdev.minor}` : ''}`;
    return dev(a) !== dev(b);
  }
  return !(a.oid && b.oid && a.oid.equals(b.oid));
}

/** Compares the served trees of `from` and `to`; the changes sorted by path. */
export function diffViews(from: CommitTreeView, to: CommitTreeView): LiveChange[] {
  const out: LiveChange[] = [];
  /** Every path below a directory that appeared or went as a whole. */
  const within = (view: CommitTreeView, d: ChildDesc, change: 'added' | 'removed'): void => {
    for (const c of view.describe(d.path, d.tree)) {
      out.push({ path: c.path, change, before: change === 'removed' ? c.kind : null, after: change === 'added' ? c.kind : null, nested: true });
      if (c.kind === 'dir') within(view, c, change);
    }
  };
  const walk = (path: string, a: Buffer | null, b: Buffer | null): void => {
    if (sameTree(a, b) && from.subtreeDigest(path) === to.subtreeDigest(path)) return;
    const before = new Map(from.describe(path, a).map((d) => [d.name, d]));
    for (const d of to.describe(path, b)) {
      const o = before.get(d.name);
      before.delete(d.name);
      if (!o) {
        out.push({ path: d.path, change: 'added', before: null, after: d.kind, nested: false });
        if (d.kind === 'dir') within(to, d, 'added');
      } else if (o.kind !== d.kind) {
        out.push({ path: d.path, change: 'replaced', before: o.kind, after: d.kind, nested: false });
        if (o.kind === 'dir') within(from, o, 'removed');
        if (d.kind === 'dir') within(to, d, 'added');
      } else if (d.kind === 'dir') {
        if (o.key !== d.key) out.push({ path: d.path, change: 'attrs', before: 'dir', after: 'dir', nested: false });
        walk(d.path, o.tree, d.tree);
      } else if (o.key !== d.key) {
        out.push({ path: d.path, change: contentDiffers(o, d) ? 'modified' : 'attrs', before: o.kind, after: d.kind, nested: false });
      }
    }
    for (const o of before.values()) {
      out.push({ path: o.path, change: 'removed', before: o.kind, after: null, nested: false });
      if (o.kind === 'dir') within(from, o, 'removed');
    }
  };
  if (from.rootKey() !== to.rootKey()) out.push({ path: '', change: 'attrs', before: 'dir', after: 'dir', nested: false });
  walk('', from.rootTree, to.rootTree);
  return out.sort((p, q) => (p.path < q.path ? -1 : p.path > q.path ? 1 : 0));
}
