/**
 * An update and a failed update under QEMU, as one machine's life on one disk image:
 *
 *   release a (good) -> the host, acting as the machine's previous boot, runs `gitroot fetch`
 *   on the medium's home from a real `git http-backend` on 127.0.0.1 and stages release b ->
 *   boot 1: b boots as the pending revision, its steps run `gitroot mark-good` -> b is good.
 *   The host stages release c with gitroot.tries=2; c's init exits (the kernel panics) ->
 *   boots 2 and 3: c boots, each boot using one try -> boot 4: its tries are used up, it is
 *   recorded as failed and the good b boots again; `gitroot status --json` in the guest shows
 *   the failure. Finally a fetch on the host refuses to stage c again.
 *
 * Each boot is judged from its serial console (what booted, of which kind, the decision's
 * reason, the steps' results) and from state.json read off the disk image afterwards. The
 * boot times of every boot go to /tmp/gitroot-qemu-logs/boot-qemu-update.json.
 */
// needs: root git server debian qemu
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGitHttpServer } from '../fixtures/git-http-server.js';
import {
  STEP_MARK_GOOD,
  STEP_STATUS,
  SCENARIO_PACKAGES,
  type BootTimings,
  bootGuest,
  bootTimings,
  buildDiskImage,
  buildGuestTree,
  buildInitramfs,
  commitTree,
  ensureKernel,
  guestAppend,
  parseGuestSerial,
  qemuAvailable,
  readImageJson,
  reviseGuestTree,
  statusOf,
  withImageMounted,
  writeHomeState,
  writeTimings,
} from '../fixtures/qemu/qemu-harness.js';
import { gitrootAsync, sh } from './helpers/cli.js';
import { tempDir } from './helpers/temp-dir.js';

// Typically 40-100 s a boot; generous because TCG slows down a lot when the machine is busy.
const BOOT_TIMEOUT_MS = 600_000;

const avail = qemuAvailable();
// Under CI a missing tool is a failure (scripts/setup.sh installs them), elsewhere a skip.
const skip = avail.ok || process.env.CI === 'true' ? false : `missing ${avail.missing.join(', ')}: run scripts/setup.sh`;
// Four boots: more than tap's default file timeout on a loaded machine.
t.setTimeout(40 * 60_000);

interface State {
  good: string | null;
  pending: { revision: string; triesLeft: number; tries: number } | null;
  booted: string | null;
  failed: string[];
  previousGood: string[];
}

