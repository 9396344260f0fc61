#!/usr/bin/env node
// Selects test files by what they need, read from the marker line each test/*.test.ts carries
// right after its header comment:
//
//   // needs: none                 fast and pure: no root, FUSE, servers, git repositories, QEMU
//   // needs: git server root ...  any of NEEDS below
//
// Usage:
//   node scripts/test-select.mjs [--allow git,server,...] [--run [tap options]]
// prints (or, with --run, runs with tap) every test file whose needs are all allowed; `none`
// is always allowed, so without --allow it selects the fast pure tests (npm run test:unit).
// A test file without a marker, or with a word not in NEEDS, is an error: every test says
// what it needs, so the fast set stays right without anyone keeping a list.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What a test may need, as test/README.md explains. */
const NEEDS = ['git', 'server', 'root', 'fuse', 'debian', 'qemu'];
const MARKER = /^\/\/ needs: (.+)$/m;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const allowAt = args.indexOf('--allow');
const allowed = new Set(allowAt >= 0 ? (args[allowAt + 1] ?? '').split(',').filter(Boolean) : []);
const runAt = args.indexOf('--run');
for (const a of allowed) {
  if (!NEEDS.includes(a)) fail(`--allow ${a}: not a need (${NEEDS.join(', ')})`);
}

const files = readdirSync(join(root, 'test')).filter((f) => f.endsWith('.test.ts')).sort();
const problems = [];
const selected = [];
for (const f of files) {
  const m = MARKER.exec(readFileSync(join(root, 'test', f), 'utf8'));
  if (!m) {
    problems.push(`test/${f} has no '// needs: ...' line after its header`);
    continue;
  }
  const words = m[1].trim().split(/\s+/);
  const unknown = words.filter((w) => w !== 'none' && !NEEDS.includes(w));
  if (unknown.length || (words.includes('none') && words.length > 1)) {
    problems.push(`test/${f}: '// needs: ${m[1]}' (use 'none' alone, or words of: ${NEEDS.join(' ')})`);
    continue;
  }
  if (words.every((w) => w === 'none' || allowed.has(w))) selected.push(`test/${f}`);
}
if (problems.length) fail(problems.join('\n'));

if (runAt < 0) {
  process.stdout.write(selected.map((f) => `${f}\n`).join(''));
} else {
  // Pure tests share nothing, so they may run side by side; the others keep tap's one job.
  const jobs = allowed.size === 0 ? ['--jobs=2'] : [];
  const tapArgs = ['--no-install', 'tap', ...jobs, ...args.slice(runAt + 1), ...selected];
  const r = spawnSync('npx', tapArgs, { cwd: root, stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

function fail(message) {
  process.stderr.write(`test-select: ${message}\n`);
  process.exit(2);
}
