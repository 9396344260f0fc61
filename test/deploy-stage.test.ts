/**
 * stageRevision end to end (lib/deploy/deploy-stage.ts) on real repositories built with
 * `gitroot commit`, a real gitroot home and a separate boot directory: first staging, a new
 * revision over a good one, a pending revision replaced, nothing to do, going back to the good
 * revision, a revision without a kernel keeping the current one, failed revisions refused
 * unless forced, and every failure (bogus kernel, kernel without initrd, unknown commit, no
 * space on a real tmpfs for D/boot or for $BOOT's copies, a held lock) leaving state, D/boot
 * and the boot entries exactly as they were. Also planStage's decisions, exhaustively.
 */
// needs: root git
import t from 'tap';
import type { Test } from 'tap';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ConfigError, LockedError, NoSpaceError, ObjectCorruptError, RevisionNotFoundError, UsageError } from '../lib/errors/errors.js';
import { type DeployState, emptyState, readState, withFailed, withGood, writeState } from '../lib/home/home-state.js';
import { withLock } from '../lib/home/home-lock.js';
import { kernelDonors, planStage, stageRevision } from '../lib/deploy/deploy-stage.js';
import { parseBlsKeys } from '../lib/bootloader/bootloader-bls.js';
import { createBootloader } from '../lib/bootloader/create-bootloader.js';
import { planBootEntries } from '../lib/bootloader/boot-plan.js';
import { DEPLOY_CHILD, commitSpec, debianRoot, fakeKernel, makeInitrd, type TreeSpec } from './helpers/deploy-fixtures.js';
import { type Machine, machine } from './helpers/machine.js';
import { tempDir } from './helpers/temp-dir.js';

const V1 = '6.1.0-9-amd64';
const V2 = '6.1.0-10-amd64';
const short = (s: string): string => s.slice(0, 12);

/** Every file under `dirs` (except the repository and the lock) -> content hash, for before/after comparisons. */
function snapshot(...dirs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      if (ent.name === 'repo.git' || ent.name === 'lock') continue;
      if (ent.isDirectory()) {
        out[`${p}/`] = 'dir';
        walk(p);
      } else out[p] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  for (const d of dirs) if (fs.existsSync(d)) walk(d);
  return out;
}

/** Marks `sha` good and booted and rewrites the entries, as mark-good would after a complete boot. */
async function markGood(m: Machine, sha: string, loader: 'bls' | 'extlinux' | 'none'): Promise<void> {
  await withLock(m.dir, {}, (lock) => {
    const next = { ...withGood(readState(m.dir), sha), booted: sha };
    const bl = createBootloader(loader, { homeDir: m.dir, bootDir: m.boot });
    bl.writeEntries(planBootEntries(next, bl.location));
    writeState(lock, next);
  });
}

function entries(boot: string): Record<string, Map<string, string>> {
  const dir = path.join(boot, 'loader', 'entries');
  const out: Record<string, Map<string, string>> = {};
  for (const f of fs.readdirSync(dir).sort()) out[f] = parseBlsKeys(fs.readFileSync(path.join(dir, f), 'utf8'));
  return out;
}

