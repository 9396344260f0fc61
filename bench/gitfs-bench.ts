/**
 * `npm run bench`: git-fs against native references in one run, on a real Debian minbase
 * tree committed with `gitroot commit` and repacked like a fetched repo.
 *
 *   (a) cold full read: `tar -cf - .` of a fresh mount    vs `git archive` of the commit
 *   (b) warm re-read: tar of the same mount again           vs tar of the tree on local disk
 *   (c) stat of every path: `find -printf` on a fresh mount vs on local disk
 *   (d) peak RSS of the serving daemon (VmHWM) after (a)-(c)
 *   (e) process start -> mount answering
 *
 * Each figure is the median of several runs; targets are ratios, printed with the table and
 * written as JSON under bench/results/. Needs root, /dev/fuse and network access to a Debian
 * mirror the first time (the rootfs fixture is cached).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMON_NODE_FLAGS } from '../lib/gitfs/mount-daemon.js';
import { median, writeResults } from './bench-results.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'bin', 'gitroot.js');
const fixture = resolve(root, '..', 'shared', 'fixtures', 'debian-rootfs.sh');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

function sh(cmd: string, opts: { cwd?: string } = {}): string {
  return execFileSync('bash', ['-c', cmd], { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 1 << 30 });
}

function timed(cmd: string, cwd?: string): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', ['-c', cmd], { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`benchmark step failed: ${cmd}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}


interface Daemon { pid: number; readyMs: number; startToAnswerMs: number }

/** Starts a foreground mount daemon and waits until the mount answers; measures from spawn. */
async function startMount(repo: string, mnt: string): Promise<Daemon> {
  const before = statSync(mnt).dev;
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, cli, 'mount', mnt, '--repo', repo, '--foreground', '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  let answered = 0;
  for (let i = 0; i < 20000; i++) {
    try {
      if (statSync(mnt).dev !== before) { answered = Number(process.hrtime.bigint() - t0) / 1e6; break; }
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 1));
  }
  if (!answered) throw new Error('mount did not become ready');
  while (!out.includes('}')) await new Promise((r) => setTimeout(r, 5));
  const report = JSON.parse(out);
  return { pid: child.pid!, readyMs: report.readyMs, startToAnswerMs: answered };
}

