/**
 * `gitroot fsck` as named steps: read the state and refs -> plan the revisions to check ->
 * walk them (fsck-walk.ts) -> build the report (fsck-report.ts) -> record the verdict in
 * `D/fsck.json` under the home's lock, when every kept revision was checked and no pack came
 * or went meanwhile. The repair (fsck-repair.ts) runs this before and after it fetches.
 */
import { GitrootError } from '../errors/errors.js';
import { readState } from '../home/home-state.js';
import { step } from '../fsutil/named-step.js';
import { DEFAULT_LOCK_WAIT_MS } from '../fsutil/process-lock.js';
import { withLock } from '../home/home-lock.js';
import { ObjectStore } from '../store/object-store.js';
import { listRefs, resolveRevision } from '../store/refs.js';
import { type FsckReport, buildReport, planRoots, verdictOf } from './fsck-report.js';
import { packSetKey, writeVerdict } from './fsck-verdict.js';
import { fsckVerdictPath, repoPath } from '../home/home-layout.js';
import { isOidHex } from '../store/object-id.js';
import { type FsckRoot, type WalkResult, walkRevisions } from './fsck-walk.js';

export interface FsckOptions {
  /** The gitroot home. */
  dir: string;
  /** Check only these revisions (SHA, ref or abbreviation); the verdict is then not recorded. */
  revisions?: string[];
  onProgress?: (done: number, total: number) => void;
  /** How long to wait for the home's lock to record the verdict (default DEFAULT_LOCK_WAIT_MS, 5 s). */
  lockWaitMs?: number;
  /** Record the verdict in D/fsck.json (default true; only for a full check). */
  record?: boolean;
}

/** A report and the walk behind it (the repair needs the reachable set). */
export interface FsckOutcome {
  report: FsckReport;
  walk: WalkResult;
}

/** The revisions to check: every kept one, or those asked for (each with the roles it also has). */
function roots(dir: string, repo: string, store: ObjectStore, asked: string[] | undefined): FsckRoot[] {
  const state = step('read state', () => readState(dir));
  const kept = planRoots(
    state,
    step('read refs', () => listRefs(repo)),
  );
  if (asked === undefined || asked.length === 0) return kept;
  const out: FsckRoot[] = [];
  for (const rev of asked) {
    const sha = isOidHex(rev) ? rev.toLowerCase() : resolveRevision(repo, rev, store);
    if (out.some((r) => r.revision === sha)) continue;
    out.push({ revision: sha, roles: ['asked', ...(kept.find((k) => k.revision === sha)?.roles ?? [])] });
  }
  return out;
}

/** Runs fsck on home `dir` (see the module comment). Throws only for what stops it (no repository, unreadable state). */
export async function runFsck(opts: FsckOptions): Promise<FsckOutcome> {
  const started = performance.now();
  const checkedAt = new Date().toISOString();
  const repo = repoPath(opts.dir);
  const store = step('open the repository', () => ObjectStore.open(repo));
  try {
    const list = roots(opts.dir, repo, store, opts.revisions);
    const complete = opts.revisions === undefined || opts.revisions.length === 0;
    const before = packSetKey(repo);
    const walk = await walkRevisions(store, repo, list, { onProgress: opts.onProgress });
    const after = packSetKey(repo);
    const report = buildReport(walk, { repo, checkedAt, durationMs: Math.round(performance.now() - started), complete });
    report.verdict.path = fsckVerdictPath(opts.dir);
    if (!complete) report.verdict.reason = 'only some revisions were checked (--revision)';
    else if (before !== after) report.verdict.reason = 'packs were added or removed while fsck ran: run it again';
    else if (opts.record === false) report.verdict.reason = 'not asked to';
    else {
      try {
        await withLock(opts.dir, { waitMs: opts.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS, command: 'gitroot fsck' }, (lock) =>
          step('record the verdict', () => writeVerdict(lock, verdictOf(report, after))),
        );
        report.verdict.written = true;
      } catch (e) {
        if (!(e instanceof GitrootError)) throw e;
        report.verdict.reason = e.message;
      }
    }
    return { report, walk };
  } finally {
    store.close();
  }
}
