/**
 * Hostile input, the server: the real `gitroot fetch` (run under /usr/bin/time -v
 * for its peak RSS) against a real `git http-backend` made to misbehave
 * (fixtures/git-http-server.ts faults): 100,000 extra refs, a refs advertisement and a pack
 * that never end, garbage and wrongly framed pkt-lines, a pack with a flipped byte, a pack
 * for another commit than the one asked for, and a never-ending pack (of a plausible object
 * count) into a home on a small tmpfs: such a pack is cut off only by the free space (less
 * 16 MiB), so on a big disk it runs until that is used; the test keeps it on 64 MiB.
 *
 * Each must end within the timeout with a one-line error naming the cause (or, for the refs
 * flood, succeed), with bounded memory, nothing staged (state.json, D/boot and the boot
 * entries byte-identical), and the repository fsck clean. A clean fetch afterwards works.
 */
// needs: root git server
import t from 'tap';
import type { Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type GitHttpFault, startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { CLI } from './helpers/cli.js';
import { commitSpec, debianRoot } from './helpers/deploy-fixtures.js';
import { type Machine, machine } from './helpers/machine.js';
import { repoHealth } from './helpers/fetch-repos.js';
import { Campaign } from './helpers/hostile-campaign.js';

const campaign = new Campaign('4-server', 'test/hostile-server.test.ts');
t.teardown(() => campaign.save());

/** Peak RSS allowed for `gitroot fetch` (node plus the biggest child): generous for a loaded machine, far below runaway. */
const MAX_RSS_KB = 400 * 1024;
/** Every fault must end well within this (the client's idle timeout is 10 s). */
const MAX_SECONDS = 120;

const work = fs.mkdtempSync('/tmp/gitroot-hostile-server-');
const projectRoot = path.join(work, 'srv');
const srvRepo = path.join(projectRoot, 'os.git');
let server: GitHttpServer;
const R: string[] = [];
let tmpfs: string | null = null;

t.before(async () => {
  fs.mkdirSync(projectRoot);
  R.push(commitSpec(work, srvRepo, debianRoot('6.1.0-1-amd64', 's1'), 'release 1'));
  server = await startGitHttpServer({ projectRoot });
});
t.teardown(async () => {
  await server?.close();
  if (tmpfs !== null) spawnSync('umount', [tmpfs]);
  fs.rmSync(work, { recursive: true, force: true });
});

/** A machine fetching from the test server. */
function serverMachine(base: string): Machine {
  return machine(base, { remote: server.url('os.git'), timeout: 10 });
}

interface Run {
  status: number;
  stdout: string;
  stderr: string;
  seconds: number;
  rssKb: number;
}

/** `gitroot fetch` under /usr/bin/time -v: exit status, output, wall time and peak RSS. */
function fetch(m: Machine): Promise<Run> {
  const timeFile = path.join(m.base, `time-${Date.now()}`);
  const child = spawn(
    '/usr/bin/time',
    ['-v', '-o', timeFile, process.execPath, CLI, 'fetch', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, '--json'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const t0 = Date.now();
  return new Promise((resolve) =>
    child.on('close', (code) => {
      const tv = fs.existsSync(timeFile) ? fs.readFileSync(timeFile, 'utf8') : '';
      const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(tv)?.[1] ?? -1);
      const status = Number(/Exit status: (\d+)/.exec(tv)?.[1] ?? code ?? 128);
      // Progress lines (`gitroot: download, 20.2 MB, ...`) are not part of the error.
      const lines = stderr.split('\n').filter((l) => !l.startsWith('\tCommand') && l.trim() !== '' && !/^gitroot: (negotiate|download|index)(,|$)/.test(l));
      resolve({ status, stdout, stderr: lines.join('\n'), seconds: (Date.now() - t0) / 1000, rssKb });
    }),
  );
}

/** state.json, D/boot and the boot medium, byte for byte. */
function snapshot(m: Machine): string {
  const out: string[] = [];
  const walk = (d: string) => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`${p} ${fs.readFileSync(p).toString('base64')}`);
    }
  };
  for (const f of ['state.json']) if (fs.existsSync(path.join(m.dir, f))) out.push(fs.readFileSync(path.join(m.dir, f), 'utf8'));
  walk(path.join(m.dir, 'boot'));
  walk(m.boot);
  return out.join('\n');
}

