/**
 * The ref namespaces gitroot writes in the home's repository (D/repo.git), in one place:
 *   refs/gitroot/fetched/<branch-or-sha>  the commit a fetch brought (lib/fetch/repo-fetch.ts)
 *   refs/gitroot/tag/<commit>             the annotated tag that commit was fetched through,
 *                                          whose signature can vouch for it (lib/trust)
 *   refs/gitroot/keep/<commit>            a revision prune keeps (lib/prune)
 * Every object a kept revision needs is reachable from one of these, which is what lets
 * `git repack -a -d` and `git prune` run safely.
 */

export const FETCHED_REF_PREFIX = 'refs/gitroot/fetched/';
export const TAG_REF_PREFIX = 'refs/gitroot/tag/';
export const KEEP_REF_PREFIX = 'refs/gitroot/keep/';

/** The ref a fetch records for a branch (or tag name) or a pinned SHA. */
export function fetchedRefName(target: { branch: string } | { sha: string }): string {
  return FETCHED_REF_PREFIX + ('branch' in target ? target.branch : target.sha.toLowerCase());
}

/** The ref naming the annotated tag `commit` was fetched through. */
export function tagRefName(commit: string): string {
  return TAG_REF_PREFIX + commit;
}

/** The keep ref of a revision. */
export function keepRefName(sha: string): string {
  return KEEP_REF_PREFIX + sha;
}