t.test('planStage decides every case without I/O', async (t) => {
  const s = (o: Partial<DeployState>): DeployState => ({ ...emptyState(), ...o });
  const A = 'a'.repeat(40);
  const G = 'b'.repeat(40);
  const X = 'c'.repeat(40);
  const pend = { revision: A, triesLeft: 1, tries: 3, stagedAt: '2026-01-01T00:00:00.000Z' };
  t.match(planStage(s({}), X), { action: 'stage', replaces: null });
  t.match(planStage(s({ pending: pend }), X), { action: 'stage', replaces: A, reason: /replacing/ });
  t.match(planStage(s({ pending: pend }), A), { action: 'up-to-date', reason: /already staged \(1 tries left\)/ });
  t.match(planStage(s({ pending: pend }), A, true), { action: 'up-to-date' }, 'force does not reset the tries of the pending revision');
  t.match(planStage(s({ good: G }), G), { action: 'up-to-date' });
  t.match(planStage(s({ good: G, pending: pend }), G), { action: 'clear-pending', replaces: A });
  t.match(planStage(s({ booted: X }), X), { action: 'up-to-date' });
  t.match(planStage(s({ booted: X, pending: pend }), X), { action: 'stage' });
  t.match(planStage(s({ failed: [X] }), X), { action: 'refused', reason: /update-revision=c{40}/ });
  t.match(planStage(s({ failed: [X] }), X, true), { action: 'stage' });
  t.match(planStage(s({ failed: [G], good: G }), G), { action: 'up-to-date' }, 'good wins over a stale failed entry');
  const k = (dir: string | null) => ({
    kernelDir: dir,
    kernel: dir && 'vmlinuz',
    initrd: null,
    kernelVersion: null,
    kernelSource: null,
    options: '',
    stagedAt: '2026-01-01T00:00:00.000Z',
  });
  t.same(
    kernelDonors(s({ booted: X, good: G, pending: pend, staged: { [X]: k(X), [G]: k(G), [A]: k(A) } })).map((d) => d.kernelDir),
    [X, G, A],
  );
  t.same(
    kernelDonors(s({ booted: X, good: G, staged: { [X]: k(null), [G]: k(G) } })).map((d) => d.kernelDir),
    [G],
  );
});

t.test('first staging, a new revision over a good one, a pending one replaced, nothing to do, back to good', async (t) => {
  const m = machine(tempDir(t, 'stage'));
  const A = commitSpec(m.base, m.repo, debianRoot(V1, 'A'));
  const B = commitSpec(m.base, m.repo, debianRoot(V2, 'B'));
  const C = commitSpec(m.base, m.repo, debianRoot(V2, 'C'));
  const now = new Date('2026-03-04T05:06:07.000Z');

  const r1 = await stageRevision({
    dir: m.dir,
    sha: A,
    bootloader: 'bls',
    bootDir: m.boot,
    tries: 3,
    now,
    kernelCmdline: `boot=gitroot gitroot.medium=LABEL=GITROOT quiet BOOT_IMAGE=/vmlinuz git-revision=${C}`,
  });
  t.equal(r1.action, 'stage');
  t.same(r1.kernel, { kernelDir: A, source: `boot/vmlinuz-${V1}`, version: V1, kept: false });
  const s1 = readState(m.dir);
  t.same(s1.pending, { revision: A, triesLeft: 3, tries: 3, stagedAt: now.toISOString() });
  t.equal(s1.good, null);
  t.same(s1.staged[A], {
    kernelDir: A,
    kernel: 'vmlinuz',
    initrd: 'initrd.img',
    kernelVersion: V1,
    kernelSource: `boot/vmlinuz-${V1}`,
    options: 'boot=gitroot gitroot.medium=LABEL=GITROOT quiet',
    stagedAt: now.toISOString(),
  });
  t.same(Object.keys(entries(m.boot)), [`gitroot-${short(A)}+3.conf`]);
  t.equal(entries(m.boot)[`gitroot-${short(A)}+3.conf`].get('options'), `boot=gitroot gitroot.medium=LABEL=GITROOT quiet git-revision=${A}`);
  t.ok(fs.readFileSync(path.join(m.boot, 'gitroot', A, 'vmlinuz')).equals(fakeKernel(`A:${V1}`)), 'kernel copied to $BOOT');

  await markGood(m, A, 'bls');
  const r2 = await stageRevision({ dir: m.dir, sha: B, bootloader: 'bls', bootDir: m.boot, tries: 2 });
  t.equal(r2.action, 'stage');
  t.same(Object.keys(entries(m.boot)), [`gitroot-${short(A)}.conf`, `gitroot-${short(B)}+2.conf`].sort());
  t.equal(
    entries(m.boot)[`gitroot-${short(B)}+2.conf`].get('options'),
    `boot=gitroot gitroot.medium=LABEL=GITROOT quiet git-revision=${B}`,
    'options inherited from the booted revision',
  );
  t.same(fs.readdirSync(path.join(m.dir, 'boot')).sort(), [A, B].sort());

  const r3 = await stageRevision({ dir: m.dir, sha: C, bootloader: 'bls', bootDir: m.boot, tries: 3 });
  t.match(r3, { action: 'stage', reason: new RegExp(`replacing ${B}`) });
  t.same(Object.keys(entries(m.boot)), [`gitroot-${short(A)}.conf`, `gitroot-${short(C)}+3.conf`].sort());
  t.same(fs.readdirSync(path.join(m.dir, 'boot')).sort(), [A, C].sort(), "the replaced revision's kernel is pruned");
  t.same(fs.readdirSync(path.join(m.boot, 'gitroot')).sort(), [A, C].sort());
  t.same(Object.keys(readState(m.dir).staged).sort(), [A, C].sort());

  const before = snapshot(m.dir, m.boot);
  const r4 = await stageRevision({ dir: m.dir, sha: C, bootloader: 'bls', bootDir: m.boot, tries: 3 });
  t.equal(r4.action, 'up-to-date');
  t.same(snapshot(m.dir, m.boot), before, 'nothing to do changes nothing');

  const r5 = await stageRevision({ dir: m.dir, sha: A, bootloader: 'bls', bootDir: m.boot, tries: 3 });
  t.equal(r5.action, 'clear-pending');
  t.equal(readState(m.dir).pending, null);
  t.same(Object.keys(entries(m.boot)), [`gitroot-${short(A)}.conf`]);
  t.same(fs.readdirSync(path.join(m.dir, 'boot')), [A]);
});

