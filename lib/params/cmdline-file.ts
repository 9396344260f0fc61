/**
 * The kernel command line file, read in one place: /proc/cmdline by default, or the file
 * `--cmdline` names, for the settings loader, `gitroot boot`, `select` and the update's boot
 * entries. Light on purpose (node:fs only): `gitroot boot` reads it without loading the
 * settings loader.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors/errors.js';

/** Where the kernel command line is read from by default. */
export const DEFAULT_CMDLINE_FILE = '/proc/cmdline';

/** The bytes of the kernel command line file; ConfigError (exit 2) naming the file when it cannot be read. */
export function readCmdlineBytes(file: string = DEFAULT_CMDLINE_FILE): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new ConfigError(`cannot read the kernel command line file ${file} (${code}): pass --cmdline with a readable file`, {
      cause: e,
      data: { source: file },
    });
  }
}

/**
 * The kernel command line text (bytes that are not UTF-8 become U+FFFD, never an error: a
 * boot must not stop on them); ConfigError when the file cannot be read.
 */
export function readCmdline(file: string = DEFAULT_CMDLINE_FILE): string {
  return readCmdlineBytes(file).toString('utf8');
}
