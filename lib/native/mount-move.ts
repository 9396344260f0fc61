/**
 * Moving prepared mounts into place back to back (native/mount_move.c, mount(2) MS_MOVE):
 * `gitroot apply-live` mounts its fresh views aside and moves them over the root just after
 * the switch, in microseconds.
 */
import { native } from './addon.js';

/** Moves each mount `from` to `to`, in order; returns how many moved and the errno of the one that failed (0: none). */
export function moveMounts(pairs: Array<{ from: string; to: string }>): { moved: number; errno: number } {
  const [moved, errno] = native().moveMounts(pairs.flatMap((p) => [p.from, p.to]));
  return { moved, errno };
}
