/**
 * The layout of a gitroot home `D`, named once: the bare repository, the state files, the
 * home's lock, the staged kernels and the daemon's spill directory. Every module that opens a
 * path inside a home takes it from here.
 *
 *   D/repo.git/          the bare repository (every revision's objects)
 *   D/state.json         what boots next, what is good, what failed (home-state.ts)
 *   D/last-fetch.json    the last fetch attempt, for `gitroot status` (last-fetch.ts)
 *   D/fsck.json          the last full `gitroot fsck` verdict, read by the boot
 *   D/prune.json         what the last prune kept, read by the free-space check
 *   D/lock               the home's lock (home-lock.ts)
 *   D/boot/<sha>/        a staged revision's kernel and initrd
 *   D/spill/             big blobs the serving daemon decoded to the medium
 *   D/machine-id         the machine's identity, the same at every boot (lib/boot/machine-id.ts)
 *
 * and the run directory of a machine gitroot booted (RUN, /run/gitroot): RUN/booted.json
 * (what booted) and RUN/live.json (what runs live since, lib/live/live-record.ts).
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors/errors.js';

/** The bare repository inside a home. */
export const REPO_DIR = 'repo.git';
/** The deployment state. */
export const STATE_FILE = 'state.json';
/** The record of the last fetch attempt. */
export const LAST_FETCH_FILE = 'last-fetch.json';
/** The verdict of the last full fsck. */
export const FSCK_VERDICT_FILE = 'fsck.json';
/** What the last prune kept. */
export const PRUNE_RECORD_FILE = 'prune.json';
/** The home's lock. */
export const LOCK_FILE = 'lock';
/** Staged kernels: `D/boot/<sha>/`. */
export const BOOT_FILES_DIR = 'boot';
/** Spill files of big blobs (on the medium, not in RAM). */
export const SPILL_DIR = 'spill';
/** The machine's id (systemd's machine-id format). */
export const MACHINE_ID_FILE = 'machine-id';
/** Name of the kernel file inside `D/boot/<sha>/`. */
export const KERNEL_FILE = 'vmlinuz';
/** Name of the initrd file inside `D/boot/<sha>/`. */
export const INITRD_FILE = 'initrd.img';

/** Path of the bare repository of home `dir`. */
export function repoPath(dir: string): string {
  return join(dir, REPO_DIR);
}

/** Path of the state file of home `dir`. */
export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

/** Path of the last-fetch record of home `dir`. */
export function lastFetchPath(dir: string): string {
  return join(dir, LAST_FETCH_FILE);
}

/** Path of the fsck verdict of home `dir`. */
export function fsckVerdictPath(dir: string): string {
  return join(dir, FSCK_VERDICT_FILE);
}

/** Path of the prune record of home `dir`. */
export function pruneRecordPath(dir: string): string {
  return join(dir, PRUNE_RECORD_FILE);
}

/** Path of the lock of home `dir`. */
export function lockPath(dir: string): string {
  return join(dir, LOCK_FILE);
}

/** Path of the machine id kept in home `dir`. */
export function machineIdPath(dir: string): string {
  return join(dir, MACHINE_ID_FILE);
}

/** `D/boot`: the directory of staged kernel directories. */
export function bootFilesDir(dir: string): string {
  return join(dir, BOOT_FILES_DIR);
}

/**
 * Where `gitroot boot` keeps its mounts and its record on a machine it booted (moved into the
 * new root with /run): RUN/home is the home, RUN/booted.json says what booted.
 */
export const DEFAULT_RUN_DIR = '/run/gitroot';
/** The record of the boot, in the run directory. */
export const BOOT_RECORD_FILE = 'booted.json';
/** The record of what runs live since the boot (`gitroot apply-live`, lib/live/live-record.ts), in the run directory. */
export const LIVE_RECORD_FILE = 'live.json';

/** The run directory commands use: GITROOT_RUN_DIR (tests, unusual layouts) or DEFAULT_RUN_DIR. */
export function runDirFromEnv(): string {
  return process.env.GITROOT_RUN_DIR ?? DEFAULT_RUN_DIR;
}

/**
 * The home of the running system when gitroot booted it: the `home` its boot record names
 * (RUN/home), or null on a machine gitroot did not boot. `GITROOT_RUN_DIR` names another run
 * directory (for tests and unusual layouts).
 */
export function bootedHome(runDir = runDirFromEnv()): string | null {
  try {
    const record = JSON.parse(readFileSync(join(runDir, BOOT_RECORD_FILE), 'utf8')) as { home?: unknown };
    const home = typeof record.home === 'string' ? record.home : join(runDir, 'home');
    return statSync(home).isDirectory() ? home : null;
  } catch {
    return null;
  }
}

/** Throws UsageError unless `dir` is a directory (checked before a command does any work). */
export function requireHome(dir: string): void {
  let ok = false;
  try {
    ok = statSync(dir).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new UsageError(`gitroot home ${dir} is not a directory; pass the right --dir`, { data: { dir } });
}
