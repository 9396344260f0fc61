/**
 * The one crash-ordered state change (lib/deploy/state-change.ts) on real homes with the real
 * BLS and extlinux backends: the order of its writes (entries of both states, state.json, the
 * new entries only), the undo when a step before the state write fails (the old entries back,
 * a kernel directory made for the new state removed, state.json untouched), a failure after
 * the state write reported as a warning, and an unchanged state that only brings stray entries
 * and kernel directories back in line. Faults are injected by wrapping the real backend.
 */
// needs: git
import t from 'tap';
import type { Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import type { Bootloader } from '../lib/bootloader/bootloader.js';
import { createBootloader } from '../lib/bootloader/create-bootloader.js';
import { stageRevision } from '../lib/deploy/deploy-stage.js';
import { applyStateChange } from '../lib/deploy/state-change.js';
import { bootFilesDir, statePath } from '../lib/home/home-layout.js';
import { acquireLock, releaseLock } from '../lib/home/home-lock.js';
import { type DeployState, readState, withFailed, withGood } from '../lib/home/home-state.js';
import { commitSpec, debianRoot } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';

type Loader = 'bls' | 'extlinux';
interface Home {
  home: string;
  boot: string;
  R: string[];
  loader: Loader;
}

/** A home with R1 good and R2 pending, both staged (kernels in D/boot and copies in $BOOT). */
async function makeHome(t: Test, loader: Loader): Promise<Home> {
  const work = tempDir(t, `state-change-${loader}`);
  const home = path.join(work, 'gitroot');
  const boot = path.join(work, 'boot');
  fs.mkdirSync(home);
  fs.mkdirSync(boot);
  const repo = path.join(home, 'repo.git');
  const R = ['1', '2'].map((n) => commitSpec(work, repo, debianRoot(`6.1.0-${n}-amd64`, `R${n}`)));
  await stageRevision({ dir: home, sha: R[0], bootloader: loader, bootDir: boot, tries: 3 });
  const lock = await acquireLock(home);
  try {
    // R1 becomes good directly (what mark-good after its boot would write).
    const s = readState(home);
    applyStateChange({ dir: home, lock, bootloader: backend({ home, boot, R, loader }), before: s, next: withGood({ ...s, booted: R[0] }, R[0]) });
  } finally {
    releaseLock(lock);
  }
  await stageRevision({ dir: home, sha: R[1], bootloader: loader, bootDir: boot, tries: 3 });
  return { home, boot, R, loader };
}

function backend(h: Home): Bootloader {
  return createBootloader(h.loader, { homeDir: h.home, bootDir: h.boot });
}

/** Revisions of the entries on disk, sorted. */
function entryRevisions(h: Home): string[] {
  return backend(h)
    .readEntries()
    .entries.map((e) => e.revision ?? '?')
    .sort();
}

/** Revisions the state's entries need: pending and good. */
function needed(s: DeployState): string[] {
  return [s.pending?.revision, s.good].filter((r): r is string => typeof r === 'string').sort();
}

/**
 * The real backend; `fail(n)` says whether the n-th (from 1) writeEntries call throws instead,
 * and every call records the revisions on disk and the state's after it.
 */
function faulty(h: Home, fail: (n: number) => boolean, log: string[][]): Bootloader {
  const real = backend(h);
  let n = 0;
  return new Proxy(real, {
    get(target, key, receiver) {
      if (key !== 'writeEntries') return Reflect.get(target, key, receiver);
      return (...a: Parameters<Bootloader['writeEntries']>) => {
        n++;
        if (fail(n)) throw Object.assign(new Error(`injected failure of entry write ${n}`), { code: 'EIO' });
        target.writeEntries(...a);
        log.push([...entryRevisions(h), '|', ...needed(readState(h.home))]);
      };
    },
  });
}

async function withHomeLock<T>(h: Home, fn: (lock: Awaited<ReturnType<typeof acquireLock>>) => T): Promise<T> {
  const lock = await acquireLock(h.home);
  try {
    return fn(lock);
  } finally {
    releaseLock(lock);
  }
}

for (const loader of ['bls', 'extlinux'] as const) {
  t.test(`${loader}: entries of both states, then the state, then the new entries only`, async (t) => {
    const h = await makeHome(t, loader);
    const before = readState(h.home);
    const next = withFailed(before, h.R[1]);
    const log: string[][] = [];
    const r = await withHomeLock(h, (lock) => applyStateChange({ dir: h.home, lock, bootloader: faulty(h, () => false, log), before, next }));
    t.ok(r.written, 'state.json written');
    t.same(readState(h.home), next, 'the state on disk is the new one');
    t.same(
      log,
      [
        [...[h.R[0], h.R[1]].sort(), '|', ...needed(before)],
        [h.R[0], '|', h.R[0]],
      ],
      "first both states' entries under the old state, then only the new state's under the new one",
    );
    for (const entry of log) {
      const [onDisk, need] = [entry.slice(0, entry.indexOf('|')), entry.slice(entry.indexOf('|') + 1)];
      t.ok(
        need.every((r) => onDisk.includes(r)),
        `after each write the entries include every one the state on disk needs (${need.length})`,
      );
    }
    t.same(r.warnings, []);
  });

  t.test(`${loader}: a failed first entry write changes nothing`, async (t) => {
    const h = await makeHome(t, loader);
    const before = readState(h.home);
    const stateText = fs.readFileSync(statePath(h.home), 'utf8');
    const entriesBefore = entryRevisions(h);
    const log: string[][] = [];
    await t.rejects(
      withHomeLock(h, (lock) => applyStateChange({ dir: h.home, lock, bootloader: faulty(h, (n) => n === 1, log), before, next: withFailed(before, h.R[1]) })),
      /^write boot entries: injected failure/,
      'the error names the step',
    );
    t.equal(fs.readFileSync(statePath(h.home), 'utf8'), stateText, 'state.json byte-identical');
    t.same(entryRevisions(h), entriesBefore, 'the old entries are back');
  });

  t.test(`${loader}: a failed state write puts the old entries back and removes the new kernel directory`, async (t) => {
    const h = await makeHome(t, loader);
    const before = readState(h.home);
    const stateText = fs.readFileSync(statePath(h.home), 'utf8');
    const entriesBefore = entryRevisions(h);
    // A kernel directory made for the new state (as staging makes one before the change).
    const made = 'f'.repeat(40);
    fs.cpSync(path.join(bootFilesDir(h.home), before.staged[h.R[1]].kernelDir as string), path.join(bootFilesDir(h.home), made), { recursive: true });
    // The new state stages `made` in place of R2 (as a staging that replaces a pending revision).
    const next: DeployState = {
      ...before,
      pending: { ...before.pending!, revision: made },
      staged: { ...before.staged, [made]: { ...before.staged[h.R[1]], kernelDir: made } },
    };
    const lock = await acquireLock(h.home);
    const log: string[][] = [];
    const bl = faulty(h, () => false, log);
    // The lock is taken away before the state write (what a broken lock would look like): writeState refuses.
    const stolen = new Proxy(bl, {
      get(target, key, receiver) {
        if (key !== 'writeEntries') return Reflect.get(target, key, receiver);
        return (...a: Parameters<Bootloader['writeEntries']>) => {
          target.writeEntries(...a);
          if (log.length === 1) releaseLock(lock);
        };
      },
    });
    t.throws(() => applyStateChange({ dir: h.home, lock, bootloader: stolen, before, next, created: made }), /^write state: /, 'the error names the step');
    t.same(log[0].slice(0, log[0].indexOf('|')), [h.R[0], h.R[1], made].sort(), 'the first write had the entries of both states');
    t.equal(fs.readFileSync(statePath(h.home), 'utf8'), stateText, 'state.json byte-identical');
    t.same(entryRevisions(h), entriesBefore, 'the old entries are back');
    t.notOk(fs.existsSync(path.join(bootFilesDir(h.home), made)), 'the kernel directory made for the new state is gone');
  });

  t.test(`${loader}: a failure after the state write is a warning`, async (t) => {
    const h = await makeHome(t, loader);
    const before = readState(h.home);
    const next = withFailed(before, h.R[1]);
    const log: string[][] = [];
    const r = await withHomeLock(h, (lock) => applyStateChange({ dir: h.home, lock, bootloader: faulty(h, (n) => n === 2, log), before, next }));
    t.same(readState(h.home), next, 'the change is made');
    t.match(r.warnings.join('\n'), /remove old boot entries: injected failure of entry write 2.*next staging tries again/, 'said as a warning');
    t.same(entryRevisions(h), [h.R[0], h.R[1]].sort(), 'only extra entries remain');
  });

  t.test(`${loader}: an unchanged state brings stray entries and kernels back in line`, async (t) => {
    const h = await makeHome(t, loader);
    const state = readState(h.home);
    // What a change killed before its state write leaves: an entry and a kernel directory of a revision the state does not name.
    const stray = 'e'.repeat(40);
    fs.cpSync(path.join(bootFilesDir(h.home), state.staged[h.R[1]].kernelDir as string), path.join(bootFilesDir(h.home), stray), { recursive: true });
    const withStray: DeployState = {
      ...state,
      pending: { ...state.pending!, revision: stray },
      staged: { ...state.staged, [stray]: { ...state.staged[h.R[1]], kernelDir: stray } },
    };
    const { planBootEntries, unionPlan } = await import('../lib/bootloader/boot-plan.js');
    const bl = backend(h);
    bl.writeEntries(unionPlan(planBootEntries(state, bl.location), planBootEntries(withStray, bl.location)));
    t.ok(entryRevisions(h).includes(stray), 'the stray entry is on disk');
    const stateText = fs.readFileSync(statePath(h.home), 'utf8');
    const r = await withHomeLock(h, (lock) => applyStateChange({ dir: h.home, lock, bootloader: backend(h), before: state, next: state }));
    t.notOk(r.written, 'state.json not written');
    t.equal(fs.readFileSync(statePath(h.home), 'utf8'), stateText, 'state.json byte-identical');
    t.same(entryRevisions(h), needed(state), "only the state's entries remain");
    t.same(r.pruned, [stray], 'the stray kernel directory is removed');
    t.notOk(fs.existsSync(path.join(bootFilesDir(h.home), stray)));
  });
}