function stopMount(d: Daemon, mnt: string): number {
  const status = readFileSync(`/proc/${d.pid}/status`, 'utf8');
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
  execFileSync(process.execPath, [cli, 'umount', mnt]);
  for (let i = 0; i < 500 && existsSync(`/proc/${d.pid}`); i++) spawnSync('sleep', ['0.01']);
  return hwm;
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'gitroot-bench-'));
  const tree = join(work, 'rootfs');
  const repo = join(work, 'repo.git');
  const mnt = join(work, 'mnt');
  mkdirSync(mnt);
  try {
    process.stderr.write('bench: preparing a Debian minbase tree and committing it\n');
    sh(`bash ${fixture} ${tree} >/dev/null`);
    const commit = sh(`node ${cli} commit ${tree} --repo ${repo} -m 'debian minbase'`).trim();
    // A machine's repo arrives by fetch: one deltified pack. Repack the same way.
    sh(`git -C ${repo} repack -adq --window=10 --depth=50`);
    const pack = sh(`ls -l ${repo}/objects/pack/*.pack | awk '{s+=$5} END {print s}'`).trim();
    const blobs = Number(sh(`git -C ${repo} ls-tree -r ${commit} | grep -c ' blob '`).trim());
    const treeBytes = Number(sh(`git -C ${repo} ls-tree -r -l ${commit} | awk '$2=="blob"{s+=$4} END {print s}'`).trim());

    const r = {
      archive: [] as number[], cold: [] as number[], warmMount: [] as number[], warmDisk: [] as number[],
      findMountCold: [] as number[], findMountWarm: [] as number[], findDisk: [] as number[],
      rss: [] as number[], readyMs: [] as number[], startToAnswerMs: [] as number[],
    };
    // Warm the pack in the page cache and the reference tree in the dcache once.
    timed(`git -C ${repo} archive ${commit} | cat > /dev/null`);
    timed(`tar -cf - . | cat > /dev/null`, tree);
    for (let i = 0; i < RUNS; i++) {
      process.stderr.write(`bench: run ${i + 1}/${RUNS}\n`);
      r.archive.push(timed(`git -C ${repo} archive ${commit} | cat > /dev/null`));
      let d = await startMount(repo, mnt);
      r.readyMs.push(d.readyMs);
      r.startToAnswerMs.push(d.startToAnswerMs);
      r.cold.push(timed(`tar -cf - . | cat > /dev/null`, mnt));
      r.warmMount.push(timed(`tar -cf - . | cat > /dev/null`, mnt));
      r.warmDisk.push(timed(`tar -cf - . | cat > /dev/null`, tree));
      r.findMountWarm.push(timed(`find . -printf '%p %m %u %g %s\\n' > /dev/null`, mnt));
      r.rss.push(stopMount(d, mnt));
      d = await startMount(repo, mnt);
      r.findMountCold.push(timed(`find . -printf '%p %m %u %g %s\\n' > /dev/null`, mnt));
      r.findDisk.push(timed(`find . -printf '%p %m %u %g %s\\n' > /dev/null`, tree));
      r.rss.push(stopMount(d, mnt));
    }
    const m = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median(v)])) as Record<keyof typeof r, number>;
    const rows = [
      { metric: '(a) cold full read / git archive', value: m.cold / m.archive, target: '<= 1.5', ok: m.cold / m.archive <= 1.5, detail: `${m.cold.toFixed(3)} s vs ${m.archive.toFixed(3)} s` },
      { metric: '(b) warm re-read speed / disk', value: m.warmDisk / m.warmMount, target: '>= 0.8', ok: m.warmDisk / m.warmMount >= 0.8, detail: `${m.warmMount.toFixed(3)} s vs ${m.warmDisk.toFixed(3)} s` },
      { metric: '(c) stat every path, cold mount / disk', value: m.findMountCold / m.findDisk, target: 'report', ok: true, detail: `${m.findMountCold.toFixed(3)} s vs ${m.findDisk.toFixed(3)} s` },
      { metric: '(c) stat every path, warm mount / disk', value: m.findMountWarm / m.findDisk, target: 'report', ok: true, detail: `${m.findMountWarm.toFixed(3)} s vs ${m.findDisk.toFixed(3)} s` },
      { metric: '(d) daemon peak RSS (MB)', value: Math.max(...r.rss) / 1e6, target: '<= 96', ok: Math.max(...r.rss) / 1e6 <= 96, detail: `max of ${r.rss.length} mounts` },
      { metric: '(e) process start -> mount answers (ms)', value: m.startToAnswerMs, target: '<= 300', ok: m.startToAnswerMs <= 300, detail: `daemon's own clock: ${m.readyMs} ms` },
    ];
    const result = {
      date: new Date().toISOString(),
      node: process.version,
      kernel: sh('uname -r').trim(),
      runs: RUNS,
      tree: { blobs, bytes: treeBytes, packBytes: Number(pack), commit },
      medians: m,
      raw: r,
      rows,
    };
    console.log(`\ngit-fs benchmark: Debian minbase, ${blobs} blobs, ${(treeBytes / 1e6).toFixed(1)} MB, pack ${(Number(pack) / 1e6).toFixed(1)} MB, median of ${RUNS}\n`);
    console.log('metric'.padEnd(44) + 'value'.padStart(10) + '  target'.padEnd(10) + '  ok   detail');
    for (const row of rows) {
      console.log(row.metric.padEnd(44) + row.value.toFixed(2).padStart(10) + ('  ' + row.target).padEnd(10) + (row.ok ? '  yes  ' : '  NO   ') + row.detail);
    }
    const file = writeResults(root, 'gitfs', result);
    console.log(`\nwritten: ${file}`);
  } finally {
    spawnSync('umount', ['-l', mnt]);
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
