/**
 * What `gitroot publish` writes, decided without I/O (pure): the chain of releases, which
 * bundles the manifest lists, which exist already, which to make, which to retire and which
 * retired files are old enough to delete.
 *
 * The chain is the list of published tips, oldest first, each descending from the one before
 * (position 1 = the first release). Bundles, for a chain of n releases with roll-up period R
 * and K roll-ups kept:
 *
 *   boundaries   positions b_k = 1 + k*R (k >= 0) up to n; m = the last k
 *   roll-ups     rollup(b_k) = b_{k-1}..b_k, for the newest K of k = 1..m
 *   base         a full bundle of b_{max(0, m-K)}: the prerequisite of the oldest roll-up kept
 *   incremental  j-1..j for every j from b_{m-1}+1 (or 2) to n: at least the last R releases
 *
 * So a machine N releases behind but newer than the base downloads at most K roll-ups and
 * about 2R incremental bundles, one release behind exactly one incremental bundle, and only a
 * machine older than the base (or a new one) the whole history, in the base. Every
 * prerequisite is an ancestor of its bundle's tip (bundle-plan.ts relies on it).
 *
 * A bundle stops being listed when a newer layout no longer needs it; its file stays for the
 * grace period (a machine may be downloading it, or resume it tomorrow) and is then deleted.
 */
import type { BundleKind } from '../channel/channel-manifest.js';

/** A bundle the layout needs: what it brings and from where. */
export interface BundleSpec {
  kind: BundleKind;
  /** Chain position of its tip. */
  release: number;
  tip: string;
  prerequisites: string[];
}

/** A bundle file the publisher made (publish-log.json), listed or retired. */
export interface PublishedBundle extends BundleSpec {
  id: string;
  uri: string;
  size: number;
  sha256: string;
  creationToken: number;
  createdAt: string;
  /** When a manifest stopped listing it (null: listed). */
  retiredAt: string | null;
}

export interface PublishOptions {
  /** R: a roll-up every this many releases (>= 2). */
  rollupEvery: number;
  /** K: roll-ups kept before the base moves up (>= 2). */
  rollupsKept: number;
}

export const DEFAULT_PUBLISH_OPTIONS: PublishOptions = { rollupEvery: 10, rollupsKept: 10 };

/** The release chain after publishing `tip`, or why not. */
export type ChainStep = { ok: true; chain: string[]; newRelease: boolean; pinned: boolean; note: string } | { ok: false; reason: string };

/**
 * The chain after publishing `tip` (pure; `isAncestor(a, b)`: a is b or an ancestor of it).
 *   - same tip as the chain's end: unchanged (a re-signed manifest);
 *   - a descendant of the end: appended (a release);
 *   - with `pin`: a release of the chain (a halt: the chain is cut back to it), or a
 *     descendant of one (the chain is cut back to that one, then it is appended), or an
 *     unrelated commit (a new chain, a full base);
 *   - otherwise refused: machines would refuse it as a downgrade.
 * While the channel is pinned, publishing another tip without `pin` needs `unpin`.
 */
export function nextChain(i: {
  chain: readonly string[];
  tip: string;
  pin: boolean;
  unpin: boolean;
  pinnedNow: boolean;
  isAncestor: (a: string, b: string) => boolean;
}): ChainStep {
  const chain = [...i.chain];
  const end = chain.length > 0 ? chain[chain.length - 1] : null;
  const short = (s: string) => s.slice(0, 12);
  if (i.pinnedNow && !i.pin && !i.unpin && i.tip !== end) {
    return {
      ok: false,
      reason: `the channel is pinned to ${short(end!)} (a halted rollout): pass --unpin to release ${short(i.tip)} to the fleet, or --pin ${i.tip} to pin that instead`,
    };
  }
  if (end === null) return { ok: true, chain: [i.tip], newRelease: true, pinned: i.pin, note: 'first release: a full bundle' };
  if (i.tip === end)
    return { ok: true, chain, newRelease: false, pinned: i.pin || (i.pinnedNow && !i.unpin), note: 'no new release: the manifest is signed again' };
  if (i.isAncestor(end, i.tip)) return { ok: true, chain: [...chain, i.tip], newRelease: true, pinned: i.pin, note: `release ${chain.length + 1}` };
  if (!i.pin) {
    return {
      ok: false,
      reason: `${short(i.tip)} does not descend from the last published release ${short(end)}: machines would refuse it as a downgrade; publish it with --pin ${i.tip} to move the fleet there on purpose`,
    };
  }
  for (let j = chain.length - 1; j >= 0; j--) {
    if (chain[j] === i.tip) return { ok: true, chain: chain.slice(0, j + 1), newRelease: false, pinned: true, note: `pinned back to release ${j + 1}` };
    if (i.isAncestor(chain[j], i.tip)) {
      return { ok: true, chain: [...chain.slice(0, j + 1), i.tip], newRelease: true, pinned: true, note: `pinned: a release on top of release ${j + 1}` };
    }
  }
  return { ok: true, chain: [i.tip], newRelease: true, pinned: true, note: 'pinned: unrelated history, a new chain with a full bundle' };
}

