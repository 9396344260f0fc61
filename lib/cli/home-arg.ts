/** Checking a command's --dir before any work: a missing gitroot home is a usage error naming the fix. */
import { statSync } from 'node:fs';
import { UsageError } from '../errors/errors.js';

/** Throws UsageError unless `dir` is a directory. */
export function requireHome(dir: string): void {
  let ok = false;
  try {
    ok = statSync(dir).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new UsageError(`gitroot home ${dir} is not a directory; pass the right --dir`, { data: { dir } });
}
