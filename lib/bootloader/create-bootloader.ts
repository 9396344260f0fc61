/**
 * The one place a boot loader backend is chosen: by the name in `gitroot.bootloader`
 * (`bls`, `extlinux`, `none`). Nothing is probed: the machine's configuration says which.
 */
import { BlsBootloader } from './bootloader-bls.js';
import { ExtlinuxBootloader } from './bootloader-extlinux.js';
import { NoBootloader } from './bootloader-none.js';
import { type Bootloader, type BootloaderName, type BootloaderOptions, parseBootloaderName } from './bootloader.js';

/** The backend named `name` (ConfigError for an unknown name or a missing `bootDir`). */
export function createBootloader(name: BootloaderName | string, opts: BootloaderOptions): Bootloader {
  switch (parseBootloaderName(name)) {
    case 'bls':
      return new BlsBootloader(opts);
    case 'extlinux':
      return new ExtlinuxBootloader(opts);
    case 'none':
      return new NoBootloader();
  }
}
