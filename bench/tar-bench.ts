/**
 * `node dist/bench/tar-bench.js`: `gitroot commit --from-tar` against `gitroot commit DIR`
 * in one run, on a real Debian minbase tree and the GNU tar archive of it
 * (`tar --xattrs --numeric-owner -cf`), each into a fresh repository:
 *
 *   gitroot commit DIR --repo R                 (the reference)
 *   gitroot commit --from-tar FILE --repo R     (plain archive file)
 *   zstd -dc FILE.zst | gitroot commit --from-tar - --repo R   (compressed, through a pipe)
 *   gitroot export master --repo R -o OUT       (the way back)
 *
 * plus the peak RSS of --from-tar on an archive holding the tree twice (under ./a and ./b),
 * to show memory does not grow with the tree. Then the same DIR-against-tar comparison on the
 * example kiosk OS (examples/kiosk: its cached system layer, a real Debian 13 tree of ~15k
 * files) when a build has cached one, or the tar named by BENCH_KIOSK_TAR. Medians of
 * BENCH_RUNS (default 3) runs, page cache warm for all; written as JSON under bench/results/. Needs root and, the first time,
 * a Debian mirror (the rootfs fixture is cached).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
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

/** Wall time of `cmd` (run by bash) in seconds and the peak RSS in MB of the largest process in it (GNU time). */
function timed(cmd: string): { s: number; rssMB: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', 'bash', '-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`benchmark step failed (${r.status}): ${cmd}\n${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  return { s, rssMB: Number(lines[lines.length - 1]) / 1024 };
}

/** The example OS's archive: BENCH_KIOSK_TAR, or the newest system layer a kiosk build cached; null when there is none. */
function kioskTar(): string | null {
  if (process.env.BENCH_KIOSK_TAR) return process.env.BENCH_KIOSK_TAR;
  const dir = '/var/cache/gitroot-build/kiosk';
  if (!existsSync(dir)) return null;
  const tars = readdirSync(dir)
    .filter((n) => /^system-.*\.tar$/.test(n))
    .map((n) => join(dir, n))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return tars[0] ?? null;
}

/** commit DIR against commit --from-tar on one more tree (its archive extracted as root for the DIR side). */
function compareOn(
  work: string,
  cached: string,
): { files: number; bytes: number; dir: { s: number; rssMB: number }; tar: { s: number; rssMB: number }; raw: unknown } {
  // A copy: a kiosk build running meanwhile replaces its cached layer when its inputs change.
  const tar = join(work, 'kiosk.tar');
  copyFileSync(cached, tar);
  const tree = join(work, 'kiosk-root');
  mkdirSync(tree);
  sh(`tar --xattrs --xattrs-include='*' --numeric-owner -xpf ${tar} -C ${tree}`);
  const files = Number(sh(`find ${tree} -type f | wc -l`).trim());
  const repo = (name: string): string => {
    const r = join(work, `${name}.git`);
    rmSync(r, { recursive: true, force: true });
    return r;
  };
  const dir = () => timed(`node ${cli} commit ${tree} --repo ${repo('kiosk-dir')} >/dev/null 2>&1`);
  const fromTar = () => timed(`node ${cli} commit --from-tar ${tar} --repo ${repo('kiosk-tar')} >/dev/null 2>&1`);
  const r = { dir: [] as Array<{ s: number; rssMB: number }>, tar: [] as Array<{ s: number; rssMB: number }> };
  for (let i = 0; i < RUNS; i++) {
    process.stderr.write(`bench: example OS run ${i + 1}/${RUNS}\n`);
    if (i % 2 === 0) {
      r.dir.push(dir());
      r.tar.push(fromTar());
    } else {
      r.tar.push(fromTar());
      r.dir.push(dir());
    }
  }
  const trees = ['kiosk-dir', 'kiosk-tar'].map((n) => sh(`git --git-dir=${join(work, `${n}.git`)} rev-parse HEAD^{tree}`).trim());
  if (trees[0] !== trees[1]) throw new Error(`the example OS trees differ: ${trees.join(' ')}`);
  rmSync(tree, { recursive: true, force: true });
  const m = (xs: Array<{ s: number; rssMB: number }>) => ({ s: median(xs.map((x) => x.s)), rssMB: median(xs.map((x) => x.rssMB)) });
  return { files, bytes: statSync(tar).size, dir: m(r.dir), tar: m(r.tar), raw: r };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'gitroot-tar-bench-'));
  const tree = join(work, 'rootfs');
  const tar = join(work, 'rootfs.tar');
  const zst = `${tar}.zst`;
  const double = join(work, 'double.tar');
  try {
    process.stderr.write('bench: preparing a Debian minbase tree and its archives\n');
    sh(`bash ${fixture} ${tree} >/dev/null`);
    sh(`tar --xattrs --xattrs-include='*' --numeric-owner -cf ${tar} -C ${tree} .`);
    sh(`zstd -q -T0 -c ${tar} > ${zst}`);
    sh(
      `tar --xattrs --xattrs-include='*' --numeric-owner -cf ${double} -C ${tree} --transform='s,^\\.,./a,' . && ` +
        `tar --xattrs --xattrs-include='*' --numeric-owner -rf ${double} -C ${tree} --transform='s,^\\.,./b,' .`,
    );
    const files = Number(sh(`find ${tree} -type f | wc -l`).trim());
    const bytes = statSync(tar).size;
    const repo = (name: string): string => {
      const r = join(work, `${name}.git`);
      rmSync(r, { recursive: true, force: true });
      return r;
    };
    const run = {
      dir: () => timed(`node ${cli} commit ${tree} --repo ${repo('dir')} >/dev/null 2>&1`),
      tar: () => timed(`node ${cli} commit --from-tar ${tar} --repo ${repo('tar')} >/dev/null 2>&1`),
      zstdPipe: () => timed(`set -o pipefail; zstd -dcq ${zst} | node ${cli} commit --from-tar - --repo ${repo('zst')} >/dev/null 2>&1`),
      export: () => timed(`node ${cli} export master --repo ${join(work, 'dir.git')} -o ${join(work, 'export.tar')} >/dev/null`),
      tarDouble: () => timed(`node ${cli} commit --from-tar ${double} --repo ${repo('double')} >/dev/null 2>&1`),
    };
    // Warm the page cache (tree and archives) once.
    run.dir();
    run.tar();
    const r: Record<keyof typeof run, { s: number[]; rssMB: number[] }> = {
      dir: { s: [], rssMB: [] },
      tar: { s: [], rssMB: [] },
      zstdPipe: { s: [], rssMB: [] },
      export: { s: [], rssMB: [] },
      tarDouble: { s: [], rssMB: [] },
    };
    for (let i = 0; i < RUNS; i++) {
      process.stderr.write(`bench: run ${i + 1}/${RUNS}\n`);
      // Alternate the order so neither side always runs on a warmer machine.
      const order: Array<keyof typeof run> =
        i % 2 === 0 ? ['dir', 'tar', 'zstdPipe', 'export', 'tarDouble'] : ['tar', 'dir', 'zstdPipe', 'export', 'tarDouble'];
      for (const k of order) {
        const m = run[k]();
        r[k].s.push(m.s);
        r[k].rssMB.push(m.rssMB);
      }
    }
    const trees = ['dir', 'tar', 'zst'].map((n) => sh(`git --git-dir=${join(work, `${n}.git`)} rev-parse HEAD^{tree}`).trim());
    if (new Set(trees).size !== 1) throw new Error(`the trees differ: ${trees.join(' ')}`);
    const med = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { s: median(v.s), rssMB: median(v.rssMB) }])) as Record<
      keyof typeof run,
      { s: number; rssMB: number }
    >;
    const result = {
      date: new Date().toISOString(),
      node: process.version,
      runs: RUNS,
      tree: { files, archiveBytes: bytes, treeId: trees[0] },
      medians: med,
      ratio: { tarVsDir: med.tar.s / med.dir.s, zstdPipeVsDir: med.zstdPipe.s / med.dir.s },
      raw: r,
    };
    const line = (label: string, m: { s: number; rssMB: number }) => console.log(`${label.padEnd(40)} ${m.s.toFixed(2)} s   peak RSS ${m.rssMB.toFixed(0)} MB`);
    console.log(`\ntar benchmark: Debian minbase, ${files} files, archive ${(bytes / 1e6).toFixed(1)} MB, median of ${RUNS}\n`);
    line('commit DIR (reference)', med.dir);
    line('commit --from-tar FILE', med.tar);
    line('zstd -dc | commit --from-tar -', med.zstdPipe);
    line('export -o FILE', med.export);
    line('commit --from-tar, the tree twice', med.tarDouble);
    console.log(`ratio from-tar / DIR          ${(med.tar.s / med.dir.s).toFixed(2)}`);
    console.log(`ratio zstd pipe / DIR         ${(med.zstdPipe.s / med.dir.s).toFixed(2)}`);
    const kiosk = kioskTar();
    if (kiosk !== null) {
      const k = compareOn(work, kiosk);
      Object.assign(result, { exampleOS: { archive: kiosk, ...k, ratio: k.tar.s / k.dir.s } });
      console.log(`\nexample kiosk OS: ${k.files} files, archive ${(k.bytes / 1e6).toFixed(1)} MB, median of ${RUNS}`);
      line('commit DIR (reference)', k.dir);
      line('commit --from-tar FILE', k.tar);
      console.log(`ratio from-tar / DIR          ${(k.tar.s / k.dir.s).toFixed(2)}`);
    } else console.log('\nexample kiosk OS: no cached build (run examples/kiosk/build.sh, or set BENCH_KIOSK_TAR)');
    console.log(`\nwritten: ${writeResults(root, 'tar', result)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
