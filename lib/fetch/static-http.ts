/**
 * Static files over HTTP(S) or from a directory (`file://`), for channels (docs/channel.md):
 *
 *   getSmall          one conditional GET (If-None-Match with the ETag kept from last time):
 *                     the manifest poll, where a 304 costs a few hundred bytes
 *   downloadResumable a bundle into a file on the medium that survives the process: with a
 *                     partial file it asks for the rest (`Range: bytes=N-`, `If-Range: <ETag>`);
 *                     a 206 is appended, a 200 restarts the file (never appended), and the
 *                     finished file must have the manifest's size and SHA-256
 *
 * A connection that drops mid-file is resumed at once in the same process (an attempt that
 * made progress does not count against `retries`); a killed process or a power cut leaves the
 * partial file and its sidecar (`FILE.json`: URL, ETag, Last-Modified, expected size and
 * SHA-256), and the next fetch resumes from it. `rateLimit` caps the rate (bytes/s) by pausing
 * between chunks, which lets TCP's window slow the sender.
 */
import { closeSync, createReadStream, fdatasyncSync, ftruncateSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import got, { type Response as GotResponse } from 'got';
import { NetworkError, ObjectCorruptError, RemoteError } from '../errors/errors.js';
import { writeJsonAtomic } from '../fsutil/atomic-write.js';
import type { TlsFiles } from '../http/delivery-identity.js';
import { proxyAgents, proxyForUrl } from '../http/http-proxy.js';
import { redactUrl } from '../http/url-redact.js';
import { DEFAULT_RETRIES, DEFAULT_RETRY_DELAY_MS, DEFAULT_TIMEOUT_MS, networkFailure } from './smart-http.js';

export interface StaticHttpOptions {
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
  /** Headers every request carries (the delivery identity). */
  headers?: Record<string, string>;
  tls?: TlsFiles;
  /** Proxy URL; undefined: from the environment; null: none. */
  proxy?: string | null;
  signal?: AbortSignal;
  /** Called with the size of every chunk of response body received. */
  onBytes?: (n: number) => void;
}

/** Bytes between fdatasync calls while downloading: what a power cut can cost again. */
export const SYNC_EVERY_BYTES = 1024 * 1024;

/** Milliseconds to wait so that `bytes` in `elapsedMs` stays under `limit` bytes/s (pure). */
export function rateDelayMs(bytes: number, elapsedMs: number, limit: number | null): number {
  if (limit === null || limit <= 0) return 0;
  return Math.max(0, (bytes * 1000) / limit - elapsedMs);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function isFileUrl(url: string): boolean {
  return url.startsWith('file:');
}

function request(url: string, opts: StaticHttpOptions, headers: Record<string, string>) {
  const t = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const proxy = opts.proxy === undefined ? proxyForUrl(url) : opts.proxy;
  return got.stream(url, {
    headers: { ...opts.headers, ...headers },
    agent: proxy === null ? undefined : proxyAgents(proxy),
    https: opts.tls,
    timeout: { lookup: t, connect: t, secureConnect: t, send: t, response: t, socket: t },
    retry: { limit: 0 },
    throwHttpErrors: false,
    decompress: false,
    signal: opts.signal,
  });
}

type Opened = { response: GotResponse; stream: ReturnType<typeof request> };

function open(url: string, opts: StaticHttpOptions, headers: Record<string, string>, step: string): Promise<Opened> {
  const stream = request(url, opts, headers);
  return new Promise((resolve, reject) => {
    stream.once('error', (err) => {
      stream.destroy();
      reject(networkFailure(err, step, url, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, false));
    });
    stream.once('response', (response: GotResponse) => {
      stream.removeAllListeners('error');
      stream.on('error', () => {});
      resolve({ response, stream });
    });
  });
}

function statusError(url: string, code: number, step: string): NetworkError {
  const retriable = code >= 500 || code === 429 || code === 408;
  return new NetworkError(
    `${redactUrl(url)} answered HTTP ${code} (${step}): ${code === 401 || code === 403 ? "check the client certificate (gitroot.client-cert) and the server's access rules" : 'try again later; if it persists, check the server'}`,
    { data: { url: redactUrl(url), status: code, step, retriable } },
  );
}

export type SmallGet = { status: 'ok'; body: Buffer; etag: string | null } | { status: 'not-modified' } | { status: 'missing'; code: number };

/** A small file (at most `maxBytes`), conditionally on `etag`. NetworkError on other failures. */
export async function getSmall(url: string, req: { etag: string | null; maxBytes: number }, opts: StaticHttpOptions = {}): Promise<SmallGet> {
  if (isFileUrl(url)) {
    try {
      const body = readFileSync(fileURLToPath(url));
      if (body.length > req.maxBytes) throw new NetworkError(`${url} is bigger than ${req.maxBytes} bytes: not a channel file`);
      return { status: 'ok', body, etag: null };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return { status: 'missing', code: 404 };
      if (e instanceof NetworkError) throw e;
      throw new NetworkError(`cannot read ${url} (${code ?? e}): check the directory`, { cause: e });
    }
  }
  const step = 'channel manifest';
  const { response, stream } = await open(url, opts, req.etag === null ? {} : { 'if-none-match': req.etag }, step);
  const code = response.statusCode;
  if (code === 304) {
    stream.destroy();
    return { status: 'not-modified' };
  }
  if (code === 404 || code === 410) {
    stream.destroy();
    return { status: 'missing', code };
  }
  if (code !== 200) {
    stream.destroy();
    throw statusError(url, code, step);
  }
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of stream) {
      const b = chunk as Buffer;
      n += b.length;
      opts.onBytes?.(b.length);
      if (n > req.maxBytes) {
        stream.destroy();
        return { status: 'missing', code: 413 };
      }
      parts.push(b);
    }
  } catch (e) {
    throw networkFailure(e, step, url, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }
  const etag = response.headers.etag;
  return { status: 'ok', body: Buffer.concat(parts), etag: typeof etag === 'string' ? etag : null };
}

/** The sidecar of a partial download. */
interface PartialMeta {
  url: string;
  etag: string | null;
  lastModified: string | null;
  size: number;
  sha256: string;
}

/** What a download did, for reports: bytes received, where it resumed, what a 200 made it throw away. */
export interface DownloadReport {
  /** Response body bytes received by this call. */
  received: number;
  /** Bytes already on the medium when it started (a resume). */
  resumedFrom: number;
  /** Bytes thrown away because a range request got a whole file (200) or the partial was damaged. */
  discarded: number;
  /** Requests made. */
  requests: number;
  /** Connections that broke and were resumed in this call. */
  interruptions: number;
}

function readMeta(file: string): PartialMeta | null {
  try {
    return JSON.parse(readFileSync(`${file}.json`, 'utf8')) as PartialMeta;
  } catch {
    return null;
  }
}

/** Removes a partial download and its sidecar. */
export function removePartial(file: string): void {
  rmSync(file, { force: true });
  rmSync(`${file}.json`, { force: true });
}

async function hashPrefix(file: string, length: number): Promise<Hash> {
  const h = createHash('sha256');
  if (length > 0) for await (const chunk of createReadStream(file, { start: 0, end: length - 1 })) h.update(chunk as Buffer);
  return h;
}

/** One file being written: its descriptor, length, running hash and the next fdatasync. */
class PartialFile {
  private nextSync: number;
  constructor(
    readonly fd: number,
    public length: number,
    public hash: Hash,
  ) {
    this.nextSync = length + SYNC_EVERY_BYTES;
  }
  append(b: Buffer): void {
    for (let off = 0; off < b.length;) off += writeSync(this.fd, b, off, b.length - off, this.length + off);
    this.length += b.length;
    this.hash.update(b);
    if (this.length >= this.nextSync) {
      fdatasyncSync(this.fd);
      this.nextSync = this.length + SYNC_EVERY_BYTES;
    }
  }
  restart(): void {
    ftruncateSync(this.fd, 0);
    this.length = 0;
    this.hash = createHash('sha256');
    this.nextSync = SYNC_EVERY_BYTES;
  }
}

/**
 * Downloads `url` into `file` (resuming a partial one), then checks size and SHA-256.
 * NetworkError when it cannot finish (the partial stays for next time), RemoteError for a
 * 404 (the publisher removed it), ObjectCorruptError when the bytes do not match (the partial
 * is removed). `rateLimit` in bytes/s or null.
 */
export async function downloadResumable(
  url: string,
  file: string,
  want: { size: number; sha256: string },
  opts: StaticHttpOptions & { rateLimit?: number | null } = {},
): Promise<DownloadReport> {
  const report: DownloadReport = { received: 0, resumedFrom: 0, discarded: 0, requests: 0, interruptions: 0 };
  let meta = readMeta(file);
  let length = 0;
  try {
    length = statSync(file).size;
  } catch {
    /* none yet */
  }
  if (meta === null || meta.sha256 !== want.sha256 || meta.size !== want.size || length > want.size) {
    removePartial(file);
    length = 0;
    meta = null;
  }
  report.resumedFrom = length;
  const fd = openSync(file, length === 0 ? 'w' : 'r+', 0o644);
  const part = new PartialFile(fd, length, await hashPrefix(file, length));
  const started = Date.now();
  let receivedForRate = 0;
  try {
    if (isFileUrl(url)) {
      await copyFrom(fileURLToPath(url), part, want.size, report, opts);
    } else {
      let failures = 0;
      const retries = opts.retries ?? DEFAULT_RETRIES;
      while (part.length < want.size) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        const before = part.length;
        try {
          meta = await fetchRange(
            url,
            file,
            part,
            want,
            meta,
            report,
            opts,
            () => {
              return rateDelayMs(receivedForRate, Date.now() - started, opts.rateLimit ?? null);
            },
            (n) => {
              receivedForRate += n;
            },
          );
        } catch (e) {
          if (!(e instanceof NetworkError) || e.data.retriable !== true) throw e;
          if (part.length > before) {
            failures = 0;
            report.interruptions++;
            continue;
          }
          if (++failures > retries) throw e;
          await sleep(Math.min(30_000, (opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS) * 2 ** (failures - 1)));
        }
      }
    }
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (part.length !== want.size || part.hash.digest('hex') !== want.sha256) {
    removePartial(file);
    throw new ObjectCorruptError(
      `${redactUrl(url)} does not match the channel manifest (${part.length} bytes, expected ${want.size} with SHA-256 ${want.sha256.slice(0, 16)}...): the server's copy is damaged or was replaced; the download was removed and the next fetch starts it again`,
      { data: { url: redactUrl(url), size: part.length, expectedSize: want.size, why: 'bundle-mismatch' } },
    );
  }
  return report;
}

/** One request for the rest of the file; appends what arrives. Returns the sidecar in force. */
async function fetchRange(
  url: string,
  file: string,
  part: PartialFile,
  want: { size: number; sha256: string },
  meta: PartialMeta | null,
  report: DownloadReport,
  opts: StaticHttpOptions,
  delay: () => number,
  counted: (n: number) => void,
): Promise<PartialMeta | null> {
  const step = 'bundle download';
  const headers: Record<string, string> = {};
  const offset = part.length;
  if (offset > 0) {
    headers.range = `bytes=${offset}-`;
    const validator = meta !== null && meta.url === url ? (meta.etag !== null && !meta.etag.startsWith('W/') ? meta.etag : meta.lastModified) : null;
    if (validator !== null) headers['if-range'] = validator;
  }
  report.requests++;
  const { response, stream } = await open(url, opts, headers, step);
  const code = response.statusCode;
  if (code === 404 || code === 410) {
    stream.destroy();
    throw new RemoteError(`${redactUrl(url)} is gone (HTTP ${code}): the publisher removed it; the next fetch reads a newer manifest`, {
      data: { url: redactUrl(url), status: code },
    });
  }
  if (code === 416 && offset === want.size) {
    stream.destroy();
    return meta;
  }
  if (code === 200 && offset > 0) {
    // The server sent the whole file (it changed, or ignores ranges): start over, never append.
    report.discarded += offset;
    part.restart();
  } else if (code === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(response.headers['content-range'] ?? ''));
    if (m === null || Number(m[1]) !== offset) {
      stream.destroy();
      report.discarded += offset;
      part.restart();
      throw new NetworkError(
        `${redactUrl(url)} answered a range request with the wrong range (${response.headers['content-range'] ?? 'none'}): starting the file over`,
        { data: { url: redactUrl(url), retriable: true } },
      );
    }
  } else if (code !== 200) {
    stream.destroy();
    throw statusError(url, code, step);
  }
  const etag = typeof response.headers.etag === 'string' ? response.headers.etag : null;
  const lastModified = typeof response.headers['last-modified'] === 'string' ? response.headers['last-modified'] : null;
  const fresh: PartialMeta = { url, etag, lastModified, size: want.size, sha256: want.sha256 };
  if (meta === null || meta.etag !== etag || meta.url !== url || meta.lastModified !== lastModified) writeJsonAtomic(`${file}.json`, fresh);
  try {
    for await (const chunk of stream) {
      const b = chunk as Buffer;
      report.received += b.length;
      opts.onBytes?.(b.length);
      counted(b.length);
      if (part.length + b.length > want.size) {
        stream.destroy();
        report.discarded += part.length;
        part.restart();
        throw new ObjectCorruptError(
          `${redactUrl(url)} is bigger than the ${want.size} bytes the channel manifest says: the server's copy was replaced; the next fetch starts it again`,
          { data: { url: redactUrl(url), why: 'bundle-mismatch' } },
        );
      }
      part.append(b);
      const wait = delay();
      if (wait > 0) await sleep(wait);
    }
  } catch (e) {
    if (e instanceof ObjectCorruptError) throw e;
    throw networkFailure(e, step, url, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }
  if (part.length < want.size) {
    throw new NetworkError(`${redactUrl(url)} ended after ${part.length} of ${want.size} bytes: resuming`, { data: { url: redactUrl(url), retriable: true } });
  }
  return fresh;
}

/** A file:// bundle: copied from the offset already on the medium. */
async function copyFrom(source: string, part: PartialFile, size: number, report: DownloadReport, opts: StaticHttpOptions): Promise<void> {
  let st;
  try {
    st = statSync(source);
  } catch (e) {
    throw new RemoteError(`${source} is missing (${(e as NodeJS.ErrnoException).code}): the channel directory is incomplete; publish it again`, { cause: e });
  }
  if (st.size !== size) {
    throw new ObjectCorruptError(`${source} is ${st.size} bytes, the channel manifest says ${size}: the directory is damaged or incomplete; copy it again`, {
      data: { why: 'bundle-mismatch' },
    });
  }
  report.requests++;
  if (part.length >= size) return;
  for await (const chunk of createReadStream(source, { start: part.length })) {
    const b = chunk as Buffer;
    report.received += b.length;
    opts.onBytes?.(b.length);
    part.append(b);
  }
}
