/**
 * `node dist/bench/fsck-bench.js`: `gitroot fsck` against `git fsck --full` in one run, on a
 * real Debian minbase tree committed with `gitroot commit` and repacked like a fetched repo
 * (one deltified pack), in a gitroot home whose only kept revision is that commit.
 *
 *   gitroot fsck --dir D --json   (SHA-1 of every object of the revision, pack checksums)
 *   git fsck --full               (every object of every pack, connectivity)
 *
 * Medians of BENCH_RUNS (default 3) runs, page cache warm for both; written as JSON under
 * bench/results/. Needs root and network access to a Debian mirror the first time (the
 * rootfs fixture is cached).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, writeResults } from './bench-results.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'bin', 'gitroot.js');
const fixture = resolve(root, '..', 'shared', 'fixtures', 'debian-rootfs.sh');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

function sh(cmd: string): string {
  return execFileSync('bash', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 30 });
}

/** Wall time of `cmd` in seconds, its stdout, and the peak RSS of the process (GNU time). */
function timed(cmd: string[], okStatus = 0): { s: number; stdout: string; rssMB: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', ...cmd], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== okStatus) throw new Error(`benchmark step failed (${r.status}): ${cmd.join(' ')}\n${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  return { s, stdout: r.stdout, rssMB: Number(lines[lines.length - 1]) / 1024 };
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'gitroot-fsck-bench-'));
  const tree = join(work, 'rootfs');
  const home = join(work, 'home');
  const repo = join(home, 'repo.git');
  try {
    process.stderr.write('bench: preparing a Debian minbase tree and committing it\n');
    sh(`bash ${fixture} ${tree} >/dev/null`);
    const commit = sh(`node ${cli} commit ${tree} --repo ${repo} -m 'debian minbase'`).trim();
    sh(`git -C ${repo} repack -adq --window=10 --depth=50`);
    const pack = Number(sh(`ls -l ${repo}/objects/pack/*.pack | awk '{s+=$5} END {print s}'`).trim());
    const objects = Number(sh(`git -C ${repo} rev-list --objects ${commit} | wc -l`).trim());
    // Warm the page cache once for both.
    timed(['git', '-C', repo, 'fsck', '--full', '--no-progress']);
    const r = { gitroot: [] as number[], git: [] as number[], gitrootRss: [] as number[], gitRss: [] as number[] };
    let checked = 0;
    for (let i = 0; i < RUNS; i++) {
      process.stderr.write(`bench: run ${i + 1}/${RUNS}\n`);
      const g = timed([process.execPath, cli, 'fsck', '--dir', home, '--json']);
      const report = JSON.parse(g.stdout);
      if (!report.clean) throw new Error('fsck found damage in a fresh repository');
      checked = report.objectsChecked;
      r.gitroot.push(g.s);
      r.gitrootRss.push(g.rssMB);
      const n = timed(['git', '-C', repo, 'fsck', '--full', '--no-progress']);
      r.git.push(n.s);
      r.gitRss.push(n.rssMB);
    }
    const m = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median(v)])) as Record<keyof typeof r, number>;
    const result = {
      date: new Date().toISOString(),
      node: process.version,
      runs: RUNS,
      repo: { commit, objects, objectsChecked: checked, packBytes: pack },
      medians: m,
      ratio: m.gitroot / m.git,
      raw: r,
    };
    console.log(`\nfsck benchmark: Debian minbase, ${objects} objects, pack ${(pack / 1e6).toFixed(1)} MB, median of ${RUNS}\n`);
    console.log(`gitroot fsck      ${m.gitroot.toFixed(2)} s   peak RSS ${m.gitrootRss.toFixed(0)} MB   (${checked} objects verified)`);
    console.log(`git fsck --full   ${m.git.toFixed(2)} s   peak RSS ${m.gitRss.toFixed(0)} MB`);
    console.log(`ratio             ${(m.gitroot / m.git).toFixed(2)}`);
    const file = writeResults(root, 'fsck', result);
    console.log(`\nwritten: ${file}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
