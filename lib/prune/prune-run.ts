/**
 * `gitroot prune` applied: under the home's lock and the repository's fetch lock (so it never
 * races a fetch or a staging), in named steps ordered so that a kill -9 or a power cut at any
 * instant leaves every revision state.json names complete:
 *   1. plan          read state.json, the refs under refs/gitroot/ and D/boot; planPrune
 *   2. keep refs     refs/gitroot/keep/<sha> for each kept revision (temp, fsync, rename, fsync)
 *   3. write state   previousGood and staged records trimmed (only kept revisions remain named)
 *   4. boot entries  rewritten from the new state (unchanged in practice; stale ones go)
 *   5. kernels       D/boot/<sha>/ the new state does not use
 *   6. drop refs     stale keep refs and fetched refs (directories fsynced)
 *   7. clean         quarantines of killed fetches, temp packs of killed repacks, and packs
 *                    made redundant by a repack cut before it deleted the old ones (every
 *                    object in another intact pack; .idx first; pack-redundancy.ts), so the
 *                    repack below has the room it needs
 *   8. repack        `git repack -a -d`: one new pack of what the refs reach, written and
 *                    fsynced and renamed in before the old packs are deleted; skipped with a
 *                    warning when the new pack cannot fit (repackRoom), so prune still ends
 *   9. prune         `git prune --expire=now`: loose objects no ref reaches
 * Nothing is deleted before step 5, and by then the state names only revisions steps 2 made
 * refs for; objects go only in steps 8-9, and only those no ref reaches. docs/prune.md has the
 * crash table and measurements.
 */
import { existsSync, lstatSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runGit, gitFailure } from '../git/git-exec.js';
import type { BootloaderName } from '../bootloader/bootloader.js';
import { createBootloader } from '../bootloader/create-bootloader.js';
import { readState, type DeployState } from '../home/home-state.js';
import { applyStateChange } from '../deploy/state-change.js';
import { removeAtomicTemps, fsyncDir, isAtomicTemp, removeFilesUnder, writeFileAtomic } from '../fsutil/atomic-write.js';
import { step, stepAsync } from '../fsutil/named-step.js';
import { processStartTime, withLock, type HeldLock } from '../home/home-lock.js';
import { bootFilesDir, STATE_FILE, repoPath } from '../home/home-layout.js';
import { acquireFetchLock, type FetchLock } from '../fetch/fetch-lock.js';
import { FETCH_TMP_DIR } from '../fetch/repo-fetch.js';
import { DEFAULT_LOCK_WAIT_MS } from '../fsutil/process-lock.js';
import { UsageError } from '../errors/errors.js';
import { FETCHED_PREFIX, KEEP_REF_PREFIX, type KeptRevision, type PrunePlan, type RefInfo, keepProblem, planPrune, stateKeeps } from './prune-plan.js';
import { listPacks, lastFetchPackBytes, readPruneRecord, repackRoom, writePruneRecord } from './space-check.js';
import { formatBytes, freeBytes } from '../fsutil/free-space.js';
import { dropRedundantPacks } from './pack-redundancy-run.js';

/**
 * Delta search for a root filesystem: git's default window (10) finds the previous release of
 * each file, which is where almost all of the saving is; a deeper chain (50, git's default) keeps
 * many releases cheap. The window's memory is bounded so a kiosk with little RAM does not swap on
 * big binaries; one thread keeps that bound the whole cost.
 */
export const REPACK_WINDOW = 10;
export const REPACK_DEPTH = 50;
export const REPACK_WINDOW_MEMORY = '64m';

export interface PruneOptions {
  /** The gitroot home D. */
  dir: string;
  /** Earlier good revisions to keep (gitroot.keep / --keep). */
  keep: number;
  /** Report what would be removed; change nothing (takes no locks). */
  dryRun?: boolean;
  /** Boot loader backend and `$BOOT`, to keep the entries in line with the state. */
  bootloader: BootloaderName;
  bootDir?: string;
  /** How long to wait for the home's lock and the fetch lock (default 5 s). */
  waitMs?: number;
  /** What to record as the lock holder. */
  command?: string;
  /** Called as each step starts (for tests that kill the process at a step, and progress). */
  onStep?: (name: string) => void;
}

export interface PruneResult {
  dryRun: boolean;
  kept: KeptRevision[];
  droppedPreviousGood: string[];
  droppedStaged: string[];
  refsCreated: string[];
  refsDeleted: string[];
  kernelDirsRemoved: string[];
  /** Disk use of D (allocated blocks) before and after. */
  bytesBefore: number;
  bytesAfter: number;
  /** Packs in repo.git before and after. */
  packsBefore: number;
  packsAfter: number;
  durationMs: number;
  warnings: string[];
}

