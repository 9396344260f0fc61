/**
 * SHA-1 of objects as they are inflated, to verify them against their ids. Small objects are
 * hashed inline. Large ones can be hashed on one helper thread while the main thread goes on
 * inflating: SHA-1 costs about as much CPU as inflating, so on a second core this hides most
 * of the price of verification. The helper gets the output piece by piece through a ring of
 * shared memory slots; if it ever stalls or dies, hashing falls back to inline, never to
 * unverified data.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** A running hash of one object: feed its content in order, then finish. */
export interface ObjectHash {
  update(buf: Buffer, start: number, end: number): void;
  /** The id; `content` is the whole content, used only if the helper thread failed. */
  finish(content: Buffer): Buffer;
}

/** Objects at least this big go to the helper thread (when enabled). */
export const PARALLEL_MIN_BYTES = 64 * 1024;

const SLOTS = 8;
const SLOT_BYTES = 128 * 1024;
/** Control words: produced count, consumed count, then per slot its kind and its length. */
const PRODUCED = 0;
const CONSUMED = 1;
const KIND = 2;
const LEN = KIND + SLOTS;
const CTL_WORDS = LEN + SLOTS;
const DIGEST_AT = CTL_WORDS * 4;
const RING_AT = DIGEST_AT + 32;
/** Slot kinds: a bit set of "start a new hash" and "finish it after this slot". */
const BEGIN = 1;
const END = 2;
/** How long the main thread waits for the helper before giving up on it. */
const STALL_MS = 10_000;

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { sab, SLOTS, SLOT_BYTES, PRODUCED, CONSUMED, KIND, LEN, DIGEST_AT, RING_AT, BEGIN, END } = workerData;
const ctl = new Int32Array(sab, 0, LEN + SLOTS);
const bytes = Buffer.from(sab);
let consumed = 0;
let hash = null;
for (;;) {
  if (Atomics.load(ctl, PRODUCED) === consumed) {
    Atomics.wait(ctl, PRODUCED, consumed);
    continue;
  }
  const s = consumed % SLOTS;
  const kind = ctl[KIND + s];
  const at = RING_AT + s * SLOT_BYTES;
  if (kind & BEGIN) hash = createHash('sha1');
  hash.update(bytes.subarray(at, at + ctl[LEN + s]));
  if (kind & END) { hash.digest().copy(bytes, DIGEST_AT); hash = null; }
  consumed++;
  Atomics.store(ctl, CONSUMED, consumed);
  Atomics.notify(ctl, CONSUMED);
}
`;

class HashThread {
  private readonly ctl: Int32Array;
  private readonly bytes: Buffer;
  private readonly worker: Worker;
  private produced = 0;
  /** A job is open: the ring serves one object at a time. */
  busy = false;
  broken = false;

  constructor() {
    const sab = new SharedArrayBuffer(RING_AT + SLOTS * SLOT_BYTES);
    this.ctl = new Int32Array(sab, 0, CTL_WORDS);
    this.bytes = Buffer.from(sab);
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { sab, SLOTS, SLOT_BYTES, PRODUCED, CONSUMED, KIND, LEN, DIGEST_AT, RING_AT, BEGIN, END },
      // The helper only holds a hash context: keep its heap (and our RSS) small.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
      stdout: false,
      stderr: false,
    });
    this.worker.unref();
    this.worker.on('error', () => { this.broken = true; });
    this.worker.on('exit', () => { this.broken = true; });
  }

  /** Copies [start, end) of `buf` into ring slots, waiting for free slots as needed. */
  push(buf: Buffer, start: number, end: number, begin: boolean, finish: boolean): void {
    let p = start;
    do {
      const n = Math.min(SLOT_BYTES, end - p);
      if (!this.waitConsumed(this.produced - SLOTS + 1)) return;
      const s = this.produced % SLOTS;
      buf.copy(this.bytes, RING_AT + s * SLOT_BYTES, p, p + n);
      p += n;
      this.ctl[KIND + s] = (begin ? BEGIN : 0) | (finish && p >= end ? END : 0);
      this.ctl[LEN + s] = n;
      begin = false;
      this.produced++;
      Atomics.store(this.ctl, PRODUCED, this.produced);
      Atomics.notify(this.ctl, PRODUCED);
    } while (p < end);
  }

  /** Waits for the helper to finish the job and returns its digest, or null if it failed. */
  digest(): Buffer | null {
    if (!this.waitConsumed(this.produced)) return null;
    return Buffer.from(this.bytes.subarray(DIGEST_AT, DIGEST_AT + 20));
  }

  /** Waits until at least `target` slots are consumed; false (and broken) on a stall. */
  private waitConsumed(target: number): boolean {
    if (this.broken) return false;
    let seen = Atomics.load(this.ctl, CONSUMED);
    let waited = 0;
    while (seen < target) {
      const t0 = Date.now();
      if (Atomics.wait(this.ctl, CONSUMED, seen, 100) === 'timed-out') {
        waited += Date.now() - t0;
        if (waited >= STALL_MS) {
          this.broken = true;
          void this.worker.terminate();
          return false;
        }
      }
      seen = Atomics.load(this.ctl, CONSUMED);
    }
    return true;
  }
}

let thread: HashThread | null = null;

class InlineHash implements ObjectHash {
  private readonly hash = createHash('sha1');

  constructor(header: string) {
    this.hash.update(header);
  }

  update(buf: Buffer, start: number, end: number): void {
    this.hash.update(buf.subarray(start, end));
  }

  finish(): Buffer {
    return this.hash.digest();
  }
}

class ThreadHash implements ObjectHash {
  constructor(private readonly t: HashThread, private readonly header: Buffer) {
    t.busy = true;
    t.push(header, 0, header.length, true, false);
  }

  update(buf: Buffer, start: number, end: number): void {
    if (end > start) this.t.push(buf, start, end, false, false);
  }

  finish(content: Buffer): Buffer {
    this.t.push(content, 0, 0, false, true);
    const d = this.t.digest();
    this.t.busy = false;
    return d ?? createHash('sha1').update(this.header).update(content).digest();
  }
}

let threadFailed = false;

/**
 * Starts the hash of an object of `type` and `size`: on the helper thread if `parallel` is
 * set, the object is large, and the helper is free and healthy; inline otherwise. Call
 * finish() even when giving up on the object, to free the helper.
 */
export function startObjectHash(type: string, size: number, parallel: boolean): ObjectHash {
  const header = `${type} ${size}\0`;
  if (parallel && size >= PARALLEL_MIN_BYTES && !threadFailed) {
    try {
      thread ??= new HashThread();
    } catch {
      threadFailed = true;
    }
    if (thread !== null && !thread.broken && !thread.busy) return new ThreadHash(thread, Buffer.from(header));
  }
  return new InlineHash(header);
}