let seeded: Machine;
let rssMax = 0;

t.before(async () => {
  seeded = serverMachine(path.join(work, 'seed'));
  const r = await fetch(seeded);
  if (r.status !== 0) throw new Error(`seed fetch failed: ${r.stderr}`);
  R.push(commitSpec(work, srvRepo, debianRoot('6.1.0-2-amd64', 's2'), 'release 2'));
});

let n = 0;
function copyOfSeed(): Machine {
  const base = path.join(work, `m${++n}`);
  spawnSync('cp', ['-a', seeded.base, base]);
  const m = serverMachine(base);
  return m;
}

const pkt = (s: string) => `${(s.length + 4).toString(16).padStart(4, '0')}${s}`;

/** fault -> what the one-line error must say (null: the fetch may succeed). */
const FAULTS: [string, GitHttpFault, RegExp | null][] = [
  ['100,000 extra refs advertised', { kind: 'refs-flood', count: 100_000, scope: 'ls-refs' }, null],
  ['a refs advertisement that never ends', { kind: 'endless-refs', scope: 'ls-refs' }, /sent more than 32 MiB for/],
  ['a pack that never ends (header claims 4 billion objects)', { kind: 'endless-pack', scope: 'fetch' }, /claiming 4294967295 objects/],
  [
    'garbage instead of the pack answer',
    { kind: 'raw', body: Buffer.from('\x89PNG\r\n\x1a\n' + 'x'.repeat(5000), 'latin1'), scope: 'fetch' },
    /pkt-line|not a git|invalid|malformed/i,
  ],
  ['garbage instead of the refs', { kind: 'raw', body: Buffer.from('<html>no</html>'), scope: 'ls-refs' }, /pkt-line|not a git|not git|invalid|malformed/i],
  ['a pkt-line length that is not hex', { kind: 'raw', body: Buffer.from('zzzzpackfile\n'), scope: 'fetch' }, /pkt-line|invalid|malformed/i],
  ['a pkt-line length over the maximum', { kind: 'raw', body: Buffer.from('ffffpackfile\n'), scope: 'fetch' }, /pkt-line|exceeds|invalid/i],
  [
    'a pkt-line longer than the answer',
    { kind: 'raw', body: Buffer.from(`${pkt('packfile\n')}0fa0\x01PACK`, 'latin1'), scope: 'fetch' },
    /cut off|incomplete|truncat|ended|damaged/i,
  ],
  ['a response-end packet before the pack', { kind: 'raw', body: Buffer.from(`0002${pkt('packfile\n')}`, 'latin1'), scope: 'fetch' }, /./],
  ['reserved length 0003', { kind: 'raw', body: Buffer.from(`${pkt('packfile\n')}0003`, 'latin1'), scope: 'fetch' }, /pkt-line|invalid|length/i],
  ['an empty pack answer', { kind: 'raw', body: Buffer.alloc(0), scope: 'fetch' }, /./],
  ['a refs answer with a bad object id', { kind: 'raw', body: Buffer.from(`${pkt(`${'g'.repeat(40)} refs/heads/master\n`)}0000`), scope: 'ls-refs' }, /./],
  ['a pack with a flipped byte', { kind: 'corrupt-pack', offset: 300, scope: 'fetch' }, /damaged or incomplete pack/],
  ['a pack with a flipped byte in its header', { kind: 'corrupt-pack', offset: 9, scope: 'fetch' }, /./],
  ['a pack for another commit than the one asked for', { kind: 'want-other', commit: '', scope: 'fetch' }, /./],
];

