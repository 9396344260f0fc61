/**
 * planBootEntries (lib/bootloader/boot-plan.ts) over every combination of pending (none, with
 * tries left, out of tries, without a staged kernel, without a record), good (none, with a
 * kernel, equal to pending, without a kernel) and booted (none, good, pending, another one,
 * a failed one, one without a kernel), checked against the rules stated once below; plus the
 * command-line handling (per-boot keys dropped, quotes kept).
 */
// needs: none
import t from 'tap';
import type { DeployState, StagedRevision } from '../lib/home/home-state.js';
import { type BootPlan, DEFAULT_BOOT_OPTIONS, baseOptions, entryId, entryOptions, planBootEntries, splitCmdline } from '../lib/bootloader/boot-plan.js';

const sha = (c: string): string => c.repeat(40);
const P = sha('a');
const G = sha('b');
const B = sha('c');
const F = sha('d');
const NK = sha('e');
const T0 = '2026-01-02T03:04:05.000Z';

const withKernel = (dir: string, v: string | null = '6.1.0-10-amd64', initrd = true): StagedRevision => ({
  kernelDir: dir,
  kernel: 'vmlinuz',
  initrd: initrd ? 'initrd.img' : null,
  kernelVersion: v,
  kernelSource: v === null ? null : `boot/vmlinuz-${v}`,
  options: `boot=gitroot quiet git-revision=${F} update-revision=${F}`,
  stagedAt: T0,
});
const noKernel: StagedRevision = { kernelDir: null, kernel: null, initrd: null, kernelVersion: null, kernelSource: null, options: 'x', stagedAt: T0 };

type PendingCase = 'none' | 'tries' | 'out-of-tries' | 'no-kernel' | 'no-record';
type GoodCase = 'none' | 'kernel' | 'is-pending' | 'no-kernel';
type BootedCase = 'none' | 'good' | 'pending' | 'other' | 'failed' | 'no-kernel';

function build(p: PendingCase, g: GoodCase, b: BootedCase): DeployState {
  const staged: Record<string, StagedRevision> = {};
  let pending: DeployState['pending'] = null;
  if (p !== 'none') {
    pending = { revision: P, triesLeft: p === 'out-of-tries' ? 0 : 2, tries: 3, stagedAt: T0 };
    if (p === 'tries' || p === 'out-of-tries') staged[P] = withKernel(P);
    if (p === 'no-kernel') staged[P] = noKernel;
  }
  let good: string | null = null;
  if (g === 'kernel') {
    good = G;
    staged[G] = withKernel(G, '6.1.0-9-amd64');
  } else if (g === 'no-kernel') {
    good = G;
    staged[G] = noKernel;
  } else if (g === 'is-pending') good = P;
  const booted = { none: null, good, pending: pending?.revision ?? null, other: B, failed: F, 'no-kernel': NK }[b];
  if (b === 'other') staged[B] = withKernel(B, null, false);
  if (b === 'failed') staged[F] = withKernel(F);
  if (b === 'no-kernel') staged[NK] = noKernel;
  return { version: 1, good, pending, booted, failed: [F], previousGood: [], staged };
}

const hasKernel = (s: DeployState, rev: string | null): boolean => rev !== null && (s.staged[rev]?.kernelDir ?? null) !== null;

/** The rules, stated independently of the implementation. */
function expected(s: DeployState): { pending: string | null; fallback: string | null; fallbackRole: string | null; defaultRev: string | null } {
  const pending = s.pending !== null && hasKernel(s, s.pending.revision) ? s.pending.revision : null;
  let fallback: string | null = null;
  let fallbackRole: string | null = null;
  if (s.good !== null) {
    if (s.good !== s.pending?.revision && hasKernel(s, s.good)) {
      fallback = s.good;
      fallbackRole = 'good';
    }
  } else if (s.booted !== null && s.booted !== s.pending?.revision && !s.failed.includes(s.booted) && hasKernel(s, s.booted)) {
    fallback = s.booted;
    fallbackRole = 'fallback';
  }
  const pendingBootable = pending !== null && (s.pending?.triesLeft ?? 0) > 0;
  const defaultRev = pendingBootable ? pending : (fallback ?? pending);
  return { pending, fallback, fallbackRole, defaultRev };
}

