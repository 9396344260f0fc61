/**
 * The layout of a bootable disk image (pure): a GPT disk with a FAT boot partition (the EFI
 * system partition for UEFI; for BIOS the partition syslinux boots from) and an ext4 data
 * partition holding the gitroot home. Every identifier that would otherwise be random (disk
 * and partition GUIDs, the ext4 UUID and hash seed, the FAT serial) is derived from the
 * commit, and every timestamp is one epoch, so the same revision always gives the same
 * bytes. Sizes are whole MiB, partitions start on MiB boundaries.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../errors/errors.js';

export type Firmware = 'uefi' | 'bios';
export const FIRMWARES: readonly Firmware[] = ['uefi', 'bios'];

export const MIB = 1024 * 1024;
export const SECTOR = 512;
/** GPT partition type GUIDs (UEFI spec; Discoverable Partitions Specification). */
export const PART_TYPE = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  /** Linux extended boot (XBOOTLDR): the FAT partition syslinux boots from on BIOS machines. */
  xbootldr: 'BC13C2FF-59E6-4262-A352-B275FD6F7172',
  linuxData: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
} as const;
/** GPT partition names, what `gitroot.boot-medium=` and `gitroot.medium=` find them by. */
export const BOOT_PART_NAME = 'GITROOT-BOOT';
export const DATA_PART_NAME = 'GITROOT';
/** The ext4 label of the data partition and the FAT label of the boot partition. */
export const DATA_LABEL = 'GITROOT';
export const BOOT_LABEL = 'GITROOT-BT';

/** Space before the first partition (the GPT and alignment) and after the last (the backup GPT). */
const LEAD_MIB = 1;
const TAIL_MIB = 1;
/** FAT32 needs about 65,525 clusters; with 512-byte clusters that is 32 MiB, more is kinder to firmware. */
const MIN_BOOT_MIB = 64;
/**
 * Free space on the data partition beyond the home: the serving daemon spills big files it
 * decodes there from the first boot on (node itself is one), and the first update needs room
 * before `gitroot grow` has made the partition fill its disk.
 */
export const DATA_FREE_MIB = 512;

/** One partition of the plan. */
export interface PlannedPartition {
  name: string;
  type: string;
  /** Unique partition GUID (upper-case, as sfdisk prints it). */
  uuid: string;
  startMib: number;
  sizeMib: number;
  /** GPT attribute names (sfdisk `attrs=`), e.g. LegacyBIOSBootable. */
  attrs: string[];
}

export interface ImagePlan {
  firmware: Firmware;
  totalMib: number;
  diskGuid: string;
  boot: PlannedPartition;
  data: PlannedPartition;
  /** The ext4 file-system UUID and directory hash seed (lower-case). */
  ext4Uuid: string;
  ext4HashSeed: string;
  /** FAT volume serial, 8 hex digits. */
  fatSerial: string;
  /** Seconds since 1970 every timestamp in the image carries. */
  epoch: number;
}

export interface ImagePlanInputs {
  commit: string;
  firmware: Firmware;
  /** Bytes of the boot partition's files (boot loader, entries, one kernel and initrd). */
  bootBytes: number;
  /** Bytes of the kernel and initrd alone: the boot partition keeps room for two more. */
  kernelBytes: number;
  /** Bytes of the gitroot home's files. */
  homeBytes: number;
  /** The whole image's size asked for (`--size`), or null for the smallest that fits. */
  sizeBytes: number | null;
  epoch: number;
}

