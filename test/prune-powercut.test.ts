/**
 * Power cut during `gitroot prune`: a home with three good releases, a failed side revision
 * and several fetch packs (built once through a real `git http-backend`) is copied for each
 * trial; the prune CLI is started in its own process group and, once it holds the home's lock,
 * the whole group (node and any git child) is killed with SIGKILL after a random delay spread
 * over the length of a whole prune's work, then the page cache is dropped. After every kill: state.json is valid, every revision it names and
 * every kept revision is complete (git fsck --connectivity-only, rev-list --objects, and every
 * blob of the tree read back with git archive), kernels the state names exist, and a second
 * prune finishes and ends exactly where an uninterrupted prune ends. The counts (trials, where
 * the kill landed, failures) are printed as a comment and recorded in docs/prune.md.
 */
// needs: root git server
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { commitSpec, debianRoot, noise, writeTree } from './helpers/deploy-fixtures.js';
import { CLI, gitrootAsync as gitroot, sh } from './helpers/cli.js';
import { gitRun, gitSync } from './helpers/fetch-repos.js';
import { parseState } from '../lib/home/home-state.js';

const TRIALS = Number(process.env.PRUNE_POWERCUT_TRIALS ?? 30);

let server: GitHttpServer;
let work: string;
let template: string;
const rel: string[] = [];
let side = '';

function release(n: number, extra: Record<string, Buffer | string> = {}) {
  const lib = Buffer.from(noise('libbig', 3 * 1024 * 1024));
  lib.write(`release ${n}`.padEnd(64, '.'), 8192 * n);
  return debianRoot(`6.1.0-${10 + n}`, `r${n}`, { 'usr/lib/libbig.so': lib, 'etc/motd': `release ${n}\n`, ...extra });
}

function conf(base: string): { conf: string; cmdline: string; boot: string } {
  const boot = path.join(base, 'bootmedium');
  fs.mkdirSync(boot, { recursive: true });
  const c = path.join(base, 'gitroot.conf');
  fs.writeFileSync(
    c,
    ['gitroot.bootloader=bls', `gitroot.boot=${boot}`, 'gitroot.timeout=5', 'gitroot.retries=0', `gitroot.remote=${server.url('os.git')}`].join('\n') + '\n',
  );
  const cmdline = path.join(base, 'cmdline');
  fs.writeFileSync(cmdline, 'quiet\n');
  return { conf: c, cmdline, boot };
}

function editState(dir: string, change: (s: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'state.json');
  const s = JSON.parse(fs.readFileSync(file, 'utf8'));
  change(s);
  fs.writeFileSync(file, JSON.stringify(s, null, 2) + '\n');
}

t.before(async () => {
  work = fs.mkdtempSync('/tmp/gitroot-prune-cut-');
  const projectRoot = path.join(work, 'srv');
  fs.mkdirSync(projectRoot);
  const repo = path.join(projectRoot, 'os.git');
  for (let n = 1; n <= 3; n++) rel.push(commitSpec(work, repo, release(n), `release ${n}`));
  const root = fs.mkdtempSync(path.join(work, 'side-'));
  writeTree(root, release(9, { 'usr/lib/experimental.bin': noise('experimental', 3 * 1024 * 1024) }));
  const r = spawnSync(process.execPath, [CLI, 'commit', root, '--repo', repo, '--branch', 'experimental', '-m', 'side'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  side = r.stdout.trim();
  server = await startGitHttpServer({ projectRoot });

  // The template home: r1, r2, r3 fetched, booted and marked good in turn; the side revision staged and failed.
  template = path.join(work, 'template');
  const c = conf(template);
  const dir = path.join(template, 'home');
  for (const sha of [...rel, side]) {
    fs.writeFileSync(c.cmdline, `quiet update-revision=${sha}\n`);
    const f = await gitroot(['fetch', '--dir', dir, '--config', c.conf, '--cmdline', c.cmdline, '--json']);
    if (f.status !== 0) throw new Error(`fetch ${sha}: ${f.stderr}`);
    editState(dir, (s) => {
      if (sha === side) {
        s.failed = [side];
        s.pending = null;
        return;
      }
      const prev = s.good ? [s.good as string, ...(s.previousGood as string[])] : (s.previousGood as string[]);
      Object.assign(s, { previousGood: prev.filter((x) => x !== sha), good: sha, booted: sha, pending: null });
    });
  }
  sh(`find ${path.join(dir, 'repo.git', 'refs', 'gitroot')} -type f -exec touch -d '2 hours ago' {} +`);
  await server.close();
});
t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));

