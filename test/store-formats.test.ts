/**
 * Unit tests of the store's format code: delta application, object parsers, object ids, both
 * inflate implementations and the delta base cache. Malformed
 * input must always raise ObjectCorruptError.
 */
// needs: none
import t from 'tap';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { applyDelta, deltaResultSize } from '../lib/store/delta.js';
import { DeltaBaseCache } from '../lib/store/delta-base-cache.js';
import { hashObject, parseCommit, parseTag, parseTree } from '../lib/store/git-objects.js';
import { isHexPrefix, isOidHex, oidFromHex, oidToHex, toOidBuffer, toOidHex } from '../lib/store/object-id.js';
import { StreamInflater, inflateExact, inflatePrefix, useInflateImplementation } from '../lib/store/zlib-inflate.js';

const CORRUPT = { code: 'ECORRUPT', name: 'ObjectCorruptError' };

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** A delta: header sizes, then copy ([offset, size]) and insert (string) instructions. */
function delta(baseSize: number, resultSize: number, ops: ([number, number] | string)[]): Buffer {
  const bytes = [...varint(baseSize), ...varint(resultSize)];
  for (const op of ops) {
    if (typeof op === 'string') {
      bytes.push(op.length, ...Buffer.from(op));
      continue;
    }
    const [off, size] = op;
    let cmd = 0x80;
    const args: number[] = [];
    for (let i = 0; i < 4; i++) {
      const b = (off >>> (8 * i)) & 0xff;
      if (b) {
        cmd |= 1 << i;
        args.push(b);
      }
    }
    for (let i = 0; i < 3; i++) {
      const b = (size >>> (8 * i)) & 0xff;
      if (b) {
        cmd |= 0x10 << i;
        args.push(b);
      }
    }
    bytes.push(cmd, ...args);
  }
  return Buffer.from(bytes);
}

t.test('applyDelta', async (t) => {
  const base = Buffer.from('The quick brown fox jumps over the lazy dog');
  const d = delta(base.length, 21, [[4, 5], ' red ', [16, 3], ' and cat']);
  t.equal(applyDelta(base, d).toString(), 'quick red fox and cat');
  t.equal(deltaResultSize(d), 21);
  const big = randomBytes(200_000);
  t.ok(
    applyDelta(big, delta(big.length, 0x10000 + 5, [[100, 0x10000], 'tail!'])).equals(Buffer.concat([big.subarray(100, 100 + 0x10000), Buffer.from('tail!')])),
    'size 0 means 0x10000',
  );

  t.throws(() => applyDelta(base, delta(base.length + 1, 5, [[0, 5]])), CORRUPT, 'base size differs');
  t.throws(() => applyDelta(base, delta(base.length, 5, [[40, 5]])), CORRUPT, 'copy beyond the base');
  t.throws(() => applyDelta(base, delta(base.length, 4, [[0, 5]])), CORRUPT, 'copy beyond the result');
  t.throws(() => applyDelta(base, delta(base.length, 6, [[0, 5]])), CORRUPT, 'result shorter than declared');
  t.throws(() => applyDelta(base, delta(base.length, 3, ['abcd'])), CORRUPT, 'insert beyond the result');
  t.throws(() => applyDelta(base, Buffer.concat([delta(base.length, 4, []), Buffer.from([4, 0x61])])), CORRUPT, 'truncated insert');
  t.throws(() => applyDelta(base, Buffer.concat([delta(base.length, 4, []), Buffer.from([0x91, 1])])), CORRUPT, 'truncated copy');
  t.throws(() => applyDelta(base, Buffer.concat([delta(base.length, 1, []), Buffer.from([0])])), CORRUPT, 'reserved instruction');
  t.throws(() => applyDelta(base, Buffer.from([0x80])), CORRUPT, 'truncated header');
  t.throws(() => deltaResultSize(Buffer.from([5, 0xff, 0xff])), CORRUPT, 'truncated result size');
});

const OID_A = Buffer.alloc(20, 0xaa);
const OID_B = Buffer.alloc(20, 0xbb);

function treeBytes(entries: [string, string, Buffer][]): Buffer {
  return Buffer.concat(entries.map(([mode, name, oid]) => Buffer.concat([Buffer.from(`${mode} ${name}\0`), oid])));
}

