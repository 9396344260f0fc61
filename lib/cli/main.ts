/**
 * The command-line program: registers every command (one file each under commands/) and
 * maps failures to one-line messages and exit statuses. bin/gitroot.ts only calls run().
 */
import { Command, CommanderError } from 'commander';
import { GitrootError, UsageError } from '../errors/errors.js';
import { GITROOT_VERSION } from '../http/gitroot-version.js';

type Register = (program: Command) => void;

/**
 * Every command, by the module that registers it. Modules load only when needed: the
 * mount daemon (also at boot) must not pay for the fetcher, the settings loader or the
 * commit path (measured: ~60 ms and several MB of RSS per start).
 */
const COMMAND_MODULES: Array<{ names: string[]; load: () => Promise<Register[]> }> = [
  { names: ['commit'], load: async () => [(await import('./commands/commit.js')).registerCommit] },
  { names: ['image'], load: async () => [(await import('./commands/image.js')).registerImage] },
  { names: ['grow'], load: async () => [(await import('./commands/grow.js')).registerGrow] },
  { names: ['mount', 'umount', 'unmount'], load: async () => [(await import('./commands/mount.js')).registerMount] },
  { names: ['switch'], load: async () => [(await import('./commands/switch.js')).registerSwitch] },
  { names: ['apply-live'], load: async () => [(await import('./commands/apply-live.js')).registerApplyLive] },
  { names: ['config'], load: async () => [(await import('./commands/config.js')).registerConfig] },
  { names: ['diff'], load: async () => [(await import('./commands/diff.js')).registerDiff] },
  { names: ['export'], load: async () => [(await import('./commands/export.js')).registerExport] },
  { names: ['fetch'], load: async () => [(await import('./commands/fetch.js')).registerFetch] },
  { names: ['status'], load: async () => [(await import('./commands/status.js')).registerStatus] },
  { names: ['fsck'], load: async () => [(await import('./commands/fsck.js')).registerFsck] },
  { names: ['boot'], load: async () => [(await import('./commands/boot.js')).registerBoot] },
  { names: ['select', 'health', 'mark-good', 'mark-bad', 'rollback'], load: async () => [(await import('./commands/transitions.js')).registerTransitions] },
  { names: ['prune'], load: async () => [(await import('./commands/prune.js')).registerPrune] },
  { names: ['publish'], load: async () => [(await import('./commands/publish.js')).registerPublish] },
];

/** Builds the commander program; with `only`, registers just the module of that command. */
export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command('gitroot')
    .description('git-backed root filesystem: record an OS tree as commits, serve a commit as / over FUSE, fetch updates, roll back')
    .version(GITROOT_VERSION)
    .exitOverride();
  const wanted = COMMAND_MODULES.filter((m) => only !== undefined && m.names.includes(only));
  for (const m of wanted.length ? wanted : COMMAND_MODULES) for (const register of await m.load()) register(program);
  for (const c of [program, ...program.commands]) {
    const usage = c === program ? 'gitroot --help' : `gitroot ${c.name()} --help`;
    // One line per error: commander's message plus where to find the usage.
    c.exitOverride().configureOutput({
      outputError: (str, write) => write(`gitroot: ${str.trim().replace(/^error: /, '')} (see '${usage}')\n`),
    });
  }
  return program;
}

/** Runs the CLI; returns the exit status. Prints errors as one line on stderr. */
export async function run(argv: string[]): Promise<number> {
  const program = await buildProgram(argv[2]);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its message (or the help/version text).
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return new UsageError(e.message).exitCode;
    }
    if (e instanceof GitrootError) {
      process.stderr.write(`gitroot: ${e.message}\n`);
      if (process.env.GITROOT_DEBUG && e.cause) process.stderr.write(`${(e.cause as Error)?.stack ?? e.cause}\n`);
      return e.exitCode;
    }
    process.stderr.write(`gitroot: internal error: ${(e as Error)?.message ?? e} (please report it; set GITROOT_DEBUG=1 for details)\n`);
    if (process.env.GITROOT_DEBUG) process.stderr.write(`${(e as Error)?.stack}\n`);
    return 70;
  }
}
