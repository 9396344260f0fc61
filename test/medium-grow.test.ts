/**
 * Planning the growth of the medium (planGrow, pure) over the shapes a disk can have, and
 * finding the medium in a mount table. The growth itself runs on real disks under QEMU
 * (test/boot-qemu-image.test.ts).
 */
// needs: none
import t from 'tap';
import { type DiskTable, GROW_MIN_BYTES, deviceMountedAt, planGrow } from '../lib/image/medium-grow.js';

const MiB = 2048; // sectors
const table = (parts: Array<[string, number, number]>, lastlba: number, label = 'gpt'): DiskTable => ({
  label,
  lastlba,
  partitions: parts.map(([node, start, size]) => ({ node, start, size })),
});

t.test('the last partition grows to the last MiB before the backup GPT', async (t) => {
  // An image of 300 MiB written to a 1 GiB disk: the backup GPT is still at the image's end.
  const disk = 1024 * MiB;
  const p = planGrow(
    table(
      [
        ['/dev/vda1', MiB, 100 * MiB],
        ['/dev/vda2', 101 * MiB, 198 * MiB],
      ],
      300 * MiB - 34,
    ),
    '/dev/vda2',
    disk,
  );
  t.equal(p.action, 'grow');
  if (p.action !== 'grow') return;
  t.equal(p.start, 101 * MiB, 'the start never moves');
  t.equal(p.start + p.newSize, 1023 * MiB, 'ends on the last MiB boundary before the backup GPT');
  t.ok(p.start + p.newSize <= disk - 34, 'leaves room for the backup GPT');
  t.equal(p.relocate, true, 'the backup GPT must move to the disk end first');
  t.equal(p.addedBytes, (1023 - 299) * MiB * 512);
});

t.test('nothing to do: already full, not last, not GPT, unknown node, a gain too small', async (t) => {
  const disk = 1024 * MiB;
  const full = planGrow(
    table(
      [
        ['/dev/vda1', MiB, 100 * MiB],
        ['/dev/vda2', 101 * MiB, 922 * MiB],
      ],
      disk - 34,
    ),
    '/dev/vda2',
    disk,
  );
  t.same(full, { action: 'none', reason: '/dev/vda2 already fills the disk' });
  const notLast = planGrow(
    table(
      [
        ['/dev/vda1', MiB, 100 * MiB],
        ['/dev/vda2', 101 * MiB, 100 * MiB],
        ['/dev/vda3', 201 * MiB, 10 * MiB],
      ],
      300 * MiB,
    ),
    '/dev/vda2',
    disk,
  );
  t.match(notLast, { action: 'none', reason: /not the disk's last partition \(\/dev\/vda3 follow/ });
  t.match(planGrow(table([['/dev/sda1', MiB, 10 * MiB]], 0, 'dos'), '/dev/sda1', disk), { action: 'none', reason: /dos partition table, not GPT/ });
  t.match(planGrow(table([['/dev/vda1', MiB, 10 * MiB]], 300 * MiB), '/dev/vdb1', disk), { action: 'none', reason: /not in the disk's partition table/ });
  const small = planGrow(table([['/dev/vda1', MiB, 100 * MiB]], 0), '/dev/vda1', 101 * MiB + 34 + GROW_MIN_BYTES / 512 - MiB);
  t.equal(small.action, 'none', 'less than GROW_MIN_BYTES to gain');
});

t.test('every disk size from the image size up: the plan never overlaps the backup GPT and never shrinks', async (t) => {
  let checked = 0;
  for (let diskMiB = 300; diskMiB <= 4096; diskMiB += 7) {
    const disk = diskMiB * MiB + (diskMiB % 3) * 17; // not always a whole MiB
    const p = planGrow(
      table(
        [
          ['/dev/vda1', MiB, 100 * MiB],
          ['/dev/vda2', 101 * MiB, 198 * MiB],
        ],
        300 * MiB - 34,
      ),
      '/dev/vda2',
      disk,
    );
    if (p.action === 'grow') {
      if (p.start + p.newSize > disk - 34 || p.newSize <= p.size || (p.start + p.newSize) % MiB !== 0) t.fail(`disk ${disk}: ${JSON.stringify(p)}`);
      checked++;
    }
  }
  t.ok(checked > 500, `${checked} disk sizes planned`);
});

t.test('deviceMountedAt reads the last mount at a path', async (t) => {
  const info = [
    '25 1 0:21 / /run rw - tmpfs tmpfs rw',
    '40 25 254:2 / /run/gitroot/medium rw,relatime - ext4 /dev/vda2 rw',
    '41 25 0:40 / /run/gitroot/lower ro - fuse.gitfs gitroot ro',
  ].join('\n');
  t.equal(deviceMountedAt('/run/gitroot/medium', info), '/dev/vda2');
  t.equal(deviceMountedAt('/run/gitroot/lower', info), null, 'a FUSE mount is no block device');
  t.equal(deviceMountedAt('/nowhere', info), null);
});
