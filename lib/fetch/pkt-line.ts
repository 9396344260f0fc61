/**
 * git's pkt-line framing (gitprotocol-common(5)): every message is a 4-hex-digit length that
 * counts itself, then the payload; `0000` flush, `0001` delimiter and `0002` response-end are
 * special packets without payload. Pure encoding and decoding only: no I/O. The streaming
 * parser holds at most one partial packet (<= 65520 bytes), so a pack of any size passes
 * through it in bounded memory.
 */

/** Largest packet git sends or accepts, header included. */
export const MAX_PKT_LENGTH = 65520;
/** Largest payload of one data packet. */
export const MAX_PKT_PAYLOAD = MAX_PKT_LENGTH - 4;

export const FLUSH_PKT = Buffer.from('0000');
export const DELIM_PKT = Buffer.from('0001');
export const RESPONSE_END_PKT = Buffer.from('0002');

/** One decoded packet. Data payloads are views into the input; copy them to keep them. */
export type Pkt =
  | { kind: 'data'; payload: Buffer }
  | { kind: 'flush' }
  | { kind: 'delim' }
  | { kind: 'response-end' };

/** The input is not pkt-line framed (garbage, an HTML page, a cut-off stream). */
export class PktLineError extends Error {
  constructor(message: string, readonly preview: string) {
    super(message);
    this.name = 'PktLineError';
  }
}

/** Encodes one data packet. Text gets no newline added: pass it with its `\n`. */
export function encodePktLine(data: string | Uint8Array): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (payload.length > MAX_PKT_PAYLOAD) throw new RangeError(`pkt-line payload of ${payload.length} bytes exceeds ${MAX_PKT_PAYLOAD}`);
  const head = Buffer.from((payload.length + 4).toString(16).padStart(4, '0'), 'ascii');
  return Buffer.concat([head, payload]);
}

/** A request element: a text or binary line, or one of the special packets. */
export type PktRequestPart = string | Uint8Array | 'flush' | 'delim';

/**
 * Encodes a whole request. Strings are sent as text lines (a `\n` is appended when missing);
 * the literal strings 'flush' and 'delim' stand for the special packets.
 */
export function encodePktLines(parts: readonly PktRequestPart[]): Buffer {
  return Buffer.concat(parts.map((p) => {
    if (p === 'flush') return FLUSH_PKT;
    if (p === 'delim') return DELIM_PKT;
    if (typeof p === 'string') return encodePktLine(p.endsWith('\n') ? p : `${p}\n`);
    return encodePktLine(p);
  }));
}

/** A data payload as text, without its trailing newline. */
export function pktText(payload: Uint8Array): string {
  const end = payload.length > 0 && payload[payload.length - 1] === 0x0a ? payload.length - 1 : payload.length;
  return Buffer.from(payload.buffer, payload.byteOffset, end).toString('utf8');
}

/** Printable preview of bytes for error messages (first 60 characters, control bytes escaped). */
export function previewBytes(bytes: Uint8Array): string {
  const s = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 60)).toString('latin1');
  // eslint-disable-next-line no-control-regex
  return JSON.stringify(s.replace(/[\x00-\x1f\x7f-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)).slice(1, -1);
}

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/**
 * Incremental decoder: feed chunks with `push`, collect the packets that completed. Throws
 * PktLineError on a malformed length header; `end()` throws if a packet is left incomplete.
 */
export class PktLineParser {
  private pending: Buffer = Buffer.alloc(0);
  /** Total bytes fed so far. */
  bytes = 0;

  /** Decodes what `chunk` completes; returned payloads are views into the input. */
  push(chunk: Buffer): Pkt[] {
    this.bytes += chunk.length;
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Pkt[] = [];
    let pos = 0;
    while (buf.length - pos >= 4) {
      for (let i = pos; i < pos + 4; i++) {
        if (!isHexDigit(buf[i])) {
          throw new PktLineError(`not git pkt-line data (starts with "${previewBytes(buf.subarray(pos, pos + 60))}")`,
            previewBytes(buf.subarray(pos, pos + 60)));
        }
      }
      const len = parseInt(buf.toString('latin1', pos, pos + 4), 16);
      if (len < 4) {
        if (len === 3) throw new PktLineError('invalid pkt-line length 0003', '0003');
        out.push(len === 0 ? { kind: 'flush' } : len === 1 ? { kind: 'delim' } : { kind: 'response-end' });
        pos += 4;
        continue;
      }
      if (len > MAX_PKT_LENGTH) {
        throw new PktLineError(`pkt-line length ${len} exceeds ${MAX_PKT_LENGTH}`, previewBytes(buf.subarray(pos, pos + 60)));
      }
      if (buf.length - pos < len) break;
      out.push({ kind: 'data', payload: buf.subarray(pos + 4, pos + len) });
      pos += len;
    }
    // Keep only the unfinished tail, copied so the big chunk it came from can be freed.
    this.pending = pos >= buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
    buf = Buffer.alloc(0);
    return out;
  }

  /** Bytes of an unfinished packet held back. */
  get pendingBytes(): number {
    return this.pending.length;
  }

  /** Asserts the input ended on a packet boundary. */
  end(): void {
    if (this.pending.length > 0) {
      throw new PktLineError(`input ends inside a pkt-line (${this.pending.length} bytes of an unfinished packet)`,
        previewBytes(this.pending));
    }
  }
}

/** Decodes a complete buffer (e.g. a small response read whole). */
export function decodePktLines(buf: Buffer): Pkt[] {
  const p = new PktLineParser();
  const out = p.push(buf);
  p.end();
  return out;
}

/** Streams packets out of a byte stream; ends when the input does (use `end` semantics). */
export async function* readPktLines(source: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<Pkt, void, undefined> {
  const p = new PktLineParser();
  for await (const chunk of source) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (const pkt of p.push(buf)) yield pkt;
  }
  p.end();
}
