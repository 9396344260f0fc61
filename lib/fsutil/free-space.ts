/**
 * Free space: how much a writer may use on a filesystem, a check that fails with one line
 * naming what needed the space, and the one byte formatter every message uses.
 */
import { statfsSync } from 'node:fs';
import { NoSpaceError } from '../errors/errors.js';

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
