/**
 * `gitroot apply-live`: applies a revision to the running system gitroot booted, live when
 * only content changes, by a soft-reboot when userspace must restart (docs/live.md). The work
 * is lib/live/live-apply.ts; this file reads options and settings and renders the result.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { type ApplyLiveResult, applyLive } from '../../live/live-apply.js';
import { requireHome, runDirFromEnv } from '../../home/home-layout.js';
import { loadSettings } from '../../params/settings-load.js';
import { readAllowedSigners } from '../../trust/allowed-signers.js';
import { note, printJson, printLine } from '../output.js';
import { type SharedOpts, addCmdlineOption, addConfigOption, addDirOption, addJsonOption, addWaitOption, secondsToMs } from '../cli-options.js';

interface ApplyLiveOpts extends SharedOpts {
  revision?: string;
  softReboot?: boolean;
  dryRun?: boolean;
  restart: boolean;
  runDir: string;
  root: string;
  nextRoot: string;
}

/** Lines for people: what apply-live decided and did. */
export function describeApplyLive(r: ApplyLiveResult): string[] {
  const lines: string[] = [];
  const what =
    r.action === 'none'
      ? `${r.to} runs already`
      : r.action === 'planned'
        ? `would apply ${r.to} (from ${r.from}): ${r.decision.action}`
        : r.action === 'live'
          ? `applied ${r.to} live (from ${r.from})`
          : `prepared ${r.to} and restarted userspace into it (from ${r.from})`;
  lines.push(what);
  lines.push(r.decision.reason);
  if (r.views.points.length > 0) lines.push(`fresh views: ${r.views.points.map((p) => `/${p}`).join(' ')}`);
  for (const d of r.views.dropped) lines.push(`not viewed: /${d.path} (${d.why})`);
  if (r.switched) lines.push(`switch: ${r.switched.ms.total} ms, ${r.switched.counts.created} new inodes, ${r.switched.counts.kept} kept`);
  if (r.units.restart.length > 0) lines.push(`${r.action === 'planned' ? 'would restart' : 'restarted'}: ${r.units.restart.join(' ')}`);
  if (r.units.reloaded.length > 0) lines.push(`reloaded: ${r.units.reloaded.join(' ')}`);
  if (r.units.removed.length > 0) lines.push(`left running (their unit files are gone): ${r.units.removed.join(' ')}`);
  if (r.withdrawnPending)
    lines.push(`the pending trial of ${r.withdrawnPending.revision} is this live run: mark it good ('gitroot mark-good') to boot it next`);
  return lines;
}

export function registerApplyLive(program: Command): void {
  const cmd = program
    .command('apply-live')
    .description(
      'apply a revision to the running system without a reboot: live when only content changes, with --soft-reboot when userspace must restart; refused when the kernel must change',
    )
    .option('--revision <sha>', 'the revision to apply (default: the pending one; the booted one goes back)')
    .option('--soft-reboot', 'restart userspace into the revision (systemctl soft-reboot, systemd >= 254) instead of switching live')
    .option('--dry-run', 'show the decision, the fresh views and the units; change nothing')
    .option('--no-restart', 'switch, but run neither daemon-reload nor restarts (nor the soft-reboot itself)')
    .option('--run-dir <dir>', 'where gitroot boot keeps its mounts and records', runDirFromEnv())
    .option('--root <dir>', 'the root the booted system runs in', '/')
    .option('--next-root <dir>', 'where --soft-reboot prepares the new root', '/run/nextroot');
  addDirOption(cmd);
  addCmdlineOption(cmd);
  addConfigOption(cmd);
  addWaitOption(cmd, 'changing the state', 60, "longer than a fetch's, like the transitions'");
  addJsonOption(cmd, 'the decision and what was done').action(async (opts: ApplyLiveOpts) => {
    requireHome(opts.dir);
    // Never touch the network here: the fleet config comes from its cache.
    const loaded = await loadSettings({ dir: opts.dir, cmdlineFile: opts.cmdline, configPath: opts.config, offline: true });
    for (const w of loaded.warnings) note(`warning: ${w}`);
    const signersPath = loaded.settings['gitroot.allowed-signers'];
    const r = await applyLive({
      dir: resolve(opts.dir),
      runDir: resolve(opts.runDir),
      root: resolve(opts.root),
      nextRoot: resolve(opts.nextRoot),
      revision: opts.revision,
      softReboot: opts.softReboot,
      dryRun: opts.dryRun,
      noRestart: !opts.restart,
      bootloader: loaded.settings['gitroot.bootloader'],
      bootDir: loaded.settings['gitroot.boot'],
      allowedSigners: signersPath === null ? null : { path: signersPath, signers: readAllowedSigners(signersPath) },
      waitMs: secondsToMs(opts.wait),
      log: (line) => note(line),
    });
    for (const w of r.warnings) note(`warning: ${w}`);
    if (opts.json) printJson(r);
    else for (const l of describeApplyLive(r)) printLine(l);
  });
}