t.test('a revision without a kernel keeps the current one; with no kernel known, bls refuses and none accepts', async (t) => {
  const m = machine(tempDir(t, 'stage'));
  const A = commitSpec(m.base, m.repo, debianRoot(V1, 'A'));
  const N = commitSpec(m.base, m.repo, { 'etc/hostname': 'kiosk\n', 'usr/bin/app': 'v2\n' });
  await stageRevision({ dir: m.dir, sha: A, bootloader: 'bls', bootDir: m.boot, tries: 3 });
  await markGood(m, A, 'bls');
  const r = await stageRevision({ dir: m.dir, sha: N, bootloader: 'bls', bootDir: m.boot, tries: 3 });
  t.same(r.kernel, { kernelDir: A, source: `boot/vmlinuz-${V1}`, version: V1, kept: true });
  t.match(r.warnings.join('\n'), new RegExp(`revision ${N} has no kernel: it keeps kernel ${V1} of ${A}`));
  const e = entries(m.boot)[`gitroot-${short(N)}+3.conf`];
  t.equal(e.get('linux'), `/gitroot/${A}/vmlinuz`);
  t.equal(e.get('initrd'), `/gitroot/${A}/initrd.img`);
  t.match(e.get('options'), new RegExp(`git-revision=${N}$`));
  t.same(fs.readdirSync(path.join(m.dir, 'boot')), [A], 'no kernel directory for the kernel-less revision, nothing bogus written');

  const fresh = machine(tempDir(t, 'stage'));
  const N2 = commitSpec(fresh.base, fresh.repo, { 'etc/hostname': 'kiosk\n' });
  const err = await stageRevision({ dir: fresh.dir, sha: N2, bootloader: 'bls', bootDir: fresh.boot, tries: 3 }).catch((x: unknown) => x);
  t.type(err, ConfigError);
  t.match((err as Error).message, /^find kernel: revision [0-9a-f]{40} has no kernel .* gitroot.bootloader=none/);
  t.same(fs.readdirSync(fresh.boot), []);
  t.equal(fs.existsSync(path.join(fresh.dir, 'state.json')), false);
  const ok = await stageRevision({ dir: fresh.dir, sha: N2, bootloader: 'none', tries: 3 });
  t.equal(ok.action, 'stage');
  t.equal(readState(fresh.dir).staged[N2].kernelDir, null);
  t.same(fs.readdirSync(fresh.boot), [], 'none writes no boot configuration');
  t.notMatch(ok.warnings.join('\n'), /boot entry/, 'and does not warn about boot entries it never writes');
  t.match(
    planBootEntries(readState(fresh.dir), createBootloader('bls', { homeDir: fresh.dir, bootDir: fresh.boot }).location).warnings.join('\n'),
    /has no staged kernel: it gets no boot entry/,
    'the same state under bls does warn',
  );
});

