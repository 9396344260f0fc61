/**
 * Removes the packs pack-redundancy.ts finds redundant (call under the fetch lock, before any
 * repack): the facts come from the .idx files (lib/store's PackIndex, no git per object) and the
 * last 20 bytes of each .pack. Each redundant pack goes .idx first, the directory is fsynced,
 * then its .pack and the rest: at every instant every object is readable from a pack that has
 * its .idx (the one that covers it), and a cut between the two leaves only an orphan .pack,
 * which git ignores and the next run removes. gitroot's git-fs daemon copes as it does with
 * `git repack -d` (same order): packs it has open stay readable through their open descriptor,
 * a vanished .idx drops the pack at its next rescan, an .idx whose .pack is gone is skipped.
 */
import { closeSync, openSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir } from '../fsutil/atomic-write.js';
import { PackIndex } from '../store/pack-index.js';
import { OID_BYTES } from '../store/object-id.js';
import { PACK_REMOVAL_ORDER, type PackFacts, type PackRedundancy, planRedundantPacks } from './pack-redundancy.js';

export interface DroppedPacks extends PackRedundancy {
  /** Bytes of the .pack files removed. */
  bytes: number;
}

/** The .pack's trailing checksum, or null when it is missing or too short. */
function packTrailer(packPath: string): Buffer | null {
  let fd: number;
  try {
    fd = openSync(packPath, 'r');
  } catch {
    return null;
  }
  try {
    const size = statSync(packPath).size;
    if (size < 12 + OID_BYTES) return null;
    const buf = Buffer.alloc(OID_BYTES);
    return readSync(fd, buf, 0, OID_BYTES, size - OID_BYTES) === OID_BYTES ? buf : null;
  } finally {
    closeSync(fd);
  }
}

/** Reads what planRedundantPacks needs about each pack in `packDir`, and the loaded indexes. */
export function readPackFacts(packDir: string): { facts: PackFacts[]; indexes: Map<string, PackIndex> } {
  let names: string[] = [];
  try {
    names = readdirSync(packDir);
  } catch {
    /* no packs */
  }
  const set = new Set(names);
  const stems = new Set<string>();
  for (const n of names) {
    const m = /^(pack-[0-9a-f]+)\.(pack|idx)$/.exec(n);
    if (m !== null) stems.add(m[1]);
  }
  const facts: PackFacts[] = [];
  const indexes = new Map<string, PackIndex>();
  for (const stem of [...stems].sort()) {
    const packPath = join(packDir, `${stem}.pack`);
    const hasPack = set.has(`${stem}.pack`);
    const hasIdx = set.has(`${stem}.idx`);
    let intact = false;
    let objects = 0;
    if (hasIdx && hasPack) {
      try {
        const idx = PackIndex.load(join(packDir, `${stem}.idx`));
        objects = idx.count;
        const trailer = packTrailer(packPath);
        intact = trailer !== null && trailer.equals(idx.packChecksum);
        if (intact) indexes.set(stem, idx);
      } catch {
        /* unreadable index: the pack stays */
      }
    }
    let mtimeMs = 0;
    try {
      mtimeMs = statSync(hasPack ? packPath : join(packDir, `${stem}.idx`)).mtimeMs;
    } catch {
      /* gone meanwhile */
    }
    facts.push({ stem, hasPack, hasIdx, hasKeep: set.has(`${stem}.keep`), intact, objects, mtimeMs });
  }
  return { facts, indexes };
}

/** Whether every object of index `a` is in index `b`. */
export function indexCovers(a: PackIndex, b: PackIndex): boolean {
  if (a.count > b.count) return false;
  for (let i = 0; i < a.count; i++) if (b.position(a.oidAt(i)) < 0) return false;
  return true;
}

/** Plans without changing anything (for reports and the space check). */
export function findRedundantPacks(repo: string): PackRedundancy {
  const { facts, indexes } = readPackFacts(join(repo, 'objects', 'pack'));
  return planRedundantPacks(facts, (a, b) => indexCovers(indexes.get(a)!, indexes.get(b)!));
}

function sizeOf(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

/** Removes redundant and orphan packs of `repo` in the crash-safe order (module comment). */
export function dropRedundantPacks(repo: string): DroppedPacks {
  const packDir = join(repo, 'objects', 'pack');
  const plan = findRedundantPacks(repo);
  let bytes = 0;
  const remove = (stem: string): void => {
    bytes += sizeOf(join(packDir, `${stem}.pack`));
    for (const ext of PACK_REMOVAL_ORDER) {
      rmSync(join(packDir, stem + ext), { force: true });
      if (ext === '.idx') fsyncDir(packDir);
    }
  };
  for (const { stem } of plan.redundant) remove(stem);
  for (const stem of plan.orphans) remove(stem);
  if (plan.redundant.length + plan.orphans.length > 0) fsyncDir(packDir);
  return { ...plan, bytes };
}
