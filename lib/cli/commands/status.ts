/** `gitroot status`: what is booted, known good, pending and failed, the last fetch, and the channel. */
import type { Command } from 'commander';
import { loadSettings } from '../../params/settings-load.js';
import { readStatus, formatStatus } from '../../deploy/deploy-status.js';
import { channelStatusLines, readChannelState } from '../../channel/channel-state.js';
import { note, printJson, printLine } from '../output.js';
import { runDirFromEnv } from '../../home/home-layout.js';
import { readLiveRecord } from '../../live/live-record.js';
import { type SharedOpts, addCmdlineOption, addConfigOption, addDirOption, addJsonOption } from '../cli-options.js';

export function registerStatus(program: Command): void {
  const cmd = program.command('status').description('show the booted, known-good, pending and failed revisions, the last fetch and the channel followed');
  cmd.option('--run-dir <dir>', 'where gitroot boot recorded this boot (booted.json) and apply-live what runs live (live.json)', runDirFromEnv());
  addDirOption(cmd);
  addCmdlineOption(cmd);
  addConfigOption(cmd);
  addJsonOption(cmd, 'the status').action(async (opts: Omit<SharedOpts, 'wait'> & { runDir: string }) => {
    // Never touch the network for a status: the fleet config comes from its cache.
    const loaded = await loadSettings({ dir: opts.dir, cmdlineFile: opts.cmdline, configPath: opts.config, offline: true });
    const follows = loaded.settings['fetch-revision'];
    const liveWarnings: string[] = [];
    let live = null;
    try {
      const r = readLiveRecord(opts.runDir);
      if (r !== null && r.state === 'live' && r.rounds.length > 0) live = { booted: r.booted, running: r.revision, since: r.since, rounds: r.rounds.length };
      else if (r !== null && r.state === 'switching')
        liveWarnings.push(
          `a live update to ${r.revision} did not finish (${opts.runDir}/live.json): 'gitroot switch ${opts.runDir}/lower --status' says what is served`,
        );
    } catch (e) {
      liveWarnings.push((e as Error).message);
    }
    const status = readStatus(opts.dir, { remote: loaded.settings['gitroot.remote'], fetchRevision: follows, live });
    const warnings = [...loaded.warnings, ...liveWarnings, ...status.warnings];
    let channel: { key: string; value: string }[] = [];
    let record = null;
    try {
      const state = readChannelState(opts.dir);
      record = state.channels[follows] ?? null;
      channel = channelStatusLines(state, follows, Date.now());
    } catch (e) {
      warnings.push((e as Error).message);
    }
    for (const w of warnings) note(`warning: ${w}`);
    if (opts.json) {
      const { manifest: _text, ...rest } = record ?? { manifest: '' };
      printJson({ ...status, channel: record === null ? null : { ...rest, lines: channel.map((l) => `${l.key}: ${l.value}`) } });
    } else {
      const width = Math.max(14, ...channel.map((l) => l.key.length));
      printLine(formatStatus(status) + channel.map((l) => `${l.key.padEnd(width)}  ${l.value}`).join('\n'));
    }
  });
}
