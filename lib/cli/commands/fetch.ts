/** `gitroot fetch`: fetch the configured revision and stage it (kernel, initrd, boot entries). */
import type { Command } from 'commander';
import { runUpdate, type UpdateResult } from '../../update/update-run.js';
import { formatBytes } from '../../fsutil/free-space.js';
import { byteProgress, note, printJson, printLine } from '../output.js';
import { type SharedOpts, addCmdlineOption, addConfigOption, addDirOption, addJsonOption, addWaitOption, secondsToMs } from '../cli-options.js';

interface FetchOpts extends SharedOpts {
  dryRun?: boolean;
  from?: string;
}

function describe(r: UpdateResult): string[] {
  const lines: string[] = [];
  const short = (s: string | null) => (s ? s.slice(0, 12) : '-');
  if (r.fetch && !r.fetch.upToDate && r.action !== 'waiting' && !(r.channel && r.action === 'dry-run'))
    lines.push(`fetched ${short(r.revision)}: ${r.fetch.objects} objects, ${formatBytes(r.fetch.bytes)} in ${(r.fetch.durationMs / 1000).toFixed(1)} s`);
  switch (r.action) {
    case 'disabled':
      lines.push(r.reason + '; nothing fetched');
      break;
    case 'waiting':
      lines.push(r.reason);
      break;
    case 'dry-run':
      lines.push(`dry run: ${r.reason} (would ${r.wouldStage})`);
      if (r.channel) {
        const n = r.channel.download.bundles.length;
        lines.push(
          `the update is ${n} bundle${n === 1 ? '' : 's'}, ${formatBytes(r.channel.download.bytes)} (sizes from the channel manifest; nothing downloaded)`,
        );
      } else if (r.fetch) lines.push(`the update is ${r.fetch.objects} objects, ${formatBytes(r.fetch.bytes)}`);
      if (r.diff) lines.push(`files: ${r.diff.added} added, ${r.diff.removed} removed, ${r.diff.changed} changed against ${short(r.diff.from)}`);
      break;
    default:
      lines.push(r.reason);
  }
  if (r.reboot === 'requested') lines.push('rebooting into it (gitroot.reboot-after-update)');
  return lines;
}

export function registerFetch(program: Command): void {
  const cmd = program.command('fetch').description('fetch the configured revision (fetch-revision tip, or update-revision) and stage it for the next boot');
  addDirOption(cmd, 'created if missing');
  addCmdlineOption(cmd);
  addConfigOption(cmd);
  cmd.option('--from <dir>', 'take the update from a channel directory written by gitroot publish (a USB stick): same checks, no network');
  cmd.option('--dry-run', 'report what would be fetched and how big the update is; change nothing');
  addWaitOption(cmd, 'fetching');
  addJsonOption(cmd, 'the outcome').action(async (opts: FetchOpts) => {
    const bar = byteProgress();
    // The bar's line is ended on failure too, so the error gets a line of its own.
    const result = await runUpdate({
      dir: opts.dir,
      cmdlineFile: opts.cmdline,
      configPath: opts.config,
      dryRun: opts.dryRun,
      from: opts.from,
      lockWaitMs: secondsToMs(opts.wait),
      onProgress: (p) => bar.update(p.phase, p.bytes, p.bytesPerSecond, p.objects, p.totalObjects),
    }).finally(() => bar.end());
    for (const w of result.warnings) note(`warning: ${w}`);
    if (opts.json) printJson(result);
    else for (const line of describe(result)) printLine(line);
  });
}
