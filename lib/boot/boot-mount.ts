/**
 * The mounting half of `gitroot boot`: serve the chosen revision of the gitroot home with
 * git-fs, put a writable tmpfs overlay on top of it at the target (the future `/`), make
 * the home reachable from the new root, and record what booted. Runs in the initramfs,
 * before the switch to the real root; also runs on a normal host for tests.
 *
 * Layout (RUN = --run-dir, default /run/gitroot; the initramfs moves its /run into the new
 * root, so everything under RUN stays reachable there at the same path):
 *
 *   RUN/lower      git-fs (FUSE, read-only) serving the revision; its daemon runs as
 *                  `@gitroot` (systemd leaves it alive at switch-root and shutdown)
 *   RUN/rw         tmpfs holding upper/ and work/ of the overlay (lost at reboot)
 *   RUN/home       bind mount of the gitroot home D (repo.git, state.json): the fetcher
 *                  and `gitroot status` use it in the booted system
 *   RUN/booted.json  what booted, why, when, and the daemon's pid
 *   TARGET/etc/machine-id  the machine's id kept in the home (machine-id.ts)
 *   TARGET/<gitroot.boot>  the boot partition, with gitroot.boot-medium= (boot-partition.ts)
 *   TARGET         overlay: lowerdir=RUN/lower, upperdir=RUN/rw/upper, workdir=RUN/rw/work
 *
 * Every step is named; a failing step undoes the steps before it (unmounts, stops the
 * daemon) and raises an error prefixed with the step's name.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { GitrootError, MountError, RevisionNotFoundError, UsageError } from '../errors/errors.js';
import { startDaemon } from '../gitfs/mount-daemon.js';
import { mountAt } from '../gitfs/mount-table.js';
import { decideBoot } from './boot-decide.js';
import { type AllowedSigners, readAllowedSigners } from '../trust/allowed-signers.js';
import { writeJsonAtomic } from '../fsutil/atomic-write.js';
import { BOOT_RECORD_FILE, DEFAULT_RUN_DIR, REPO_DIR, SPILL_DIR, repoPath } from '../home/home-layout.js';

export { DEFAULT_RUN_DIR };
import { mountBootPartition } from './boot-partition.js';
import { ensureMachineId } from './machine-id.js';

const execFileAsync = promisify(execFile);

/** argv[0] of the serving daemon: systemd spares uid-0 processes whose argv[0] starts with '@'. */
export const DAEMON_ARGV0 = '@gitroot';

/** The decision `gitroot boot` mounts (from decideBoot in boot-decide.ts). */
export interface BootSelection {
  revision: string;
  /** pending | good | cmdline | fallback (see SelectionKind in boot-select.ts). */
  kind: string;
  /** One line for people: why this revision. */
  reason: string;
  /** Revisions passed over and state changes. */
  notes: string[];
  /** Whether state.json was written (a try used, `booted` set). */
  stateWritten: boolean;
}

/**
 * The decision rule's step: decideBoot (boot-select.ts rules over state.json, git-revision=
 * and the repository's health), persisted under the home's lock before anything is mounted,
 * so a boot that dies later still used its try.
 */
async function decide(home: string, cmdline: string, persist: boolean, signers: AllowedSigners | null): Promise<BootSelection> {
  const d = await decideBoot({ dir: home, cmdline, persist, signers });
  if (d.revision === null) {
    throw new RevisionNotFoundError(
      `no bootable revision: ${d.reason}${d.notes.length ? ` (${d.notes.join('; ')})` : ''}; stage one with 'gitroot fetch' or pass git-revision=SHA`,
      { data: { notes: d.notes, health: d.health } },
    );
  }
  return { revision: d.revision, kind: d.kind, reason: d.reason, notes: d.notes, stateWritten: d.written };
}

export interface BootMountOptions {
  /** The gitroot home (holds repo.git and state.json). */
  dir: string;
  /** Kernel command line text (normally the content of /proc/cmdline). */
  cmdline: string;
  /** Where the new root goes (the initramfs's ${rootmnt} or dracut's $NEWROOT). */
  target: string;
  /** Default DEFAULT_RUN_DIR. */
  runDir?: string;
  /** The program the daemon runs (the bundle or dist/bin/gitroot.js); default process.argv[1]. */
  script?: string;
  /** Write the decision to state.json before mounting (default true; false for dry runs and tests). */
  persist?: boolean;
  /**
   * The trust root baked into the initramfs (docs/trust.md): an allowed-signers file. When
   * given, a revision without a valid signature from a listed key is passed over like an
   * unreadable one; an unreadable or malformed file fails the boot (ConfigError).
   */
  allowedSigners?: string;
  /** Content cache of the daemon in MiB (its --cache-mb); default the mount default. */
  cacheMb?: number;
  /** tmpfs size option for the writable layer (e.g. '50%'); default the kernel's (half of RAM). */
  overlaySize?: string;
  /** Progress lines (step names and times) for the console. */
  log?: (line: string) => void;
}

