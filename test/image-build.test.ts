/**
 * `gitroot image` (lib/image) on the host: real sfdisk, mtools, mkfs.ext4, debugfs and
 * syslinux. The image is read back without mounting it (sfdisk -d, mtools, debugfs on the
 * partitions cut out with dd) and its gitroot home is unpacked and checked with the real
 * `gitroot status` and `gitroot fsck`. Also: two builds are byte-identical, the refusals leave
 * nothing behind, and an unprivileged user can make one. Booting images is
 * test/boot-qemu-image.test.ts.
 */
// needs: root git
import t from 'tap';
import type { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { gitroot, sh } from './helpers/cli.js';
import { type TreeSpec, commitSpec, fakeKernel } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';
import { initrdBootsGitroot, listInitrd } from '../lib/image/initrd-contents.js';

const V = '6.12.57+deb13-amd64';
const SYSTEMD_BOOT = '/usr/lib/systemd/boot/efi/systemd-bootx64.efi';
const GPTMBR = '/usr/lib/syslinux/mbr/gptmbr.bin';
const LDLINUX = '/usr/lib/syslinux/modules/bios/ldlinux.c32';

/** An initrd as initramfs-tools makes one: an uncompressed early cpio, then a zstd-compressed main one. */
function gitrootInitrd(dir: string, opts: { withGitroot?: boolean } = {}): Buffer {
  const early = path.join(dir, 'early');
  const main = path.join(dir, 'main');
  fs.mkdirSync(path.join(early, 'kernel', 'x86', 'microcode'), { recursive: true });
  fs.writeFileSync(path.join(early, 'kernel', 'x86', 'microcode', 'GenuineIntel.bin'), 'microcode');
  fs.mkdirSync(path.join(main, 'scripts'), { recursive: true });
  fs.writeFileSync(path.join(main, 'init'), '#!/bin/sh\n', { mode: 0o755 });
  if (opts.withGitroot !== false) {
    fs.writeFileSync(path.join(main, 'scripts', 'gitroot'), '# boot=gitroot\n');
    fs.mkdirSync(path.join(main, 'usr', 'lib', 'gitroot'), { recursive: true });
    fs.writeFileSync(path.join(main, 'usr', 'lib', 'gitroot', 'gitroot.cjs'), '// bundle\n');
  } else {
    fs.writeFileSync(path.join(main, 'scripts', 'local'), '# root=\n');
  }
  const out = path.join(dir, 'initrd.img');
  sh(`(cd ${early} && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > ${out}`);
  sh(`(cd ${main} && find . | LC_ALL=C sort | cpio -o -H newc --quiet | zstd -q -c) >> ${out}`);
  const data = fs.readFileSync(out);
  fs.rmSync(dir, { recursive: true, force: true });
  return data;
}

/** A release tree with what an image needs; `drop` leaves parts out. */
function releaseTree(work: string, drop: Array<'kernel' | 'initrd' | 'gitroot' | 'systemd-boot' | 'syslinux'> = []): TreeSpec {
  const spec: TreeSpec = {
    'etc/os-release': 'ID=debian\nVERSION_ID=13\n',
    'usr/bin/true': '#!/bin/sh\n',
  };
  if (!drop.includes('kernel')) spec[`boot/vmlinuz-${V}`] = fakeKernel('image');
  if (!drop.includes('initrd'))
    spec[`boot/initrd.img-${V}`] = gitrootInitrd(fs.mkdtempSync(path.join(work, 'initrd-')), { withGitroot: !drop.includes('gitroot') });
  if (!drop.includes('systemd-boot')) spec[SYSTEMD_BOOT.slice(1)] = fs.readFileSync(SYSTEMD_BOOT);
  if (!drop.includes('syslinux')) {
    spec[GPTMBR.slice(1)] = fs.readFileSync(GPTMBR);
    spec[LDLINUX.slice(1)] = fs.readFileSync(LDLINUX);
  }
  return spec;
}

/** Cuts partition `n` (1-based) out of `image` into a file of its own; returns its path. */
function partition(image: string, n: number, out: string): string {
  const dump = JSON.parse(sh(`sfdisk --json ${image}`)) as { partitiontable: { partitions: Array<{ start: number; size: number }> } };
  const p = dump.partitiontable.partitions[n - 1];
  sh(`dd if=${image} of=${out} bs=512 skip=${p.start} count=${p.size} status=none`);
  return out;
}

function makeRepo(t: Test, drop: Parameters<typeof releaseTree>[1] = []): { work: string; repo: string; sha: string } {
  const work = tempDir(t, 'image');
  const repo = path.join(work, 'release.git');
  const sha = commitSpec(work, repo, releaseTree(work, drop));
  return { work, repo, sha };
}

t.test('listInitrd reads an early cpio followed by a compressed one', async (t) => {
  const work = tempDir(t, 'initrd');
  const file = path.join(work, 'initrd.img');
  fs.writeFileSync(file, gitrootInitrd(path.join(work, 'build')));
  const names = await listInitrd(file);
  t.ok(names.includes('kernel/x86/microcode/GenuineIntel.bin'), 'the early archive is read');
  t.ok(names.includes('usr/lib/gitroot/gitroot.cjs'), 'the compressed archive is read');
  t.ok(initrdBootsGitroot(names));
  fs.writeFileSync(file, gitrootInitrd(path.join(work, 'build2'), { withGitroot: false }));
  t.notOk(initrdBootsGitroot(await listInitrd(file)), 'without gitroot it is not one that boots gitroot');
});

t.test('a UEFI image: GPT, ESP with systemd-boot and BLS entries, a home gitroot status accepts', async (t) => {
  const { work, repo, sha } = makeRepo(t);
  const img = path.join(work, 'disk.img');
  const r = gitroot(['image', '--repo', repo, '--rev', 'master', '-o', img, '--cmdline', 'console=ttyS0', '--json']);
  t.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  t.equal(res.revision, sha);

  const table = JSON.parse(sh(`sfdisk --json ${img}`)).partitiontable;
  t.equal(table.label, 'gpt');
  t.same(
    table.partitions.map((p: { name: string }) => p.name),
    ['GITROOT-BOOT', 'GITROOT'],
  );
  t.equal(table.partitions[0].type, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', 'the boot partition is an EFI system partition');
  t.equal(fs.statSync(img).size, res.bytes);

  const esp = partition(img, 1, path.join(work, 'esp'));
  const mtype = (p: string) => spawnSync('mtype', ['-i', esp, `::${p}`], { encoding: 'latin1', env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
  t.equal(
    Buffer.from(mtype('/EFI/BOOT/BOOTX64.EFI').stdout, 'latin1').compare(fs.readFileSync(SYSTEMD_BOOT)),
    0,
    'the removable-media boot path holds systemd-boot from the tree',
  );
  const entries = sh(`MTOOLS_SKIP_CHECK=1 mdir -b -i ${esp} ::/loader/entries`).trim().split('\n');
  t.same(
    entries.map((e) => path.basename(e)),
    [`gitroot-${sha.slice(0, 12)}.conf`],
    'one entry: the known-good revision, no boot counter',
  );
  const entry = mtype(`/loader/entries/gitroot-${sha.slice(0, 12)}.conf`).stdout;
  const dataUuid = table.partitions[1].uuid.toLowerCase();
  t.match(entry, new RegExp(`options .*boot=gitroot gitroot\\.medium=PARTUUID=${dataUuid} .*console=ttyS0 git-revision=${sha}`));
  t.match(entry, new RegExp(`linux\\s+/gitroot/${sha}/vmlinuz`));
  t.equal(Buffer.from(mtype(`/gitroot/${sha}/vmlinuz`).stdout, 'latin1').compare(fakeKernel('image')), 0, "the kernel copy is the tree's kernel");
  t.match(mtype('/loader/loader.conf').stdout, /default gitroot-\*/);

  // The data partition: the home, unpacked with debugfs and read by the real commands.
  const data = partition(img, 2, path.join(work, 'data'));
  t.match(sh(`e2fsck -fn ${data} 2>&1`), /clean|files/, 'the ext4 file system checks clean');
  t.match(sh(`dumpe2fs -h ${data} 2>/dev/null`), /Filesystem volume name:\s+GITROOT/);
  const out = path.join(work, 'unpacked');
  fs.mkdirSync(out);
  sh(`debugfs -R "rdump /gitroot ${out}" ${data} 2>/dev/null`);
  const home = path.join(out, 'gitroot');
  const owners = sh(`debugfs -R "ls -l /gitroot" ${data} 2>/dev/null`);
  t.notMatch(
    owners
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => l.trim().split(/\s+/).slice(3, 5).join(':'))
      .join(' '),
    /[1-9]/,
    'every file is owned by root',
  );
  const status = gitroot(['status', '--dir', home, '--json', '--config', path.join(work, 'no-config.conf')]);
  const statusNoConfig = status.status === 0 ? status : gitroot(['status', '--dir', home, '--json']);
  t.equal(statusNoConfig.status, 0, statusNoConfig.stderr);
  const st = JSON.parse(statusNoConfig.stdout);
  t.equal(st.good?.revision ?? st.good, sha, "status: the image's revision is known good");
  const fsck = gitroot(['fsck', '--dir', home, '--json']);
  t.equal(fsck.status, 0, `fsck of the home is clean: ${fsck.stderr}`);
  t.same(fs.readdirSync(path.join(home, 'boot', sha)).sort(), ['initrd.img', 'vmlinuz'], 'the staged kernel and initrd');
});

t.test('two builds of the same revision are byte-identical; another epoch is not', async (t) => {
  const { work, repo } = makeRepo(t);
  const a = path.join(work, 'a.img');
  const b = path.join(work, 'b.img');
  t.equal(gitroot(['image', '--repo', repo, '--rev', 'master', '-o', a]).status, 0);
  await new Promise((r) => setTimeout(r, 1100));
  t.equal(gitroot(['image', '--repo', repo, '--rev', 'master', '-o', b]).status, 0);
  t.equal(sh(`sha256sum < ${a}`), sh(`sha256sum < ${b}`), 'same sha256');
  const c = path.join(work, 'c.img');
  t.equal(gitroot(['image', '--repo', repo, '--rev', 'master', '-o', c], { env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' } }).status, 0);
  t.not(sh(`sha256sum < ${a}`), sh(`sha256sum < ${c}`), 'SOURCE_DATE_EPOCH changes the timestamps');
});

t.test('a BIOS image: syslinux installed, the GPT MBR code, extlinux entries', async (t) => {
  const { work, repo, sha } = makeRepo(t);
  const img = path.join(work, 'bios.img');
  const r = gitroot(['image', '--repo', repo, '--rev', 'master', '-o', img, '--firmware', 'bios']);
  t.equal(r.status, 0, r.stderr);
  const head = Buffer.alloc(440);
  const fd = fs.openSync(img, 'r');
  fs.readSync(fd, head, 0, 440, 0);
  fs.closeSync(fd);
  t.equal(head.compare(fs.readFileSync(GPTMBR).subarray(0, 440)), 0, 'the first 440 bytes are gptmbr.bin');
  const table = JSON.parse(sh(`sfdisk --json ${img}`)).partitiontable;
  t.match(table.partitions[0].attrs ?? '', /LegacyBIOSBootable/, 'the boot partition is marked legacy-BIOS-bootable');
  const boot = partition(img, 1, path.join(work, 'boot'));
  const files = sh(`MTOOLS_SKIP_CHECK=1 mdir -a -b -i ${boot} ::/extlinux`);
  t.match(files, /ldlinux\.sys/, 'syslinux is installed');
  t.match(files, /ldlinux\.c32/);
  const conf = sh(`MTOOLS_SKIP_CHECK=1 mtype -i ${boot} ::/extlinux/extlinux.conf`);
  t.match(conf, new RegExp(`git-revision=${sha}`));
  t.match(conf, /gitroot\.bootloader=extlinux/);
});

t.test('refusals: one line, exit 4, no image and no work files left', async (t) => {
  const cases: Array<[Parameters<typeof releaseTree>[1], string[], RegExp]> = [
    [['kernel'], [], /has no kernel/],
    [['initrd'], [], /no initrd/],
    [['gitroot'], [], /does not boot gitroot/],
    [['systemd-boot'], [], /has no usr\/lib\/systemd\/boot\/efi\/systemd-bootx64\.efi.*systemd-boot-efi/],
    [['syslinux'], ['--firmware', 'bios'], /has no usr\/lib\/syslinux\/mbr\/gptmbr\.bin/],
  ];
  for (const [drop, extra, why] of cases) {
    const { work, repo } = makeRepo(t, drop);
    const img = path.join(work, 'out.img');
    const r = gitroot(['image', '--repo', repo, '--rev', 'master', '-o', img, ...extra]);
    t.equal(r.status, 4, `${drop}: exit 4`);
    t.match(r.stderr, why, `${drop}: ${r.stderr.trim()}`);
    t.equal(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('gitroot: image: ')).length,
      1,
      `${drop}: one line`,
    );
    t.notOk(fs.existsSync(img), `${drop}: no image`);
    t.same(
      fs.readdirSync(work).filter((n) => n.startsWith('.out.img')),
      [],
      `${drop}: no work directory left`,
    );
  }
  const { work, repo } = makeRepo(t);
  const small = gitroot(['image', '--repo', repo, '--rev', 'master', '-o', path.join(work, 's.img'), '--size', '10M']);
  t.equal(small.status, 2, 'a --size too small is a usage error');
  t.match(small.stderr, /too small .* at least/);
  const badRev = gitroot(['image', '--repo', repo, '--rev', 'nope', '-o', path.join(work, 'n.img')]);
  t.equal(badRev.status, 2);
  t.match(badRev.stderr, /revision 'nope' is not a commit/);
  const badFw = gitroot(['image', '--repo', repo, '--rev', 'master', '-o', path.join(work, 'n.img'), '--firmware', 'coreboot']);
  t.equal(badFw.status, 2);
});

t.test('--size: the data partition takes the rest', async (t) => {
  const { work, repo } = makeRepo(t);
  const img = path.join(work, 'big.img');
  t.equal(gitroot(['image', '--repo', repo, '--rev', 'master', '-o', img, '--size', '2G']).status, 0);
  t.equal(fs.statSync(img).size, 2 * 1024 ** 3);
  const p = JSON.parse(sh(`sfdisk --json ${img}`)).partitiontable.partitions;
  t.equal((p[1].start + p[1].size) * 512, 2 * 1024 ** 3 - 1024 * 1024, 'the data partition ends 1 MiB before the end (the backup GPT)');
  t.ok(fs.statSync(img).blocks * 512 < 1024 ** 3, 'the file stays sparse');
});

t.test('an unprivileged user can make an image', async (t) => {
  const { work, repo } = makeRepo(t);
  sh(`chmod -R a+rX ${work} && chmod a+rwx ${work}`);
  const img = path.join(work, 'user.img');
  const r = spawnSync(
    'setpriv',
    [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      process.execPath,
      path.resolve('dist/bin/gitroot.js'),
      'image',
      '--repo',
      repo,
      '--rev',
      'master',
      '-o',
      img,
    ],
    { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: work } },
  );
  t.equal(r.status, 0, r.stderr);
  t.equal(fs.statSync(img).uid, 65534, 'made by that user');
  const root = path.join(work, 'root.img');
  t.equal(gitroot(['image', '--repo', repo, '--rev', 'master', '-o', root]).status, 0);
  t.equal(sh(`sha256sum < ${img}`), sh(`sha256sum < ${root}`), 'the same bytes as root makes');
});
