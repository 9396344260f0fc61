/** `gitroot fsck`: verify every object the kept revisions need, name what is broken, record the verdict, repair. */
import type { Command } from 'commander';
import { runFsck } from '../../fsck/fsck-run.js';
import { type FsckReport, FsckDamageError, damageSummary, formatReport } from '../../fsck/fsck-report.js';
import { note, printJson, printLine, progress } from '../output.js';
import { requireHome } from '../../home/home-layout.js';
import { type SharedOpts, addCmdlineOption, addConfigOption, addDirOption, addJsonOption, addWaitOption, secondsToMs } from '../cli-options.js';

interface FsckOpts extends SharedOpts {
  revision?: string[];
  repair?: boolean;
}

function render(report: FsckReport, json: boolean | undefined): void {
  if (json) printJson(report);
  else for (const line of formatReport(report)) printLine(line);
  if (!report.clean) {
    throw new FsckDamageError(damageSummary(report), {
      data: { brokenObjects: report.objects.length, brokenRevisions: report.revisions.filter((r) => r.status !== 'ok').map((r) => r.revision) },
    });
  }
}

export function registerFsck(program: Command): void {
  const cmd = program
    .command('fsck')
    .description('verify (full SHA-1) every object the kept revisions need and the pack checksums; name broken objects and the paths they break');
  addDirOption(cmd);
  cmd
    .option('--revision <rev...>', 'check only these revisions (the verdict for the boot is then not recorded)')
    .option('--repair', 'fetch broken revisions again from gitroot.remote as full packs and move damaged packs aside');
  addCmdlineOption(cmd, 'settings (for --repair)');
  addConfigOption(cmd, 'read for --repair');
  addWaitOption(cmd, 'recording the verdict or repairing');
  addJsonOption(cmd, 'the report').action(async (opts: FsckOpts) => {
    requireHome(opts.dir);
    const bar = progress('fsck: objects');
    const lockWaitMs = secondsToMs(opts.wait);
    const onProgress = (done: number, total: number) => bar.update(done, total);
    try {
      if (opts.repair) {
        const { repairHome } = await import('../../fsck/fsck-repair.js');
        const report = await repairHome({
          dir: opts.dir,
          cmdlineFile: opts.cmdline,
          configPath: opts.config,
          lockWaitMs,
          onProgress,
          onNote: (line) => {
            bar.end();
            note(line);
          },
        });
        bar.end();
        render(report, opts.json);
        return;
      }
      const { report } = await runFsck({ dir: opts.dir, revisions: opts.revision, onProgress, lockWaitMs });
      bar.end();
      render(report, opts.json);
    } finally {
      bar.end();
    }
  });
}
