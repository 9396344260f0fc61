/**
 * Live-update benchmark (`node dist/bench/live-bench.js`): a real Debian tree booted by
 * `gitroot boot` on the host (git-fs daemon, tmpfs, overlay on top), read whole once through
 * the root so the kernel caches it, then a one-package update (a package's binary, its docs
 * and dpkg's status) applied with `gitroot apply-live`, and back; and the same revision pair
 * switched with `gitroot switch` on the lower layer. Side by side in the same run, as
 * references: `gitroot status` (the CLI's start-up: the floor of any gitroot command) and a
 * full read of the tree from the page cache. Measured: wall time of each command (median of
 * 3), the page cache of the tree's files before and after (fincore over every regular file
 * of the git-fs mount), and the serving daemon's RSS before and after. Writes bench/results/live-latest.json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, writeResults } from './bench-results.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'bin', 'gitroot.js');
const fixture = resolve(root, '..', 'shared', 'fixtures', 'debian-rootfs.sh');

const sh = (cmd: string) => execFileSync('bash', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 30 });

function seconds(argv: string[], env: NodeJS.ProcessEnv = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { ...process.env, ...env } });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`failed (${r.status}): ${argv.join(' ')}\n${r.stderr}`);
  return s;
}

/** Bytes in the page cache of every regular file under `dir` (one filesystem). */
function cachedBytes(dir: string): number {
  const out = sh(`cd ${dir} && find . -xdev -type f -print0 | xargs -0 -r fincore --bytes --noheadings --output RES 2>/dev/null || true`);
  return out.split('\n').reduce((a, l) => a + (Number(l.trim()) || 0), 0);
}

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** One package's update: its program, its docs, dpkg's record of it. */
function updateOnePackage(tree: string, n: number): void {
  writeFileSync(join(tree, 'usr', 'bin', 'gitroot-bench-tool'), `#!/bin/sh\necho release ${n}\n`, { mode: 0o755 });
  const doc = join(tree, 'usr', 'share', 'doc', 'gitroot-bench-tool');
  mkdirSync(doc, { recursive: true });
  writeFileSync(join(doc, 'changelog'), `gitroot-bench-tool (${n}.0) release ${n}\n`.repeat(2000));
  appendFileSync(join(tree, 'var', 'lib', 'dpkg', 'status'), `\nPackage: gitroot-bench-tool\nStatus: install ok installed\nVersion: ${n}.0\n`);
  mkdirSync(join(tree, 'usr', 'lib', 'systemd', 'system'), { recursive: true });
  writeFileSync(join(tree, 'usr', 'lib', 'systemd', 'system', 'gitroot-bench-tool.service'), '[Service]\nExecStart=/usr/bin/gitroot-bench-tool\n');
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'gitroot-live-bench-'));
  const tree = join(work, 'rootfs');
  const home = join(work, 'home');
  const run = join(work, 'run');
  const target = join(work, 'target');
  mkdirSync(target);
  let daemonPid: number | null = null;
  try {
    process.stderr.write('bench: Debian tree, two releases, a boot\n');
    sh(`bash ${fixture} ${tree} >/dev/null`);
    updateOnePackage(tree, 1);
    const r1 = sh(`node ${cli} commit ${tree} --repo ${home}/repo.git -m r1`).trim();
    updateOnePackage(tree, 2);
    const r2 = sh(`node ${cli} commit ${tree} --repo ${home}/repo.git -m r2`).trim();
    sh(`git --git-dir ${home}/repo.git repack -adq`);
    writeFileSync(join(home, 'state.json'), JSON.stringify({ version: 1, good: r1, pending: null, booted: null, failed: [], previousGood: [], staged: {} }));
    writeFileSync(join(work, 'cmdline'), 'boot=gitroot\n');
    sh(`node ${cli} boot --dir ${home} --cmdline ${work}/cmdline --target ${target} --run-dir ${run} --json > ${work}/boot.json`);
    daemonPid = JSON.parse(readFileSync(join(run, 'booted.json'), 'utf8')).daemonPid as number;
    const fake = join(work, 'systemctl');
    writeFileSync(fake, `#!/bin/sh\necho "$*" >> ${work}/systemctl.log\n`, { mode: 0o755 });
    const env = { GITROOT_SYSTEMCTL: fake };

    // The running system has read everything once.
    sh(`tar -C ${target} --one-file-system -cf - . | cat > /dev/null`);
    const fullReadCached = seconds(['bash', '-c', `tar -C ${target} --one-file-system -cf - . | cat > /dev/null`]);
    const rssBefore = rss(daemonPid);
    const lower = join(run, 'lower');
    // Counted on the git-fs mount (what the root's files are cached as; the views are other mounts).
    const cacheBefore = cachedBytes(lower);

    const status = median([1, 2, 3].map(() => seconds(['node', cli, 'status', '--dir', home, '--run-dir', run])));
    const applyArgs = (rev: string) => ['node', cli, 'apply-live', '--dir', home, '--run-dir', run, '--root', target, '--revision', rev];
    const applyTimes: number[] = [];
    const backTimes: number[] = [];
    let cacheAfter = 0;
    let rssAfter = 0;
    for (let i = 0; i < 3; i++) {
      applyTimes.push(seconds(applyArgs(r2), env));
      if (i === 0) {
        cacheAfter = cachedBytes(lower);
        rssAfter = rss(daemonPid);
      }
      backTimes.push(seconds(applyArgs(r1), env));
    }
    const switchTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      switchTimes.push(seconds(['node', cli, 'switch', lower, '--rev', r2]));
      seconds(['node', cli, 'switch', lower, '--rev', r1]);
    }
    const rssEnd = rss(daemonPid);
    const restarts = readFileSync(join(work, 'systemctl.log'), 'utf8').trim().split('\n');
    const result = {
      date: new Date().toISOString(),
      load: loadavg()[0],
      tree: { files: Number(sh(`find ${tree} -xdev -type f | wc -l`).trim()) },
      seconds: {
        applyLive: median(applyTimes),
        applyLiveBack: median(backTimes),
        switch: median(switchTimes),
        statusReference: status,
        fullReadFromCacheReference: fullReadCached,
      },
      ratios: {
        applyLiveOverStatus: median(applyTimes) / status,
        switchOverStatus: median(switchTimes) / status,
      },
      pageCache: { before: cacheBefore, after: cacheAfter, keptRatio: cacheBefore > 0 ? cacheAfter / cacheBefore : null },
      daemonRss: { before: rssBefore, afterFirstUpdate: rssAfter, afterAll: rssEnd },
      systemctl: restarts.slice(0, 2),
    };
    const file = writeResults(root, 'live', result);
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    process.stderr.write(`bench: wrote ${file}\n`);
  } finally {
    const mounted = () =>
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[4])
        .filter((p) => p !== undefined && p.startsWith(`${work}/`));
    for (const p of mounted().sort().reverse()) spawnSync('umount', ['-l', p]);
    if (daemonPid !== null) {
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(daemonPid, 0);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    if (mounted().length === 0) spawnSync('rm', ['-rf', '--one-file-system', work]);
    else process.stderr.write(`bench: left ${work} (still mounted: ${mounted().join(' ')})\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`live-bench: ${(e as Error).message}\n`);
  process.exit(1);
});
