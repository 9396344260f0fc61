/**
 * Which bundles a machine downloads to reach a commit (pure). Input: the manifest's bundles
 * (each brings `tip` and needs its `prerequisites`, which the publisher chooses among the
 * tip's ancestors) and the manifest commits the machine already has complete. Output: the
 * cheapest sequence (fewest bytes, then fewest files) whose every bundle's prerequisites are
 * present by the time it is applied, or why there is none.
 *
 * A search over single commits: being at commit c (a bundle ending at c was applied) means
 * having c's whole history, hence every prerequisite of every bundle ending at c and,
 * transitively, theirs (`reach`). With the publisher's invariant this never claims an object
 * the machine lacks; it may miss a cheaper plan across unrelated lines of history, never
 * produce an invalid one (the unbundling would fail on a missing base, and nothing is kept).
 */
import type { ManifestBundle } from './channel-manifest.js';

export type BundlePlan =
  | { action: 'up-to-date'; bundles: []; bytes: 0 }
  | { action: 'download'; bundles: ManifestBundle[]; bytes: number }
  | { action: 'unreachable'; bundles: []; bytes: 0; reason: string };

/** Commits known once `c` is reached through the bundles (c and, transitively, the prerequisites of bundles ending at c). */
function reachOf(bundles: readonly ManifestBundle[]): (c: string) => Set<string> {
  const byTip = new Map<string, ManifestBundle[]>();
  for (const b of bundles) byTip.set(b.tip, [...(byTip.get(b.tip) ?? []), b]);
  const memo = new Map<string, Set<string>>();
  const reach = (c: string): Set<string> => {
    const hit = memo.get(c);
    if (hit !== undefined) return hit;
    const out = new Set<string>([c]);
    memo.set(c, out); // cycles (impossible in git history) end here
    for (const b of byTip.get(c) ?? []) for (const p of b.prerequisites) for (const x of reach(p)) out.add(x);
    return out;
  };
  return reach;
}

/**
 * The cheapest bundles bringing `target` to a machine having `has` (manifest commits present
 * and complete locally). Dijkstra over (bytes, files).
 */
export function planBundles(bundles: readonly ManifestBundle[], has: ReadonlySet<string>, target: string): BundlePlan {
  const reach = reachOf(bundles);
  const known = (at: string | null): Set<string> => {
    const out = new Set(has);
    if (at !== null) for (const x of reach(at)) out.add(x);
    return out;
  };
  const reached = (at: string | null) => known(at).has(target);
  if (reached(null) || [...has].some((h) => reach(h).has(target))) return { action: 'up-to-date', bundles: [], bytes: 0 };

  type Node = { at: string | null; bytes: number; files: number; path: ManifestBundle[] };
  const best = new Map<string, { bytes: number; files: number }>();
  const better = (a: { bytes: number; files: number }, b: { bytes: number; files: number }) => a.bytes < b.bytes || (a.bytes === b.bytes && a.files < b.files);
  const queue: Node[] = [{ at: null, bytes: 0, files: 0, path: [] }];
  // Starting from a commit the machine has is the same as starting from nothing plus `has`.
  while (queue.length > 0) {
    queue.sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0));
    const node = queue.shift()!;
    const key = node.at ?? '';
    const prev = best.get(key);
    if (prev !== undefined && !better(node, prev) && !(prev.bytes === node.bytes && prev.files === node.files)) continue;
    if (node.at !== null && reached(node.at)) return { action: 'download', bundles: node.path, bytes: node.bytes };
    const have = known(node.at);
    for (const b of bundles) {
      if (have.has(b.tip)) continue; // brings nothing new
      if (!b.prerequisites.every((p) => have.has(p))) continue;
      const next: Node = { at: b.tip, bytes: node.bytes + b.size, files: node.files + 1, path: [...node.path, b] };
      const seen = best.get(b.tip);
      if (seen !== undefined && !better(next, seen)) continue;
      best.set(b.tip, { bytes: next.bytes, files: next.files });
      queue.push(next);
    }
  }
  return {
    action: 'unreachable',
    bundles: [],
    bytes: 0,
    reason: `no sequence of the channel's ${bundles.length} bundles brings ${target} to this machine (it lacks every bundle's prerequisites): the publisher must list a full bundle ('gitroot publish' keeps one)`,
  };
}

/** Every commit a manifest's bundles name (tips and prerequisites): what the machine checks it has. */
export function manifestCommits(bundles: readonly ManifestBundle[]): string[] {
  const out = new Set<string>();
  for (const b of bundles) {
    out.add(b.tip);
    for (const p of b.prerequisites) out.add(p);
  }
  return [...out];
}
