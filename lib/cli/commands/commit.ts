/** `gitroot commit`: record a directory tree as a new commit. */
import type { Command } from 'commander';
import { commitDirectory } from '../../commit/commit-tree.js';
import { note, printJson, printLine, progress } from '../output.js';

export function registerCommit(program: Command): void {
  program
    .command('commit')
    .description('record a directory tree (an OS root) as a new commit, with owners, modes, devices, hardlinks and xattrs in a manifest')
    .argument('<rootdir>', 'directory to record')
    .requiredOption('--repo <gitdir>', 'git directory (created as a bare repo if missing)')
    .option('--branch <name>', 'branch to commit on', 'master')
    .option('-m, --message <text>', 'commit message')
    .option('--sign-key <keyfile>', 'sign the commit with this unencrypted OpenSSH ed25519 private key (SSH signature, what git verify-commit checks)')
    .option('--json', 'print the result as JSON')
    .action(async (rootdir: string, opts: { repo: string; branch: string; message?: string; signKey?: string; json?: boolean }) => {
      const bar = progress('committing');
      const res = await commitDirectory({
        rootdir,
        gitdir: opts.repo,
        branch: opts.branch,
        message: opts.message,
        signKey: opts.signKey,
        onProgress: (done, total) => bar.update(done, total),
      }).finally(() => bar.end());
      for (const w of res.warnings) note(`warning: ${w}`);
      if (opts.json) printJson(res);
      else printLine(res.commit);
    });
}
