/** `gitroot mount` and `gitroot umount`: serve a commit read-only over FUSE. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mountGitfs } from '../../gitfs/gitfs-server.js';
import { reportReady, startDaemon } from '../../gitfs/mount-daemon.js';
import { startControlServer } from '../../gitfs/switch-control.js';
import { parseAllowedSigners } from '../../trust/allowed-signers.js';
import { GitrootError, MountError } from '../../errors/errors.js';
import { note, printJson, printLine } from '../output.js';
import { addJsonOption } from '../cli-options.js';
import { gitfsMountpoint } from './switch.js';

interface MountOpts {
  repo: string;
  rev?: string;
  foreground?: boolean;
  json?: boolean;
  cacheMb: number;
  spillDir?: string;
  log?: string;
  readyFd?: number;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

async function serveForeground(mountpoint: string, opts: MountOpts): Promise<void> {
  let mount;
  try {
    mount = mountGitfs({
      gitdir: opts.repo,
      rev: opts.rev,
      mountpoint,
      cacheBytes: opts.cacheMb * 1024 * 1024,
      spillDir: opts.spillDir,
    });
  } catch (e) {
    if (opts.readyFd !== undefined) {
      const err = e instanceof GitrootError ? e : new MountError(String(e));
      reportReady(opts.readyFd, { ok: false, code: err.code, message: err.message });
    }
    throw e;
  }
  // The control socket beside the mount (gitroot switch): started once the mount answers.
  const log = (line: string) => process.stderr.write(`gitroot: ${line}\n`);
  const since = new Date().toISOString();
  let switches = 0;
  const control = await startControlServer(
    mount.mountpoint,
    {
      status: () => ({ mountpoint: mount.mountpoint, commit: mount.commit, pid: process.pid, since, switches, stats: mount.stats() }),
      switchTo: async (req) => {
        const signers = req.allowedSigners ? parseAllowedSigners(req.allowedSigners.text, req.allowedSigners.source) : null;
        const r = await mount.switchTo(req.rev, { signers });
        if (r.changed) switches++;
        return r;
      },
    },
    log,
  );
  const readyMs = Math.round(performance.now());
  const report = { ok: true, mountpoint: mount.mountpoint, commit: mount.commit, pid: process.pid, readyMs, control: control?.path ?? null };
  if (opts.readyFd !== undefined) reportReady(opts.readyFd, report);
  else if (opts.json) printJson(report);
  else note(`serving ${mount.commit} at ${mount.mountpoint} (ready in ${readyMs} ms); stop with 'gitroot umount ${mount.mountpoint}' or Ctrl-C`);
  const stop = () => mount.unmount();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.once('SIGHUP', stop);
  await mount.exited;
  control?.close();
}

export function registerMount(program: Command): void {
  const mount = program
    .command('mount')
    .description('serve a commit read-only at a mountpoint (FUSE), exactly as it was committed')
    .argument('<mountpoint>', 'empty directory to mount on')
    .requiredOption('--repo <gitdir>', 'git directory holding the commit')
    .option('--rev <rev>', 'commit SHA, branch or tag (default HEAD)')
    .option('--foreground', 'serve in this process until unmounted (default: serve in the background once ready)')
    .option('--cache-mb <n>', 'MiB of decoded file content kept in memory', positiveInt, 6)
    .option('--spill-dir <dir>', 'where files bigger than 8 MiB are unpacked (unlinked temp files; default the temp dir)')
    .option('--log <file>', 'log file of a background mount (default /run/gitroot/mounts/<mountpoint>.log)')
    .addOption(new Option('--ready-fd <fd>', 'internal: report readiness on this fd').argParser(Number).hideHelp());
  addJsonOption(mount, 'the mount (mountpoint, commit, pid, readyMs)').action(async (mountpoint: string, opts: MountOpts) => {
    if (opts.foreground || opts.readyFd !== undefined) return serveForeground(mountpoint, opts);
    const args = [mountpoint, '--repo', opts.repo, '--cache-mb', String(opts.cacheMb)];
    if (opts.rev) args.push('--rev', opts.rev);
    if (opts.spillDir) args.push('--spill-dir', opts.spillDir);
    const res = await startDaemon({ script: process.argv[1], args, mountpoint, logPath: opts.log });
    if (opts.json) printJson(res);
    else printLine(res.commit);
  });

  const umount = program
    .command('umount')
    .alias('unmount')
    .description('unmount a gitroot mount; its serving process exits')
    .argument('<mountpoint>', 'where it is mounted')
    .option('--lazy', 'detach now even if busy; the mount goes away when the last user leaves');
  addJsonOption(umount, 'the result').action(async (mountpoint: string, opts: { lazy?: boolean; json?: boolean }) => {
    const { real, source } = gitfsMountpoint(mountpoint);
    try {
      await promisify(execFile)('umount', opts.lazy ? ['--lazy', real] : [real]);
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e)
        .trim()
        .split('\n')[0];
      if (/busy/i.test(msg)) throw new MountError(`${real} is busy: close the programs using it (fuser -vm ${real}) or use --lazy`);
      throw new MountError(`cannot unmount ${real}: ${msg}`);
    }
    if (opts.json) printJson({ mountpoint: real, unmounted: true, source });
  });
}
