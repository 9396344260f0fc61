/**
 * Images made by `gitroot image` boot through real firmware under QEMU: UEFI (Debian's OVMF ->
 * the tree's systemd-boot -> gitroot's BLS entry) and BIOS (SeaBIOS -> gptmbr -> syslinux ->
 * gitroot's extlinux entry), each into the revision the image holds, served by git-fs. The
 * UEFI image is written to a disk 512 MiB larger than itself, and `gitroot grow` in the guest
 * grows the medium to fill it. The guest OS is a Debian tree with the test init, not a full
 * systemd boot (which under TCG takes minutes).
 */
// needs: root git debian qemu
import t from 'tap';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  bootGuest,
  buildGuestTree,
  buildInitramfs,
  commitTree,
  ensureKernel,
  newUefiVars,
  parseGuestSerial,
  qemuAvailable,
  readImageJson,
} from '../fixtures/qemu/qemu-harness.js';
import { gitroot, sh } from './helpers/cli.js';
import { tempDir } from './helpers/temp-dir.js';

const BOOT_TIMEOUT_MS = 600_000;
const avail = qemuAvailable();
const skip = avail.ok || process.env.CI === 'true' ? false : `missing ${avail.missing.join(', ')}: run scripts/setup.sh`;

/** Partition `n` of `image` copied out to a file (to read the ext4 home with debugfs). */
function partition(image: string, n: number, out: string): string {
  const p = JSON.parse(sh(`sfdisk --json ${image}`)).partitiontable.partitions[n - 1] as { start: number; size: number };
  sh(`dd if=${image} of=${out} bs=512 skip=${p.start} count=${p.size} status=none`);
  return out;
}

