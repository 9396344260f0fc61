#!/usr/bin/env node
// Selects test files by what they need, read from the marker line each test/*.test.ts carries
// right after its header comment:
//
//   // needs: none                 fast and pure: no root, FUSE, servers, git repositories, QEMU
//   // needs: git server root ...  any of NEEDS below
//
// Usage:
//   node scripts/test-select.mjs [--allow git,server,...] [--run | --tap [tap options]]
// prints every test file whose needs are all allowed; `none` is always allowed, so without
// --allow it selects the fast pure tests (npm run test:unit). A test file without a marker,
// or with a word not in NEEDS, is an error: every test says what it needs, so the fast set
// stays right without anyone keeping a list.
//
// --run runs them, two at a time: the sources are transpiled with esbuild into .test-build/
// (a second, no type check: `npx tsc -p tsconfig.json` does that) and each test file runs as
// a plain node process, which prints TAP itself. That costs a fraction of tap's runner, whose
// TypeScript loader adds more than a second of CPU to every file. --tap runs them with tap
// instead (its reporter and options).
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
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
const tapAt = args.indexOf('--tap');
for (const a of allowed) {
  if (!NEEDS.includes(a)) fail(`--allow ${a}: not a need (${NEEDS.join(', ')})`);
}

const files = readdirSync(join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .sort();
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

// Pure tests share nothing, so they may run side by side; the others one at a time, as tap's
// configuration says.
const JOBS = allowed.size === 0 ? 2 : 1;
/** A test file still running after this long is stopped and counted as failed. */
const FILE_TIMEOUT_MS = 10 * 60 * 1000;

if (tapAt >= 0) {
  const r = spawnSync('npx', ['--no-install', 'tap', `--jobs=${JOBS}`, ...args.slice(tapAt + 1), ...selected], { cwd: root, stdio: 'inherit' });
  process.exit(r.status ?? 1);
} else if (runAt >= 0) {
  await runAll(selected);
} else {
  process.stdout.write(selected.map((f) => `${f}\n`).join(''));
}

/** Transpiles the sources into .test-build/ and runs `files` there, JOBS at a time. */
async function runAll(files) {
  const started = Date.now();
  const out = join(root, '.test-build');
  rmSync(out, { recursive: true, force: true });
  const { build } = await import('esbuild');
  const sources = ['bin', 'lib', 'test', 'fixtures', 'bench'].flatMap((d) => walk(join(root, d))).filter((f) => f.endsWith('.ts'));
  await build({ entryPoints: sources, outdir: out, outbase: root, format: 'esm', platform: 'node', target: 'node20', sourcemap: 'inline', logLevel: 'error' });
  // The build sits inside the project (git ignores it), so package.json's "type": "module"
  // applies to it and node_modules resolves as from the sources.

  const results = [];
  const queue = [...files];
  await Promise.all(
    Array.from({ length: JOBS }, async () => {
      for (let f = queue.shift(); f !== undefined; f = queue.shift()) results.push(await runOne(f, join(out, f.replace(/\.ts$/, '.js'))));
    }),
  );
  const failed = results.filter((r) => !r.ok);
  for (const r of failed) process.stdout.write(`\n# ${r.file} failed (${r.why}); its output:\n${r.output}`);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(
    `\n${files.length - failed.length} of ${files.length} test files passed in ${seconds} s${failed.length ? `; failed: ${failed.map((r) => r.file).join(' ')}` : ''}\n`,
  );
  process.exit(failed.length ? 1 : 0);
}

/** Runs one transpiled test file; its TAP output is kept for the report. */
function runOne(file, js) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--enable-source-maps', js], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, FILE_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ok = code === 0;
      const summary = /^# \{ total: .*$/m.exec(output)?.[0] ?? '';
      process.stdout.write(`${ok ? 'ok' : 'not ok'} - ${file} (${((Date.now() - t0) / 1000).toFixed(1)} s) ${summary}\n`);
      resolve({ file, ok, output, why: signal ? `killed by ${signal}` : `exit ${code}` });
    });
  });
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

function fail(message) {
  process.stderr.write(`test-select: ${message}\n`);
  process.exit(2);
}