t.test('parseTree', async (t) => {
  const tree = parseTree(
    treeBytes([
      ['100644', 'a.txt', OID_A],
      ['40000', 'dir', OID_B],
      ['120000', 'ünï', OID_A],
    ]),
  );
  t.same(
    tree.map((e) => [e.mode, e.name, e.oid.toString('hex')]),
    [
      [0o100644, 'a.txt', OID_A.toString('hex')],
      [0o40000, 'dir', OID_B.toString('hex')],
      [0o120000, 'ünï', OID_A.toString('hex')],
    ],
  );
  t.same(parseTree(Buffer.alloc(0)), [], 'empty tree');
  for (const [what, bytes] of [
    ['bad mode digit', treeBytes([['100648', 'a', OID_A]])],
    ['empty mode', treeBytes([['', 'a', OID_A]])],
    ['dot-dot name', treeBytes([['40000', '..', OID_A]])],
    ['dot name', treeBytes([['40000', '.', OID_A]])],
    ['slash in name', treeBytes([['100644', 'a/b', OID_A]])],
    ['empty name', treeBytes([['100644', '', OID_A]])],
    ['truncated id', treeBytes([['100644', 'a', OID_A]]).subarray(0, 20)],
    ['no NUL', Buffer.from('100644 abc')],
  ] as const) {
    t.throws(() => parseTree(bytes), CORRUPT, what);
  }
});

t.test('parseCommit and parseTag', async (t) => {
  const tree = 'a'.repeat(40);
  const p1 = 'b'.repeat(40);
  const p2 = 'c'.repeat(40);
  const sig = '-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----';
  const body =
    `tree ${tree}\nparent ${p1}\nparent ${p2}\n` +
    'author A U Thor <a@example.com> 1700000000 +0100\n' +
    'committer C O Mitter <c@example.com> 1700000123 -0500\n' +
    `gpgsig ${sig.split('\n').join('\n ')}\n` +
    '\nSubject line\n\nBody ünïcödé\n';
  const c = parseCommit(Buffer.from(body));
  t.equal(c.tree, tree);
  t.same(c.parents, [p1, p2]);
  t.equal(c.author, 'A U Thor <a@example.com> 1700000000 +0100');
  t.equal(c.committerTime, 1700000123);
  t.equal(c.message, 'Subject line\n\nBody ünïcödé\n');
  t.equal(c.gpgsig, sig);
  t.equal(c.signedData?.toString(), body.replace(/gpgsig [^]*?END SSH SIGNATURE-----\n/, ''), 'signed payload drops gpgsig');
  const plain = parseCommit(Buffer.from(`tree ${tree}\nauthor A <a> 1 +0000\ncommitter C <c> 2 +0000\n\nmsg`));
  t.same(plain.parents, []);
  t.equal(plain.gpgsig, undefined);
  t.equal(plain.committerTime, 2);

  t.throws(() => parseCommit(Buffer.from('parent x\n\n')), CORRUPT, 'no tree');
  t.throws(() => parseCommit(Buffer.from(`tree ${tree}\n\nmsg`)), CORRUPT, 'no author');
  t.throws(() => parseCommit(Buffer.from(`tree nothex\nauthor A <a> 1 +0000\ncommitter C <c> 2 +0000\n\n`)), CORRUPT);
  t.throws(() => parseCommit(Buffer.from(`tree ${tree}\nauthor A <a> 1 +0000\ncommitter C <c> soon\n\n`)), CORRUPT, 'bad committer time');

  const tag = parseTag(Buffer.from(`object ${p1}\ntype commit\ntag v1.0\ntagger T <t> 5 +0000\n\nrelease\n`));
  t.same(tag, { object: p1, type: 'commit', tag: 'v1.0', tagger: 'T <t> 5 +0000', message: 'release\n' });
  t.throws(() => parseTag(Buffer.from(`object ${p1}\ntype thing\ntag v\n\n`)), CORRUPT, 'bad type');
  t.throws(() => parseTag(Buffer.from(`type commit\ntag v\n\n`)), CORRUPT, 'no object');
});

t.test('object ids', async (t) => {
  const hex = '0123456789abcdef0123456789abcdef01234567';
  t.ok(isOidHex(hex));
  t.ok(isOidHex(hex.toUpperCase()));
  t.notOk(isOidHex(hex.slice(1)));
  t.ok(isHexPrefix('abcd'));
  t.notOk(isHexPrefix('abcg'));
  t.equal(oidToHex(oidFromHex(hex)), hex);
  t.equal(toOidHex(hex.toUpperCase()), hex);
  t.equal(toOidHex(toOidBuffer(hex)), hex);
  t.throws(() => oidFromHex('xyz'), { code: 'EUSAGE' });
  t.throws(() => toOidBuffer(Buffer.alloc(19)), { code: 'EUSAGE' });
  t.equal(hashObject('blob', Buffer.from('hello\n')).toString('hex'), 'ce013625030ba8dba906f756967f9e9ca394464a', 'same id as git hash-object');
});

