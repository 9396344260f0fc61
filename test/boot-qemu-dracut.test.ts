/**
 * The dracut module (initramfs-hooks/dracut/95gitroot) under QEMU: an initramfs made by the
 * real dracut (shell init, no systemd) with only base, udev-rules and gitroot, booted with
 * root=gitroot gitroot.medium=LABEL=GITROOT. The good revision boots with the same checks as
 * the initramfs-tools test. Debian boots with initramfs-tools, so dracut (dracut-core) is
 * installed by scripts/setup.sh only for this test; without it the test is skipped.
 */
// needs: root debian qemu
import t from 'tap';
import {
  bootGuest,
  buildInitramfs,
  buildMedium,
  dracutAvailable,
  ensureKernel,
  guestAppend,
  parseGuestSerial,
  qemuAvailable,
} from '../fixtures/qemu/qemu-harness.js';
import { tempDir } from './helpers/temp-dir.js';

const avail = qemuAvailable();
const ci = process.env.CI === 'true';
const skip =
  !avail.ok && !ci
    ? `missing ${avail.missing.join(', ')}: run scripts/setup.sh`
    : !dracutAvailable() && !ci
      ? 'dracut is not installed (apt-get install dracut-core)'
      : false;

t.test('QEMU: the good revision boots through the dracut module', { skip }, async (t) => {
  if (!avail.ok) return t.fail(`missing ${avail.missing.join(', ')}: run scripts/setup.sh`);
  if (!dracutAvailable()) return t.fail('dracut is missing: run scripts/setup.sh (dracut-core)');
  const kernel = ensureKernel();
  const initrd = buildInitramfs(kernel, 'dracut');
  const dir = tempDir(t, 'qemu-dracut');
  const { disk, sha } = buildMedium(dir, { label: 'dracut-good' });
  const r = await bootGuest({
    kernel: kernel.vmlinuz,
    initrd: initrd.path,
    disk,
    append: guestAppend('', 'dracut'),
    timeoutMs: 600_000,
    logName: 'boot-qemu-dracut',
  });
  const rep = parseGuestSerial(r.serial);
  t.equal(r.exitReason, 'exited', `QEMU powered off by itself (serial log: ${r.logPath})`);
  t.same(rep.booted, { rev: sha, kind: 'good', label: 'dracut-good' }, 'GITROOT-BOOTED names the good revision');
  t.ok(rep.done, 'the test init ran to the end');
  t.match(
    rep.checks,
    {
      'root-fs': 'gitroot:overlay',
      'lower-fs': 'fuse.gitfs',
      'tmp-mode': '1777',
      'setuid-euid': '0',
      'root-writable': 'yes',
      'big-file': 'ok',
      'daemon-argv0': '@gitroot',
      'daemon-oom': '-1000',
    },
    'checks inside the guest',
  );
  t.match(r.serial, /dracut: Mounted root filesystem gitroot/, 'dracut took the root from the mount hook');
  t.match(r.serial, /gitroot: medium \S+ checked \(fsck [01]\)/, 'the medium was checked by e2fsck (fs-lib) before the read-write mount');
  const { start, rootMounted } = rep.uptime;
  t.comment(
    `dracut initramfs ${(initrd.bytes / 1e6).toFixed(1)} MB (zstd); TCG: module start -> root mounted ${rootMounted !== undefined && start !== undefined ? (rootMounted - start).toFixed(2) : '?'} s; QEMU ran ${(r.durationMs / 1000).toFixed(1)} s`,
  );
});