t.test('a failed revision is refused without force and staged with it', async (t) => {
  const m = machine(tempDir(t, 'stage'));
  const A = commitSpec(m.base, m.repo, debianRoot(V1, 'A'));
  const F = commitSpec(m.base, m.repo, debianRoot(V2, 'F'));
  await stageRevision({ dir: m.dir, sha: A, bootloader: 'extlinux', bootDir: m.boot, tries: 3 });
  await markGood(m, A, 'extlinux');
  await withLock(m.dir, {}, (lock) => writeState(lock, withFailed(readState(m.dir), F)));
  const before = snapshot(m.dir, m.boot);
  const r = await stageRevision({ dir: m.dir, sha: F, bootloader: 'extlinux', bootDir: m.boot, tries: 3 });
  t.equal(r.action, 'refused');
  t.match(r.reason, new RegExp(`update-revision=${F}`));
  t.same(snapshot(m.dir, m.boot), before, 'refusing changes nothing');
  const f = await stageRevision({ dir: m.dir, sha: F, bootloader: 'extlinux', bootDir: m.boot, tries: 3, force: true });
  t.equal(f.action, 'stage');
  const s = readState(m.dir);
  t.equal(s.pending?.revision, F);
  t.same(s.failed, [], 'no longer listed as failed');
  const bl = createBootloader('extlinux', { homeDir: m.dir, bootDir: m.boot });
  const conf = bl.readEntries();
  t.equal(conf.defaultId, `gitroot-${short(F)}`);
  t.same(
    conf.entries.map((e) => e.revision),
    [F, A],
  );
});

t.test('failures leave state, D/boot and the entries exactly as they were', async (t) => {
  const m = machine(tempDir(t, 'stage'));
  const A = commitSpec(m.base, m.repo, debianRoot(V1, 'A'));
  await stageRevision({ dir: m.dir, sha: A, bootloader: 'bls', bootDir: m.boot, tries: 3 });
  await markGood(m, A, 'bls');
  const bogus = commitSpec(m.base, m.repo, {
    [`boot/vmlinuz-${V2}`]: 'total 0\n-rw-r--r-- 1 root root 0 vmlinuz\n',
    [`boot/initrd.img-${V2}`]: makeInitrd('b'),
  });
  const noInitrd = commitSpec(m.base, m.repo, { [`boot/vmlinuz-${V2}`]: fakeKernel('n') });
  const before = snapshot(m.dir, m.boot);
  const cases: [string, string, number | undefined, new (...a: never[]) => Error, RegExp][] = [
    ['bogus kernel', bogus, 3, ObjectCorruptError, /^copy kernel: boot\/vmlinuz-6.1.0-10-amd64 in revision .* is not a kernel/],
    ['kernel without initrd', noInitrd, 3, ObjectCorruptError, /^find kernel: revision .* has boot\/vmlinuz-6.1.0-10-amd64 but no initrd/],
    ['unknown commit', 'f'.repeat(40), 3, RevisionNotFoundError, /^find kernel: commit f{40} is not in .*repo.git: fetch it first/],
    ['abbreviated id', A.slice(0, 12), 3, UsageError, /give all 40 hex digits/],
    ['zero tries', A, 0, UsageError, /gitroot.tries must be a whole number from 1 to 100/],
  ];
  for (const [name, sha, tries, cls, msg] of cases) {
    const err = await stageRevision({ dir: m.dir, sha, bootloader: 'bls', bootDir: m.boot, tries: tries as number }).catch((x: unknown) => x);
    t.type(err, cls, name);
    t.match((err as Error).message, msg, `${name}: message`);
    t.notMatch((err as Error).message, /\n/, `${name}: one line`);
    t.same(snapshot(m.dir, m.boot), before, `${name}: nothing changed`);
  }
  t.equal(fs.existsSync(path.join(m.dir, 'lock')), false, 'the lock is released after failures');
});

