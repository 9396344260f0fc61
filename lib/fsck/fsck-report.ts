/**
 * fsck's pure side: which revisions a home keeps (planRoots), the stable report built from
 * a walk (buildReport: every broken object with the revisions and paths it breaks), its
 * human rendering, the verdict the boot decision reads, and the typed error a damaged
 * repository ends with. docs/fsck.md documents the JSON shape.
 */
import { ObjectCorruptError } from '../errors/errors.js';
import type { DeployState } from '../home/home-state.js';
import type { DamagedCopy } from '../store/object-store.js';
import type { RefEntry } from '../store/refs.js';
import { FSCK_VERDICT_VERSION, type FsckVerdict, VERDICT_MAX_OBJECTS } from './fsck-verdict.js';
import type { BrokenObject, FsckRoot, PackFinding, RevisionFinding, WalkResult } from './fsck-walk.js';

/** Version of the `--json` report shape. */
export const FSCK_REPORT_VERSION = 1;

/** A broken object and what it breaks. */
export interface ReportObject extends BrokenObject {
  /** Each revision it breaks, with the paths in it ('' = the revision itself). */
  breaks: Array<{ revision: string; paths: string[] }>;
}

/** What repair did (see fsck-repair.ts). */
export interface RepairSummary {
  /** Revisions fetched again as full packs. */
  fetched: Array<{ revision: string; objects: number; bytes: number }>;
  /** Files moved into `objects/pack/corrupt-<date>/` (their old paths). */
  movedAside: string[];
  /** Where they went, or null when nothing moved. */
  corruptDir: string | null;
  /** Damaged files left in place, with why (e.g. they still hold the only copy of an object). */
  kept: Array<{ path: string; why: string }>;
  /** The report before the repair. */
  before: { clean: boolean; brokenObjects: number; brokenRevisions: string[] };
}

export interface FsckReport {
  version: typeof FSCK_REPORT_VERSION;
  repo: string;
  checkedAt: string;
  durationMs: number;
  /** True when no object is broken, no pack fails its checksums and no damaged copy was met. */
  clean: boolean;
  /** True when every revision that was checked was. */
  complete: boolean;
  objectsChecked: number;
  bytesChecked: number;
  revisions: RevisionFinding[];
  objects: ReportObject[];
  packs: PackFinding[];
  damagedCopies: DamagedCopy[];
  /** Whether D/fsck.json was written, and why not. */
  verdict: { written: boolean; path: string; reason: string | null };
  repair: RepairSummary | null;
}

/** fsck found damage: exit status 4, details on stdout. */
export class FsckDamageError extends ObjectCorruptError {}

function addRole(roots: Map<string, string[]>, sha: string | null | undefined, role: string): void {
  if (sha === null || sha === undefined) return;
  const roles = roots.get(sha) ?? [];
  if (!roles.includes(role)) roles.push(role);
  roots.set(sha, roles);
}

/**
 * Pure: the revisions a home keeps, each once with every role it has: good, pending, booted,
 * previous-good, staged (from state.json), then `ref:<name>` for each ref of the repository
 * (annotated tags by the tag object, so the tag is checked too).
 */
export function planRoots(state: DeployState, refs: readonly RefEntry[]): FsckRoot[] {
  const roots = new Map<string, string[]>();
  addRole(roots, state.good, 'good');
  addRole(roots, state.pending?.revision, 'pending');
  addRole(roots, state.booted, 'booted');
  for (const s of state.previousGood) addRole(roots, s, 'previous-good');
  for (const s of Object.keys(state.staged)) addRole(roots, s, 'staged');
  for (const r of refs) if (r.symref === undefined) addRole(roots, r.oid, `ref:${r.name}`);
  return [...roots].map(([revision, roles]) => ({ revision, roles }));
}

/** Pure: the report of a walk. */
export function buildReport(walk: WalkResult, meta: { repo: string; checkedAt: string; durationMs: number; complete: boolean }): FsckReport {
  const breaks = new Map<string, Map<string, string[]>>();
  for (const r of walk.revisions) {
    for (const b of r.broken) {
      const byRev = breaks.get(b.oid) ?? new Map<string, string[]>();
      byRev.set(r.revision, [...(byRev.get(r.revision) ?? []), b.path]);
      breaks.set(b.oid, byRev);
    }
  }
  const objects = [...walk.broken.values()]
    .map((o) => ({ ...o, breaks: [...(breaks.get(o.oid) ?? [])].map(([revision, paths]) => ({ revision, paths: paths.sort() })) }))
    .sort((a, b) => (a.oid < b.oid ? -1 : 1));
  const clean =
    objects.length === 0 &&
    walk.packs.every((p) => p.problems.length === 0) &&
    walk.damagedCopies.length === 0 &&
    walk.revisions.every((r) => r.status === 'ok');
  return {
    version: FSCK_REPORT_VERSION,
    repo: meta.repo,
    checkedAt: meta.checkedAt,
    durationMs: meta.durationMs,
    clean,
    complete: meta.complete,
    objectsChecked: walk.objectsChecked,
    bytesChecked: walk.bytesChecked,
    revisions: walk.revisions,
    objects,
    packs: walk.packs,
    damagedCopies: walk.damagedCopies,
    verdict: { written: false, path: '', reason: null },
    repair: null,
  };
}

