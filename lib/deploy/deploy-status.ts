/**
 * `gitroot status`: what the machine booted, what is good, what boots next, what failed, and
 * how the last fetch went, read from `D/state.json` and `D/last-fetch.json` (no lock needed:
 * both are replaced atomically). readStatus returns data (the `--json` shape); formatStatus
 * renders the human table.
 */
import { type LastFetch, readLastFetch } from '../home/last-fetch.js';
import { readState } from '../home/home-state.js';
import { ObjectStore } from '../store/object-store.js';
import { parseTag } from '../store/git-objects.js';
import { readRef } from '../store/refs.js';
import { tagRefName } from '../store/gitroot-refs.js';
import { repoPath } from '../home/home-layout.js';

/** The status of a gitroot home; the JSON `gitroot status --json` prints. */
export interface DeployStatus {
  /** What the kernel booted (RUN/booted.json's when a live update runs, else state.json's `booted`). */
  booted: string | null;
  /** What runs: `booted`, or the revision a live update switched to (`gitroot apply-live`). */
  running: string | null;
  /** The live update running since the boot, or null. */
  live: LiveStatus | null;
  good: string | null;
  pending: { revision: string; triesLeft: number; tries: number; stagedAt: string } | null;
  failed: string[];
  /** `gitroot.remote`, from the caller's settings. */
  remote: string | null;
  /** `fetch-revision`, from the caller's settings. */
  fetchRevision: string;
  lastFetch: LastFetch | null;
  /** Earlier known-good revisions, newest first. */
  previousGood: string[];
  /** Kernel each of the booted, good and pending revisions boots with. */
  kernels: Record<string, { version: string | null; kernelDir: string | null }>;
  /** The annotated tag each of the booted, good and pending revisions was fetched through (refs/gitroot/tag/<sha>), when there is one. */
  tags: Record<string, { tag: string; name: string }>;
  /** Problems met while reading (an unreadable last-fetch record), one line each. */
  warnings: string[];
}

/** What runs live since the boot (RUN/live.json, read by the caller: lib/live/live-record.ts). */
export interface LiveStatus {
  booted: string;
  running: string;
  /** ISO 8601, since when `running` runs. */
  since: string;
  /** Live updates made since the boot. */
  rounds: number;
}

export interface StatusOptions {
  /** The live update running, or null/absent. */
  live?: LiveStatus | null;
  /** `gitroot.remote` from settings, or null. */
  remote: string | null;
  /** `fetch-revision` from settings. */
  fetchRevision: string;
}

/**
 * Reads the status of home `dir`. An unreadable `state.json` is an error (StateError); an
 * unreadable `last-fetch.json` only a warning, since it never affects booting.
 */
export function readStatus(dir: string, opts: StatusOptions): DeployStatus {
  const state = readState(dir);
  const warnings: string[] = [];
  let lastFetch: LastFetch | null = null;
  try {
    lastFetch = readLastFetch(dir);
  } catch (e) {
    warnings.push((e as Error).message);
  }
  const kernels: DeployStatus['kernels'] = {};
  for (const rev of [opts.live?.booted ?? null, state.booted, state.good, state.pending?.revision ?? null]) {
    const s = rev === null ? undefined : state.staged[rev];
    if (rev !== null && s !== undefined) kernels[rev] = { version: s.kernelVersion, kernelDir: s.kernelDir };
  }
  const tags = readTags(dir, [opts.live?.booted ?? null, state.booted, state.good, state.pending?.revision ?? null], warnings);
  const live = opts.live ?? null;
  return {
    booted: live?.booted ?? state.booted,
    running: live?.running ?? state.booted,
    live,
    good: state.good,
    pending: state.pending === null ? null : { ...state.pending },
    failed: [...state.failed],
    remote: opts.remote,
    fetchRevision: opts.fetchRevision,
    lastFetch,
    previousGood: [...state.previousGood],
    kernels,
    tags,
    warnings,
  };
}

