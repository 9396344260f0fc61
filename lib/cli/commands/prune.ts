/** `gitroot prune`: remove revisions, kernels and git objects the machine no longer needs, and repack. */
import type { Command } from 'commander';
import { loadSettings } from '../../params/settings-load.js';
import { runPrune, type PruneResult } from '../../prune/prune-run.js';
import { formatBytes } from '../../fsutil/free-space.js';
import { UsageError } from '../../errors/errors.js';
import { isSha } from '../../store/object-id.js';
import { note, printJson, printLine } from '../output.js';
import { type SharedOpts, addCmdlineOption, addConfigOption, addDirOption, addJsonOption, addWaitOption, secondsToMs } from '../cli-options.js';

interface PruneOpts extends SharedOpts {
  keep?: string;
  dryRun?: boolean;
}

function describe(r: PruneResult): string[] {
  const short = (s: string) => s.slice(0, 12);
  const lines = r.kept.map((k) => `keep ${short(k.revision)} (${k.reasons.join(', ')})`);
  const verb = r.dryRun ? 'would remove' : 'removed';
  for (const s of r.droppedPreviousGood) lines.push(`${verb} earlier good revision ${short(s)}`);
  for (const d of r.kernelDirsRemoved) lines.push(`${verb} staged kernel ${isSha(d) ? short(d) : d}`);
  if (r.refsDeleted.length > 0) lines.push(`${verb} ${r.refsDeleted.length} ref(s)`);
  if (r.dryRun) lines.push(`dry run: nothing changed (${formatBytes(r.bytesBefore)} in use)`);
  else
    lines.push(
      `disk use ${formatBytes(r.bytesBefore)} -> ${formatBytes(r.bytesAfter)}, packs ${r.packsBefore} -> ${r.packsAfter}, ${(r.durationMs / 1000).toFixed(1)} s`,
    );
  return lines;
}

export function registerPrune(program: Command): void {
  const cmd = program
    .command('prune')
    .description('remove revisions, staged kernels and git objects no longer needed (never the booted, pending or known-good ones) and repack');
  addDirOption(cmd);
  cmd
    .option('--keep <n>', 'earlier good revisions to keep besides booted, pending and good (default: gitroot.keep)')
    .option('--dry-run', 'show what would be kept and removed; change nothing');
  addCmdlineOption(cmd);
  addConfigOption(cmd);
  addWaitOption(cmd, 'pruning (a running fetch or staging)');
  addJsonOption(cmd, 'the outcome').action(async (opts: PruneOpts) => {
    // Settings from local sources and the cached fleet config only: pruning needs no network.
    const loaded = await loadSettings({ dir: opts.dir, cmdlineFile: opts.cmdline, configPath: opts.config, offline: true });
    const s = loaded.settings;
    let keep = s['gitroot.keep'];
    if (opts.keep !== undefined) {
      if (!/^\d+$/.test(opts.keep)) throw new UsageError(`--keep needs a whole number, not '${opts.keep}'`);
      keep = Number(opts.keep);
    }
    const result = await runPrune({
      dir: opts.dir,
      keep,
      dryRun: opts.dryRun,
      bootloader: s['gitroot.bootloader'],
      bootDir: s['gitroot.boot'],
      waitMs: secondsToMs(opts.wait),
    });
    for (const w of [...loaded.warnings, ...result.warnings]) note(`warning: ${w}`);
    if (opts.json) printJson(result);
    else for (const line of describe(result)) printLine(line);
  });
}
