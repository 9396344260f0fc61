/**
 * `gitroot mark-good`, `mark-bad` and `rollback` end to end on real homes: revisions with
 * kernels committed with `gitroot commit`, staged with stageRevision, booted with decideBoot
 * (what `gitroot boot` persists before mounting), then the commands run as the unit and a
 * person would, with real BLS entries and extlinux.conf written and read back:
 *   - a successful update (bls): health checks pass and veto, the counter of the entry is
 *     dropped when it is marked good, rollback and roll forward, mark-bad of the good one;
 *   - a failed update (extlinux): tries used up at boot, the good revision boots, and
 *     mark-good of it brings DEFAULT back to the good entry;
 *   - a kernel that never reaches the initramfs (bls): systemd-boot used up the entry's tries
 *     (renamed to +0-N) while the state still counts them; mark-good in the good revision's
 *     boot records it as failed, removes its entry, and the fetcher does not stage it again;
 *   - refusals (nothing booted, no earlier good revision, another revision running, no
 *     staged kernel, a revision gone from the repository, a held lock): one line, exit
 *     status, state and entries unchanged;
 *   - the command lines of boot/gitroot-health.service and gitroot-mark-good.service, and
 *     `gitroot health` (the checks alone: pass, veto, refusals).
 */
// needs: git
import t from 'tap';
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { decideBoot } from '../lib/boot/boot-decide.js';
import { parseBlsKeys } from '../lib/bootloader/bootloader-bls.js';
import { createBootloader } from '../lib/bootloader/create-bootloader.js';
import { stageRevision } from '../lib/deploy/deploy-stage.js';
import { type DeployState, readState, writeState } from '../lib/home/home-state.js';
import { statePath } from '../lib/home/home-layout.js';
import { withLock } from '../lib/home/home-lock.js';
import { CLI, gitroot } from './helpers/cli.js';
import { DEPLOY_CHILD, PROJECT_ROOT, commitSpec, debianRoot } from './helpers/deploy-fixtures.js';
import { type Machine, commandArgs, machine } from './helpers/machine.js';
import { tempDir } from './helpers/temp-dir.js';

const V1 = '6.1.0-9-amd64';
const V2 = '6.1.0-10-amd64';
const short = (s: string): string => s.slice(0, 12);

async function stage(m: Machine, sha: string, tries = 3): Promise<void> {
  await stageRevision({ dir: m.dir, sha, bootloader: m.loader, bootDir: m.boot, tries, kernelCmdline: 'boot=gitroot quiet' });
}

/** A boot: what `gitroot boot` does before mounting, with the command line of the entry the loader picked. */
async function boot(m: Machine, revision: string | null): Promise<string | null> {
  const d = await decideBoot({ dir: m.dir, cmdline: `boot=gitroot quiet${revision === null ? '' : ` git-revision=${revision}`}`, persist: true });
  fs.writeFileSync(path.join(m.run, 'booted.json'), JSON.stringify({ revision: d.revision, reason: d.kind }));
  return d.revision;
}

/** gitroot's BLS entry files -> their keys. */
function blsEntries(m: Machine): Record<string, Map<string, string>> {
  const dir = path.join(m.boot, 'loader', 'entries');
  const out: Record<string, Map<string, string>> = {};
  for (const f of fs.readdirSync(dir).sort()) out[f] = parseBlsKeys(fs.readFileSync(path.join(dir, f), 'utf8'));
  return out;
}

