/**
 * What changed between two revisions: files added, removed and changed (content, mode or
 * type), with their sizes, by walking both trees from the object store. Subtrees with the
 * same id are skipped without reading them, so a one-package update of a whole OS costs a
 * few tree reads. The manifest (.gitroot.mtree) is reported like any file: a change in it
 * means owners, modes, devices or xattrs changed.
 */
import type { ObjectStore } from '../store/object-store.js';
import { MODE_GITLINK, MODE_TREE, parseCommit, parseTree, type TreeEntry } from '../store/git-objects.js';
import { ObjectCorruptError } from '../errors/errors.js';

export type ChangeKind = 'added' | 'removed' | 'changed';

export interface FileChange {
  path: string;
  kind: ChangeKind;
  /** Git mode before/after (100644, 100755, 120000, 160000), null when absent. */
  oldMode: number | null;
  newMode: number | null;
  /** Size in bytes before/after, null when absent. */
  oldSize: number | null;
  newSize: number | null;
}

export interface TreeDiff {
  from: string;
  to: string;
  changes: FileChange[];
  summary: { added: number; removed: number; changed: number; bytesAdded: number; bytesRemoved: number };
}

function treeOf(store: ObjectStore, commit: string): Buffer {
  const obj = store.readObject(commit);
  if (obj.type !== 'commit') throw new ObjectCorruptError(`${commit} is a ${obj.type}, not a commit`);
  return Buffer.from(parseCommit(obj.data).tree, 'hex');
}

function entries(store: ObjectStore, tree: Buffer | null): Map<string, TreeEntry> {
  if (!tree) return new Map();
  return new Map(parseTree(store.readObject(tree).data).map((e) => [e.name, e]));
}

/** Compares two commits (resolved 40-hex ids). Pure reads; nothing is written. */
export function diffCommits(store: ObjectStore, from: string, to: string): TreeDiff {
  const changes: FileChange[] = [];
  const size = (e: TreeEntry | undefined) => (e && e.mode !== MODE_GITLINK ? store.readHeader(e.oid).size : null);
  const file = (path: string, kind: ChangeKind, a: TreeEntry | undefined, b: TreeEntry | undefined) =>
    changes.push({ path, kind, oldMode: a?.mode ?? null, newMode: b?.mode ?? null, oldSize: size(a), newSize: size(b) });

  const walk = (prefix: string, a: Buffer | null, b: Buffer | null): void => {
    const ea = entries(store, a);
    const eb = entries(store, b);
    const names = [...new Set([...ea.keys(), ...eb.keys()])].sort();
    for (const name of names) {
      const x = ea.get(name);
      const y = eb.get(name);
      const path = prefix + name;
      if (x && y && x.mode === y.mode && x.oid.equals(y.oid)) continue;
      const xt = x?.mode === MODE_TREE;
      const yt = y?.mode === MODE_TREE;
      if (xt || yt) {
        walk(path + '/', xt ? x!.oid : null, yt ? y!.oid : null);
        if (x && !xt) file(path, 'removed', x, undefined);
        if (y && !yt) file(path, 'added', undefined, y);
        continue;
      }
      file(path, !x ? 'added' : !y ? 'removed' : 'changed', x, y);
    }
  };
  walk('', treeOf(store, from), treeOf(store, to));
  changes.sort((p, q) => (p.path < q.path ? -1 : p.path > q.path ? 1 : 0));
  const summary = { added: 0, removed: 0, changed: 0, bytesAdded: 0, bytesRemoved: 0 };
  for (const c of changes) {
    summary[c.kind]++;
    summary.bytesAdded += c.newSize ?? 0;
    summary.bytesRemoved += c.oldSize ?? 0;
  }
  return { from, to, changes, summary };
}
