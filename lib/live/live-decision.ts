/**
 * Whether an update can be applied to the running system, decided from what it changes
 * (live-diff.ts). Pure: no I/O, tested over every kind of path and change
 * (test/live-decision.test.ts). docs/live.md explains the rules:
 *
 *   reboot       the kernel must change: kernel or initrd files (boot/, the vmlinuz and
 *                initrd.img links at the top), kernel modules (any of lib/modules), or the boot
 *                entries' kernel command line
 *   soft-reboot  only userspace must restart: PID 1 (systemd, its private libraries), the
 *                D-Bus broker (every service holds a connection to it), or entries of /
 *                itself (no fresh view of / can be given to a running system)
 *   live         anything else: the daemon switches, changed units are reloaded and restarted
 *
 * The strongest need wins. Also here: the state change a live update makes (planLiveState).
 */
import type { DeployState, PendingRevision } from '../home/home-state.js';
import type { LiveChange } from './live-diff.js';

export type LiveAction = 'live' | 'soft-reboot' | 'reboot';

/** Why a path needs more than a live switch (null: it does not). */
export type LiveNeed = 'kernel' | 'modules' | 'init' | 'bus' | 'root';

export interface LiveDecision {
  action: LiveAction;
  /** One line: what forces `action` (for `live`: what is applied). */
  reason: string;
  /** Every path that needs more than a live switch, with why, sorted by path. */
  blockers: Array<{ path: string; need: LiveNeed }>;
}

const NEED_ACTION: Record<LiveNeed, Exclude<LiveAction, 'live'>> = {
  kernel: 'reboot',
  modules: 'reboot',
  init: 'soft-reboot',
  bus: 'soft-reboot',
  root: 'soft-reboot',
};

const NEED_WORDS: Record<LiveNeed, string> = {
  kernel: 'the kernel or its initrd changes',
  modules: 'kernel modules change',
  init: 'PID 1 (systemd) changes',
  bus: "the D-Bus broker changes (restarting it cuts every service's connection)",
  root: 'entries of / change (a running system cannot get a fresh view of /)',
};

/** PID 1 and what it maps: systemd itself, its private libraries, the init links. */
const INIT = [/^(usr\/)?lib\/systemd\/systemd$/, /^(usr\/)?s?bin\/init$/, /^(usr\/)?lib\/(.+\/)?systemd\/libsystemd-(shared|core)-[^/]+\.so$/];
/** The D-Bus broker and the units that start it. */
const BUS = [
  /^(usr\/)?bin\/dbus-(daemon|broker|broker-launch)$/,
  /^(usr\/)?lib\/systemd\/system\/(dbus|dbus-broker)\.(service|socket)$/,
  /^etc\/systemd\/system\/(dbus|dbus-broker)\.(service|socket)(\.d\/.*)?$/,
];

/**
 * Why `path` needs more than a live switch, or null. Every modules directory counts, not only
 * the running kernel's: the revision's kernel is the one that boots next, and a module loaded
 * later (hotplug, on demand) must match the running kernel byte for byte.
 */
export function classifyPath(path: string): LiveNeed | null {
  if (path === '') return null; // the root directory's own attributes: overlayfs shows the upper's
  if (path === 'boot' || path.startsWith('boot/') || /^(vmlinuz|vmlinux|initrd\.img)(\.old|-.*)?$/.test(path)) return 'kernel';
  if (/^(usr\/)?lib\/modules(\/|$)/.test(path)) return 'modules';
  if (INIT.some((re) => re.test(path))) return 'init';
  if (BUS.some((re) => re.test(path))) return 'bus';
  if (!path.includes('/')) return 'root';
  return null;
}

export interface DecideLiveInput {
  changes: LiveChange[];
  /** The kernel command line of the running and the new revision's boot entries (staged records), when known. */
  optionsBefore: string | null;
  optionsAfter: string | null;
  /** Paths (in the tree) the running system has other filesystems mounted on (dev, run, tmp): their own entries at / are not seen. */
  mountPoints?: string[];
}

/** Decides how `changes` can be applied (see the module comment). */
export function decideLive(input: DecideLiveInput): LiveDecision {
  const blockers: LiveDecision['blockers'] = [];
  const mounted = new Set(input.mountPoints ?? []);
  for (const c of input.changes) {
    const need = classifyPath(c.path);
    // A top-level entry another filesystem is mounted on (dev, run) is not seen.
    if (need === 'root' && mounted.has(c.path)) continue;
    if (need !== null) blockers.push({ path: c.path, need });
  }
  blockers.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const options = input.optionsBefore !== null && input.optionsAfter !== null && input.optionsBefore !== input.optionsAfter;
  const strongest = (action: Exclude<LiveAction, 'live'>) => blockers.filter((b) => NEED_ACTION[b.need] === action);
  const reboot = strongest('reboot');
  if (reboot.length > 0 || options) {
    const parts: string[] = [];
    if (options) parts.push(`the boot entries' kernel command line changes ('${input.optionsBefore}' -> '${input.optionsAfter}')`);
    for (const need of ['kernel', 'modules'] as const) parts.push(...describe(reboot, need));
    return { action: 'reboot', reason: `needs a reboot: ${parts.join('; ')}`, blockers };
  }
  const soft = strongest('soft-reboot');
  if (soft.length > 0) {
    const parts = (['init', 'bus', 'root'] as const).flatMap((need) => describe(soft, need));
    return { action: 'soft-reboot', reason: `needs a userspace restart: ${parts.join('; ')}`, blockers };
  }
  const n = input.changes.filter((c) => !c.nested).length;
  return {
    action: 'live',
    reason: n === 0 ? 'nothing changes' : `${n} path${n === 1 ? '' : 's'} change, none needs a restart of the kernel or of PID 1`,
    blockers,
  };
}

function describe(blockers: LiveDecision['blockers'], need: LiveNeed): string[] {
  const of = blockers.filter((b) => b.need === need);
  if (of.length === 0) return [];
  const more = of.length > 1 ? ` and ${of.length - 1} more` : '';
  return [`${NEED_WORDS[need]} (/${of[0].path}${more})`];
}

/** The state change of a live update: what runs is recorded as `booted`, a pending trial of it ends. */
export interface LiveStatePlan {
  state: DeployState;
  /** The pending entry the update took over (its trial is the live run), or null. */
  withdrawn: PendingRevision | null;
}

/** Why a live update of a revision is refused by the state (null: it is not). */
export function liveStateRefusal(state: DeployState, revision: string): string | null {
  if (state.failed.includes(revision)) {
    return `revision ${revision} failed before (state.json lists it in failed): stage it again with update-revision= to retry it`;
  }
  return null;
}

/**
 * Pure: the state after `revision` starts running live. `booted` names what the machine runs
 * (so mark-good and mark-bad judge it, and its staged kernel is kept); a pending entry of
 * `revision` is withdrawn, so a reboot before mark-good boots the known-good revision, not a
 * trial of one already tried live. Going back to the revision the kernel booted is the same
 * rule. Other pending revisions stay pending.
 */
export function planLiveState(state: DeployState, revision: string): LiveStatePlan {
  const withdrawn = state.pending?.revision === revision ? state.pending : null;
  return { state: { ...state, booted: revision, pending: withdrawn ? null : state.pending }, withdrawn };
}
