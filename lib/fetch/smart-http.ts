/**
 * The smart-HTTP git client (gitprotocol-http(5), gitprotocol-v2(5)) on got: capability
 * discovery (`GET info/refs?service=git-upload-pack` with `Git-Protocol: version=2`), the v2
 * `ls-refs` and `fetch` commands, and the protocol v0/v1 fallback for servers that do not
 * speak v2 (refs from the advertisement, one stateless want/have/done request).
 *
 * Transport policy lives here: timeouts (connect, response headers, idle between bytes),
 * retries with exponential backoff for the idempotent steps only (discovery and ls-refs;
 * the pack request is never replayed), proxies from the environment (hpagent), redirects on
 * the discovery GET (later requests go to the redirected base, as git does), extra headers
 * for authentication, and every failure turned into a one-line NetworkError (unreachable,
 * timed out, garbage answer) or RemoteError (the server answered but lacks what was asked).
 *
 * The pack request yields the raw side-band packets of the packfile section as they arrive:
 * nothing here buffers a pack (lib/fetch/pack-receive.ts demultiplexes and stores it).
 * Dumb HTTP (static files) is detected and refused with a clear error.
 */
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import got, { type Request as GotRequest, type Response as GotResponse } from 'got';
import { proxyAgents, proxyForUrl } from '../http/http-proxy.js';
import { USER_AGENT } from '../http/gitroot-version.js';
import type { TlsFiles } from '../http/delivery-identity.js';
import { redactUrl } from '../http/url-redact.js';
import { OID_PATTERN, isSha } from '../store/object-id.js';

export { proxyForUrl } from '../http/http-proxy.js';
import { GitrootError, NetworkError, RemoteError, UsageError } from '../errors/errors.js';
import {
  type Pkt,
  PktLineError,
  PktLineParser,
  type PktRequestPart,
  SidebandDemuxer,
  type SidebandPiece,
  decodePktLines,
  encodePktLines,
  previewBytes,
  pktText,
} from './pkt-line.js';

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_RETRIES = 3;
export const DEFAULT_RETRY_DELAY_MS = 500;
const MAX_RETRY_DELAY_MS = 30_000;
/** Largest ref advertisement or ls-refs answer we read (they are held in memory). */
const MAX_SMALL_BODY = 32 * 1024 * 1024;

const ADVERTISEMENT_TYPE = 'application/x-git-upload-pack-advertisement';
const REQUEST_TYPE = 'application/x-git-upload-pack-request';
const RESULT_TYPE = 'application/x-git-upload-pack-result';
/** upload-pack's refusal of a want it does not have. */
const NOT_OUR_REF = new RegExp(`not our ref (${OID_PATTERN})`);
/** A line of the dumb protocol's info/refs (a server without smart HTTP): `<id>\t<name>`. */
const DUMB_REF_LINE = new RegExp(`^${OID_PATTERN}\t\\S+`);
/** A ref line of a v0/v1 advertisement: `<id> <name>`. */
const V0_REF_LINE = new RegExp(`^(${OID_PATTERN}) (\\S+)$`);

export interface SmartHttpOptions {
  /** Connect, response-header and idle-between-bytes timeout in ms (default 30 s). The whole
   *  download has no deadline: a big pack on a slow link may take as long as bytes keep coming. */
  timeoutMs?: number;
  /** Extra attempts for discovery and ls-refs after a transient failure (default 3). */
  retries?: number;
  /** First backoff delay in ms, doubled per attempt with +-25% jitter (default 500). */
  retryDelayMs?: number;
  /** Extra request headers, like git's http.extraHeader (e.g. an Authorization header). */
  headers?: Record<string, string>;
  /** A private CA and a client certificate (lib/http/delivery-identity.ts). */
  tls?: TlsFiles;
  /** Proxy URL; undefined: from https_proxy/http_proxy/all_proxy and no_proxy; null: none. */
  proxy?: string | null;
  /** Environment to read proxy settings from (default process.env). */
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Called with the size of every chunk of response body received (all requests). */
  onBytes?: (n: number) => void;
}

