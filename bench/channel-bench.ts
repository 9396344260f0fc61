/**
 * Channel benchmark (`node dist/bench/channel-bench.js`): a one-release update of a real
 * Debian tree, side by side in one run, through the real CLI (`gitroot fetch`) from
 *   (a) git smart HTTP: the project's `git http-backend` fixture on 127.0.0.1, and
 *   (b) a channel written by `gitroot publish`, served by a real nginx over HTTPS with a
 *       private CA (fixtures/nginx-server.ts).
 * Per machine: server CPU seconds for the update (http-backend's CGI children / nginx's
 * processes, from /proc), response bytes, requests, a no-update poll's bytes, client wall
 * time and peak RSS (/usr/bin/time). Writes bench/results/channel-latest.json.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGitHttpServer } from '../fixtures/git-http-server.js';
import { makePki, startNginx } from '../fixtures/nginx-server.js';
import { writeResults } from './bench-results.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'bin', 'gitroot.js');
const fixture = resolve(root, '..', 'shared', 'fixtures', 'debian-rootfs.sh');
const TICK = 100; // USER_HZ

const sh = (cmd: string) => execFileSync('bash', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 30 });

/** CPU seconds of this process's waited children (http-backend runs as our CGI children). */
function childCpu(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[13]) + Number(f[14])) / TICK; // cutime, cstime
}

/** CPU seconds of a process and its live children (nginx master and workers). */
function treeCpu(pid: number): number {
  let total = 0;
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
      if (Number(p) === pid || Number(f[1]) === pid) total += (Number(f[11]) + Number(f[12])) / TICK;
    } catch {
      /* gone */
    }
  }
  return total;
}

