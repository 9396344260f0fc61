/**
 * Growing the gitroot medium to fill its disk: an image is made as small as its revision
 * needs, and `dd` puts it on a disk or USB stick of any size. On a booted machine
 * (`gitroot grow`, run by gitroot-grow.service at every boot, doing nothing once done):
 *   1. find the medium's partition and its disk (/run/gitroot/medium in the mount table);
 *   2. plan (pure, planGrow): only the last partition of a GPT disk grows, to the last whole
 *      MiB before the backup GPT, and only when that gains at least GROW_MIN_BYTES;
 *   3. move the backup GPT to the disk's end (sfdisk --relocate gpt-bak-std);
 *   4. enlarge the partition entry (sfdisk -N, start unchanged), tell the kernel (partx -u);
 *   5. grow the mounted ext4 online (resize2fs).
 * Each step is safe to repeat: a power cut between them leaves a smaller partition or file
 * system than the disk allows, which the next boot's run finishes. The file system is never
 * shrunk or moved, so the home and its data stay where they are.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import { UsageError } from '../errors/errors.js';
import { step, stepAsync } from '../fsutil/named-step.js';
import { runTool } from './image-tools.js';

/** Growing by less than this is not worth a partition table write. */
export const GROW_MIN_BYTES = 16 * 1024 * 1024;
/** Partitions end on MiB boundaries, like the image's. */
const ALIGN_BYTES = 1024 * 1024;
/** The backup GPT: its header plus 32 sectors of entries (of 512 bytes). */
const BACKUP_GPT_SECTORS = 33;

/** What sfdisk --json says of a disk (the parts the plan reads). */
export interface DiskTable {
  label: string;
  /** The last sector partitions may use (before the backup GPT as it lies now). */
  lastlba: number;
  sectorsize?: number;
  partitions: Array<{ node: string; start: number; size: number }>;
}

export type GrowPlan =
  { action: 'grow'; node: string; start: number; size: number; newSize: number; relocate: boolean; addedBytes: number } | { action: 'none'; reason: string };

/**
 * Plans growing partition `node` of `table` on a disk of `diskSectors` sectors (pure): the
 * partition must be the disk's last; it ends at the last MiB boundary before the backup GPT;
 * `relocate` when the backup GPT is not at the disk's end yet (the image was smaller).
 */
export function planGrow(table: DiskTable, node: string, diskSectors: number): GrowPlan {
  if (table.label !== 'gpt') return { action: 'none', reason: `the disk has a ${table.label} partition table, not GPT` };
  const sector = table.sectorsize ?? 512;
  const part = table.partitions.find((p) => p.node === node);
  if (part === undefined) return { action: 'none', reason: `${node} is not in the disk's partition table` };
  const end = part.start + part.size;
  const later = table.partitions.filter((p) => p.start >= end);
  if (later.length > 0) return { action: 'none', reason: `${node} is not the disk's last partition (${later.map((p) => p.node).join(', ')} follow it)` };
  const usableEnd = diskSectors - BACKUP_GPT_SECTORS - 1; // the last sector a partition may use
  const align = ALIGN_BYTES / sector;
  const newEnd = Math.floor((usableEnd + 1) / align) * align; // exclusive, on a MiB boundary
  const newSize = newEnd - part.start;
  const added = (newSize - part.size) * sector;
  if (added < GROW_MIN_BYTES) return { action: 'none', reason: `${node} already fills the disk` };
  return { action: 'grow', node, start: part.start, size: part.size, newSize, relocate: table.lastlba < usableEnd, addedBytes: added };
}

/** The block device mounted at `mountPoint` (from /proc/self/mountinfo), or null. */
export function deviceMountedAt(mountPoint: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string | null {
  let found: string | null = null;
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || f[4] !== mountPoint) continue;
    const source = f[sep + 2];
    if (source?.startsWith('/dev/')) found = source; // the last mount there is the visible one
  }
  return found;
}

/** The whole disk holding partition `dev` and the partition's number, from sysfs. */
export function diskOfPartition(dev: string, sys = '/sys/class/block'): { disk: string; number: number } {
  const name = basename(realpathSync(dev));
  let number: number;
  try {
    number = Number(readFileSync(join(sys, name, 'partition'), 'utf8').trim());
  } catch {
    throw new UsageError(`${dev} is not a partition (it has no ${join(sys, name, 'partition')}): the medium must be a partition of a disk to grow`);
  }
  const parent = basename(join(realpathSync(join(sys, name)), '..'));
  return { disk: `/dev/${parent}`, number };
}

export interface GrowResult {
  device: string;
  disk: string;
  plan: GrowPlan;
  /** True when the partition and the file system were grown. */
  grown: boolean;
}

/** Grows the medium mounted at `mountPoint` (see the module comment); `dryRun` only plans. */
export async function growMedium(opts: { mountPoint: string; dryRun?: boolean; env?: NodeJS.ProcessEnv }): Promise<GrowResult> {
  const env = opts.env ?? process.env;
  const device = step('find medium', () => {
    const d = deviceMountedAt(opts.mountPoint);
    if (d === null) throw new UsageError(`nothing is mounted at ${opts.mountPoint}: run this on a machine gitroot booted (or pass --medium)`);
    return d;
  });
  const { disk } = step('find disk', () => diskOfPartition(device));
  const table = await stepAsync(
    'read partition table',
    async () => (JSON.parse(await runTool('sfdisk', ['--json', disk], { env })) as { partitiontable: DiskTable }).partitiontable,
  );
  const sectors = Number((await runTool('blockdev', ['--getsz', disk], { env })).trim());
  const plan = planGrow(table, realpathSync(device), sectors);
  if (plan.action === 'none' || opts.dryRun) return { device, disk, plan, grown: false };
  if (plan.relocate) await stepAsync('move backup GPT', () => runTool('sfdisk', ['--quiet', '--relocate', 'gpt-bak-std', disk], { env }));
  const number = diskOfPartition(device).number;
  await stepAsync('enlarge partition', () =>
    runTool('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', '-N', String(number), disk], {
      env,
      input: `start=${plan.start}, size=${plan.newSize}\n`,
    }),
  );
  await stepAsync('tell the kernel', () => runTool('partx', ['--update', '--nr', String(number), disk], { env }));
  await stepAsync('grow file system', () => runTool('resize2fs', [device], { env }));
  return { device, disk, plan, grown: true };
}