function healthScript(m: Machine, name: string, body: string): void {
  fs.writeFileSync(path.join(m.health, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

/** Everything a refused command must leave alone: state.json and the boot directory. */
function snapshot(m: Machine): string {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files.push(`${p}:${fs.readFileSync(p).toString('base64')}`);
    }
  };
  walk(m.boot);
  walk(path.join(m.dir, 'boot'));
  return `${fs.readFileSync(statePath(m.dir), 'utf8')}\n${files.join('\n')}`;
}

function oneLine(t: Test, r: { stderr: string }, re: RegExp, what: string): void {
  t.match(r.stderr, re, what);
  t.equal(r.stderr.trimEnd().split('\n').length, 1, `${what}: one line on stderr`);
}

t.test('a successful update with BLS entries: health checks, mark-good, rollback, mark-bad', async (t) => {
  const m = machine(tempDir(t, 'transitions'), { loader: 'bls', cmdline: 'BOOT_IMAGE=/vmlinuz boot=gitroot quiet' });
  const A = commitSpec(m.base, m.repo, debianRoot(V1, 'A'));
  const B = commitSpec(m.base, m.repo, debianRoot(V2, 'B'));

  // The first revision: staged, booted, marked good by the unit.
  await stage(m, A);
  t.equal(await boot(m, A), A);
  const first = gitroot(commandArgs(m, 'mark-good'));
  t.equal(first.status, 0, first.stderr);
  t.same(first.stdout.split('\n'), [
    `health checks: none in ${m.health}`,
    `${A} passed its trial (try 1 of 3): it is the known-good revision now`,
    `next boot: ${A}`,
    '',
  ]);
  t.match(readState(m.dir), { good: A, pending: null, booted: A, previousGood: [] });
  t.same(Object.keys(blsEntries(m)), [`gitroot-${short(A)}.conf`], 'one plain entry: the counter is gone with the trial');
  t.match(fs.readFileSync(path.join(m.boot, 'loader', 'loader.conf'), 'utf8'), /^default gitroot-\*$/m);

  // An update: staged with 3 tries, booted once (systemd-boot renamed the entry: one try done).
  await stage(m, B);
  t.same(Object.keys(blsEntries(m)).sort(), [`gitroot-${short(A)}.conf`, `gitroot-${short(B)}+3.conf`].sort());
  fs.renameSync(path.join(m.boot, 'loader', 'entries', `gitroot-${short(B)}+3.conf`), path.join(m.boot, 'loader', 'entries', `gitroot-${short(B)}+2-1.conf`));
  t.equal(await boot(m, B), B);
  t.match(readState(m.dir), { booted: B, pending: { revision: B, triesLeft: 2 } });

  // A health check vetoes: exit 4, names the script and its last line; nothing changes.
  healthScript(m, '10-ok', 'echo fine');
  healthScript(m, '20-app', 'echo "starting kiosk"; echo "kiosk: cannot open display :0" >&2; exit 1');
  healthScript(m, 'README', 'not a check');
  fs.chmodSync(path.join(m.health, 'README'), 0o644);
  const before = snapshot(m);
  const veto = gitroot(commandArgs(m, 'mark-good'));
  t.equal(veto.status, 4);
  t.equal(veto.stdout, '');
  t.match(veto.stderr, /gitroot: health check 10-ok: passed in \d+ ms\n/);
  t.match(
    veto.stderr,
    new RegExp(
      `gitroot: mark-good: health check ${path.join(m.health, '20-app')} failed \\(exit 1\\): kiosk: cannot open display :0; ` +
        'the revision is not marked good and the state is unchanged\n$',
    ),
  );
  t.equal(snapshot(m), before, 'state, entries and kernels unchanged');
  const vetoJson = gitroot(commandArgs(m, 'mark-good', '--json'));
  t.equal(vetoJson.status, 4);
  const vj = JSON.parse(vetoJson.stdout);
  t.match(vj, { ok: false, error: { code: 'ESTATE', message: /20-app failed/ }, health: { ok: false, skipped: [{ name: 'README', why: 'not executable' }] } });
  t.same(
    vj.health.checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok]),
    [
      ['10-ok', true],
      ['20-app', false],
    ],
  );
  t.equal(vetoJson.stderr.trimEnd().split('\n').length, 1, 'with --json: only the error line on stderr');

  // Fixed: it passes, B is good, its entry loses the counter, A's entry goes (A stays the earlier good one).
  healthScript(m, '20-app', 'echo "kiosk up"');
  const ok = gitroot(commandArgs(m, 'mark-good', '--json'));
  t.equal(ok.status, 0, ok.stderr);
  const j = JSON.parse(ok.stdout);
  t.match(j, {
    ok: true,
    action: 'mark-good',
    revision: B,
    changed: true,
    nextBoot: B,
    state: { good: B, pending: null, previousGood: [A] },
    entries: [{ id: `gitroot-${short(B)}`, revision: B, role: 'good', tries: null }],
    health: {
      ok: true,
      checks: [
        { name: '10-ok', ok: true, lastLine: 'fine' },
        { name: '20-app', ok: true, lastLine: 'kiosk up' },
      ],
    },
  });
  t.match(j.reason, /passed its trial \(try 1 of 3\)/);
  t.same(Object.keys(blsEntries(m)), [`gitroot-${short(B)}.conf`]);
  t.match(blsEntries(m)[`gitroot-${short(B)}.conf`].get('options'), new RegExp(`git-revision=${B}$`));
  t.ok(fs.existsSync(path.join(m.dir, 'boot', A, 'vmlinuz')), "the earlier good revision's kernel is kept for a rollback");
  t.notOk(fs.existsSync(path.join(m.boot, 'gitroot', A)), 'but its copy in $BOOT is gone with its entry');

  // Idempotent: the unit runs at every boot.
  const again = gitroot(commandArgs(m, 'mark-good'));
  t.equal(again.status, 0);
  t.match(again.stdout, new RegExp(`nothing to change: ${B} is already the known-good revision\nnext boot: ${B}\n$`));

  // rollback: A boots next, its kernel copied back to $BOOT; a second rollback undoes it.
  const rb = gitroot(commandArgs(m, 'rollback', '--json'));
  t.equal(rb.status, 0, rb.stderr);
  t.match(JSON.parse(rb.stdout), {
    action: 'rollback',
    revision: A,
    nextBoot: A,
    state: { good: A, previousGood: [B] },
    entries: [{ revision: A, role: 'good' }],
  });
  t.same(Object.keys(blsEntries(m)), [`gitroot-${short(A)}.conf`]);
  t.ok(fs.existsSync(path.join(m.boot, 'gitroot', A, 'vmlinuz')), 'kernel copy back in $BOOT');
  const fwd = gitroot(commandArgs(m, 'rollback'));
  t.equal(fwd.status, 0);
  t.same(fwd.stdout.split('\n'), [`${B} is the known-good revision again and boots next (${A} is the previous one)`, `next boot: ${B}`, '']);
  t.match(readState(m.dir), { good: B, previousGood: [A] });

  // mark-bad of the good revision B (booted): A takes its place; B is failed and never boots again.
  const bad = gitroot(commandArgs(m, 'mark-bad'));
  t.equal(bad.status, 0, bad.stderr);
  t.match(
    bad.stdout,
    new RegExp(`^${B} is recorded as failed; the earlier good revision ${A} is the known-good one again; the next boot runs ${A}\nnext boot: ${A}\n$`),
  );
  t.match(readState(m.dir), { good: A, failed: [B], previousGood: [] });
  t.same(Object.keys(blsEntries(m)), [`gitroot-${short(A)}.conf`]);
  fs.writeFileSync(path.join(m.base, 'cmdline-b'), `boot=gitroot git-revision=${B}\n`);
  const sel = JSON.parse(gitroot(['select', '--dir', m.dir, '--cmdline', path.join(m.base, 'cmdline-b'), '--json']).stdout);
  t.match(sel, { revision: A, kind: 'good' }, 'an old entry naming B would not boot it');
  // After the next boot (A), the fetcher refuses to stage B again.
  t.equal(await boot(m, null), A);
  const restage = await stageRevision({ dir: m.dir, sha: B, bootloader: 'bls', bootDir: m.boot, tries: 3 });
  t.equal(restage.action, 'refused');
});

