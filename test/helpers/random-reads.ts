/**
 * Random-access read checker: reads the same (offset, length) ranges from two files and
 * compares the bytes, to catch errors whole-file hashing cannot (a FUSE read path that is
 * right from offset 0 but wrong in the middle, at chunk or pack boundaries, or at EOF).
 * The ranges come from a seeded PRNG, so a failure replays with the same seed.
 */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { mulberry32 } from './seeded-random.js';

/** Options for randomReadCompare. */
export interface RandomReadOptions {
  /** Number of ranges to read from each file. */
  reads: number;
  /** Seed of the range generator. */
  seed: number;
  /** Largest read length in bytes (default 256 KiB). */
  maxLen?: number;
}

/** Result of randomReadCompare. */
export interface RandomReadResult {
  /** Ranges read from each file. */
  reads: number;
  /** Ranges whose bytes or length differed. */
  mismatches: number;
  /** Up to 5 mismatching ranges, described, for failure messages. */
  examples: string[];
}

const KIB128 = 128 * 1024;
const MIB = 1024 * 1024;

/** One planned read. */
interface Range {
  offset: number;
  length: number;
  kind: string;
}

/**
 * Plans `count` ranges over a file of `size` bytes. The first ones are fixed (start, last
 * byte, straddling EOF, past EOF, empty); then the kinds rotate: uniform, crossing a
 * 128 KiB boundary, crossing a 1 MiB boundary, the file's tail, past EOF.
 */
export function planReads(size: number, count: number, seed: number, maxLen = 256 * 1024): Range[] {
  const rand = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const len = () => int(1, Math.max(1, maxLen));
  const crossing = (unit: number, kind: string): Range => {
    const boundaries = Math.floor((size - 1) / unit);
    if (boundaries < 1) return { offset: int(0, Math.max(0, size - 1)), length: len(), kind: 'uniform' };
    const b = unit * int(1, boundaries);
    const length = Math.max(2, len());
    const before = int(1, length - 1); // bytes read before the boundary
    return { offset: Math.max(0, b - before), length, kind };
  };
  const fixed: Range[] = [
    { offset: 0, length: Math.min(maxLen, 4096), kind: 'start' },
    { offset: Math.max(0, size - 1), length: 1, kind: 'last byte' },
    { offset: Math.max(0, size - 10), length: 100, kind: 'straddling EOF' },
    { offset: size + 1000, length: 100, kind: 'past EOF' },
    { offset: int(0, size), length: 0, kind: 'empty' },
  ];
  const ranges: Range[] = fixed.slice(0, count);
  for (let i = ranges.length; i < count; i++) {
    switch (i % 5) {
      case 0:
        ranges.push({ offset: int(0, Math.max(0, size - 1)), length: len(), kind: 'uniform' });
        break;
      case 1:
        ranges.push(crossing(KIB128, '128 KiB boundary'));
        break;
      case 2:
        ranges.push(crossing(MIB, '1 MiB boundary'));
        break;
      case 3: {
        const length = len();
        ranges.push({ offset: Math.max(0, size - int(1, length)), length, kind: 'tail' });
        break;
      }
      default:
        ranges.push({ offset: Math.max(0, size - int(0, 16) + int(0, 64)), length: len(), kind: 'past EOF' });
    }
  }
  return ranges;
}

/** Reads up to `length` bytes at `offset`, looping over short reads until EOF. */
async function readRange(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/**
 * Reads the same random ranges from two files and counts the ranges that differ in length
 * or content. Sizes come from `fileA` (the reference).
 */
export async function randomReadCompare(fileA: string, fileB: string, opts: RandomReadOptions): Promise<RandomReadResult> {
  const [fa, fb] = await Promise.all([fs.open(fileA, 'r'), fs.open(fileB, 'r')]);
  try {
    const size = Number((await fa.stat()).size);
    const ranges = planReads(size, opts.reads, opts.seed, opts.maxLen);
    let mismatches = 0;
    const examples: string[] = [];
    for (const r of ranges) {
      const [a, b] = await Promise.all([readRange(fa, r.offset, r.length), readRange(fb, r.offset, r.length)]);
      if (a.equals(b)) continue;
      mismatches++;
      if (examples.length < 5) {
        let first = 0;
        while (first < a.length && first < b.length && a[first] === b[first]) first++;
        examples.push(`${r.kind} read at ${r.offset}+${r.length}: got ${a.length} and ${b.length} bytes, first difference at offset ${r.offset + first}`);
      }
    }
    return { reads: ranges.length, mismatches, examples };
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}
