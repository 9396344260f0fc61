/**
 * Downloads the fleet config (`gitroot.config=URL`): HTTP(S) with got (timeouts, retries
 * with exponential backoff, a proxy from the environment (lib/http/http-proxy.ts), conditional
 * requests with If-None-Match), or a `file://` URL read from disk.
 *
 * Every way of not getting a config (refused, timed out, HTTP error, too big, an HTML page
 * from a captive portal) is a NetworkError, which the loader answers with the cached copy.
 * Whether the body is a valid config is not decided here.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import got, { HTTPError, RequestError, TimeoutError, type Agents } from 'got';
import { proxyAgents, proxyForUrl } from '../http/http-proxy.js';
import { NetworkError } from '../errors/errors.js';
import { USER_AGENT } from '../http/gitroot-version.js';
import { redactUrl } from '../http/url-redact.js';

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
export type DownloadResult = { status: 'ok'; body: Buffer; etag: string | null } | { status: 'not-modified' };

/** Anything that can fetch a config: {@link downloadConfig}, or another transport. Throws NetworkError. */
export type ConfigDownloader = (req: DownloadRequest) => Promise<DownloadResult>;

/** Largest fleet config accepted by default. */
export const MAX_CONFIG_BYTES = 1 << 20;

function agentsFor(url: string, env: NodeJS.ProcessEnv): Agents | undefined {
  const proxy = proxyForUrl(url, env);
  return proxy === null ? undefined : proxyAgents(proxy);
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
    if (body.length > (req.maxBytes ?? MAX_CONFIG_BYTES))
      throw new NetworkError(`${shown} is larger than ${req.maxBytes ?? MAX_CONFIG_BYTES} bytes; a config must be small`);
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
    headers: { 'user-agent': USER_AGENT, ...(req.etag ? { 'if-none-match': req.etag } : {}) },
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
    if ((e as Error)?.name === 'CancelError')
      throw new NetworkError(`${shown} is larger than ${maxBytes} bytes; a config must be small`, { cause: e, data: { url: shown } });
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
