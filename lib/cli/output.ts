/**
 * How commands speak: results on stdout (plain or, with --json, one JSON document and
 * nothing else), human notes and progress on stderr. Commands return data; these render.
 */
import { formatBytes } from '../fsutil/free-space.js';

/** Prints a result as JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Prints a line on stdout. */
export function printLine(line: string): void {
  process.stdout.write(line + '\n');
}

/** A note for humans on stderr (never mixed into --json output). */
export function note(line: string): void {
  process.stderr.write(`gitroot: ${line}\n`);
}

/** A progress reporter: a bar on a terminal, a plain line every few seconds otherwise. */
export function progress(label: string): { update(done: number, total: number): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  // Plain lines (systemd, pipes): one every 5 s, and a last one only if any was printed.
  let last = tty ? 0 : Date.now();
  let shown = false;
  return {
    update(done, total) {
      const now = Date.now();
      if (now - last < (tty ? 100 : 5000) && !(done === total && (tty || shown))) return;
      last = now;
      const pct = total ? Math.floor((done / total) * 100) : 100;
      if (tty) {
        const width = 30;
        const fill = Math.round((pct / 100) * width);
        process.stderr.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${pct}% ${done}/${total}`);
        shown = true;
      } else {
        process.stderr.write(`gitroot: ${label} ${done}/${total} (${pct}%)\n`);
        shown = true;
      }
    },
    end() {
      // Idempotent: a second call (success path, then a finally) adds no empty line.
      if (tty && shown) process.stderr.write('\n');
      shown = false;
    },
  };
}

/** Download progress: a live line on a terminal (phase, bytes, rate), a plain line every 5 s otherwise. */
export function byteProgress(): { update(phase: string, bytes: number, rate?: number, objects?: number, total?: number): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  let last = tty ? 0 : Date.now();
  let shown = false;
  return {
    update(phase, bytes, rate, objects, total) {
      const now = Date.now();
      if (now - last < (tty ? 100 : 5000)) return;
      last = now;
      const parts = [`${phase}`, formatBytes(bytes)];
      if (rate) parts.push(`${formatBytes(Math.round(rate))}/s`);
      if (objects !== undefined && total) parts.push(`${objects}/${total} objects`);
      if (tty) process.stderr.write(`\r\x1b[K${parts.join('  ')}`);
      else process.stderr.write(`gitroot: ${parts.join(', ')}\n`);
      shown = true;
    },
    end() {
      // Idempotent: a second call (success path, then a finally) adds no empty line.
      if (tty && shown) process.stderr.write('\n');
      shown = false;
    },
  };
}
