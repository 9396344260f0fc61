/**
 * The boot loader's own count of the pending revision's tries, folded into the state (pure).
 *
 * systemd-boot renames the pending revision's BLS entry before it starts the kernel
 * (`gitroot-<sha12>+2-1.conf`, ...), and the initramfs counts the same tries in
 * `D/state.json`. When the pending kernel never reaches gitroot's initramfs (it panics, or its
 * initrd is unusable), only the loader's count moves; once it is at zero the loader sorts the
 * entry last and boots the known-good one, and the state would keep the revision pending, with
 * tries left, for ever. So whenever gitroot reads the entries after a boot (mark-good, mark-bad
 * and rollback do, lib/boot/transitions.ts), the pending revision's `triesLeft` becomes the
 * lower of the two counts, and a pending revision whose loader count is zero while another
 * revision runs is recorded as failed. Loaders without a counter (extlinux) tell nothing.
 * docs/rollback.md ("The pending kernel does not start at all").
 */
import type { InstalledEntry } from '../bootloader/bootloader.js';
import { entryId } from '../bootloader/boot-plan.js';
import { type DeployState, withFailed } from '../home/home-state.js';

/** The boot loader's count of one revision's tries, from its entry's file name. */
export interface LoaderCount {
  revision: string;
  /** Tries the loader still gives it (`+LEFT`). */
  left: number;
  /** Tries the loader started (`-DONE`). */
  done: number;
  /** The entry file it was read from. */
  file: string;
}

/** What the loader's count changes in a state. */
export interface LoaderVerdict {
  state: DeployState;
  /** One line for people when the state changed, else null. */
  note: string | null;
  /** The pending revision recorded as failed because the loader used up its tries, or null. */
  failed: string | null;
}

/**
 * The loader's count of the pending revision (pure): its entry, the one whose id and
 * `git-revision=` name it, with a boot counter in its file name; null when there is none.
 */
export function pendingLoaderCount(state: DeployState, entries: InstalledEntry[]): LoaderCount | null {
  const p = state.pending;
  if (p === null) return null;
  const e = entries.find((x) => x.id === entryId(p.revision) && x.revision === p.revision && x.tries !== null);
  return e === undefined || e.tries === null ? null : { revision: p.revision, left: e.tries.left, done: e.tries.done, file: e.file };
}

/**
 * Folds the loader's count into `state` (pure; see the module comment). Call it on the state as
 * the boot left it (the boot already counted its own try of the pending revision): the pending
 * revision keeps the lower of its two counts, and with none left in the loader while
 * `state.booted` is another revision it is recorded as failed. A count of another revision, or
 * one that is not lower than the state's, changes nothing.
 */
export function applyLoaderCount(state: DeployState, count: LoaderCount | null): LoaderVerdict {
  const p = state.pending;
  if (p === null || count === null || count.revision !== p.revision || count.left >= p.triesLeft) {
    return { state, note: null, failed: null };
  }
  const unseen = p.triesLeft - count.left;
  const what =
    `the boot loader counted ${unseen} ${unseen === 1 ? 'try' : 'tries'} of pending revision ${p.revision} ` +
    `that never reached gitroot's initramfs (entry ${count.file})`;
  if (count.left === 0 && state.booted !== p.revision) {
    return {
      state: withFailed(state, p.revision),
      note: `${what}: it has no tries left and the loader boots another entry, so it is recorded as failed`,
      failed: p.revision,
    };
  }
  return { state: { ...state, pending: { ...p, triesLeft: count.left } }, note: `${what}: ${count.left} left`, failed: null };
}
