/**
 * `gitroot apply-live`: applies a revision to the system gitroot booted, without a reboot
 * when the update allows it (docs/live.md). Named steps, each undoing what the ones before
 * did when it fails:
 *
 *   check    the boot record (RUN/booted.json), the lower layer's daemon and what it serves
 *   plan     the served diff (live-diff.ts), the decision (live-decision.ts: refused when the
 *            kernel must change, or userspace must restart and --soft-reboot is not given),
 *            the fresh views (live-views.ts) and the units (live-units.ts); all pure, nothing
 *            changes yet (--dry-run stops here)
 *   state    D/state.json: `booted` names the revision that runs, a pending trial of it ends
 *            (one crash-ordered change with its boot entries, deploy/state-change.ts)
 *   prepare  the new writable layer's directories (RUN/rw/live-N or RUN/rw/soft-N)
 *   switch   the daemon serving RUN/lower starts serving the revision (gitroot switch)
 *   views    live: a fresh overlay on each changed directory of the root;
 *            soft-reboot: the new root, an overlay over RUN/lower, at /run/nextroot
 *   record   RUN/live.json
 *   units    live: `systemctl daemon-reload` and `systemctl try-restart` of the changed
 *            services; soft-reboot: `systemctl soft-reboot` (the daemon survives it: its
 *            argv[0] starts with '@')
 *
 * A failure in switch or views switches back and puts the state back; a failing restart is
 * reported (the revision runs; the unit's own state says why it failed).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, realpathSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import type { Bootloader, BootloaderName } from '../bootloader/bootloader.js';
import { createBootloader } from '../bootloader/create-bootloader.js';
import { ensureMachineId } from '../boot/machine-id.js';
import { applyStateChange, sameState } from '../deploy/state-change.js';
import { GitrootError, MountError, StateError, UsageError } from '../errors/errors.js';
import type { SwitchResult } from '../gitfs/gitfs-server.js';
import { GITFS_FSTYPE, mountAt, readMounts } from '../gitfs/mount-table.js';
import { askDaemon, CONTROL_VERSION } from '../gitfs/switch-control.js';
import { CommitTreeView } from '../gitfs/tree-view.js';
import { S_IFMT } from '../fsutil/file-mode.js';
import { BOOT_RECORD_FILE, repoPath } from '../home/home-layout.js';
import { withLock } from '../home/home-lock.js';
import { type DeployState, readState } from '../home/home-state.js';
import { ObjectStore } from '../store/object-store.js';
import { readRef, resolveRevision } from '../store/refs.js';
import { tagRefName } from '../store/gitroot-refs.js';
import type { AllowedSigners } from '../trust/allowed-signers.js';
import { requireTrustedRevision } from '../trust/revision-trust.js';
import { readFileSync } from 'node:fs';
import { type LiveChange, diffViews } from './live-diff.js';
import { type LiveDecision, decideLive, liveStateRefusal, planLiveState } from './live-decision.js';
import { type LiveRecord, type LiveRound, readLiveRecord, writeLiveRecord } from './live-record.js';
import { type RestartPlan, planRestarts, readUnitExecs } from './live-units.js';
import { type ViewMount, hiddenIn, placeViews, planViews, prepareViews, stageViews, unstageViews } from './live-views.js';

const execFileAsync = promisify(execFile);

/** A live update refused before anything changed (`data.why`: reboot, soft-reboot, failed, views). */
export class LiveRefusedError extends GitrootError {
  constructor(message: string, why: string, data: Record<string, unknown> = {}) {
    super('ESTATE', message, { data: { why, ...data } });
  }
}