/** The tags recorded for `revisions` (name from the tag object); unreadable ones are a warning. */
function readTags(dir: string, revisions: (string | null)[], warnings: string[]): DeployStatus['tags'] {
  const repo = repoPath(dir);
  const found = revisions
    .filter((r): r is string => r !== null)
    .map((r) => [r, readRef(repo, tagRefName(r))] as const)
    .filter((x): x is readonly [string, string] => x[1] !== null);
  const out: DeployStatus['tags'] = {};
  if (found.length === 0) return out;
  let store: ObjectStore;
  try {
    store = ObjectStore.open(repo);
  } catch (e) {
    warnings.push(`tags not shown: ${(e as Error).message}`);
    return out;
  }
  try {
    for (const [rev, tag] of found) {
      try {
        out[rev] = { tag, name: parseTag(store.readObject(tag).data).tag };
      } catch (e) {
        warnings.push(`tag ${tag} of ${rev} cannot be read: ${(e as Error).message}`);
      }
    }
  } finally {
    store.close();
  }
  return out;
}

function kernelNote(status: DeployStatus, rev: string): string {
  const k = status.kernels[rev];
  const tag = status.tags[rev];
  return (tag ? `  tag ${tag.name}` : '') + (k?.version ? `  kernel ${k.version}` : '');
}

/** The booted revision with what it is: good, on trial (pending), failed. */
function bootedLine(status: DeployStatus, rev: string | null): string {
  if (rev === null) return '-';
  const tags: string[] = [];
  if (rev === status.good) tags.push('good');
  if (rev === status.pending?.revision) tags.push('on trial');
  if (status.failed.includes(rev)) tags.push('failed');
  return `${rev}${tags.length > 0 ? `  (${tags.join(', ')})` : ''}${kernelNote(status, rev)}`;
}

function fetchLine(f: LastFetch | null): string {
  if (f === null) return 'never';
  const when = f.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  const what: Record<LastFetch['result'], string> = {
    staged: `staged ${f.revision ?? ''}`.trim(),
    'up-to-date': 'up to date',
    disabled: 'disabled (noupgrade)',
    // A trust refusal (lib/trust: signature, downgrade) carries its error; planStage's does not.
    refused: f.error ? `refused: ${f.error.message}` : `${f.revision ?? 'tip'} failed before, not staged`,
    'dry-run': 'dry run',
    failed: `failed: ${f.error?.message ?? 'unknown error'}`,
    waiting: `${f.revision ?? 'the release'} waits for the rollout (see channel)`,
  };
  const bytes = f.bytes === null ? '' : `, ${f.bytes} bytes`;
  return `${when}  ${what[f.result]}${bytes}`;
}

/** Renders a status as an aligned two-column table for people (ends with a newline). */
export function formatStatus(status: DeployStatus): string {
  const rows: [string, string][] = [
    ['booted', bootedLine(status, status.booted)],
    ...(status.live === null || status.live.running === status.live.booted
      ? []
      : [['running', `${bootedLine(status, status.running)}  live since ${status.live.since}`] as [string, string]]),
    ['good', status.good === null ? '-' : `${status.good}${kernelNote(status, status.good)}`],
    [
      'pending',
      status.pending === null
        ? '-'
        : `${status.pending.revision}  (${status.pending.triesLeft} of ${status.pending.tries} tries left, staged ${status.pending.stagedAt})` +
          kernelNote(status, status.pending.revision),
    ],
    ['failed', status.failed.length === 0 ? '-' : status.failed[0]],
    ...status.failed.slice(1).map((f): [string, string] => ['', f]),
    ['previous good', status.previousGood.length === 0 ? '-' : status.previousGood[0]],
    ['remote', status.remote ?? '-'],
    ['fetch revision', status.fetchRevision],
    ['last fetch', fetchLine(status.lastFetch)],
    ...status.warnings.map((w): [string, string] => ['warning', w]),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n';
}