/** Disk use of a directory tree in bytes (allocated blocks, like `du -s --block-size=1`). */
export function diskUsage(root: string): number {
  let sum = 0;
  const walk = (p: string) => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    sum += st.blocks * 512;
    if (!st.isDirectory()) return;
    let names: string[] = [];
    try {
      names = readdirSync(p);
    } catch {
      /* gone */
    }
    for (const n of names) walk(join(p, n));
  };
  walk(root);
  return sum;
}

/** Environment for git in the home's repository: no inherited repository, every write fsynced. */
function gitArgs(repo: string, args: string[]): string[] {
  return ['-c', 'core.fsync=all', '-c', 'core.fsyncMethod=fsync', '-c', 'gc.auto=0', '--git-dir', repo, ...args];
}

function gitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0' };
  for (const k of ['GIT_DIR', 'GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES', 'GIT_INDEX_FILE']) delete env[k];
  return env;
}

async function gitOk(repo: string, args: string[], input?: string): Promise<string> {
  const full = gitArgs(repo, args);
  const run = await runGit(full, { env: gitEnv(), input });
  if (run.code !== 0) throw gitFailure(args, run);
  return run.stdout;
}

/** Refs under refs/gitroot/ with their age (from the loose ref file; packed refs count as old). */
async function listGitrootRefs(repo: string): Promise<RefInfo[]> {
  const out = await gitOk(repo, ['for-each-ref', '--format=%(objectname) %(refname)', 'refs/gitroot/']);
  const now = Date.now();
  return out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [oid, name] = l.split(' ');
      let ageMs = Infinity;
      try {
        ageMs = now - statSync(join(repo, ...name.split('/'))).mtimeMs;
      } catch {
        /* packed */
      }
      return { name, oid, ageMs };
    });
}

/** Which of `shas` the repository holds as commits. */
async function presentCommits(repo: string, shas: string[]): Promise<Set<string>> {
  if (shas.length === 0) return new Set();
  const out = await gitOk(repo, ['cat-file', '--batch-check=%(objectname) %(objecttype)'], shas.join('\n') + '\n');
  const present = new Set<string>();
  for (const line of out.split('\n')) {
    const [oid, type] = line.split(' ');
    if (type === 'commit') present.add(oid);
  }
  return present;
}

function bootNames(dir: string): string[] {
  try {
    return readdirSync(bootFilesDir(dir));
  } catch {
    return [];
  }
}

function isRepo(repo: string): boolean {
  return existsSync(join(repo, 'HEAD')) && existsSync(join(repo, 'objects'));
}

/**
 * Removes the `.lock` files a killed `git update-ref` leaves under refs/ (and packed-refs.lock).
 * git never removes them itself ("cannot lock ref ... File exists"), so without this one power
 * cut in step 6 would fail every later prune. Safe only under the fetch lock: no other gitroot
 * command changes refs in the home's repository then, and the home's git runs nowhere else.
 */
export function removeStaleRefLocks(repo: string): string[] {
  const removed = removeFilesUnder(repo, 'refs', (name) => name.endsWith('.lock'));
  if (existsSync(join(repo, 'packed-refs.lock'))) {
    rmSync(join(repo, 'packed-refs.lock'), { force: true });
    removed.push('packed-refs.lock');
  }
  return removed;
}

/**
 * Removes what killed writers left elsewhere (under the home's lock and the fetch lock): temp files
 * of ref writes under refs/gitroot/ (git ignores dot files there, so nothing else ever would),
 * and, in the home, temps of prune.json, fsck.json and last-fetch.json and half-made repositories
 * of a first fetch (`.repo.git.init-<pid>-*`), of processes that are gone (last-fetch.json and the
 * first fetch's repository are written without the home's lock).
 */
export function removeDeadWriterTemps(dir: string, repo: string): string[] {
  const removed = removeFilesUnder(repo, 'refs/gitroot', isAtomicTemp);
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    /* no home */
  }
  for (const n of names) {
    const m = /^\.(?:(?:prune|fsck|last-fetch)\.json\.tmp|repo\.git\.init)-(\d+)-/.exec(n);
    if (m === null || (Number(m[1]) !== process.pid && processStartTime(Number(m[1])) !== null)) continue;
    rmSync(join(dir, n), { recursive: true, force: true });
    removed.push(n);
  }
  return removed;
}