/** A ref as the server lists it. */
export interface RemoteRef {
  name: string;
  oid: string;
  /** For annotated tags: the object they peel to. */
  peeled?: string;
  /** For symbolic refs (HEAD): the ref they point to. */
  symref?: string;
}

/** An error worth another attempt (the server or the path to it may recover). */
function retriable(message: string, data: Record<string, unknown>, cause?: unknown): NetworkError {
  return new NetworkError(message, { data: { ...data, retriable: true }, cause });
}

function isRetriable(err: unknown): boolean {
  return err instanceof NetworkError && err.data.retriable === true;
}

const TLS_CODES = /^(CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_|ERR_TLS_|ERR_SSL_|HOSTNAME_MISMATCH)/;

/** Turns a got/socket failure into a one-line NetworkError naming host, step and fix. */
export function networkFailure(err: unknown, step: string, url: string, timeoutMs: number, answered = true): Error {
  if (err instanceof GitrootError) return err;
  const e = err as { code?: string; name?: string; event?: string; message?: string };
  const host = (() => {
    try {
      return new URL(url).host;
    } catch {
      return url;
    }
  })();
  const data = { url: redactUrl(url), step, errorCode: e.code };
  const secs = `${Math.round(timeoutMs / 100) / 10} s`;
  if (e.name === 'TimeoutError' || e.code === 'ETIMEDOUT') {
    if (e.event === 'connect' || e.event === 'lookup' || e.event === 'secureConnect') {
      return retriable(`cannot connect to ${host} within ${secs} (${step}): check the network and the remote URL`, data, err);
    }
    if (e.event === 'response' || e.event === 'send' || !answered) {
      return retriable(`${host} sent no answer within ${secs} (${step}): the server is stuck or overloaded; try again later or raise the timeout`, data, err);
    }
    return retriable(`${host} stopped sending for ${secs} during ${step}: check the network, try again later or raise the timeout`, data, err);
  }
  switch (e.code) {
    case 'ECONNREFUSED':
      return retriable(`connection refused by ${host} (${step}): is the git server running at ${redactUrl(url)}?`, data, err);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return retriable(`cannot resolve ${host} (${step}): check DNS, the network and the remote URL`, data, err);
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
    case 'ENETDOWN':
      return retriable(`no route to ${host} (${step}): the network is down; try again when it is up`, data, err);
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ERR_STREAM_PREMATURE_CLOSE':
    case 'ECONNABORTED':
      return retriable(`connection to ${host} dropped during ${step}: try again later`, data, err);
    case 'ERR_TOO_MANY_REDIRECTS':
      return new NetworkError(`too many redirects from ${redactUrl(url)} (${step}): fix the remote URL`, { data, cause: err });
    default:
      break;
  }
  if (e.code !== undefined && TLS_CODES.test(e.code)) {
    return new NetworkError(`TLS certificate of ${host} rejected (${e.code}): fix the server certificate or add its CA with NODE_EXTRA_CA_CERTS`, {
      data,
      cause: err,
    });
  }
  if (e.name === 'ReadError') return retriable(`connection to ${host} broke during ${step}: try again later`, data, err);
  return new NetworkError(`${step} from ${redactUrl(url)} failed: ${e.message ?? String(err)}`, { data, cause: err });
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? Object.assign(new Error('the fetch was aborted'), { name: 'AbortError' });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const done = () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

interface OpenResponse {
  response: GotResponse;
  stream: GotRequest;
}

function mediaType(res: GotResponse): string {
  return String(res.headers['content-type'] ?? '')
    .split(';')[0]
    .trim()
    .toLowerCase();
}

/** A smart-HTTP upload-pack service, after discovery. */
export class SmartHttpRemote {
  /** Protocol the server speaks: 2, or 0 for v0/v1 (stateless). */
  readonly protocol: 0 | 2;
  /** Capabilities (v2: `name` -> value or ''); v0: those of the first advertised ref. */
  readonly capabilities: ReadonlyMap<string, string>;
  /** The URL the service answers at (after redirects of the discovery request), no trailing slash. */
  readonly baseUrl: string;
  /** v0 only: every ref the server advertised. */
  private readonly advertised: RemoteRef[];
  private readonly agent: { http?: HttpAgent; https?: HttpsAgent } | undefined;

  private constructor(
    private readonly opts: SmartHttpOptions,
    init: {
      protocol: 0 | 2;
      capabilities: Map<string, string>;
      baseUrl: string;
      advertised: RemoteRef[];
      agent: { http?: HttpAgent; https?: HttpsAgent } | undefined;
    },
  ) {
    this.protocol = init.protocol;
    this.capabilities = init.capabilities;
    this.baseUrl = init.baseUrl;
    this.advertised = init.advertised;
    this.agent = init.agent;
  }

  private get timeoutMs(): number {
    return this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * Discovery: `GET <url>/info/refs?service=git-upload-pack` offering protocol v2. Retried.
   * Throws NetworkError for dumb HTTP, HTML pages and other non-git answers.
   */
  static async discover(remoteUrl: string, opts: SmartHttpOptions = {}): Promise<SmartHttpRemote> {
    let parsed: URL;
    try {
      parsed = new URL(remoteUrl);
    } catch {
      throw new UsageError(`remote '${redactUrl(remoteUrl)}' is not a URL: give http(s)://host/path/repo.git`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new UsageError(`remote '${redactUrl(remoteUrl)}' is not http(s): only smart HTTP(S) remotes are supported`);
    }
    const base = remoteUrl.replace(/\/+$/, '');
    const proxy = opts.proxy === undefined ? proxyForUrl(base, opts.env ?? process.env) : opts.proxy;
    const agent = proxy === null ? undefined : proxyAgents(proxy, true);
    const probe = new SmartHttpRemote(opts, { protocol: 2, capabilities: new Map(), baseUrl: base, advertised: [], agent });
    try {
      return await probe.retrying('ref discovery', () => probe.discoverOnce(base));
    } catch (err) {
      probe.close();
      throw err;
    }
  }

  /** Releases the proxy agent's sockets (the default agent needs nothing). */
  close(): void {
    this.agent?.http?.destroy();
    this.agent?.https?.destroy();
  }

  private async discoverOnce(base: string): Promise<SmartHttpRemote> {
    const url = `${base}/info/refs?service=git-upload-pack`;
    const step = 'ref discovery';
    const { response, stream } = await this.open('GET', url, step);
    const body = await this.readSmall(stream, url, step);
    const type = mediaType(response);
    this.checkStatus(response, url, step, body);
    const finalUrl = response.url || url;
    if (type !== ADVERTISEMENT_TYPE) throw notGit(finalUrl, type, body, step, true);
    const m = /^(.*)\/info\/refs(\?.*)?$/.exec(finalUrl);
    if (m === null) {
      throw new NetworkError(`${redactUrl(url)} redirected to ${redactUrl(finalUrl)}, which is not a git service URL: fix the remote URL`, {
        data: { url: redactUrl(url) },
      });
    }
    let pkts: Pkt[];
    try {
      pkts = decodePktLines(body);
    } catch (err) {
      throw notGit(finalUrl, type, body, step, false, err);
    }
    const lines = pkts.filter((p): p is { kind: 'data'; payload: Buffer } => p.kind === 'data').map((p) => p.payload);
    throwIfErr(lines, finalUrl);
    let i = 0;
    if (lines.length > 0 && pktText(lines[0]).startsWith('# service=')) i++;
    const init = { baseUrl: m[1], agent: this.agent };
    if (i < lines.length && pktText(lines[i]) === 'version 2') {
      const caps = new Map<string, string>();
      for (const l of lines.slice(i + 1)) {
        const t = pktText(l);
        const eq = t.indexOf('=');
        caps.set(eq < 0 ? t : t.slice(0, eq), eq < 0 ? '' : t.slice(eq + 1));
      }
      if (!caps.has('fetch') || !caps.has('ls-refs')) {
        throw new NetworkError(`${redactUrl(m[1])} speaks protocol v2 without ls-refs/fetch: not a usable git server`, { data: { url: redactUrl(m[1]) } });
      }
      checkObjectFormat(caps.get('object-format'), m[1]);
      return new SmartHttpRemote(this.opts, { ...init, protocol: 2, capabilities: caps, advertised: [] });
    }
    if (i < lines.length && pktText(lines[i]) === 'version 1') i++;
    const { refs, caps } = parseV0Advertisement(lines.slice(i), m[1]);
    checkObjectFormat(caps.get('object-format'), m[1]);
    if (!caps.has('side-band-64k') && !caps.has('side-band')) {
      throw new NetworkError(`${redactUrl(m[1])} offers no side-band: this server is too old to fetch from (upgrade git on the server)`, {
        data: { url: redactUrl(m[1]) },
      });
    }
    return new SmartHttpRemote(this.opts, { ...init, protocol: 0, capabilities: caps, advertised: refs });
  }

  /**
   * Refs whose names start with one of `prefixes` (v2: ls-refs, retried; v0: filtered from
   * the advertisement). Annotated tags carry `peeled`.
   */
  async listRefs(prefixes: readonly string[]): Promise<RemoteRef[]> {
    if (this.protocol === 0) {
      return this.advertised.filter((r) => prefixes.length === 0 || prefixes.some((p) => r.name.startsWith(p)));
    }
    const body = encodePktLines(['command=ls-refs', ...this.commonV2Args(), 'delim', 'peel', 'symrefs', ...prefixes.map((p) => `ref-prefix ${p}`), 'flush']);
    return this.retrying('ls-refs', async () => {
      const url = `${this.baseUrl}/git-upload-pack`;
      const { response, stream } = await this.open('POST', url, 'ls-refs', body);
      const raw = await this.readSmall(stream, url, 'ls-refs');
      this.checkStatus(response, url, 'ls-refs', raw);
      if (mediaType(response) !== RESULT_TYPE) throw notGit(url, mediaType(response), raw, 'ls-refs', false);
      let pkts: Pkt[];
      try {
        pkts = decodePktLines(raw);
      } catch (err) {
        throw notGit(url, mediaType(response), raw, 'ls-refs', false, err);
      }
      if (pkts.length === 0 || pkts[pkts.length - 1].kind !== 'flush') {
        throw retriable(`ls-refs answer from ${redactUrl(this.baseUrl)} was cut off: try again later`, { url: redactUrl(this.baseUrl) });
      }
      const lines = pkts.filter((p): p is { kind: 'data'; payload: Buffer } => p.kind === 'data').map((p) => p.payload);
      throwIfErr(lines, this.baseUrl);
      return lines.map((l) => parseRefLine(pktText(l), this.baseUrl));
    });
  }

  /**
   * Requests a pack of `wants` minus what `haves` reach, in one round (`done` sent with the
   * haves), as a thin pack with ofs-deltas and no progress text. Yields the side-band pieces
   * of each chunk received (views, not copies); returns after the closing flush. Throws
   * NetworkError if the answer is not git or ends early, RemoteError if the server refuses.
   * Never retried: a pack request that failed midway starts over at the next fetch.
   */
  async *fetchPack(wants: readonly string[], haves: readonly string[]): AsyncGenerator<SidebandPiece[], void, undefined> {
    const url = `${this.baseUrl}/git-upload-pack`;
    const step = 'pack download';
    let body: Buffer;
    if (this.protocol === 2) {
      body = encodePktLines([
        'command=fetch',
        ...this.commonV2Args(),
        'delim',
        'thin-pack',
        'ofs-delta',
        'no-progress',
        ...wants.map((w) => `want ${w}`),
        ...haves.map((h) => `have ${h}`),
        'done',
        'flush',
      ]);
    } else {
      const offered = ['side-band-64k', 'thin-pack', 'ofs-delta', 'no-progress'].filter((c) => this.capabilities.has(c));
      if (!offered.includes('side-band-64k')) offered.push('side-band');
      if (this.capabilities.has('agent')) offered.push(`agent=${USER_AGENT}`);
      body = encodePktLines([
        ...wants.map((w, i) => (i === 0 ? `want ${w} ${offered.join(' ')}` : `want ${w}`)),
        'flush',
        ...haves.map((h) => `have ${h}`),
        'done',
      ]);
    }
    const { response, stream } = await this.open('POST', url, step, body);
    try {
      if (response.statusCode !== 200) {
        const raw = await this.readSmall(stream, url, step).catch(() => Buffer.alloc(0));
        this.checkStatus(response, url, step, raw);
      }
      if (mediaType(response) !== RESULT_TYPE) {
        const raw = await this.readSmall(stream, url, step).catch(() => Buffer.alloc(0));
        throw notGit(url, mediaType(response), raw, step, false);
      }
      yield* this.packSection(stream);
    } catch (err) {
      if (this.opts.signal?.aborted) throw abortError(this.opts.signal);
      throw networkFailure(err, step, url, this.timeoutMs);
    } finally {
      if (!stream.destroyed) stream.destroy();
    }
  }

  /**
   * Parses the response framing up to the pack (v2 section headers, v0 ACK/NAK lines), then
   * demultiplexes the side-band stream, yielding the pieces of each chunk as they arrive.
   */
  private async *packSection(stream: GotRequest): AsyncGenerator<SidebandPiece[], void, undefined> {
    const parser = new PktLineParser();
    const demux = new SidebandDemuxer();
    // 'head': v2 section headers / v0 ACK-NAK lines; 'skip': inside a v2 section we do not use.
    let state: 'head' | 'skip' | 'pack' = 'head';
    let received = 0;
    /** Handles one framing packet; true when the pack starts after (v2) or with (v0) it. */
    const onHeadPacket = (p: Pkt): boolean => {
      if (p.kind !== 'data') {
        if (state === 'skip' && p.kind === 'delim') state = 'head';
        else if (p.kind === 'flush') {
          throw new NetworkError(`${redactUrl(this.baseUrl)} ended its answer without sending a pack: the server is broken or not git`, {
            data: { url: redactUrl(this.baseUrl) },
          });
        }
        return false;
      }
      const text = p.payload.length < 1000 ? pktText(p.payload) : '';
      if (text.startsWith('ERR ')) throw remoteRefusal(text.slice(4), this.baseUrl);
      if (state === 'skip') return false;
      if (this.protocol === 2) {
        if (text === 'packfile') return true;
        if (['acknowledgments', 'shallow-info', 'wanted-refs', 'packfile-uris'].includes(text)) state = 'skip';
        else throw unexpected(this.baseUrl, p.payload);
        return false;
      }
      if (text.startsWith('ACK ') || text === 'NAK' || text.startsWith('shallow ') || text.startsWith('unshallow ')) return false;
      if (p.payload[0] >= 1 && p.payload[0] <= 3) return true;
      throw unexpected(this.baseUrl, p.payload);
    };
    try {
      for await (const chunk of this.counted(stream)) {
        received += chunk.length;
        let data = chunk;
        const pieces: SidebandPiece[] = [];
        if (state !== 'pack') {
          const { packets, rest } = parser.pushUntil(chunk, onHeadPacket);
          if (rest === null) continue;
          state = 'pack';
          const last = packets[packets.length - 1];
          if (this.protocol === 0 && last.kind === 'data') {
            pieces.push({ band: last.payload[0], data: last.payload.subarray(1), packetEnd: true });
          }
          data = rest;
        }
        pieces.push(...demux.push(data));
        if (pieces.length > 0) yield pieces;
        if (demux.ended) return;
      }
    } catch (err) {
      if (err instanceof PktLineError) {
        throw new NetworkError(
          `${redactUrl(this.baseUrl)} sent a garbled answer to the pack request (${err.message}): the server or a proxy in between is broken`,
          { data: { url: redactUrl(this.baseUrl), preview: err.preview }, cause: err },
        );
      }
      throw err;
    }
    throw new NetworkError(
      `the connection to ${redactUrl(this.baseUrl)} ended before the pack was complete (${received} bytes received${state === 'pack' ? '' : ', no pack data'}): try again later`,
      { data: { url: redactUrl(this.baseUrl), bytes: received, retriable: true } },
    );
  }

  private commonV2Args(): PktRequestPart[] {
    const args: PktRequestPart[] = [];
    if (this.capabilities.has('agent')) args.push(`agent=${USER_AGENT}`);
    if (this.capabilities.has('object-format')) args.push('object-format=sha1');
    return args;
  }

  private async retrying<T>(step: string, attempt: () => Promise<T>): Promise<T> {
    const retries = Math.max(0, this.opts.retries ?? DEFAULT_RETRIES);
    const delay = this.opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (raw) {
        if (this.opts.signal?.aborted) throw abortError(this.opts.signal);
        const err = networkFailure(raw, step, this.baseUrl, this.timeoutMs);
        if (n >= retries || !isRetriable(err)) {
          if (n > 0 && err instanceof GitrootError) err.data.attempts = n + 1;
          throw err;
        }
        const backoff = Math.min(MAX_RETRY_DELAY_MS, delay * 2 ** n) * (0.75 + Math.random() * 0.5);
        await sleep(backoff, this.opts.signal);
      }
    }
  }

  /** Sends a request; resolves when the response headers are in. */
  private open(method: 'GET' | 'POST', url: string, step: string, body?: Buffer): Promise<OpenResponse> {
    if (this.opts.signal?.aborted) return Promise.reject(abortError(this.opts.signal));
    const t = this.timeoutMs;
    const headers: Record<string, string> = {
      'user-agent': USER_AGENT,
      'git-protocol': 'version=2',
      accept: method === 'GET' ? '*/*' : RESULT_TYPE,
      pragma: 'no-cache',
      ...(method === 'POST' ? { 'content-type': REQUEST_TYPE } : {}),
      ...this.opts.headers,
    };
    const stream = got.stream(url, {
      method,
      body,
      headers,
      agent: this.agent,
      https: this.opts.tls,
      timeout: { lookup: t, connect: t, secureConnect: t, send: t, response: t, socket: t },
      retry: { limit: 0 },
      throwHttpErrors: false,
      followRedirect: method === 'GET',
      maxRedirects: 10,
      decompress: true,
      signal: this.opts.signal,
    });
    return new Promise((resolve, reject) => {
      const onError = (err: unknown) => {
        stream.destroy();
        reject(this.opts.signal?.aborted ? abortError(this.opts.signal) : networkFailure(err, step, url, t, false));
      };
      stream.once('error', onError);
      stream.once('response', (response: GotResponse) => {
        stream.off('error', onError);
        // Later errors surface through the body iteration; keep one listener so none is unhandled.
        stream.on('error', () => {});
        resolve({ response, stream });
      });
    });
  }

  private async *counted(stream: GotRequest): AsyncGenerator<Buffer, void, undefined> {
    for await (const chunk of chunksOf(stream)) {
      this.opts.onBytes?.(chunk.length);
      yield chunk;
    }
  }

  /** Reads a whole (small) body; refuses more than MAX_SMALL_BODY. */
  private async readSmall(stream: GotRequest, url: string, step: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of this.counted(stream)) {
        total += chunk.length;
        if (total > MAX_SMALL_BODY) {
          stream.destroy();
          throw new NetworkError(`${redactUrl(url)} sent more than ${MAX_SMALL_BODY >> 20} MiB for ${step}: not a git server answer`, {
            data: { url: redactUrl(url) },
          });
        }
        chunks.push(chunk);
      }
    } catch (err) {
      if (this.opts.signal?.aborted) throw abortError(this.opts.signal);
      throw networkFailure(err, step, url, this.timeoutMs);
    }
    return Buffer.concat(chunks);
  }

  private checkStatus(res: GotResponse, url: string, step: string, body: Buffer): void {
    const s = res.statusCode;
    if (s === 200) return;
    const where = redactUrl(url.replace(/\/(info\/refs|git-upload-pack)(\?.*)?$/, ''));
    const data = { url: redactUrl(url), status: s, step };
    if (s === 401 || s === 403) {
      throw new NetworkError(`${where} refused access (HTTP ${s}) during ${step}: give credentials (an Authorization header or user:password in the URL)`, {
        data,
      });
    }
    if (s === 404 || s === 410) {
      throw new RemoteError(`no git repository at ${where} (HTTP ${s}): check the remote URL`, { data });
    }
    if (s >= 300 && s < 400) {
      throw new NetworkError(`${where} redirected the ${step} request (HTTP ${s}): point the remote at the final URL`, { data });
    }
    if (s >= 500 || s === 429 || s === 408) {
      const hint = previewBytes(body.subarray(0, 60)).trim();
      throw retriable(`${where} answered HTTP ${s} to ${step}${hint ? ` ("${hint}")` : ''}: the server has a problem; try again later`, data);
    }
    throw new NetworkError(`${where} answered HTTP ${s} to ${step}: not a git smart-HTTP server, or a proxy in between refuses`, { data });
  }
}

