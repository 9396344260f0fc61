/**
 * Fetch benchmark (`node dist/bench/fetch-bench.js`): gitroot's fetcher against native git in
 * one run, over smart HTTP from the project's own `git http-backend` fixture on 127.0.0.1,
 * on a real Debian minbase tree committed with `gitroot commit` and repacked (one pack).
 *
 *   (1) first full fetch: wall time of a process running fetchCommit vs `git clone --bare`
 *       of the same URL (median of BENCH_RUNS, alternating which goes first)
 *   (2) peak RSS: VmHWM of the fetching node process (read by itself at the end), and the
 *       largest process of its tree (node or git index-pack) from /usr/bin/time
 *   (3) an update changing one package (a few MB under usr/share/doc/<pkg> plus the dpkg
 *       status entry): bytes the server sent to gitroot vs to native `git fetch` into a
 *       clone at the first commit
 *
 * Prints a table and writes bench/results/fetch-latest.json (and a dated copy). Needs root
 * and, the first time, a Debian mirror (the rootfs fixture is cached).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { median, writeResults } from './bench-results.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'bin', 'gitroot.js');
const fetchModule = join(root, 'dist', 'lib', 'fetch', 'repo-fetch.js');
const fixture = resolve(root, '..', 'shared', 'fixtures', 'debian-rootfs.sh');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
/** Size of the synthetic incompressible pack for the RSS-vs-pack-size check (0 skips it). */
const BIG_MB = Number(process.env.BENCH_BIG_MB ?? 256);

/** Child: fetchCommit(argv) then one JSON line with the result and its own VmHWM. */
const CHILD = `
const [gitdir, remote, branch, module] = process.argv.slice(1);
const { fetchCommit } = await import(module);
const r = await fetchCommit({ gitdir, remote, branch });
const hwm = Number(/VmHWM:\\s+(\\d+) kB/.exec((await import('node:fs')).readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
process.stdout.write(JSON.stringify({ ...r, vmHWM: hwm }) + '\\n');
`;

/** Synchronous shell step: only while the server is not needed (it runs in this process). */
function sh(cmd: string, cwd?: string): string {
  return execFileSync('bash', ['-c', cmd], { cwd, encoding: 'utf8', maxBuffer: 1 << 30 });
}

interface Timed {
  seconds: number;
  /** Largest resident set of the process tree (ru_maxrss of it and its waited children), bytes. */
  maxRss: number;
  stdout: string;
}