for (const impl of ['handle', 'portable'] as const) {
  t.test(`inflate (${impl})`, async (t) => {
    t.teardown(() => {
      useInflateImplementation('handle');
    });
    t.equal(useInflateImplementation(impl), impl);
    const data = Buffer.concat([randomBytes(300_000), Buffer.alloc(300_000, 7)]);
    const z = zlib.deflateSync(data);
    t.ok(inflateExact(z, data.length).equals(data), 'exact size');
    t.equal(inflateExact(zlib.deflateSync(Buffer.alloc(0)), 0).length, 0, 'empty');
    t.ok(inflatePrefix(z.subarray(0, 200), 16).equals(data.subarray(0, 16)), 'prefix of a cut stream');
    t.throws(() => inflateExact(z, data.length - 1), { message: /more than/ }, 'longer than declared');
    t.throws(() => inflateExact(z, data.length + 1), 'shorter than declared');
    t.throws(() => inflateExact(z.subarray(0, z.length - 10), data.length), 'truncated');
    const bad = Buffer.from(z);
    bad[bad.length - 2] ^= 0xff;
    t.throws(() => inflateExact(bad, data.length), 'bad checksum');
    t.ok(inflateExact(z, data.length).equals(data), 'still works after errors');
  });
}

t.test('stream inflater', async (t) => {
  const data = Buffer.concat([randomBytes(100_000), Buffer.alloc(500_000, 3)]);
  const z = zlib.deflateSync(data);
  /** Feeds `input` in `slice`-byte pieces through a 4 KiB output buffer. */
  const run = (input: Buffer, slice: number): { out: Buffer; ended: boolean } => {
    const inflater = StreamInflater.create();
    if (inflater === null) throw new Error('no stream inflater');
    const out = Buffer.alloc(4096);
    const parts: Buffer[] = [];
    let pos = 0;
    let ended = false;
    try {
      while (!ended) {
        const len = Math.min(slice, input.length - pos);
        const finish = pos + len >= input.length;
        let off = 0;
        do {
          const step = inflater.step(input, pos + off, len - off, out, finish);
          parts.push(Buffer.from(out.subarray(0, step.produced)));
          off += step.consumed;
          ended = step.ended;
        } while (!ended && (off < len || (finish && off === len)));
        pos += len;
      }
    } finally {
      inflater.close();
    }
    return { out: Buffer.concat(parts), ended };
  };
  t.ok(run(z, 1000).out.equals(data), 'small input slices, small output buffer');
  t.ok(run(z, z.length).out.equals(data), 'all input at once');
  t.ok(run(Buffer.concat([z, Buffer.from('trailing')]), 1000).out.equals(data), 'stops at the end of the stream');
  t.throws(() => run(z.subarray(0, z.length - 100), 1000), { message: /unexpected end/ }, 'truncated stream');
  const bad = Buffer.from(z);
  bad[bad.length - 1] ^= 1;
  t.throws(() => run(bad, 1000), 'bad checksum');
  useInflateImplementation('portable');
  t.equal(StreamInflater.create(), null, 'none under the portable implementation');
  useInflateImplementation('handle');
});

t.test('delta base cache', async (t) => {
  const cache = new DeltaBaseCache(1000);
  cache.set(1, 10, 'blob', Buffer.alloc(200));
  cache.set(1, 20, 'blob', Buffer.alloc(200));
  cache.set(2, 10, 'tree', Buffer.alloc(200));
  t.equal(cache.size, 600);
  t.equal(cache.get(2, 10)?.type, 'tree', 'keyed by pack and offset');
  cache.set(1, 30, 'blob', Buffer.alloc(251));
  t.equal(cache.get(1, 30), undefined, 'entries over a quarter of the cache are not kept');
  cache.get(1, 10);
  cache.set(1, 40, 'blob', Buffer.alloc(250));
  cache.set(1, 50, 'blob', Buffer.alloc(250));
  t.ok(cache.size <= 1000, 'bounded in bytes');
  t.equal(cache.get(1, 20), undefined, 'least recently used goes first');
  t.ok(cache.get(1, 10), 'recently used stays');
  cache.dropPack(1);
  t.equal(cache.get(1, 10), undefined);
  t.ok(cache.get(2, 10) === undefined || cache.get(2, 10)?.type === 'tree');
  cache.clear();
  t.equal(cache.size, 0);
});