export interface ApplyLiveOptions {
  /** The gitroot home. */
  dir: string;
  /** Where gitroot boot keeps its mounts and records (RUN, /run/gitroot). */
  runDir: string;
  /** The root the booted system runs in (`/`; a test's boot target). */
  root: string;
  /** The revision to apply (default: the pending one). */
  revision?: string;
  /** Restart userspace into the new revision (systemctl soft-reboot) instead of switching live. */
  softReboot?: boolean;
  /** Where the soft-reboot's new root is prepared (default /run/nextroot). */
  nextRoot?: string;
  bootloader: Bootloader | BootloaderName;
  bootDir?: string;
  /** The trust root (gitroot.allowed-signers): its path, for the daemon too. */
  allowedSigners?: { path: string; signers: AllowedSigners } | null;
  /** The systemctl command (default GITROOT_SYSTEMCTL or `systemctl`). */
  systemctl?: string;
  /** Skip daemon-reload and restarts (live) or the soft-reboot itself. */
  noRestart?: boolean;
  /** Stop after planning. */
  dryRun?: boolean;
  waitMs?: number;
  log?: (line: string) => void;
}

export interface ApplyLiveResult {
  from: string;
  to: string;
  /** What was done: `none` (already running it), `planned` (dry run), `live`, `soft-reboot`. */
  action: 'none' | 'planned' | 'live' | 'soft-reboot';
  decision: LiveDecision;
  changes: { total: number; paths: string[] };
  views: { points: string[]; dropped: Array<{ path: string; why: string }> };
  units: RestartPlan;
  /** What the daemon reported for the switch (null when none was made). */
  switched: SwitchResult | null;
  /** The pending entry of the revision that was withdrawn (its trial is this run), or null. */
  withdrawnPending: DeployState['pending'];
  /** systemctl commands run, and the ones that failed (one line each). */
  systemctl: { ran: string[][]; failed: string[] };
  stepsMs: Record<string, number>;
  warnings: string[];
}

/** Timed named steps; a failure is prefixed with the step. */
class Steps {
  readonly ms: Record<string, number> = {};
  constructor(private readonly log: (line: string) => void) {}
  async run<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now();
    try {
      const out = await fn();
      this.ms[name] = Math.round(performance.now() - t0);
      this.log(`${name}: ${this.ms[name]} ms`);
      return out;
    } catch (e) {
      if (e instanceof LiveRefusedError) throw e;
      const msg = (e as Error).message ?? String(e);
      if (e instanceof GitrootError) throw new GitrootError(e.code, `apply-live step '${name}': ${msg}`, { data: { ...e.data, step: name }, cause: e });
      throw new MountError(`apply-live step '${name}': ${msg}`, { data: { step: name }, cause: e });
    }
  }
}

/** The boot's record, as far as apply-live needs it. */
interface Booted {
  revision: string;
  lower: string;
}

function readBooted(runDir: string): Booted {
  let rec: { revision?: unknown; lower?: unknown };
  try {
    rec = JSON.parse(readFileSync(join(runDir, BOOT_RECORD_FILE), 'utf8'));
  } catch {
    throw new UsageError(
      `this system was not booted by gitroot (no ${join(runDir, BOOT_RECORD_FILE)}): apply-live works on the booted root; a plain mount switches with 'gitroot switch'`,
    );
  }
  if (typeof rec.revision !== 'string' || typeof rec.lower !== 'string')
    throw new StateError(`${join(runDir, BOOT_RECORD_FILE)} names no revision or lower layer`);
  return { revision: rec.revision, lower: rec.lower };
}

/** Tree paths of what is mounted under `root` (not `root` itself, nor the views of earlier live updates). */
function mountPointsUnder(root: string): string[] {
  const out: string[] = [];
  for (const m of readMounts()) {
    if (m.source === 'gitroot-live' && m.fstype === 'overlay') continue;
    const rel = relative(root, m.mountpoint);
    if (rel === '' || rel.startsWith('..') || rel.startsWith('/')) continue;
    if (!out.includes(rel)) out.push(rel);
  }
  return out.sort();
}

/** The systemctl command line to run (GITROOT_SYSTEMCTL may hold a program and its first arguments). */
function systemctlCommand(o: ApplyLiveOptions): string[] {
  const cmd = o.systemctl ?? process.env.GITROOT_SYSTEMCTL ?? 'systemctl';
  return cmd.split(/\s+/).filter(Boolean);
}

async function systemctl(cmd: string[], args: string[], ran: string[][], failed: string[]): Promise<boolean> {
  ran.push(args);
  try {
    await execFileAsync(cmd[0], [...cmd.slice(1), ...args]);
    return true;
  } catch (e) {
    const msg = String((e as { stderr?: string }).stderr || (e as Error).message)
      .trim()
      .split('\n')[0];
    failed.push(`systemctl ${args.join(' ')}: ${msg}`);
    return false;
  }
}

