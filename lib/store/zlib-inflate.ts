/**
 * zlib inflation of object data: synchronously to an exact expected size, just the first bytes
 * of a stream, or incrementally into a fixed buffer (for streaming big blobs). Owns the choice
 * between two implementations:
 *
 * - 'handle': native zlib handles driven directly: one kept for the process and reset per
 *   object, plus one per stream. Node's `zlib.inflateSync` builds a whole Transform stream per
 *   call (~10 us), the main cost of reading thousands of small objects, and its streams
 *   allocate every output chunk anew. The handles are reached through Node's internal
 *   `_handle`/`_writeState` fields, so they are feature-checked and self-tested before use.
 * - 'portable': the public `zlib` API, used when the internals are not as expected.
 *
 * Errors are thrown as InflateError with zlib's message; callers add which object failed.
 */
import zlib from 'node:zlib';

/** zlib refused the data or it did not inflate to the expected size. */
export class InflateError extends Error {}

export type InflateImplementation = 'handle' | 'portable';

interface NativeHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
  close(): void;
  onerror: (message: string, errno: number, code: string) => void;
}

interface Engine {
  handle: NativeHandle;
  /** [avail_out, avail_in] after each write. */
  state: Uint32Array;
  error: string | null;
}

const { Z_FINISH, Z_NO_FLUSH, Z_SYNC_FLUSH } = zlib.constants;

let engine: Engine | null = null;
let implementation: InflateImplementation | null = null;

/** A zlib handle taken out of a fresh Inflate stream, or null if Node's internals differ. */
function takeHandle(): Engine | null {
  const stream = new zlib.Inflate() as unknown as { _handle?: NativeHandle; _writeState?: unknown };
  const handle = stream._handle;
  const state = stream._writeState;
  if (
    handle === undefined ||
    typeof handle.writeSync !== 'function' ||
    typeof handle.reset !== 'function' ||
    typeof handle.close !== 'function' ||
    !(state instanceof Uint32Array) ||
    state.length < 2
  ) {
    return null;
  }
  const e: Engine = { handle, state, error: null };
  // Keep errors for the caller instead of letting the stream destroy itself.
  handle.onerror = (message: string) => {
    e.error = message;
  };
  return e;
}

function createEngine(): Engine | null {
  try {
    const e = takeHandle();
    if (e === null) return null;
    const state = e.state;
    // Self-test: a known stream inflates right, and a damaged one is reported.
    const sample = Buffer.from('gitroot inflate self-test gitroot inflate self-test');
    const packed = zlib.deflateSync(sample);
    const ok = run(e, Z_FINISH, packed, sample.length + 1);
    const damaged = Buffer.from(packed);
    damaged[damaged.length - 1] ^= 0xff;
    run(e, Z_FINISH, damaged, sample.length + 1);
    const caught = e.error !== null;
    e.error = null;
    return ok.subarray(0, sample.length + 1 - state[0]).equals(sample) && caught ? e : null;
  } catch {
    return null;
  }
}

function run(e: Engine, flush: number, input: Uint8Array, outLen: number): Buffer {
  const out = Buffer.allocUnsafe(outLen);
  e.error = null;
  e.handle.reset();
  e.handle.writeSync(flush, input, 0, input.byteLength, out, 0, outLen);
  return out;
}

function activeEngine(): Engine | null {
  if (implementation === null) {
    engine = createEngine();
    implementation = engine === null ? 'portable' : 'handle';
  }
  return implementation === 'handle' ? engine : null;
}

/** Which implementation is in use (chosen on first use). */
export function inflateImplementation(): InflateImplementation {
  activeEngine();
  return implementation as InflateImplementation;
}

/** Forces an implementation; tests use it to cover both. Returns the one now in use. */
export function useInflateImplementation(which: InflateImplementation): InflateImplementation {
  if (which === 'portable') {
    implementation = 'portable';
  } else {
    engine ??= createEngine();
    implementation = engine === null ? 'portable' : 'handle';
  }
  return implementation;
}

/**
 * Inflates a complete zlib stream that must produce exactly `size` bytes.
 * Throws InflateError on bad data, a truncated stream, or any other output size.
 */
export function inflateExact(input: Uint8Array, size: number): Buffer {
  const e = activeEngine();
  if (e === null) {
    let out: Buffer;
    try {
      out = zlib.inflateSync(input, { chunkSize: Math.max(64, size + 1), maxOutputLength: size + 1 });
    } catch (err) {
      throw new InflateError((err as Error).message);
    }
    if (out.length !== size) {
      throw new InflateError(out.length > size ? `inflates to more than ${size} bytes` : `inflates to ${out.length} bytes, expected ${size}`);
    }
    return out;
  }
  // One spare byte tells "exactly size" (1 byte left when the stream ends) from "more than size".
  const out = run(e, Z_FINISH, input, size + 1);
  if (e.error !== null) throw new InflateError(e.error);
  const left = e.state[0];
  if (left !== 1) {
    throw new InflateError(left === 0 ? `inflates to more than ${size} bytes` : `inflates to ${size + 1 - left} bytes, expected ${size}`);
  }
  return out.subarray(0, size);
}

/**
 * Inflates up to `max` bytes from the start of a zlib stream that may be cut short
 * (used to read headers without inflating whole objects).
 */
export function inflatePrefix(input: Uint8Array, max: number): Buffer {
  const e = activeEngine();
  if (e !== null) {
    const out = run(e, Z_SYNC_FLUSH, input, max);
    if (e.error !== null) throw new InflateError(e.error);
    return out.subarray(0, max - e.state[0]);
  }
  try {
    return zlib.inflateSync(input, { finishFlush: Z_SYNC_FLUSH }).subarray(0, max);
  } catch (err) {
    throw new InflateError((err as Error).message);
  }
}

/** Result of one StreamInflater step. */
export interface InflateStep {
  /** Bytes written at the start of the output buffer. */
  produced: number;
  /** Input bytes used. */
  consumed: number;
  /** The zlib stream has ended (its checksum verified). */
  ended: boolean;
}

/**
 * Incremental inflation on a zlib handle of its own (so it can pause across awaits while other
 * objects are inflated), writing into a caller's fixed buffer: no allocation per chunk.
 */
export class StreamInflater {
  private constructor(private readonly e: Engine) {}

  /** A new stream inflater, or null under the portable implementation. */
  static create(): StreamInflater | null {
    if (activeEngine() === null) return null;
    const e = takeHandle();
    return e === null ? null : new StreamInflater(e);
  }

  /**
   * Inflates from input[inOff, inOff + inLen) into `out`. Pass `finish` once no input follows
   * the given bytes. Throws InflateError on bad data or, with `finish`, a truncated stream.
   */
  step(input: Buffer, inOff: number, inLen: number, out: Buffer, finish: boolean): InflateStep {
    const e = this.e;
    e.error = null;
    e.handle.writeSync(finish ? Z_FINISH : Z_NO_FLUSH, input, inOff, inLen, out, 0, out.length);
    if (e.error !== null) throw new InflateError(e.error);
    const [availOut, availIn] = e.state;
    // Output room left means zlib wanted more input: with none to come (or some left unused)
    // the stream is over; with Z_FINISH a truncated stream is reported as an error instead.
    return { produced: out.length - availOut, consumed: inLen - availIn, ended: availOut > 0 && (finish || availIn > 0) };
  }

  /** Frees the zlib handle. */
  close(): void {
    this.e.handle.close();
  }
}
