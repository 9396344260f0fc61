/**
 * The transport step of `gitroot fetch`: a channel (static files, lib/fetch/channel-fetch.ts)
 * or a git smart-HTTP remote (lib/fetch/repo-fetch.ts), told apart by the channel's manifest,
 * with the machine's delivery identity (lib/http/delivery-identity.ts: private CA, client
 * certificate, User-Agent, machine and revision headers) on every request either way.
 *
 * A remote that served a channel once stays a channel: a later answer without a manifest is
 * refused rather than taken for a git server, or a man in the middle could hide the channel's
 * expiry and replay old git tips (freeze). Remove D/channel.json to switch back on purpose.
 */
import { ConfigError, NetworkError, TrustError } from '../errors/errors.js';
import { ensureMachineId, readMachineId } from '../boot/machine-id.js';
import { type DeliveryIdentity, deliveryIdentity } from '../http/delivery-identity.js';
import { redactUrl } from '../http/url-redact.js';
import type { Settings } from '../params/settings-schema.js';
import type { AllowedSigners } from '../trust/allowed-signers.js';
import { readChannelState } from '../channel/channel-state.js';
import { type ChannelFetchResult, fetchChannel, manifestUrlOf, probeChannel } from '../fetch/channel-fetch.js';
import type { FetchProgress } from '../fetch/repo-fetch.js';
import type { DeployState } from '../home/home-state.js';

/** The machine's identity for update servers: its stable id (made once when missing) and the booted revision. */
export function machineDelivery(dir: string, s: Settings, state: Pick<DeployState, 'booted'>): DeliveryIdentity & { machineId: string } {
  const machineId = readMachineId(dir) ?? ensureMachineId(dir).id;
  const identity = deliveryIdentity({
    ca: s['gitroot.ca'],
    clientCert: s['gitroot.client-cert'],
    clientKey: s['gitroot.client-key'],
    machineId,
    booted: state.booted,
  });
  return { ...identity, machineId };
}

export interface ChannelAttempt {
  dir: string;
  gitdir: string;
  remote: string;
  /** `gitroot fetch --from DIR`: a channel directory, nothing else is tried. */
  offline: boolean;
  s: Settings;
  signers: AllowedSigners | null;
  identity: DeliveryIdentity;
  held: string[];
  pinSha: string | null;
  dryRun: boolean;
  lockWaitMs?: number;
  onProgress?: (p: FetchProgress) => void;
}

/**
 * Fetches from the channel at `remote`, or returns null when it is not one (a git remote).
 * Throws typed errors like the fetchers do.
 */
export async function fetchIfChannel(a: ChannelAttempt): Promise<ChannelFetchResult | null> {
  const http = {
    timeoutMs: a.s['gitroot.timeout'] * 1000,
    retries: a.s['gitroot.retries'],
    headers: a.identity.headers,
    tls: a.identity.tls,
    rateLimit: a.s['gitroot.rate-limit'],
  };
  const follows = a.s['fetch-revision'];
  const isFile = a.remote.startsWith('file:');
  const url = manifestUrlOf(a.remote);
  const kept = readChannelState(a.dir).channels[follows];
  const wasChannel = kept !== undefined && kept.url === url;
  let probe;
  try {
    probe = await probeChannel(a.dir, a.remote, follows, http);
  } catch (e) {
    // A git remote that is down fails the same way in the smart-HTTP client, with its own words
    // and retries; only a timeout is not waited for twice.
    const timedOut = (e as { cause?: { name?: string } }).cause?.name === 'TimeoutError';
    if (e instanceof NetworkError && !wasChannel && !isFile && !timedOut) return null;
    throw e;
  }
  if (probe.kind === 'none') {
    if (isFile || a.offline) {
      throw new ConfigError(`${redactUrl(a.remote)} holds no channel (no ${redactUrl(url)}): give a directory written by 'gitroot publish'`, {
        data: { url: redactUrl(url) },
      });
    }
    if (wasChannel) {
      throw new TrustError(
        `${redactUrl(url)} served a signed channel before and now has none (HTTP ${probe.status}): refusing to fall back to git smart HTTP, which has no expiry (a server hiding the channel could freeze this machine on old code); fix the server, or remove D/channel.json to use a git remote there on purpose`,
        { data: { why: 'channel-vanished', url: redactUrl(url) } },
      );
    }
    return null;
  }
  if (a.signers === null) {
    throw new ConfigError(
      `${redactUrl(a.remote)} is a channel, and its manifest must be verified: set gitroot.allowed-signers (a key listed with namespaces="git,gitroot-channel"; docs/channel.md)`,
    );
  }
  return fetchChannel({
    dir: a.dir,
    gitdir: a.gitdir,
    remote: a.remote,
    follows,
    pinSha: a.pinSha,
    signers: a.signers,
    fleetId: a.identity.fleetId ?? 'unknown',
    held: a.held,
    mode: a.dryRun ? 'dry-run' : 'update',
    http,
    probe,
    lockWaitMs: a.lockWaitMs,
    onProgress: (p) =>
      a.onProgress?.({
        phase: p.phase === 'refs' ? 'refs' : p.phase,
        bytes: p.bytes,
        objects: p.objects,
        totalObjects: p.totalObjects,
        bytesPerSecond: p.bytesPerSecond,
      }),
  });
}
