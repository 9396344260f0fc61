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
export type Pkt = { kind: 'data'; payload: Buffer } | { kind: 'flush' } | { kind: 'delim' } | { kind: 'response-end' };

/** The input is not pkt-line framed (garbage, an HTML page, a cut-off stream). */
export class PktLineError extends Error {
  constructor(
    message: string,
    readonly preview: string,
  ) {
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
  return Buffer.concat(
    parts.map((p) => {
      if (p === 'flush') return FLUSH_PKT;
      if (p === 'delim') return DELIM_PKT;
      if (typeof p === 'string') return encodePktLine(p.endsWith('\n') ? p : `${p}\n`);
      return encodePktLine(p);
    }),
  );
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
  /** Unconsumed input: chunks kept by reference until a packet is complete (each byte is
   *  copied at most once, when a packet spans chunks). */
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** Total bytes fed so far. */
  bytes = 0;

  /** Decodes what `chunk` completes; returned payloads are views into the input. */
  push(chunk: Buffer): Pkt[] {
    return this.pushUntil(chunk, () => false).packets;
  }

  /**
   * Like push, but stops after the first packet for which `stop` is true and hands back the
   * bytes after it (`rest`, null if it did not stop), e.g. to switch to side-band demuxing
   * where the pack begins. The parser must not be used after it stopped.
   */
  pushUntil(chunk: Buffer, stop: (p: Pkt) => boolean): { packets: Pkt[]; rest: Buffer | null } {
    this.bytes += chunk.length;
    const out: Pkt[] = [];
    let buf = chunk;
    if (this.pendingLength > 0) {
      this.pending.push(chunk);
      this.pendingLength += chunk.length;
      if (this.pendingLength < 4) return { packets: out, rest: null };
      const head = this.pending[0].length >= 4 ? this.pending[0] : Buffer.concat(this.pending, 4);
      const need = packetLength(head, 0);
      if (this.pendingLength < need) return { packets: out, rest: null };
      buf = Buffer.concat(this.pending, this.pendingLength);
      this.pending = [];
      this.pendingLength = 0;
    }
    let pos = 0;
    while (buf.length - pos >= 4) {
      const len = packetLength(buf, pos);
      let pkt: Pkt;
      if (len < 4) {
        pkt = len === 0 ? { kind: 'flush' } : len === 1 ? { kind: 'delim' } : { kind: 'response-end' };
        pos += 4;
      } else {
        if (buf.length - pos < len) break;
        pkt = { kind: 'data', payload: buf.subarray(pos + 4, pos + len) };
        pos += len;
      }
      out.push(pkt);
      if (stop(pkt)) return { packets: out, rest: buf.subarray(pos) };
    }
    if (pos < buf.length) {
      this.pending = [buf.subarray(pos)];
      this.pendingLength = buf.length - pos;
    }
    return { packets: out, rest: null };
  }

  /** Bytes of an unfinished packet held back. */
  get pendingBytes(): number {
    return this.pendingLength;
  }

  /** Asserts the input ended on a packet boundary. */
  end(): void {
    if (this.pendingLength > 0) {
      throw new PktLineError(
        `input ends inside a pkt-line (${this.pendingLength} bytes of an unfinished packet)`,
        previewBytes(Buffer.concat(this.pending, Math.min(60, this.pendingLength))),
      );
    }
  }
}

/** Length field of the packet at `pos` (0, 1, 2 for special packets); PktLineError if malformed. */
function packetLength(buf: Buffer, pos: number): number {
  for (let i = pos; i < pos + 4; i++) {
    if (!isHexDigit(buf[i])) {
      const preview = previewBytes(buf.subarray(pos, pos + 60));
      throw new PktLineError(`not git pkt-line data (starts with "${preview}")`, preview);
    }
  }
  const len = parseInt(buf.toString('latin1', pos, pos + 4), 16);
  if (len === 3) throw new PktLineError('invalid pkt-line length 0003', '0003');
  if (len > MAX_PKT_LENGTH) {
    throw new PktLineError(`pkt-line length ${len} exceeds ${MAX_PKT_LENGTH}`, previewBytes(buf.subarray(pos, pos + 60)));
  }
  return len;
}

/** A piece of one side-band packet: band 1 pack data, 2 progress text, 3 fatal error text. */
export interface SidebandPiece {
  band: number;
  /** View into the input (a packet may arrive as several pieces). */
  data: Buffer;
  /** This piece ends its packet. */
  packetEnd: boolean;
}

/**
 * Streaming side-band demultiplexer for the pack part of an upload-pack answer: pkt-lines
 * whose first payload byte is the band, ended by a flush. Payload bytes are passed on as
 * views of the input as soon as they arrive, without waiting for (or copying into) whole
 * packets: only the 5-byte packet header is ever buffered.
 */
export class SidebandDemuxer {
  private header = Buffer.alloc(5);
  private headerFill = 0;
  /** Payload bytes (after the band byte) still to come in the current packet. */
  private remaining = 0;
  private band = 0;
  /** The closing flush was seen. */
  ended = false;
  bytes = 0;

  /** Demuxes `chunk`; after the flush, further input is ignored. */
  push(chunk: Buffer): SidebandPiece[] {
    this.bytes += chunk.length;
    const out: SidebandPiece[] = [];
    let pos = 0;
    while (pos < chunk.length && !this.ended) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - pos);
        this.remaining -= n;
        out.push({ band: this.band, data: chunk.subarray(pos, pos + n), packetEnd: this.remaining === 0 });
        pos += n;
        continue;
      }
      // Header: 4 length digits, then (for data packets) the band byte.
      const want = this.headerFill < 4 ? 4 : 5;
      const n = Math.min(want - this.headerFill, chunk.length - pos);
      chunk.copy(this.header, this.headerFill, pos, pos + n);
      this.headerFill += n;
      pos += n;
      if (this.headerFill < want) continue;
      const len = packetLength(this.header, 0);
      if (this.headerFill === 4) {
        if (len === 0) {
          this.ended = true;
          this.headerFill = 0;
          break;
        }
        if (len < 4)
          throw new PktLineError(`unexpected ${len === 1 ? 'delimiter' : 'response-end'} packet inside the pack`, previewBytes(this.header.subarray(0, 4)));
        if (len === 4) {
          this.headerFill = 0;
          continue;
        } // empty packet: keep-alive
        continue; // read the band byte
      }
      this.band = this.header[4];
      this.remaining = len - 5;
      this.headerFill = 0;
      if (this.remaining === 0) out.push({ band: this.band, data: chunk.subarray(pos, pos), packetEnd: true });
    }
    return out;
  }

  /** Bytes of an unfinished packet are still expected. */
  get midPacket(): boolean {
    return this.remaining > 0 || this.headerFill > 0;
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
