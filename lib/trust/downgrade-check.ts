/**
 * Downgrade protection for `gitroot fetch`: a new `fetch-revision` tip must descend from every
 * revision the machine runs or has staged (state.json's booted, good and pending), so a server
 * (an attacker's, or a mistaken force-push) cannot hand a machine older code than it has. A
 * tip equal to one of them is up to date, not a downgrade; an `update-revision=` pin and
 * `gitroot.allow-downgrade` may go back on purpose.
 *
 * planDowngradeCheck is pure (the history comes in as a `parents` function) and tested over
 * every small DAG shape; checkDowngrade reads the parents from the local object store.
 */
import { TrustError } from '../errors/errors.js';
import type { DeployState } from '../home/home-state.js';
import { parseCommit } from '../store/git-objects.js';
import type { ObjectStore } from '../store/object-store.js';

/** A revision the machine runs or has staged, by its role in state.json. */
export interface HeldRevision {
  role: 'booted' | 'good' | 'pending';
  sha: string;
}

export interface DowngradeInput {
  /** The commit fetch would stage. */
  tip: string;
  /** How it was named: the branch tip (`fetch-revision`) or an explicit `update-revision=` pin. */
  target: 'branch' | 'pin';
  /** Revisions the tip must descend from (duplicates allowed). */
  held: readonly HeldRevision[];
  /** `gitroot.allow-downgrade`. */
  allowDowngrade: boolean;
  /** Parents of a commit, or null when the commit cannot be read. */
  parents: (sha: string) => readonly string[] | null;
}

export type DowngradeVerdict =
  | { action: 'allow'; why: 'pinned' | 'no-history' | 'up-to-date' | 'descendant'; reason: string }
  | { action: 'allow'; why: 'allowed-downgrade'; reason: string; notDescendantOf: HeldRevision[] }
  | { action: 'refuse'; why: 'downgrade'; reason: string; notDescendantOf: HeldRevision[]; unreadable: string[] };

/**
 * Which of `targets` are ancestors of `tip` (or `tip` itself), walking parents breadth-first
 * until all are found or the history ends; also the commits that could not be read. Pure.
 */
export function ancestorsAmong(
  tip: string,
  targets: ReadonlySet<string>,
  parents: (sha: string) => readonly string[] | null,
): { found: Set<string>; unreadable: string[] } {
  const found = new Set<string>();
  const unreadable: string[] = [];
  const seen = new Set<string>([tip]);
  const queue = [tip];
  for (let i = 0; i < queue.length && found.size < targets.size; i++) {
    const sha = queue[i];
    if (targets.has(sha)) found.add(sha);
    const ps = parents(sha);
    if (ps === null) {
      unreadable.push(sha);
      continue;
    }
    for (const p of ps) {
      if (!seen.has(p)) {
        seen.add(p);
        queue.push(p);
      }
    }
  }
  return { found, unreadable };
}

const short = (sha: string): string => sha.slice(0, 12);

/** Decides whether the fetched tip may be staged (pure; see the module comment). */
export function planDowngradeCheck(input: DowngradeInput): DowngradeVerdict {
  if (input.target === 'pin') return { action: 'allow', why: 'pinned', reason: `update-revision names ${input.tip} explicitly` };
  if (input.held.length === 0) return { action: 'allow', why: 'no-history', reason: 'the machine runs and has staged no revision yet' };
  const same = input.held.find((h) => h.sha === input.tip);
  if (same !== undefined) return { action: 'allow', why: 'up-to-date', reason: `${input.tip} is the ${same.role} revision` };
  const targets = new Set(input.held.map((h) => h.sha));
  const { found, unreadable } = ancestorsAmong(input.tip, targets, input.parents);
  const missing = input.held.filter((h, i) => !found.has(h.sha) && input.held.findIndex((x) => x.sha === h.sha) === i);
  if (missing.length === 0) {
    return { action: 'allow', why: 'descendant', reason: `${input.tip} descends from the ${input.held.map((h) => h.role).join(', ')} revision` };
  }
  const list = missing.map((h) => `${h.role} ${short(h.sha)}`).join(', ');
  if (input.allowDowngrade) {
    return {
      action: 'allow',
      why: 'allowed-downgrade',
      notDescendantOf: missing,
      reason: `${input.tip} does not descend from ${list}; gitroot.allow-downgrade is set`,
    };
  }
  const history = unreadable.length > 0 ? ` (its history could not be read past ${unreadable.map(short).join(', ')})` : '';
  return {
    action: 'refuse',
    why: 'downgrade',
    notDescendantOf: missing,
    unreadable,
    reason:
      `refusing commit ${short(input.tip)} (${input.tip}): it does not descend from the ${list} revision${history}, ` +
      'so staging it would go back to older code (a rewound branch, or a server replaying an old tip); ' +
      `to go back on purpose set update-revision=${input.tip}, or set gitroot.allow-downgrade`,
  };
}

/** The revisions of `state` a new tip must descend from. */
export function heldRevisions(state: Pick<DeployState, 'booted' | 'good' | 'pending'>): HeldRevision[] {
  const out: HeldRevision[] = [];
  if (state.booted !== null) out.push({ role: 'booted', sha: state.booted });
  if (state.good !== null) out.push({ role: 'good', sha: state.good });
  if (state.pending !== null) out.push({ role: 'pending', sha: state.pending.revision });
  return out;
}

/** Parents read from the object store; null for a commit it lacks or cannot read. */
export function storeParents(store: ObjectStore): (sha: string) => string[] | null {
  return (sha) => {
    try {
      if (!store.has(sha)) return null;
      const obj = store.readObject(sha);
      return obj.type === 'commit' ? parseCommit(obj.data).parents : null;
    } catch {
      return null;
    }
  };
}

/**
 * The downgrade gate of `gitroot fetch`: returns the verdict when the tip may be staged,
 * throws TrustError (`data.why` 'downgrade') when it may not.
 */
export function checkDowngrade(store: ObjectStore, opts: Omit<DowngradeInput, 'parents'>): DowngradeVerdict {
  const v = planDowngradeCheck({ ...opts, parents: storeParents(store) });
  if (v.action === 'refuse') {
    throw new TrustError(v.reason, { data: { why: 'downgrade', revision: opts.tip, notDescendantOf: v.notDescendantOf, unreadable: v.unreadable } });
  }
  return v;
}
