/**
 * Reads the kernel's mount table (/proc/self/mountinfo): is a path a mount point, and is
 * it a gitroot mount. Used to refuse mounting on top of a mount and to check `umount`.
 */
import { readFileSync } from 'node:fs';

export interface MountRecord {
  mountpoint: string;
  fstype: string;
  source: string;
  options: string;
}

/** The filesystem type gitroot mounts show in /proc/mounts. */
export const GITFS_FSTYPE = 'fuse.gitfs';

function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses mountinfo text (see proc(5)). */
export function parseMountinfo(text: string): MountRecord[] {
  const out: MountRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    out.push({ mountpoint: unescape(left[4]), options: left[5], fstype: right[0], source: unescape(right[1] ?? '') });
  }
  return out;
}

/** All current mounts of this process's mount namespace. */
export function readMounts(): MountRecord[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** The topmost mount at exactly `path` (an absolute, resolved path), if any. */
export function mountAt(path: string): MountRecord | undefined {
  const all = readMounts().filter((m) => m.mountpoint === path);
  return all[all.length - 1];
}
