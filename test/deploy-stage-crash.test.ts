/**
 * Power-cut safety of stageRevision: a child process stages revisions in a loop (kernels via
 * symlink and via version, a revision without a kernel, a 6 MiB kernel to stretch the copies)
 * and is killed with SIGKILL at a random moment, 24 times, alternating BLS and extlinux. After
 * every kill: state.json parses; every kernel the state names exists in `D/boot/` complete and
 * byte-identical; every boot entry's kernel and initrd exist complete; the known-good entry is
 * always there and the default names an existing entry. Then a staging in this process breaks
 * the dead child's lock and leaves exactly the expected entries, kernels and no leftovers.
 */
// needs: git
import t from 'tap';
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { readState, withGood, writeState } from '../lib/home/home-state.js';
import { withLock } from '../lib/home/home-lock.js';
import { stageRevision } from '../lib/deploy/deploy-stage.js';
import { planBootEntries } from '../lib/bootloader/boot-plan.js';
import { createBootloader } from '../lib/bootloader/create-bootloader.js';
import { DEPLOY_CHILD, commitSpec, debianRoot, fakeKernel, type TreeSpec } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';

const TRIALS = Number(process.env.DEPLOY_CRASH_TRIALS ?? 24);
const MAX_DELAY_MS = 900;

interface Files {
  kernel: Buffer;
  initrd: Buffer;
}

t.before(() => {
  if (!fs.existsSync(DEPLOY_CHILD)) throw new Error(`${DEPLOY_CHILD} is missing: run 'npx tsc -p tsconfig.json' first`);
});

function commitWithKernel(work: string, repo: string, spec: TreeSpec, version: string, kernels: Map<string, Files>): string {
  const sha = commitSpec(work, repo, spec);
  kernels.set(sha, { kernel: spec[`boot/vmlinuz-${version}`] as Buffer, initrd: spec[`boot/initrd.img-${version}`] as Buffer });
  return sha;
}

/** Kills a stage-loop child after `delay` ms past its start; resolves with how many stagings it finished. */
async function runAndKill(t: Test, args: string[], delay: number): Promise<number> {
  const child = spawn(process.execPath, [DEPLOY_CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  let done = 0;
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const ready = new Promise<void>((resolve) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (l === 'ready') resolve();
      else done++;
    });
  });
  await Promise.race([ready, exited]);
  if (child.exitCode !== null) throw new Error(`stage-loop child exited early (${child.exitCode}): ${stderr}`);
  await new Promise((r) => setTimeout(r, delay));
  if (child.exitCode !== null) throw new Error(`stage-loop child died by itself (${child.exitCode}): ${stderr}`);
  child.kill('SIGKILL');
  await exited;
  t.equal(child.signalCode, 'SIGKILL', 'the child was killed, it did not fail');
  return done;
}

/** A path an entry names, as a file under $BOOT, and the kernel directory it is in. */
function entryFile(boot: string, p: string | null): { file: string; kernelDir: string } | null {
  if (p === null) return null;
  const m = /\/gitroot\/([0-9a-f]{40})\/[^/]+$/.exec(p);
  if (m === null) throw new Error(`unexpected entry path ${p}`);
  return { file: path.join(boot, p), kernelDir: m[1] };
}

function checkInvariants(t: Test, home: string, boot: string, loader: 'bls' | 'extlinux', good: string, kernels: Map<string, Files>): void {
  const state = readState(home); // throws if state.json is damaged
  t.equal(state.good, good, 'the good revision never changes while staging');
  for (const rev of [state.pending?.revision ?? null, state.good, state.booted]) {
    if (rev === null) continue;
    const s = state.staged[rev];
    t.ok(s !== undefined, `state has a staged record for ${rev.slice(0, 8)}`);
    if (s === undefined || s.kernelDir === null) continue;
    const want = kernels.get(s.kernelDir) as Files;
    const dir = path.join(home, 'boot', s.kernelDir);
    t.ok(
      fs.existsSync(path.join(dir, 'vmlinuz')) && fs.readFileSync(path.join(dir, 'vmlinuz')).equals(want.kernel),
      `D/boot/${s.kernelDir.slice(0, 8)}/vmlinuz complete`,
    );
    t.ok(
      fs.existsSync(path.join(dir, 'initrd.img')) && fs.readFileSync(path.join(dir, 'initrd.img')).equals(want.initrd),
      `D/boot/${s.kernelDir.slice(0, 8)}/initrd.img complete`,
    );
  }
  const installed = createBootloader(loader, { homeDir: home, bootDir: boot }).readEntries();
  t.ok(installed.entries.length > 0, 'at least one entry');
  for (const e of installed.entries) {
    const k = entryFile(boot, e.linux);
    const i = entryFile(boot, e.initrd);
    t.ok(k !== null && i !== null, `${e.id}: names kernel and initrd`);
    if (k === null || i === null) continue;
    const want = kernels.get(k.kernelDir) as Files;
    t.ok(fs.existsSync(k.file) && fs.readFileSync(k.file).equals(want.kernel), `${e.id}: kernel complete`);
    t.ok(fs.existsSync(i.file) && fs.readFileSync(i.file).equals(want.initrd), `${e.id}: initrd complete`);
    t.ok(e.revision !== null, `${e.id}: carries git-revision`);
  }
  t.ok(
    installed.entries.some((e) => e.revision === good),
    'the known-good entry is always there',
  );
  if (loader === 'extlinux')
    t.ok(
      installed.entries.some((e) => e.id === installed.defaultId),
      'DEFAULT names an existing LABEL',
    );
  else t.equal(installed.defaultId, 'gitroot-*', 'loader.conf default pattern');
}

