/**
 * Crash-safe file writes: every piece of state gitroot keeps (deployment state, cached
 * config, kernels, boot entries) is replaced with temp file + fsync + rename + fsync of the
 * directory, so a power cut at any instant leaves either the old or the new file, never a
 * mix or an empty file.
 */
import { closeSync, fsyncSync, futimesSync, openSync, readdirSync, renameSync, rmSync, writeSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** fsyncs a file by path, so what was written to it is durable (a directory: what was renamed or unlinked in it). */
export function fsyncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsyncs a directory so a rename or unlink inside it is durable. */
export function fsyncDir(dir: string): void {
  fsyncFile(dir);
}

/** A temp path next to `path` (same directory, so rename is atomic), unique to this process. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now().toString(36)}`);
}

/** Whether a file name is a temp file of writeFileAtomic (`tempPathFor`), of any process. */
export function isAtomicTemp(name: string): boolean {
  return name.startsWith('.') && name.includes('.tmp-');
}

/**
 * Removes the files under `base/rel` (recursively) whose name `match` accepts; returns their
 * paths relative to `base`. A missing directory removes nothing. The caller holds whatever lock
 * makes the matched files dead (a killed writer's temps, a killed git's ref locks).
 */
export function removeFilesUnder(base: string, rel: string, match: (name: string) => boolean): string[] {
  const removed: string[] = [];
  const walk = (r: string) => {
    let entries;
    try {
      entries = readdirSync(join(base, r), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = `${r}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (match(e.name)) {
        rmSync(join(base, p), { force: true });
        removed.push(p);
      }
    }
  };
  walk(rel);
  return removed;
}

/** Atomically replaces `path` with `data` (durable when it returns). */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644, opts: { mtimeAtLeastSec?: number } = {}): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
    const sec = opts.mtimeAtLeastSec;
    if (sec !== undefined && Date.now() / 1000 < sec) futimesSync(fd, sec, sec);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(path));
}

/** Atomically replaces `path` with `value` as pretty JSON. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
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
