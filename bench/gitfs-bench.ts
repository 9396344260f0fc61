/**
 * `npm run bench`: git-fs against native references in one run, on real Debian trees
 * committed with `gitroot commit` and repacked like a fetched repo: a minbase tree, and a
 * kiosk-sized one (bookworm + firefox-esr, ~610 MB, ~15.6k files; BENCH_FIREFOX=0 skips it).
 *
 *   (a) cold full read: `tar -cf - .` of a fresh mount    vs `git archive` of the commit
 *   (b) warm re-read: tar of the same mount again           vs tar of the tree on local disk
 *   (c) stat of every path: `find -printf` on a fresh mount vs on local disk
 *   (d) peak RSS of the serving daemon (VmHWM) after (a)-(c), and how it grows with the tree
 *   (e) process start -> mount answering
 *   (f) firefox tree only: cold app start, `firefox-esr --headless --screenshot` of a local
 *       page with caches dropped, root = git-fs + tmpfs overlay as at boot (bench/app-start.sh)
 *       vs the same tree on local disk; runs interleaved
 *   (g) firefox tree only: `gitroot commit` of the tree vs `git add -A && git commit` (time, peak RSS)
 *
 * Each figure is the median of several runs; targets are ratios, printed with the table
 * and written as JSON under bench/results/. Needs root, /dev/fuse and network access to a
 * Debian mirror the first time (the trees are cached: the minbase by the shared fixture,
 * the firefox tree by scripts/debian-root.sh under /var/cache/gitroot-build).
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
const debianRoot = join(root, 'scripts', 'debian-root.sh');
const appScript = join(root, 'bench', 'app-start.sh');
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

interface Daemon {
  pid: number;
  readyMs: number;
  startToAnswerMs: number;
}

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
      if (statSync(mnt).dev !== before) {
        answered = Number(process.hrtime.bigint() - t0) / 1e6;
        break;
      }
    } catch {
      /* not yet */
    }
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

const median3 = (xs: number[]): number => median(xs);
const dropCaches = (): void => {
  spawnSync('bash', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
};
const loadAvg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

interface Row {
  metric: string;
  value: number;
  target: string;
  ok: boolean;
  detail: string;
}

/** Commits `tree` into a new repo at `repo`, repacked like a fetched one; returns its facts. */
function prepareRepo(tree: string, repo: string, message: string) {
  const commit = sh(`node ${cli} commit ${tree} --repo ${repo} -m '${message}'`).trim();
  // A machine's repo arrives by fetch: one pack. Repack the same way.
  sh(`git -C ${repo} repack -adq --window=10 --depth=50`);
  const pack = Number(sh(`ls -l ${repo}/objects/pack/*.pack | awk '{s+=$5} END {print s}'`).trim());
  const blobs = Number(sh(`git -C ${repo} ls-tree -r ${commit} | grep -c ' blob '`).trim());
  const bytes = Number(sh(`git -C ${repo} ls-tree -r -l ${commit} | awk '$2=="blob"{s+=$4} END {print s}'`).trim());
  return { commit, pack, blobs, bytes };
}

/** Figures (a)-(e) of one tree; every run measures the reference beside the mount. */
async function benchTree(label: string, tree: string, repo: string, commit: string, mnt: string) {
  const r = {
    archive: [] as number[],
    cold: [] as number[],
    warmMount: [] as number[],
    warmDisk: [] as number[],
    findMountCold: [] as number[],
    findMountWarm: [] as number[],
    findDisk: [] as number[],
    rss: [] as number[],
    readyMs: [] as number[],
    startToAnswerMs: [] as number[],
  };
  // Warm the pack in the page cache and the reference tree in the dcache once.
  timed(`git -C ${repo} archive ${commit} | cat > /dev/null`);
  timed(`tar -cf - . | cat > /dev/null`, tree);
  for (let i = 0; i < RUNS; i++) {
    process.stderr.write(`bench: ${label} run ${i + 1}/${RUNS}\n`);
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
  const m = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median3(v)])) as Record<keyof typeof r, number>;
  const peak = Math.max(...r.rss) / 1e6;
  const rows: Row[] = [
    {
      metric: `${label} (a) cold full read / git archive`,
      value: m.cold / m.archive,
      target: '<= 1.1',
      ok: m.cold / m.archive <= 1.1,
      detail: `${m.cold.toFixed(3)} s vs ${m.archive.toFixed(3)} s`,
    },
    {
      metric: `${label} (b) warm re-read speed / disk`,
      value: m.warmDisk / m.warmMount,
      target: '>= 0.9',
      ok: m.warmDisk / m.warmMount >= 0.9,
      detail: `${m.warmMount.toFixed(3)} s vs ${m.warmDisk.toFixed(3)} s`,
    },
    {
      metric: `${label} (c) stat every path, cold mount / disk`,
      value: m.findMountCold / m.findDisk,
      target: '<= 2',
      ok: m.findMountCold / m.findDisk <= 2,
      detail: `${m.findMountCold.toFixed(3)} s vs ${m.findDisk.toFixed(3)} s`,
    },
    {
      metric: `${label} (c) stat every path, warm mount / disk`,
      value: m.findMountWarm / m.findDisk,
      target: 'report',
      ok: true,
      detail: `${m.findMountWarm.toFixed(3)} s vs ${m.findDisk.toFixed(3)} s`,
    },
    { metric: `${label} (d) daemon peak RSS (MB)`, value: peak, target: '<= 64', ok: peak <= 64, detail: `max of ${r.rss.length} mounts` },
    {
      metric: `${label} (e) process start -> mount answers (ms)`,
      value: m.startToAnswerMs,
      target: '<= 200',
      ok: m.startToAnswerMs <= 200,
      detail: `daemon's own clock: ${m.readyMs} ms`,
    },
  ];
  return { medians: m, raw: r, rows, peak };
}

