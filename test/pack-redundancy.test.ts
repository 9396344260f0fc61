/**
 * planRedundantPacks (lib/prune/pack-redundancy.ts), exhaustively: every set of up to three
 * packs over three objects and of four packs over two objects, each pack in every state (intact,
 * checksum not matching its .idx, intact with a .keep, a .pack without .idx, the same with a
 * .keep), in every input order for three packs. Each answer is checked against invariants: no
 * object loses its last copy (each removed pack is covered by an intact pack that stays), no
 * pack with a .keep and no damaged pack goes, orphans are exactly the unkept .packs without an
 * .idx, nothing redundant is left, a second plan has nothing to do, and the input order does not
 * change the answer. The checker is shown to catch a planner that removes both of two equal packs.
 */
// needs: none
import t from 'tap';
import { type PackFacts, type PackRedundancy, planRedundantPacks } from '../lib/prune/pack-redundancy.js';

type State = 'intact' | 'damaged' | 'keep' | 'orphan' | 'orphan-keep';
const STATES: State[] = ['intact', 'damaged', 'keep', 'orphan', 'orphan-keep'];

interface Case {
  facts: PackFacts[];
  masks: Map<string, number>;
}

function makeCase(spec: { state: State; mask: number }[]): Case {
  const masks = new Map<string, number>();
  const facts = spec.map(({ state, mask }, i) => {
    const stem = `pack-${String(i).padStart(40, '0')}`;
    masks.set(stem, mask);
    const hasIdx = state !== 'orphan' && state !== 'orphan-keep';
    return {
      stem,
      hasPack: true,
      hasIdx,
      hasKeep: state === 'keep' || state === 'orphan-keep',
      intact: state === 'intact' || state === 'keep',
      objects: hasIdx ? popcount(mask) : 0,
      mtimeMs: 1000 + (i % 2),
    };
  });
  return { facts, masks };
}

function popcount(m: number): number {
  let n = 0;
  for (let v = m; v !== 0; v &= v - 1) n++;
  return n;
}

function plan(c: Case, facts = c.facts, planner = planRedundantPacks): PackRedundancy {
  return planner(facts, (a, b) => {
    const fa = c.facts.find((f) => f.stem === a)!;
    const fb = c.facts.find((f) => f.stem === b)!;
    if (!fa.intact || !fb.intact || a === b) throw new Error(`covers asked about ${a}, ${b}`);
    const ma = c.masks.get(a)!;
    return (ma & c.masks.get(b)!) === ma;
  });
}

/** The invariants; returns the first one broken, or null. */
function check(c: Case, r: PackRedundancy): string | null {
  const removed = new Set([...r.redundant.map((x) => x.stem), ...r.orphans]);
  const byStem = new Map(c.facts.map((f) => [f.stem, f]));
  const readable = (f: PackFacts) => f.hasIdx && f.hasPack;
  for (const { stem, coveredBy } of r.redundant) {
    const f = byStem.get(stem)!;
    const cover = byStem.get(coveredBy)!;
    if (f.hasKeep) return `${stem} has a .keep`;
    if (!f.intact) return `${stem} is not intact`;
    if (!readable(f)) return `${stem} has no .idx`;
    if (removed.has(coveredBy) || !cover.intact || !readable(cover)) return `${stem}'s cover ${coveredBy} does not stay intact`;
    const m = c.masks.get(stem)!;
    if ((m & c.masks.get(coveredBy)!) !== m) return `${coveredBy} does not hold every object of ${stem}`;
  }
  let before = 0;
  let after = 0;
  for (const f of c.facts) {
    if (!readable(f)) continue;
    before |= c.masks.get(f.stem)!;
    if (!removed.has(f.stem)) after |= c.masks.get(f.stem)!;
  }
  if (before !== after) return 'an object lost its last copy';
  const orphans = c.facts
    .filter((f) => f.hasPack && !f.hasIdx && !f.hasKeep)
    .map((f) => f.stem)
    .sort();
  if (JSON.stringify(orphans) !== JSON.stringify(r.orphans)) return `orphans ${r.orphans} should be ${orphans}`;
  const left = c.facts.filter((f) => !removed.has(f.stem));
  for (const a of left) {
    if (!readable(a) || !a.intact || a.hasKeep) continue;
    for (const b of left) {
      if (b === a || !readable(b) || !b.intact) continue;
      const m = c.masks.get(a.stem)!;
      if ((m & c.masks.get(b.stem)!) === m) return `${a.stem} is left though ${b.stem} holds all of it`;
    }
  }
  const again = plan(c, left);
  if (again.redundant.length + again.orphans.length > 0) return 'a second plan still removes packs';
  return null;
}

