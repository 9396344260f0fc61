/**
 * lib/boot/loader-count.ts: the boot loader's count of the pending revision's tries folded into
 * the state. First every combination of pending (none, 0 to 3 of 3 tries left), booted (none,
 * the pending revision, the good one, another) and the loader's entries (none, the pending
 * revision's entry plain or with every counter from +3 to +0-3, an entry with the pending id but
 * another revision, a counted entry of another revision) against an independent statement of
 * the rule. Then a model of systemd-boot (entries named by planBootEntries, counters kept by the
 * BLS writer's rule, tried entries renamed before their kernel starts, entries without tries
 * sorted last, `default gitroot-*`) driven through seeded random lives of stagings, kernels that
 * panic before the initramfs, boots that complete or fail their health checks: after every
 * complete boot the state's count is never above the loader's, and a revision the loader gave
 * up on is failed, never booted again and never staged again unless forced.
 */
// needs: none
import t from 'tap';
import { applyLoaderCount, pendingLoaderCount } from '../lib/boot/loader-count.js';
import { selectRevision, planMarkGood } from '../lib/boot/boot-select.js';
import { type BootPlan, entryId, planBootEntries } from '../lib/bootloader/boot-plan.js';
import type { InstalledEntry } from '../lib/bootloader/bootloader.js';
import { type DeployState, type StagedRevision, emptyState, parseState } from '../lib/home/home-state.js';
import { planStage, planStagedState } from '../lib/deploy/deploy-stage.js';
import { mulberry32 } from './helpers/seeded-random.js';

const P = 'a'.repeat(40);
const G = 'b'.repeat(40);
const O = 'c'.repeat(40);
const T0 = '2026-05-06T07:08:09.000Z';
const rec = (sha: string): StagedRevision => ({
  kernelDir: sha,
  kernel: 'vmlinuz',
  initrd: 'initrd.img',
  kernelVersion: null,
  kernelSource: null,
  options: 'boot=gitroot',
  stagedAt: T0,
});

function entry(revision: string, tries: { left: number; done: number } | null, id = entryId(revision)): InstalledEntry {
  const suffix = tries === null ? '' : `+${tries.left}${tries.done > 0 ? `-${tries.done}` : ''}`;
  return {
    id,
    file: `/efi/loader/entries/${id}${suffix}.conf`,
    revision,
    title: null,
    linux: null,
    initrd: null,
    options: `boot=gitroot git-revision=${revision}`,
    tries,
  };
}

t.test('every state and loader count: the lower count wins, and a pending revision the loader gave up on fails while another runs', async (t) => {
  let cases = 0;
  const problems: string[] = [];
  const counters = [
    null,
    ...[3, 2, 1, 0].flatMap((left) => [
      { left, done: 0 },
      { left, done: 3 - left },
    ]),
  ];
  for (const triesLeft of [null, 3, 2, 1, 0]) {
    for (const booted of [null, P, G, O]) {
      const pending = triesLeft === null ? null : { revision: P, triesLeft, tries: 3, stagedAt: T0 };
      const state = parseState(JSON.stringify({ ...emptyState(), good: G, booted, pending, staged: { [P]: rec(P), [G]: rec(G) } }), 'case');
      const entrySets: Array<{ what: string; entries: InstalledEntry[]; count: { left: number } | null }> = [
        { what: 'no entries', entries: [], count: null },
        { what: 'only the good entry', entries: [entry(G, null)], count: null },
        ...counters.map((c) => ({ what: `P ${c === null ? 'plain' : `+${c.left}-${c.done}`}`, entries: [entry(G, null), entry(P, c)], count: c })),
        { what: "P's id naming another revision", entries: [entry(O, { left: 0, done: 3 }, entryId(P))], count: null },
        { what: 'another revision counted out', entries: [entry(O, { left: 0, done: 3 })], count: null },
      ];
      for (const set of entrySets) {
        cases++;
        const label = `pending ${triesLeft ?? '-'}, booted ${booted === null ? '-' : { [P]: 'P', [G]: 'G', [O]: 'O' }[booted]}, ${set.what}`;
        const count = pendingLoaderCount(state, set.entries);
        const v = applyLoaderCount(state, count);
        // The rule, stated independently.
        const loaderLeft = pending === null ? null : (set.count?.left ?? null);
        const lower = pending !== null && loaderLeft !== null && loaderLeft < pending.triesLeft;
        const fails = lower && loaderLeft === 0 && booted !== P;
        const expected: DeployState = !lower
          ? state
          : fails
            ? { ...state, pending: null, failed: [P] }
            : { ...state, pending: { ...pending!, triesLeft: loaderLeft! } };
        if (JSON.stringify(v.state) !== JSON.stringify(expected))
          problems.push(`${label}: got ${JSON.stringify(v.state.pending)} failed ${JSON.stringify(v.state.failed)}`);
        if ((v.note !== null) !== lower) problems.push(`${label}: note ${v.note}`);
        if (v.failed !== (fails ? P : null)) problems.push(`${label}: failed ${v.failed}`);
        if (v.note !== null && !v.note.includes(P)) problems.push(`${label}: the note does not name the revision`);
        try {
          parseState(JSON.stringify(v.state), label);
        } catch (e) {
          problems.push(`${label}: ${(e as Error).message}`);
        }
        // A revision the loader gave up on is not what the next boot picks.
        if (fails && selectRevision({ state: v.state, cmdlineRevision: null, health: () => 'ok' }).revision === P) problems.push(`${label}: P boots again`);
      }
    }
  }
  t.same(problems, []);
  t.equal(cases, 5 * 4 * 13, `${cases} cases`);
});

