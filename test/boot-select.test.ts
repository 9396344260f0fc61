/**
 * selectRevision (lib/boot/boot-select.ts), exhaustively: every combination of pending (none,
 * 0..3 tries left of 3), good (absent, present), earlier good revisions (none, one, two),
 * failed (none, an unrelated one, one of the earlier good ones), booted (none, pending, good,
 * another), git-revision= (absent, pending, good, another, a failed one, an earlier good one,
 * not an id) and health ok/missing/broken of every revision involved. Each case is checked
 * against invariants (a chosen revision is healthy and never a failed one, tries only
 * decrease, failed only grows by the pending revision, booted = chosen, the state stays
 * valid, good and earlier good ones untouched) and against the rules written out as a plain
 * priority list; then specific cases with their reasons.
 */
// needs: none
import t from 'tap';
import { type RevisionHealth, type Selection, type SelectInput, cmdlineRevision, nextBootRevision, selectRevision } from '../lib/boot/boot-select.js';
import { type DeployState, emptyState, parseState } from '../lib/home/home-state.js';

const P = 'a'.repeat(40);
const G = 'b'.repeat(40);
const Q1 = 'c'.repeat(40);
const Q2 = 'd'.repeat(40);
const O = 'e'.repeat(40);
const F = 'f'.repeat(40);
const X = '1'.repeat(40);
const NAMES: Record<string, string> = { [P]: 'P', [G]: 'G', [Q1]: 'Q1', [Q2]: 'Q2', [O]: 'O', [F]: 'F', [X]: 'X' };
const T0 = '2026-05-06T07:08:09.000Z';
const HEALTHS: RevisionHealth[] = ['ok', 'missing', 'broken'];

const staged = (sha: string) => ({
  kernelDir: sha,
  kernel: 'vmlinuz',
  initrd: 'initrd.img',
  kernelVersion: '6.1.0-9-amd64',
  kernelSource: null,
  options: 'boot=gitroot',
  stagedAt: T0,
});

interface Case {
  state: DeployState;
  cmdline: string | null;
  health: Record<string, RevisionHealth>;
  label: string;
}

function* states(): Generator<{ state: DeployState; label: string }> {
  for (const triesLeft of [null, 0, 1, 2, 3]) {
    for (const good of [null, G]) {
      for (const previousGood of [[], [Q1], [Q1, Q2]]) {
        for (const failed of [[], [F], [F, Q1]]) {
          if (failed.includes(Q1) && !previousGood.includes(Q1)) continue;
          for (const booted of [null, P, G, X]) {
            const pending = triesLeft === null ? null : { revision: P, triesLeft, tries: 3, stagedAt: T0 };
            const stagedRecs = Object.fromEntries([P, G, Q1].map((s) => [s, staged(s)]));
            const state: DeployState = deepFreeze({ ...emptyState(), good, pending, previousGood, failed, booted, staged: stagedRecs });
            const label =
              `pending=${triesLeft === null ? '-' : `P(${triesLeft}/3)`} good=${good ? 'G' : '-'} prev=[${previousGood.map((s) => NAMES[s]).join(',')}] ` +
              `failed=[${failed.map((s) => NAMES[s]).join(',')}] booted=${booted ? NAMES[booted] : '-'}`;
            yield { state, label };
          }
        }
      }
    }
  }
}

const CMDLINES: Array<string | null> = [null, P, G, O, F, Q1, 'nonsense'];

/** Revisions whose health can matter in `state` with command line `cmdline`. */
function involved(state: DeployState, cmdline: string | null): string[] {
  const s = new Set<string>();
  for (const r of [state.pending?.revision ?? null, state.good, state.booted, ...state.previousGood, cmdline]) {
    if (r !== null && /^[0-9a-f]{40}$/.test(r)) s.add(r);
  }
  return [...s];
}

function* healthMaps(revs: string[]): Generator<Record<string, RevisionHealth>> {
  const n = revs.length;
  for (let i = 0; i < 3 ** n; i++) {
    const m: Record<string, RevisionHealth> = {};
    let k = i;
    for (const r of revs) {
      m[r] = HEALTHS[k % 3];
      k = Math.floor(k / 3);
    }
    yield m;
  }
}

