/**
 * The boot loader interface and the one place a backend is chosen: by name from the
 * `gitroot.bootloader` setting (`bls`, `extlinux`, `none`), never probed. Also where the
 * kernels go: entries point at `D/boot/<sha>/` directly when the gitroot home lies inside
 * `$BOOT`, and otherwise at copies in `$BOOT/gitroot/<sha>/`, which every backend keeps in
 * step with its entries (copied before the entries that use them, removed after them).
 */
import { existsSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { ConfigError } from '../errors/errors.js';
import { bootFilesDir } from '../home/home-layout.js';
import { checkFreeSpace } from '../fsutil/free-space.js';
import { copyDirDurable, ensureDirDurable, isLeftover } from '../fsutil/durable-dir.js';
import { isSha } from '../store/object-id.js';
import type { BootPlan, KernelLocation } from './boot-plan.js';

/** Names of the backends. */
export const BOOTLOADER_NAMES = ['bls', 'extlinux', 'none'] as const;
export type BootloaderName = (typeof BOOTLOADER_NAMES)[number];

/** An entry as found on disk. */
export interface InstalledEntry {
  /** Entry id without boot counter (`gitroot-<sha12>`). */
  id: string;
  /** File it was read from. */
  file: string;
  /** Revision from its `git-revision=` option, or null. */
  revision: string | null;
  title: string | null;
  /** Kernel path as written (boot loader's view). */
  linux: string | null;
  initrd: string | null;
  options: string | null;
  /** BLS boot counter from the file name, or null. */
  tries: { left: number; done: number } | null;
}

/** What readEntries found. */
export interface InstalledEntries {
  entries: InstalledEntry[];
  /** The default as configured: an id (extlinux DEFAULT) or a pattern (loader.conf `default`), or null. */
  defaultId: string | null;
}

export interface WriteEntriesOptions {
  /** With a plan without entries: remove gitroot's entries instead of leaving them. */
  allowEmpty?: boolean;
}

/** A boot loader backend. */
export interface Bootloader {
  readonly name: BootloaderName;
  /** Where entries expect the kernels; planBootEntries needs it. */
  readonly location: KernelLocation;
  /**
   * Makes the boot loader's configuration match `plan`: kernel copies first, then the entries
   * (each written atomically), then removal of entries and copies the plan no longer has.
   * A plan without entries changes nothing (a machine is never left without an entry) unless
   * `allowEmpty` is set, which removes every gitroot entry (used to undo a failed first staging).
   */
  writeEntries(plan: BootPlan, opts?: WriteEntriesOptions): void;
  /** gitroot's entries as they are on disk now. */
  readEntries(): InstalledEntries;
}

export interface BootloaderOptions {
  /** The gitroot home `D` (its `boot/` holds the staged kernels). */
  homeDir: string;
  /** `$BOOT`: the root of the filesystem the boot loader reads (`gitroot.boot`); not needed for `none`. */
  bootDir?: string;
  /** Prefix of every path written into entries, when `$BOOT` is not that filesystem's root (e.g. `/boot`). */
  pathPrefix?: string;
  /** Directory of the templates (default: the project's `boot/`). */
  templateDir?: string;
}

/** Directory of the kernel copies under `$BOOT`. */
export const BOOT_COPY_DIR = 'gitroot';

function realOrResolved(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/**
 * Where entries find kernels: inside `$BOOT` when the home's `boot/` lies within it (no copies),
 * else copies in `$BOOT/gitroot/`.
 */
export function kernelLocation(homeDir: string, bootDir: string, pathPrefix = ''): KernelLocation {
  const prefix = pathPrefix.replace(/\/+$/, '');
  const boot = realOrResolved(bootDir);
  const files = realOrResolved(bootFilesDir(homeDir));
  const rel = relative(boot, files);
  if (rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep) && !rel.split(sep).includes('..')) {
    return { kernelRoot: `${prefix}/${rel.split(sep).join('/')}`, copy: false };
  }
  return { kernelRoot: `${prefix}/${BOOT_COPY_DIR}`, copy: true };
}

function dirSizes(dir: string): Map<string, number> | null {
  try {
    const m = new Map<string, number>();
    for (const ent of readdirSync(dir, { withFileTypes: true })) if (ent.isFile()) m.set(ent.name, statSync(join(dir, ent.name)).size);
    return m;
  } catch {
    return null;
  }
}

function sameFiles(a: Map<string, number> | null, b: Map<string, number> | null): boolean {
  if (a === null || b === null || a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** In copy mode: copies each kernel directory the plan uses to `$BOOT/gitroot/<dir>/` unless already there. */
export function syncKernelCopies(homeDir: string, bootDir: string, plan: BootPlan): void {
  if (!plan.location.copy) return;
  const copyRoot = join(bootDir, BOOT_COPY_DIR);
  const todo = plan.kernelDirs.filter((d) => !sameFiles(dirSizes(join(bootFilesDir(homeDir), d)), dirSizes(join(copyRoot, d))));
  if (todo.length === 0) return;
  ensureDirDurable(copyRoot);
  let needed = 0;
  for (const d of todo) {
    const sizes = dirSizes(join(bootFilesDir(homeDir), d));
    if (sizes === null) throw new ConfigError(`kernel directory ${join(bootFilesDir(homeDir), d)} is missing: stage the revision again`);
    for (const v of sizes.values()) needed += v;
  }
  checkFreeSpace(copyRoot, needed, 'copies of the staged kernels');
  for (const d of todo) copyDirDurable(join(bootFilesDir(homeDir), d), join(copyRoot, d));
}

/** In copy mode: removes copies in `$BOOT/gitroot/` the plan does not use (and leftovers of interrupted copies). */
export function removeStaleCopies(bootDir: string, plan: BootPlan): void {
  const copyRoot = join(bootDir, BOOT_COPY_DIR);
  if (!plan.location.copy || !existsSync(copyRoot)) return;
  const keep = new Set(plan.kernelDirs);
  for (const name of readdirSync(copyRoot)) {
    if (keep.has(name)) continue;
    if (isSha(name) || isLeftover(name)) rmSync(join(copyRoot, name), { recursive: true, force: true });
  }
}

/**
 * The plan's warnings worth telling the user: with `none` there are no boot entries at all,
 * so "gets no boot entry" says nothing (the initramfs chooses the revision itself).
 */
export function entryWarnings(bootloader: Pick<Bootloader, 'name'>, plan: BootPlan): string[] {
  return bootloader.name === 'none' ? [] : [...plan.warnings];
}

/** Checks a backend name from settings; ConfigError for anything else. */
export function parseBootloaderName(name: string): BootloaderName {
  if ((BOOTLOADER_NAMES as readonly string[]).includes(name)) return name as BootloaderName;
  throw new ConfigError(`unknown boot loader '${name}': set gitroot.bootloader to one of ${BOOTLOADER_NAMES.join(', ')}`);
}

/** The `$BOOT` a backend needs, or a ConfigError naming the setting. */
export function requireBootDir(name: BootloaderName, opts: BootloaderOptions): string {
  if (opts.bootDir === undefined || opts.bootDir === '') {
    throw new ConfigError(`gitroot.bootloader=${name} needs gitroot.boot=DIR (where kernels and entries go): set it, or use gitroot.bootloader=none`);
  }
  if (!existsSync(opts.bootDir)) {
    throw new ConfigError(`boot directory ${opts.bootDir} (gitroot.boot) does not exist: mount the boot partition there or fix the setting`);
  }
  return opts.bootDir;
}