/** A fresh copy of the template home (config paths rewritten to the copy). */
function copyHome(name: string): { dir: string; conf: string; cmdline: string } {
  const base = path.join(work, name);
  sh(`cp -a ${template} ${base}`);
  const c = path.join(base, 'gitroot.conf');
  fs.writeFileSync(c, fs.readFileSync(c, 'utf8').split(template).join(base));
  return { dir: path.join(base, 'home'), conf: c, cmdline: path.join(base, 'cmdline') };
}

function pruneArgs(h: { dir: string; conf: string; cmdline: string }): string[] {
  return [CLI, 'prune', '--dir', h.dir, '--config', h.conf, '--cmdline', h.cmdline, '--json', '--wait', '30'];
}

/**
 * Runs prune and, once it holds the home's lock (D/lock appears: the work has begun), kills its
 * whole process group with SIGKILL after `delayMs`; resolves when it is gone, with the time from
 * the lock appearing to the exit.
 */
function pruneKilledAfter(
  h: { dir: string; conf: string; cmdline: string },
  delayMs: number | null,
): Promise<{ killed: boolean; status: number | null; workMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, pruneArgs(h), { detached: true, stdio: 'ignore' });
    let killed = false;
    let lockedAt = 0;
    let timer: NodeJS.Timeout | undefined;
    const lock = path.join(h.dir, 'lock');
    const poll = setInterval(() => {
      if (lockedAt !== 0 || !fs.existsSync(lock)) return;
      lockedAt = Date.now();
      if (delayMs === null) return;
      timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
          killed = true;
        } catch {
          /* already gone */
        }
      }, delayMs);
    }, 2);
    child.on('error', reject);
    child.on('exit', (status) => {
      clearInterval(poll);
      if (timer !== undefined) clearTimeout(timer);
      // Any git child of the group is gone too (killed with it, or finished with it).
      resolve({ killed, status, workMs: lockedAt === 0 ? 0 : Date.now() - lockedAt });
    });
  });
}