t.test('every combination of pending, good and booted follows the rules', async (t) => {
  const location = { kernelRoot: '/gitroot', copy: true };
  let combos = 0;
  for (const p of ['none', 'tries', 'out-of-tries', 'no-kernel', 'no-record'] as PendingCase[]) {
    for (const g of ['none', 'kernel', 'is-pending', 'no-kernel'] as GoodCase[]) {
      for (const b of ['none', 'good', 'pending', 'other', 'failed', 'no-kernel'] as BootedCase[]) {
        combos++;
        const name = `pending=${p} good=${g} booted=${b}`;
        const s = build(p, g, b);
        const plan: BootPlan = planBootEntries(s, location);
        const want = expected(s);
        const pend = plan.entries.filter((e) => e.role === 'pending');
        const fall = plan.entries.filter((e) => e.role !== 'pending');
        t.same(
          pend.map((e) => e.revision),
          want.pending === null ? [] : [want.pending],
          `${name}: pending entry`,
        );
        t.same(
          fall.map((e) => e.revision),
          want.fallback === null ? [] : [want.fallback],
          `${name}: fallback entry`,
        );
        if (want.fallbackRole !== null) t.equal(fall[0].role, want.fallbackRole, `${name}: fallback role`);
        t.equal(plan.defaultId, want.defaultRev === null ? null : entryId(want.defaultRev), `${name}: default`);
        t.equal(plan.entries[0]?.id ?? null, plan.defaultId, `${name}: default listed first`);
        t.same(plan.kernelDirs, [...new Set(plan.entries.map((e) => e.kernelDir))], `${name}: kernel dirs`);
        t.equal(new Set(plan.entries.map((e) => e.id)).size, plan.entries.length, `${name}: unique ids`);
        for (const e of plan.entries) {
          const st = s.staged[e.revision];
          t.equal(e.linux, `/gitroot/${st.kernelDir}/vmlinuz`, `${name}: ${e.role} linux path`);
          t.equal(e.initrd, st.initrd === null ? null : `/gitroot/${st.kernelDir}/initrd.img`, `${name}: ${e.role} initrd path`);
          t.equal(e.tries, e.role === 'pending' ? s.pending?.triesLeft : null, `${name}: ${e.role} counter`);
          t.equal(e.sortKey, e.role === 'pending' ? 'gitroot-0' : 'gitroot-1', `${name}: sort key`);
          const opts = splitCmdline(e.options);
          t.equal(opts[opts.length - 1], `git-revision=${e.revision}`, `${name}: git-revision last`);
          t.equal(opts.filter((o) => o.startsWith('git-revision=') || o.startsWith('update-revision=')).length, 1, `${name}: no other per-boot keys`);
          t.notOk(s.failed.includes(e.revision) && e.role !== 'pending', `${name}: no fallback to a failed revision`);
        }
        const missing = [s.pending?.revision, s.good].filter(
          (r): r is string => r !== null && r !== undefined && s.staged[r] !== undefined && !hasKernel(s, r),
        );
        for (const r of missing) t.match(plan.warnings.join('\n'), r, `${name}: warns about ${r.slice(0, 4)}`);
      }
    }
  }
  t.equal(combos, 120);
});

t.test('entry details: ids, titles, versions, in-place kernel root', async (t) => {
  const s = build('tries', 'kernel', 'good');
  const plan = planBootEntries(s, { kernelRoot: '/boot/gitroot-home/boot/', copy: false });
  t.same(
    plan.entries.map((e) => e.id),
    [`gitroot-${'a'.repeat(12)}`, `gitroot-${'b'.repeat(12)}`],
  );
  t.equal(plan.entries[0].title, `gitroot ${'a'.repeat(12)} (next, kernel 6.1.0-10-amd64)`);
  t.equal(plan.entries[1].title, `gitroot ${'b'.repeat(12)} (known good, kernel 6.1.0-9-amd64)`);
  t.equal(plan.entries[1].version, '6.1.0-9-amd64');
  t.equal(plan.entries[0].linux, `/boot/gitroot-home/boot/${P}/vmlinuz`, 'trailing slash of the root is not doubled');
  t.same(plan.entries[0].files, ['vmlinuz', 'initrd.img']);
  const other = planBootEntries(build('none', 'none', 'other'), { kernelRoot: '/gitroot', copy: true });
  t.equal(other.entries[0].title, `gitroot ${'c'.repeat(12)} (last booted)`);
  t.equal(other.entries[0].version, 'c'.repeat(12), 'version falls back to the short revision');
  t.same(other.entries[0].files, ['vmlinuz'], 'no initrd');
  t.same(
    planBootEntries({ version: 1, good: null, pending: null, booted: null, failed: [], previousGood: [], staged: {} }, { kernelRoot: '/gitroot', copy: true }),
    { entries: [], defaultId: null, kernelDirs: [], location: { kernelRoot: '/gitroot', copy: true }, warnings: [] },
  );
});

t.test('command lines: per-boot keys dropped, quotes kept, git-revision added once', async (t) => {
  t.same(splitCmdline('  a=1   b="x y"  c  '), ['a=1', 'b="x y"', 'c']);
  t.same(splitCmdline(''), []);
  t.same(splitCmdline('a="unterminated b'), ['a="unterminated b']);
  t.equal(baseOptions('BOOT_IMAGE=/vmlinuz root=/dev/sda1 initrd=/initrd.img git-revision=abc update-revision=def ro quiet'), 'root=/dev/sda1 ro quiet');
  t.equal(
    baseOptions('boot=gitroot git-revision noupgrade gitroot.tries=2 quiet'),
    'boot=gitroot gitroot.tries=2 quiet',
    'bare per-boot keys go too (noupgrade typed at a prompt is not made permanent); other flags stay',
  );
  t.equal(baseOptions('console=ttyS0\nquiet'), 'console=ttyS0 quiet', 'newlines become spaces');
  t.equal(baseOptions('gitroot.note="a git-revision=x b"'), 'gitroot.note="a git-revision=x b"', 'quoted text is not a key');
  t.equal(entryOptions('boot=gitroot', P), `boot=gitroot git-revision=${P}`);
  t.equal(entryOptions('', P), `git-revision=${P}`);
  t.equal(entryOptions(`git-revision=${G}`, P), `git-revision=${P}`);
  t.equal(DEFAULT_BOOT_OPTIONS, 'boot=gitroot');
});
