/**
 * The machine's identity across boots. The booted root's writable layer is a tmpfs, so an
 * `/etc/machine-id` written at one boot is gone at the next, and systemd would invent a new
 * id (and run its first-boot units) every time: journald, DHCP leases and anything counting
 * machines would see a new machine per boot. gitroot keeps the id in the home
 * (`D/machine-id`, made once from random bytes on the first boot) and gives it to the new
 * root before it starts. An id baked into the revision's tree is overridden: one image
 * serves many machines.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../fsutil/atomic-write.js';
import { machineIdPath } from '../home/home-layout.js';

const MACHINE_ID = /^[0-9a-f]{32}$/;

/** A new id in systemd's format: 128 random bits as 32 lower-case hex digits, shaped as a v4 UUID. */
export function newMachineId(): string {
  const b = randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return b.toString('hex');
}

/** The id kept in home `dir`, or null when there is none (or it is not a valid id). */
export function readMachineId(dir: string): string | null {
  try {
    const id = readFileSync(machineIdPath(dir), 'utf8').trim();
    return MACHINE_ID.test(id) ? id : null;
  } catch {
    return null;
  }
}

/**
 * The machine's id: the one in the home, or a new one written there durably first. With
 * `root`, also written to `root/etc/machine-id` (read-only, as systemd expects it).
 */
export function ensureMachineId(dir: string, root?: string): { id: string; created: boolean } {
  let id = readMachineId(dir);
  const created = id === null;
  if (id === null) {
    id = newMachineId();
    writeFileAtomic(machineIdPath(dir), `${id}\n`, 0o444);
  }
  if (root !== undefined && existsSync(join(root, 'etc'))) {
    const file = join(root, 'etc', 'machine-id');
    // The overlay's copy of a read-only file from the revision: make it writable first.
    if (existsSync(file)) chmodSync(file, 0o644);
    writeFileSync(file, `${id}\n`);
    chmodSync(file, 0o444);
  }
  return { id, created };
}
