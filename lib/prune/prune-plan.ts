/**
 * What `gitroot prune` keeps and removes: a pure function of the deployment state, the refs
 * gitroot keeps in `D/repo.git` and the kernel directories in `D/boot/`. It never keeps less
 * than the boot rules need: the booted, pending and known-good revisions, the revision the next
 * boot would run, the `keep` newest earlier good revisions, and tips fetched moments ago that
 * are waiting to be staged. Everything else (their refs, staged records and kernel directories)
 * is listed for removal; the git objects only they reach go with the repack (prune-run.ts).
 * docs/prune.md explains each rule.
 */
import { nextBootRevision } from '../boot/boot-select.js';
import { type DeployState, type StagedRevision, PREVIOUS_GOOD_LIMIT, withPrunedStaged } from '../home/home-state.js';
import { isSha } from '../store/object-id.js';
import { isLeftover } from '../fsutil/durable-dir.js';
import { FETCHED_REF_PREFIX as FETCHED_PREFIX, KEEP_REF_PREFIX, TAG_REF_PREFIX, keepRefName } from '../store/gitroot-refs.js';

export { FETCHED_PREFIX, KEEP_REF_PREFIX, TAG_REF_PREFIX, keepRefName };

/**
 * A fetched ref younger than this whose commit did not fail is kept: `gitroot fetch` records it
 * before it takes the home's lock to stage it, and a prune in between must not take the objects
 * away (git's own gc keeps recent unreachable objects for the same reason).
 */
export const FETCH_GRACE_MS = 60 * 60 * 1000;
/** Default of `gitroot.keep`. */
export const DEFAULT_KEEP = 1;

/** Why a revision is kept. */
export type KeepReason = 'booted' | 'pending' | 'good' | 'next-boot' | 'previous-good' | 'recent-fetch';

/** A ref under `refs/gitroot/` as prune sees it. */
export interface RefInfo {
  name: string;
  /** What it points to (40 hex). */
  oid: string;
  /** Milliseconds since it was last written (Infinity when unknown, e.g. a packed ref). */
  ageMs: number;
}

export interface PruneInput {
  state: DeployState;
  /** How many of the newest earlier good revisions to keep (0..PREVIOUS_GOOD_LIMIT). */
  keep: number;
  /** Refs under `refs/gitroot/`. */
  refs: readonly RefInfo[];
  /** Kept revisions whose commit the repository holds (a missing one gets no ref, only a warning). */
  present: ReadonlySet<string>;
  /** Names in `D/boot/`. */
  bootNames: readonly string[];
}

export interface KeptRevision {
  revision: string;
  reasons: KeepReason[];
}

export interface PrunePlan {
  /** Revisions kept, in the order of the rules (booted, pending, good, next boot, earlier good, recent fetches). */
  kept: KeptRevision[];
  /** The state to write (equal to the input's when nothing in it changes). */
  state: DeployState;
  stateChanged: boolean;
  /** Earlier good revisions dropped from `previousGood`. */
  droppedPreviousGood: string[];
  /** Revisions whose `staged` record is dropped. */
  droppedStaged: string[];
  /** Keep refs to create (or move). */
  createRefs: { name: string; oid: string }[];
  /** Refs to delete (with the value they must still have). */
  deleteRefs: { name: string; oid: string }[];
  /** `D/boot/` names kept and removed. */
  keptKernelDirs: string[];
  removeKernelDirs: string[];
  warnings: string[];
}

/** Checks `keep` (UsageError text when out of range), or null when fine. */
export function keepProblem(keep: number): string | null {
  if (!Number.isInteger(keep) || keep < 0 || keep > PREVIOUS_GOOD_LIMIT) {
    return `--keep must be a whole number from 0 to ${PREVIOUS_GOOD_LIMIT} (state.json remembers at most ${PREVIOUS_GOOD_LIMIT} earlier good revisions), not ${keep}`;
  }
  return null;
}

/** The revisions the state needs, with their reasons, in rule order (pure). */
export function stateKeeps(state: DeployState, keep: number): Map<string, KeepReason[]> {
  const out = new Map<string, KeepReason[]>();
  const add = (sha: string | null | undefined, why: KeepReason) => {
    if (sha === null || sha === undefined) return;
    const reasons = out.get(sha);
    if (reasons === undefined) out.set(sha, [why]);
    else if (!reasons.includes(why)) reasons.push(why);
  };
  add(state.booted, 'booted');
  add(state.pending?.revision, 'pending');
  add(state.good, 'good');
  add(nextBootRevision(state), 'next-boot');
  for (const s of state.previousGood.slice(0, Math.max(0, keep))) add(s, 'previous-good');
  return out;
}