/** Applies a revision to the booted system (see the module comment). */
export async function applyLive(o: ApplyLiveOptions): Promise<ApplyLiveResult> {
  const log = o.log ?? (() => undefined);
  const steps = new Steps(log);
  const warnings: string[] = [];
  const bootloader = typeof o.bootloader === 'string' ? createBootloader(o.bootloader, { homeDir: o.dir, bootDir: o.bootDir }) : o.bootloader;

  // 1. check: what booted, the daemon under /, what it serves now.
  const ctx = await steps.run('check', async () => {
    const booted = readBooted(o.runDir);
    const lower = realpathSync(booted.lower);
    const m = mountAt(lower);
    if (!m || m.fstype !== GITFS_FSTYPE) throw new MountError(`${lower} (the lower layer of the root) is not a gitroot mount`);
    const serving = ((await askDaemon(lower, { v: CONTROL_VERSION, op: 'status' })) as { commit: string }).commit;
    const record = readLiveRecord(o.runDir);
    const last = record?.rounds[record.rounds.length - 1];
    if (last?.mode === 'soft-reboot' && last.nextRoot !== null && mountAt(last.nextRoot) !== undefined) {
      throw new LiveRefusedError(
        `apply-live: a soft-reboot into ${last.revision} is prepared at ${last.nextRoot}: run 'systemctl soft-reboot', or unmount ${last.nextRoot} first`,
        'soft-reboot-pending',
      );
    }
    if (record !== null && record.state === 'live' && record.revision !== serving) {
      warnings.push(`${join(o.runDir, 'live.json')} says ${record.revision} runs, but the daemon serves ${serving}: going by the daemon`);
    }
    return { booted, lower, serving, record, root: realpathSync(o.root) };
  });

  // 2. plan: everything decided before anything changes.
  const store = ObjectStore.open(repoPath(o.dir));
  const plan = await steps
    .run('plan', () => {
      const state = readState(o.dir);
      const asked = o.revision ?? state.pending?.revision;
      if (asked === undefined) throw new UsageError('nothing is pending: give the revision to apply with --revision SHA');
      const to = resolveRevision(repoPath(o.dir), asked, store);
      const from = ctx.serving;
      const refusal = liveStateRefusal(state, to);
      if (refusal !== null) throw new LiveRefusedError(`apply-live: ${refusal}; nothing is changed`, 'failed', { revision: to });
      if (o.allowedSigners) requireTrustedRevision(store, o.allowedSigners.signers, to, readRef(repoPath(o.dir), tagRefName(to)));
      const fromView = CommitTreeView.open(store, from);
      const toView = CommitTreeView.open(store, to);
      const changes = from === to ? [] : diffViews(fromView, toView);
      const mountPoints = mountPointsUnder(ctx.root);
      const decision = decideLive({
        changes,
        optionsBefore: state.staged[from]?.options ?? null,
        optionsAfter: state.staged[to]?.options ?? null,
        mountPoints,
      });
      if (decision.action === 'reboot')
        throw new LiveRefusedError(`apply-live: ${to} ${decision.reason}; stage it and reboot (nothing is changed)`, 'reboot', { blockers: decision.blockers });
      if (decision.action === 'soft-reboot' && !o.softReboot) {
        throw new LiveRefusedError(`apply-live: ${to} ${decision.reason}: apply it with --soft-reboot, or reboot (nothing is changed)`, 'soft-reboot', {
          blockers: decision.blockers,
        });
      }
      const mode: 'live' | 'soft-reboot' = o.softReboot ? 'soft-reboot' : 'live';
      const uppers = upperLayers(o.runDir, ctx.record?.rounds ?? []);
      let views: { points: string[]; dropped: Array<{ path: string; why: string }> } = { points: [], dropped: [] };
      if (mode === 'live') {
        const v = planViews({ changes, mountPoints, hiddenByUpper: (p) => hiddenIn(uppers, p) });
        if (!v.ok) throw new LiveRefusedError(`apply-live: ${to}: ${v.reason}: apply it with --soft-reboot, or reboot (nothing is changed)`, 'views');
        views = { points: v.points, dropped: v.dropped };
      }
      const units = planRestarts(changes, readUnitExecs(toView, store));
      const dirAttrs = (path: string) => {
        const d = toView.describePath(path);
        if (!d || d.kind !== 'dir') return { mode: 0o755, uid: 0, gid: 0 };
        const e = toView.entryOf(d, 0);
        return { mode: e.mode & ~S_IFMT, uid: e.uid, gid: e.gid };
      };
      return { state, from, to, changes, decision, mode, uppers, views, units, dirAttrs };
    })
    .finally(() => store.close());
  const result: ApplyLiveResult = {
    from: plan.from,
    to: plan.to,
    action: 'planned',
    decision: plan.decision,
    changes: {
      total: plan.changes.filter((c: LiveChange) => !c.nested).length,
      paths: plan.changes.filter((c: LiveChange) => !c.nested).map((c: LiveChange) => `/${c.path}`),
    },
    views: plan.views,
    units: plan.units,
    switched: null,
    withdrawnPending: null,
    systemctl: { ran: [], failed: [] },
    stepsMs: steps.ms,
    warnings,
  };
  if (plan.from === plan.to && !o.softReboot) {
    result.action = 'none';
    if (o.dryRun) return result;
    // Nothing to switch; the state still says what runs (the revision the boot recorded, after going back).
  }
  if (o.dryRun) return result;

  // 3. state: `booted` is what runs; a pending trial of it ends.
  const liveState = planLiveState(plan.state, plan.to);
  result.withdrawnPending = liveState.withdrawn;
  const before = await steps.run('state', () => changeState(o, bootloader, (s) => planLiveState(s, plan.to).state));
  const putStateBack = async () => {
    try {
      await changeState(o, bootloader, (s) => (s.booted === plan.to ? { ...s, booted: before.booted, pending: before.pending ?? s.pending } : s));
    } catch (e) {
      warnings.push(`cannot put ${join(o.dir, 'state.json')} back: ${(e as Error).message}`);
    }
  };
  if (result.action === 'none') return result;

  const round = (ctx.record?.rounds.length ?? 0) + 1;
  const layerRel = join('rw', `${plan.mode === 'live' ? 'live' : 'soft'}-${round}`);
  const layer = join(o.runDir, layerRel);
  const nextRoot = o.nextRoot ?? '/run/nextroot';

  // 4. prepare: the new writable layer (nothing visible changes yet).
  let views: ViewMount[] = [];
  try {
    await steps.run('prepare', async () => {
      if (plan.mode === 'live') {
        views = prepareViews({ root: ctx.root, points: plan.views.points, layer, uppers: plan.uppers, lower: ctx.lower, attrs: plan.dirAttrs });
        await stageViews(layer, views);
      } else {
        mkdirSync(nextRoot, { recursive: true });
        if (mountAt(realpathSync(nextRoot)) !== undefined)
          throw new MountError(`${nextRoot} is already a mount point: a soft-reboot is prepared already (unmount it to prepare another)`);
        for (const d of ['upper', 'work']) mkdirSync(join(layer, d), { recursive: true, mode: 0o755 });
      }
    });
  } catch (e) {
    await putStateBack();
    throw e;
  }

  // 5. switch the daemon under /.
  const record: LiveRecord = {
    version: 1,
    booted: ctx.booted.revision,
    revision: plan.to,
    state: 'switching',
    since: new Date().toISOString(),
    withdrawnPending: liveState.withdrawn ?? ctx.record?.withdrawnPending ?? null,
    rounds: ctx.record?.rounds ?? [],
  };
  writeLiveRecord(o.runDir, record);
  const restoreRecord = () => {
    if (ctx.record !== null) writeLiveRecord(o.runDir, ctx.record);
    else writeLiveRecord(o.runDir, { ...record, revision: plan.from, state: 'live' });
  };
  const signersText = o.allowedSigners ? { text: readFileSync(o.allowedSigners.path, 'utf8'), source: o.allowedSigners.path } : undefined;
  try {
    result.switched = await steps.run(
      'switch',
      async () =>
        (await askDaemon(ctx.lower, {
          v: CONTROL_VERSION,
          op: 'switch',
          rev: plan.to,
          ...(signersText ? { allowedSigners: signersText } : {}),
        })) as SwitchResult,
    );
  } catch (e) {
    await unstageViews(layer);
    restoreRecord();
    await putStateBack();
    throw e;
  }

  // 6. views: fresh overlay views of what changed (live), or the new root (soft-reboot).
  try {
    await steps.run('views', async () => {
      if (plan.mode === 'live') {
        await placeViews(layer, views);
        return;
      }
      await execFileAsync('mount', [
        '-t',
        'overlay',
        '-o',
        `lowerdir=${ctx.lower},upperdir=${join(layer, 'upper')},workdir=${join(layer, 'work')}`,
        'gitroot',
        nextRoot,
      ]).catch((e) => {
        throw new MountError(
          `mount the new root at ${nextRoot}: ${
            String((e as { stderr?: string }).stderr || e)
              .trim()
              .split('\n')[0]
          }`,
        );
      });
      try {
        ensureMachineId(o.dir, nextRoot);
      } catch (e) {
        warnings.push(`cannot keep the machine id in the new root (${(e as Error).message}): systemd makes a new one`);
      }
    });
  } catch (e) {
    try {
      await askDaemon(ctx.lower, { v: CONTROL_VERSION, op: 'switch', rev: plan.from });
    } catch (back) {
      warnings.push(`cannot switch back to ${plan.from}: ${(back as Error).message}`);
    }
    restoreRecord();
    await putStateBack();
    throw e;
  }

  // 7. record what runs.
  const thisRound: LiveRound = {
    revision: plan.to,
    from: plan.from,
    at: new Date().toISOString(),
    mode: plan.mode,
    layer: plan.mode === 'live' && views.length === 0 ? null : layerRel,
    points: plan.views.points,
    nextRoot: plan.mode === 'soft-reboot' ? nextRoot : null,
  };
  await steps.run('record', () => writeLiveRecord(o.runDir, { ...record, state: 'live', rounds: [...record.rounds, thisRound] }));
  result.action = plan.mode;

  // 8. units: reload and restart what changed, or restart userspace into the new root.
  if (!o.noRestart) {
    const cmd = systemctlCommand(o);
    await steps.run('units', async () => {
      const { ran, failed } = result.systemctl;
      if (plan.mode === 'soft-reboot') {
        await systemctl(cmd, ['soft-reboot'], ran, failed);
        return;
      }
      if (plan.units.daemonReload || plan.units.restart.length > 0) await systemctl(cmd, ['daemon-reload'], ran, failed);
      if (plan.units.restart.length > 0) await systemctl(cmd, ['try-restart', '--', ...plan.units.restart], ran, failed);
    });
    for (const f of result.systemctl.failed) warnings.push(f);
  }
  return result;
}

/**
 * The writable layers of the running root, newest first: those of the live updates since the
 * root was made, then the root's own (the boot's RUN/rw/upper, or the last soft-reboot's).
 */
export function upperLayers(runDir: string, rounds: LiveRound[]): string[] {
  const out: string[] = [];
  for (const r of [...rounds].reverse()) {
    if (r.layer === null) continue;
    out.push(join(runDir, r.layer, 'upper'));
    if (r.mode === 'soft-reboot') return out;
  }
  out.push(join(runDir, 'rw', 'upper'));
  return out;
}

/** Changes D/state.json with `next(before)` under the lock, with its boot entries; returns the state before. */
async function changeState(o: ApplyLiveOptions, bootloader: Bootloader, next: (s: DeployState) => DeployState): Promise<DeployState> {
  return withLock(o.dir, { waitMs: o.waitMs ?? 60_000, command: 'gitroot apply-live' }, (lock) => {
    const before = readState(o.dir);
    const after = next(before);
    if (!sameState(before, after)) applyStateChange({ dir: o.dir, lock, bootloader, before, next: after });
    return before;
  });
}