/** Pure: the verdict for the boot decision. */
export function verdictOf(report: FsckReport, packSet: string): FsckVerdict {
  return {
    version: FSCK_VERDICT_VERSION,
    checkedAt: report.checkedAt,
    packSet,
    clean: report.clean,
    revisions: Object.fromEntries(report.revisions.map((r) => [r.revision, r.status])),
    brokenObjects: Object.fromEntries(
      report.revisions.filter((r) => r.broken.length > 0).map((r) => [r.revision, [...new Set(r.broken.map((b) => b.oid))].slice(0, VERDICT_MAX_OBJECTS)]),
    ),
  };
}

const short = (sha: string): string => sha.slice(0, 12);
const showPath = (p: string): string => (p === '' ? '(the revision itself)' : p);

/** Pure: the human rendering, one fact a line. */
export function formatReport(r: FsckReport): string[] {
  const lines: string[] = [];
  for (const rev of r.revisions) {
    const m = rev.manifest;
    const manifest = m.status === 'ok' ? `manifest ok (${m.entries} entries)` : `manifest ${m.status}${m.detail ? `: ${m.detail}` : ''}`;
    const what = rev.status === 'ok' ? 'ok' : rev.status === 'missing' ? 'MISSING' : `BROKEN (${rev.broken.length} path${rev.broken.length === 1 ? '' : 's'})`;
    lines.push(`revision ${rev.revision} [${rev.roles.join(', ')}]: ${what}; ${manifest}`);
  }
  for (const o of r.objects) {
    lines.push(`${o.problem} ${o.expected} ${o.oid}${o.where ? ` in ${o.where}` : ''}: ${o.detail}`);
    for (const b of o.breaks) for (const p of b.paths) lines.push(`  breaks ${short(b.revision)} ${showPath(p)}`);
  }
  for (const p of r.packs) for (const problem of p.problems) lines.push(`pack ${p.pack}: ${problem}`);
  for (const d of r.damagedCopies) lines.push(`damaged copy of ${d.oid} in ${d.path} (another copy is good): ${d.detail}`);
  if (r.repair !== null) {
    for (const f of r.repair.fetched) lines.push(`repair: fetched ${f.revision} again (${f.objects} objects, ${f.bytes} bytes)`);
    for (const m of r.repair.movedAside) lines.push(`repair: moved ${m} into ${r.repair.corruptDir}`);
    for (const k of r.repair.kept) lines.push(`repair: left ${k.path} in place: ${k.why}`);
  }
  const packBytes = r.packs.reduce((n, p) => n + p.bytes, 0);
  lines.push(
    `${r.clean ? 'clean' : 'DAMAGED'}: ${r.revisions.length} revision${r.revisions.length === 1 ? '' : 's'}, ${r.objectsChecked} objects ` +
      `(${r.bytesChecked} bytes) verified, ${r.packs.length} pack${r.packs.length === 1 ? '' : 's'} (${packBytes} bytes) checksummed ` +
      `in ${(r.durationMs / 1000).toFixed(1)} s`,
  );
  if (!r.verdict.written && r.verdict.reason !== null) lines.push(`verdict not recorded: ${r.verdict.reason}`);
  return lines;
}

/** Pure: the one-line summary of a damaged repository (the error on stderr). */
export function damageSummary(r: FsckReport): string {
  const revs = r.revisions.filter((x) => x.status !== 'ok').map((x) => short(x.revision));
  const parts: string[] = [];
  if (r.objects.length > 0) parts.push(`${r.objects.length} broken or missing object${r.objects.length === 1 ? '' : 's'}`);
  if (revs.length > 0) parts.push(`breaking revision${revs.length === 1 ? '' : 's'} ${revs.join(', ')}`);
  const badPacks = r.packs.filter((p) => p.problems.length > 0).length;
  if (badPacks > 0) parts.push(`${badPacks} pack${badPacks === 1 ? '' : 's'} failing checksums`);
  if (r.damagedCopies.length > 0) parts.push(`${r.damagedCopies.length} damaged cop${r.damagedCopies.length === 1 ? 'y' : 'ies'} shadowed by good ones`);
  return `fsck: ${r.repo} is damaged (${parts.join('; ')}): see the report on stdout; run 'gitroot fsck --repair' to fetch good copies from gitroot.remote`;
}
