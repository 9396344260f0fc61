/**
 * The space gate `gitroot fetch` passes before it downloads: measure (space-check.ts), and
 * when the home or the boot medium is short and `gitroot.auto-prune` allows, prune (keeping
 * `gitroot.keep` earlier good revisions) and measure again; still short: NoSpaceError.
 */
import { kernelLocation } from '../bootloader/bootloader.js';
import type { BootloaderName } from '../bootloader/bootloader.js';
import { runPrune, type PruneResult } from './prune-run.js';
import { measureSpace, noSpaceError, type SpaceReport } from './space-check.js';

export interface SpaceGateOptions {
  dir: string;
  minFreeMiB: number;
  autoPrune: boolean;
  keep: number;
  bootloader: BootloaderName;
  bootDir?: string;
  waitMs?: number;
}

export interface SpaceGateResult {
  report: SpaceReport;
  /** The prune run when one was needed. */
  pruned: PruneResult | null;
  warnings: string[];
}

function copyBootDir(o: SpaceGateOptions): string | null {
  if (o.bootloader === 'none' || o.bootDir === undefined) return null;
  try {
    return kernelLocation(o.dir, o.bootDir).copy ? o.bootDir : null;
  } catch {
    return null;
  }
}

function fits(r: SpaceReport): boolean {
  return r.home.ok && (r.boot === null || r.boot.ok);
}

/** Passes when there is room for an update; prunes first when allowed; else throws NoSpaceError. */
export async function ensureSpaceForFetch(o: SpaceGateOptions): Promise<SpaceGateResult> {
  const bootCopy = copyBootDir(o);
  const report = measureSpace(o.dir, o.minFreeMiB, bootCopy);
  if (fits(report)) return { report, pruned: null, warnings: [] };
  if (!o.autoPrune) throw noSpaceError(report, false);
  const pruned = await runPrune({
    dir: o.dir,
    keep: o.keep,
    bootloader: o.bootloader,
    bootDir: o.bootDir,
    waitMs: o.waitMs,
    command: 'gitroot fetch (auto-prune)',
  });
  const after = measureSpace(o.dir, o.minFreeMiB, bootCopy);
  if (!fits(after)) throw noSpaceError(after, true);
  return {
    report: after,
    pruned,
    warnings: [
      `free space was short (${report.home.ok ? 'boot medium' : 'gitroot home'}): pruned first (gitroot.auto-prune), ` +
        `${pruned.bytesBefore - pruned.bytesAfter} bytes freed`,
    ],
  };
}
