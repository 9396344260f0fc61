/**
 * The one crash-ordered way a home's boot state changes. Every writer of `D/state.json` that
 * moves boot entries (staging, mark-good, mark-bad, rollback) goes from `before` (on disk) to
 * `next` in these named steps:
 *   1. the boot entries of both states: kernel copies first, then the entries of `next`, then
 *      those of `before` that `next` drops;
 *   2. `D/state.json` = `next`;
 *   3. the entries of `next` only (the dropped entries and their kernel copies go);
 *   4. the kernel directories in `D/boot` that `next` no longer keeps, and leftovers of
 *      interrupted copies and state writes.
 * So at every instant the entries on disk include every entry of the state on disk: a power
 * cut before step 2 leaves the change simply not made (the old state with all of its
 * entries); after it, the change is made and at most extra entries remain, which the next
 * write of entries removes. A failure before the state is written puts the entries of
 * `before` back (and removes a kernel directory the caller made for `next`); a failure in
 * steps 3-4 is only a warning, since the state already says what boots.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type BootPlan, planBootEntries, unionPlan } from '../bootloader/boot-plan.js';
import { type Bootloader, entryWarnings } from '../bootloader/bootloader.js';
import { removeAtomicTemps } from '../fsutil/atomic-write.js';
import { isLeftover } from '../fsutil/durable-dir.js';
import { step } from '../fsutil/named-step.js';
import { STATE_FILE, bootFilesDir } from '../home/home-layout.js';
import type { HeldLock } from '../home/home-lock.js';
import { type DeployState, planRetention, readState, writeState } from '../home/home-state.js';
import { isSha } from '../store/object-id.js';

/** A change of the home's state, from what is on disk to what should be. */
export interface StateChange {
  /** The gitroot home. */
  dir: string;
  /** The home's lock, held by the caller for the whole change. */
  lock: HeldLock;
  bootloader: Bootloader;
  /** The state now in `D/state.json`. */
  before: DeployState;
  /** The state to write; when it equals `before`, only the entries are brought in line with it. */
  next: DeployState;
  /** A `D/boot/<sha>/` the caller made for `next`: removed again if the change fails. */
  created?: string | null;
}

/** What applyStateChange did. */
export interface StateChangeResult {
  /** The entries of `next` (now the only ones on disk unless a warning says otherwise). */
  plan: BootPlan;
  /** True when `D/state.json` was written. */
  written: boolean;
  /** Kernel directories removed from `D/boot`. */
  pruned: string[];
  warnings: string[];
}

/** True when two states are the same (what JSON would write). */
export function sameState(a: DeployState, b: DeployState): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** True when `D/state.json` holds `state` now (after a write that reported an error). */
function stateOnDiskIs(dir: string, state: DeployState): boolean {
  try {
    return sameState(readState(dir), state);
  } catch {
    return false;
  }
}

/**
 * Removes `D/boot/<sha>/` directories `state` no longer keeps, and leftovers of interrupted
 * copies and state writes; returns the names removed. Call under the home's lock.
 */
export function pruneBootFiles(dir: string, state: DeployState): string[] {
  removeAtomicTemps(dir, STATE_FILE);
  const boot = bootFilesDir(dir);
  if (!existsSync(boot)) return [];
  const keep = planRetention(state).kernelDirs;
  const removed: string[] = [];
  for (const name of readdirSync(boot)) {
    if (keep.has(name)) continue;
    if (isSha(name) || isLeftover(name)) {
      rmSync(join(boot, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}

/** Puts the entries of `before` back after a change failed before its state was written. */
function undo(c: StateChange): void {
  try {
    c.bootloader.writeEntries(planBootEntries(c.before, c.bootloader.location), { allowEmpty: true });
    if (c.created != null) rmSync(join(bootFilesDir(c.dir), c.created), { recursive: true, force: true });
  } catch {
    // The original error is what the caller needs; the next change repairs what is left.
  }
}

/** Steps 3-4; a failure is a warning (the state on disk is already right). */
function tidy(c: StateChange, plan: BootPlan, warnings: string[], removeOld: boolean): string[] {
  try {
    if (removeOld) step('remove old boot entries', () => c.bootloader.writeEntries(plan));
    return pruneBootFiles(c.dir, c.next);
  } catch (e) {
    warnings.push(`prune staged kernels: ${(e as Error).message} (the next staging tries again)`);
    return [];
  }
}

/**
 * Changes the home from `c.before` to `c.next` in the steps of the module comment. Errors
 * name their step; when one is thrown, `D/state.json` is `before` unless the state write itself
 * reported an error after reaching the disk (then the change counts as made).
 */
export function applyStateChange(c: StateChange): StateChangeResult {
  const plan = planBootEntries(c.next, c.bootloader.location);
  const warnings = entryWarnings(c.bootloader, plan);
  if (sameState(c.before, c.next)) {
    // Nothing to write, but a change killed before its state write may have left entries or
    // kernels the state does not name: bring them back in line (writes nothing when they are).
    step('check boot entries', () => c.bootloader.writeEntries(plan));
    return { plan, written: false, pruned: tidy(c, plan, warnings, false), warnings };
  }
  try {
    step('write boot entries', () => c.bootloader.writeEntries(unionPlan(plan, planBootEntries(c.before, c.bootloader.location))));
    step('write state', () => writeState(c.lock, c.next));
  } catch (e) {
    if (!stateOnDiskIs(c.dir, c.next)) undo(c);
    throw e;
  }
  return { plan, written: true, pruned: tidy(c, plan, warnings, true), warnings };
}
