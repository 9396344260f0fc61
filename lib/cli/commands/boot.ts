/** `gitroot boot`: decide the revision (boot-select rules), record it, mount it as a writable root (run by the initramfs). */
import type { Command } from 'commander';
import { bootMount, DEFAULT_RUN_DIR } from '../../boot/boot-mount.js';
import { readCmdline } from '../../params/cmdline-file.js';
import { tokenizeCmdline } from '../../params/settings-grammar.js';
import { checkToken } from '../../params/settings-resolve.js';
import { note, printJson, printLine } from '../output.js';
import { type SharedOpts, addCmdlineOption, addDirOption, addJsonOption } from '../cli-options.js';

interface BootOpts extends Omit<SharedOpts, 'config' | 'wait'> {
  target: string;
  runDir: string;
  cacheMb?: number;
  overlaySize?: string;
  persist: boolean;
  allowedSigners?: string;
}

/**
 * The boot-time tuning keys on the kernel command line (gitroot.overlay-size=,
 * gitroot.cache-mb=). Lenient on purpose: a malformed value must not stop the machine from
 * booting, so it is reported and the default used.
 */
export function bootTuning(cmdline: string, warn: (line: string) => void): { overlaySize?: string; cacheMb?: number } {
  const out: { overlaySize?: string; cacheMb?: number } = {};
  for (const token of tokenizeCmdline(cmdline)) {
    if (token.key !== 'gitroot.overlay-size' && token.key !== 'gitroot.cache-mb') continue;
    try {
      const r = checkToken(token, 'cmdline', []);
      if (r?.key === 'gitroot.overlay-size' && typeof r.value === 'string') out.overlaySize = r.value;
      if (r?.key === 'gitroot.cache-mb' && typeof r.value === 'number') out.cacheMb = r.value;
    } catch (e) {
      warn(`warning: ${(e as Error).message}; booting with the default instead`);
    }
  }
  return out;
}

export function registerBoot(program: Command): void {
  const cmd = program
    .command('boot')
    .description('choose the revision to boot, serve it with git-fs, put a tmpfs overlay on top at the target, record it under /run/gitroot');
  addDirOption(cmd, undefined, { required: true });
  addCmdlineOption(cmd, 'git-revision= and the boot tuning (gitroot.cache-mb=, gitroot.overlay-size=)');
  cmd
    .requiredOption('--target <dir>', 'where the new root is mounted (the initramfs ${rootmnt}, dracut $NEWROOT)')
    .option(
      '--run-dir <dir>',
      'where the git-fs mount, the writable layer, the home bind mount and booted.json go (moved into the new root with /run)',
      DEFAULT_RUN_DIR,
    )
    .option('--cache-mb <n>', "MiB of decoded file content the daemon keeps (its 'mount --cache-mb'; default gitroot.cache-mb= on the command line)", Number)
    .option(
      '--overlay-size <size>',
      'tmpfs size of the writable layer (tmpfs size=, e.g. 50% or 2g; default gitroot.overlay-size= on the command line, else half of RAM)',
    )
    .option('--no-persist', 'do not write the decision (a try used, booted) to state.json (a dry run of the mounts)')
    .option(
      '--allowed-signers <file>',
      'boot only revisions signed by a key of this allowed-signers file (the initramfs passes /etc/gitroot/allowed-signers when it carries one); others are passed over like unreadable ones',
    );
  addJsonOption(cmd, 'what booted').action(async (opts: BootOpts) => {
    const cmdline = readCmdline(opts.cmdline);
    // Options given to the command win over the kernel command line's settings.
    const tuning = bootTuning(cmdline, (line) => note(`boot: ${line}`));
    const record = await bootMount({
      dir: opts.dir,
      cmdline,
      target: opts.target,
      runDir: opts.runDir,
      cacheMb: opts.cacheMb ?? tuning.cacheMb,
      overlaySize: opts.overlaySize ?? tuning.overlaySize,
      persist: opts.persist,
      allowedSigners: opts.allowedSigners,
      log: (line) => note(`boot: ${line}`),
    });
    if (opts.json) printJson(record);
    else printLine(`${record.revision} ${record.kind} ${record.totalMs}ms`);
  });
}