t.test('a failed update with extlinux: tries used up, the good revision boots, mark-good repairs DEFAULT', async (t) => {
  const m = machine(tempDir(t, 'transitions'), { loader: 'extlinux', cmdline: 'BOOT_IMAGE=/vmlinuz boot=gitroot quiet' });
  const A = commitSpec(m.base, m.repo, debianRoot(V1, 'A'));
  const B = commitSpec(m.base, m.repo, debianRoot(V2, 'B'));
  await stage(m, A);
  await boot(m, A);
  t.equal(gitroot(commandArgs(m, 'mark-good')).status, 0);
  await stage(m, B, 2);
  const bl = createBootloader('extlinux', { homeDir: m.dir, bootDir: m.boot });
  t.equal(bl.readEntries().defaultId, `gitroot-${short(B)}`);

  // extlinux always starts DEFAULT (B); B never reaches mark-good.
  const booted: Array<string | null> = [];
  for (let i = 0; i < 4; i++) booted.push(await boot(m, B));
  t.same(booted, [B, B, A, A], 'two tries, then the good revision');
  t.match(readState(m.dir), { good: A, booted: A, pending: null, failed: [B] });
  t.equal(bl.readEntries().defaultId, `gitroot-${short(B)}`, 'nothing rewrote extlinux.conf at boot');

  // The good revision completes its boot: the unit's mark-good changes no state but rewrites the entries.
  const r = gitroot(commandArgs(m, 'mark-good'));
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, new RegExp(`\nnothing to change: ${A} is already the known-good revision\n`));
  const after = bl.readEntries();
  t.equal(after.defaultId, `gitroot-${short(A)}`);
  t.same(
    after.entries.map((e) => e.revision),
    [A],
    'the failed revision has no entry any more',
  );
  const status = gitroot(['status', '--dir', m.dir, '--cmdline', path.join(m.base, 'cmdline'), '--config', path.join(m.base, 'gitroot.conf'), '--json']);
  t.match(JSON.parse(status.stdout), { good: A, booted: A, pending: null, failed: [B] });
});