/**
 * Decides what prune keeps and removes (pure). The new state names only kept revisions; its
 * `staged` records follow the staging rule (withPrunedStaged) plus the record of the revision
 * the next boot runs, so the boot entries and the next boot are exactly what they were.
 */
export function planPrune(input: PruneInput): PrunePlan {
  const { state, keep } = input;
  const keeps = stateKeeps(state, keep);
  const failed = new Set(state.failed);
  const warnings: string[] = [];

  // Fetched tips waiting to be staged (and tips that are kept anyway) keep their fetched ref.
  const fetchedKept = new Set<string>();
  for (const r of input.refs) {
    if (!r.name.startsWith(FETCHED_PREFIX)) continue;
    if (keeps.has(r.oid) || (r.ageMs < FETCH_GRACE_MS && !failed.has(r.oid))) fetchedKept.add(r.name);
  }
  const kept: KeptRevision[] = [...keeps].map(([revision, reasons]) => ({ revision, reasons: [...reasons] }));
  for (const r of input.refs) {
    if (!fetchedKept.has(r.name) || keeps.has(r.oid)) continue;
    const k = kept.find((x) => x.revision === r.oid);
    if (k === undefined) kept.push({ revision: r.oid, reasons: ['recent-fetch'] });
  }

  // The state: earlier good revisions beyond `keep` go; staged records as staging keeps them.
  const previousGood = state.previousGood.filter((s) => keeps.has(s));
  const droppedPreviousGood = state.previousGood.filter((s) => !keeps.has(s));
  let next: DeployState = withPrunedStaged({ ...state, previousGood });
  const nextBoot = nextBootRevision(state);
  if (nextBoot !== null && state.staged[nextBoot] !== undefined && next.staged[nextBoot] === undefined) {
    const staged: Record<string, StagedRevision> = { ...next.staged, [nextBoot]: state.staged[nextBoot] };
    next = {
      ...next,
      staged: Object.fromEntries(
        Object.keys(staged)
          .sort()
          .map((k) => [k, staged[k]]),
      ),
    };
  }
  const droppedStaged = Object.keys(state.staged)
    .filter((s) => next.staged[s] === undefined)
    .sort();
  const stateChanged = droppedPreviousGood.length > 0 || droppedStaged.length > 0;
  if (!stateChanged) next = state;

  // Refs: one keep ref per kept revision the repository holds; stale keep refs and fetched refs go.
  const want = new Map<string, string>();
  for (const sha of keeps.keys()) {
    if (input.present.has(sha)) want.set(keepRefName(sha), sha);
    else warnings.push(`revision ${sha} (${keeps.get(sha)!.join(', ')}) is not in the repository: nothing of it to keep`);
  }
  const have = new Map(input.refs.map((r) => [r.name, r.oid]));
  const createRefs = [...want].filter(([name, oid]) => have.get(name) !== oid).map(([name, oid]) => ({ name, oid }));
  // A tag ref (the signed tag a revision was fetched through) lives as long as its revision.
  const keptRevisions = new Set(kept.map((k) => k.revision));
  const deleteRefs = input.refs
    .filter(
      (r) =>
        (r.name.startsWith(KEEP_REF_PREFIX) && !want.has(r.name)) ||
        (r.name.startsWith(FETCHED_PREFIX) && !fetchedKept.has(r.name)) ||
        (r.name.startsWith(TAG_REF_PREFIX) && !keptRevisions.has(r.name.slice(TAG_REF_PREFIX.length))),
    )
    .map((r) => ({ name: r.name, oid: r.oid }));

  // Kernel directories: those the kept staged records use; leftovers of interrupted copies go too.
  const keptDirs = new Set<string>();
  for (const s of Object.values(next.staged)) if (s.kernelDir !== null) keptDirs.add(s.kernelDir);
  const removeKernelDirs = input.bootNames.filter((n) => !keptDirs.has(n) && (isSha(n) || isLeftover(n))).sort();
  const keptKernelDirs = input.bootNames.filter((n) => keptDirs.has(n)).sort();

  return {
    kept,
    state: next,
    stateChanged,
    droppedPreviousGood,
    droppedStaged,
    createRefs,
    deleteRefs,
    keptKernelDirs,
    removeKernelDirs,
    warnings,
  };
}
