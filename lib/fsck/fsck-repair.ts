/**
 * `gitroot fsck --repair`: makes a damaged home whole again from gitroot.remote, in named steps:
 *   1. fsck            what is broken, where (records the verdict, so the boot avoids it meanwhile)
 *   2. fetch           each broken revision again as a full pack (no `have`s, indexed on its own
 *                      so index-pack never reads a damaged local copy), installed beside the old
 *                      packs; the store's reads then skip damaged copies for good ones
 *   3. fsck again      every kept revision must now read back verified
 *   4. move aside      packs failing their checksums and damaged loose objects go to
 *                      `objects/pack/corrupt-<date>/`, only when every object the kept revisions
 *                      reach has another copy (checked against the remaining .idx files)
 *   5. fsck again      the final report and verdict (keyed by the new pack set)
 * Nothing is deleted; a damaged file is only ever moved after a good copy of all it serves is
 * installed and durable. docs/fsck.md walks through it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors/errors.js';
import { fsyncDir } from '../fsutil/atomic-write.js';
import { stepAsync, step } from '../fsutil/named-step.js';
import { DEFAULT_LOCK_WAIT_MS } from '../fsutil/process-lock.js';
import { acquireFetchLock } from '../fetch/fetch-lock.js';
import { fetchCommit } from '../fetch/repo-fetch.js';
import { loadSettings } from '../params/settings-load.js';
import { decodeLoose } from '../store/loose-objects.js';
import { hashObject } from '../store/git-objects.js';
import { PackIndex } from '../store/pack-index.js';
import { type FsckReport, type RepairSummary } from './fsck-report.js';
import { runFsck } from './fsck-run.js';
import { packIndexes } from './fsck-walk.js';
import { repoPath } from '../home/home-layout.js';

export interface RepairOptions {
  dir: string;
  cmdlineFile?: string;
  configPath?: string;
  lockWaitMs?: number;
  onProgress?: (done: number, total: number) => void;
  /** Lines for people while it works (stderr). */
  onNote?: (line: string) => void;
}

/** Pure: the set of files to move for a damaged pack (its .idx first, so no reader sees an index without its pack). */
export function packFiles(idxPath: string, names: readonly string[]): string[] {
  const dir = path.dirname(idxPath);
  const stem = path.basename(idxPath).replace(/\.idx$/, '');
  const rank = (n: string): number => (n.endsWith('.idx') ? 0 : n.endsWith('.pack') ? 2 : 1);
  return names
    .filter((n) => n.startsWith(`${stem}.`))
    .sort((a, b) => rank(a) - rank(b))
    .map((n) => path.join(dir, n));
}

/** True when the loose file at `file` still fails to read back as `oid`. */
function looseStillDamaged(file: string, oid: string): boolean {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch {
    return false;
  }
  try {
    const obj = decodeLoose(data);
    return !hashObject(obj.type, obj.data).equals(Buffer.from(oid, 'hex'));
  } catch {
    return true;
  }
}

