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
import { REPO_DIR, SPILL_DIR, repoPath } from '../home/home-layout.js';

const execFileAsync = promisify(execFile);

/** Where gitroot keeps its boot-time mounts and record; moved into the new root with /run. */
export const DEFAULT_RUN_DIR = '/run/gitroot';
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
    const msg = String((e as { stderr?: string }).stderr || (e as Error).message).trim().split('\n')[0];
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
async function startBootDaemon(o: { script: string; home: string; lower: string; revision: string; logPath: string; cacheMb?: number }): Promise<{ pid: number; readyMs: number; oomScoreAdj: number | null }> {
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

/**
 * Mounts the chosen revision as a writable root at `opts.target`; returns what booted.
 * On failure, everything it mounted is unmounted and the daemon stopped.
 */
export async function bootMount(opts: BootMountOptions): Promise<BootRecord> {
  const log = opts.log ?? (() => undefined);
  const t0 = performance.now();
  const stepsMs: Record<string, number> = {};
  const undo: Undo[] = [];

  const step = async <T>(name: string, fn: () => Promise<T> | T): Promise<T> => {
    const start = performance.now();
    try {
      const out = await fn();
      stepsMs[name] = Math.round(performance.now() - start);
      log(`${name}: ${stepsMs[name]} ms`);
      return out;
    } catch (e) {
      for (const u of undo.reverse()) await Promise.resolve().then(u).catch(() => undefined);
      const msg = (e as Error).message ?? String(e);
      if (e instanceof GitrootError) {
        throw new GitrootError(e.code, `boot step '${name}': ${msg}`, { data: { ...e.data, step: name }, cause: e });
      }
      throw new MountError(`boot step '${name}': ${msg}`, { data: { step: name }, cause: e });
    }
  };

  const runDir = resolve(opts.runDir ?? DEFAULT_RUN_DIR);
  const lower = join(runDir, 'lower');
  const rw = join(runDir, 'rw');
  const homeMnt = join(runDir, 'home');
  const script = opts.script ?? process.argv[1];
  if (!script || !isAbsolute(resolve(script))) throw new UsageError('cannot tell which program the daemon runs: pass script');

  // 1. Check the inputs before touching anything.
  const { home, target } = await step('check', () => {
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
    for (const p of [lower, rw, homeMnt]) {
      if (isMountpoint(p)) throw new MountError(`${p} is already mounted (a previous boot?): unmount it or use another --run-dir`);
    }
    return { home, target };
  });

  // 2. Decide the revision and record the decision in the home (a try used, `booted`).
  const selection = await step('select', () => decide(home, opts.cmdline, opts.persist ?? true,
    opts.allowedSigners === undefined ? null : readAllowedSigners(opts.allowedSigners, '--allowed-signers')));
  for (const n of selection.notes) log(`note: ${n}`);
  log(`revision ${selection.revision} (${selection.kind}: ${selection.reason})`);

  // 3. Serve it read-only with git-fs.
  const daemon = await step('serve', async () => {
    for (const d of [runDir, lower, rw, homeMnt]) mkdirSync(d, { recursive: true });
    const d = await startBootDaemon({ script, home, lower, revision: selection.revision, logPath: join(runDir, 'gitfs.log'), cacheMb: opts.cacheMb });
    undo.push(async () => {
      await umount(lower);
      for (let i = 0; i < 100 && alive(d.pid); i++) await new Promise((r) => setTimeout(r, 20));
      if (alive(d.pid)) process.kill(d.pid, 'SIGKILL');
    });
    if (d.oomScoreAdj === null) log('warning: cannot set the daemon\'s oom_score_adj to -1000 (no CAP_SYS_RESOURCE): the OOM killer may pick it');
    return d;
  });

  // 4. The writable layer: a tmpfs holding the overlay's upper and work directories.
  await step('tmpfs', async () => {
    const size = opts.overlaySize ? `,size=${opts.overlaySize}` : '';
    await runMount(['-t', 'tmpfs', '-o', `mode=0755${size}`, 'gitroot-rw', rw]);
    undo.push(() => umount(rw));
    mkdirSync(join(rw, 'upper'), { mode: 0o755 });
    mkdirSync(join(rw, 'work'), { mode: 0o755 });
  });

  // 5. The overlay: the new root, writable, reading through to the revision.
  await step('overlay', async () => {
    await runMount(['-t', 'overlay', '-o', `lowerdir=${lower},upperdir=${join(rw, 'upper')},workdir=${join(rw, 'work')}`, 'gitroot', target]);
    undo.push(() => umount(target));
  });

  // 6. The home, reachable from the new root at RUN/home (RUN moves with /run).
  await step('home', async () => {
    await runMount(['-o', 'bind', home, homeMnt]);
    undo.push(() => umount(homeMnt));
  });

  // 7. Record what booted.
  const record: BootRecord = {
    revision: selection.revision,
    kind: selection.kind,
    reason: selection.reason,
    notes: selection.notes,
    stateWritten: selection.stateWritten,
    time: new Date().toISOString(),
    daemonPid: daemon.pid,
    daemonReadyMs: daemon.readyMs,
    oomScoreAdj: daemon.oomScoreAdj,
    lower,
    home: homeMnt,
    target,
    stepsMs: { ...stepsMs },
    totalMs: 0,
  };
  await step('record', () => {
    record.totalMs = Math.round(performance.now() - t0);
    writeJsonAtomic(join(runDir, 'booted.json'), record);
  });
  return record;
}

/** Reads RUN/booted.json, or null when this boot did not go through gitroot. */
export function readBootRecord(runDir = DEFAULT_RUN_DIR): BootRecord | null {
  try {
    return JSON.parse(readFileSync(join(runDir, 'booted.json'), 'utf8')) as BootRecord;
  } catch {
    return null;
  }
}