/** Seconds of bench/app-start.sh on `root` (optionally through the boot layout over `lower`), caches dropped first. */
function appStart(root: string, lower?: string): number {
  const out = execFileSync('bash', [appScript, root, ...(lower ? ['--lower', lower] : [])], { encoding: 'utf8' }).trim();
  return Number(out) / 1000;
}

/** (f) and (g) on the firefox tree. */
async function benchFirefox(tree: string, repo: string, mnt: string, work: string, commitTimes: { gitroot: number; gitrootRss: number }) {
  const upper = join(work, 'ovl');
  mkdirSync(upper);
  const r = { disk: [] as number[], gitfs: [] as number[], gitfsRss: [] as number[] };
  appStart(tree); // the first start writes caches (fontconfig) nowhere but its own /tmp: a warm-up that runs the workload once
  for (let i = 0; i < RUNS; i++) {
    process.stderr.write(`bench: firefox app start run ${i + 1}/${RUNS}\n`);
    dropCaches();
    r.disk.push(appStart(tree));
    dropCaches();
    const d = await startMount(repo, mnt);
    r.gitfs.push(appStart(upper, mnt));
    r.gitfsRss.push(stopMount(d, mnt));
  }
  // (g) the reference commit: plain git of the same tree (its git dir outside the tree).
  const gitDir = join(work, 'plain.git');
  const t0 = process.hrtime.bigint();
  const rssFile = join(work, 'plain.rss');
  sh(
    `git init -q --bare ${gitDir} && /usr/bin/time -f %M -o ${rssFile} bash -c "git --git-dir=${gitDir} --work-tree=${tree} add -A && git --git-dir=${gitDir} --work-tree=${tree} -c user.name=b -c user.email=b@b commit -qm plain"`,
  );
  const plain = Number(process.hrtime.bigint() - t0) / 1e9;
  const plainRss = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()) / 1024;
  const disk = median3(r.disk);
  const gitfs = median3(r.gitfs);
  const rows: Row[] = [
    {
      metric: 'firefox (f) cold app start, git-fs + overlay / disk',
      value: gitfs / disk,
      target: '<= 1.2',
      ok: gitfs / disk <= 1.2,
      detail: `${gitfs.toFixed(2)} s vs ${disk.toFixed(2)} s; daemon peak ${(Math.max(...r.gitfsRss) / 1e6).toFixed(0)} MB`,
    },
    {
      metric: 'firefox (g) gitroot commit / git add+commit',
      value: commitTimes.gitroot / plain,
      target: '<= 1.2',
      ok: commitTimes.gitroot / plain <= 1.2,
      detail: `${commitTimes.gitroot.toFixed(1)} s vs ${plain.toFixed(1)} s`,
    },
    {
      metric: 'firefox (g) gitroot commit peak RSS (MB)',
      value: commitTimes.gitrootRss,
      target: '<= 160',
      ok: commitTimes.gitrootRss <= 160,
      detail: `git add+commit: ${plainRss.toFixed(0)} MB`,
    },
  ];
  return { raw: r, plain, plainRss, rows };
}

