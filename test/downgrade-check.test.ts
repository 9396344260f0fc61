/**
 * planDowngradeCheck, exhaustively: every DAG of up to 4 commits (each commit's parents any
 * subset of the earlier ones); every subset of unreadable commits up to 3 commits, none or
 * any one of them for 4; every tip; every booted/good/pending assignment (absent or any commit);
 * branch tip or pin; allow-downgrade on or off. Each verdict is compared with an independent
 * oracle (reachability by recursion over the parent lists, not a walk). Then named shapes.
 */
// needs: none
import t from 'tap';
import { type DowngradeVerdict, type HeldRevision, ancestorsAmong, heldRevisions, planDowngradeCheck } from '../lib/trust/downgrade-check.js';

const ids = (n: number): string[] =>
  Array.from({ length: n }, (_, i) =>
    String(i + 1)
      .repeat(40)
      .slice(0, 40),
  );

/** Every parent-list assignment of `n` commits where commit i's parents are a subset of 0..i-1. */
function* dags(n: number): Generator<number[][]> {
  const total = 2 ** ((n * (n - 1)) / 2);
  for (let code = 0; code < total; code++) {
    const parents: number[][] = [];
    let bit = 0;
    for (let i = 0; i < n; i++) {
      const ps: number[] = [];
      for (let j = 0; j < i; j++, bit++) if (code & (1 << bit)) ps.push(j);
      parents.push(ps);
    }
    yield parents;
  }
}

/** Commits reachable from `i` (itself included), not looking past unreadable ones: the oracle. */
function reach(i: number, parents: number[][], unreadable: Set<number>, memo: Map<number, Set<number>>): Set<number> {
  const hit = memo.get(i);
  if (hit) return hit;
  const out = new Set<number>([i]);
  if (!unreadable.has(i)) for (const p of parents[i]) for (const x of reach(p, parents, unreadable, memo)) out.add(x);
  memo.set(i, out);
  return out;
}

const ROLES = ['booted', 'good', 'pending'] as const;

function expected(
  tip: number,
  held: Array<number | null>,
  target: 'branch' | 'pin',
  allow: boolean,
  r: Set<number>,
  unreadable: Set<number>,
): {
  action: string;
  why: string;
  missing: number[];
  unreadable: number[];
} {
  const present = held.map((h, k) => ({ h, k })).filter((x) => x.h !== null) as Array<{ h: number; k: number }>;
  if (target === 'pin') return { action: 'allow', why: 'pinned', missing: [], unreadable: [] };
  if (present.length === 0) return { action: 'allow', why: 'no-history', missing: [], unreadable: [] };
  if (present.some((x) => x.h === tip)) return { action: 'allow', why: 'up-to-date', missing: [], unreadable: [] };
  const missing = [...new Set(present.filter((x) => !r.has(x.h)).map((x) => x.h))];
  if (missing.length === 0) return { action: 'allow', why: 'descendant', missing, unreadable: [] };
  if (allow) return { action: 'allow', why: 'allowed-downgrade', missing, unreadable: [] };
  return { action: 'refuse', why: 'downgrade', missing, unreadable: [...r].filter((x) => unreadable.has(x)).sort() };
}

