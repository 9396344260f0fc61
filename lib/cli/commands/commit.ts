/** `gitroot commit`: record a directory tree, or a tar archive of one, as a new commit. */
import type { Command } from 'commander';
import { commitTar } from '../../commit/commit-tar.js';
import { commitDirectory } from '../../commit/commit-tree.js';
import { UsageError } from '../../errors/errors.js';
import { byteProgress, note, printJson, printLine, progress } from '../output.js';
import { addJsonOption } from '../cli-options.js';

export function registerCommit(program: Command): void {
  const cmd = program
    .command('commit')
    .description(
      'record a directory tree (an OS root), or a tar archive of one, as a new commit, with owners, modes, devices, hardlinks and xattrs in a manifest',
    )
    .argument('[rootdir]', 'directory to record (or give --from-tar)')
    .requiredOption('--repo <gitdir>', 'git directory (created as a bare repo if missing)')
    .option('--from-tar <file>', 'record this tar archive (plain, gzip, xz or zstd; - for standard input) as root would extract it, without extracting it')
    .option('--branch <name>', 'branch to commit on', 'master')
    .option('-m, --message <text>', 'commit message')
    .option('--sign-key <keyfile>', 'sign the commit with this unencrypted OpenSSH ed25519 private key (SSH signature, what git verify-commit checks)');
  addJsonOption(cmd, 'the result').action(
    async (rootdir: string | undefined, opts: { repo: string; fromTar?: string; branch: string; message?: string; signKey?: string; json?: boolean }) => {
      if ((rootdir === undefined) === (opts.fromTar === undefined)) {
        throw new UsageError('give either a directory or --from-tar FILE (not both, not neither): see gitroot commit --help');
      }
      const target = { gitdir: opts.repo, branch: opts.branch, message: opts.message, signKey: opts.signKey };
      let res;
      if (opts.fromTar !== undefined) {
        const bar = byteProgress();
        res = await commitTar({
          ...target,
          input: opts.fromTar === '-' ? process.stdin : opts.fromTar,
          onProgress: (members, bytes) => bar.update(`reading the archive: ${members} members`, bytes),
        }).finally(() => bar.end());
      } else {
        const bar = progress('committing');
        res = await commitDirectory({ ...target, rootdir: rootdir!, onProgress: (done, total) => bar.update(done, total) }).finally(() => bar.end());
      }
      for (const w of res.warnings) note(`warning: ${w}`);
      if (opts.json) printJson(res);
      else printLine(res.commit);
    },
  );
}