/** `corrupt-20261122T153000Z` */
function corruptDirName(now: Date): string {
  return `corrupt-${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
}

/**
 * Which of `candidates` (idx paths of damaged packs, and damaged loose files) can go: all of
 * them when every reachable object has a copy outside them, else none (with the objects that
 * would be lost counted). Checked against the .idx files themselves, not the store.
 */
function completeWithout(repo: string, reachable: Set<string>, packsOut: Set<string>, looseOut: Set<string>): { ok: boolean; lost: string[] } {
  const indexes: PackIndex[] = [];
  for (const idx of packIndexes(repo)) {
    if (packsOut.has(idx)) continue;
    try {
      indexes.push(PackIndex.load(idx));
    } catch {
      /* unreadable: holds nothing we can count on */
    }
  }
  const lost: string[] = [];
  for (const oid of reachable) {
    const id = Buffer.from(oid, 'hex');
    if (indexes.some((ix) => ix.lookup(id) >= 0)) continue;
    const loose = path.join(repo, 'objects', oid.slice(0, 2), oid.slice(2));
    if (!looseOut.has(loose) && fs.existsSync(loose)) continue;
    lost.push(oid);
  }
  return { ok: lost.length === 0, lost };
}

/** Runs the repair (see the module comment); returns the final report with `repair` filled in. */
export async function repairHome(opts: RepairOptions): Promise<FsckReport> {
  const say = opts.onNote ?? (() => {});
  const repo = repoPath(opts.dir);
  const first = await runFsck({ dir: opts.dir, onProgress: opts.onProgress, lockWaitMs: opts.lockWaitMs });
  const summary: RepairSummary = {
    fetched: [],
    movedAside: [],
    corruptDir: null,
    kept: [],
    before: {
      clean: first.report.clean,
      brokenObjects: first.report.objects.length,
      brokenRevisions: first.report.revisions.filter((r) => r.status !== 'ok').map((r) => r.revision),
    },
  };
  if (first.report.clean) return { ...first.report, repair: summary };

  // 2. fetch
  if (summary.before.brokenRevisions.length > 0) {
    const loaded = await loadSettings({ dir: opts.dir, cmdlineFile: opts.cmdlineFile, configPath: opts.configPath });
    const s = loaded.settings;
    const remote = s['gitroot.remote'];
    if (!remote) {
      throw new UsageError(
        `fsck --repair: ${summary.before.brokenRevisions.length} revision(s) are broken and gitroot.remote is not set, ` +
          'so there is nowhere to fetch good copies from: set gitroot.remote (in /etc/gitroot or on the kernel command line)',
      );
    }
    for (const revision of summary.before.brokenRevisions) {
      say(`repair: fetching ${revision} again from ${remote} as a full pack`);
      const got = await stepAsync(`fetch ${revision.slice(0, 12)} again`, () =>
        fetchCommit({
          gitdir: repo,
          remote,
          sha: revision,
          mode: 'repair',
          timeoutMs: s['gitroot.timeout'] * 1000,
          retries: s['gitroot.retries'],
          lockWaitMs: opts.lockWaitMs,
        }),
      );
      summary.fetched.push({ revision, objects: got.objects, bytes: got.bytes });
    }
  }

  // 3. fsck again (not recorded: step 5 does)
  const mid = await runFsck({ dir: opts.dir, record: false, onProgress: opts.onProgress });

  // 4. move aside
  const lock = await acquireFetchLock(repo, { waitMs: opts.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS });
  try {
    const packsOut = new Set(mid.report.packs.filter((p) => p.problems.length > 0).map((p) => p.index));
    for (const d of mid.report.damagedCopies) if (d.path.endsWith('.pack')) packsOut.add(d.path.replace(/\.pack$/, '.idx'));
    const looseOut = new Set<string>();
    const looseRoot = path.join(repo, 'objects') + path.sep;
    const damagedLoose = [...first.report.objects.map((o) => ({ oid: o.oid, path: o.where })), ...mid.report.damagedCopies];
    for (const d of damagedLoose) {
      if (d.path !== null && d.path.startsWith(looseRoot) && !d.path.endsWith('.pack') && looseStillDamaged(d.path, d.oid)) looseOut.add(d.path);
    }
    const stillBroken = mid.report.revisions.filter((r) => r.status !== 'ok').map((r) => r.revision);
    const files = [...packsOut, ...looseOut];
    if (files.length > 0) {
      const check = stillBroken.length > 0 ? { ok: false, lost: [] } : completeWithout(repo, mid.walk.reachable, packsOut, looseOut);
      if (!check.ok) {
        const why =
          stillBroken.length > 0
            ? `revision(s) ${stillBroken.join(', ')} are still broken after the fetch, so damaged files are kept for inspection`
            : `${check.lost.length} object(s) the kept revisions need (e.g. ${check.lost[0]}) have no other copy`;
        for (const f of files) summary.kept.push({ path: f.replace(/\.idx$/, '.pack'), why });
      } else {
        const packDir = path.join(repo, 'objects', 'pack');
        const aside = path.join(packDir, corruptDirName(new Date()));
        step('move damaged files aside', () => {
          fs.mkdirSync(aside, { recursive: true });
          const names = fs.readdirSync(packDir);
          for (const idx of packsOut) {
            for (const f of packFiles(idx, names)) {
              fs.renameSync(f, path.join(aside, path.basename(f)));
              summary.movedAside.push(f);
            }
          }
          for (const f of looseOut) {
            const oid = path.basename(path.dirname(f)) + path.basename(f);
            fs.renameSync(f, path.join(aside, `loose-${oid}`));
            summary.movedAside.push(f);
            fsyncDir(path.dirname(f));
          }
          fsyncDir(aside);
          fsyncDir(packDir);
        });
        summary.corruptDir = aside;
        say(`repair: moved ${summary.movedAside.length} damaged file(s) into ${aside}`);
      }
    }
  } finally {
    lock.release();
  }

  // 5. the final word
  const last = await runFsck({ dir: opts.dir, onProgress: opts.onProgress, lockWaitMs: opts.lockWaitMs });
  return { ...last.report, repair: summary };
}
