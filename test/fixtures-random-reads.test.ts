/**
 * Tests of the random-read checker (test/helpers/random-reads.ts): identical files never
 * mismatch, the planned ranges cover the boundaries and EOF cases they promise, and
 * corruptions at the last byte, past a 1 MiB boundary, sparse single bytes or a shorter
 * file are found.
 */
// needs: none
import t from 'tap';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createCipheriv } from 'node:crypto';
import { planReads, randomReadCompare } from './helpers/random-reads.js';
import { tempDir } from './helpers/temp-dir.js';

const SIZE = 3 * 1024 * 1024 + 12345;

/** Writes pseudo-random content to `a` and a copy of it to `b`; returns the content. */
async function pair(dir: string): Promise<{ a: string; b: string; data: Buffer }> {
  const data = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16)).update(Buffer.alloc(SIZE));
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  await fs.writeFile(a, data);
  await fs.writeFile(b, data);
  return { a, b, data };
}

t.test('identical files: no mismatch, reads as asked', async (t) => {
  const { a, b } = await pair(tempDir(t, 'reads'));
  const r = await randomReadCompare(a, b, { reads: 300, seed: 42 });
  t.same(r, { reads: 300, mismatches: 0, examples: [] });
});

t.test('the plan covers boundaries, the last byte and EOF', async (t) => {
  const ranges = planReads(SIZE, 200, 7, 64 * 1024);
  t.equal(ranges.length, 200);
  const crosses = (unit: number) =>
    ranges.some((r) => {
      const b = Math.ceil((r.offset + 1) / unit) * unit;
      return r.offset < b && r.offset + r.length > b && b < SIZE;
    });
  t.ok(crosses(128 * 1024), 'a read crosses a 128 KiB boundary');
  t.ok(crosses(1024 * 1024), 'a read crosses a 1 MiB boundary');
  t.ok(
    ranges.some((r) => r.offset === SIZE - 1 && r.length === 1),
    'the last byte alone',
  );
  t.ok(
    ranges.some((r) => r.offset < SIZE && r.offset + r.length > SIZE),
    'a read straddling EOF',
  );
  t.ok(
    ranges.some((r) => r.offset > SIZE),
    'a read entirely past EOF',
  );
  t.ok(
    ranges.every((r) => r.length <= 64 * 1024 && r.offset >= 0),
    'lengths within maxLen',
  );
  t.same(planReads(SIZE, 50, 7), planReads(SIZE, 50, 7), 'same seed, same plan');
  t.not(JSON.stringify(planReads(SIZE, 50, 7)), JSON.stringify(planReads(SIZE, 50, 8)), 'other seed, other plan');
  t.same(
    planReads(10, 20, 1).filter((r) => r.offset < 0),
    [],
    'a tiny file gets no negative offsets',
  );
});

t.test('the last byte changed is found', async (t) => {
  const { a, b, data } = await pair(tempDir(t, 'reads'));
  const changed = Buffer.from(data);
  changed[SIZE - 1] = changed[SIZE - 1]! ^ 1;
  await fs.writeFile(b, changed);
  const r = await randomReadCompare(a, b, { reads: 20, seed: 1 });
  t.ok(r.mismatches > 0, 'mismatch found');
  t.match(r.examples[0], `first difference at offset ${SIZE - 1}`);
});

t.test('everything after 1 MiB changed is found', async (t) => {
  const { a, b, data } = await pair(tempDir(t, 'reads'));
  const changed = Buffer.from(data);
  for (let i = 1024 * 1024; i < SIZE; i++) changed[i] = changed[i]! ^ 0x55;
  await fs.writeFile(b, changed);
  const r = await randomReadCompare(a, b, { reads: 100, seed: 3 });
  t.ok(r.mismatches > 10, `${r.mismatches} mismatches`);
});

t.test('sparse single-byte corruption is found', async (t) => {
  const { a, b, data } = await pair(tempDir(t, 'reads'));
  const changed = Buffer.from(data);
  for (let i = 4000; i < SIZE; i += 8192) changed[i] = changed[i]! ^ 0x80;
  await fs.writeFile(b, changed);
  const r = await randomReadCompare(a, b, { reads: 200, seed: 9, maxLen: 16 * 1024 });
  t.ok(r.mismatches > 20, `${r.mismatches} mismatches`);
});

t.test('a shorter file is found through EOF reads', async (t) => {
  const { a, b } = await pair(tempDir(t, 'reads'));
  await fs.truncate(b, SIZE - 1);
  const r = await randomReadCompare(a, b, { reads: 10, seed: 5 });
  t.ok(r.mismatches >= 2, 'last-byte and straddling reads mismatch');
  t.match(r.examples.join('\n'), /got 1 and 0 bytes/);
});
