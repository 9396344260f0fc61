/**
 * Options several commands share, declared once: `--dir`, `--cmdline`, `--config`, `--wait`
 * and `--json`, with the same words, parsing and checks everywhere. A command adds them with
 * the helpers below and reads them with the same names.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { UsageError } from '../errors/errors.js';

/** Parses a `--wait`-style number of seconds (commander's argParser); rejects negatives and junk. */
export function parseSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`needs a number of seconds >= 0, not '${value}'`);
  return n;
}

/** Checks a number of seconds from an option; returns milliseconds. */
export function secondsToMs(seconds: number, option = '--wait'): number {
  if (!Number.isFinite(seconds) || seconds < 0) throw new UsageError(`${option} needs a number of seconds >= 0, not '${seconds}'`);
  return Math.round(seconds * 1000);
}

/** Adds `--wait <seconds>`: how long to wait for another gitroot process holding the lock. */
export function addWaitOption(cmd: Command, what: string, defaultSeconds: number): Command {
  return cmd.option('--wait <seconds>', `wait this long for another gitroot process to finish before ${what}`, parseSeconds, defaultSeconds);
}
