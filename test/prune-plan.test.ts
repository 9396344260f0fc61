/**
 * planPrune (lib/prune/prune-plan.ts), exhaustively: every combination of good (none, A, B),
 * pending (none, A with tries left, C used up, C fresh), booted (none, A..D), earlier good
 * revisions (every ordered list of up to two of B..E), failed (every subset of C, D, E), staged
 * records (all named revisions, none, C keeping B's kernel), keep (0, 1, 3) and whether B is in
 * the repository, against fixed refs (stale keep refs, old fetched refs, a recent branch tip).
 * Each case is checked against invariants: no kept revision (booted, pending, good, the next
 * boot's, the `keep` newest earlier good, a recent unfailed fetch) loses its last ref, the new
 * state is valid, names only kept revisions and boots and writes entries exactly as before,
 * kernels in use stay, what is beyond `keep` goes, and a second plan has nothing left to do.
 * The checker itself is shown to catch broken plans.
 */
// needs: none
import t from 'tap';
import { nextBootRevision } from '../lib/boot/boot-select.js';
import { planBootEntries } from '../lib/bootloader/boot-plan.js';
import { type DeployState, type StagedRevision, emptyState, parseState } from '../lib/home/home-state.js';
import { FETCH_GRACE_MS, type PrunePlan, type PruneInput, type RefInfo, keepProblem, keepRefName, planPrune, stateKeeps } from '../lib/prune/prune-plan.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const D = 'd'.repeat(40);
const E = 'e'.repeat(40);
const F = 'f'.repeat(40);
const NAMES: Record<string, string> = { [A]: 'A', [B]: 'B', [C]: 'C', [D]: 'D', [E]: 'E', [F]: 'F' };
const T0 = '2026-05-06T07:08:09.000Z';
const LOCATION = { kernelRoot: '/gitroot', copy: true };

const rec = (kernelDir: string): StagedRevision => ({
  kernelDir,
  kernel: 'vmlinuz',
  initrd: 'initrd.img',
  kernelVersion: '6.1.0-9-amd64',
  kernelSource: null,
  options: 'boot=gitroot',
  stagedAt: T0,
});

/** Refs every case starts from: old fetched refs of A..E, a stale keep ref of F, a recent branch tip at D and E. */
const REFS: RefInfo[] = [
  ...[A, B, C, D, E].map((s) => ({ name: `refs/gitroot/fetched/${s}`, oid: s, ageMs: 10 * FETCH_GRACE_MS })),
  { name: keepRefName(F), oid: F, ageMs: Infinity },
  { name: keepRefName(A), oid: A, ageMs: Infinity },
  { name: 'refs/gitroot/fetched/main', oid: D, ageMs: 1000 },
  { name: 'refs/gitroot/fetched/stable', oid: E, ageMs: 5000 },
];
const BOOT_NAMES = [A, B, C, D, E, F, `${A}.tmp-x1y2`, 'README'];

function* sequences(items: string[], max: number): Generator<string[]> {
  yield [];
  if (max === 0) return;
  for (const x of items)
    for (const rest of sequences(
      items.filter((y) => y !== x),
      max - 1,
    ))
      yield [x, ...rest];
}

function* subsets(items: string[]): Generator<string[]> {
  for (let m = 0; m < 1 << items.length; m++) yield items.filter((_, i) => (m >> i) & 1);
}

interface Case {
  input: PruneInput;
  label: string;
}

