/**
 * The boot decision with fsck verdicts (pure parts): a revision `gitroot fsck` found damaged
 * is passed over like a broken one whenever anything else can boot, and boots only as the
 * last resort; the verdict counts only for the pack set it was made for; the kept revisions
 * fsck plans to check; the report maps each broken object to every revision and path it breaks.
 */
// needs: none
import t from 'tap';
import { type RevisionHealth, selectRevision } from '../lib/boot/boot-select.js';
import { type DeployState, emptyState } from '../lib/home/home-state.js';
import { type FsckVerdict, verdictHealth } from '../lib/fsck/fsck-verdict.js';
import { buildReport, planRoots, verdictOf } from '../lib/fsck/fsck-report.js';
import type { WalkResult } from '../lib/fsck/fsck-walk.js';

const P = 'a'.repeat(40);
const G = 'b'.repeat(40);
const Q = 'c'.repeat(40);
const B = 'e'.repeat(40);
const T0 = '2026-05-06T07:08:09.000Z';
const REVS = [P, G, Q, B];

function* states(): Generator<DeployState> {
  for (const pending of [null, 0, 2]) {
    for (const good of [null, G]) {
      for (const previousGood of [[], [Q]]) {
        for (const booted of [null, B, G]) {
          yield {
            ...emptyState(),
            good,
            previousGood,
            booted,
            pending: pending === null ? null : { revision: P, triesLeft: pending, tries: 3, stagedAt: T0 },
          };
        }
      }
    }
  }
}

t.test('damaged revisions: passed over while anything else boots, the last resort otherwise', async (t) => {
  const healths: RevisionHealth[] = ['ok', 'broken', 'damaged'];
  let cases = 0;
  let lastResort = 0;
  let avoided = 0;
  for (const state of states()) {
    for (const cmdline of [null, G, Q]) {
      for (let mask = 0; mask < 3 ** REVS.length; mask++) {
        const h: Record<string, RevisionHealth> = {};
        let m = mask;
        for (const r of REVS) {
          h[r] = healths[m % 3];
          m = Math.floor(m / 3);
        }
        const sel = selectRevision({ state, cmdlineRevision: cmdline, health: (s) => h[s] ?? 'missing' });
        // The spec, from the rules without the fsck verdict: damaged counts as broken first...
        const strict = selectRevision({ state, cmdlineRevision: cmdline, health: (s) => (h[s] === 'damaged' ? 'broken' : (h[s] ?? 'missing')) });
        // ...and as readable only when nothing else can boot.
        const loose = selectRevision({ state, cmdlineRevision: cmdline, health: (s) => (h[s] === 'damaged' ? 'ok' : (h[s] ?? 'missing')) });
        cases++;
        if (strict.revision !== null) {
          if (sel.revision !== strict.revision || sel.kind !== strict.kind)
            t.fail(`chose ${sel.revision} over undamaged ${strict.revision}`, { state, h, cmdline });
          if (Object.values(h).includes('damaged') && loose.revision !== strict.revision) avoided++;
          if (JSON.stringify(sel.state) !== JSON.stringify(strict.state)) t.fail('state differs from the strict decision', { state, h });
        } else if (loose.revision !== null && h[loose.revision] === 'damaged') {
          lastResort++;
          if (sel.revision !== loose.revision) t.fail(`last resort should be ${loose.revision}, got ${sel.revision}`, { state, h, cmdline });
          if (!/damaged/.test(sel.reason)) t.fail(`the reason says why a damaged revision boots: ${sel.reason}`);
        } else if (sel.revision !== null) {
          t.fail(`nothing can boot, yet ${sel.revision} was chosen`, { state, h, cmdline });
        }
        if (sel.revision !== null && h[sel.revision] === 'broken') t.fail('a broken revision was chosen');
      }
    }
  }
  t.ok(avoided > 100, `${avoided} cases where a damaged revision would have booted and an undamaged one did instead`);
  t.ok(lastResort > 100, `${lastResort} cases where only damaged revisions were left and one booted`);
  t.pass(`${cases} cases checked`);
});