/** Removes temp packs of killed repacks and quarantines of killed fetches (under the fetch lock). */
function cleanTemporaries(dir: string, repo: string): string[] {
  const removed: string[] = [...removeStaleRefLocks(repo), ...removeDeadWriterTemps(dir, repo)];
  const packDir = join(repo, 'objects', 'pack');
  let names: string[] = [];
  try {
    names = readdirSync(packDir);
  } catch {
    /* no packs */
  }
  for (const n of names) {
    if (n.startsWith('.tmp-') || n.startsWith('tmp_')) {
      rmSync(join(packDir, n), { force: true, recursive: true });
      removed.push(`objects/pack/${n}`);
    }
  }
  if (existsSync(join(repo, FETCH_TMP_DIR))) {
    rmSync(join(repo, FETCH_TMP_DIR), { recursive: true, force: true });
    removed.push(FETCH_TMP_DIR);
  }
  return removed;
}

interface Applied {
  plan: PrunePlan;
  warnings: string[];
  refsCreated: string[];
  refsDeleted: string[];
  kernelDirsRemoved: string[];
}

async function makePlan(dir: string, repo: string, keep: number, state: DeployState): Promise<PrunePlan> {
  const hasRepo = isRepo(repo);
  const refs = hasRepo ? await stepAsync('list refs', () => listGitrootRefs(repo)) : [];
  const candidates = [...stateKeeps(state, keep).keys()];
  const present = hasRepo ? await stepAsync('find kept revisions', () => presentCommits(repo, candidates)) : new Set<string>();
  return planPrune({ state, keep, refs, present, bootNames: bootNames(dir) });
}

async function apply(opts: PruneOptions, lock: HeldLock, repo: string, onStep: (s: string) => void, bytesBefore: number): Promise<Applied> {
  const { dir } = opts;
  onStep('plan');
  const state = step('read state', () => readState(dir));
  const plan = await makePlan(dir, repo, opts.keep, state);
  const hasRepo = isRepo(repo);

  onStep('keep refs');
  step('write keep refs', () => {
    for (const r of plan.createRefs) writeFileAtomic(join(repo, ...r.name.split('/')), `${r.oid}\n`);
  });

  onStep('write state');
  // The one crash-ordered state change (entries of both states, state.json, the new entries).
  const bootloader = createBootloader(opts.bootloader, { homeDir: dir, bootDir: opts.bootDir });
  applyStateChange({ dir, lock, bootloader, before: state, next: plan.stateChanged ? plan.state : state });

  onStep('kernels');
  const kernelDirsRemoved: string[] = [];
  step('remove kernels', () => {
    removeAtomicTemps(dir, STATE_FILE);
    for (const name of plan.removeKernelDirs) {
      rmSync(join(bootFilesDir(dir), name), { recursive: true, force: true });
      kernelDirsRemoved.push(name);
    }
    if (kernelDirsRemoved.length > 0) fsyncDir(bootFilesDir(dir));
  });

  const refsDeleted: string[] = [];
  const warnings: string[] = [];
  if (hasRepo) {
    onStep('drop refs');
    if (plan.deleteRefs.length > 0) {
      await stepAsync('drop refs', async () => {
        removeStaleRefLocks(repo);
        const input = ['start', ...plan.deleteRefs.map((r) => `delete ${r.name} ${r.oid}`), 'commit', ''].join('\n');
        await gitOk(repo, ['update-ref', '--stdin'], input);
        const dirs = new Set(plan.deleteRefs.map((r) => dirname(join(repo, ...r.name.split('/')))));
        for (const d of dirs) if (existsSync(d)) fsyncDir(d);
        refsDeleted.push(...plan.deleteRefs.map((r) => r.name));
      });
    }
    onStep('clean');
    step('clean temporaries', () => cleanTemporaries(dir, repo));

    onStep('redundant packs');
    const packsBeforeDrop = listPacks(repo);
    const dropped = step('drop redundant packs', () => dropRedundantPacks(repo));

    onStep('repack');
    const folded = listPacks(repo).reduce((sum, p) => sum + p.bytes, 0) + looseBytes(repo);
    const free = freeBytes(repo);
    const room = repackRoom(free, folded);
    const record = readPruneRecord(dir);
    // After a cut repack, the redundant packs are the old set it was folding in: the last
    // fetched pack is the newest of them (what that repack would have recorded).
    const oldSet = new Set(dropped.redundant.map((r) => `${r.stem}.pack`));
    const lastPack = lastFetchPackBytes(repo, record, oldSet.size > 0 ? packsBeforeDrop.filter((p) => oldSet.has(p.name)) : undefined);
    if (room.ok) {
      await stepAsync('repack', () =>
        gitOk(repo, [
          '-c',
          'pack.threads=1',
          '-c',
          'repack.writeBitmaps=false',
          'repack',
          '-a',
          '-d',
          '-q',
          `--window=${REPACK_WINDOW}`,
          `--depth=${REPACK_DEPTH}`,
          `--window-memory=${REPACK_WINDOW_MEMORY}`,
        ]),
      );
    } else {
      warnings.push(
        `repack skipped: ${formatBytes(free)} free in ${repo}, ${formatBytes(room.needed)} needed for its new pack` +
          (dropped.bytes > 0
            ? ` (the ${formatBytes(dropped.bytes)} of redundant packs removed come free once no process holds them open, e.g. the git-fs serving / until the next boot)`
            : '') +
          '; the next prune with room repacks',
      );
    }
    onStep('prune');
    await stepAsync('prune objects', () => gitOk(repo, ['prune', '--expire=now']));
    step('sync', () => {
      fsyncDir(join(repo, 'objects', 'pack'));
      fsyncDir(join(repo, 'objects'));
    });
    const packs = listPacks(repo);
    const bytesAfter = diskUsage(dir);
    step('write prune record', () =>
      writePruneRecord(dir, {
        version: 1,
        at: new Date().toISOString(),
        pack: packs[0]?.name ?? null,
        lastFetchPackBytes: lastPack,
        bytesBefore,
        bytesAfter,
      }),
    );
  }
  onStep('done');
  return { plan, warnings, refsCreated: plan.createRefs.map((r) => r.name), refsDeleted, kernelDirsRemoved };
}

