/**
 * How a machine presents itself to update servers, one rule for every request gitroot makes
 * (channel files, the smart-HTTP client): TLS with a private CA (`gitroot.ca`, which then is
 * the only CA trusted, like curl's --cacert and git's http.sslCAInfo) and a client
 * certificate (`gitroot.client-cert`, `gitroot.client-key`: the machine's identity for mutual
 * TLS), and headers a plain web server's access log can show:
 *
 *   User-Agent: gitroot/VERSION
 *   Gitroot-Machine: <fleet id>       an app-specific id derived from /etc/machine-id's value
 *   Gitroot-Revision: <booted sha>    what the machine runs (absent when nothing booted yet)
 *
 * The fleet id is HMAC-SHA256(machine id, "gitroot-fleet-id") cut to 32 hex digits, the way
 * systemd's sd_id128_get_machine_app_specific() does it: stable, one per machine, but not the
 * raw machine id (which systemd asks never to be sent over the network).
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors/errors.js';
import { USER_AGENT } from './gitroot-version.js';

/** TLS material for got's `https` option. */
export interface TlsFiles {
  certificateAuthority?: Buffer;
  certificate?: Buffer;
  key?: Buffer;
}

/** The machine's delivery identity: TLS files and the headers every request carries. */
export interface DeliveryIdentity {
  tls: TlsFiles;
  headers: Record<string, string>;
  fleetId: string | null;
}

/** The app-specific id sent to servers (see the module comment). */
export function fleetIdOf(machineId: string): string {
  return createHmac('sha256', machineId).update('gitroot-fleet-id').digest('hex').slice(0, 32);
}

function readTlsFile(setting: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new ConfigError(`${setting}=${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? e}): install the file or fix the setting`, {
      data: { setting, file },
      cause: e,
    });
  }
}

/**
 * Reads the TLS files the settings name and builds the headers. ConfigError (before any
 * network) for an unreadable file, or a certificate without its key.
 */
export function deliveryIdentity(s: {
  ca: string | null;
  clientCert: string | null;
  clientKey: string | null;
  machineId: string | null;
  booted: string | null;
}): DeliveryIdentity {
  if ((s.clientCert === null) !== (s.clientKey === null)) {
    throw new ConfigError('gitroot.client-cert and gitroot.client-key go together: set both (the certificate and its private key) or neither');
  }
  const tls: TlsFiles = {};
  if (s.ca !== null) tls.certificateAuthority = readTlsFile('gitroot.ca', s.ca);
  if (s.clientCert !== null) tls.certificate = readTlsFile('gitroot.client-cert', s.clientCert);
  if (s.clientKey !== null) tls.key = readTlsFile('gitroot.client-key', s.clientKey);
  const fleetId = s.machineId === null ? null : fleetIdOf(s.machineId);
  const headers: Record<string, string> = { 'user-agent': USER_AGENT };
  if (fleetId !== null) headers['gitroot-machine'] = fleetId;
  if (s.booted !== null) headers['gitroot-revision'] = s.booted;
  return { tls, headers, fleetId };
}
