/**
 * Which packs in objects/pack are redundant, decided without I/O (pack-redundancy-run.ts reads
 * the facts and applies the answer). A power cut after `git repack -a -d` renamed its new
 * all-objects pack in and before it deleted the old packs leaves two full copies of every
 * object; git never removes the old ones by itself, and the next repack needs room for a third.
 * Rules:
 *   - a pack with a .keep always stays (and is never counted as an orphan);
 *   - a pack stays unless it is intact (its .pack checksum matches its .idx) and every one of
 *     its objects is in one other intact pack that stays: so no object ever loses its last copy;
 *   - packs are considered keep first, then the biggest (most objects), newest, by name: of
 *     two packs with the same objects the first stays, and the answer is deterministic;
 *   - a .pack with no .idx and no .keep is an orphan: git never reads it (a pack half-removed,
 *     or one a killed writer renamed in before its index); it goes too.
 * Callers hold the fetch lock, so no fetch is installing a pack meanwhile.
 */

export interface PackFacts {
  /** File name stem: `pack-<hash>`. */
  stem: string;
  hasPack: boolean;
  hasIdx: boolean;
  hasKeep: boolean;
  /** The .idx parsed and the .pack ends with the checksum the .idx records. */
  intact: boolean;
  /** Objects in the pack (from the .idx; 0 when unreadable). */
  objects: number;
  mtimeMs: number;
}

export interface PackRedundancy {
  /** Stems of complete packs whose objects all stay in another pack: remove .idx first, then the rest. */
  redundant: { stem: string; coveredBy: string }[];
  /** Stems of .pack files without an .idx (and without a .keep). */
  orphans: string[];
}

/** Consideration order: keep packs first, intact ones, most objects, newest, then by name. */
function order(a: PackFacts, b: PackFacts): number {
  if (a.hasKeep !== b.hasKeep) return a.hasKeep ? -1 : 1;
  if (a.intact !== b.intact) return a.intact ? -1 : 1;
  if (a.objects !== b.objects) return b.objects - a.objects;
  if (a.mtimeMs !== b.mtimeMs) return b.mtimeMs - a.mtimeMs;
  return a.stem < b.stem ? -1 : a.stem > b.stem ? 1 : 0;
}

/**
 * Decides which packs go. `covers(a, b)` answers whether every object of pack `a` is in pack
 * `b` (both intact, with an .idx); it is asked only about such pairs.
 */
export function planRedundantPacks(packs: readonly PackFacts[], covers: (a: string, b: string) => boolean): PackRedundancy {
  const orphans = packs
    .filter((p) => p.hasPack && !p.hasIdx && !p.hasKeep)
    .map((p) => p.stem)
    .sort();
  const indexed = packs.filter((p) => p.hasIdx && p.hasPack).sort(order);
  const staying: PackFacts[] = [];
  const redundant: { stem: string; coveredBy: string }[] = [];
  for (const p of indexed) {
    const cover = p.hasKeep || !p.intact ? undefined : staying.find((b) => b.intact && covers(p.stem, b.stem));
    if (cover === undefined) staying.push(p);
    else redundant.push({ stem: p.stem, coveredBy: cover.stem });
  }
  return { redundant, orphans };
}

/** File suffixes of a pack in removal order: the .idx first (a .pack without it is ignored by git and gitroot's reader). */
export const PACK_REMOVAL_ORDER = ['.idx', '.pack', '.rev', '.bitmap', '.mtimes', '.promisor'] as const;
