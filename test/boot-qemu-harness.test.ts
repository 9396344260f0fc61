/**
 * The QEMU harness itself (fixtures/qemu/qemu-harness.ts): a guest that never powers off is
 * killed at the timeout (by its pid) and reported as such, with what it printed so far; the
 * serial parser reads the boot script's and the test init's lines, with or without the
 * kernel's timestamp prefix.
 */
// needs: root qemu
import t from 'tap';
import { bootGuest, buildInitramfs, ensureKernel, parseGuestSerial, qemuAvailable } from '../fixtures/qemu/qemu-harness.js';

const avail = qemuAvailable();
const skip = avail.ok || process.env.CI === 'true' ? false : `missing ${avail.missing.join(', ')}: run scripts/setup.sh`;

t.test('a guest that hangs is killed at the timeout', { skip }, async (t) => {
  if (!avail.ok) return t.fail(`missing ${avail.missing.join(', ')}: run scripts/setup.sh`);
  const kernel = ensureKernel();
  const initrd = buildInitramfs(kernel, 'baseline');
  // No disk, and a root device that never appears: the initramfs waits for it (rootdelay=600).
  // (A break=top shell is no hang: it reads QEMU's stdin, /dev/null, exits, and the kernel panics.)
  const r = await bootGuest({
    kernel: kernel.vmlinuz,
    initrd: initrd.path,
    disk: [],
    append: 'console=ttyS0 root=/dev/vdz rootdelay=600 panic=1',
    timeoutMs: 8000,
    logName: 'harness-timeout',
  });
  t.equal(r.exitReason, 'timeout');
  t.ok(r.durationMs >= 8000 && r.durationMs < 40_000, `killed promptly (${r.durationMs} ms)`);
  t.match(r.serial, /Linux version/, 'the serial output so far is returned');
  t.throws(() => process.kill(r.pid, 0), { code: 'ESRCH' }, 'QEMU is gone');
});

t.test('parseGuestSerial', async (t) => {
  const rep = parseGuestSerial(
    [
      'gitroot: start [uptime 15.52]',
      'gitroot: medium LABEL=GITROOT (/dev/vda, ext4) mounted [uptime 17.02]',
      'gitroot: boot: select: 1526 ms',
      'gitroot: boot: note: git-revision=dead is not in the repository: passed over',
      'gitroot: boot: revision abc (good: known-good revision abc)',
      'gitroot: boot: serve: 900 ms',
      '[   28.54] gitroot: root mounted at /sysroot [uptime 28.59]',
      'GITROOT-INIT uptime=31.48',
      'GITROOT-BOOTED rev=abc kind=good label=good',
      'GITROOT-CHECK tmp-mode=1777',
      'GITROOT-CHECK home=repo.git,state.json,',
      'GITROOT-STEP 50-mark-good.sh start uptime=33.10',
      'GITROOT-STEP 50-mark-good.sh exit=4 uptime=35.20',
      'GITROOT-FAIL release c: its init exits',
      'GITROOT-DONE uptime=36.72',
    ].join('\n'),
  );
  t.same(rep.uptime, { start: 15.52, medium: 17.02, rootMounted: 28.59, init: 31.48 });
  t.same(rep.booted, { rev: 'abc', kind: 'good', label: 'good' });
  t.same(rep.checks, { 'tmp-mode': '1777', home: 'repo.git,state.json,' });
  t.same(rep.stepsMs, { select: 1526, serve: 900 });
  t.same(rep.bootNotes, ['note: git-revision=dead is not in the repository: passed over', 'revision abc (good: known-good revision abc)']);
  t.same(rep.stepExit, { '50-mark-good.sh': 4 });
  t.equal(rep.fail, 'release c: its init exits');
  t.ok(rep.done);
});