/** systemd-boot, as far as gitroot relies on it: entry files with counters, the default pattern, bad entries last. */
class SystemdBoot {
  /** Entry id -> its counter (null: plain), as in the file names. */
  files = new Map<string, { revision: string; role: string; tries: { left: number; done: number } | null }>();

  /** What gitroot's BLS writer does with a plan: an existing file keeps its counter; a fallback loses one. */
  write(plan: BootPlan): void {
    const next = new Map<string, { revision: string; role: string; tries: { left: number; done: number } | null }>();
    for (const e of plan.entries) {
      const old = this.files.get(e.id);
      const tries = e.tries === null ? null : (old?.tries ?? { left: e.tries, done: 0 });
      next.set(e.id, { revision: e.revision, role: e.role, tries });
    }
    this.files = next;
  }

  installed(): InstalledEntry[] {
    return [...this.files].map(([id, f]) => entry(f.revision, f.tries, id));
  }

  /** The entry the loader starts (first by sort key among those with tries left, then the used-up ones), counting its try. */
  boot(): { revision: string; counted: boolean } | null {
    const sorted = [...this.files].sort(([, a], [, b]) => {
      const bad = (x: typeof a) => (x.tries !== null && x.tries.left === 0 ? 1 : 0);
      return bad(a) - bad(b) || (a.role === 'pending' ? 0 : 1) - (b.role === 'pending' ? 0 : 1);
    });
    const first = sorted[0];
    if (first === undefined) return null;
    const [, f] = first;
    if (f.tries !== null && f.tries.left > 0) {
      f.tries = { left: f.tries.left - 1, done: f.tries.done + 1 };
      return { revision: f.revision, counted: true };
    }
    return { revision: f.revision, counted: false };
  }

  /** systemd-bless-boot after boot-complete.target: the booted entry loses its counter. */
  bless(revision: string): void {
    const f = this.files.get(entryId(revision));
    if (f !== undefined && f.tries !== null) f.tries = null;
  }
}

