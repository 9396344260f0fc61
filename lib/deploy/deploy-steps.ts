/**
 * Helpers for the `apply` side of deployment: named steps whose errors say which step failed,
 * a free-space check, and durable directory copies (temp directory, fsync of every file and of
 * the directory, rename into place, fsync of the parent), so a kernel directory is either
 * absent or complete.
 */
import {
  closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, statfsSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { GitrootError, NoSpaceError, StateError } from '../errors/errors.js';
import { fsyncDir } from '../fsutil/atomic-write.js';

/** Turns an error met in step `name` into a typed error whose message starts with the step. */
export function stepError(name: string, e: unknown): GitrootError {
  if (e instanceof GitrootError) {
    if (e.data.step === undefined) {
      e.message = `${name}: ${e.message}`;
      e.data.step = name;
    }
    return e;
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOSPC' || err?.code === 'EDQUOT') {
    return new NoSpaceError(`${name}: ${err.message}: free space on that filesystem and run the command again`,
      { data: { step: name }, cause: e });
  }
  return new StateError(`${name}: ${err?.message ?? String(e)}: check that the gitroot home and boot directory are writable`,
    { data: { step: name }, cause: e });
}

/** Runs `fn` as step `name`; any error it throws is re-thrown typed and prefixed with the step. */
export function step<T>(name: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw stepError(name, e);
  }
}

/** Async step(). */
export async function stepAsync<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw stepError(name, e);
  }
}

/** Formats a byte count for messages (`12.3 MB`). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} bytes`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  do {
    v /= 1000;
    u++;
  } while (v >= 1000 && u < units.length - 1);
  return `${v.toFixed(1)} ${units[u]}`;
}

/** Bytes kept free beyond what a copy needs (filesystem metadata, rounding to blocks). */
export const SPACE_MARGIN_BYTES = 1024 * 1024;

/** Free bytes an unprivileged writer may use on the filesystem holding `dir`. */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Throws NoSpaceError unless `dir`'s filesystem has `needed` bytes plus `margin` free. */
export function checkFreeSpace(dir: string, needed: number, what: string, margin = SPACE_MARGIN_BYTES): void {
  const free = freeBytes(dir);
  if (free < needed + margin) {
    throw new NoSpaceError(
      `not enough space in ${dir} for ${what}: ${formatBytes(needed + margin)} needed ` +
        `(${formatBytes(needed)} plus ${formatBytes(margin)} margin), ${formatBytes(free)} free: ` +
        'free space there or enlarge that filesystem',
      { data: { dir, needed, margin, free } },
    );
  }
}

/** fsyncs a file by path. */
export function fsyncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Creates `dir` and any missing parents, fsyncing each parent so the new entries survive a power cut. */
export function ensureDirDurable(dir: string): void {
  if (existsSync(dir)) return;
  ensureDirDurable(dirname(dir));
  try {
    mkdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  fsyncDir(dirname(dir));
}

/** A fresh temp directory `<parent>/<name>.tmp-XXXXXX` (parent created durably if needed). */
export function makeTempDir(parent: string, name: string): string {
  ensureDirDurable(parent);
  return mkdtempSync(join(parent, `${name}.tmp-`));
}

/**
 * Renames the complete directory `tmp` to `final` (both in one parent): fsyncs `tmp`, moves any
 * existing `final` aside first, fsyncs the parent, then removes what was moved aside.
 */
export function publishDir(tmp: string, final: string): void {
  fsyncDir(tmp);
  const parent = dirname(final);
  let aside: string | null = null;
  try {
    aside = join(parent, `${basename(final)}.old-${process.pid}-${Date.now().toString(36)}`);
    renameSync(final, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    aside = null;
  }
  renameSync(tmp, final);
  fsyncDir(parent);
  if (aside !== null) rmSync(aside, { recursive: true, force: true });
}

/**
 * Copies the regular files of directory `src` to `dst` durably: into a temp directory beside
 * `dst`, each file fsynced, then published with publishDir. `dst` is either absent or complete.
 */
export function copyDirDurable(src: string, dst: string): void {
  const tmp = makeTempDir(dirname(dst), basename(dst));
  try {
    for (const ent of readdirSync(src, { withFileTypes: true })) {
      if (!ent.isFile()) continue;
      copyFileSync(join(src, ent.name), join(tmp, ent.name));
      fsyncFile(join(tmp, ent.name));
    }
    publishDir(tmp, dst);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Removes temp files writeFileAtomic left for `<dir>/<name>` when its writer was killed
 * (`.<name>.tmp-*`). Call only under the lock that guards writes to that file.
 */
export function removeAtomicTemps(dir: string, name: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(`.${name}.tmp-`)) rmSync(join(dir, n), { force: true });
}

/** Names matching the leftovers of an interrupted copy (`<name>.tmp-*`, `<name>.old-*`). */
export function isLeftover(name: string): boolean {
  return /\.(tmp|old)-[A-Za-z0-9-]+$/.test(name);
}
