/**
 * Options several commands share, declared once: `--dir`, `--cmdline`, `--config`, `--wait`
 * and `--json`, with the same words, parsing and checks everywhere. A command adds them with
 * the helpers below and reads them with the same names (SharedOpts). Light on purpose: `gitroot
 * boot` uses it, so it loads neither the settings loader nor the fetcher.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { UsageError } from '../errors/errors.js';
import { bootedHome } from '../home/home-layout.js';
import { DEFAULT_LOCK_WAIT_MS } from '../fsutil/process-lock.js';
import { DEFAULT_CMDLINE_FILE } from '../params/cmdline-file.js';
import { DEFAULT_CONFIG_PATH } from '../params/config-path.js';

/** The shared options as commander hands them to an action (each present only when added). */
export interface SharedOpts {
  dir: string;
  cmdline?: string;
  config?: string;
  /** Seconds, already checked by parseSeconds. */
  wait: number;
  json?: boolean;
}

/** `--wait` when a command has no reason to wait longer: the fetcher's own default (5 s). */
export const DEFAULT_WAIT_SECONDS = DEFAULT_LOCK_WAIT_MS / 1000;

/**
 * Parses a number of seconds (commander's argParser for `--wait`, `--health-timeout`); anything
 * else than a number >= 0 is a one-line usage error (exit 2) naming the option and the value.
 */
export function parseSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('give a number of seconds >= 0, e.g. 30');
  return n;
}

/** Milliseconds of a number of seconds from an option; UsageError if it is not one (a programming slip). */
export function secondsToMs(seconds: number, option = '--wait'): number {
  if (!Number.isFinite(seconds) || seconds < 0) throw new UsageError(`${option} needs a number of seconds >= 0, not '${seconds}'`);
  return Math.round(seconds * 1000);
}

/**
 * Adds `--dir <dir>`, the gitroot home; `note` adds what this command does with it. On a
 * machine gitroot booted it defaults to the booted home (/run/gitroot/home, like
 * `rpm-ostree status` needs no arguments); elsewhere a missing `--dir` is a one-line usage
 * error. `required` (gitroot boot, which runs before there is a booted home) never defaults.
 */
export function addDirOption(cmd: Command, note?: string, opts: { required?: boolean } = {}): Command {
  const help = `the gitroot home (repo.git, state.json, boot/)${note === undefined ? '' : `; ${note}`}`;
  if (opts.required === true) return cmd.requiredOption('--dir <dir>', help);
  return cmd.option('--dir <dir>', `${help} (default on a machine gitroot booted: its home, /run/gitroot/home)`).hook('preAction', (c) => {
    if (c.opts().dir !== undefined) return;
    const home = bootedHome();
    if (home === null) {
      throw new UsageError(`gitroot ${c.name()} needs --dir: this machine was not booted by gitroot (no /run/gitroot/booted.json), so name the gitroot home`);
    }
    c.setOptionValue('dir', home);
  });
}

/**
 * Adds `--cmdline <file>`, the kernel command line file (default /proc/cmdline); `reads` says
 * what the command takes from it (settings, or git-revision= at boot). No commander default:
 * readCmdline and loadSettings apply DEFAULT_CMDLINE_FILE themselves.
 */
export function addCmdlineOption(cmd: Command, reads = 'settings'): Command {
  return cmd.option('--cmdline <file>', `kernel command line file to read ${reads} from (default ${DEFAULT_CMDLINE_FILE})`);
}

/** Adds `--config <path>`, the local config (a file, or a directory of *.conf files and conf.d/); `note` says when it is read. */
export function addConfigOption(cmd: Command, note?: string): Command {
  return cmd.option(
    '--config <path>',
    `config file, or directory of *.conf files and conf.d/ (default ${DEFAULT_CONFIG_PATH})${note === undefined ? '' : `; ${note}`}`,
  );
}

/**
 * Adds `--wait <seconds>`: how long to wait for another gitroot process holding the lock
 * before `what`. A default other than DEFAULT_WAIT_SECONDS needs its reason in `why`, shown in
 * the help (commander adds the default itself).
 */
export function addWaitOption(cmd: Command, what: string, defaultSeconds = DEFAULT_WAIT_SECONDS, why?: string): Command {
  return cmd.option(
    '--wait <seconds>',
    `wait this long for another gitroot process holding the lock before ${what}${why === undefined ? '' : ` (${why})`}`,
    parseSeconds,
    defaultSeconds,
  );
}

/** Adds `--json`: `what` goes to stdout as one JSON document and nothing else (notes stay on stderr); `note` adds a condition. */
export function addJsonOption(cmd: Command, what = 'the result', note?: string): Command {
  return cmd.option('--json', `print ${what} as JSON (stdout holds only the JSON)${note === undefined ? '' : `; ${note}`}`);
}