function printRows(title: string, rows: Row[]): void {
  console.log(`\n${title}\n`);
  console.log('metric'.padEnd(56) + 'value'.padStart(10) + '  target'.padEnd(10) + '  ok   detail');
  for (const row of rows) {
    console.log(row.metric.padEnd(56) + row.value.toFixed(2).padStart(10) + ('  ' + row.target).padEnd(10) + (row.ok ? '  yes  ' : '  NO   ') + row.detail);
  }
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'gitroot-bench-'));
  const tree = join(work, 'rootfs');
  const repo = join(work, 'repo.git');
  const mnt = join(work, 'mnt');
  mkdirSync(mnt);
  const withFirefox = process.env.BENCH_FIREFOX !== '0';
  try {
    process.stderr.write(`bench: preparing a Debian minbase tree and committing it (load ${loadAvg()})\n`);
    sh(`bash ${fixture} ${tree} >/dev/null`);
    const mb = prepareRepo(tree, repo, 'debian minbase');
    const minbase = await benchTree('minbase', tree, repo, mb.commit, mnt);
    const rows = [...minbase.rows];
    let firefox: Record<string, unknown> | null = null;
    if (withFirefox) {
      process.stderr.write('bench: preparing the firefox-esr tree (cached after the first build) and committing it\n');
      const tarball = sh(`bash ${debianRoot} --name bench-firefox --suite bookworm --variant apt --include firefox-esr,fonts-dejavu-core`).trim();
      const ffTree = join(work, 'firefox');
      mkdirSync(ffTree);
      sh(`tar --xattrs --xattrs-include='*' --numeric-owner -C ${ffTree} -xpf ${tarball}`);
      const ffRepo = join(work, 'firefox.git');
      const rssFile = join(work, 'commit.rss');
      const t0 = process.hrtime.bigint();
      const commit = sh(`/usr/bin/time -f %M -o ${rssFile} node ${cli} commit ${ffTree} --repo ${ffRepo} -m firefox`).trim();
      const commitTimes = {
        gitroot: Number(process.hrtime.bigint() - t0) / 1e9,
        gitrootRss: Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()) / 1024,
      };
      sh(`git -C ${ffRepo} repack -adq --window=10 --depth=50`);
      const ff = {
        commit,
        pack: Number(sh(`ls -l ${ffRepo}/objects/pack/*.pack | awk '{s+=$5} END {print s}'`).trim()),
        blobs: Number(sh(`git -C ${ffRepo} ls-tree -r ${commit} | grep -c ' blob '`).trim()),
        bytes: Number(sh(`git -C ${ffRepo} ls-tree -r -l ${commit} | awk '$2=="blob"{s+=$4} END {print s}'`).trim()),
      };
      const figures = await benchTree('firefox', ffTree, ffRepo, commit, mnt);
      const app = await benchFirefox(ffTree, ffRepo, mnt, work, commitTimes);
      rows.push(
        ...figures.rows,
        {
          metric: 'daemon peak RSS growth, firefox / minbase tree',
          value: figures.peak / minbase.peak,
          target: 'report',
          ok: true,
          detail: `${figures.peak.toFixed(0)} MB vs ${minbase.peak.toFixed(0)} MB for ${(ff.bytes / mb.bytes).toFixed(1)}x the bytes`,
        },
        ...app.rows,
      );
      firefox = {
        tree: ff,
        medians: figures.medians,
        raw: figures.raw,
        appStart: app.raw,
        commit: { ...commitTimes, plain: app.plain, plainRss: app.plainRss },
      };
    }
    const result = {
      date: new Date().toISOString(),
      node: process.version,
      kernel: sh('uname -r').trim(),
      load: loadAvg(),
      runs: RUNS,
      tree: { blobs: mb.blobs, bytes: mb.bytes, packBytes: mb.pack, commit: mb.commit },
      medians: minbase.medians,
      raw: minbase.raw,
      firefox,
      rows,
    };
    printRows(
      `git-fs benchmark: Debian minbase, ${mb.blobs} blobs, ${(mb.bytes / 1e6).toFixed(1)} MB, pack ${(mb.pack / 1e6).toFixed(1)} MB` +
        `${withFirefox ? ', and bookworm + firefox-esr' : ''}; median of ${RUNS}; load ${result.load}`,
      rows,
    );
    const file = writeResults(root, 'gitfs', result);
    console.log(`\nwritten: ${file}`);
  } finally {
    spawnSync('umount', ['-l', mnt]);
    // Never delete through a mount: remove the work directory only when nothing is mounted under it.
    if (
      readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .some((l) => l.split(' ')[1]?.startsWith(work))
    ) {
      process.stderr.write(`bench: a mount is still under ${work}: unmount it (umount -R), then remove the directory\n`);
    } else {
      rmSync(work, { recursive: true, force: true });
    }
  }
}

await main();
