/**
 * Durable directories: created with their parents fsynced, filled in a temp directory and
 * published by rename, so a directory such as a staged kernel's is either absent or complete.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsyncDir, fsyncFile } from './atomic-write.js';

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

/** Names matching the leftovers of an interrupted copy (`<name>.tmp-*`, `<name>.old-*`). */
export function isLeftover(name: string): boolean {
  return /\.(tmp|old)-[A-Za-z0-9-]+$/.test(name);
}