/** A GUID derived from the commit and what it names: the same inputs give the same GUID. */
export function derivedGuid(commit: string, purpose: string): string {
  const h = createHash('sha256').update(`gitroot-image\0${purpose}\0${commit}`).digest();
  h[6] = (h[6] & 0x0f) | 0x40; // shaped like a version-4 UUID, so tools accept it
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function mibFor(bytes: number): number {
  return Math.ceil(bytes / MIB);
}

/**
 * Plans the image (pure). The boot partition holds its files plus room for two more kernels
 * (a staged update beside the good one, and one being replaced), with a 25% margin; the data
 * partition holds the home with a 25% margin plus DATA_FREE_MIB, or all that `sizeBytes` leaves. UsageError when `sizeBytes` is smaller than what is needed.
 */
export function planImage(i: ImagePlanInputs): ImagePlan {
  const bootMib = Math.max(MIN_BOOT_MIB, mibFor((i.bootBytes + 2 * i.kernelBytes) * 1.25));
  const neededDataMib = mibFor(i.homeBytes * 1.25) + DATA_FREE_MIB;
  const fixedMib = LEAD_MIB + bootMib + TAIL_MIB;
  let totalMib = fixedMib + neededDataMib;
  if (i.sizeBytes !== null) {
    const asked = Math.floor(i.sizeBytes / MIB);
    if (asked < totalMib) {
      throw new UsageError(
        `--size ${formatMib(asked)} is too small for this revision: it needs at least ${formatMib(totalMib)} ` +
          `(boot partition ${bootMib} MiB, home ${neededDataMib} MiB): give a larger --size or leave it out`,
        { data: { askedMib: asked, neededMib: totalMib } },
      );
    }
    totalMib = asked;
  }
  const guid = (p: string) => derivedGuid(i.commit, p).toUpperCase();
  const boot: PlannedPartition = {
    name: BOOT_PART_NAME,
    type: i.firmware === 'uefi' ? PART_TYPE.esp : PART_TYPE.xbootldr,
    uuid: guid('boot-partition'),
    startMib: LEAD_MIB,
    sizeMib: bootMib,
    attrs: i.firmware === 'bios' ? ['LegacyBIOSBootable'] : [],
  };
  const data: PlannedPartition = {
    name: DATA_PART_NAME,
    type: PART_TYPE.linuxData,
    uuid: guid('data-partition'),
    startMib: LEAD_MIB + bootMib,
    sizeMib: totalMib - fixedMib,
    attrs: [],
  };
  return {
    firmware: i.firmware,
    totalMib,
    diskGuid: guid('disk'),
    boot,
    data,
    ext4Uuid: derivedGuid(i.commit, 'ext4'),
    ext4HashSeed: derivedGuid(i.commit, 'ext4-hash-seed'),
    fatSerial: derivedGuid(i.commit, 'fat').slice(0, 8).toUpperCase(),
    epoch: i.epoch,
  };
}

/** The sfdisk script of the plan's partition table. */
export function sfdiskScript(p: ImagePlan): string {
  const sectors = (mib: number) => (mib * MIB) / SECTOR;
  const line = (q: PlannedPartition) =>
    [
      `start=${sectors(q.startMib)}`,
      `size=${sectors(q.sizeMib)}`,
      `type=${q.type}`,
      `uuid=${q.uuid}`,
      `name="${q.name}"`,
      ...(q.attrs.length > 0 ? [`attrs="${q.attrs.join(' ')}"`] : []),
    ].join(', ');
  return ['label: gpt', `label-id: ${p.diskGuid}`, 'unit: sectors', `first-lba: ${sectors(LEAD_MIB)}`, line(p.boot), line(p.data), ''].join('\n');
}

/** `--size` values: bytes with an optional K, M, G or T suffix (powers of 1024), e.g. 2G, 1536M. */
export function parseImageSize(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)(i?B)?$/i.exec(raw.trim());
  const units: Record<string, number> = { '': 1, K: 1024, M: MIB, G: 1024 * MIB, T: 1024 * 1024 * MIB };
  if (m === null) throw new UsageError(`--size needs a size like 2G or 1536M, not '${raw}'`);
  const bytes = Math.floor(Number(m[1]) * units[m[2].toUpperCase()]);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new UsageError(`--size needs a size like 2G or 1536M, not '${raw}'`);
  return bytes;
}

function formatMib(mib: number): string {
  return mib >= 1024 && mib % 1024 === 0 ? `${mib / 1024}G` : `${mib}M`;
}
