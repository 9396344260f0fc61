/**
 * The one tag-peeling rule (lib/store/tag-peel.ts) over in-memory readers: chains up to
 * MAX_TAG_DEPTH tags reach their commit and one more is too deep, a tag of a tree or blob is
 * not a commit, an absent object and a tag that does not parse are named, and the
 * synchronous and asynchronous drivers agree on every case.
 */
// needs: none
import t, { type Test } from 'tap';
import { MAX_TAG_DEPTH, type PeelObject, peelTag, peelTagAsync } from '../lib/store/tag-peel.js';

const id = (n: number): string => n.toString(16).padStart(40, '0');
const tagOf = (object: string, type = 'commit'): PeelObject => ({
  type: 'tag',
  data: Buffer.from(`object ${object}\ntype ${type}\ntag v\ntagger T <t@t> 0 +0000\n\nmsg\n`),
});

/** Objects: commit 1, tree 2, a chain of `n` tags 100..100+n-1 ending at the commit. */
function chain(n: number): Map<string, PeelObject> {
  const objects = new Map<string, PeelObject>([
    [id(1), { type: 'commit', data: Buffer.alloc(0) }],
    [id(2), { type: 'tree', data: Buffer.alloc(0) }],
  ]);
  for (let i = 0; i < n; i++) objects.set(id(100 + i), tagOf(i === n - 1 ? id(1) : id(100 + i + 1), i === n - 1 ? 'commit' : 'tag'));
  return objects;
}

async function both(t: Test, objects: Map<string, PeelObject>, start: string) {
  const sync = peelTag(start, (oid) => objects.get(oid) ?? null);
  const async = await peelTagAsync(start, async (oid) => objects.get(oid) ?? null);
  t.same(async, sync, 'the async driver agrees');
  return sync;
}

t.test('a commit peels to itself, with no tag', async (t) => {
  t.same(await both(t, chain(0), id(1)), { ok: true, commit: id(1), tag: null });
});

t.test(`up to ${MAX_TAG_DEPTH} tags peel to the commit; one more is too deep`, async (t) => {
  for (const n of [1, 2, MAX_TAG_DEPTH]) t.same(await both(t, chain(n), id(100)), { ok: true, commit: id(1), tag: id(100) }, `${n} tags`);
  t.same(await both(t, chain(MAX_TAG_DEPTH + 1), id(100)), { ok: false, problem: 'too-deep', at: id(100 + MAX_TAG_DEPTH) });
});

t.test('a tree, a tag of a tree: not a commit', async (t) => {
  const objects = chain(0);
  objects.set(id(3), tagOf(id(2), 'tree'));
  t.same(await both(t, objects, id(2)), { ok: false, problem: 'not-a-commit', at: id(2), type: 'tree' });
  t.same(await both(t, objects, id(3)), { ok: false, problem: 'not-a-commit', at: id(2), type: 'tree' });
});

t.test('absent objects and tags that do not parse are named', async (t) => {
  const objects = chain(0);
  objects.set(id(3), tagOf(id(9)));
  objects.set(id(4), { type: 'tag', data: Buffer.from('no headers\n') });
  t.same(await both(t, objects, id(9)), { ok: false, problem: 'missing', at: id(9) });
  t.same(await both(t, objects, id(3)), { ok: false, problem: 'missing', at: id(9) });
  const bad = await both(t, objects, id(4));
  t.match(bad, { ok: false, problem: 'malformed', at: id(4), cause: { code: 'ECORRUPT' } });
});
