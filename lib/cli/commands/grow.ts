/** `gitroot grow`: the medium's partition and file system grow to fill the disk (lib/image/medium-grow.ts). */
import type { Command } from 'commander';
import { growMedium } from '../../image/medium-grow.js';
import { printJson, printLine } from '../output.js';
import { addJsonOption } from '../cli-options.js';

export function registerGrow(program: Command): void {
  const cmd = program
    .command('grow')
    .description(
      'grow the gitroot medium (the last partition of its disk, ext4) to fill the disk; does nothing when it already does (run by gitroot-grow.service)',
    )
    .option('--medium <dir>', 'where the medium is mounted', '/run/gitroot/medium')
    .option('--dry-run', 'only say what would change');
  addJsonOption(cmd, 'the result').action(async (opts: { medium: string; dryRun?: boolean; json?: boolean }) => {
    const r = await growMedium({ mountPoint: opts.medium, dryRun: opts.dryRun });
    if (opts.json) return printJson(r);
    if (r.plan.action === 'none') return printLine(`${r.device}: nothing to grow: ${r.plan.reason}`);
    const mib = (n: number) => `${Math.round(n / (1024 * 1024))} MiB`;
    printLine(`${r.device}: ${r.grown ? 'grown' : 'would grow'} by ${mib(r.plan.addedBytes)} to fill ${r.disk}`);
  });
}
