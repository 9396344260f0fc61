/** `gitroot boot`: decide the revision (boot-select rules), record it, mount it as a writable root (run by the initramfs). */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { bootMount, DEFAULT_RUN_DIR } from '../../boot/boot-mount.js';
import { UsageError } from '../../errors/errors.js';
import { note, printJson, printLine } from '../output.js';

interface BootOpts {
  dir: string;
  cmdline: string;
  target: string;
  runDir: string;
  cacheMb?: number;
  overlaySize?: string;
  persist: boolean;
  json?: boolean;
}

export function registerBoot(program: Command): void {
  program
    .command('boot')
    .description('choose the revision to boot, serve it with git-fs, put a tmpfs overlay on top at the target, record it under /run/gitroot')
    .requiredOption('--dir <dir>', 'the gitroot home (holds repo.git and state.json)')
    .option('--cmdline <file>', 'kernel command line to read git-revision= from', '/proc/cmdline')
    .requiredOption('--target <dir>', 'where the new root is mounted (the initramfs ${rootmnt}, dracut $NEWROOT)')
    .option('--run-dir <dir>', 'where the git-fs mount, the writable layer, the home bind mount and booted.json go (moved into the new root with /run)', DEFAULT_RUN_DIR)
    .option('--cache-mb <n>', "MiB of decoded file content the daemon keeps (its 'mount --cache-mb')", Number)
    .option('--overlay-size <size>', 'tmpfs size of the writable layer (tmpfs size=, e.g. 50% or 2g; default half of RAM)')
    .option('--no-persist', 'do not write the decision (a try used, booted) to state.json (a dry run of the mounts)')
    .option('--json', 'print what booted as JSON')
    .action(async (opts: BootOpts) => {
      let cmdline: string;
      try {
        cmdline = readFileSync(opts.cmdline, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read the command line file ${opts.cmdline} (${(e as NodeJS.ErrnoException).code ?? e}): pass --cmdline with a readable file`);
      }
      const record = await bootMount({
        dir: opts.dir,
        cmdline,
        target: opts.target,
        runDir: opts.runDir,
        cacheMb: opts.cacheMb,
        overlaySize: opts.overlaySize,
        persist: opts.persist,
        log: (line) => note(`boot: ${line}`),
      });
      if (opts.json) printJson(record);
      else printLine(`${record.revision} ${record.kind} ${record.totalMs}ms`);
    });
}
