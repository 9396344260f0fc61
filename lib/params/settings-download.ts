/**
 * Downloads the fleet config (`gitroot.config=URL`): HTTP(S) with got (timeouts, retries
 * with exponential backoff, a proxy from HTTPS_PROXY/HTTP_PROXY/NO_PROXY, conditional
 * requests with If-None-Match), or a `file://` URL read from disk.
 *
 * Every way of not getting a config (refused, timed out, HTTP error, too big, an HTML page
 * from a captive portal) is a NetworkError, which the loader answers with the cached copy.
 * Whether the body is a valid config is not decided here.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import got, { HTTPError, RequestError, TimeoutError, type Agents } from 'got';
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent';
import { NetworkError } from '../errors/errors.js';
import { redactUrl } from './settings-schema.js';

/** A request for the fleet config. */
export interface DownloadRequest {
  url: string;
  /** ETag of the cached copy: sent as If-None-Match. */
  etag?: string | null;
  /** Connect / idle timeout (gitroot.timeout, in ms). */
  timeoutMs: number;
  /** Retries after the first attempt (gitroot.retries). */
  retries: number;
  /** First retry delay in ms, doubled each retry (default 1000). */
  backoffMs?: number;
  /** Largest accepted body (default 1 MiB). */
  maxBytes?: number;
  /** Proxy variables are read from here (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** The body and its validator, or "unchanged since the ETag we sent". */
export type DownloadResult =
  | { status: 'ok'; body: Buffer; etag: string | null }
  | { status: 'not-modified' };

/** Anything that can fetch a config: {@link downloadConfig}, or another transport. Throws NetworkError. */
export type ConfigDownloader = (req: DownloadRequest) => Promise<DownloadResult>;

/** Largest fleet config accepted by default. */
export const MAX_CONFIG_BYTES = 1 << 20;

/** Whether NO_PROXY (comma or space separated hosts, `.domain` suffixes, `*`, optional `:port`) exempts host:port. */
export function bypassesProxy(hostname: string, port: string, noProxy: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  for (const raw of noProxy.split(/[\s,]+/)) {
    if (raw === '') continue;
    if (raw === '*') return true;
    // host, host:port, [v6], [v6]:port, or a bare IPv6 address (more than one ':').
    const lower = raw.toLowerCase();
    const br = /^\[([^\]]+)\](?::(\d+))?$/.exec(lower);
    const hp = br ? [br[1]!, br[2]] : lower.split(':').length === 2 ? lower.split(':') : [lower, undefined];
    const entry = hp[0]!.replace(/^\*?\./, '.');
    if (hp[1] !== undefined && hp[1] !== port) continue;
    if (entry.startsWith('.') ? host.endsWith(entry) || host === entry.slice(1) : host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/** The proxy URL the environment names for `url`, or null (none, or NO_PROXY exempts it). */
export function proxyFor(url: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const u = new URL(url);
  const https = u.protocol === 'https:';
  const proxy = https ? (env.HTTPS_PROXY ?? env.https_proxy) : (env.http_proxy ?? env.HTTP_PROXY);
  if (!proxy) return null;
  const port = u.port || (https ? '443' : '80');
  if (bypassesProxy(u.hostname, port, env.NO_PROXY ?? env.no_proxy ?? '')) return null;
  return proxy;
}

function agentsFor(url: string, env: NodeJS.ProcessEnv): Agents | undefined {
  const proxy = proxyFor(url, env);
  if (proxy === null) return undefined;
  return url.startsWith('https:') ? { https: new HttpsProxyAgent({ proxy }) } : { http: new HttpProxyAgent({ proxy }) };
}

/** A short phrase for why a request failed. */
function describe(e: unknown, timeoutMs: number): string {
  if (e instanceof HTTPError) return `HTTP ${e.response.statusCode} ${e.response.statusMessage ?? ''}`.trim();
  if (e instanceof TimeoutError) return `timed out after ${timeoutMs / 1000} s waiting for ${e.event} (gitroot.timeout)`;
  if (e instanceof RequestError) {
    const cause = e.cause as NodeJS.ErrnoException | undefined;
    const code = e.code && e.code !== 'ERR_GOT_REQUEST_ERROR' ? e.code : cause?.code;
    return code ? `${code}: ${e.message}` : e.message;
  }
  return e instanceof Error ? e.message : String(e);
}

function looksLikeHtml(contentType: string | undefined, body: Buffer): boolean {
  if (contentType !== undefined && /^\s*text\/html\b/i.test(contentType)) return true;
  return /^\s*<(!doctype\s+html|html[\s>])/i.test(body.subarray(0, 256).toString('latin1'));
}

async function readFileUrl(req: DownloadRequest, shown: string): Promise<DownloadResult> {
  try {
    const body = await readFile(fileURLToPath(req.url));
    if (body.length > (req.maxBytes ?? MAX_CONFIG_BYTES)) throw new NetworkError(`${shown} is larger than ${req.maxBytes ?? MAX_CONFIG_BYTES} bytes; a config must be small`);
    return { status: 'ok', body, etag: null };
  } catch (e) {
    if (e instanceof NetworkError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new NetworkError(`could not read ${shown}: ${err.code ?? err.message}`, { cause: e, data: { url: shown } });
  }
}

/**
 * Downloads `req.url`. Resolves with the body (or not-modified after a 304); throws
 * NetworkError with a one-line cause for every failure, after the retries.
 */
export async function downloadConfig(req: DownloadRequest): Promise<DownloadResult> {
  const shown = redactUrl(req.url);
  if (req.url.startsWith('file:')) return readFileUrl(req, shown);
  const maxBytes = req.maxBytes ?? MAX_CONFIG_BYTES;
  const base = req.backoffMs ?? 1000;
  const t = req.timeoutMs;
  const request = got(req.url, {
    responseType: 'buffer',
    headers: { 'user-agent': 'gitroot', ...(req.etag ? { 'if-none-match': req.etag } : {}) },
    timeout: { lookup: t, connect: t, secureConnect: t, socket: t, send: t, response: t },
    retry: {
      limit: req.retries,
      methods: ['GET'],
      // Exponential backoff from `base`, capped at 30 s; got adds its own small noise.
      calculateDelay: ({ attemptCount, computedValue }) => (computedValue === 0 ? 0 : Math.min(base * 2 ** (attemptCount - 1), 30_000)),
    },
    agent: agentsFor(req.url, req.env ?? process.env),
    decompress: true,
  });
  request.on('downloadProgress', (p) => {
    if (p.transferred > maxBytes) request.cancel(`larger than ${maxBytes} bytes`);
  });
  let res;
  try {
    res = await request;
  } catch (e) {
    if ((e as Error)?.name === 'CancelError') throw new NetworkError(`${shown} is larger than ${maxBytes} bytes; a config must be small`, { cause: e, data: { url: shown } });
    throw new NetworkError(`could not download ${shown}: ${describe(e, t)}`, { cause: e, data: { url: shown } });
  }
  if (res.statusCode === 304) return { status: 'not-modified' };
  if (res.statusCode < 200 || res.statusCode > 299) {
    throw new NetworkError(`could not download ${shown}: HTTP ${res.statusCode}`, { data: { url: shown } });
  }
  if (looksLikeHtml(res.headers['content-type'], res.body)) {
    throw new NetworkError(`${shown} answered with an HTML page, not a config (a captive portal or a wrong URL?)`, { data: { url: shown } });
  }
  const etag = res.headers.etag;
  return { status: 'ok', body: res.body, etag: typeof etag === 'string' ? etag : null };
}