function* specs(packs: number, objects: number): Generator<{ state: State; mask: number }[]> {
  const options: { state: State; mask: number }[] = [];
  for (const state of STATES) for (let mask = 0; mask < 1 << objects; mask++) options.push({ state, mask });
  const rec = function* (prefix: { state: State; mask: number }[]): Generator<{ state: State; mask: number }[]> {
    if (prefix.length === packs) {
      yield prefix;
      return;
    }
    for (const o of options) yield* rec([...prefix, o]);
  };
  yield* rec([]);
}

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

const canonical = (r: PackRedundancy) => JSON.stringify({ redundant: [...r.redundant].sort((a, b) => (a.stem < b.stem ? -1 : 1)), orphans: r.orphans });

t.test('every case of up to 3 packs over 3 objects, in every input order', (t) => {
  let cases = 0;
  let failures = 0;
  let removedSome = 0;
  for (let n = 0; n <= 3; n++) {
    for (const spec of specs(n, 3)) {
      const c = makeCase(spec);
      const r = plan(c);
      cases++;
      if (r.redundant.length > 0) removedSome++;
      const bad = check(c, r);
      const orderBad = permutations(c.facts).some((p) => canonical(plan(c, p)) !== canonical(r));
      if (bad !== null || orderBad) {
        if (failures++ < 5) t.fail(`${JSON.stringify(spec)}: ${bad ?? 'depends on the input order'}`);
      }
    }
  }
  t.equal(failures, 0, `${cases} cases, ${removedSome} with redundant packs`);
  t.ok(removedSome > 1000, 'many cases do remove packs');
  t.end();
});

t.test('every case of 4 packs over 2 objects', (t) => {
  let cases = 0;
  let failures = 0;
  for (const spec of specs(4, 2)) {
    const c = makeCase(spec);
    const bad = check(c, plan(c));
    cases++;
    if (bad !== null && failures++ < 5) t.fail(`${JSON.stringify(spec)}: ${bad}`);
  }
  t.equal(failures, 0, `${cases} cases`);
  t.end();
});

t.test('the state a cut repack leaves: the old packs go, the new one stays', (t) => {
  // Old image pack (objects 1,2), old fetched pack (4), new all-objects pack (1,2,4), a kept pack (2).
  const c = makeCase([
    { state: 'intact', mask: 0b011 },
    { state: 'intact', mask: 0b100 },
    { state: 'intact', mask: 0b111 },
    { state: 'keep', mask: 0b010 },
  ]);
  const r = plan(c);
  t.same(r.redundant.map((x) => [x.stem.slice(-1), x.coveredBy.slice(-1)]).sort(), [
    ['0', '2'],
    ['1', '2'],
  ]);
  t.same(r.orphans, []);
  // Equal packs: exactly one goes, and a damaged copy never goes nor covers.
  const eq = makeCase([
    { state: 'intact', mask: 0b11 },
    { state: 'intact', mask: 0b11 },
    { state: 'damaged', mask: 0b11 },
  ]);
  t.equal(plan(eq).redundant.length, 1, 'one of two equal packs');
  t.same(
    plan(
      makeCase([
        { state: 'damaged', mask: 0b11 },
        { state: 'intact', mask: 0b01 },
      ]),
    ).redundant,
    [],
    'a damaged pack covers nothing',
  );
  t.end();
});

t.test('the checker catches a planner that removes every pack another one covers', (t) => {
  const naive: typeof planRedundantPacks = (packs, covers) => ({
    redundant: packs
      .filter((p) => p.hasIdx && p.intact && !p.hasKeep)
      .flatMap((p) =>
        packs
          .filter((b) => b !== p && b.hasIdx && b.intact && covers(p.stem, b.stem))
          .slice(0, 1)
          .map((b) => ({ stem: p.stem, coveredBy: b.stem })),
      ),
    orphans: packs
      .filter((p) => p.hasPack && !p.hasIdx && !p.hasKeep)
      .map((p) => p.stem)
      .sort(),
  });
  const c = makeCase([
    { state: 'intact', mask: 0b11 },
    { state: 'intact', mask: 0b11 },
  ]);
  t.match(check(c, plan(c, c.facts, naive)), /does not stay intact|lost its last copy/);
  const k = makeCase([
    { state: 'keep', mask: 0b1 },
    { state: 'intact', mask: 0b1 },
  ]);
  t.match(check(k, { redundant: [{ stem: k.facts[0].stem, coveredBy: k.facts[1].stem }], orphans: [] }), /has a \.keep/);
  t.match(check(k, { redundant: [], orphans: [] }), /is left though/);
  t.end();
});
