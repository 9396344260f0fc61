/** `gitroot status`: what is booted, known good, pending and failed, and the last fetch. */
import type { Command } from 'commander';
import { loadSettings } from '../../params/settings-load.js';
import { readStatus, formatStatus } from '../../deploy/deploy-status.js';
import { note, printJson, printLine } from '../output.js';
import { type SharedOpts, addCmdlineOption, addConfigOption, addDirOption, addJsonOption } from '../cli-options.js';

export function registerStatus(program: Command): void {
  const cmd = program
    .command('status')
    .description('show the booted, known-good, pending and failed revisions and the last fetch');
  addDirOption(cmd);
  addCmdlineOption(cmd);
  addConfigOption(cmd);
  addJsonOption(cmd, 'the status')
    .action(async (opts: Omit<SharedOpts, 'wait'>) => {
      // Never touch the network for a status: the fleet config comes from its cache.
      const loaded = await loadSettings({ dir: opts.dir, cmdlineFile: opts.cmdline, configPath: opts.config, offline: true });
      const status = readStatus(opts.dir, { remote: loaded.settings['gitroot.remote'], fetchRevision: loaded.settings['fetch-revision'] });
      for (const w of [...loaded.warnings, ...status.warnings]) note(`warning: ${w}`);
      if (opts.json) printJson(status);
      else printLine(formatStatus(status));
    });
}