/** Everything that must hold after any interruption; returns the problems found. */
function check(dir: string, mustKeep: string[]): string[] {
  const bad: string[] = [];
  let state;
  try {
    state = parseState(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'), 'state.json');
  } catch (e) {
    return [`state.json: ${(e as Error).message}`];
  }
  const gitdir = path.join(dir, 'repo.git');
  const named = new Set(
    [state.good, state.booted, state.pending?.revision ?? null, ...state.previousGood, ...mustKeep].filter((s): s is string => s !== null && s !== side),
  );
  const fsck = gitRun(['--git-dir', gitdir, 'fsck', '--connectivity-only', '--no-dangling', '--no-progress']);
  if (fsck.status !== 0) bad.push(`fsck: ${fsck.stderr.trim().split('\n')[0]}`);
  for (const sha of named) {
    if (gitRun(['--git-dir', gitdir, 'rev-list', '--objects', '--missing=error', '--quiet', sha]).status !== 0) bad.push(`${sha.slice(0, 8)} incomplete`);
    const archive = spawnSync('git', ['--git-dir', gitdir, 'archive', sha], { maxBuffer: 256 << 20 });
    if (archive.status !== 0 || archive.stdout.length < 3 * 1024 * 1024) bad.push(`${sha.slice(0, 8)} tree unreadable`);
  }
  for (const [sha, s] of Object.entries(state.staged)) {
    if (s.kernelDir !== null && !fs.existsSync(path.join(dir, 'boot', s.kernelDir, s.kernel ?? 'vmlinuz'))) bad.push(`kernel of ${sha.slice(0, 8)} missing`);
  }
  return bad;
}

function where(dir: string, templateState: string): string {
  const gitdir = path.join(dir, 'repo.git');
  const packDir = path.join(gitdir, 'objects', 'pack');
  const names = fs.readdirSync(packDir);
  const packs = names.filter((n) => /^pack-.*\.pack$/.test(n)).length;
  const stateSame = fs.readFileSync(path.join(dir, 'state.json'), 'utf8') === templateState;
  if (names.some((n) => n.startsWith('.tmp-') || n.startsWith('tmp_'))) return 'during repack (temp pack present)';
  if (stateSame && !fs.existsSync(path.join(gitdir, 'refs', 'gitroot', 'keep'))) return 'before any change';
  if (stateSame) return 'after keep refs, before the state write';
  if (packs > 1) return 'after the state write, before the repack finished';
  if (!fs.existsSync(path.join(dir, 'prune.json'))) return 'after the repack, before the record';
  return 'after the whole prune';
}

t.test(`kill -9 at ${TRIALS} random points of a prune, then drop caches`, async (t) => {
  const templateState = fs.readFileSync(path.join(template, 'home', 'state.json'), 'utf8');
  // Reference: an uninterrupted prune, timed.
  const ref = copyHome('reference');
  const full = await pruneKilledAfter(ref, null);
  t.equal(full.status, 0, 'uninterrupted prune');
  // How long a prune takes varies a lot with the machine's load (one reference run measured twice
  // what the trials then took, and half the kills landed after the prune): every prune that
  // finishes before its kill is a measurement too, and the delays follow their median.
  const durations = [full.workMs];
  const median = () => [...durations].sort((a, b) => a - b)[Math.floor(durations.length / 2)];
  const refState = fs.readFileSync(path.join(ref.dir, 'state.json'), 'utf8');
  const refRefs = gitSync(['--git-dir', path.join(ref.dir, 'repo.git'), 'for-each-ref']);
  t.same(check(ref.dir, [rel[2], rel[1]]), [], 'reference prune leaves a sound home');
  t.comment(`an uninterrupted prune holds the lock ${full.workMs} ms here`);

  // Deterministic pseudo-random delays over the whole run (and a bit beyond).
  let seed = 20261122;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const landed = new Map<string, number>();
  let failures = 0;
  let killedCount = 0;
  for (let i = 0; i < TRIALS; i++) {
    const h = copyHome(`trial-${i}`);
    const delay = Math.floor(rand() * median() * 1.2);
    const r = await pruneKilledAfter(h, delay);
    if (r.killed) killedCount++;
    else if (r.status === 0) durations.push(r.workMs);
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    const at = r.killed ? where(h.dir, templateState) : 'not killed (finished first)';
    landed.set(at, (landed.get(at) ?? 0) + 1);
    const bad = check(h.dir, [rel[2], rel[1]]);
    const second = await gitroot(pruneArgs(h).slice(1));
    if (second.status !== 0) bad.push(`second prune failed: ${second.stderr.trim()}`);
    bad.push(...check(h.dir, [rel[2], rel[1]]).map((b) => `after second prune: ${b}`));
    if (fs.readFileSync(path.join(h.dir, 'state.json'), 'utf8') !== refState) bad.push('state differs from an uninterrupted prune');
    if (gitSync(['--git-dir', path.join(h.dir, 'repo.git'), 'for-each-ref']) !== refRefs) bad.push('refs differ from an uninterrupted prune');
    const packs = fs.readdirSync(path.join(h.dir, 'repo.git', 'objects', 'pack')).filter((n) => !/^pack-[0-9a-f]+\.(pack|idx|rev)$/.test(n));
    if (packs.length > 0) bad.push(`leftovers in objects/pack: ${packs.join(', ')}`);
    if (bad.length > 0) {
      failures++;
      t.fail(`trial ${i} (kill after ${delay} ms, ${at}): ${bad.join('; ')}`);
    }
    fs.rmSync(path.dirname(h.dir), { recursive: true, force: true });
  }
  t.comment(`uninterrupted prunes took ${durations.join(' ')} ms (median ${median()})`);
  const summary = [...landed].map(([k, v]) => `${k}: ${v}`).join(', ');
  t.comment(`power-cut trials: ${TRIALS}, killed mid-run: ${killedCount}, failures: ${failures}; landed ${summary}`);
  t.equal(failures, 0, `${TRIALS} trials, no failure`);
  t.ok(killedCount >= TRIALS / 2, `most trials were really interrupted (${killedCount})`);
  t.ok(landed.size >= 3, `kills landed in several phases (${landed.size})`);
});
