/**
 * The free-space check `gitroot fetch` runs before it downloads anything. Rule (docs/prune.md):
 * the home's filesystem needs `gitroot.min-free` MiB plus twice the last fetched pack free
 * (the pack lands in a quarantine and `index-pack --fix-thin` may append the bases it needs; the
 * second copy is headroom for the index, the kernel copy and a later repack of that pack). The
 * boot medium, when kernels are copied there, needs room for the biggest staged kernel and
 * initrd (the same margin stage-kernel.ts and the boot loader copy use). planSpace is pure;
 * measureSpace reads the filesystem. The pack sizes come from `D/prune.json` and objects/pack.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NoSpaceError } from '../errors/errors.js';
import { SPACE_MARGIN_BYTES, formatBytes, freeBytes } from '../fsutil/free-space.js';
import { bootFilesDir, pruneRecordPath, repoPath } from '../home/home-layout.js';
import { writeJsonAtomic } from '../fsutil/atomic-write.js';
import { isSha } from '../store/object-id.js';

/** Multiple of the last fetched pack the next fetch needs free. */
export const PACK_FACTOR = 2;
const MIB = 1024 * 1024;

/** `D/prune.json`: what the last prune did and the size of the last pack a fetch brought before it. */
export interface PruneRecord {
  version: 1;
  at: string;
  /** File name of the pack the repack wrote (`pack-<hash>.pack`), or null. */
  pack: string | null;
  /** Size of the newest fetched pack before that repack folded it in, bytes. */
  lastFetchPackBytes: number;
  bytesBefore: number;
  bytesAfter: number;
}

/** Reads `D/prune.json`; null when missing or unreadable (it only refines an estimate). */
export function readPruneRecord(dir: string): PruneRecord | null {
  try {
    const v = JSON.parse(readFileSync(pruneRecordPath(dir), 'utf8')) as PruneRecord;
    if (v.version !== 1 || !Number.isFinite(v.lastFetchPackBytes)) return null;
    return v;
  } catch {
    return null;
  }
}

/** Writes `D/prune.json` atomically (call under the home's lock). */
export function writePruneRecord(dir: string, rec: PruneRecord): void {
  writeJsonAtomic(pruneRecordPath(dir), rec);
}

/** Packs in `repo/objects/pack`, newest first. */
export function listPacks(repo: string): { name: string; bytes: number; mtimeMs: number }[] {
  const packDir = join(repo, 'objects', 'pack');
  let names: string[];
  try {
    names = readdirSync(packDir);
  } catch {
    return [];
  }
  const out: { name: string; bytes: number; mtimeMs: number }[] = [];
  for (const n of names) {
    if (!/^pack-[0-9a-f]+\.pack$/.test(n)) continue;
    try {
      const st = statSync(join(packDir, n));
      out.push({ name: n, bytes: st.size, mtimeMs: st.mtimeMs });
    } catch {
      /* removed meanwhile */
    }
  }
  return out.sort((a, b) => b.mtimeMs - a.mtimeMs);
}

/**
 * Size of the last pack a fetch brought: the newest pack unless it is the one the last prune
 * wrote (then the size that prune recorded); 0 when nothing was fetched yet. A lone pack the
 * last prune did not write is the installed image (made by `gitroot commit` or a first full
 * fetch): updates are deltas against it, so it says nothing about the next one (counting it
 * asked for twice a whole OS of free space before a 2 MB update). `packs` (newest first)
 * defaults to the packs in the repository.
 */
export function lastFetchPackBytes(repo: string, record: PruneRecord | null, packs = listPacks(repo)): number {
  const newest = packs[0];
  if (newest === undefined) return 0;
  if (record !== null && record.pack === newest.name) return record.lastFetchPackBytes;
  if (packs.length === 1) return 0;
  return newest.bytes;
}

export interface SpaceInput {
  /** Free bytes on the home's filesystem. */
  free: number;
  minFreeMiB: number;
  lastPackBytes: number;
}

export interface SpacePlan {
  ok: boolean;
  free: number;
  needed: number;
  /** The rule, spelled out with the numbers. */
  rule: string;
}

