/**
 * Temp directories for tests: each under the system temp dir, named `gitroot-PREFIX-XXXXXX`,
 * and removed when the test that made it ends.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A fresh temp directory, removed when the test `t` ends. */
export function tempDir(t: { teardown(fn: () => unknown): void }, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gitroot-${prefix}-`));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