const notRoot = process.getuid?.() !== 0;
if (notRoot && process.env.CI === 'true') throw new Error('the tmpfs tests mount filesystems and need root');

function mountTmpfs(t: Test, dir: string, size: string): void {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'gitroot-test', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount -t tmpfs failed: ${r.stderr}`);
  t.teardown(() => {
    spawnSync('umount', [dir]);
  });
}

t.test('no space for D/boot or for the copies in $BOOT: NoSpaceError, nothing changed', { skip: notRoot ? 'needs root' : false }, async (t) => {
  const big: TreeSpec = { [`boot/vmlinuz-${V2}`]: fakeKernel('big', 3 << 20), [`boot/initrd.img-${V2}`]: makeInitrd('big') };

  // D/boot on a 2 MiB tmpfs.
  const m = machine(tempDir(t, 'stage'));
  const A = commitSpec(m.base, m.repo, debianRoot(V1, 'A'));
  const Big = commitSpec(m.base, m.repo, big);
  fs.mkdirSync(path.join(m.dir, 'boot'));
  mountTmpfs(t, path.join(m.dir, 'boot'), '2m');
  await stageRevision({ dir: m.dir, sha: A, bootloader: 'bls', bootDir: m.boot, tries: 3 });
  await markGood(m, A, 'bls');
  const before = snapshot(m.dir, m.boot);
  const err = await stageRevision({ dir: m.dir, sha: Big, bootloader: 'bls', bootDir: m.boot, tries: 3 }).catch((x: unknown) => x);
  t.type(err, NoSpaceError);
  t.match((err as Error).message, /^check space for kernel: not enough space in .*gitroot\/boot for the kernel and initrd/);
  t.same(snapshot(m.dir, m.boot), before, 'nothing changed');

  // $BOOT (where kernels are copied) on a 2 MiB tmpfs: the staged kernel directory is removed again.
  const n = machine(tempDir(t, 'stage'));
  const A2 = commitSpec(n.base, n.repo, debianRoot(V1, 'A'));
  const Big2 = commitSpec(n.base, n.repo, big);
  mountTmpfs(t, n.boot, '2m');
  await stageRevision({ dir: n.dir, sha: A2, bootloader: 'extlinux', bootDir: n.boot, tries: 3 });
  await markGood(n, A2, 'extlinux');
  const before2 = snapshot(n.dir, n.boot);
  const err2 = await stageRevision({ dir: n.dir, sha: Big2, bootloader: 'extlinux', bootDir: n.boot, tries: 3 }).catch((x: unknown) => x);
  t.type(err2, NoSpaceError);
  t.match((err2 as Error).message, /^copy kernels to the boot directory: not enough space in .*boot\/gitroot for copies of the staged kernels/);
  t.same(snapshot(n.dir, n.boot), before2, 'nothing changed, the kernel staged in D/boot removed again');
});

t.test('a held lock: LockedError naming the holder, nothing changed', async (t) => {
  const m = machine(tempDir(t, 'stage'));
  const A = commitSpec(m.base, m.repo, debianRoot(V1, 'A'));
  const child: ChildProcess = spawn(process.execPath, [DEPLOY_CHILD, 'hold', m.dir, 'gitroot fetch'], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  t.equal((await lines.next()).value, 'locked');
  const err = await stageRevision({ dir: m.dir, sha: A, bootloader: 'bls', bootDir: m.boot, tries: 3 }).catch((x: unknown) => x);
  t.type(err, LockedError);
  t.match((err as Error).message, new RegExp(`\\(pid ${child.pid}, 'gitroot fetch'\\) holds`));
  t.equal(fs.existsSync(path.join(m.dir, 'state.json')), false);
  t.same(fs.readdirSync(m.boot), []);
  child.stdin!.end('release\n');
  await new Promise((r) => child.on('exit', r));
  t.equal((await stageRevision({ dir: m.dir, sha: A, bootloader: 'bls', bootDir: m.boot, tries: 3, waitMs: 10_000 })).action, 'stage');
});
