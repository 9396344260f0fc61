/** `gitroot publish`: write a channel (signed manifest, bundle list, git bundles) as static files. */
import type { Command } from 'commander';
import { UsageError } from '../../errors/errors.js';
import { formatDuration, parseDuration, parseIsoTime } from '../../channel/channel-time.js';
import { type PublishResult, publishChannel } from '../../publish/publish-run.js';
import { formatBytes } from '../../fsutil/free-space.js';
import { printJson, printLine, progress } from '../output.js';
import { addJsonOption } from '../cli-options.js';

interface PublishOpts {
  repo: string;
  out: string;
  branch: string;
  signKey: string;
  expires: string;
  rolloutStart?: string;
  rolloutDuration?: string;
  rolloutFrom?: string;
  pin?: string;
  unpin?: boolean;
  rollupEvery: string;
  rollupsKept: string;
  keepRetired: string;
  time?: string;
  bundleUriBase?: string;
  json?: boolean;
}

function duration(option: string, text: string): number {
  const s = parseDuration(text);
  if (s === null) throw new UsageError(`${option} needs a duration like 90s, 45m, 12h or 7d, not '${text}'`);
  return s;
}

function time(option: string, text: string): number {
  const ms = parseIsoTime(text);
  if (ms === null) throw new UsageError(`${option} needs an ISO 8601 time with a zone, like 2026-12-03T08:00:00Z, not '${text}'`);
  return ms;
}

function whole(option: string, text: string, min: number): number {
  const n = /^[0-9]{1,6}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min)) throw new UsageError(`${option} needs a whole number >= ${min}, not '${text}'`);
  return n;
}

function rollout(o: PublishOpts): { startMs: number; durationSeconds: number; fromPercent: number } | undefined {
  if (o.rolloutStart === undefined && o.rolloutDuration === undefined && o.rolloutFrom === undefined) return undefined;
  if (o.rolloutStart === undefined || o.rolloutDuration === undefined) {
    throw new UsageError('a rollout needs both --rollout-start TIME and --rollout-duration DURATION (--rollout-from PERCENT is optional)');
  }
  const from = o.rolloutFrom === undefined ? 0 : Number(o.rolloutFrom.replace(/%$/, ''));
  if (!(from >= 0 && from <= 100)) throw new UsageError(`--rollout-from needs a percentage 0..100, not '${o.rolloutFrom}'`);
  return { startMs: time('--rollout-start', o.rolloutStart), durationSeconds: duration('--rollout-duration', o.rolloutDuration), fromPercent: from };
}

function describe(r: PublishResult): string[] {
  const made = r.bundles.filter((b) => b.made);
  const lines = [`published ${r.channel} version ${r.version}: ${r.pin ? 'pinned ' : ''}tip ${r.tip} (${r.note})`];
  for (const b of made) lines.push(`  made ${b.uri} (${b.kind}, ${formatBytes(b.size)})`);
  lines.push(`  ${r.bundles.length} bundles listed, ${r.retired.length} retired, ${r.deleted.length} deleted; expires ${r.expires}`);
  if (r.rollout) lines.push(`  rollout from ${r.rollout.fromPercent}% at ${r.rollout.start} to 100% over ${formatDuration(r.rollout.durationSeconds)}`);
  return lines;
}

export function registerPublish(program: Command): void {
  const cmd = program
    .command('publish')
    .description('publish a branch as a channel of static files (signed manifest, git bundle list, bundles) for gitroot.remote or gitroot fetch --from')
    .requiredOption('--repo <gitdir>', 'the release repository')
    .requiredOption('--out <dir>', 'the channel directory (created; re-run after each release, and from a timer to re-sign)')
    .option('--branch <name>', 'the branch to publish (the channel; machines follow it with fetch-revision)', 'master')
    .requiredOption('--sign-key <keyfile>', 'unencrypted OpenSSH ed25519 key signing the manifest (namespace gitroot-channel)')
    .option('--expires <duration>', 'how long the manifest is valid (90s, 12h, 7d); re-sign before then', '7d')
    .option('--rollout-start <time>', 'ISO 8601 time the phased rollout of this release starts')
    .option('--rollout-duration <duration>', 'how long the ramp takes to reach 100%')
    .option('--rollout-from <percent>', 'share of machines taking it at the start (default 0)')
    .option('--pin <rev>', 'publish this revision with update-revision semantics: halts a bad release (machines that took it go back)')
    .option('--unpin', 'lift a pin and publish the branch tip again')
    .option('--rollup-every <n>', 'a roll-up bundle every this many releases', '10')
    .option('--rollups-kept <n>', 'roll-ups listed before the full base moves up', '10')
    .option('--keep-retired <duration>', 'how long a bundle file stays after the manifest stops listing it', '7d')
    .option('--time <time>', 'the signed time (default now)')
    .option('--bundle-uri-base <url>', "absolute URL for the bundle list's URIs (git 2.39 resolves relative ones against its working directory)");
  addJsonOption(cmd, 'the result').action(async (o: PublishOpts) => {
    const bar = progress('making bundles');
    const result = await publishChannel({
      repo: o.repo,
      out: o.out,
      branch: o.branch,
      signKey: o.signKey,
      expiresSeconds: duration('--expires', o.expires),
      rollout: rollout(o),
      pin: o.pin,
      unpin: o.unpin,
      rollupEvery: whole('--rollup-every', o.rollupEvery, 2),
      rollupsKept: whole('--rollups-kept', o.rollupsKept, 2),
      graceSeconds: duration('--keep-retired', o.keepRetired),
      nowMs: o.time === undefined ? undefined : time('--time', o.time),
      bundleUriBase: o.bundleUriBase,
      onProgress: (p) => bar.update(p.done, p.total),
    }).finally(() => bar.end());
    if (o.json) printJson(result);
    else for (const l of describe(result)) printLine(l);
  });
}