async function timed(argv: string[]): Promise<{ seconds: number; maxRss: number; stdout: string }> {
  const out = mkdtempSync(join(tmpdir(), 'gitroot-time-'));
  const t0 = process.hrtime.bigint();
  const child = spawn('/usr/bin/time', ['-f', '%M', '-o', join(out, 't'), ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0) throw new Error(`failed (${code}): ${argv.join(' ')}`);
  const maxRss = Number(readFileSync(join(out, 't'), 'utf8').trim().split('\n').pop()) * 1024;
  rmSync(out, { recursive: true, force: true });
  return { seconds, maxRss, stdout };
}

function machineConf(base: string, remote: string, extra: string[]): { dir: string; conf: string; cmdline: string } {
  const dir = join(base, 'home');
  mkdirSync(dir, { recursive: true });
  mkdirSync(join(base, 'boot'), { recursive: true });
  const conf = join(base, 'gitroot.conf');
  writeFileSync(conf, ['gitroot.bootloader=none', `gitroot.remote=${remote}`, 'gitroot.min-free=0', ...extra].join('\n') + '\n');
  const cmdline = join(base, 'cmdline');
  writeFileSync(cmdline, 'quiet\n');
  return { dir, conf, cmdline };
}

function changeOnePackage(tree: string): void {
  const doc = join(tree, 'usr', 'share', 'doc', 'gitroot-bench-pkg');
  mkdirSync(doc, { recursive: true });
  for (let i = 0; i < 4; i++) writeFileSync(join(doc, `data-${i}.bin`), randomBytes(512 * 1024));
  const lines: string[] = [];
  for (let i = 0; i < 30000; i++) lines.push(`${i}: gitroot-bench-pkg (1.${i}) changelog entry ${randomBytes(8).toString('hex')}`);
  writeFileSync(join(doc, 'changelog'), lines.join('\n') + '\n');
  appendFileSync(join(tree, 'var', 'lib', 'dpkg', 'status'), '\nPackage: gitroot-bench-pkg\nStatus: install ok installed\nVersion: 1.0\n');
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'gitroot-channel-bench-'));
  const tree = join(work, 'rootfs');
  const srv = join(work, 'srv');
  const repo = join(srv, 'os.git');
  const www = join(work, 'www');
  const channel = join(www, 'channel');
  mkdirSync(srv);
  mkdirSync(channel, { recursive: true });
  const stop: (() => Promise<void>)[] = [];
  try {
    process.stderr.write('bench: Debian tree, two releases, the channel\n');
    sh(`bash ${fixture} ${tree} >/dev/null`);
    sh(`ssh-keygen -q -t ed25519 -N '' -f ${work}/key`);
    writeFileSync(join(work, 'signers'), `rel@bench namespaces="git,gitroot-channel" ${readFileSync(`${work}/key.pub`, 'utf8').trim()}\n`);
    const r1 = sh(`node ${cli} commit ${tree} --repo ${repo} -m r1 --sign-key ${work}/key`).trim();
    sh(`git --git-dir ${repo} repack -adq`);
    const t1 = process.hrtime.bigint();
    sh(`node ${cli} publish --repo ${repo} --out ${channel} --sign-key ${work}/key`);
    const publishBase = Number(process.hrtime.bigint() - t1) / 1e9;
    changeOnePackage(tree);
    const r2 = sh(`node ${cli} commit ${tree} --repo ${repo} -m r2 --sign-key ${work}/key`).trim();

    const git = await startGitHttpServer({ projectRoot: srv });
    stop.push(() => git.close());
    const pki = makePki(join(work, 'pki'));
    const nginx = await startNginx({ root: www, pki, requireClientCert: false });
    stop.push(() => nginx.stop());
    const signers = `gitroot.allowed-signers=${work}/signers`;
    const smart = machineConf(join(work, 'smart'), git.url('os.git'), [signers]);
    const chan = machineConf(join(work, 'chan'), `${nginx.url}/channel/`, [signers, `gitroot.ca=${pki.caCert}`]);
    const fetch = (m: { dir: string; conf: string; cmdline: string }) =>
      timed([process.execPath, cli, 'fetch', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, '--json']);

    // Both machines at release 1 (the branch points there while they fetch it).
    sh(`git --git-dir ${repo} update-ref refs/heads/master ${r1}`);
    await fetch(smart);
    await fetch(chan);
    sh(`git --git-dir ${repo} update-ref refs/heads/master ${r2}`);
    const t2 = process.hrtime.bigint();
    sh(`node ${cli} publish --repo ${repo} --out ${channel} --sign-key ${work}/key`);
    const publishInc = Number(process.hrtime.bigint() - t2) / 1e9;

    // The one-release update, side by side.
    git.resetStats();
    const c0 = childCpu();
    const su = await fetch(smart);
    const smartCpu = childCpu() - c0;
    const smartStats = { bytes: git.stats.bytesSent, requests: git.stats.requests };
    const n0 = nginx.log().length;
    const p0 = treeCpu(nginx.pid);
    const cu = await fetch(chan);
    const nginxCpu = treeCpu(nginx.pid) - p0;
    const lines = nginx.log().slice(n0);
    const chanStats = { bytes: lines.reduce((a, l) => a + l.bodyBytes, 0), bytesWithHeaders: lines.reduce((a, l) => a + l.bytes, 0), requests: lines.length };
    for (const [name, r, want] of [
      ['smart', su, r2],
      ['channel', cu, r2],
    ] as const) {
      const out = JSON.parse(r.stdout) as { revision: string; action: string };
      if (out.revision !== want || out.action !== 'staged') throw new Error(`${name}: ${r.stdout}`);
    }
    // A no-update poll.
    git.resetStats();
    await fetch(smart);
    const smartPoll = git.stats.bytesSent;
    const n1 = nginx.log().length;
    await fetch(chan);
    const poll = nginx.log().slice(n1);
    const chanPoll = poll.reduce((a, l) => a + l.bytes + l.requestBytes, 0);

    const result = {
      date: new Date().toISOString(),
      loadavg: loadavg(),
      update: { r1, r2, channelBundleBytes: chanStats.bytes },
      smartHttp: {
        serverCpuSeconds: smartCpu,
        bytes: smartStats.bytes,
        requests: smartStats.requests,
        pollBytes: smartPoll,
        clientSeconds: su.seconds,
        clientPeakRss: su.maxRss,
      },
      channel: {
        serverCpuSeconds: nginxCpu,
        bytes: chanStats.bytes,
        bytesWithHeaders: chanStats.bytesWithHeaders,
        requests: chanStats.requests,
        pollBytes: chanPoll,
        pollStatus: poll.map((l) => l.status),
        clientSeconds: cu.seconds,
        clientPeakRss: cu.maxRss,
      },
      ratio: { bytes: chanStats.bytes / smartStats.bytes },
      publish: { baseSeconds: publishBase, incrementalSeconds: publishInc },
    };
    const file = writeResults(root, 'channel', result);
    const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
    process.stdout.write(
      [
        '| per machine, one-release update | smart HTTP (git http-backend) | channel (nginx, static) |',
        '|---|---|---|',
        `| server CPU | ${smartCpu.toFixed(2)} s | ${nginxCpu.toFixed(2)} s |`,
        `| bytes | ${smartStats.bytes} | ${chanStats.bytes} (${result.ratio.bytes.toFixed(3)}x) |`,
        `| requests | ${smartStats.requests} | ${chanStats.requests} |`,
        `| no-update poll | ${smartPoll} B (bodies) | ${chanPoll} B (HTTP incl. headers, ${poll.map((l) => l.status).join(',')}) |`,
        `| client wall time | ${su.seconds.toFixed(2)} s | ${cu.seconds.toFixed(2)} s |`,
        `| client peak RSS | ${mb(su.maxRss)} | ${mb(cu.maxRss)} |`,
        `publish: base ${publishBase.toFixed(1)} s, incremental ${publishInc.toFixed(1)} s; ${file}`,
      ].join('\n') + '\n',
    );
  } finally {
    for (const s of stop.reverse()) await s().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