function* cases(): Generator<Case> {
  for (const good of [null, A, B]) {
    for (const pending of [null, { revision: A, triesLeft: 2, tries: 3 }, { revision: C, triesLeft: 0, tries: 3 }, { revision: C, triesLeft: 3, tries: 3 }]) {
      for (const booted of [null, A, B, C, D]) {
        for (const previousGood of sequences([B, C, D, E], 2)) {
          if (good !== null && previousGood.includes(good)) continue;
          for (const failed of subsets([C, D, E])) {
            for (const stagedKind of ['all', 'shared'] as const) {
              const named = new Set([good, pending?.revision ?? null, booted, ...previousGood].filter((s): s is string => s !== null));
              const staged: Record<string, StagedRevision> = {};
              for (const s of [...named].sort()) staged[s] = rec(stagedKind === 'shared' && s === C ? B : s);
              const state: DeployState = {
                ...emptyState(),
                good,
                booted,
                previousGood,
                failed,
                staged,
                pending: pending === null ? null : { ...pending, stagedAt: T0 },
              };
              for (const keep of [0, 1, 3]) {
                for (const missingB of [false, true]) {
                  const present = new Set([A, B, C, D, E].filter((s) => !(missingB && s === B)));
                  yield {
                    input: { state, keep, refs: REFS, present, bootNames: BOOT_NAMES },
                    label:
                      `good=${good ? NAMES[good] : '-'} pending=${pending ? `${NAMES[pending.revision]}(${pending.triesLeft})` : '-'} ` +
                      `booted=${booted ? NAMES[booted] : '-'} prev=[${previousGood.map((s) => NAMES[s])}] failed=[${failed.map((s) => NAMES[s])}] ` +
                      `staged=${stagedKind} keep=${keep}${missingB ? ' B-missing' : ''}`,
                  };
                }
              }
            }
          }
        }
      }
    }
  }
}

/** Refs after applying a plan's ref changes. */
function refsAfter(refs: readonly RefInfo[], plan: PrunePlan): RefInfo[] {
  const del = new Set(plan.deleteRefs.map((r) => r.name));
  const out = refs.filter((r) => !del.has(r.name) && !plan.createRefs.some((c) => c.name === r.name));
  for (const c of plan.createRefs) out.push({ name: c.name, oid: c.oid, ageMs: 0 });
  return out;
}