t.test('exhaustive over small DAGs, unreadable commits, held revisions and flags', async (t) => {
  let cases = 0;
  let mismatches = 0;
  const counts: Record<string, number> = {};
  let firstMismatch = '';
  for (const n of [1, 2, 3, 4]) {
    const shas = ids(n);
    // Unreadable subsets: all of them up to 3 commits; none or a single one for 4.
    const masks = n <= 3 ? Array.from({ length: 2 ** n }, (_, m) => m) : [0, ...Array.from({ length: n }, (_, i) => 1 << i)];
    for (const parents of dags(n)) {
      for (const mask of masks) {
        const unreadable = new Set(Array.from({ length: n }, (_, i) => i).filter((i) => mask & (1 << i)));
        const parentsFn = (sha: string): string[] | null => {
          const i = shas.indexOf(sha);
          if (i < 0 || unreadable.has(i)) return null;
          return parents[i].map((p) => shas[p]);
        };
        const memo = new Map<number, Set<number>>();
        for (let tip = 0; tip < n; tip++) {
          const r = reach(tip, parents, unreadable, memo);
          const choices = [null, ...Array.from({ length: n }, (_, i) => i)];
          for (const b of choices)
            for (const g of choices)
              for (const p of choices) {
                const held = [b, g, p];
                const heldRevs: HeldRevision[] = held.flatMap((h, k) => (h === null ? [] : [{ role: ROLES[k], sha: shas[h] }]));
                for (const [target, allow] of [
                  ['branch', false],
                  ['branch', true],
                  ['pin', false],
                ] as const) {
                  cases++;
                  const v: DowngradeVerdict = planDowngradeCheck({ tip: shas[tip], target, held: heldRevs, allowDowngrade: allow, parents: parentsFn });
                  const e = expected(tip, held, target, allow, r, unreadable);
                  const gotMissing = 'notDescendantOf' in v ? v.notDescendantOf.map((h) => shas.indexOf(h.sha)).sort() : [];
                  const gotUnreadable = v.action === 'refuse' ? v.unreadable.map((s) => shas.indexOf(s)).sort() : [];
                  const ok =
                    v.action === e.action &&
                    v.why === e.why &&
                    JSON.stringify(gotMissing) === JSON.stringify([...e.missing].sort()) &&
                    JSON.stringify(gotUnreadable) === JSON.stringify(e.unreadable);
                  counts[v.why] = (counts[v.why] ?? 0) + 1;
                  if (!ok) {
                    mismatches++;
                    firstMismatch ||= JSON.stringify({ n, parents, unreadable: [...unreadable], tip, held, target, allow, got: v, expected: e });
                  }
                }
              }
        }
      }
    }
  }
  t.equal(mismatches, 0, `every verdict matches the oracle (${cases} cases)${firstMismatch ? `; first: ${firstMismatch}` : ''}`);
  for (const why of ['pinned', 'no-history', 'up-to-date', 'descendant', 'allowed-downgrade', 'downgrade']) {
    t.ok((counts[why] ?? 0) > 0, `outcome ${why} occurs (${counts[why] ?? 0} times)`);
  }
});

t.test('named shapes and the refusal message', async (t) => {
  const [a, b, c, d] = ids(4);
  // a <- b <- c, and d a sibling of b (child of a)
  const graph: Record<string, string[]> = { [a]: [], [b]: [a], [c]: [b], [d]: [a] };
  const parents = (s: string) => graph[s] ?? null;
  const plan = (tip: string, held: HeldRevision[], allow = false) => planDowngradeCheck({ tip, target: 'branch', held, allowDowngrade: allow, parents });
  t.match(plan(c, [{ role: 'booted', sha: b }]), { action: 'allow', why: 'descendant' }, 'a newer tip on the same line');
  t.match(plan(b, [{ role: 'booted', sha: c }]), { action: 'refuse', why: 'downgrade' }, 'the branch rewound to an older commit');
  t.match(plan(d, [{ role: 'good', sha: b }]), { action: 'refuse', why: 'downgrade' }, 'a sibling line (force-pushed history)');
  t.match(
    plan(c, [
      { role: 'good', sha: c },
      { role: 'pending', sha: b },
    ]),
    { action: 'allow', why: 'up-to-date' },
    'equal to one held revision',
  );
  t.match(
    plan(b, [
      { role: 'good', sha: a },
      { role: 'pending', sha: c },
    ]),
    { action: 'refuse', notDescendantOf: [{ role: 'pending', sha: c }] },
    'a pending newer revision counts',
  );
  const refused = plan(b, [{ role: 'booted', sha: c }]);
  t.match(refused.reason, new RegExp(`^refusing commit ${b.slice(0, 12)} \\(${b}\\): it does not descend from the booted ${c.slice(0, 12)} revision`));
  t.match(refused.reason, new RegExp(`update-revision=${b}`), 'names the pin that would allow it');
  t.match(refused.reason, /gitroot\.allow-downgrade/, 'and the setting');
  t.notOk(refused.reason.includes('\n'), 'one line');
  t.same(heldRevisions({ booted: a, good: b, pending: { revision: c, triesLeft: 1, tries: 3, stagedAt: '' } }), [
    { role: 'booted', sha: a },
    { role: 'good', sha: b },
    { role: 'pending', sha: c },
  ]);
  t.same(heldRevisions({ booted: null, good: null, pending: null }), []);
  const walked: string[] = [];
  ancestorsAmong(c, new Set([b]), (s) => {
    walked.push(s);
    return graph[s] ?? null;
  });
  t.same(walked, [c, b], 'the walk stops once every held revision is found');
});