t.test('QEMU: a staged revision boots and is marked good; a failing one is retried, then the good one boots again', { skip }, async (t) => {
  if (!avail.ok) return t.fail(`missing ${avail.missing.join(', ')}: run scripts/setup.sh`);
  const kernel = ensureKernel();
  const initrd = buildInitramfs(kernel);
  const dir = tempDir(t, 'qemu-update');

  // Release a: what the machine was installed with (good). The steps of each release are
  // part of its tree, like the units of a real image.
  const tree = join(dir, 'tree');
  buildGuestTree(tree, { label: 'a', gitroot: true, include: SCENARIO_PACKAGES, steps: { '60-status': STEP_STATUS } });
  const content = join(dir, 'medium');
  const home = join(content, 'gitroot');
  const shaA = commitTree(tree, join(home, 'repo.git'), 'release a');
  writeHomeState(home, { good: shaA });
  const disk = join(dir, 'disk.img');
  // Room for the fetches: gitroot keeps gitroot.min-free plus twice the last pack free.
  buildDiskImage(content, disk, { freeMb: 1024 });

  // The update server: the fleet's repository (release a, then the new releases), served by
  // real git http-backend on 127.0.0.1.
  const srvRoot = join(dir, 'srv');
  mkdirSync(srvRoot);
  sh(`git clone --quiet --bare ${home}/repo.git ${srvRoot}/os.git`);
  const server = await startGitHttpServer({ projectRoot: srvRoot });
  t.teardown(() => server.close());
  const confDir = join(dir, 'etc-gitroot');
  mkdirSync(confDir);

  /** The host acting as the machine's previous boot: `gitroot fetch` on the medium's home. */
  const hostFetch = (settings: string) =>
    withImageMounted(disk, async (mnt) => {
      const cmdline = join(dir, 'cmdline');
      writeFileSync(cmdline, `gitroot.remote=${server.url('os.git')} ${settings}\n`);
      const r = await gitrootAsync(['fetch', '--dir', join(mnt, 'gitroot'), '--cmdline', cmdline, '--config', confDir, '--json']);
      return { status: r.status, stderr: r.stderr, out: r.status === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : null };
    });
  const state = (): State => readImageJson<State>(disk, '/gitroot/state.json')!;
  const timings: BootTimings[] = [];
  const boot = async (name: string) => {
    const r = await bootGuest({
      kernel: kernel.vmlinuz,
      initrd: initrd.path,
      disk,
      append: guestAppend(),
      timeoutMs: BOOT_TIMEOUT_MS,
      logName: `boot-qemu-update-${name}`,
    });
    const rep = parseGuestSerial(r.serial);
    timings.push(bootTimings(name, rep, r));
    return { r, rep };
  };

  // 1. Update: release b staged by the host, booted as pending, marked good inside the guest.
  reviseGuestTree(tree, { label: 'b', steps: { '50-mark-good': STEP_MARK_GOOD, '60-status': STEP_STATUS } });
  const shaB = commitTree(tree, join(srvRoot, 'os.git'), 'release b');
  const fb = await hostFetch('');
  t.equal(fb.status, 0, `host fetch of b succeeds${fb.status === 0 ? '' : `: ${fb.stderr.trim()}`}`);
  t.match(fb.out, { action: 'staged', revision: shaB }, 'the host staged b');
  if (fb.status !== 0) return; // nothing to boot
  t.match(state(), { good: shaA, pending: { revision: shaB, triesLeft: 3, tries: 3 } }, 'before boot 1: b pending with 3 tries');

  {
    const { r, rep } = await boot('1-update');
    t.equal(r.exitReason, 'exited', `boot 1 powered off by itself (serial log: ${r.logPath})`);
    t.same(rep.booted, { rev: shaB, kind: 'pending', label: 'b' }, 'boot 1: the staged b boots, as the pending revision');
    t.ok(
      rep.bootNotes.some((n) => n.includes(`revision ${shaB} (pending: pending revision ${shaB}: try 1 of 3`)),
      'the boot log says why: try 1 of 3',
    );
    t.equal(rep.checks['mark-good-exit'], '0', 'gitroot mark-good in the guest succeeds');
    t.ok(rep.done, 'the test init ran to the end');
    t.match(statusOf(rep), { booted: shaB, good: shaB, pending: null }, "'gitroot status' in the guest after mark-good: b is good, nothing pending");
    t.match(
      state(),
      { good: shaB, pending: null, booted: shaB, previousGood: [shaA], failed: [] },
      'state.json on the image: good=b, pending=null, a kept as previous good',
    );
  }

  // 2. A failing release c with 2 tries: each boot uses one, then b boots again.
  reviseGuestTree(tree, {
    label: 'c',
    steps: { '50-mark-good': STEP_MARK_GOOD, '60-status': STEP_STATUS },
    files: { 'etc/gitroot-test-fail': 'release c: its init exits before the system is up' },
  });
  const shaC = commitTree(tree, join(srvRoot, 'os.git'), 'release c');
  const fc = await hostFetch('gitroot.tries=2');
  t.equal(fc.status, 0, `host fetch of c succeeds${fc.status === 0 ? '' : `: ${fc.stderr.trim()}`}`);
  t.match(fc.out, { action: 'staged', revision: shaC }, 'the host staged c');
  if (fc.status !== 0) return;
  t.match(state(), { good: shaB, pending: { revision: shaC, triesLeft: 2, tries: 2 } }, 'before boot 2: c pending with 2 tries');

  for (const n of [1, 2]) {
    const { r, rep } = await boot(`${n + 1}-failing-try-${n}`);
    t.equal(r.exitReason, 'exited', `boot ${n + 1} ended by itself: c's init died and the kernel rebooted (serial log: ${r.logPath})`);
    t.same(rep.booted, { rev: shaC, kind: 'pending', label: 'c' }, `boot ${n + 1}: c boots as the pending revision`);
    t.ok(
      rep.bootNotes.some((x) => x.includes(`pending revision ${shaC}: try ${n} of 2 (${2 - n} left`)),
      `the boot log says try ${n} of 2`,
    );
    t.match(rep.fail, /release c/, "c's init reports its failure");
    t.match(r.serial, /Kernel panic - not syncing: Attempted to kill init/, "the kernel panicked when c's init exited");
    t.notOk(rep.done, 'c never completed a boot');
    t.match(
      state(),
      { good: shaB, booted: shaC, pending: { revision: shaC, triesLeft: 2 - n, tries: 2 }, failed: [] },
      `state.json after boot ${n + 1}: ${2 - n} tries left`,
    );
  }

  {
    const { r, rep } = await boot('4-back-to-good');
    t.equal(r.exitReason, 'exited', `boot 4 powered off by itself (serial log: ${r.logPath})`);
    t.same(rep.booted, { rev: shaB, kind: 'good', label: 'b' }, 'boot 4: the good b boots again');
    t.ok(
      rep.bootNotes.some((x) => x.includes(`pending revision ${shaC} used up its 2 tries without being marked good: recorded as failed`)),
      'the boot log says c used up its tries and is recorded as failed',
    );
    t.ok(rep.done, 'the test init ran to the end');
    t.match(statusOf(rep), { booted: shaB, good: shaB, pending: null, failed: [shaC] }, "'gitroot status --json' in the guest shows c failed");
    t.match(
      state(),
      { good: shaB, booted: shaB, pending: null, failed: [shaC], previousGood: [shaA] },
      'state.json on the image: c failed, b good, nothing pending',
    );
  }

  // The fetcher does not stage the failed revision again (the server still offers c).
  const again = await hostFetch('');
  t.not(again.out?.action, 'staged', `a later fetch does not stage c again: ${again.out?.action ?? again.stderr.trim()}`);
  t.match(state(), { good: shaB, pending: null, failed: [shaC] }, 'state.json unchanged by that fetch');

  for (const line of writeTimings('boot-qemu-update', timings)) t.comment(line);
});