/** The bundles a chain's manifest lists (see the module comment). Pure. */
export function layoutBundles(chain: readonly string[], opts: PublishOptions): BundleSpec[] {
  const R = opts.rollupEvery;
  const K = opts.rollupsKept;
  if (!(Number.isInteger(R) && R >= 2 && Number.isInteger(K) && K >= 2)) throw new RangeError('rollupEvery and rollupsKept must be integers >= 2');
  const n = chain.length;
  if (n === 0) return [];
  const tip = (pos: number) => chain[pos - 1]!;
  const boundary = (k: number) => 1 + k * R;
  const m = Math.floor((n - 1) / R);
  const out: BundleSpec[] = [];
  const baseAt = boundary(Math.max(0, m - K));
  out.push({ kind: 'base', release: baseAt, tip: tip(baseAt), prerequisites: [] });
  for (let k = Math.max(1, m - K + 1); k <= m; k++) {
    out.push({ kind: 'rollup', release: boundary(k), tip: tip(boundary(k)), prerequisites: [tip(boundary(k - 1))] });
  }
  const firstInc = m >= 1 ? boundary(m - 1) + 1 : 2;
  for (let j = Math.max(2, firstInc); j <= n; j++) out.push({ kind: 'incremental', release: j, tip: tip(j), prerequisites: [tip(j - 1)] });
  return out;
}

const sameSpec = (a: BundleSpec, b: BundleSpec): boolean =>
  a.kind === b.kind && a.tip === b.tip && a.prerequisites.length === b.prerequisites.length && a.prerequisites.every((p, i) => p === b.prerequisites[i]);

/** What to do with the bundle files: keep (listed), make, retire (unlist) and delete. Pure. */
export interface Reconciled {
  /** Existing bundles the new manifest lists (in layout order, with `release` updated). */
  reuse: PublishedBundle[];
  /** Specs no existing file serves: to make. */
  create: BundleSpec[];
  /** Listed bundles the layout no longer needs: unlisted now, file kept. */
  retire: PublishedBundle[];
  /** Retired bundles older than the grace period: files to delete. */
  remove: PublishedBundle[];
  /** Retired bundles still within the grace period: kept. */
  keepRetired: PublishedBundle[];
}

export function reconcileBundles(existing: readonly PublishedBundle[], wanted: readonly BundleSpec[], nowMs: number, graceMs: number): Reconciled {
  const reuse: PublishedBundle[] = [];
  const create: BundleSpec[] = [];
  const used = new Set<string>();
  for (const w of wanted) {
    const hit = existing.find((e) => !used.has(e.id) && sameSpec(e, w));
    if (hit === undefined) create.push(w);
    else {
      used.add(hit.id);
      reuse.push({ ...hit, release: w.release, retiredAt: null });
    }
  }
  const retire: PublishedBundle[] = [];
  const remove: PublishedBundle[] = [];
  const keepRetired: PublishedBundle[] = [];
  for (const e of existing) {
    if (used.has(e.id)) continue;
    if (e.retiredAt === null) retire.push(e);
    else if (Date.parse(e.retiredAt) + graceMs <= nowMs) remove.push(e);
    else keepRetired.push(e);
  }
  return { reuse, create, retire, remove, keepRetired };
}
