/**
 * pkt-line codec: encoding, the special packets, and the streaming parser fed the same
 * bytes split at every possible boundary (one packet may arrive in many chunks).
 */
// needs: none
import t from 'tap';
import {
  MAX_PKT_PAYLOAD,
  PktLineError,
  PktLineParser,
  SidebandDemuxer,
  decodePktLines,
  encodePktLine,
  encodePktLines,
  pktText,
  readPktLines,
  type Pkt,
} from '../lib/fetch/pkt-line.js';

const show = (pkts: Pkt[]) => pkts.map((p) => (p.kind === 'data' ? `data:${p.payload.toString('latin1')}` : p.kind));

t.test('encode', async (t) => {
  t.equal(encodePktLine('a\n').toString(), '0006a\n');
  t.equal(encodePktLine('').toString(), '0004');
  t.equal(encodePktLines(['command=ls-refs', 'delim', 'peel\n', 'flush']).toString(), '0014command=ls-refs\n00010009peel\n0000');
  t.equal(encodePktLine(Buffer.alloc(MAX_PKT_PAYLOAD)).length, 65520);
  t.throws(() => encodePktLine(Buffer.alloc(MAX_PKT_PAYLOAD + 1)), RangeError);
  t.equal(pktText(Buffer.from('x y\n')), 'x y');
  t.equal(pktText(Buffer.from('x y')), 'x y');
});

t.test('decode whole buffers, special packets', async (t) => {
  const buf = Buffer.concat([Buffer.from('0000000100020004'), encodePktLine('hello\n')]);
  t.same(show(decodePktLines(buf)), ['flush', 'delim', 'response-end', 'data:', 'data:hello\n']);
});

t.test('streaming parser: every split point gives the same packets', async (t) => {
  const bin = Buffer.from([1, 0, 255, 10, 0x50, 0x41]);
  const input = Buffer.concat([
    encodePktLine('packfile\n'),
    encodePktLine(bin),
    Buffer.from('0001'),
    encodePktLine(Buffer.alloc(1000, 7)),
    Buffer.from('0000'),
  ]);
  const expected = show(decodePktLines(input));
  for (let cut = 0; cut <= input.length; cut++) {
    for (const cut2 of [cut, Math.min(input.length, cut + 3), Math.min(input.length, cut + 700)]) {
      const p = new PktLineParser();
      const got = [...p.push(input.subarray(0, cut)), ...p.push(input.subarray(cut, cut2)), ...p.push(input.subarray(cut2))];
      p.end();
      if (JSON.stringify(show(got)) !== JSON.stringify(expected)) {
        t.fail(`split at ${cut}/${cut2} differs`);
        return;
      }
    }
  }
  t.pass('all splits agree');
});

t.test('readPktLines over an async source, one byte at a time', async (t) => {
  const input = Buffer.concat([encodePktLine('a\n'), encodePktLine('bb\n'), Buffer.from('0000')]);
  async function* bytes() {
    for (const b of input) yield Buffer.from([b]);
  }
  const out: Pkt[] = [];
  for await (const p of readPktLines(bytes())) out.push(p);
  t.same(show(out), ['data:a\n', 'data:bb\n', 'flush']);
});

t.test('garbage and truncation are PktLineErrors', async (t) => {
  t.throws(() => decodePktLines(Buffer.from('<!DOCTYPE html>')), PktLineError);
  t.throws(() => decodePktLines(Buffer.from('0003')), PktLineError);
  t.throws(() => decodePktLines(Buffer.from('fff5')), PktLineError, 'length above 65520');
  t.throws(() => decodePktLines(Buffer.from('000ahel')), PktLineError, 'cut inside a packet');
  const p = new PktLineParser();
  t.same(p.push(Buffer.from('0009ab')), []);
  t.equal(p.pendingBytes, 6);
  t.throws(() => p.end(), PktLineError);
});

t.test('side-band demuxer: pieces at every split point reassemble the bands', async (t) => {
  const pack = Buffer.concat([Buffer.from('PACK'), Buffer.alloc(3000, 0xab)]);
  const input = Buffer.concat([
    encodePktLine(Buffer.concat([Buffer.from([2]), Buffer.from('Counting objects\n')])),
    encodePktLine(Buffer.concat([Buffer.from([1]), pack.subarray(0, 1000)])),
    Buffer.from('0004'), // keep-alive
    encodePktLine(Buffer.from([1])), // empty band-1 packet
    encodePktLine(Buffer.concat([Buffer.from([1]), pack.subarray(1000)])),
    Buffer.from('0000'),
    Buffer.from('trailing garbage after the flush is ignored'),
  ]);
  for (let cut = 0; cut <= input.length; cut += 1) {
    const d = new SidebandDemuxer();
    const pieces = [...d.push(input.subarray(0, cut)), ...d.push(input.subarray(cut))];
    const band = (b: number) => Buffer.concat(pieces.filter((p) => p.band === b).map((p) => p.data));
    if (!band(1).equals(pack) || band(2).toString() !== 'Counting objects\n' || !d.ended || d.midPacket) {
      t.fail(`split at ${cut}`);
      return;
    }
  }
  t.pass('all splits agree');
  const d = new SidebandDemuxer();
  d.push(encodePktLine(Buffer.concat([Buffer.from([1]), Buffer.alloc(100)])).subarray(0, 50));
  t.ok(d.midPacket, 'cut inside a packet is visible');
  t.notOk(d.ended);
  t.throws(() => new SidebandDemuxer().push(Buffer.from('0001')), PktLineError, 'delimiter inside the pack');
  t.throws(() => new SidebandDemuxer().push(Buffer.from('<html>')), PktLineError);
  const e = new SidebandDemuxer().push(
    Buffer.concat([encodePktLine(Buffer.concat([Buffer.from([3]), Buffer.from('fatal: out of memory')])), Buffer.from('0000')]),
  );
  t.same(
    e.map((p) => [p.band, p.data.toString(), p.packetEnd]),
    [[3, 'fatal: out of memory', true]],
  );
});
