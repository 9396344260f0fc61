/**
 * Crash order of boot entries and state.json in mark-bad, rollback and a staging that replaces a
 * pending revision: a cut after the entries and before state.json must not leave the state's
 * pending revision without its entry (docs/deploy.md). Deterministic: the boot loader is
 * wrapped so that after each entry write (the instant a power cut could land) the state on
 * disk and the entries on disk are compared: the revision `gitroot select` picks from that
 * state (no git-revision= typed) must have an entry, and every entry's kernel and initrd must
 * exist.
 */
// needs: git
import t from 'tap';
import type { Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { applyTransition } from '../lib/boot/transitions.js';
import { decideBoot } from '../lib/boot/boot-decide.js';
import { readHealth } from '../lib/boot/revision-health.js';
import { selectRevision } from '../lib/boot/boot-select.js';
import type { Bootloader } from '../lib/bootloader/bootloader.js';
import { createBootloader } from '../lib/bootloader/create-bootloader.js';
import { readState } from '../lib/home/home-state.js';
import { stageRevision } from '../lib/deploy/deploy-stage.js';
import { commitSpec, debianRoot } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';

interface Home {
  home: string;
  boot: string;
  R: string[];
}

async function makeHome(t: Test, loader: 'bls' | 'extlinux'): Promise<Home> {
  const work = tempDir(t, `entry-order-${loader}`);
  const home = path.join(work, 'gitroot');
  const boot = path.join(work, 'boot');
  fs.mkdirSync(home);
  fs.mkdirSync(boot);
  const repo = path.join(home, 'repo.git');
  const R = ['1', '2', '3'].map((n) => commitSpec(work, repo, debianRoot(`6.1.0-${n}-amd64`, `R${n}`)));
  return { home, boot, R };
}

/** Problems of the home as it is on disk now. */
function problems(h: Home, loader: 'bls' | 'extlinux'): string[] {
  const state = readState(h.home);
  const sel = selectRevision({ state, cmdlineRevision: null, health: (sha) => readHealth(h.home, sha) });
  const installed = createBootloader(loader, { homeDir: h.home, bootDir: h.boot }).readEntries();
  const out: string[] = [];
  if (sel.revision === null) out.push('nothing selectable');
  else if (!installed.entries.some((e) => e.revision === sel.revision)) {
    out.push(
      `state selects ${sel.kind} ${sel.revision.slice(0, 8)} but no entry boots it (entries: ${installed.entries.map((e) => e.revision?.slice(0, 8)).join(' ')})`,
    );
  }
  for (const e of installed.entries) {
    for (const f of [e.linux, e.initrd]) if (f !== null && !fs.existsSync(path.join(h.boot, f))) out.push(`${e.id}: ${f} missing`);
  }
  return out;
}

/** The real backend, checking the home after every entry write (where a power cut could land). */
function probed(h: Home, loader: 'bls' | 'extlinux', seen: string[]): Bootloader {
  const real = createBootloader(loader, { homeDir: h.home, bootDir: h.boot });
  return new Proxy(real, {
    get(target, key, receiver) {
      if (key !== 'writeEntries') return Reflect.get(target, key, receiver);
      return (...a: Parameters<Bootloader['writeEntries']>) => {
        target.writeEntries(...a);
        seen.push(...problems(h, loader).map((p) => `after an entry write: ${p}`));
      };
    },
  });
}

const boot = (h: Home) => decideBoot({ dir: h.home, cmdline: 'boot=gitroot quiet', persist: true });

for (const loader of ['bls', 'extlinux'] as const) {
  t.test(`${loader}: mark-bad of the booted pending revision`, async (t) => {
    const h = await makeHome(t, loader);
    await stageRevision({ dir: h.home, sha: h.R[0], bootloader: loader, bootDir: h.boot, tries: 3 });
    await boot(h);
    await applyTransition({ dir: h.home, action: 'mark-good', bootloader: loader, bootDir: h.boot });
    await stageRevision({ dir: h.home, sha: h.R[1], bootloader: loader, bootDir: h.boot, tries: 3 });
    t.equal((await boot(h)).revision, h.R[1], 'the pending revision boots');
    const seen: string[] = [];
    await applyTransition({ dir: h.home, action: 'mark-bad', bootloader: probed(h, loader, seen), bootDir: h.boot });
    t.same(seen, [], 'at every instant, what select picks has an entry');
    t.same(problems(h, loader), [], 'afterwards too');
    t.same(readState(h.home).failed, [h.R[1]]);
  });

  t.test(`${loader}: rollback with a pending revision`, async (t) => {
    const h = await makeHome(t, loader);
    for (const r of [h.R[0], h.R[1]]) {
      await stageRevision({ dir: h.home, sha: r, bootloader: loader, bootDir: h.boot, tries: 3 });
      await boot(h);
      await applyTransition({ dir: h.home, action: 'mark-good', bootloader: loader, bootDir: h.boot });
    }
    await stageRevision({ dir: h.home, sha: h.R[2], bootloader: loader, bootDir: h.boot, tries: 3 });
    const seen: string[] = [];
    await applyTransition({ dir: h.home, action: 'rollback', bootloader: probed(h, loader, seen), bootDir: h.boot });
    t.same(seen, [], 'at every instant, what select picks has an entry');
    t.same(problems(h, loader), [], 'afterwards too');
  });

  t.test(`${loader}: staging replaces a pending revision`, async (t) => {
    const h = await makeHome(t, loader);
    await stageRevision({ dir: h.home, sha: h.R[0], bootloader: loader, bootDir: h.boot, tries: 3 });
    await boot(h);
    await applyTransition({ dir: h.home, action: 'mark-good', bootloader: loader, bootDir: h.boot });
    await stageRevision({ dir: h.home, sha: h.R[1], bootloader: loader, bootDir: h.boot, tries: 3 });
    const seen: string[] = [];
    await stageRevision({ dir: h.home, sha: h.R[2], bootloader: probed(h, loader, seen), tries: 3 });
    t.same(seen, [], 'at every instant, what select picks has an entry');
    t.same(problems(h, loader), [], 'afterwards too');
    t.equal(readState(h.home).pending?.revision, h.R[2]);
  });
}