/**
 * The chunks of a readable stream as they arrive, with backpressure (the stream is paused
 * while a few chunks wait). Unlike the stream's own async iterator, it never concatenates
 * buffered chunks into a new buffer, which for a pack means one copy less of every byte.
 * A stream that closes without 'end' simply stops: callers check the protocol framing.
 */
async function* chunksOf(stream: Readable): AsyncGenerator<Buffer, void, undefined> {
  const queue: Buffer[] = [];
  let finished = false;
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const onData = (c: Buffer) => {
    queue.push(c);
    if (queue.length >= 8) stream.pause();
    notify();
  };
  const onEnd = () => {
    finished = true;
    notify();
  };
  const onError = (e: unknown) => {
    failure = e;
    notify();
  };
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('close', onEnd);
  stream.on('error', onError);
  try {
    for (;;) {
      const next = queue.shift();
      if (next !== undefined) {
        if (queue.length < 2 && stream.isPaused()) stream.resume();
        yield next;
        continue;
      }
      if (failure !== null) throw failure;
      if (finished) return;
      if (stream.isPaused()) stream.resume();
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.off('close', onEnd);
    stream.off('error', onError);
  }
}

function checkObjectFormat(format: string | undefined, url: string): void {
  if (format !== undefined && format !== '' && format !== 'sha1') {
    throw new RemoteError(`${redactUrl(url)} holds a ${format} repository: gitroot supports SHA-1 repositories only`, {
      data: { url: redactUrl(url), format },
    });
  }
}

/** The server's own refusal (ERR packet or band 3): a RemoteError with its text. */
export function remoteRefusal(text: string, url: string): RemoteError {
  const msg = text.trim().replace(/\s+/g, ' ');
  const m = NOT_OUR_REF.exec(msg);
  if (m) {
    return new RemoteError(`commit ${m[1]} is unknown to ${redactUrl(url)} (server said: ${msg}): check the SHA, or that it was pushed there`, {
      data: { url: redactUrl(url), sha: m[1], serverMessage: msg },
    });
  }
  return new RemoteError(`${redactUrl(url)} refused the request: ${msg}`, { data: { url: redactUrl(url), serverMessage: msg } });
}

function throwIfErr(lines: Buffer[], url: string): void {
  for (const l of lines) {
    const t = l.length < 2000 ? pktText(l) : '';
    if (t.startsWith('ERR ')) throw remoteRefusal(t.slice(4), url);
  }
}

function unexpected(url: string, payload: Buffer): NetworkError {
  return new NetworkError(`${redactUrl(url)} sent an unexpected line in its pack answer ("${previewBytes(payload)}"): the server is broken or not git`, {
    data: { url: redactUrl(url), preview: previewBytes(payload) },
  });
}

/** The answer is not smart-HTTP git: say what it looks like. */
function notGit(url: string, type: string, body: Buffer, step: string, discovery: boolean, cause?: unknown): NetworkError {
  const where = redactUrl(url.replace(/\/(info\/refs|git-upload-pack)(\?.*)?$/, ''));
  const head = body.subarray(0, 512).toString('latin1').trimStart().toLowerCase();
  const data = { url: redactUrl(url), contentType: type, step, preview: previewBytes(body) };
  if (type === 'text/html' || head.startsWith('<!doctype html') || head.startsWith('<html')) {
    return new NetworkError(
      `${where} answered ${step} with an HTML page, not git: a captive portal, proxy or web server is in the way; check the remote URL and the network`,
      { data, cause },
    );
  }
  if (discovery && (body.length === 0 || DUMB_REF_LINE.test(head) || type === 'text/plain' || type === 'application/octet-stream')) {
    return new NetworkError(`${where} is a dumb HTTP server (static files): not supported; serve the repository with git http-backend (smart HTTP)`, {
      data,
      cause,
    });
  }
  return new NetworkError(`${where} answered ${step} with ${type || 'no content type'}, not git data ("${previewBytes(body)}"): check the remote URL`, {
    data,
    cause,
  });
}

/** Refs and capabilities of a v0/v1 advertisement (after the service header). */
function parseV0Advertisement(lines: Buffer[], url: string): { refs: RemoteRef[]; caps: Map<string, string> } {
  const caps = new Map<string, string>();
  const refs: RemoteRef[] = [];
  const byName = new Map<string, RemoteRef>();
  lines.forEach((raw, i) => {
    let line = raw;
    if (i === 0) {
      const nul = raw.indexOf(0);
      if (nul >= 0) {
        for (const c of pktText(raw.subarray(nul + 1))
          .split(' ')
          .filter((x) => x !== '')) {
          const eq = c.indexOf('=');
          caps.set(eq < 0 ? c : c.slice(0, eq), eq < 0 ? '' : c.slice(eq + 1));
        }
        line = raw.subarray(0, nul);
      }
    }
    const m = V0_REF_LINE.exec(pktText(line));
    if (m === null) throw unexpected(url, raw);
    const [, oid, name] = m;
    if (name === 'capabilities^{}') return;
    if (name.endsWith('^{}')) {
      const r = byName.get(name.slice(0, -3));
      if (r !== undefined) r.peeled = oid;
      return;
    }
    const r: RemoteRef = { name, oid };
    byName.set(name, r);
    refs.push(r);
  });
  for (const c of caps.keys()) {
    if (c === 'symref') {
      const [from, to] = (caps.get(c) ?? '').split(':');
      const r = byName.get(from);
      if (r !== undefined && to) r.symref = to;
    }
  }
  return { refs, caps };
}

/** One v2 ls-refs line: `<oid> <name>[ symref-target:<ref>][ peeled:<oid>]`. */
function parseRefLine(line: string, url: string): RemoteRef {
  const parts = line.split(' ');
  if (parts.length < 2 || !isSha(parts[0])) {
    throw new NetworkError(`${redactUrl(url)} sent a malformed ls-refs line ("${line.slice(0, 80)}"): the server is broken`, { data: { url: redactUrl(url) } });
  }
  const ref: RemoteRef = { oid: parts[0], name: parts[1] };
  for (const attr of parts.slice(2)) {
    if (attr.startsWith('symref-target:')) ref.symref = attr.slice('symref-target:'.length);
    else if (attr.startsWith('peeled:')) ref.peeled = attr.slice('peeled:'.length);
  }
  return ref;
}