/** Runs argv under /usr/bin/time; wall time measured here, max RSS from time(1). */
async function timedRun(argv: string[]): Promise<Timed> {
  const out = mkdtempSync(join(tmpdir(), 'gitroot-time-'));
  const timeFile = join(out, 'time');
  const t0 = process.hrtime.bigint();
  const child = spawn('/usr/bin/time', ['-f', '%M', '-o', timeFile, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0) throw new Error(`benchmark step failed (${code}): ${argv.join(' ')}`);
  const maxRss = Number(readFileSync(timeFile, 'utf8').trim().split('\n').pop()) * 1024;
  rmSync(out, { recursive: true, force: true });
  return { seconds, maxRss, stdout };
}

function ourFetch(gitdir: string, url: string, branch: string): Promise<Timed> {
  return timedRun([process.execPath, '--input-type=module', '-e', CHILD, gitdir, url, branch, fetchModule]);
}

function nativeClone(dest: string, url: string): Promise<Timed> {
  return timedRun(['git', 'clone', '--bare', '-q', url, dest]);
}

/** An update touching one package: a few MB of new docs and the dpkg status entry. */
function changeOnePackage(tree: string): number {
  const doc = join(tree, 'usr', 'share', 'doc', 'gitroot-bench-pkg');
  mkdirSync(doc, { recursive: true });
  let bytes = 0;
  for (let i = 0; i < 4; i++) {
    const bin = randomBytes(512 * 1024);
    writeFileSync(join(doc, `data-${i}.bin`), bin);
    bytes += bin.length;
  }
  const lines: string[] = [];
  for (let i = 0; i < 30000; i++) lines.push(`${i}: gitroot-bench-pkg (1.${i}) changelog entry ${randomBytes(8).toString('hex')}`);
  const text = lines.join('\n') + '\n';
  writeFileSync(join(doc, 'changelog'), text);
  bytes += text.length;
  const stanza = '\nPackage: gitroot-bench-pkg\nStatus: install ok installed\nVersion: 1.0\nDescription: benchmark update\n';
  appendFileSync(join(tree, 'var', 'lib', 'dpkg', 'status'), stanza);
  return bytes + stanza.length;
}

async function main() {
  if (!existsSync(fetchModule) || !existsSync(cli)) throw new Error('build first: npx tsc -p tsconfig.json');
  const work = mkdtempSync(join(tmpdir(), 'gitroot-fetch-bench-'));
  const tree = join(work, 'rootfs');
  const projectRoot = join(work, 'srv');
  const repo = join(projectRoot, 'os.git');
  let server: GitHttpServer | null = null;
  try {
    process.stderr.write('bench: preparing a Debian minbase tree and committing it\n');
    sh(`bash ${fixture} ${tree} >/dev/null`);
    mkdirSync(projectRoot);
    const first = sh(`node ${cli} commit ${tree} --repo ${repo} -m 'debian minbase'`).trim();
    sh(`git -C ${repo} repack -adq`);
    const packBytes = Number(sh(`ls -l ${repo}/objects/pack/*.pack | awk '{s+=$5} END {print s}'`).trim());
    const blobs = Number(sh(`git -C ${repo} ls-tree -r ${first} | grep -c ' blob '`).trim());
    const branch = sh(`git -C ${repo} symbolic-ref --short HEAD`).trim();
    server = await startGitHttpServer({ projectRoot });
    const url = server.url('os.git');
    // Warm the page cache with the served pack.
    sh(`cat ${repo}/objects/pack/*.pack > /dev/null`);

    const r = { ours: [] as Timed[], native: [] as Timed[], oursReported: [] as Record<string, number>[] };
    let keep = '';
    for (let i = 0; i < RUNS; i++) {
      process.stderr.write(`bench: full fetch run ${i + 1}/${RUNS}\n`);
      const mine = join(work, `ours-${i}`, 'repo.git');
      const theirs = join(work, `native-${i}.git`);
      const runOurs = async () => {
        const t = await ourFetch(mine, url, branch);
        r.ours.push(t);
        r.oursReported.push(JSON.parse(t.stdout));
      };
      const runNative = async () => {
        r.native.push(await nativeClone(theirs, url));
      };
      if (i % 2 === 0) {
        await runOurs();
        await runNative();
      } else {
        await runNative();
        await runOurs();
      }
      if (i === 0) keep = mine;
      else rmSync(dirname(mine), { recursive: true, force: true });
      if (i > 0) rmSync(theirs, { recursive: true, force: true });
    }
    const nativeClonePath = join(work, 'native-0.git');

    process.stderr.write('bench: update of one package\n');
    const changedBytes = changeOnePackage(tree);
    const second = sh(`node ${cli} commit ${tree} --repo ${repo} -m 'update one package'`).trim();
    server.resetStats();
    const upd = await ourFetch(keep, url, branch);
    const updReported = JSON.parse(upd.stdout) as Record<string, number | string>;
    const oursBytes = server.stats.bytesSent;
    if (updReported.commit !== second) throw new Error(`update fetched ${updReported.commit}, expected ${second}`);
    server.resetStats();
    // Asynchronously: the server answering it runs in this process.
    await timedRun(['git', '-C', nativeClonePath, 'fetch', '-q', 'origin', '+refs/heads/*:refs/heads/*']);
    const nativeBytes = server.stats.bytesSent;
    if (sh(`git -C ${nativeClonePath} rev-parse ${branch}`).trim() !== second) throw new Error('native fetch did not get the update');
    const fsck = spawnSync('git', ['--git-dir', keep, 'fsck', '--no-progress', '--no-dangling']).status;

    // Peak RSS against pack size: the same fetch of a much bigger (incompressible) pack.
    let big: { packBytes: number; vmHWM: number; seconds: number; nativeSeconds: number } | null = null;
    if (BIG_MB > 0) {
      process.stderr.write(`bench: ${BIG_MB} MB incompressible pack\n`);
      const bigWork = join(work, 'big-work');
      mkdirSync(bigWork);
      for (let i = 0; i < BIG_MB / 4; i++) writeFileSync(join(bigWork, `blob-${i}.bin`), randomBytes(4 * 1024 * 1024));
      sh(
        `git init -q . && git add -A && git -c user.name=bench -c user.email=bench@localhost -c core.compression=1 commit -qm big` +
          ` && git clone -q --bare . ${join(projectRoot, 'big.git')} && git -C ${join(projectRoot, 'big.git')} repack -adq`,
        bigWork,
      );
      rmSync(bigWork, { recursive: true, force: true });
      const bigPack = Number(sh(`ls -l ${projectRoot}/big.git/objects/pack/*.pack | awk '{s+=$5} END {print s}'`).trim());
      const bigBranch = sh(`git -C ${projectRoot}/big.git symbolic-ref --short HEAD`).trim();
      const t = await ourFetch(join(work, 'big-ours', 'repo.git'), server.url('big.git'), bigBranch);
      const n = await nativeClone(join(work, 'big-native.git'), server.url('big.git'));
      big = { packBytes: bigPack, vmHWM: JSON.parse(t.stdout).vmHWM, seconds: t.seconds, nativeSeconds: n.seconds };
      rmSync(join(work, 'big-ours'), { recursive: true, force: true });
      rmSync(join(work, 'big-native.git'), { recursive: true, force: true });
    }

    const mOurs = median(r.ours.map((x) => x.seconds));
    const mNative = median(r.native.map((x) => x.seconds));
    const mInternal = median(r.oursReported.map((x) => x.durationMs)) / 1000;
    const hwm = Math.max(...r.oursReported.map((x) => x.vmHWM));
    const treeMax = Math.max(...r.ours.map((x) => x.maxRss));
    const nativeMax = Math.max(...r.native.map((x) => x.maxRss));
    const updHwm = Number(updReported.vmHWM);
    const rows = [
      {
        metric: '(1) full fetch time / native clone --bare',
        value: mOurs / mNative,
        target: '<= 1.5',
        ok: mOurs / mNative <= 1.5,
        detail: `${mOurs.toFixed(2)} s (fetchCommit itself ${mInternal.toFixed(2)} s) vs ${mNative.toFixed(2)} s`,
      },
      {
        metric: '(2) peak RSS, fetching node process (MB)',
        value: hwm / 1e6,
        target: '<= 160',
        ok: hwm / 1e6 <= 160,
        detail: `VmHWM; ${(updHwm / 1e6).toFixed(1)} MB on the ${(oursBytes / 1e6).toFixed(1)} MB update`,
      },
      {
        metric: '(2) peak RSS, largest of node/index-pack (MB)',
        value: treeMax / 1e6,
        target: 'report',
        ok: true,
        detail: `native clone tree: ${(nativeMax / 1e6).toFixed(1)} MB`,
      },
      ...(big === null
        ? []
        : [
            {
              metric: '(2) peak RSS on a bigger pack (MB)',
              value: big.vmHWM / 1e6,
              target: '<= 160',
              ok: big.vmHWM / 1e6 <= 160,
              detail: `${(big.packBytes / 1e6).toFixed(0)} MB pack; ${big.seconds.toFixed(1)} s vs native ${big.nativeSeconds.toFixed(1)} s`,
            },
          ]),
      {
        metric: '(3) update bytes / native git fetch',
        value: oursBytes / nativeBytes,
        target: '<= 1.2',
        ok: oursBytes / nativeBytes <= 1.2,
        detail: `${oursBytes} vs ${nativeBytes} bytes (${(changedBytes / 1e6).toFixed(1)} MB changed)`,
      },
    ];
    const result = {
      date: new Date().toISOString(),
      node: process.version,
      git: sh('git --version').trim(),
      runs: RUNS,
      repo: { blobs, packBytes, commits: [first, second], changedBytes },
      full: {
        oursSeconds: r.ours.map((x) => x.seconds),
        nativeSeconds: r.native.map((x) => x.seconds),
        oursInternalMs: r.oursReported.map((x) => x.durationMs),
        oursBytes: r.oursReported.map((x) => x.bytes),
        oursObjects: r.oursReported.map((x) => x.objects),
        oursVmHWM: r.oursReported.map((x) => x.vmHWM),
        oursTreeMaxRss: r.ours.map((x) => x.maxRss),
        nativeTreeMaxRss: r.native.map((x) => x.maxRss),
      },
      update: { oursBytes, nativeBytes, oursObjects: updReported.objects, oursVmHWM: updHwm, oursSeconds: upd.seconds, fsck },
      big,
      loadAverage: readFileSync('/proc/loadavg', 'utf8').trim(),
      rows,
    };
    console.log(`\nfetch benchmark: Debian minbase, ${blobs} blobs, pack ${(packBytes / 1e6).toFixed(1)} MB, smart HTTP on loopback, median of ${RUNS}\n`);
    console.log('metric'.padEnd(48) + 'value'.padStart(9) + '  target'.padEnd(10) + '  ok   detail');
    for (const row of rows) {
      console.log(row.metric.padEnd(48) + row.value.toFixed(2).padStart(9) + ('  ' + row.target).padEnd(10) + (row.ok ? '  yes  ' : '  NO   ') + row.detail);
    }
    const file = writeResults(root, 'fetch', result);
    console.log(`\nwritten: ${file}`);
  } finally {
    await server?.close();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
