/**
 * `gitroot switch`: a running git-fs mount starts serving another revision (docs/live.md).
 * The work happens in the daemon serving the mount (lib/gitfs/gitfs-server.ts switchTo),
 * reached through its control socket (lib/gitfs/switch-control.ts); this file checks the
 * arguments and renders the answer.
 */
import type { Command } from 'commander';
import { readFileSync, realpathSync } from 'node:fs';
import type { SwitchResult } from '../../gitfs/gitfs-server.js';
import { GITFS_FSTYPE, mountAt } from '../../gitfs/mount-table.js';
import { askDaemon, CONTROL_VERSION } from '../../gitfs/switch-control.js';
import { ConfigError, UsageError } from '../../errors/errors.js';
import { parseAllowedSigners } from '../../trust/allowed-signers.js';
import { printJson, printLine } from '../output.js';
import { addJsonOption } from '../cli-options.js';

interface SwitchOpts {
  rev?: string;
  status?: boolean;
  allowedSigners?: string;
  json?: boolean;
}

/** The resolved path of a gitroot mount and what is mounted there, or a one-line UsageError. */
export function gitfsMountpoint(mountpoint: string): { real: string; source: string } {
  let real: string;
  try {
    real = realpathSync(mountpoint);
  } catch {
    throw new UsageError(`${mountpoint} does not exist: give the directory a gitroot mount is on (see 'grep gitfs /proc/mounts')`);
  }
  const m = mountAt(real);
  if (!m || m.fstype !== GITFS_FSTYPE) {
    throw new UsageError(`${real} is not a gitroot mount${m ? ` (it is ${m.fstype})` : ''}: see 'grep gitfs /proc/mounts'`);
  }
  return { real, source: m.source };
}

/** Reads an allowed-signers file for a request: its text, checked here so a typo fails before the daemon is asked. */
export function signersForRequest(file: string): { text: string; source: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`--allowed-signers ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  parseAllowedSigners(text, file);
  return { text, source: file };
}

/** Asks the daemon serving `mountpoint` to serve `rev`. */
export async function requestSwitch(mountpoint: string, rev: string, allowedSigners?: string): Promise<SwitchResult> {
  return (await askDaemon(mountpoint, {
    v: CONTROL_VERSION,
    op: 'switch',
    rev,
    ...(allowedSigners === undefined ? {} : { allowedSigners: signersForRequest(allowedSigners) }),
  })) as SwitchResult;
}

/** One line for people: what the switch did. */
export function describeSwitch(mountpoint: string, r: SwitchResult): string {
  if (!r.changed) return `${mountpoint} already serves ${r.to}`;
  const c = r.counts;
  return (
    `switched ${mountpoint} from ${r.from} to ${r.to} in ${r.ms.total} ms ` +
    `(${c.dirsChanged} directories changed, ${c.created} new inodes, ${c.kept} kept, ${r.notified.sent} kernel cache entries invalidated)`
  );
}

export function registerSwitch(program: Command): void {
  const cmd = program
    .command('switch')
    .description(
      'make a running gitroot mount serve another revision: new lookups see it, open files keep reading what they opened, unchanged files keep their cache',
    )
    .argument('<mountpoint>', 'where the gitroot mount is (on a booted machine: /run/gitroot/lower)')
    .option('--rev <rev>', "commit SHA, branch or tag of the mount's repository to serve")
    .option('--status', 'only show what the mount serves')
    .option('--allowed-signers <file>', 'refuse the revision unless it is signed by a key this file lists (the rule gitroot boot uses)');
  addJsonOption(cmd, 'the result (from, to, counts, notified, ms)').action(async (mountpoint: string, opts: SwitchOpts) => {
    const { real } = gitfsMountpoint(mountpoint);
    if (opts.status) {
      const s = (await askDaemon(real, { v: CONTROL_VERSION, op: 'status' })) as { commit: string; pid: number; since: string; switches: number };
      if (opts.json) printJson(s);
      else printLine(`${real} serves ${s.commit} (daemon ${s.pid}, since ${s.since}, ${s.switches} switches)`);
      return;
    }
    if (opts.rev === undefined) throw new UsageError(`gitroot switch needs --rev REV (or --status)`);
    const r = await requestSwitch(real, opts.rev, opts.allowedSigners);
    if (opts.json) printJson({ mountpoint: real, ...r });
    else printLine(describeSwitch(real, r));
  });
}