t.test('a kernel that never reaches the initramfs (bls): the loader used up its tries, mark-good records it as failed', async (t) => {
  const m = machine(tempDir(t, 'transitions'), { loader: 'bls', cmdline: 'BOOT_IMAGE=/vmlinuz boot=gitroot quiet' });
  const A = commitSpec(m.base, m.repo, debianRoot(V1, 'A'));
  const B = commitSpec(m.base, m.repo, debianRoot(V2, 'B'));
  await stage(m, A);
  await boot(m, A);
  t.equal(gitroot(commandArgs(m, 'mark-good')).status, 0);
  await stage(m, B, 2);
  const entries = path.join(m.boot, 'loader', 'entries');
  // systemd-boot tried B's entry twice (+2 -> +1-1 -> +0-2); its kernel panicked both times, so
  // gitroot's initramfs never ran and the state still says 2 tries left.
  fs.renameSync(path.join(entries, `gitroot-${short(B)}+2.conf`), path.join(entries, `gitroot-${short(B)}+0-2.conf`));
  t.equal(await boot(m, A), A, 'the loader falls back to the good entry: A boots');
  t.match(readState(m.dir), { good: A, booted: A, pending: { revision: B, triesLeft: 2 }, failed: [] }, 'the boot alone learns nothing');
  const r = gitroot(commandArgs(m, 'mark-good'));
  t.equal(r.status, 0, r.stderr);
  t.same(r.stdout.split('\n'), [
    `health checks: none in ${m.health}`,
    `note: the boot loader counted 2 tries of pending revision ${B} that never reached gitroot's initramfs ` +
      `(entry ${path.join(entries, `gitroot-${short(B)}+0-2.conf`)}): it has no tries left and the loader boots another entry, so it is recorded as failed`,
    `${A} is already the known-good revision`,
    `next boot: ${A}`,
    '',
  ]);
  t.match(readState(m.dir), { good: A, booted: A, pending: null, failed: [B] });
  t.same(Object.keys(blsEntries(m)), [`gitroot-${short(A)}.conf`], "B's entry is gone");
  t.notOk(fs.existsSync(path.join(m.boot, 'gitroot', B)), 'and its kernel copy');
  const again = gitroot(commandArgs(m, 'mark-good', '--json'));
  t.match(JSON.parse(again.stdout), { changed: false, notes: [] }, 'the next mark-good has nothing to learn');
  const restage = await stageRevision({ dir: m.dir, sha: B, bootloader: 'bls', bootDir: m.boot, tries: 2 });
  t.equal(restage.action, 'refused', 'the fetcher does not stage it again');

  // One try lost to a panic, then the kernel boots: the state keeps the lower count.
  const C = commitSpec(m.base, m.repo, debianRoot(V2, 'C'));
  await stage(m, C, 3);
  fs.renameSync(path.join(entries, `gitroot-${short(C)}+3.conf`), path.join(entries, `gitroot-${short(C)}+1-2.conf`));
  t.equal(await boot(m, C), C);
  t.match(readState(m.dir), { pending: { revision: C, triesLeft: 2 } });
  healthScript(m, '20-app', 'echo "kiosk: no display" >&2; exit 1');
  t.equal(gitroot(commandArgs(m, 'mark-good')).status, 4, 'a veto changes nothing, the count included');
  t.match(readState(m.dir), { pending: { revision: C, triesLeft: 2 } });
  fs.rmSync(path.join(m.health, '20-app'));
  const rb = gitroot(commandArgs(m, 'mark-bad', '--json'));
  t.equal(rb.status, 0, rb.stderr);
  t.match(JSON.parse(rb.stdout), { notes: [/counted 1 try of pending revision .*: 1 left$/], state: { failed: [C, B], pending: null } });
});

