/**
 * What every benchmark shares: the median of its runs, and writing its result to
 * bench/results/<name>-latest.json plus a dated copy (bench/results is gitignored).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The median (the upper one of an even count) of `xs`. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Writes `result` as bench/results/<name>-<date>.json and <name>-latest.json; returns the dated path. */
export function writeResults(root: string, name: string, result: { date: string }): string {
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const text = JSON.stringify(result, null, 2) + '\n';
  const file = join(dir, `${name}-${result.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, text);
  writeFileSync(join(dir, `${name}-latest.json`), text);
  return file;
}
