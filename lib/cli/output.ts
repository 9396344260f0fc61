/**
 * How commands speak: results on stdout (plain or, with --json, one JSON document and
 * nothing else), human notes and progress on stderr. Commands return data; these render.
 */

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
      if (tty && shown) process.stderr.write('\n');
    },
  };
}