function leftovers(...dirs: string[]): string[] {
  const out: string[] = [];
  for (const d of dirs) {
    if (!fs.existsSync(d)) continue;
    for (const n of fs.readdirSync(d)) if (/\.(tmp|old)-/.test(n) || n.startsWith('.lock.')) out.push(path.join(d, n));
  }
  return out;
}

for (const loader of ['bls', 'extlinux'] as const) {
  t.test(`SIGKILL at random moments of stageRevision (${loader}, ${TRIALS / 2} trials)`, async (t) => {
    const work = tempDir(t, `crash-${loader}`);
    const home = path.join(work, 'gitroot');
    const boot = path.join(work, 'boot');
    fs.mkdirSync(home);
    fs.mkdirSync(boot);
    const repo = path.join(home, 'repo.git');
    const kernels = new Map<string, Files>();
    const G = commitWithKernel(work, repo, debianRoot('6.1.0-1-amd64', 'G'), '6.1.0-1-amd64', kernels);
    const A = commitWithKernel(work, repo, debianRoot('6.1.0-2-amd64', 'A'), '6.1.0-2-amd64', kernels);
    const bSpec: TreeSpec = { ...debianRoot('6.1.0-3-amd64', 'B'), ...debianRoot('6.1.0-30-amd64', 'B') };
    delete bSpec.vmlinuz;
    delete bSpec['initrd.img'];
    const B = commitWithKernel(work, repo, bSpec, '6.1.0-30-amd64', kernels);
    const N = commitSpec(work, repo, { 'etc/hostname': 'no kernel in this one\n' });
    const C = commitWithKernel(
      work,
      repo,
      debianRoot('6.1.0-4-amd64', 'C', { 'boot/vmlinuz-6.1.0-4-amd64': fakeKernel('C', 6 << 20) }),
      '6.1.0-4-amd64',
      kernels,
    );
    const R = commitWithKernel(work, repo, debianRoot('6.1.0-5-amd64', 'R'), '6.1.0-5-amd64', kernels);

    await stageRevision({ dir: home, sha: G, bootloader: loader, bootDir: boot, tries: 3 });
    await withLock(home, {}, (lock) => {
      const next = { ...withGood(readState(home), G), booted: G };
      const bl = createBootloader(loader, { homeDir: home, bootDir: boot });
      bl.writeEntries(planBootEntries(next, bl.location));
      writeState(lock, next);
    });

    const finished: number[] = [];
    for (let trial = 0; trial < TRIALS / 2; trial++) {
      const delay = Math.floor(Math.random() * MAX_DELAY_MS);
      const done = await runAndKill(t, ['stage-loop', home, loader, boot, A, B, N, C], delay);
      finished.push(done);
      checkInvariants(t, home, boot, loader, G, kernels);

      // Recovery: the dead child's lock is stale; a new staging cleans up after it.
      const r = await stageRevision({ dir: home, sha: R, bootloader: loader, bootDir: boot, tries: 3, waitMs: 0 });
      t.ok(r.action === 'stage' || r.action === 'up-to-date', `recovery staging: ${r.action}`);
      const state = readState(home);
      t.equal(state.pending?.revision, R);
      const installed = createBootloader(loader, { homeDir: home, bootDir: boot }).readEntries();
      t.same(installed.entries.map((e) => e.revision).sort(), [G, R].sort(), 'exactly the pending and good entries');
      t.same(fs.readdirSync(path.join(home, 'boot')).sort(), [G, R].sort(), 'D/boot holds exactly what the state needs');
      t.same(fs.readdirSync(path.join(boot, 'gitroot')).sort(), [G, R].sort(), "$BOOT/gitroot holds exactly the entries' kernels");
      t.same(
        leftovers(home, path.join(home, 'boot'), path.join(boot, 'gitroot'), path.join(boot, 'loader', 'entries'), path.join(boot, 'extlinux')),
        [],
        'no temp files, no stale lock',
      );
    }
    t.comment(`stagings finished before each kill: ${finished.join(' ')}`);
    t.ok(
      finished.some((n) => n > 0),
      'some kills came after complete stagings',
    );
  });
}