/** What booted: written to RUN/booted.json and returned. */
export interface BootRecord {
  revision: string;
  /** pending | good | cmdline | fallback. */
  kind: string;
  reason: string;
  notes: string[];
  /** Whether the decision was written to state.json before mounting. */
  stateWritten: boolean;
  /** ISO 8601, when the root was ready. */
  time: string;
  /** The serving daemon. */
  daemonPid: number;
  /** Milliseconds from the daemon's start to its mount answering. */
  daemonReadyMs: number;
  /** The daemon's oom_score_adj (-1000), or null when it could not be set (no CAP_SYS_RESOURCE). */
  oomScoreAdj: number | null;
  /** Paths as they are in the new root too (RUN is moved with /run). */
  lower: string;
  home: string;
  target: string;
  /** The machine's id (from the home; also in the new root's /etc/machine-id), or null when it could not be kept. */
  machineId: string | null;
  /** The boot partition mounted in the new root (`gitroot.boot-medium=`), or null. */
  bootPartition: { device: string; mountpoint: string } | null;
  /** Milliseconds per step up to the record, and in total. */
  stepsMs: Record<string, number>;
  totalMs: number;
}

type Undo = () => Promise<void> | void;

/** Runs `mount ARGS` (util-linux or busybox); throws its first stderr line. */
async function runMount(args: string[]): Promise<void> {
  try {
    await execFileAsync('mount', args);
  } catch (e) {
    const msg = String((e as { stderr?: string }).stderr || (e as Error).message)
      .trim()
      .split('\n')[0];
    throw new Error(`mount ${args.join(' ')}: ${msg}`);
  }
}

async function umount(path: string): Promise<void> {
  try {
    await execFileAsync('umount', [path]);
  } catch {
    await execFileAsync('umount', ['-l', path]).catch(() => undefined);
  }
}

function isMountpoint(path: string): boolean {
  return mountAt(path) !== undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the git-fs daemon for `revision` at `lower` and waits until it serves. It runs
 * with argv[0] '@gitroot', its cwd in the home (relative repo and spill paths keep working
 * after the switch to the new root, when absolute initramfs paths are gone), its stderr in
 * `logPath`, and oom_score_adj -1000 (set right after the spawn, before it reads anything).
 */
async function startBootDaemon(o: {
  script: string;
  home: string;
  lower: string;
  revision: string;
  logPath: string;
  cacheMb?: number;
}): Promise<{ pid: number; readyMs: number; oomScoreAdj: number | null }> {
  mkdirSync(join(o.home, SPILL_DIR), { recursive: true });
  const args = [o.lower, '--repo', REPO_DIR, '--rev', o.revision, '--spill-dir', SPILL_DIR];
  if (o.cacheMb !== undefined) args.push('--cache-mb', String(o.cacheMb));
  // Protect it from the OOM killer at once: if it dies, every access to / fails. Without
  // CAP_SYS_RESOURCE (some containers) this fails: the boot goes on, the record says so.
  let oomScoreAdj: number | null = -1000;
  const protect = (pid: number): void => {
    try {
      writeFileSync(`/proc/${pid}/oom_score_adj`, '-1000');
    } catch {
      oomScoreAdj = null;
    }
  };
  const d = await startDaemon({ script: o.script, args, mountpoint: o.lower, logPath: o.logPath, argv0: DAEMON_ARGV0, cwd: o.home, onSpawn: protect });
  return { pid: d.pid, readyMs: d.readyMs, oomScoreAdj };
}

/** The mount points under RUN (see the module comment). */
interface RunPaths {
  runDir: string;
  lower: string;
  rw: string;
  homeMnt: string;
}

function runPaths(runDir: string): RunPaths {
  return { runDir, lower: join(runDir, 'lower'), rw: join(runDir, 'rw'), homeMnt: join(runDir, 'home') };
}

/**
 * The boot's named steps: each is timed and logged; a failing one undoes what the steps
 * before it registered (last first) and raises an error prefixed with its name.
 */
class BootSteps {
  /** Milliseconds per finished step. */
  readonly ms: Record<string, number> = {};
  private readonly undo: Undo[] = [];

  constructor(private readonly log: (line: string) => void) {}

  /** Registers how to take back what a step did, for a later step's failure. */
  onUndo(u: Undo): void {
    this.undo.push(u);
  }

  /** Runs step `name`; on failure, undoes everything and throws the error prefixed with the step. */
  async run<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    const start = performance.now();
    try {
      const out = await fn();
      this.ms[name] = Math.round(performance.now() - start);
      this.log(`${name}: ${this.ms[name]} ms`);
      return out;
    } catch (e) {
      for (const u of this.undo.reverse())
        await Promise.resolve()
          .then(u)
          .catch(() => undefined);
      const msg = (e as Error).message ?? String(e);
      if (e instanceof GitrootError) {
        throw new GitrootError(e.code, `boot step '${name}': ${msg}`, { data: { ...e.data, step: name }, cause: e });
      }
      throw new MountError(`boot step '${name}': ${msg}`, { data: { step: name }, cause: e });
    }
  }
}

