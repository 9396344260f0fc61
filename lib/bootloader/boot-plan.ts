/**
 * Which boot entries exist, which is the default and what command line each carries: a pure
 * function of the deployment state (planBootEntries), shared by every boot loader backend.
 * The pending revision gets an entry with a boot counter (its tries left) and is the default
 * while it has tries left; the known-good revision (or, with none yet, the last booted one)
 * gets a plain fallback entry. Each command line is the revision's base options without
 * per-boot keys, plus `git-revision=<sha>`.
 */
import type { DeployState, StagedRevision } from '../home/home-state.js';
import { OID_PATTERN } from '../store/object-id.js';

/**
 * Keys that only make sense for the boot they were typed at (the revision overrides, `noupgrade`)
 * or that boot loaders add themselves; never copied into an entry's options.
 */
export const PER_BOOT_KEYS = ['git-revision', 'update-revision', 'noupgrade', 'BOOT_IMAGE', 'initrd'] as const;
/** Base options of a revision staged without any given (the initramfs-tools script name). */
export const DEFAULT_BOOT_OPTIONS = 'boot=gitroot';

/** Where the boot loader finds the staged kernel directories. */
export interface KernelLocation {
  /**
   * Path, as the boot loader sees it, of the directory holding `<kernelDir>/vmlinuz`:
   * `/gitroot` when kernels are copied to `$BOOT/gitroot/`, else the path of `D/boot` inside `$BOOT`.
   */
  kernelRoot: string;
  /** True when kernel directories are copied from `D/boot/` to `$BOOT/gitroot/`. */
  copy: boolean;
}

/** One boot entry to write. */
export interface BootEntry {
  /** Entry id without boot counter: `gitroot-<first 12 hex of the revision>`. */
  id: string;
  revision: string;
  /** pending: staged, on trial; good: the known-good revision; fallback: last booted, when nothing is good yet. */
  role: 'pending' | 'good' | 'fallback';
  title: string;
  /** Kernel version (or the short revision when unknown), shown by menus. */
  version: string;
  /** BLS sort key: the pending entry sorts before the fallback one. */
  sortKey: string;
  /** Kernel path as the boot loader sees it. */
  linux: string;
  /** Initrd path as the boot loader sees it, or null. */
  initrd: string | null;
  /** Whole kernel command line. */
  options: string;
  /** Boot counter to start the entry with (BLS `+N`): the pending revision's tries left; null for fallbacks. */
  tries: number | null;
  /** `D/boot/<kernelDir>/` holds its files. */
  kernelDir: string;
  /** File names in that directory the entry uses. */
  files: string[];
}

/** What planBootEntries decided. */
export interface BootPlan {
  /** Entries, the default one first. */
  entries: BootEntry[];
  /** Id of the entry that boots next, or null when there is no entry. */
  defaultId: string | null;
  /** Kernel directories the entries use (to copy under `$BOOT/gitroot/` in copy mode). */
  kernelDirs: string[];
  location: KernelLocation;
  /** Revisions that should have an entry but cannot, one line each. */
  warnings: string[];
}

/** Entry id of a revision. */
export function entryId(revision: string): string {
  return `gitroot-${revision.slice(0, 12)}`;
}

/**
 * Splits a kernel command line into parameters: whitespace separates them, double quotes
 * group (`foo="a b"` is one parameter, quotes kept).
 */
