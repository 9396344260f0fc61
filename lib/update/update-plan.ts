/**
 * What `gitroot fetch` should do, decided from the effective settings alone (pure):
 * `noupgrade` disables everything (no network at all); `update-revision=SHA` pins an exact
 * commit (older ones too: the deliberate downgrade / debugging path, allowed to re-stage a
 * revision that failed before); otherwise the tip of `fetch-revision` is fetched. Whether a
 * fetched commit is then staged is the deploy planner's call (planStage): it skips what is
 * already pending, good or booted and refuses revisions that failed.
 */
import type { Settings } from '../params/settings-schema.js';

export type FetchTarget = { kind: 'branch'; branch: string } | { kind: 'sha'; sha: string };

export type UpdatePlan =
  | { action: 'disabled'; reason: string }
  | { action: 'no-remote'; reason: string }
  | { action: 'fetch'; remote: string; target: FetchTarget; force: boolean; reason: string };

/** Decides the fetch from settings. */
export function planUpdate(settings: Pick<Settings, 'noupgrade' | 'update-revision' | 'fetch-revision' | 'gitroot.remote'>): UpdatePlan {
  if (settings.noupgrade) return { action: 'disabled', reason: 'updates are disabled (noupgrade)' };
  const remote = settings['gitroot.remote'];
  if (!remote) {
    return { action: 'no-remote', reason: 'no gitroot.remote is set: add gitroot.remote=URL to /etc/gitroot/gitroot.conf or the kernel command line' };
  }
  const pin = settings['update-revision'];
  if (pin) return { action: 'fetch', remote, target: { kind: 'sha', sha: pin }, force: true, reason: `update-revision pins ${pin}` };
  const branch = settings['fetch-revision'];
  return { action: 'fetch', remote, target: { kind: 'branch', branch }, force: false, reason: `tip of ${branch}` };
}