/** Step 'check': the inputs, before anything is touched; returns the home and target resolved. */
function checkInputs(opts: BootMountOptions, run: RunPaths): { home: string; target: string } {
  let home: string;
  let target: string;
  try {
    home = realpathSync(opts.dir);
  } catch {
    throw new UsageError(`gitroot home ${opts.dir} does not exist: is the boot medium mounted, and gitroot.dir right?`);
  }
  if (!existsSync(repoPath(home))) {
    throw new UsageError(`gitroot home ${home} has no ${REPO_DIR}: check gitroot.dir (and gitroot.medium)`);
  }
  try {
    target = realpathSync(opts.target);
  } catch {
    throw new UsageError(`target ${opts.target} does not exist: create the directory the new root goes on`);
  }
  // Goes into a mount option string: no second option may ride along (tmpfs judges the rest).
  if (opts.overlaySize !== undefined && !/^[0-9A-Za-z%]+$/.test(opts.overlaySize)) {
    throw new UsageError(`overlay size '${opts.overlaySize}' is not a size: write it like 512m, 2g or 25%`);
  }
  if (isMountpoint(target)) throw new MountError(`target ${target} is already a mount point: unmount it or pick another directory`);
  for (const p of [run.lower, run.rw, run.homeMnt]) {
    if (isMountpoint(p)) throw new MountError(`${p} is already mounted (a previous boot?): unmount it or use another --run-dir`);
  }
  return { home, target };
}

type BootDaemon = Awaited<ReturnType<typeof startBootDaemon>>;

/** Step 'serve': the revision read-only with git-fs at RUN/lower; undone by unmounting and stopping the daemon. */
async function serve(
  steps: BootSteps,
  run: RunPaths,
  o: { script: string; home: string; revision: string; cacheMb?: number },
  log: (line: string) => void,
): Promise<BootDaemon> {
  for (const d of [run.runDir, run.lower, run.rw, run.homeMnt]) mkdirSync(d, { recursive: true });
  const d = await startBootDaemon({ ...o, lower: run.lower, logPath: join(run.runDir, 'gitfs.log') });
  steps.onUndo(async () => {
    await umount(run.lower);
    for (let i = 0; i < 100 && alive(d.pid); i++) await new Promise((r) => setTimeout(r, 20));
    if (alive(d.pid)) process.kill(d.pid, 'SIGKILL');
  });
  if (d.oomScoreAdj === null) log("warning: cannot set the daemon's oom_score_adj to -1000 (no CAP_SYS_RESOURCE): the OOM killer may pick it");
  return d;
}

/** Step 'tmpfs': the writable layer, a tmpfs at RUN/rw holding the overlay's upper and work directories. */
async function mountWritable(steps: BootSteps, rw: string, overlaySize: string | undefined): Promise<void> {
  const size = overlaySize ? `,size=${overlaySize}` : '';
  await runMount(['-t', 'tmpfs', '-o', `mode=0755${size}`, 'gitroot-rw', rw]);
  steps.onUndo(() => umount(rw));
  mkdirSync(join(rw, 'upper'), { mode: 0o755 });
  mkdirSync(join(rw, 'work'), { mode: 0o755 });
}

