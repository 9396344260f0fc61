/**
 * The `none` backend: gitroot writes no boot loader configuration (the machine boots a fixed
 * kernel and initramfs set up by other means, and gitroot's initramfs picks the revision from
 * `D/state.json`). Kernels are still staged into `D/boot/<sha>/` for whoever wants them.
 */
import type { BootPlan, KernelLocation } from './boot-plan.js';
import { BOOT_COPY_DIR, type Bootloader, type InstalledEntries, type WriteEntriesOptions } from './bootloader.js';

/** The backend that writes nothing. */
export class NoBootloader implements Bootloader {
  readonly name = 'none' as const;
  readonly location: KernelLocation = { kernelRoot: `/${BOOT_COPY_DIR}`, copy: false };

  writeEntries(_plan: BootPlan, _opts?: WriteEntriesOptions): void {
    // Nothing to write: the boot loader is managed outside gitroot.
  }

  readEntries(): InstalledEntries {
    return { entries: [], defaultId: null };
  }
}