t.test('refusals: one line, an exit status, nothing changed', async (t) => {
  const m = machine(tempDir(t, 'transitions'), { loader: 'bls', cmdline: 'BOOT_IMAGE=/vmlinuz boot=gitroot quiet' });
  const A = commitSpec(m.base, m.repo, debianRoot(V1, 'A'));
  const C = commitSpec(m.base, m.repo, { 'etc/os-release': 'no kernel\n' }, 'C');

  // A fresh home: nothing booted, nothing good.
  for (const cmd of ['mark-good', 'mark-bad']) {
    const r = gitroot(commandArgs(m, cmd));
    t.equal(r.status, 4, cmd);
    oneLine(t, r, new RegExp(`^gitroot: ${cmd}: state.json records no booted revision`), cmd);
  }
  const rb = gitroot(commandArgs(m, 'rollback', '--json'));
  t.equal(rb.status, 4);
  t.equal(rb.stdout, '');
  oneLine(t, rb, /^gitroot: rollback: there is no earlier good revision to go back to/, 'rollback');

  await stage(m, A);
  await boot(m, A);
  t.equal(gitroot(commandArgs(m, 'mark-good')).status, 0);

  // The only good revision cannot be marked bad.
  let before = snapshot(m);
  const last = gitroot(commandArgs(m, 'mark-bad'));
  t.equal(last.status, 4);
  oneLine(t, last, /no earlier good revision can replace it/, 'last good');
  t.equal(snapshot(m), before);

  // This boot runs something else than state.json says (the boot could not record itself).
  fs.writeFileSync(path.join(m.run, 'booted.json'), JSON.stringify({ revision: C }));
  for (const cmd of ['mark-good', 'mark-bad']) {
    const r = gitroot(commandArgs(m, cmd));
    t.equal(r.status, 4, cmd);
    oneLine(t, r, new RegExp(`state.json records ${A} as booted, but this boot runs ${C}`), `${cmd} mismatch`);
  }
  t.equal(snapshot(m), before);
  fs.rmSync(path.join(m.run, 'booted.json'));

  // An earlier good revision without a staged kernel: no entry could boot it.
  await withLock(m.dir, {}, (lock) => writeState(lock, { ...readState(m.dir), previousGood: [C] } as DeployState));
  before = snapshot(m);
  const noKernel = gitroot(commandArgs(m, 'rollback'));
  t.equal(noKernel.status, 4);
  oneLine(t, noKernel, new RegExp(`^gitroot: rollback: revision ${C} would boot next but has no staged kernel.*update-revision=${C}`), 'no kernel');
  t.equal(snapshot(m), before);

  // An earlier good revision gone from the repository.
  const gone = 'e'.repeat(40);
  await withLock(m.dir, {}, (lock) => writeState(lock, { ...readState(m.dir), previousGood: [gone] } as DeployState));
  before = snapshot(m);
  const missing = gitroot(commandArgs(m, 'rollback'));
  t.equal(missing.status, 4);
  oneLine(t, missing, new RegExp(`^gitroot: rollback: revision ${gone} is not in .*repo.git, so it could not boot`), 'missing');
  t.equal(snapshot(m), before);

  // Another process holds the home's lock.
  const holder = spawn(process.execPath, [DEPLOY_CHILD, 'hold', m.dir, 'gitroot fetch'], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (holder.exitCode === null) holder.kill('SIGKILL');
  });
  await new Promise<void>((resolve) => createInterface({ input: holder.stdout! }).once('line', () => resolve()));
  const locked = gitroot(commandArgs(m, 'mark-good', '--wait', '0.2'));
  t.equal(locked.status, 7);
  oneLine(t, locked, /^gitroot: another gitroot process \(pid \d+, 'gitroot fetch'\) holds .*lock/, 'locked');
  holder.stdin!.end();
  await new Promise((r) => holder.once('exit', r));

  // Bad arguments.
  const wait = gitroot(commandArgs(m, 'rollback', '--wait', 'soon'));
  t.equal(wait.status, 2);
  oneLine(t, wait, /argument 'soon' is invalid\. give a number of seconds >= 0/, 'bad --wait');
  const home = gitroot(['rollback', '--dir', path.join(m.base, 'nope')]);
  t.equal(home.status, 2);
  oneLine(t, home, /gitroot home .*nope is not a directory/, 'no home');
});

/** The unit's defaults read these; a host that has them would change the outcome. */
const hostHas = ['/etc/gitroot', '/run/gitroot/booted.json'].filter((p) => fs.existsSync(p));

