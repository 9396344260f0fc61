/**
 * The CLI's shared options (lib/cli/cli-options.ts): `--wait` and `--health-timeout` take a
 * number of seconds >= 0 and anything else is a one-line usage error naming the option; the
 * default of `--wait` is the lock's own unless a reason is given, `--dir` defaults to the booted
 * home only on a machine gitroot booted, and the words of `--dir`,
 * `--cmdline`, `--config` and `--json` are the same wherever they are added.
 */
// needs: none
import t from 'tap';
import { Command, CommanderError } from 'commander';
import { DEFAULT_LOCK_WAIT_MS } from '../lib/fsutil/process-lock.js';
import {
  DEFAULT_WAIT_SECONDS,
  addCmdlineOption,
  addConfigOption,
  addDirOption,
  addJsonOption,
  addWaitOption,
  parseSeconds,
  secondsToMs,
} from '../lib/cli/cli-options.js';

/** A command with the shared options, parsed from `args`; the error commander raised, if any. */
function parse(args: string[], defaultWait?: number): { opts: Record<string, unknown>; error: string | null } {
  const cmd = new Command('x').exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  addDirOption(cmd);
  addCmdlineOption(cmd);
  addConfigOption(cmd);
  addWaitOption(cmd, 'testing', defaultWait, defaultWait === undefined ? undefined : 'a reason');
  addJsonOption(cmd);
  try {
    cmd.parse(['--dir', '/d', ...args], { from: 'user' });
    return { opts: cmd.opts(), error: null };
  } catch (e) {
    if (e instanceof CommanderError) return { opts: {}, error: e.message };
    throw e;
  }
}

t.test('--wait: seconds >= 0, else a usage error naming the option', async (t) => {
  t.equal(DEFAULT_WAIT_SECONDS * 1000, DEFAULT_LOCK_WAIT_MS, "the default is the lock's");
  t.same(parse([]).opts, { dir: '/d', wait: DEFAULT_WAIT_SECONDS });
  for (const [v, want] of [
    ['0', 0],
    ['0.2', 0.2],
    ['30', 30],
    [' 7 ', 7],
  ] as const)
    t.equal(parse(['--wait', v]).opts.wait, want, `'${v}'`);
  for (const v of ['', ' ', 'soon', '-1', 'Infinity', 'NaN', '5s']) {
    t.match(parse(['--wait', v]).error, /^error: option '--wait <seconds>' argument '.*' is invalid\. give a number of seconds >= 0/, `'${v}' refused`);
  }
  t.equal(parse([], 60).opts.wait, 60, 'a command may wait longer');
  t.equal(parseSeconds('1.5'), 1.5);
  t.equal(secondsToMs(0.2), 200);
  t.throws(() => secondsToMs(-1, '--health-timeout'), { code: 'EUSAGE', message: /^--health-timeout needs a number of seconds >= 0/ });
});

t.test('the same words wherever an option is added', async (t) => {
  const words = (add: (c: Command) => Command, flag: string) => add(new Command('x')).options.find((o) => o.long === flag)?.description;
  const booted = ' (default on a machine gitroot booted: its home, /run/gitroot/home)';
  t.equal(
    words((c) => addDirOption(c), '--dir'),
    `the gitroot home (repo.git, state.json, boot/)${booted}`,
  );
  t.equal(
    words((c) => addDirOption(c, 'created if missing'), '--dir'),
    `the gitroot home (repo.git, state.json, boot/); created if missing${booted}`,
  );
  t.equal(
    words((c) => addDirOption(c, undefined, { required: true }), '--dir'),
    'the gitroot home (repo.git, state.json, boot/)',
    'gitroot boot: required, no default',
  );
  t.equal(
    words((c) => addCmdlineOption(c), '--cmdline'),
    'kernel command line file to read settings from (default /proc/cmdline)',
  );
  t.equal(
    words((c) => addConfigOption(c), '--config'),
    'config file, or directory of *.conf files and conf.d/ (default /etc/gitroot)',
  );
  t.equal(
    words((c) => addJsonOption(c, 'the report'), '--json'),
    'print the report as JSON (stdout holds only the JSON)',
  );
  t.match(
    words((c) => addWaitOption(c, 'marking', 60, 'why'), '--wait'),
    /before marking \(why\)$/,
    'a longer default says why',
  );
});

t.test('--dir defaults to the booted home on a machine gitroot booted, and only there', async (t) => {
  const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { gitroot } = await import('./helpers/cli.js');
  const run = mkdtempSync(join(tmpdir(), 'gitroot-run-'));
  t.teardown(() => rmSync(run, { recursive: true, force: true }));
  const env = { ...process.env, GITROOT_RUN_DIR: run };
  // Not booted by gitroot: no record, so a missing --dir is a one-line usage error.
  for (const cmd of ['status', 'prune', 'fsck', 'fetch', 'mark-good', 'rollback']) {
    const r = gitroot([cmd, '--json'], { env });
    t.equal(r.status, 2, `${cmd}: exit 2 without --dir off a gitroot-booted machine`);
    t.match(r.stderr, new RegExp(`^gitroot: gitroot ${cmd} needs --dir: this machine was not booted by gitroot`), `${cmd}: says why`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${cmd}: one line`);
  }
  // Booted: the record names the home; status and a dry-run prune use it without --dir.
  const home = join(run, 'home');
  mkdirSync(home);
  writeFileSync(join(run, 'booted.json'), JSON.stringify({ revision: 'a'.repeat(40), home }));
  const status = gitroot(['status', '--json'], { env });
  t.equal(status.status, 0, status.stderr);
  t.match(JSON.parse(status.stdout), { booted: null, good: null }, 'status read the booted home');
  const prune = gitroot(['prune', '--dry-run', '--json'], { env });
  t.equal(prune.status, 0, prune.stderr);
  t.equal(gitroot(['boot', '--target', run, '--json'], { env }).status, 2, 'gitroot boot still needs --dir (it runs before there is a booted home)');
});
