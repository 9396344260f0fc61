/**
 * Trust benchmark (`node dist/bench/trust-bench.js`): what signature verification adds to a
 * fetch (target: <= 50 ms, docs/trust.md), measured in the same run as the fetch itself.
 *
 *   (1) `gitroot fetch` through the CLI from the project's `git http-backend` fixture on
 *       127.0.0.1, into a fresh home each run, with gitroot.allowed-signers set: the
 *       verification time the fetch process reports (trust.verifyMs: reading the commit and
 *       checking its signature, cold, in that process) against the fetch's own time
 *       (fetch.durationMs) and the process's wall time; median of BENCH_RUNS
 *   (2) the same fetches without gitroot.allowed-signers, alternating with (1): the wall-time
 *       difference is the end-to-end cost (noisy on a shared machine; (1) is the precise one)
 *   (3) an up-to-date fetch (commit already present, nothing downloaded), where verification
 *       is the largest share
 *   (4) in-process, warm: judgeRevision per key type, and parsing an allowed-signers file of
 *       50 keys (done once per fetch at settings load)
 *
 * The tree is synthetic (BENCH_FILES files, 8 KiB each, random): verification reads only the
 * commit object, so its cost does not depend on the tree; the fetch's does. Prints a table and
 * writes bench/results/trust-latest.json (and a dated copy). Needs git and ssh-keygen.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGitHttpServer } from '../fixtures/git-http-server.js';
import { ObjectStore } from '../lib/store/object-store.js';
import { parseAllowedSigners, readAllowedSigners } from '../lib/trust/allowed-signers.js';
import { judgeRevision } from '../lib/trust/revision-trust.js';
import { median, writeResults } from './bench-results.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'bin', 'gitroot.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const FILES = Number(process.env.BENCH_FILES ?? 2000);
const WARM_ITERATIONS = 200;

const env = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Bench',
  GIT_AUTHOR_EMAIL: 'bench@example.com',
  GIT_COMMITTER_NAME: 'Bench',
  GIT_COMMITTER_EMAIL: 'bench@example.com',
};
const run = (cmd: string, args: string[], input?: string): string => execFileSync(cmd, args, { env, input, encoding: 'utf8', maxBuffer: 1 << 28 }).trim();

/** Runs the CLI without blocking this process (the server runs here); wall time in ms and stdout. */
function cliRun(args: string[]): Promise<{ ms: number; status: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => done({ ms: performance.now() - t0, status: code ?? 1, stdout, stderr }));
  });
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'gitroot-trust-bench-'));
  try {
    // Keys, allowed-signers, and a server repo whose tip is signed by real git.
    const keys: Record<string, string> = {};
    for (const [name, type, bits] of [
      ['ed25519', 'ed25519', ''],
      ['rsa3072', 'rsa', '3072'],
      ['ecdsa256', 'ecdsa', '256'],
    ]) {
      keys[name] = join(work, name);
      run('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', bits] : []), '-N', '', '-C', name, '-f', keys[name]]);
    }
    const signersFile = join(work, 'allowed-signers');
    writeFileSync(
      signersFile,
      Object.keys(keys)
        .map((k) => `${k}@example.com namespaces="git" ${readFileSync(`${keys[k]}.pub`, 'utf8').trim()}`)
        .join('\n') + '\n',
    );
    const srv = join(work, 'srv');
    const repo = join(srv, 'os.git');
    const tree = join(work, 'tree');
    for (let i = 0; i < FILES; i++) {
      const d = join(tree, 'usr', 'share', `pkg${i % 50}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `f${i}`), randomBytes(8192));
    }
    run('git', ['init', '-q', '--bare', repo]);
    run('git', ['--git-dir', repo, '--work-tree', tree, 'add', '-A']);
    const treeId = run('git', ['--git-dir', repo, 'write-tree']);
    const tips: Record<string, string> = {};
    for (const k of Object.keys(keys)) {
      tips[k] = run('git', [
        '--git-dir',
        repo,
        '-c',
        'gpg.format=ssh',
        '-c',
        `user.signingkey=${keys[k]}`,
        'commit-tree',
        '-S',
        '-m',
        `release signed with ${k}`,
        treeId,
      ]);
      run('git', ['--git-dir', repo, 'update-ref', `refs/heads/${k}`, tips[k]]);
    }
    run('git', ['--git-dir', repo, 'repack', '-adq']);
    const server = await startGitHttpServer({ projectRoot: srv });
    const url = server.url('os.git');

    const machine = (name: string, signed: boolean, branch = 'ed25519'): { dir: string; conf: string; cmdline: string } => {
      const base = join(work, name);
      mkdirSync(base, { recursive: true });
      const conf = join(base, 'gitroot.conf');
      const cmdline = join(base, 'cmdline');
      writeFileSync(
        conf,
        [`gitroot.remote=${url}`, `fetch-revision=${branch}`, 'gitroot.bootloader=none', ...(signed ? [`gitroot.allowed-signers=${signersFile}`] : [])].join(
          '\n',
        ) + '\n',
      );
      writeFileSync(cmdline, 'quiet\n');
      return { dir: join(base, 'home'), conf, cmdline };
    };
    const fetchArgs = (m: { dir: string; conf: string; cmdline: string }) => ['fetch', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, '--json'];

    const signedRuns: Array<{ wallMs: number; fetchMs: number; verifyMs: number; verifyCpuMs: number; downgradeMs: number }> = [];
    const plainWall: number[] = [];
    const upToDate: Array<{ wallMs: number; fetchMs: number; verifyMs: number; verifyCpuMs: number }> = [];
    try {
      for (let i = 0; i < RUNS; i++) {
        // Alternate which goes first so warm-up and load spread over both.
        const order = i % 2 === 0 ? [true, false] : [false, true];
        for (const signed of order) {
          const m = machine(`run-${i}-${signed ? 's' : 'p'}`, signed);
          const r = await cliRun(fetchArgs(m));
          if (r.status !== 0) throw new Error(`fetch failed: ${r.stderr}`);
          const out = JSON.parse(r.stdout);
          if (signed) {
            signedRuns.push({
              wallMs: r.ms,
              fetchMs: out.fetch.durationMs,
              verifyMs: out.trust.verifyMs,
              verifyCpuMs: out.trust.verifyCpuMs,
              downgradeMs: out.trust.downgradeMs,
            });
            const again = await cliRun(fetchArgs(m));
            if (again.status !== 0) throw new Error(`second fetch failed: ${again.stderr}`);
            const o2 = JSON.parse(again.stdout);
            if (o2.action !== 'up-to-date' && o2.action !== 'staged') throw new Error(`unexpected ${o2.action}`);
            upToDate.push({ wallMs: again.ms, fetchMs: o2.fetch.durationMs, verifyMs: o2.trust.verifyMs, verifyCpuMs: o2.trust.verifyCpuMs });
          } else {
            plainWall.push(r.ms);
          }
          rmSync(dirname(m.dir), { recursive: true, force: true });
        }
      }
    } finally {
      await server.close();
    }

    // (4) In-process, warm.
    const store = ObjectStore.open(repo);
    const signers = readAllowedSigners(signersFile);
    const warm: Record<string, number> = {};
    for (const k of Object.keys(keys)) {
      const xs: number[] = [];
      for (let i = 0; i < WARM_ITERATIONS; i++) {
        const t0 = performance.now();
        const v = judgeRevision(store, signers, tips[k]);
        xs.push(performance.now() - t0);
        if (!v.verdict.trusted) throw new Error(`${k}: not trusted`);
      }
      warm[k] = median(xs);
    }
    store.close();
    const many = Array.from(
      { length: 50 },
      (_, i) => `user${i}@example.com namespaces="git" ${readFileSync(`${keys[['ed25519', 'rsa3072', 'ecdsa256'][i % 3]]}.pub`, 'utf8').trim()}`,
    ).join('\n');
    const parseXs: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      parseAllowedSigners(many, 'bench');
      parseXs.push(performance.now() - t0);
    }

    const result = {
      date: new Date().toISOString(),
      node: process.version,
      git: run('git', ['--version']),
      runs: RUNS,
      /** The machine is shared: its load during the run explains noisy wall times. */
      cpus: cpus().length,
      loadavgAtEnd: loadavg(),
      tree: { files: FILES, bytes: FILES * 8192 },
      targetMs: 50,
      fetch: {
        signed: signedRuns,
        plainWallMs: plainWall,
        medianVerifyMs: median(signedRuns.map((r) => r.verifyMs)),
        medianVerifyCpuMs: median(signedRuns.map((r) => r.verifyCpuMs)),
        verifyShareOfFetch: median(signedRuns.map((r) => r.verifyMs / r.fetchMs)),
        medianDowngradeMs: median(signedRuns.map((r) => r.downgradeMs)),
        medianFetchMs: median(signedRuns.map((r) => r.fetchMs)),
        medianSignedWallMs: median(signedRuns.map((r) => r.wallMs)),
        medianPlainWallMs: median(plainWall),
        endToEndDeltaMs: median(signedRuns.map((r) => r.wallMs)) - median(plainWall),
      },
      upToDate: {
        runs: upToDate,
        medianVerifyMs: median(upToDate.map((r) => r.verifyMs)),
        medianVerifyCpuMs: median(upToDate.map((r) => r.verifyCpuMs)),
        medianFetchMs: median(upToDate.map((r) => r.fetchMs)),
        medianWallMs: median(upToDate.map((r) => r.wallMs)),
      },
      warmVerifyMs: warm,
      parse50KeysMs: median(parseXs),
    };
    const f = result.fetch;
    const line = (a: string, b: string) => console.log(`${a.padEnd(58)} ${b}`);
    line(
      'fetch (full, CLI): verification, cold, in the fetch process',
      `${f.medianVerifyMs.toFixed(2)} ms wall, ${f.medianVerifyCpuMs.toFixed(2)} ms CPU (target <= 50)`,
    );
    line('fetch (full, CLI): verification / fetch (median of ratios)', `${(100 * f.verifyShareOfFetch).toFixed(2)} %`);
    line('fetch (full, CLI): downgrade walk', `${f.medianDowngradeMs.toFixed(2)} ms`);
    line('fetch (full, CLI): the fetch itself (fetch.durationMs)', `${f.medianFetchMs.toFixed(1)} ms`);
    line(
      'fetch (full, CLI): wall, with / without allowed-signers',
      `${f.medianSignedWallMs.toFixed(1)} / ${f.medianPlainWallMs.toFixed(1)} ms (delta ${f.endToEndDeltaMs.toFixed(1)} ms, noisy)`,
    );
    line(
      'fetch (up to date): verification (CPU) / fetch / wall',
      `${result.upToDate.medianVerifyMs.toFixed(2)} (${result.upToDate.medianVerifyCpuMs.toFixed(2)}) / ${result.upToDate.medianFetchMs.toFixed(1)} / ${result.upToDate.medianWallMs.toFixed(1)} ms`,
    );
    for (const [k, v] of Object.entries(warm)) line(`warm judgeRevision, ${k}`, `${v.toFixed(3)} ms`);
    line('parse an allowed-signers file of 50 keys', `${result.parse50KeysMs.toFixed(2)} ms`);
    line('load average at the end (1, 5, 15 min)', `${result.loadavgAtEnd.map((x) => x.toFixed(2)).join(', ')} on ${result.cpus} CPUs`);
    writeResults(root, 'trust', result);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
