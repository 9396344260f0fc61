/**
 * A machine for tests that run gitroot's commands on a real home: everything under one
 * directory, laid out as on a kiosk's medium (the home as `gitroot/`, the boot partition
 * `gitroot.boot` points at as `boot/`), with the config file and the kernel command line the
 * commands are given with `--config` and `--cmdline`.
 */
import fs from 'node:fs';
import path from 'node:path';

/** The paths of a machine under `base`. */
export interface MachinePaths {
  /** The directory everything lives under. */
  base: string;
  /** The gitroot home, `--dir` (`base/gitroot`). */
  dir: string;
  /** The home's repository (`dir/repo.git`). */
  repo: string;
  /** The boot directory, `gitroot.boot` (`base/boot`): boot entries and kernel copies. */
  boot: string;
  /** `--run-dir`, where booted.json says what booted (`base/run`). */
  run: string;
  /** `--health-dir` of mark-good (`base/health.d`). */
  health: string;
  /** The config file, `--config` (`base/gitroot.conf`). */
  conf: string;
  /** The kernel command line file, `--cmdline` (`base/cmdline`). */
  cmdline: string;
}

/** A machine made by `machine`: its paths and what its config file holds. */
export interface Machine extends MachinePaths {
  /** The boot loader backend its config names. */
  loader: 'bls' | 'extlinux';
  /** The lines `machine` wrote to `conf`. */
  config: string[];
}

/** What goes into a new machine's config file and command line. */
export interface MachineOptions {
  /** gitroot.bootloader (default bls). */
  loader?: 'bls' | 'extlinux';
  /** gitroot.remote, the server the machine fetches from (default none). */
  remote?: string;
  /** gitroot.timeout in seconds (default 5); gitroot.retries is always 0. */
  timeout?: number;
  /** More config lines, written last (so they win). */
  settings?: string[];
  /** The kernel command line (default `BOOT_IMAGE=/vmlinuz quiet`; BOOT_IMAGE is a per-boot key, never copied into entries). */
  cmdline?: string;
}

/** The paths of the machine under `base`, without touching the disk. */
export function machinePaths(base: string): MachinePaths {
  const dir = path.join(base, 'gitroot');
  return {
    base,
    dir,
    repo: path.join(dir, 'repo.git'),
    boot: path.join(base, 'boot'),
    run: path.join(base, 'run'),
    health: path.join(base, 'health.d'),
    conf: path.join(base, 'gitroot.conf'),
    cmdline: path.join(base, 'cmdline'),
  };
}

/** A new machine under `base`: its directories (the home empty), config file and command line. */
export function machine(base: string, opts: MachineOptions = {}): Machine {
  const paths = machinePaths(base);
  for (const d of [paths.dir, paths.boot, paths.run, paths.health]) fs.mkdirSync(d, { recursive: true });
  const loader = opts.loader ?? 'bls';
  const config = [
    `gitroot.bootloader=${loader}`,
    `gitroot.boot=${paths.boot}`,
    `gitroot.timeout=${opts.timeout ?? 5}`,
    'gitroot.retries=0',
    ...(opts.remote === undefined ? [] : [`gitroot.remote=${opts.remote}`]),
    ...(opts.settings ?? []),
  ];
  const m = { ...paths, loader, config };
  configure(m, []);
  fs.writeFileSync(m.cmdline, `${opts.cmdline ?? 'BOOT_IMAGE=/vmlinuz quiet'}\n`);
  return m;
}

/** Rewrites the machine's config file: the lines it was made with, then `extra`. */
export function configure(m: Machine, extra: string[]): void {
  fs.writeFileSync(m.conf, [...m.config, ...extra].join('\n') + '\n');
}

/**
 * The arguments of `gitroot CMD` on this machine: --dir, --config, --cmdline, and for
 * mark-good the health and run dirs, for mark-bad the run dir; then `more`.
 */
export function commandArgs(m: MachinePaths, cmd: string, ...more: string[]): string[] {
  const extra = cmd === 'mark-good' ? ['--health-dir', m.health, '--run-dir', m.run] : cmd === 'mark-bad' ? ['--run-dir', m.run] : [];
  return [cmd, '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, ...extra, ...more];
}
