/**
 * planMarkGood, planMarkBad and planRollback (lib/boot/boot-select.ts) over every combination
 * of booted (none, good, pending, an earlier good one, another, a failed one), good (absent,
 * present), pending (none, with tries, used up), earlier good ones and failed ones: when each
 * refuses (typed, with a reason), what each does, that each is idempotent or (rollback) its own
 * inverse, and that every result is a valid state. Then a seeded random walk of stagings,
 * boots and transitions, checking after each step that the state is valid and the boot rules
 * hold.
 */
// needs: none
import t from 'tap';
import {
  TransitionRefusedError,
  type TransitionPlan,
  type RevisionHealth,
  isRefusal,
  nextBootRevision,
  planMarkBad,
  planMarkGood,
  planRollback,
  selectRevision,
} from '../lib/boot/boot-select.js';
import { type DeployState, type StagedRevision, emptyState, parseState } from '../lib/home/home-state.js';
import { planStage, planStagedState } from '../lib/deploy/deploy-stage.js';
import { planBootEntries } from '../lib/bootloader/boot-plan.js';
import { EXIT_CODES } from '../lib/errors/errors.js';
import { mulberry32 } from './helpers/seeded-random.js';

const P = 'a'.repeat(40);
const G = 'b'.repeat(40);
const Q1 = 'c'.repeat(40);
const Q2 = 'd'.repeat(40);
const O = 'e'.repeat(40);
const F = 'f'.repeat(40);
const T0 = '2026-05-06T07:08:09.000Z';
const N: Record<string, string> = { [P]: 'P', [G]: 'G', [Q1]: 'Q1', [Q2]: 'Q2', [O]: 'O', [F]: 'F' };
const name = (s: string | null | undefined): string => (s ? (N[s] ?? s.slice(0, 6)) : '-');

const rec = (sha: string): StagedRevision => ({
  kernelDir: sha,
  kernel: 'vmlinuz',
  initrd: 'initrd.img',
  kernelVersion: null,
  kernelSource: null,
  options: 'boot=gitroot',
  stagedAt: T0,
});

function* states(): Generator<{ state: DeployState; label: string }> {
  for (const booted of [null, G, P, Q1, O, F]) {
    for (const good of [null, G]) {
      for (const triesLeft of [null, 2, 0]) {
        for (const previousGood of [[], [Q1], [Q1, Q2]]) {
          for (const failed of [[], [F], [F, Q1]]) {
            if (failed.includes(Q1) && !previousGood.includes(Q1)) continue;
            const pending = triesLeft === null ? null : { revision: P, triesLeft, tries: 3, stagedAt: T0 };
            const staged = Object.fromEntries([P, G, Q1, Q2, O, F].map((s) => [s, rec(s)]));
            const state = parseState(JSON.stringify({ ...emptyState(), booted, good, pending, previousGood, failed, staged }), 'case');
            yield {
              state,
              label:
                `booted=${name(booted)} good=${name(good)} pending=${triesLeft === null ? '-' : `P(${triesLeft})`} ` +
                `prev=[${previousGood.map(name)}] failed=[${failed.map(name)}]`,
            };
          }
        }
      }
    }
  }
}