export function splitCmdline(cmdline: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let has = false;
  for (const c of cmdline) {
    if (c === '"') {
      quoted = !quoted;
      cur += c;
      has = true;
    } else if (!quoted && /\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

/** `options` without per-boot keys (PER_BOOT_KEYS), whitespace normalised, on one line. */
export function baseOptions(options: string): string {
  return splitCmdline(options)
    .filter((p) => !PER_BOOT_KEYS.some((k) => p === k || p.startsWith(`${k}=`)))
    .join(' ');
}

const OPTIONS_REVISION = new RegExp(`(?:^|\\s)git-revision=(${OID_PATTERN})(?:\\s|$)`);

/** The revision an entry's command line selects (its `git-revision=<sha>`), or null. */
export function optionsRevision(options: string): string | null {
  return OPTIONS_REVISION.exec(options)?.[1] ?? null;
}

/** The command line of an entry for `revision`. */
export function entryOptions(base: string, revision: string): string {
  const b = baseOptions(base);
  return b === '' ? `git-revision=${revision}` : `${b} git-revision=${revision}`;
}

const ROLE_TITLE: Record<BootEntry['role'], string> = { pending: 'next', good: 'known good', fallback: 'last booted' };
const ROLE_SORT: Record<BootEntry['role'], string> = { pending: 'gitroot-0', good: 'gitroot-1', fallback: 'gitroot-1' };

function makeEntry(revision: string, staged: StagedRevision, role: BootEntry['role'], tries: number | null, location: KernelLocation): BootEntry {
  const kernelDir = staged.kernelDir as string;
  const base = `${location.kernelRoot.replace(/\/+$/, '')}/${kernelDir}`;
  const short = revision.slice(0, 12);
  const files = [staged.kernel as string, ...(staged.initrd === null ? [] : [staged.initrd])];
  return {
    id: entryId(revision),
    revision,
    role,
    title: `gitroot ${short} (${ROLE_TITLE[role]}${staged.kernelVersion === null ? '' : `, kernel ${staged.kernelVersion}`})`,
    version: staged.kernelVersion ?? short,
    sortKey: ROLE_SORT[role],
    linux: `${base}/${staged.kernel}`,
    initrd: staged.initrd === null ? null : `${base}/${staged.initrd}`,
    options: entryOptions(staged.options, revision),
    tries,
    kernelDir,
    files,
  };
}

/**
 * Plans the boot entries for `state` (pure). Entries: the pending revision (boot counter =
 * its tries left), and one fallback: the good revision, or when there is none the booted one
 * if it is not failed. A revision without a staged kernel gets no entry (and a warning). The
 * default is the pending entry while it has tries left and otherwise the fallback.
 */
export function planBootEntries(state: DeployState, location: KernelLocation): BootPlan {
  const entries: BootEntry[] = [];
  const warnings: string[] = [];
  const usable = (rev: string, what: string): StagedRevision | null => {
    const s = state.staged[rev];
    if (s === undefined || s.kernelDir === null || s.kernel === null) {
      warnings.push(`the ${what} revision ${rev} has no staged kernel: it gets no boot entry`);
      return null;
    }
    return s;
  };
  const pendingRev = state.pending?.revision ?? null;
  let pending: BootEntry | null = null;
  if (state.pending !== null) {
    const s = usable(state.pending.revision, 'pending');
    if (s !== null) pending = makeEntry(state.pending.revision, s, 'pending', state.pending.triesLeft, location);
  }
  let fallback: BootEntry | null = null;
  if (state.good !== null && state.good !== pendingRev) {
    const s = usable(state.good, 'good');
    if (s !== null) fallback = makeEntry(state.good, s, 'good', null, location);
  } else if (state.good === null && state.booted !== null && state.booted !== pendingRev && !state.failed.includes(state.booted)) {
    const s = usable(state.booted, 'booted');
    if (s !== null) fallback = makeEntry(state.booted, s, 'fallback', null, location);
  }
  if (pending !== null && (pending.tries !== 0 || fallback === null)) {
    entries.push(pending);
    if (fallback !== null) entries.push(fallback);
  } else {
    if (fallback !== null) entries.push(fallback);
    if (pending !== null) entries.push(pending);
  }
  const kernelDirs = [...new Set(entries.map((e) => e.kernelDir))];
  return { entries, defaultId: entries[0]?.id ?? null, kernelDirs, location, warnings };
}

/**
 * The entries of `next` followed by those of `before` that `next` drops (default and sort order
 * stay `next`'s). A change of state.json from `before` to `next` installs this first, writes the
 * state, then installs `next` (removing the dropped entries and their kernel copies), so at every
 * instant each revision either state can boot still has its entry and kernel: a power cut between
 * the entries and the state leaves neither state without the entry it selects. An entry left
 * for a revision the new state records as failed is passed over at boot (git-revision= of a
 * failed revision boots the good one).
 */
export function unionPlan(next: BootPlan, before: BootPlan): BootPlan {
  const ids = new Set(next.entries.map((e) => e.id));
  const entries = [...next.entries, ...before.entries.filter((e) => !ids.has(e.id))];
  return { ...next, entries, kernelDirs: [...new Set(entries.map((e) => e.kernelDir))] };
}