/** Runs a unit's ExecStart (with GITROOT_DIR set to `dir`) as systemd would, with every default. */
async function runUnit(t: Test, unitName: string, dir: string): Promise<{ words: string[]; status: number | null; stdout: string; stderr: string }> {
  const unit = fs.readFileSync(path.join(PROJECT_ROOT, 'boot', unitName), 'utf8');
  const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? '';
  t.equal(/^Environment=GITROOT_DIR=(.*)$/m.exec(unit)?.[1], '/run/gitroot/home', `${unitName}: the home as gitroot boot exposes it in the booted system`);
  const words = exec.split(/\s+/);
  const argv = words.slice(1).map((w) => w.replace('${GITROOT_DIR}', dir));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ words, status, stdout, stderr }));
  });
}

t.test(
  'the command lines of gitroot-health.service and gitroot-mark-good.service',
  { skip: hostHas.length > 0 ? `this host has ${hostHas.join(', ')}` : false },
  async (t) => {
    // Run exactly those (the defaults read /proc/cmdline, /etc/gitroot, /etc/gitroot/health.d and /run/gitroot).
    const m = machine(tempDir(t, 'transitions'), { loader: 'bls', cmdline: 'BOOT_IMAGE=/vmlinuz boot=gitroot quiet' });
    const A = commitSpec(m.base, m.repo, { 'etc/os-release': 'unit\n' });
    await withLock(m.dir, {}, (lock) => writeState(lock, { ...readState(m.dir), booted: A }));
    const health = await runUnit(t, 'gitroot-health.service', m.dir);
    t.same(health.words, ['/usr/bin/gitroot', 'health', '--dir', '${GITROOT_DIR}'], 'the health checks of the configured home, with every default');
    t.equal(health.status, 0, health.stderr);
    t.same(health.stdout.split('\n'), ['health checks: none in /etc/gitroot/health.d', `${A} passed its health checks`, '']);
    t.match(readState(m.dir), { good: null, booted: A }, 'the checks change nothing');
    const good = await runUnit(t, 'gitroot-mark-good.service', m.dir);
    t.same(
      good.words,
      ['/usr/bin/gitroot', 'mark-good', '--dir', '${GITROOT_DIR}', '--no-health-checks'],
      'mark-good of the configured home, the checks not run again (boot-complete.target required them)',
    );
    t.equal(good.status, 0, good.stderr);
    t.match(good.stdout, /^health checks: not run \(--no-health-checks\)\n/);
    t.match(readState(m.dir), { good: A });
  },
);

t.test('gitroot health: the checks alone, judged against the booted revision', async (t) => {
  const m = machine(tempDir(t, 'transitions'), { loader: 'bls', cmdline: 'BOOT_IMAGE=/vmlinuz boot=gitroot quiet' });
  const A = commitSpec(m.base, m.repo, debianRoot(V1, 'A'));
  await stage(m, A);
  const args = (...more: string[]) => ['health', '--dir', m.dir, '--health-dir', m.health, '--run-dir', m.run, ...more];
  const none = gitroot(args());
  t.equal(none.status, 4, 'nothing booted yet: refused');
  oneLine(t, none, /records no booted revision/, 'nothing booted');
  t.equal(await boot(m, A), A);
  healthScript(m, '10-env', 'echo "judging $GITROOT_REVISION in $GITROOT_DIR"');
  const ok = gitroot(args('--json'));
  t.equal(ok.status, 0, ok.stderr);
  t.match(JSON.parse(ok.stdout), { ok: true, revision: A, health: { ok: true, checks: [{ name: '10-env', ok: true, lastLine: `judging ${A} in ${m.dir}` }] } });
  healthScript(m, '20-app', 'echo "kiosk.service is failed after 3 restarts" >&2; exit 1');
  const before = snapshot(m);
  const veto = gitroot(args());
  t.equal(veto.status, 4);
  t.match(
    veto.stderr,
    new RegExp(
      `gitroot: health: health check ${path.join(m.health, '20-app')} failed \\(exit 1\\): kiosk.service is failed after 3 restarts; ` +
        'the boot does not count as complete \\(boot-complete.target\\): the boot entry is not blessed and the revision not marked good\n$',
    ),
  );
  t.equal(snapshot(m), before, 'state and entries unchanged');
  t.match(JSON.parse(gitroot(args('--json')).stdout), { ok: false, error: { code: 'ESTATE' }, health: { ok: false } });
  fs.writeFileSync(path.join(m.run, 'booted.json'), JSON.stringify({ revision: 'f'.repeat(40) }));
  oneLine(t, gitroot(args()), /this boot runs f{40}/, 'another revision running: refused');
});
