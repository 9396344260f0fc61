/**
 * The free-space rule (lib/prune/space-check.ts, prune-auto.ts): planSpace at and around its
 * boundary, which pack counts as "the last fetched pack" (the newest, unless the last prune
 * wrote it), and the boot medium check in copy mode against a real 2 MiB tmpfs boot directory
 * holding less room than the biggest staged kernel, refused with a one-line ENOSPACE naming
 * gitroot.boot.
 */
// needs: root
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NoSpaceError } from '../lib/errors/errors.js';
import { ensureSpaceForFetch } from '../lib/prune/prune-auto.js';
import { PACK_FACTOR, lastFetchPackBytes, measureSpace, planSpace, writePruneRecord } from '../lib/prune/space-check.js';
import { isMounted } from './helpers/cli.js';
import { noise } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';

const MIB = 1024 * 1024;

t.test('planSpace: min-free plus twice the last pack', async (t) => {
  for (const [free, minFree, pack] of [
    [0, 0, 0],
    [100 * MIB, 64, 18 * MIB],
    [100 * MIB, 64, 19 * MIB],
    [5 * MIB, 0, 2.5 * MIB],
    [5 * MIB, 0, 2.5 * MIB + 1],
  ]) {
    const p = planSpace({ free, minFreeMiB: minFree, lastPackBytes: pack });
    const needed = minFree * MIB + PACK_FACTOR * pack;
    t.equal(p.needed, needed, `needed for min-free ${minFree} MiB, pack ${pack}`);
    t.equal(p.ok, free >= needed, `ok iff free ${free} >= ${needed}`);
  }
  t.match(planSpace({ free: 1, minFreeMiB: 128, lastPackBytes: 1000 }).rule, /^gitroot\.min-free 134\.2 MB \+ 2 x last pack 1\.0 kB$/);
});

t.test('the last fetched pack: the newest, unless the last prune wrote it', async (t) => {
  const dir = tempDir(t, 'space-packs');
  const repo = path.join(dir, 'repo.git');
  const packDir = path.join(repo, 'objects', 'pack');
  fs.mkdirSync(packDir, { recursive: true });
  t.equal(lastFetchPackBytes(repo, null), 0, 'no packs: 0');
  const a = path.join(packDir, `pack-${'a'.repeat(40)}.pack`);
  const b = path.join(packDir, `pack-${'b'.repeat(40)}.pack`);
  fs.writeFileSync(a, Buffer.alloc(5000));
  fs.utimesSync(a, new Date(1000_000), new Date(1000_000));
  t.equal(lastFetchPackBytes(repo, null), 0, 'a lone pack is the installed image, not an update: 0');
  t.equal(
    lastFetchPackBytes(repo, { version: 1, at: '', pack: path.basename(a), lastFetchPackBytes: 77, bytesBefore: 0, bytesAfter: 0 }),
    77,
    'unless the last prune wrote it: then its record counts',
  );
  fs.writeFileSync(b, Buffer.alloc(300));
  t.equal(lastFetchPackBytes(repo, null), 300, 'the newest pack');
  const rec = { version: 1 as const, at: new Date().toISOString(), pack: path.basename(b), lastFetchPackBytes: 4242, bytesBefore: 0, bytesAfter: 0 };
  t.equal(lastFetchPackBytes(repo, rec), 4242, 'the prune wrote the newest: its record counts');
  t.equal(lastFetchPackBytes(repo, { ...rec, pack: path.basename(a) }), 300, 'a later fetch pack counts again');
  writePruneRecord(dir, rec);
  t.equal(measureSpace(dir, 0, null).home.needed, PACK_FACTOR * 4242, 'measureSpace reads D/prune.json');
});

t.test('boot medium in copy mode: room for the biggest staged kernel and initrd', async (t) => {
  const base = tempDir(t, 'space-boot');
  const home = path.join(base, 'home');
  const boot = path.join(base, 'boot');
  fs.mkdirSync(boot);
  const mnt = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'gitroot-test-boot', boot]);
  if (mnt.status !== 0) throw new Error(`cannot mount a tmpfs: ${mnt.stderr}`);
  t.teardown(() => {
    if (isMounted(boot)) spawnSync('umount', [boot]);
  });
  const kdir = path.join(home, 'boot', 'c'.repeat(40));
  fs.mkdirSync(kdir, { recursive: true });
  fs.writeFileSync(path.join(kdir, 'vmlinuz'), noise('k', 1500 * 1024));
  fs.writeFileSync(path.join(kdir, 'initrd.img'), noise('i', 900 * 1024));
  const report = measureSpace(home, 0, boot);
  t.ok(report.home.ok, 'the home has room');
  t.ok(report.boot !== null && !report.boot.ok, 'the 2 MiB boot medium has no room for 2.4 MB');
  t.equal(report.boot?.needed, 2400 * 1024 + MIB, 'kernel + initrd + the 1 MiB margin stage-kernel uses');
  const err = await ensureSpaceForFetch({ dir: home, minFreeMiB: 0, autoPrune: false, keep: 1, bootloader: 'bls', bootDir: boot }).catch((e) => e);
  t.ok(err instanceof NoSpaceError, 'NoSpaceError');
  t.equal(err.code, 'ENOSPACE');
  t.match(
    err.message,
    /^not enough free space for the update in the boot directory .* \(gitroot\.boot\): [\d.]+ [kM]B free, 3\.5 MB needed \(biggest staged kernel and initrd 2\.5 MB \+ margin 1\.0 MB\): free space on the boot medium or enlarge it$/,
  );
  t.notMatch(err.message, /\n/, 'one line');
  const none = await ensureSpaceForFetch({ dir: home, minFreeMiB: 0, autoPrune: false, keep: 1, bootloader: 'none', bootDir: boot });
  t.equal(none.report.boot, null, 'no boot loader: the boot medium is not checked');
  fs.mkdirSync(path.join(boot, 'sub'));
  const inside = await ensureSpaceForFetch({ dir: path.join(boot, 'sub'), minFreeMiB: 0, autoPrune: false, keep: 1, bootloader: 'bls', bootDir: boot });
  t.equal(inside.report.boot, null, 'home inside $BOOT (no copies): only the home is checked');
});