for (const [what, fault, says] of FAULTS) {
  t.test(what, async (t) => {
    const m = copyOfSeed();
    const before = snapshot(m);
    if (fault.kind === 'want-other') fault.commit = R[0];
    server.setFault(fault);
    campaign.fault();
    const r = await fetch(m);
    server.setFault(null);
    check(t, m, what, r, says, before);
  });
}

function check(t: Test, m: Machine, what: string, r: Run, says: RegExp | null, before: string): void {
  rssMax = Math.max(rssMax, r.rssKb);
  const lines = r.stderr.trim().split('\n');
  if (says === null) {
    campaign.check(t, r.status === 0 || (lines.length === 1 && r.status !== 0), `${what}: succeeds or fails in one line (${r.status}: ${lines[0]})`);
    if (r.status === 0) campaign.check(t, JSON.parse(r.stdout).revision === R[1], `${what}: the right revision was staged`);
  } else {
    campaign.check(
      t,
      r.status !== 0 && r.status !== 1 && lines.length === 1 && lines[0].startsWith('gitroot: ') && says.test(lines[0]) && !/\n\s+at /.test(r.stderr),
      `${what}: one clear line, typed exit status (${r.status}: ${lines[0].slice(0, 240)})`,
    );
    campaign.check(t, snapshot(m) === before, `${what}: nothing staged (state, kernels and entries unchanged)`);
  }
  campaign.check(t, r.seconds < MAX_SECONDS, `${what}: over in ${r.seconds.toFixed(1)} s`);
  campaign.check(t, r.rssKb > 0 && r.rssKb < MAX_RSS_KB, `${what}: peak RSS ${Math.round(r.rssKb / 1024)} MiB`);
  const h = repoHealth(path.join(m.dir, 'repo.git'));
  campaign.check(t, h.fsck === 0 && h.closure === 0, `${what}: the repository is fsck clean (${h.fsckErr.trim().split('\n')[0]})`);
  const leftovers = fs.readdirSync(path.join(m.dir, 'repo.git', 'objects')).filter((f) => /quarantine|incoming|tmp/.test(f));
  campaign.check(t, leftovers.length === 0, `${what}: no quarantine left behind (${leftovers.join(' ')})`);
}

t.test('a pack that never ends, into a home on a 64 MiB tmpfs: cut off before the disk is full', async (t) => {
  tmpfs = path.join(work, 'small');
  fs.mkdirSync(tmpfs);
  const mnt = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', tmpfs]);
  if (mnt.status !== 0) throw new Error(`cannot mount a tmpfs: ${mnt.stderr}`);
  const m = serverMachine(tmpfs);
  // No reserve beyond the fetcher's own: the space check before the fetch must let it start.
  fs.appendFileSync(m.conf, 'gitroot.min-free=0\n');
  const before = snapshot(m);
  server.setFault({ kind: 'endless-pack', objects: 1_000_000, scope: 'fetch' });
  campaign.fault();
  const r = await fetch(m);
  server.setFault(null);
  check(t, m, 'endless pack into 64 MiB', r, /sent more pack data .* than the \d+ bytes free/, before);
  const df = spawnSync('df', ['-B1', '--output=avail', tmpfs], { encoding: 'utf8' }).stdout.trim().split('\n')[1];
  campaign.check(t, Number(df) > 8 * 1024 * 1024, `the tmpfs still has room for state writes afterwards (${df} bytes free)`);
  const ok = await fetch(m);
  campaign.check(t, ok.status === 0, `a clean fetch afterwards works (${ok.stderr.trim()})`);
});

t.test('after all of it: a clean fetch of the seeded home works', async (t) => {
  const m = copyOfSeed();
  const r = await fetch(m);
  campaign.check(t, r.status === 0 && JSON.parse(r.stdout).revision === R[1], `clean fetch (${r.stderr.trim()})`);
  campaign.measure('peak RSS of gitroot fetch (MiB)', Math.round(rssMax / 1024));
});