t.test('a damaged pending revision uses a try and the good one boots; only damaged ones left: the first in order boots', async (t) => {
  const state: DeployState = { ...emptyState(), good: G, booted: G, pending: { revision: P, triesLeft: 3, tries: 3, stagedAt: T0 } };
  const sel = selectRevision({ state, cmdlineRevision: null, health: (s) => (s === P ? 'damaged' : 'ok') });
  t.equal(sel.revision, G);
  t.equal(sel.kind, 'good');
  t.match(sel.reason, /pending revision a{12} is damaged \(gitroot fsck found/);
  t.equal(sel.state.pending?.triesLeft, 2, 'the boot of the damaged pending revision was attempted: one try used');

  const worst = selectRevision({ state, cmdlineRevision: null, health: (s) => (s === P || s === G ? 'damaged' : 'missing') });
  t.equal(worst.revision, P, 'the pending revision, first in order, boots as the last resort');
  t.equal(worst.kind, 'pending');
  t.equal(worst.state.pending?.triesLeft, 2, 'and uses exactly one try');
  t.match(worst.reason, /nothing undamaged can boot/);
  t.ok(worst.notes.some((n) => /boots although damaged/.test(n)));
});

t.test('verdictHealth: as recorded while the packs are the same; after they changed, only while a listed object still fails', async (t) => {
  const X1 = '1'.repeat(40);
  const X2 = '2'.repeat(40);
  const v: FsckVerdict = {
    version: 1,
    checkedAt: T0,
    packSet: 'k1',
    clean: false,
    revisions: { [P]: 'broken', [G]: 'ok', [Q]: 'missing' },
    brokenObjects: { [P]: [X1, X2] },
  };
  const never = () => t.fail('no object is read while the pack set is unchanged');
  t.equal(
    verdictHealth(v, 'k1', P, () => {
      never();
      return false;
    }),
    'damaged',
  );
  t.equal(verdictHealth(v, 'k1', Q), 'damaged');
  t.equal(verdictHealth(v, 'k1', G), null, 'found fine');
  t.equal(verdictHealth(v, 'k1', B), null, 'not checked');
  const asked: string[] = [];
  t.equal(
    verdictHealth(v, 'k2', P, (oid) => {
      asked.push(oid);
      return oid === X2;
    }),
    'damaged',
    'packs changed, one object still broken',
  );
  t.same(asked, [X1, X2], 'the listed objects are re-read');
  t.equal(
    verdictHealth(v, 'k2', P, () => false),
    null,
    'packs changed and every listed object reads now: repaired',
  );
  t.equal(
    verdictHealth(v, 'k2', Q, () => true),
    null,
    'no object listed: a changed pack set retires it',
  );
  t.equal(
    verdictHealth({ ...v, brokenObjects: undefined }, 'k2', P, () => true),
    null,
    'a verdict without the list: retired too',
  );
  t.equal(verdictHealth(null, 'k1', P), null, 'no verdict');
});

t.test('planRoots: every kept revision once, with all its roles; refs by what they name', async (t) => {
  const state: DeployState = {
    ...emptyState(),
    good: G,
    booted: G,
    previousGood: [Q],
    pending: { revision: P, triesLeft: 1, tries: 3, stagedAt: T0 },
    staged: { [P]: { kernelDir: P, kernel: 'vmlinuz', initrd: 'initrd.img', kernelVersion: null, kernelSource: null, options: '', stagedAt: T0 } },
  };
  const roots = planRoots(state, [
    { name: 'refs/gitroot/fetched/main', oid: P },
    { name: 'refs/tags/v1', oid: B, peeled: Q },
    { name: 'refs/heads/x', oid: G, symref: 'refs/heads/y' },
  ]);
  t.same(roots, [
    { revision: G, roles: ['good', 'booted'] },
    { revision: P, roles: ['pending', 'staged', 'ref:refs/gitroot/fetched/main'] },
    { revision: Q, roles: ['previous-good'] },
    { revision: B, roles: ['ref:refs/tags/v1'] },
  ]);
  t.same(planRoots(emptyState(), []), [], 'a fresh home keeps nothing');
});

t.test('buildReport: each broken object lists every revision and path it breaks; clean only when nothing is found', async (t) => {
  const X = '9'.repeat(40);
  const walk: WalkResult = {
    revisions: [
      {
        revision: P,
        roles: ['pending'],
        status: 'broken',
        broken: [
          { oid: X, path: 'usr/bin/ls' },
          { oid: X, path: 'bin/ls' },
        ],
        manifest: { status: 'ok', entries: 3 },
      },
      { revision: G, roles: ['good'], status: 'broken', broken: [{ oid: X, path: 'usr/bin/ls' }], manifest: { status: 'ok', entries: 3 } },
      { revision: Q, roles: ['previous-good'], status: 'ok', broken: [], manifest: { status: 'absent' } },
    ],
    broken: new Map([[X, { oid: X, problem: 'corrupt', expected: 'blob', where: '/r/objects/pack/p.pack', detail: 'incorrect data check' }]]),
    reachable: new Set([X]),
    packs: [],
    damagedCopies: [],
    objectsChecked: 10,
    bytesChecked: 100,
  };
  const r = buildReport(walk, { repo: '/r', checkedAt: T0, durationMs: 5, complete: true });
  t.equal(r.clean, false);
  t.same(
    r.objects.map((o) => o.breaks),
    [
      [
        { revision: P, paths: ['bin/ls', 'usr/bin/ls'] },
        { revision: G, paths: ['usr/bin/ls'] },
      ],
    ],
  );
  t.same(verdictOf(r, 'k').revisions, { [P]: 'broken', [G]: 'broken', [Q]: 'ok' });
  t.same(verdictOf(r, 'k').brokenObjects, { [P]: [X], [G]: [X] }, 'each broken revision lists its broken objects once');
  const clean = buildReport({ ...walk, revisions: [walk.revisions[2]], broken: new Map() }, { repo: '/r', checkedAt: T0, durationMs: 5, complete: true });
  t.equal(clean.clean, true);
  const packBad = buildReport(
    {
      ...walk,
      revisions: [walk.revisions[2]],
      broken: new Map(),
      packs: [{ pack: 'p.pack', index: 'p.idx', objects: 1, bytes: 1, problems: ['the .pack checksum does not match its content'] }],
    },
    { repo: '/r', checkedAt: T0, durationMs: 5, complete: true },
  );
  t.equal(packBad.clean, false, 'a pack failing its checksum is damage even when every object reads');
});
