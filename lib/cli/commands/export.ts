/** `gitroot export`: write a revision as a tar archive, straight from the git objects. */
import type { Command } from 'commander';
import { UsageError } from '../../errors/errors.js';
import { exportTar, exportTarToFile } from '../../export/export-tar.js';
import { formatBytes } from '../../fsutil/free-space.js';
import { printJson, printLine } from '../output.js';
import { addJsonOption } from '../cli-options.js';

/** Writes a piece of the archive to standard output, resolving once it is handed to the kernel. */
function writeStdout(chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(chunk, (err) => (err ? reject(err) : resolve())));
}

export function registerExport(program: Command): void {
  const cmd = program
    .command('export')
    .description('write a revision as a pax tar archive (numeric owners, modes, devices, hardlinks, xattrs) straight from the git objects: no mount, no root')
    .argument('<rev>', 'revision to export (SHA, branch or tag)')
    .requiredOption('--repo <gitdir>', 'git directory holding the revision')
    .option('--format <format>', 'archive format (only tar)', 'tar')
    .option('-o, --output <file>', 'write the archive to this file (atomically: complete or not at all) instead of standard output');
  addJsonOption(cmd, 'what was written', 'needs -o, since standard output otherwise carries the archive').action(
    async (rev: string, opts: { repo: string; format: string; output?: string; json?: boolean }) => {
      if (opts.format !== 'tar') throw new UsageError(`unknown archive format "${opts.format}": only --format tar is supported`);
      if (opts.output === undefined) {
        if (opts.json) throw new UsageError('--json needs -o FILE: without it, standard output carries the archive');
        if (process.stdout.isTTY) throw new UsageError('refusing to write a tar archive to a terminal: give -o FILE or redirect standard output');
        // A reader that goes away (EPIPE) is reported by the failed write, not as a crash.
        process.stdout.on('error', () => undefined);
        await exportTar({ gitdir: opts.repo, rev, write: writeStdout, outputLabel: 'standard output' });
        return;
      }
      const res = await exportTarToFile({ gitdir: opts.repo, rev, file: opts.output });
      if (opts.json) printJson(res);
      else printLine(`${res.output}: revision ${res.commit}, ${res.entries} entries, ${formatBytes(res.bytes)}`);
    },
  );
}