/** Bytes of the loose objects (objects/xx/...), which a repack also folds into its new pack. */
function looseBytes(repo: string): number {
  let sum = 0;
  let dirs: string[] = [];
  try {
    dirs = readdirSync(join(repo, 'objects')).filter((d) => /^[0-9a-f]{2}$/.test(d));
  } catch {
    /* none */
  }
  for (const d of dirs) {
    try {
      for (const f of readdirSync(join(repo, 'objects', d))) sum += statSync(join(repo, 'objects', d, f)).size;
    } catch {
      /* gone meanwhile */
    }
  }
  return sum;
}

/**
 * Runs a prune of home `opts.dir` (see the module comment). With `dryRun`, only plans (no locks,
 * no writes). Errors are typed and name their step; LockedError when a fetch or staging holds a lock.
 */
export async function runPrune(opts: PruneOptions): Promise<PruneResult> {
  const problem = keepProblem(opts.keep);
  if (problem !== null) throw new UsageError(problem);
  const started = performance.now();
  const dir = opts.dir;
  if (!existsSync(dir)) throw new UsageError(`${dir} does not exist: give the gitroot home (--dir) of this machine`);
  const repo = repoPath(dir);
  const onStep = opts.onStep ?? (() => {});
  const bytesBefore = diskUsage(dir);
  const packsBefore = listPacks(repo).length;
  const waitMs = opts.waitMs ?? DEFAULT_LOCK_WAIT_MS;

  let applied: Applied;
  if (opts.dryRun) {
    const state = step('read state', () => readState(dir));
    const plan = await makePlan(dir, repo, opts.keep, state);
    applied = {
      plan,
      warnings: [],
      refsCreated: plan.createRefs.map((r) => r.name),
      refsDeleted: plan.deleteRefs.map((r) => r.name),
      kernelDirsRemoved: plan.removeKernelDirs,
    };
  } else {
    applied = await withLock(dir, { waitMs, command: opts.command ?? 'gitroot prune' }, async (lock) => {
      let fetchLock: FetchLock | null = null;
      if (isRepo(repo)) fetchLock = await stepAsync('take fetch lock', () => acquireFetchLock(repo, { waitMs }));
      try {
        return await apply(opts, lock, repo, onStep, bytesBefore);
      } finally {
        fetchLock?.release();
      }
    });
  }
  const bytesAfter = opts.dryRun ? bytesBefore : diskUsage(dir);
  const { plan } = applied;
  return {
    dryRun: opts.dryRun === true,
    kept: plan.kept,
    droppedPreviousGood: plan.droppedPreviousGood,
    droppedStaged: plan.droppedStaged,
    refsCreated: applied.refsCreated,
    refsDeleted: applied.refsDeleted,
    kernelDirsRemoved: applied.kernelDirsRemoved,
    bytesBefore,
    bytesAfter,
    packsBefore,
    packsAfter: opts.dryRun ? packsBefore : listPacks(repo).length,
    durationMs: performance.now() - started,
    warnings: [...plan.warnings, ...applied.warnings],
  };
}

export { FETCHED_PREFIX, KEEP_REF_PREFIX };