function attempt(fn: (s: DeployState) => TransitionPlan, s: DeployState): TransitionPlan | TransitionRefusedError {
  try {
    return fn(s);
  } catch (e) {
    if (e instanceof TransitionRefusedError) return e;
    throw e;
  }
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

t.test('mark-good, mark-bad, rollback over every combination', async (t) => {
  const problems: string[] = [];
  let n = 0;
  const counts = { good: 0, goodRefused: 0, bad: 0, badRefused: 0, rollback: 0, rollbackRefused: 0 };
  for (const { state: s, label } of states()) {
    n++;
    const complain = (what: string): void => {
      if (problems.length < 20) problems.push(`${label}: ${what}`);
    };
    const before = JSON.stringify(s);
    const valid = (p: TransitionPlan, what: string): void => {
      try {
        parseState(JSON.stringify(p.state), 'result');
      } catch (e) {
        complain(`${what}: invalid state: ${(e as Error).message}`);
      }
      if (p.nextBoot !== nextBootRevision(p.state)) complain(`${what}: nextBoot ${name(p.nextBoot)} is not what the next boot chooses`);
      if (p.changed !== !same(p.state, s)) complain(`${what}: changed is ${p.changed}`);
      if (p.reason.trim() === '' || p.reason.includes('\n')) complain(`${what}: reason is not one line`);
      // Whatever can boot next keeps its staged kernel.
      for (const r of [p.state.good, p.state.pending?.revision ?? null, p.state.booted, p.nextBoot]) {
        if (r !== null && p.state.staged[r] === undefined) complain(`${what}: ${name(r)} lost its staged record`);
      }
    };

    // mark-good
    const g = attempt(planMarkGood, s);
    if (g instanceof TransitionRefusedError) {
      counts.goodRefused++;
      if (s.booted !== null || !isRefusal(g, 'nothing-booted')) complain(`mark-good refused: ${g.message}`);
    } else {
      counts.good++;
      const b = s.booted as string;
      valid(g, 'mark-good');
      if (g.revision !== b || g.state.good !== b) complain('mark-good: booted is not good');
      if (s.good !== null && s.good !== b && g.state.previousGood[0] !== s.good) complain('mark-good: the old good one is not the newest earlier one');
      if (g.state.failed.includes(b)) complain('mark-good: still failed');
      if (
        !same(
          g.state.failed,
          s.failed.filter((x) => x !== b),
        )
      )
        complain('mark-good: failed changed otherwise');
      if (!same(g.state.pending, s.pending?.revision === b ? null : s.pending)) complain('mark-good: pending wrong');
      if (g.state.booted !== s.booted) complain('mark-good: booted changed');
      if (attempt(planMarkGood, g.state) instanceof TransitionRefusedError || planMarkGood(g.state).changed) complain('mark-good: not idempotent');
    }

    // mark-bad
    const m = attempt(planMarkBad, s);
    const replacement = s.previousGood.find((x) => x !== s.booted && !s.failed.includes(x));
    if (m instanceof TransitionRefusedError) {
      counts.badRefused++;
      const ok = s.booted === null ? isRefusal(m, 'nothing-booted') : s.booted === s.good && replacement === undefined && isRefusal(m, 'last-good');
      if (!ok) complain(`mark-bad refused: ${m.message}`);
    } else {
      counts.bad++;
      const b = s.booted as string;
      valid(m, 'mark-bad');
      if (m.state.failed[0] !== b) complain('mark-bad: not the newest failed');
      if (m.state.previousGood.includes(b) || m.state.good === b) complain('mark-bad: still good or earlier good');
      if (s.good === b ? m.state.good !== replacement : m.state.good !== s.good) complain(`mark-bad: good is ${name(m.state.good)}`);
      if (!same(m.state.pending, s.pending?.revision === b ? null : s.pending)) complain('mark-bad: pending wrong');
      if (m.nextBoot === b) complain('mark-bad: the abandoned revision boots next');
      const again = attempt(planMarkBad, m.state);
      if (again instanceof TransitionRefusedError || again.changed) complain('mark-bad: not idempotent');
    }

    // rollback
    const r = attempt(planRollback, s);
    if (r instanceof TransitionRefusedError) {
      counts.rollbackRefused++;
      if (s.previousGood.length > 0 || !isRefusal(r, 'no-previous-good')) complain(`rollback refused: ${r.message}`);
    } else {
      counts.rollback++;
      valid(r, 'rollback');
      if (r.state.good !== s.previousGood[0] || r.revision !== s.previousGood[0]) complain('rollback: not the newest earlier good one');
      if (r.state.pending !== null) complain('rollback: pending kept');
      if (r.nextBoot !== s.previousGood[0]) complain(`rollback: next boot is ${name(r.nextBoot)}`);
      if (s.good !== null && r.state.previousGood[0] !== s.good) complain('rollback: the old good one is not the newest earlier one');
      if (s.good !== null) {
        const back = planRollback(r.state);
        if (back.state.good !== s.good || !same(back.state.previousGood, s.previousGood)) complain('rollback: a second rollback does not undo the first');
      }
    }
    if (JSON.stringify(s) !== before) complain('the input state was modified');
  }
  t.same(problems, [], `${n} states`);
  t.ok(
    Object.values(counts).every((c) => c > 0),
    `every outcome occurs: ${JSON.stringify(counts)}`,
  );
});

t.test('refusals are typed errors with stable codes and one-line messages', async (t) => {
  const e = attempt(planMarkGood, emptyState()) as TransitionRefusedError;
  t.type(e, TransitionRefusedError);
  t.equal(e.code, 'ESTATE');
  t.equal(EXIT_CODES[e.code], 4);
  t.same(e.data, { action: 'mark-good', why: 'nothing-booted' });
  t.match(e.message, /^mark-good: state.json records no booted revision/);
  const last = attempt(planMarkBad, { ...emptyState(), good: G, booted: G, staged: { [G]: rec(G) } }) as TransitionRefusedError;
  t.match(last.data, { action: 'mark-bad', why: 'last-good' });
  t.match(last.message, /no earlier good revision can replace it: stage another revision/);
  const r = attempt(planRollback, { ...emptyState(), good: G }) as TransitionRefusedError;
  t.match(r.data, { action: 'rollback', why: 'no-previous-good' });
  for (const x of [e, last, r]) t.notOk(x.message.includes('\n'));
});

t.test('specific transitions', async (t) => {
  const s = (o: Partial<DeployState>): DeployState => ({ ...emptyState(), staged: Object.fromEntries([P, G, Q1, Q2].map((x) => [x, rec(x)])), ...o });
  const pend = { revision: P, triesLeft: 1, tries: 3, stagedAt: T0 };

  const g = planMarkGood(s({ good: G, booted: P, pending: pend, previousGood: [Q1] }));
  t.match(g, { changed: true, revision: P, nextBoot: P, state: { good: P, pending: null, previousGood: [G, Q1] } });
  t.match(g.reason, /passed its trial \(try 2 of 3\): it is the known-good revision now \(b{40} is the previous one\)/);
  t.same(Object.keys(g.state.staged).sort(), [P, G].sort(), 'staged records no longer needed are pruned (Q1 is the second earlier one)');

  const already = planMarkGood(s({ good: G, booted: G, pending: pend }));
  t.match(
    already,
    { changed: false, reason: /is already the known-good revision/, state: { pending: pend } },
    'booting good (chosen at the menu) does not end the pending trial',
  );

  const bad = planMarkBad(s({ good: G, booted: P, pending: pend }));
  t.match(bad, { changed: true, nextBoot: G, state: { good: G, pending: null, failed: [P] } });
  t.match(bad.reason, /recorded as failed and its trial ends; the next boot runs b{40}/);

  const badGood = planMarkBad(s({ good: G, booted: G, previousGood: [Q1, Q2] }));
  t.match(badGood, { nextBoot: Q1, state: { good: Q1, previousGood: [Q2], failed: [G] } });

  const badOther = planMarkBad(s({ good: G, booted: Q2, previousGood: [Q1, Q2] }));
  t.match(badOther, { nextBoot: G, state: { good: G, previousGood: [Q1], failed: [Q2] } }, 'an earlier good revision booted at the prompt');

  const rb = planRollback(s({ good: G, booted: G, pending: pend, previousGood: [Q1, Q2] }));
  t.match(rb, { nextBoot: Q1, state: { good: Q1, previousGood: [G, Q2], pending: null } });
  t.match(rb.reason, /c{40} is the known-good revision again and boots next \(b{40} is the previous one\); the pending a{40} is withdrawn/);
  t.match(planRollback(rb.state).state, { good: G, previousGood: [Q1, Q2] }, 'rolled forward again');
});

t.test('a random walk of stagings, boots and transitions keeps the state valid and the rules', async (t) => {
  const seed = Number(process.env.GITROOT_WALK_SEED ?? 20260506);
  const rand = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const revs = Array.from({ length: 12 }, (_, i) => (i + 1).toString(16).repeat(40).slice(0, 40));
  const health: Record<string, RevisionHealth> = {};
  for (const r of revs) health[r] = 'ok';
  let state: DeployState = { ...emptyState(), good: revs[0], booted: revs[0], staged: { [revs[0]]: rec(revs[0]) } };
  const location = { kernelRoot: '/gitroot', copy: true };
  const problems: string[] = [];
  const log: string[] = [];
  const stats: Record<string, number> = {};
  for (let i = 0; i < 20000 && problems.length === 0; i++) {
    const ev = pick(['stage', 'boot', 'boot', 'boot', 'boot-menu', 'mark-good', 'mark-bad', 'rollback', 'health'] as const);
    log.push(ev);
    if (log.length > 12) log.shift();
    const before = state;
    try {
      if (ev === 'stage') {
        const sha = pick(revs);
        const d = planStage(state, sha, rand() < 0.2);
        if (d.action === 'stage') state = planStagedState(state, sha, rec(sha), 1 + Math.floor(rand() * 3), new Date(T0));
        else if (d.action === 'clear-pending') state = { ...state, pending: null };
      } else if (ev === 'health') {
        health[pick(revs)] = pick(['ok', 'ok', 'missing', 'broken'] as const);
      } else if (ev === 'boot' || ev === 'boot-menu') {
        // The boot loader's default entry names its revision; at the menu a person names any.
        const plan = planBootEntries(state, location);
        const cmd = ev === 'boot' ? (plan.entries[0]?.revision ?? null) : pick([...revs, null]);
        const r = selectRevision({ state, cmdlineRevision: cmd, health: (s) => health[s] });
        stats[r.kind] = (stats[r.kind] ?? 0) + 1;
        if (r.revision !== null && health[r.revision] !== 'ok') problems.push(`step ${i}: chose an unhealthy revision`);
        if (r.revision !== null && r.state.failed.includes(r.revision)) problems.push(`step ${i}: chose a failed revision`);
        if (state.good !== null && health[state.good] === 'ok' && r.revision === null) problems.push(`step ${i}: nothing while good is healthy`);
        if (state.pending !== null && r.state.pending !== null && r.state.pending.triesLeft > state.pending.triesLeft) problems.push(`step ${i}: tries grew`);
        state = r.state;
      } else {
        const fn = ev === 'mark-good' ? planMarkGood : ev === 'mark-bad' ? planMarkBad : planRollback;
        const r = attempt(fn, state);
        stats[`${ev}${r instanceof TransitionRefusedError ? ' refused' : ''}`] =
          (stats[`${ev}${r instanceof TransitionRefusedError ? ' refused' : ''}`] ?? 0) + 1;
        if (!(r instanceof TransitionRefusedError)) state = r.state;
      }
      parseState(JSON.stringify(state), 'walk');
      if (state.good !== null && state.failed.includes(state.good) && before.good !== state.good) problems.push(`step ${i}: a failed revision became good`);
    } catch (e) {
      problems.push(`step ${i} (${ev}): ${(e as Error).message}`);
    }
    if (problems.length > 0) problems.push(`last events: ${log.join(' ')}; seed ${seed}`);
  }
  t.same(problems, []);
  for (const k of ['pending', 'good', 'mark-good', 'mark-bad', 'rollback', 'fallback']) t.ok((stats[k] ?? 0) > 0, `${k} happened (${stats[k]})`);
});
