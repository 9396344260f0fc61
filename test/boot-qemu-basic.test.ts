/**
 * Boot the good revision under QEMU: Debian's cloud kernel, an initramfs made by the real
 * mkinitramfs with gitroot's hook and boot=gitroot script, and an ext4 medium (LABEL=GITROOT)
 * holding a gitroot home whose repo has a real Debian tree committed with `gitroot commit`.
 * The guest's test init reports on the serial console: the revision it booted (from
 * /run/gitroot/booted.json) and the tree's own label, /tmp 1777, a setuid binary, a writable
 * root, a big file served after the switch to the new root, and the daemon's argv[0] and
 * oom_score_adj. Also reports the compressed initramfs size gitroot adds and the time from
 * the boot script starting to the root being mounted (from uptimes on the serial log).
 */
// needs: root debian qemu
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  LOG_DIR,
  bootGuest,
  buildInitramfs,
  buildMedium,
  ensureKernel,
  guestAppend,
  parseGuestSerial,
  qemuAvailable,
  readImageFile,
} from '../fixtures/qemu/qemu-harness.js';
import { tempDir } from './helpers/temp-dir.js';

// Typically 40-100 s; generous because TCG slows down a lot when the machine is busy.
const BOOT_TIMEOUT_MS = 600_000;

const avail = qemuAvailable();
// Under CI a missing tool is a failure (scripts/setup.sh installs them), elsewhere a skip.
const skip = avail.ok || process.env.CI === 'true' ? false : `missing ${avail.missing.join(', ')}: run scripts/setup.sh`;

t.test('QEMU: the good revision boots through initramfs-tools and git-fs', { skip }, async (t) => {
  if (!avail.ok) return t.fail(`missing ${avail.missing.join(', ')}: run scripts/setup.sh`);
  const kernel = ensureKernel();
  const initrd = buildInitramfs(kernel);
  const baseline = buildInitramfs(kernel, 'baseline');

  const dir = tempDir(t, 'qemu-basic');
  // gitroot is installed in the guest: the booted system sees its home and state.
  const { disk, sha } = buildMedium(dir, {
    label: 'good',
    gitroot: true,
    steps: {
      '50-status': `gitroot status --dir /run/gitroot/home --json > /tmp/status.json 2>/tmp/status.err || cat /tmp/status.err
echo "GITROOT-CHECK status-booted=$(node -p 'const b = require("/tmp/status.json").booted; typeof b === "string" ? b : (b && b.revision) || "none"')"
`,
    },
  });

  const r = await bootGuest({
    kernel: kernel.vmlinuz,
    initrd: initrd.path,
    disk,
    append: guestAppend(),
    timeoutMs: BOOT_TIMEOUT_MS,
    logName: 'boot-qemu-basic',
  });
  const rep = parseGuestSerial(r.serial);
  t.equal(r.exitReason, 'exited', `QEMU powered off by itself (serial log: ${r.logPath})`);
  t.same(rep.booted, { rev: sha, kind: 'good', label: 'good' }, 'GITROOT-BOOTED names the good revision and its tree label');
  t.ok(rep.done, 'the test init ran to the end');
  t.match(
    rep.checks,
    {
      'root-fs': 'gitroot:overlay',
      'lower-fs': 'fuse.gitfs',
      'tmp-mode': '1777',
      'setuid-euid': '0',
      'plain-euid': '65534',
      'root-writable': 'yes',
      'big-file': 'ok',
      'daemon-argv0': '@gitroot',
      'daemon-oom': '-1000',
    },
    'checks inside the guest',
  );
  t.match(rep.checks.home, /repo\.git,.*state\.json/, 'the home is reachable at /run/gitroot/home');
  t.equal(rep.checks['status-booted'], sha, "'gitroot status' in the booted guest reads the home and sees the booted revision");
  t.notMatch(r.serial, /Kernel panic|could not mount the root/, 'no panic');

  // After the guest: the boot recorded what it booted on the medium, before mounting.
  t.match(JSON.parse(readImageFile(disk, '/gitroot/state.json') ?? '{}'), { good: sha, booted: sha }, 'state.json on the medium: good kept, booted recorded');

  const added = initrd.bytes - baseline.bytes;
  const { start, medium: mediumUp, rootMounted, init } = rep.uptime;
  const results = {
    kernel: kernel.version,
    initramfsBytes: initrd.bytes,
    baselineBytes: baseline.bytes,
    addedBytes: added,
    bootScriptToRootS: rootMounted !== undefined && start !== undefined ? +(rootMounted - start).toFixed(2) : null,
    gitrootBootS: rootMounted !== undefined && mediumUp !== undefined ? +(rootMounted - mediumUp).toFixed(2) : null,
    rootToInitS: init !== undefined && rootMounted !== undefined ? +(init - rootMounted).toFixed(2) : null,
    stepsMs: rep.stepsMs,
    qemuMs: r.durationMs,
  };
  writeFileSync(join(LOG_DIR, 'boot-qemu-basic.json'), JSON.stringify(results, null, 2) + '\n');
  t.comment(
    `initramfs: ${(initrd.bytes / 1e6).toFixed(1)} MB with gitroot, ${(baseline.bytes / 1e6).toFixed(1)} MB without: gitroot adds ${(added / 1e6).toFixed(1)} MB (zstd)`,
  );
  t.comment(
    `TCG: boot script start -> root mounted ${results.bootScriptToRootS} s (of which gitroot boot ${results.gitrootBootS} s), root -> init ${results.rootToInitS} s; steps ${JSON.stringify(rep.stepsMs)}; QEMU ran ${(r.durationMs / 1000).toFixed(1)} s`,
  );
  t.ok(added > 0 && added <= 40e6, 'gitroot adds at most 40 MB to the compressed initramfs');
  t.ok(results.bootScriptToRootS !== null, 'the serial log shows the boot script start and the root mounted');
});