/** Step 'overlay': the new root at `target`, writable, reading through to the revision. */
async function mountOverlay(steps: BootSteps, run: RunPaths, target: string): Promise<void> {
  await runMount(['-t', 'overlay', '-o', `lowerdir=${run.lower},upperdir=${join(run.rw, 'upper')},workdir=${join(run.rw, 'work')}`, 'gitroot', target]);
  steps.onUndo(() => umount(target));
}

/** Step 'home': the home bound at RUN/home, reachable from the new root (RUN moves with /run). */
async function bindHome(steps: BootSteps, home: string, homeMnt: string): Promise<void> {
  await runMount(['-o', 'bind', home, homeMnt]);
  steps.onUndo(() => umount(homeMnt));
}

/** What booted, with the step times so far (totalMs is filled in by the 'record' step). */
function bootRecord(selection: BootSelection, daemon: BootDaemon, run: RunPaths, target: string, stepsMs: Record<string, number>): BootRecord {
  return {
    revision: selection.revision,
    kind: selection.kind,
    reason: selection.reason,
    notes: selection.notes,
    stateWritten: selection.stateWritten,
    time: new Date().toISOString(),
    daemonPid: daemon.pid,
    daemonReadyMs: daemon.readyMs,
    oomScoreAdj: daemon.oomScoreAdj,
    lower: run.lower,
    home: run.homeMnt,
    target,
    machineId: null,
    bootPartition: null,
    stepsMs: { ...stepsMs },
    totalMs: 0,
  };
}

/**
 * Mounts the chosen revision as a writable root at `opts.target`; returns what booted.
 * On failure, everything it mounted is unmounted and the daemon stopped.
 */
export async function bootMount(opts: BootMountOptions): Promise<BootRecord> {
  const log = opts.log ?? (() => undefined);
  const t0 = performance.now();
  const steps = new BootSteps(log);
  const run = runPaths(resolve(opts.runDir ?? DEFAULT_RUN_DIR));
  const script = opts.script ?? process.argv[1];
  if (!script || !isAbsolute(resolve(script))) throw new UsageError('cannot tell which program the daemon runs: pass script');

  // 1. Check the inputs before touching anything.
  const { home, target } = await steps.run('check', () => checkInputs(opts, run));

  // 2. Decide the revision and record the decision in the home (a try used, `booted`).
  const selection = await steps.run('select', () =>
    decide(home, opts.cmdline, opts.persist ?? true, opts.allowedSigners === undefined ? null : readAllowedSigners(opts.allowedSigners, '--allowed-signers')),
  );
  for (const n of selection.notes) log(`note: ${n}`);
  log(`revision ${selection.revision} (${selection.kind}: ${selection.reason})`);

  // 3-6. Serve it, then the writable layer, the overlay (the new root) and the home.
  const daemon = await steps.run('serve', () => serve(steps, run, { script, home, revision: selection.revision, cacheMb: opts.cacheMb }, log));
  await steps.run('tmpfs', () => mountWritable(steps, run.rw, opts.overlaySize));
  await steps.run('overlay', () => mountOverlay(steps, run, target));
  await steps.run('home', () => bindHome(steps, home, run.homeMnt));

  // 7-8. The machine's identity and the boot partition: a failure is a warning, never a failed boot.
  const machineId = await steps.run('identity', () => {
    try {
      return ensureMachineId(home, target).id;
    } catch (e) {
      log(`warning: cannot keep the machine id in ${home} (${(e as Error).message}): systemd makes a new one this boot`);
      return null;
    }
  });
  const bootPartition = await steps.run('boot-partition', async () => {
    try {
      const p = await mountBootPartition(opts.cmdline, target);
      if (p !== null) steps.onUndo(() => umount(join(target, p.mountpoint)));
      return p;
    } catch (e) {
      log(`warning: ${(e as Error).message}: the revision boots, but new boot entries cannot be written until it is mounted`);
      return null;
    }
  });

  // 9. Record what booted.
  const record = { ...bootRecord(selection, daemon, run, target, steps.ms), machineId, bootPartition };
  await steps.run('record', () => {
    record.totalMs = Math.round(performance.now() - t0);
    writeJsonAtomic(join(run.runDir, BOOT_RECORD_FILE), record);
  });
  return record;
}

/** Reads RUN/booted.json, or null when this boot did not go through gitroot. */
export function readBootRecord(runDir = DEFAULT_RUN_DIR): BootRecord | null {
  try {
    return JSON.parse(readFileSync(join(runDir, BOOT_RECORD_FILE), 'utf8')) as BootRecord;
  } catch {
    return null;
  }
}
