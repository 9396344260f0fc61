/** `gitroot image`: a bootable disk image of one revision (lib/image, docs/image.md). */
import type { Command } from 'commander';
import { UsageError } from '../../errors/errors.js';
import { buildImage } from '../../image/image-build.js';
import { FIRMWARES, type Firmware, parseImageSize } from '../../image/image-plan.js';
import { note, printJson, printLine } from '../output.js';
import { addJsonOption } from '../cli-options.js';

interface ImageOpts {
  repo: string;
  rev: string;
  output: string;
  size?: string;
  firmware: string;
  cmdline?: string;
  json?: boolean;
}

export function registerImage(program: Command): void {
  const cmd = program
    .command('image')
    .description(
      'make a bootable GPT disk image of a revision (for dd to a disk or USB stick, or QEMU): boot partition with the ' +
        "revision's own boot loader and gitroot's entries, and a data partition holding the gitroot home with the revision as known good",
    )
    .requiredOption('--repo <gitdir>', 'repository holding the revision')
    .requiredOption('--rev <rev>', 'the revision: commit id, branch or tag')
    .requiredOption('-o, --output <file>', 'the image file to write (replaced only when the image is complete)')
    .option('--size <size>', 'size of the whole image, e.g. 4G (default: the smallest that fits; the data partition grows to fill the disk on first boot)')
    .option('--firmware <kind>', `uefi (systemd-boot, BLS entries with boot counting) or bios (syslinux, extlinux entries)`, 'uefi')
    .option('--cmdline <options>', 'kernel options for the boot entries, kept by later updates (e.g. "console=ttyS0 quiet")');
  addJsonOption(cmd, 'the result').action(async (opts: ImageOpts) => {
    if (!(FIRMWARES as readonly string[]).includes(opts.firmware)) {
      throw new UsageError(`--firmware must be ${FIRMWARES.join(' or ')}, not '${opts.firmware}'`);
    }
    const r = await buildImage({
      repo: opts.repo,
      rev: opts.rev,
      out: opts.output,
      firmware: opts.firmware as Firmware,
      sizeBytes: opts.size === undefined ? null : parseImageSize(opts.size),
      cmdline: opts.cmdline,
      onStep: (s) => note(`image: ${s}`),
    });
    if (opts.json) printJson(r);
    else {
      printLine(`${r.image}: ${r.firmware} image of ${r.revision}, ${r.bytes / (1024 * 1024)} MiB, sha256 ${r.sha256}`);
      for (const p of r.partitions) printLine(`  partition ${p.name} (PARTUUID ${p.uuid.toLowerCase()}): ${p.sizeMib} MiB at ${p.startMib} MiB`);
      printLine(`  kernel ${r.kernel.version ?? r.kernel.path}; entry options: ${r.options}`);
    }
  });
}