t.test('QEMU: gitroot image boots through UEFI and BIOS firmware, and the medium grows to fill its disk', { skip }, async (t) => {
  if (!avail.ok) return t.fail(`missing ${avail.missing.join(', ')}: run scripts/setup.sh`);
  const kernel = ensureKernel();
  const initrd = buildInitramfs(kernel);
  const dir = tempDir(t, 'qemu-image');
  const tree = join(dir, 'tree');
  buildGuestTree(tree, {
    label: 'image',
    gitroot: true,
    include: 'fdisk',
    steps: {
      '40-grow': `gitroot grow --json > /tmp/grow.json 2>/tmp/grow.err || cat /tmp/grow.err
echo "GITROOT-CHECK grown=$(node -p 'require("/tmp/grow.json").grown' 2>/dev/null)"
echo "GITROOT-CHECK medium-mib=$(df -BM --output=size /run/gitroot/medium | tail -n1 | tr -dc 0-9)"
`,
      '45-identity': `echo "GITROOT-CHECK boot-partition=$(awk '$2 == "/efi" { print $3 }' /proc/mounts)"
echo "GITROOT-CHECK machine-id=$(cat /etc/machine-id)"
echo "GITROOT-CHECK home-machine-id=$(cat /run/gitroot/home/machine-id)"
`,
      '50-status': `gitroot status --dir /run/gitroot/home --json > /tmp/status.json 2>/tmp/status.err || cat /tmp/status.err
echo "GITROOT-CHECK status-good=$(node -p 'const g = require("/tmp/status.json").good; typeof g === "string" ? g : (g && g.revision) || "none"')"
`,
    },
  });
  // What a release carries to be imaged: its kernel and initrd, systemd-boot and syslinux.
  mkdirSync(join(tree, 'boot'), { recursive: true });
  copyFileSync(kernel.vmlinuz, join(tree, 'boot', `vmlinuz-${kernel.version}`));
  copyFileSync(initrd.path, join(tree, 'boot', `initrd.img-${kernel.version}`));
  for (const f of ['usr/lib/systemd/boot/efi/systemd-bootx64.efi', 'usr/lib/syslinux/mbr/gptmbr.bin', 'usr/lib/syslinux/modules/bios/ldlinux.c32']) {
    mkdirSync(join(tree, f, '..'), { recursive: true });
    copyFileSync(`/${f}`, join(tree, f));
  }
  const repo = join(dir, 'release.git');
  const sha = commitTree(tree, repo, 'image');
  sh(`rm -rf --one-file-system ${tree}`);
  const cmdline = 'console=ttyS0 init=/sbin/gitroot-test-init panic=1';

  const ids: string[] = [];
  for (const [firmware, boot] of [
    ['uefi', 1],
    ['uefi', 2],
    ['bios', 1],
  ] as const) {
    const img = join(dir, `${firmware}.img`);
    let bytes = 0;
    if (boot === 1) {
      const made = gitroot(['image', '--repo', repo, '--rev', sha, '-o', img, '--firmware', firmware, '--cmdline', cmdline, '--json']);
      t.equal(made.status, 0, `${firmware}: gitroot image: ${made.stderr}`);
      bytes = JSON.parse(made.stdout).bytes as number;
      // The disk the image is written to is larger than the image (a USB stick, a disk).
      if (firmware === 'uefi') sh(`truncate -s +512M ${img}`);
    }
    const what = `${firmware} boot ${boot}`;
    const r = await bootGuest({
      disk: img,
      firmware,
      uefiVars: firmware === 'uefi' ? (boot === 1 ? newUefiVars(join(dir, 'vars.fd')) : join(dir, 'vars.fd')) : undefined,
      timeoutMs: BOOT_TIMEOUT_MS,
      logName: `boot-qemu-image-${firmware}-${boot}`,
    });
    const rep = parseGuestSerial(r.serial);
    t.equal(r.exitReason, 'exited', `${what}: QEMU powered off by itself (serial log: ${r.logPath})`);
    // systemd-boot passes the initrd as initrd=\\gitroot\\..., syslinux adds BOOT_IMAGE=/gitroot/...
    // The kernel prints its command line twice ("Command line:", "Kernel command line:"); under a
    // loaded host the early serial output can drop characters, so either copy may carry it whole.
    t.match(
      r.serial,
      firmware === 'uefi'
        ? new RegExp(`ommand line: initrd=\\\\gitroot\\\\${sha}\\\\initrd\\.img `)
        : new RegExp(`ommand line: BOOT_IMAGE=/gitroot/${sha}/vmlinuz `),
      `${what}: the boot loader from the tree started gitroot's entry`,
    );
    t.same(rep.booted, { rev: sha, kind: 'good', label: 'image' }, `${what}: the image's revision booted as the known-good one`);
    t.equal(rep.checks['status-good'], sha, `${what}: gitroot status in the guest reads the home`);
    t.equal(rep.checks['boot-partition'], 'vfat', `${what}: the boot partition is mounted at /efi (gitroot.boot-medium=)`);
    t.match(rep.checks['machine-id'], /^[0-9a-f]{32}$/, `${what}: /etc/machine-id is set`);
    t.equal(rep.checks['machine-id'], rep.checks['home-machine-id'], `${what}: it is the one kept in the home`);
    ids.push(rep.checks['machine-id']);
    t.ok(rep.done, `${what}: the test init ran to the end`);
    if (firmware === 'uefi' && boot === 1) {
      t.equal(rep.checks.grown, 'true', 'gitroot grow grew the medium');
      const table = JSON.parse(sh(`sfdisk --json ${img}`)).partitiontable;
      const data = table.partitions[1] as { start: number; size: number };
      t.ok((data.start + data.size) * 512 > bytes + 500 * 1024 * 1024, 'the data partition now reaches into the added 512 MiB');
      t.ok(Number(rep.checks['medium-mib']) > 500, `the mounted ext4 grew too (${rep.checks['medium-mib']} MiB)`);
    }
    if (firmware === 'uefi' && boot === 2) t.equal(rep.checks.grown, 'false', 'the second boot has nothing to grow');
    const state = readImageJson(partition(img, 2, join(dir, `${firmware}-data.ext4`)), '/gitroot/state.json');
    t.match(state, { good: sha, booted: sha }, `${what}: state.json on the medium records the boot`);
  }
  t.equal(ids[0], ids[1], 'the same machine id at the second boot of the same disk');
  t.not(ids[0], ids[2], 'another disk made from the same image is another machine');
});