/** Pure: whether `free` covers `gitroot.min-free` plus PACK_FACTOR x the last pack. */
export function planSpace(input: SpaceInput): SpacePlan {
  const minFree = input.minFreeMiB * MIB;
  const needed = minFree + PACK_FACTOR * input.lastPackBytes;
  const rule = `gitroot.min-free ${formatBytes(minFree)} + ${PACK_FACTOR} x last pack ${formatBytes(input.lastPackBytes)}`;
  return { ok: input.free >= needed, free: input.free, needed, rule };
}

/**
 * Pure: whether a `git repack -a -d` fits: it writes its new pack (at most the packs and loose
 * objects it folds in) before it deletes anything. Space held by deleted packs a process still
 * has open (the git-fs serving / until the next boot) is not free.
 */
export function repackRoom(free: number, foldedBytes: number): { ok: boolean; needed: number } {
  const needed = foldedBytes + SPACE_MARGIN_BYTES;
  return { ok: free >= needed, needed };
}

/** What measureSpace found for the home (and the boot medium in copy mode). */
export interface SpaceReport {
  home: SpacePlan & { dir: string };
  /** Null when kernels are not copied to a separate boot medium or nothing is staged yet. */
  boot: (SpacePlan & { dir: string }) | null;
}

/** Bytes of the biggest `D/boot/<sha>/` (kernel + initrd): the estimate for the next one. */
export function biggestKernelDir(dir: string): number {
  const boot = bootFilesDir(dir);
  let best = 0;
  let names: string[] = [];
  try {
    names = readdirSync(boot);
  } catch {
    /* nothing staged */
  }
  for (const n of names) {
    if (!isSha(n)) continue;
    let sum = 0;
    try {
      for (const f of readdirSync(join(boot, n))) sum += statSync(join(boot, n, f)).size;
    } catch {
      continue;
    }
    best = Math.max(best, sum);
  }
  return best;
}

/**
 * Measures the home's filesystem (and, when `copyBootDir` is given, the boot medium that gets
 * kernel copies) against the rule.
 */
export function measureSpace(dir: string, minFreeMiB: number, copyBootDir: string | null): SpaceReport {
  const repo = repoPath(dir);
  const home = { dir, ...planSpace({ free: freeBytes(dir), minFreeMiB, lastPackBytes: lastFetchPackBytes(repo, readPruneRecord(dir)) }) };
  let boot: SpaceReport['boot'] = null;
  if (copyBootDir !== null && existsSync(copyBootDir)) {
    const kernel = biggestKernelDir(dir);
    if (kernel > 0) {
      const free = freeBytes(copyBootDir);
      const needed = kernel + SPACE_MARGIN_BYTES;
      boot = {
        dir: copyBootDir,
        ok: free >= needed,
        free,
        needed,
        rule: `biggest staged kernel and initrd ${formatBytes(kernel)} + margin ${formatBytes(SPACE_MARGIN_BYTES)}`,
      };
    }
  }
  return { home, boot };
}

/** The one-line refusal for a failed check. */
export function noSpaceError(report: SpaceReport, pruned: boolean): NoSpaceError {
  const bad = !report.home.ok ? report.home : report.boot!;
  const where = bad === report.home ? `the gitroot home ${bad.dir}` : `the boot directory ${bad.dir} (gitroot.boot)`;
  const fix =
    bad === report.home
      ? `free space there${pruned ? '' : ` (e.g. 'gitroot prune --dir ${report.home.dir}')`}, enlarge the filesystem, or lower gitroot.min-free`
      : 'free space on the boot medium or enlarge it';
  return new NoSpaceError(
    `not enough free space for the update in ${where}: ${formatBytes(bad.free)} free, ${formatBytes(bad.needed)} needed ` +
      `(${bad.rule})${pruned ? ', even after pruning' : ''}: ${fix}`,
    { data: { dir: bad.dir, free: bad.free, needed: bad.needed, rule: bad.rule, pruned } },
  );
}