t.test('random lives under a model of systemd-boot: kernels that panic are counted by the loader and their revisions fail', async (t) => {
  const seed = Number(process.env.GITROOT_WALK_SEED ?? 20261203);
  const rand = mulberry32(seed);
  const revs = Array.from({ length: 8 }, (_, i) => (i + 1).toString(16).repeat(40).slice(0, 40));
  const location = { kernelRoot: '/gitroot', copy: true };
  const problems: string[] = [];
  const stats: Record<string, number> = {};
  const count = (k: string) => {
    stats[k] = (stats[k] ?? 0) + 1;
  };
  for (let life = 0; life < 400 && problems.length === 0; life++) {
    // Each revision is, for the whole life, one whose kernel panics, one whose userspace fails its
    // health checks, or a good one.
    const nature = new Map(revs.map((r) => [r, r === revs[0] ? 'good' : (['panics', 'vetoed', 'good', 'good'] as const)[Math.floor(rand() * 4)]]));
    let state: DeployState = { ...emptyState(), good: revs[0], booted: revs[0], staged: { [revs[0]]: rec(revs[0]) } };
    const loader = new SystemdBoot();
    loader.write(planBootEntries(state, location));
    const gaveUp = new Set<string>();
    // A fetch runs only in a system that is up: after a boot that got to the health checks.
    let up = true;
    for (let step = 0; step < 60 && problems.length === 0; step++) {
      const where = `life ${life} step ${step} (seed ${seed})`;
      if (up && rand() < 0.3) {
        // A fetch stages the fleet's tip (forced now and then: update-revision= names it).
        const sha = revs[1 + Math.floor(rand() * (revs.length - 1))];
        const force = rand() < 0.05;
        const d = planStage(state, sha, force);
        if (gaveUp.has(sha) && !force && d.action === 'stage') problems.push(`${where}: a revision the loader gave up on is staged again`);
        if (d.action === 'stage') {
          state = planStagedState(state, sha, rec(sha), 1 + Math.floor(rand() * 3), new Date(T0));
          gaveUp.delete(sha);
        } else if (d.action === 'clear-pending') state = { ...state, pending: null };
        loader.write(planBootEntries(state, location));
        continue;
      }
      up = false;
      const started = loader.boot();
      if (started === null) {
        problems.push(`${where}: no entry`);
        break;
      }
      if (gaveUp.has(started.revision) && started.counted) problems.push(`${where}: the loader tried a revision it gave up on`);
      if (nature.get(started.revision) === 'panics') {
        // The kernel never reaches gitroot's initramfs: only the loader counted this try.
        count('panic');
        const f = loader.files.get(entryId(started.revision));
        if (f?.tries?.left === 0) gaveUp.add(started.revision);
        continue;
      }
      const sel = selectRevision({ state, cmdlineRevision: started.revision, health: () => 'ok' });
      if (sel.revision === null) {
        problems.push(`${where}: nothing boots`);
        break;
      }
      state = sel.state;
      if (nature.get(sel.revision) === 'panics') {
        count('panic after the initramfs');
        continue;
      }
      up = true;
      // The boot completes: the loader is blessed (the booted entry was counted), then mark-good
      // reads the entries and, unless a health check vetoes, marks the revision good.
      if (started.counted && started.revision === sel.revision && nature.get(sel.revision) !== 'vetoed') loader.bless(sel.revision);
      const v = applyLoaderCount(state, pendingLoaderCount(state, loader.installed()));
      if (v.failed !== null) count('failed by the loader count');
      if (nature.get(sel.revision) === 'vetoed') {
        count('vetoed');
        state = v.state;
      } else {
        count('marked good');
        state = planMarkGood(v.state).state;
      }
      loader.write(planBootEntries(state, location));
      parseState(JSON.stringify(state), where);
      const lc = pendingLoaderCount(state, loader.installed());
      if (state.pending !== null && lc !== null && state.pending.triesLeft > lc.left) problems.push(`${where}: the state counts more tries than the loader`);
      for (const r of gaveUp) {
        if (state.pending?.revision === r) problems.push(`${where}: ${r.slice(0, 4)} is still pending after a complete boot, though the loader gave up on it`);
        if (state.good === r) problems.push(`${where}: a revision the loader gave up on is good`);
      }
      if (state.good !== null && nature.get(state.good) !== 'good') problems.push(`${where}: a bad revision became good`);
    }
  }
  t.same(problems, []);
  for (const k of ['panic', 'failed by the loader count', 'vetoed', 'marked good']) t.ok((stats[k] ?? 0) > 0, `${k} happened (${stats[k]})`);
  t.comment(JSON.stringify(stats));
});
