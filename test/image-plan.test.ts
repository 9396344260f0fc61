/**
 * The image layout (planImage, pure) over many sizes: partitions in order, MiB-aligned, inside
 * the disk with room for both GPTs, big enough for what they hold; identifiers derived from the
 * commit (stable, distinct, shaped like UUIDs); --size parsing and refusals.
 */
// needs: none
import t from 'tap';
import { DATA_FREE_MIB, MIB, PART_TYPE, derivedGuid, parseImageSize, planImage, sfdiskScript } from '../lib/image/image-plan.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

t.test('layout invariants over boot, kernel, home and disk sizes', async (t) => {
  let n = 0;
  for (const firmware of ['uefi', 'bios'] as const) {
    for (const bootMb of [0, 1, 30, 200]) {
      for (const kernelMb of [0, 10, 80]) {
        for (const homeMb of [0, 1, 100, 700, 5000]) {
          for (const sizeGb of [null, 1, 2, 8, 64]) {
            const inputs = {
              commit: A,
              firmware,
              bootBytes: bootMb * MIB,
              kernelBytes: kernelMb * MIB,
              homeBytes: homeMb * MIB,
              sizeBytes: sizeGb === null ? null : sizeGb * 1024 * MIB,
              epoch: 1,
            };
            let p;
            try {
              p = planImage(inputs);
            } catch (e) {
              if (sizeGb === null) throw e;
              // Refused only when it cannot fit.
              const min = planImage({ ...inputs, sizeBytes: null }).totalMib;
              if (min <= sizeGb * 1024) t.fail(`refused ${JSON.stringify(inputs)} that fits in ${min} MiB`);
              continue;
            }
            const ok =
              p.boot.startMib === 1 &&
              p.data.startMib === p.boot.startMib + p.boot.sizeMib &&
              p.data.startMib + p.data.sizeMib === p.totalMib - 1 &&
              p.boot.sizeMib * MIB >= (bootMb + 2 * kernelMb) * MIB &&
              p.boot.sizeMib >= 64 &&
              p.data.sizeMib * MIB >= homeMb * MIB + DATA_FREE_MIB * MIB &&
              (sizeGb === null || p.totalMib === sizeGb * 1024) &&
              (p.firmware === 'uefi' ? p.boot.type === PART_TYPE.esp && p.boot.attrs.length === 0 : p.boot.attrs.includes('LegacyBIOSBootable'));
            if (!ok) t.fail(`bad plan for ${JSON.stringify(inputs)}: ${JSON.stringify(p)}`);
            n++;
          }
        }
      }
    }
  }
  t.ok(n > 400, `${n} plans checked`);
});

t.test('identifiers: derived from the commit, stable, distinct, UUID-shaped', async (t) => {
  const base = { firmware: 'uefi' as const, bootBytes: 0, kernelBytes: 0, homeBytes: 0, sizeBytes: null, epoch: 0 };
  const a = planImage({ ...base, commit: A });
  t.same(planImage({ ...base, commit: A }), a, 'the same commit gives the same plan');
  const b = planImage({ ...base, commit: B });
  for (const k of ['diskGuid', 'ext4Uuid', 'ext4HashSeed', 'fatSerial'] as const) t.not(a[k], b[k], `${k} differs between commits`);
  t.not(a.boot.uuid, b.boot.uuid);
  const ids = [a.diskGuid, a.boot.uuid, a.data.uuid, a.ext4Uuid, a.ext4HashSeed].map((x) => x.toLowerCase());
  t.equal(new Set(ids).size, ids.length, 'every identifier of one image differs');
  for (const id of ids) t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.match(a.fatSerial, /^[0-9A-F]{8}$/);
  t.equal(derivedGuid(A, 'x'), derivedGuid(A, 'x'));
  const script = sfdiskScript(a);
  t.match(script, /^label: gpt\nlabel-id: /);
  t.match(script, new RegExp(`start=2048, size=${a.boot.sizeMib * 2048}, type=${PART_TYPE.esp}, uuid=${a.boot.uuid}, name="GITROOT-BOOT"`));
});

t.test('--size parsing', async (t) => {
  t.equal(parseImageSize('2G'), 2 * 1024 * MIB);
  t.equal(parseImageSize('1536M'), 1536 * MIB);
  t.equal(parseImageSize('1.5GiB'), 1536 * MIB);
  t.equal(parseImageSize('4096'), 4096);
  for (const bad of ['', 'G', '-1G', '2X', '0', 'ten']) t.throws(() => parseImageSize(bad), { code: 'EUSAGE' }, `'${bad}' is refused`);
  t.throws(() => planImage({ commit: A, firmware: 'uefi', bootBytes: 0, kernelBytes: 0, homeBytes: 0, sizeBytes: 100 * MIB, epoch: 0 }), {
    code: 'EUSAGE',
    message: /too small/,
  });
});