function* cases(): Generator<Case> {
  for (const { state, label } of states()) {
    for (const cmdline of CMDLINES) {
      const revs = involved(state, cmdline);
      for (const health of healthMaps(revs)) {
        const hl = revs.map((r) => `${NAMES[r]}:${health[r]}`).join(' ');
        yield { state, cmdline, health, label: `${label} cmdline=${cmdline === null ? '-' : (NAMES[cmdline] ?? cmdline)} ${hl}` };
      }
    }
  }
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/** The boot rules (docs/rollback.md) as a plain priority list: what should boot, and what happens to the pending revision. */
function expected(c: Case): { revision: string | null; kind: Selection['kind']; pending: 'same' | 'try' | 'failed' | 'none' } {
  const s = c.state;
  const ok = (r: string | null): r is string => r !== null && c.health[r] === 'ok';
  const p = s.pending;
  const asked = c.cmdline;
  const failed = new Set(s.failed);
  if (asked !== null && /^[0-9a-f]{40}$/.test(asked) && asked !== p?.revision && asked !== s.good && !failed.has(asked) && ok(asked)) {
    return { revision: asked, kind: 'cmdline', pending: p === null ? 'none' : 'same' };
  }
  if (asked === s.good && ok(s.good)) {
    return { revision: s.good, kind: 'good', pending: p === null ? 'none' : p.triesLeft === 0 ? 'failed' : 'same' };
  }
  let pending: 'same' | 'try' | 'failed' | 'none' = 'none';
  if (p !== null) {
    if (p.triesLeft === 0) pending = 'failed';
    else {
      pending = 'try';
      if (ok(p.revision)) return { revision: p.revision, kind: 'pending', pending };
    }
  }
  if (ok(s.good)) return { revision: s.good, kind: 'good', pending };
  const nowFailed = new Set([...failed, ...(pending === 'failed' ? [p!.revision] : [])]);
  for (const q of s.previousGood) if (!nowFailed.has(q) && ok(q)) return { revision: q, kind: 'fallback', pending };
  const b = s.booted;
  if (b !== null && b !== s.good && b !== p?.revision && !nowFailed.has(b) && ok(b) && !(asked === b)) {
    return { revision: b, kind: 'fallback', pending };
  }
  return { revision: null, kind: 'none', pending };
}

t.test('every combination: invariants and the rules as a priority list', async (t) => {
  const problems: string[] = [];
  const kinds: Record<string, number> = {};
  const validated = new Set<string>();
  let n = 0;
  const complain = (c: Case, what: string): void => {
    if (problems.length < 20) problems.push(`${c.label}: ${what}`);
  };
  for (const c of cases()) {
    n++;
    // The state is deeply frozen: selectRevision modifying it would throw (and be reported).
    const before = c.state;
    const asked = new Set<string>();
    const input: SelectInput = Object.freeze({
      state: c.state,
      cmdlineRevision: c.cmdline,
      health: (sha: string) => {
        asked.add(sha);
        const h = c.health[sha];
        if (h === undefined) throw new Error(`health asked about ${sha}, which the case does not involve`);
        return h;
      },
    });
    let r: Selection;
    try {
      r = selectRevision(input);
    } catch (e) {
      complain(c, `threw ${(e as Error).message}`);
      continue;
    }
    kinds[r.kind] = (kinds[r.kind] ?? 0) + 1;
    const after = r.state;
    const p0 = before.pending;

    // The chosen revision is healthy, and never one the state records as failed.
    if (r.revision !== null && c.health[r.revision] !== 'ok') complain(c, `chose ${NAMES[r.revision]}, which is ${c.health[r.revision]}`);
    if (r.revision !== null && after.failed.includes(r.revision)) complain(c, `chose the failed ${NAMES[r.revision]}`);
    // Never nothing (or something unhealthy) while the good revision is healthy.
    if (before.good !== null && c.health[before.good] === 'ok' && r.revision === null) complain(c, 'chose nothing while good is healthy');
    // Tries only decrease, by one at most, and nothing else about the pending revision changes.
    if (after.pending !== null) {
      if (p0 === null || after.pending.revision !== p0.revision || after.pending.tries !== p0.tries || after.pending.stagedAt !== p0.stagedAt) {
        complain(c, 'pending changed other than its tries');
      } else if (!(after.pending.triesLeft === p0.triesLeft || after.pending.triesLeft === p0.triesLeft - 1) || after.pending.triesLeft < 0) {
        complain(c, `triesLeft went from ${p0.triesLeft} to ${after.pending.triesLeft}`);
      }
    }
    // failed only grows, and only by the pending revision, which then is no longer pending.
    const grown = after.failed.filter((s) => !before.failed.includes(s));
    if (before.failed.some((s) => !after.failed.includes(s))) complain(c, 'failed lost an entry');
    if (grown.length > 1 || (grown.length === 1 && grown[0] !== p0?.revision)) complain(c, `failed grew by ${grown.map((s) => NAMES[s])}`);
    if (p0 !== null && after.pending === null && !(after.failed[0] === p0.revision && p0.triesLeft === 0)) {
      complain(c, 'pending dropped without being recorded failed after its last try');
    }
    // booted = chosen; unchanged when nothing boots.
    if (after.booted !== (r.revision ?? before.booted)) complain(c, `booted is ${after.booted}, chose ${r.revision}`);
    // good, earlier good ones and staged records are not the boot's business (the very same objects).
    if (after.good !== before.good || after.previousGood !== before.previousGood || after.staged !== before.staged || after.version !== before.version) {
      complain(c, 'good, previousGood or staged changed');
    }
    // The state to persist is valid (many cases persist the same state: checked once each).
    const text = JSON.stringify(after);
    if (!validated.has(text)) {
      validated.add(text);
      try {
        parseState(text, 'state.json');
      } catch (e) {
        complain(c, `the state to persist is invalid: ${(e as Error).message}`);
      }
    }
    // kind matches the revision's role.
    const roleOk =
      r.kind === 'none'
        ? r.revision === null
        : r.kind === 'pending'
          ? r.revision === p0?.revision && after.pending?.triesLeft === p0.triesLeft - 1
          : r.kind === 'good'
            ? r.revision === before.good
            : r.kind === 'cmdline'
              ? r.revision === c.cmdline && r.revision !== p0?.revision && r.revision !== before.good
              : r.revision !== null && (before.previousGood.includes(r.revision) || r.revision === before.booted);
    if (!roleOk) complain(c, `kind ${r.kind} does not fit ${r.revision}`);
    if (r.reason.trim() === '' || r.reason.includes('\n')) complain(c, 'reason is not one line');
    // The rules, as a priority list.
    const e = expected(c);
    if (r.revision !== e.revision || r.kind !== e.kind) {
      complain(c, `chose ${r.kind} ${r.revision ? NAMES[r.revision] : '-'}, the rules say ${e.kind} ${e.revision ? NAMES[e.revision] : '-'}`);
    }
    const got = p0 === null ? 'none' : after.pending === null ? 'failed' : after.pending.triesLeft === p0.triesLeft - 1 ? 'try' : 'same';
    if (got !== e.pending) complain(c, `pending: ${got}, the rules say ${e.pending}`);
    // Deterministic (checked on a sample: the rest of the loop already runs it 150,000 times).
    if (n % 17 === 0 && JSON.stringify(selectRevision(input)) !== JSON.stringify(r)) complain(c, 'not deterministic');
  }
  t.same(problems, [], `${n} cases`);
  t.ok(n > 100_000, `${n} combinations checked`);
  for (const k of ['pending', 'good', 'cmdline', 'fallback', 'none']) t.ok((kinds[k] ?? 0) > 0, `kind ${k} occurs (${kinds[k]})`);
});

const base = (o: Partial<DeployState>): DeployState => ({ ...emptyState(), staged: { [P]: staged(P), [G]: staged(G) }, ...o });
const pend = (triesLeft: number, tries = 3) => ({ revision: P, triesLeft, tries, stagedAt: T0 });
const allOk = (): RevisionHealth => 'ok';
const only =
  (m: Record<string, RevisionHealth>) =>
  (sha: string): RevisionHealth =>
    m[sha] ?? 'ok';

t.test('specific cases', async (t) => {
  const rows: Array<[string, SelectInput, { revision: string | null; kind: Selection['kind']; reason: RegExp; pending?: unknown; failed?: string[] }]> = [
    [
      'a fresh staging: the pending revision boots, using its first try',
      { state: base({ good: G, booted: G, pending: pend(3) }), cmdlineRevision: P, health: allOk },
      { revision: P, kind: 'pending', reason: /try 1 of 3 \(2 left after this boot/, pending: { triesLeft: 2 } },
    ],
    [
      'no git-revision= counts as the pending entry',
      { state: base({ good: G, pending: pend(2) }), cmdlineRevision: null, health: allOk },
      { revision: P, kind: 'pending', reason: /try 2 of 3/, pending: { triesLeft: 1 } },
    ],
    [
      'the last try',
      { state: base({ good: G, pending: pend(1) }), cmdlineRevision: P, health: allOk },
      { revision: P, kind: 'pending', reason: /try 3 of 3 \(0 left/, pending: { triesLeft: 0 } },
    ],
    [
      'tries used up: recorded as failed, good boots (extlinux: the entry still names the pending revision)',
      { state: base({ good: G, pending: pend(0), failed: [F] }), cmdlineRevision: P, health: allOk },
      { revision: G, kind: 'good', reason: /used up its tries and is recorded as failed/, pending: null, failed: [P, F] },
    ],
    [
      'tries used up, BLS fell back to the good entry: recorded as failed too',
      { state: base({ good: G, pending: pend(0) }), cmdlineRevision: G, health: allOk },
      { revision: G, kind: 'good', reason: /boot loader fell back.*recorded as failed/, pending: null, failed: [P] },
    ],
    [
      'good chosen at the menu while the pending revision has tries: pending untouched',
      { state: base({ good: G, pending: pend(2) }), cmdlineRevision: G, health: allOk },
      { revision: G, kind: 'good', reason: /chosen at the menu/, pending: { triesLeft: 2 } },
    ],
    [
      'git-revision= typed at the prompt: boots it, nothing else changes',
      { state: base({ good: G, pending: pend(2) }), cmdlineRevision: O, health: allOk },
      { revision: O, kind: 'cmdline', reason: /git-revision=e{40} names it/, pending: { triesLeft: 2 } },
    ],
    [
      'git-revision= in capitals is the same id',
      { state: base({ good: G }), cmdlineRevision: O.toUpperCase(), health: allOk },
      { revision: O, kind: 'cmdline', reason: /names it/ },
    ],
    [
      'git-revision= typed at the prompt but missing: falls back to pending (a try)',
      { state: base({ good: G, pending: pend(2) }), cmdlineRevision: O, health: only({ [O]: 'missing' }) },
      { revision: P, kind: 'pending', reason: /pending revision/, pending: { triesLeft: 1 } },
    ],
    [
      'git-revision= naming a failed revision (a stale extlinux DEFAULT): passed over',
      { state: base({ good: G, failed: [P] }), cmdlineRevision: P, health: allOk },
      { revision: G, kind: 'good', reason: /git-revision=aaaaaaaaaaaa is a failed revision/ },
    ],
    [
      'an abbreviated git-revision= is not an id: ignored',
      { state: base({ good: G }), cmdlineRevision: 'bbbbbbb', health: allOk },
      { revision: G, kind: 'good', reason: /git-revision=bbbbbbb is not a full commit id/ },
    ],
    [
      'a broken pending revision is never chosen while good is healthy; the attempt used a try',
      { state: base({ good: G, pending: pend(3) }), cmdlineRevision: P, health: only({ [P]: 'broken' }) },
      {
        revision: G,
        kind: 'good',
        reason: /pending revision aaaaaaaaaaaa is unreadable .*; this boot used one of its tries \(2 left\)/,
        pending: { triesLeft: 2 },
      },
    ],
    [
      'good missing: the newest earlier good revision',
      { state: base({ good: G, previousGood: [Q1, Q2] }), cmdlineRevision: G, health: only({ [G]: 'missing' }) },
      { revision: Q1, kind: 'fallback', reason: /earlier good revision c{40}: good revision bbbbbbbbbbbb is not in the repository/ },
    ],
    [
      'good and the newest earlier one broken: the next earlier one',
      { state: base({ good: G, previousGood: [Q1, Q2] }), cmdlineRevision: null, health: only({ [G]: 'broken', [Q1]: 'broken' }) },
      { revision: Q2, kind: 'fallback', reason: /earlier good revision d{40}/ },
    ],
    [
      'an earlier good revision that failed since is not a fallback',
      { state: base({ good: G, previousGood: [Q1, Q2], failed: [Q1] }), cmdlineRevision: null, health: only({ [G]: 'broken' }) },
      { revision: Q2, kind: 'fallback', reason: /earlier good revision d{40}/ },
    ],
    [
      'nothing good yet (first update of a fresh machine): the last booted revision is the way back',
      { state: base({ booted: X, pending: pend(0) }), cmdlineRevision: null, health: allOk },
      { revision: X, kind: 'fallback', reason: /last booted revision 1{40}: pending aaaaaaaaaaaa used up its tries/, failed: [P] },
    ],
    [
      'a pending revision that is already good: its trial is over, good boots',
      { state: base({ good: P, pending: pend(2) }), cmdlineRevision: P, health: allOk },
      { revision: P, kind: 'good', reason: /known-good/, pending: null },
    ],
    [
      'nothing readable: none, with every reason',
      { state: base({ good: G, pending: pend(1), previousGood: [Q1] }), cmdlineRevision: null, health: () => 'missing' },
      {
        revision: null,
        kind: 'none',
        reason: /^no bootable revision \(pending .* good .* earlier good .*\): stage one with 'gitroot fetch'/,
        pending: { triesLeft: 0 },
      },
    ],
    [
      'a fresh machine with nothing staged: none',
      { state: emptyState(), cmdlineRevision: null, health: allOk },
      { revision: null, kind: 'none', reason: /the state names no revision/ },
    ],
  ];
  for (const [name, input, want] of rows) {
    const r = selectRevision(input);
    t.equal(r.revision, want.revision, `${name}: revision`);
    t.equal(r.kind, want.kind, `${name}: kind`);
    t.match(r.reason, want.reason, `${name}: reason`);
    if (want.pending !== undefined) t.match(r.state.pending, want.pending, `${name}: pending`);
    if (want.failed !== undefined) t.same(r.state.failed, want.failed, `${name}: failed`);
    if (r.revision !== null) t.equal(r.state.booted, r.revision, `${name}: booted`);
  }
});

t.test('a failed update, boot by boot, and a successful one', async (t) => {
  // extlinux: every boot's entry names the pending revision until the entries are rewritten.
  let s = base({ good: G, booted: G, pending: pend(3, 3) });
  const boots: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = selectRevision({ state: s, cmdlineRevision: P, health: allOk });
    boots.push(`${r.kind}:${r.state.pending?.triesLeft ?? '-'}`);
    s = r.state;
  }
  t.same(boots, ['pending:2', 'pending:1', 'pending:0', 'good:-', 'good:-'], 'three tries, then good for good');
  t.same(s.failed, [P]);
  t.equal(nextBootRevision(s), G);

  // systemd-boot: after three tries it boots the good entry itself.
  s = base({ good: G, booted: G, pending: pend(3, 3) });
  for (const cmd of [P, P, P, G]) s = selectRevision({ state: s, cmdlineRevision: cmd, health: allOk }).state;
  t.same(s.failed, [P], 'the fallback entry records the failure too');
  t.equal(s.pending, null);
});

t.test('cmdlineRevision reads the last git-revision= of a command line', async (t) => {
  t.equal(cmdlineRevision('boot=gitroot quiet'), null);
  t.equal(cmdlineRevision(`BOOT_IMAGE=/vmlinuz git-revision=${P} quiet\n`), P);
  t.equal(cmdlineRevision(`git-revision=${P} git-revision=${G}`), G, 'the last one wins, as for the kernel');
  t.equal(cmdlineRevision(`git-revision="${P}"`), P, 'quotes removed');
  t.equal(cmdlineRevision('quiet git-revision'), '', 'a bare key is an empty value (not an id)');
  t.equal(cmdlineRevision(`xgit-revision=${P}`), null, 'only the whole key');
  t.equal(cmdlineRevision(`update-revision=${P}`), null);
});
