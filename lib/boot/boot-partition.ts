/**
 * The boot partition at boot: where gitroot's boot entries live when the medium is not the
 * boot loader's partition (an image made by `gitroot image`: the EFI system partition, or
 * the FAT partition syslinux boots from). With `gitroot.boot-medium=` on the kernel command
 * line, `gitroot boot` mounts it inside the new root at `gitroot.boot` (default /boot; images
 * use /efi, where systemd-bless-boot and bootctl look for the ESP), so `gitroot fetch` and
 * the transitions can write entries and systemd-boot's boot counting can be blessed.
 * A partition that does not appear or does not mount is a warning: the machine still boots
 * its revision; only new entries cannot be written until it is fixed.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tokenizeCmdline } from '../params/settings-grammar.js';

const execFileAsync = promisify(execFile);

/** How long to wait for the boot partition's device to appear (udev may still be at work). */
export const BOOT_PARTITION_WAIT_MS = 10_000;

/** What the kernel command line says of the boot partition, or null when it names none. */
export function bootPartitionSpec(cmdline: string): { medium: string; path: string } | null {
  let medium: string | null = null;
  let path = '/boot';
  for (const t of tokenizeCmdline(cmdline)) {
    if (t.key === 'gitroot.boot-medium' && typeof t.value === 'string' && t.value !== '') medium = t.value;
    if (t.key === 'gitroot.boot' && typeof t.value === 'string' && t.value.startsWith('/')) path = t.value;
  }
  return medium === null ? null : { medium, path };
}

/** The /dev/disk/by-* link (or the path) a device spec names (pure). */
export function deviceLink(spec: string): string | null {
  const m = /^(LABEL|UUID|PARTUUID|PARTLABEL)=(.+)$/.exec(spec);
  if (m === null) return spec.startsWith('/dev/') ? spec : null;
  const dir = { LABEL: 'by-label', UUID: 'by-uuid', PARTUUID: 'by-partuuid', PARTLABEL: 'by-partlabel' }[m[1] as 'LABEL'];
  // udev lower-cases UUIDs in its links and escapes '/' and blanks in labels.
  const value = m[1] === 'UUID' || m[1] === 'PARTUUID' ? m[2].toLowerCase() : m[2].replace(/\//g, '\\x2f').replace(/ /g, '\\x20');
  return `/dev/disk/${dir}/${value}`;
}

/** Waits for `spec`'s device; its real path, or null after `waitMs`. */
export async function waitForDevice(spec: string, waitMs = BOOT_PARTITION_WAIT_MS): Promise<string | null> {
  const link = deviceLink(spec);
  if (link === null) return null;
  for (const end = Date.now() + waitMs; ;) {
    if (existsSync(link)) return realpathSync(link);
    if (Date.now() >= end) return null;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Mounts the boot partition named by `cmdline` at `target` + its path; returns where and
 * what, or null when the command line names none. Throws (for the caller to warn) when the
 * device does not appear or does not mount.
 */
export async function mountBootPartition(cmdline: string, target: string, waitMs?: number): Promise<{ device: string; mountpoint: string } | null> {
  const spec = bootPartitionSpec(cmdline);
  if (spec === null) return null;
  const device = await waitForDevice(spec.medium, waitMs);
  if (device === null) throw new Error(`gitroot.boot-medium=${spec.medium} did not appear within ${(waitMs ?? BOOT_PARTITION_WAIT_MS) / 1000} s`);
  const mountpoint = join(target, spec.path);
  mkdirSync(mountpoint, { recursive: true });
  await execFileAsync('modprobe', ['-q', 'vfat']).catch(() => undefined);
  try {
    await execFileAsync('mount', ['-t', 'vfat', '-o', 'rw,noatime,umask=0077', device, mountpoint]);
  } catch (e) {
    const msg = ((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split('\n')[0];
    throw new Error(`cannot mount the boot partition ${device} (${spec.medium}) at ${spec.path}: ${msg}`);
  }
  return { device, mountpoint: spec.path };
}