/** Every invariant violated by `plan` for `input` (empty: the plan is sound). */
function violations(input: PruneInput, plan: PrunePlan): string[] {
  const bad: string[] = [];
  const { state, keep } = input;
  const must = stateKeeps(state, keep);
  const keptSet = new Set(plan.kept.map((k) => k.revision));
  const after = refsAfter(input.refs, plan);
  const reached = new Set(after.map((r) => r.oid));
  for (const [sha, why] of must) {
    if (!keptSet.has(sha)) bad.push(`${NAMES[sha]} (${why}) not in kept`);
    if (input.present.has(sha) && !reached.has(sha)) bad.push(`${NAMES[sha]} (${why}) has no ref left`);
  }
  // Recent fetched tips that did not fail keep their ref.
  for (const r of input.refs) {
    if (r.name.startsWith('refs/gitroot/fetched/') && r.ageMs < FETCH_GRACE_MS && !state.failed.includes(r.oid) && !reached.has(r.oid)) {
      bad.push(`recent fetch ${r.name} lost`);
    }
  }
  // Refs outside the two namespaces gitroot owns are never touched.
  for (const r of plan.deleteRefs) if (!/^refs\/gitroot\/(keep|fetched)\//.test(r.name)) bad.push(`deletes foreign ref ${r.name}`);
  // What is beyond keep and needed by nothing else goes (refs and previousGood entries).
  const expectDropped = state.previousGood.filter((s) => !must.has(s));
  if (JSON.stringify(plan.droppedPreviousGood) !== JSON.stringify(expectDropped)) bad.push(`dropped [${plan.droppedPreviousGood.map((s) => NAMES[s])}]`);
  for (const s of expectDropped) {
    if (after.some((r) => r.oid === s && r.name.startsWith('refs/gitroot/keep/'))) bad.push(`${NAMES[s]} beyond keep still has a keep ref`);
  }
  if (after.some((r) => r.oid === F)) bad.push('stale keep ref of F survives');
  // The new state: valid, same good/pending/booted/failed, names only kept revisions.
  const next = plan.state;
  try {
    parseState(JSON.stringify(next), 'state.json');
  } catch (e) {
    bad.push(`invalid state: ${(e as Error).message}`);
  }
  if (
    next.good !== state.good ||
    next.booted !== state.booted ||
    JSON.stringify(next.pending) !== JSON.stringify(state.pending) ||
    JSON.stringify(next.failed) !== JSON.stringify(state.failed)
  )
    bad.push('good/pending/booted/failed changed');
  const named = [next.good, next.booted, next.pending?.revision ?? null, ...next.previousGood, ...Object.keys(next.staged)].filter(
    (s): s is string => s !== null,
  );
  for (const s of named) if (!keptSet.has(s)) bad.push(`state names ${NAMES[s]} which is not kept`);
  if (nextBootRevision(next) !== nextBootRevision(state)) bad.push('the next boot changes');
  const entries = (s: DeployState) => JSON.stringify(planBootEntries(s, LOCATION).entries);
  if (entries(next) !== entries(state)) bad.push('boot entries change');
  // Kernels: every kept record's directory stays; nothing outside D/boot's sha and leftover names is touched.
  const removed = new Set(plan.removeKernelDirs);
  for (const r of Object.values(next.staged)) if (r.kernelDir !== null && removed.has(r.kernelDir)) bad.push(`removes kernel ${NAMES[r.kernelDir]} in use`);
  if (removed.has('README')) bad.push('removes a foreign file in D/boot');
  if (!removed.has(`${A}.tmp-x1y2`)) bad.push('leaves a leftover temp dir');
  // A second prune of the result has nothing left to do.
  const again = planPrune({ ...input, state: next, refs: after, bootNames: input.bootNames.filter((n) => !removed.has(n)) });
  if (again.stateChanged || again.createRefs.length || again.deleteRefs.length || again.removeKernelDirs.length) bad.push('second plan is not empty');
  return bad;
}

t.test('exhaustive: no kept revision is ever removed, and the rest goes', async (t) => {
  let n = 0;
  let failures = 0;
  let droppedSome = 0;
  for (const c of cases()) {
    n++;
    const plan = planPrune(c.input);
    const bad = violations(c.input, plan);
    if (
      plan.droppedPreviousGood.length > 0 &&
      plan.deleteRefs.some((r) => r.name.startsWith('refs/gitroot/fetched/') && plan.droppedPreviousGood.includes(r.oid))
    )
      droppedSome++;
    if (bad.length > 0) {
      failures++;
      if (failures <= 5) t.fail(`${c.label}: ${bad.join('; ')}`);
    }
  }
  t.equal(failures, 0, `${n} cases, none violates an invariant`);
  t.ok(n > 40000, `enough cases (${n})`);
  t.ok(droppedSome > n / 10, `many cases drop earlier good revisions and their refs (${droppedSome})`);
});

t.test('the checker catches broken plans', async (t) => {
  const state: DeployState = {
    ...emptyState(),
    good: B,
    booted: B,
    previousGood: [C, D],
    pending: { revision: A, triesLeft: 3, tries: 3, stagedAt: T0 },
    staged: { [A]: rec(A), [B]: rec(B), [C]: rec(C) },
  };
  const input: PruneInput = { state, keep: 1, refs: REFS, present: new Set([A, B, C, D, E]), bootNames: BOOT_NAMES };
  const good = planPrune(input);
  t.same(violations(input, good), [], 'the real plan is sound');
  const dropAll: PrunePlan = { ...good, deleteRefs: REFS.map((r) => ({ name: r.name, oid: r.oid })), createRefs: [] };
  t.match(violations(input, dropAll).join('\n'), /has no ref left/, 'deleting every ref is caught');
  const dropKernel: PrunePlan = { ...good, removeKernelDirs: [...good.removeKernelDirs, A] };
  t.match(violations(input, dropKernel).join('\n'), /removes kernel A in use/, 'removing the pending kernel is caught');
  const forgetPending: PrunePlan = { ...good, state: { ...good.state, pending: null }, stateChanged: true };
  t.match(violations(input, forgetPending).join('\n'), /changed/, 'changing pending is caught');
  const keepAll: PrunePlan = { ...good, droppedPreviousGood: [] };
  t.match(violations(input, keepAll).join('\n'), /dropped/, 'not dropping D (beyond keep=1) is caught');
});

t.test('specific cases', async (t) => {
  const state: DeployState = {
    ...emptyState(),
    good: B,
    booted: B,
    previousGood: [C, D, E],
    failed: [D],
    pending: { revision: A, triesLeft: 3, tries: 3, stagedAt: T0 },
    staged: { [A]: rec(A), [B]: rec(B), [C]: rec(C), [D]: rec(D) },
  };
  const plan = planPrune({ state, keep: 1, refs: REFS, present: new Set([A, B, C, D, E]), bootNames: BOOT_NAMES });
  t.same(
    plan.kept.map((k) => [NAMES[k.revision], k.reasons]),
    [
      ['B', ['booted', 'good']],
      ['A', ['pending', 'next-boot']],
      ['C', ['previous-good']],
      ['E', ['recent-fetch']],
    ],
    'kept, with reasons',
  );
  t.same(plan.droppedPreviousGood, [D, E], 'earlier good beyond keep=1 dropped');
  t.same(plan.state.previousGood, [C]);
  t.same(plan.droppedStaged, [D], 'staged record of D dropped');
  t.same(plan.removeKernelDirs, [D, E, `${A}.tmp-x1y2`, F].sort(), 'kernels of D, E, F and a leftover go');
  t.same(plan.createRefs.map((r) => NAMES[r.oid]).sort(), ['B', 'C'], 'keep refs for B and C (A has one)');
  t.same(
    plan.deleteRefs.map((r) => r.name).sort(),
    [
      keepRefName(F),
      'refs/gitroot/fetched/main',
      ...[A, B, C, D, E].map((s) => `refs/gitroot/fetched/${s}`).filter((n) => !n.endsWith(A) && !n.endsWith(B) && !n.endsWith(C)),
    ].sort(),
    'the failed recent tip D, old fetched refs of unkept revisions and the stale keep ref go',
  );
  // Tag refs (the signed tag a revision was fetched through) live exactly as long as their revision.
  const tagRefs: RefInfo[] = [A, C, D, F].map((s) => ({ name: `refs/gitroot/tag/${s}`, oid: `${s.slice(0, 39)}0`, ageMs: 10 * FETCH_GRACE_MS }));
  const withTags = planPrune({ state, keep: 1, refs: [...REFS, ...tagRefs], present: new Set([A, B, C, D, E]), bootNames: BOOT_NAMES });
  t.same(
    withTags.deleteRefs
      .filter((r) => r.name.startsWith('refs/gitroot/tag/'))
      .map((r) => r.name)
      .sort(),
    [`refs/gitroot/tag/${D}`, `refs/gitroot/tag/${F}`],
    'the tag refs of the dropped D and F go; those of the kept A and C stay',
  );
  t.same(
    withTags.deleteRefs.filter((r) => !r.name.startsWith('refs/gitroot/tag/')),
    plan.deleteRefs,
    'other refs as before',
  );
  const zero = planPrune({ state, keep: 0, refs: REFS, present: new Set([A, B, C, D, E]), bootNames: BOOT_NAMES });
  t.same(zero.state.previousGood, [], 'keep=0 drops every earlier good revision');
  const missing = planPrune({ state, keep: 1, refs: REFS, present: new Set([A, B, D, E]), bootNames: BOOT_NAMES });
  t.match(missing.warnings.join('\n'), /revision c{40} \(previous-good\) is not in the repository/, 'a missing kept revision is a warning');
  t.equal(keepProblem(11), '--keep must be a whole number from 0 to 10 (state.json remembers at most 10 earlier good revisions), not 11');
  t.equal(keepProblem(-1)?.startsWith('--keep must'), true);
  t.equal(keepProblem(1.5)?.startsWith('--keep must'), true);
  t.equal(keepProblem(10), null);
});
