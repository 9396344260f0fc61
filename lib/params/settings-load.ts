/**
 * Reads every settings source and resolves them (the I/O half of settings-resolve.ts):
 *
 * 1. local config files: `--config PATH` or /etc/gitroot (see {@link listConfigFiles});
 * 2. the kernel command line: /proc/cmdline or `--cmdline FILE`;
 * 3. both are validated before anything touches the network; then, if they name
 *    `gitroot.config=URL` without `noconfig`, the fleet config is downloaded, validated with
 *    the same grammar and cached atomically in `D/config-cache/` (`downloaded.conf` plus
 *    `downloaded.json` with URL, time, ETag and checksum).
 *
 * When the download fails the cached copy is used with a warning naming the cause; with no
 * cached copy either, the source is skipped with a warning (an offline kiosk must still
 * boot and fetch later). A download that is not a valid config is a ConfigError naming
 * `URL:line`, and the cache keeps the last good copy.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, NetworkError, UsageError } from '../errors/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../fsutil/atomic-write.js';
import { DEFAULT_CMDLINE_FILE, readCmdlineBytes } from './cmdline-file.js';
import { parseConfigText, tokenizeCmdline } from './settings-grammar.js';
import type { ConfigDownloader } from './settings-download.js';
import { type ConfigDownloadPlan, planConfigDownload, resolveSettings, type ResolvedSettings, type SettingsSource } from './settings-resolve.js';
import { redactUrl } from '../http/url-redact.js';
import { DEFAULT_CONFIG_PATH } from './config-path.js';
import type { WritableSource } from './settings-schema.js';

/** The cache of the downloaded config, relative to the gitroot home. */
export const CONFIG_CACHE_DIR = 'config-cache';
const CACHE_CONF = 'downloaded.conf';
const CACHE_META = 'downloaded.json';

/** Options of {@link loadSettings}. */
export interface LoadSettingsOptions {
  /** The gitroot home (must exist); the downloaded config is cached under it. */
  dir: string;
  /** Kernel command line file (default /proc/cmdline; a missing default counts as empty). */
  cmdlineFile?: string;
  /** Config file or directory (default /etc/gitroot, which may be missing). */
  configPath?: string;
  /** Do not download the fleet config; use its cached copy. */
  offline?: boolean;
  /** How to download it (default: downloadConfig of settings-download.ts, HTTP(S) and file:// URLs). */
  fetchConfig?: ConfigDownloader;
  /** Environment for proxy variables (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** First retry delay of the download in ms (default 1000). */
  backoffMs?: number;
}

/** What happened to one source. */
export interface SourceReport {
  kind: WritableSource;
  /** File path or (password-redacted) URL. */
  source: string;
  /** read: local file or command line read; missing: default path absent; downloaded,
   *  not-modified (304, cached copy current), cached (download failed or offline, cached
   *  copy used), unavailable (neither), skipped (noconfig). */
  status: 'read' | 'missing' | 'downloaded' | 'not-modified' | 'cached' | 'unavailable' | 'skipped';
}

/** The effective settings, their origins, warnings, and a report of every source. */
export interface LoadedSettings extends ResolvedSettings {
  sources: SourceReport[];
}

/** What downloaded.json records about downloaded.conf. */
export interface ConfigCacheMeta {
  url: string;
  fetchedAt: string;
  checkedAt: string;
  etag: string | null;
  sha256: string;
  bytes: number;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Decodes UTF-8 text or throws ConfigError naming `source`. */
function decodeText(data: Buffer, source: string): string {
  if (data.includes(0)) throw new ConfigError(`${source}: not a text file (contains NUL bytes); a config holds KEY=VALUE lines`, { data: { source } });
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    throw new ConfigError(`${source}: not UTF-8 text; save it as UTF-8`, { data: { source } });
  }
}

function readLocal(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(`cannot read ${what} ${path}: ${err.code ?? err.message}; fix the path or its permissions`, { cause: e, data: { source: path } });
  }
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ConfigError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code}; fix its permissions`, { cause: e, data: { source: path } });
  }
}

function confFilesIn(dir: string, first?: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new ConfigError(`cannot list ${dir}: ${(e as NodeJS.ErrnoException).code}; fix its permissions`, { cause: e, data: { source: dir } });
  }
  // Byte order, not locale order: the same on every machine.
  const conf = names.filter((n) => n.endsWith('.conf') && !n.startsWith('.')).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (first !== undefined && conf.includes(first)) return [join(dir, first), ...conf.filter((n) => n !== first).map((n) => join(dir, n))];
  return conf.map((n) => join(dir, n));
}

/**
 * The config files of `path`, lowest priority first. A file is itself. A directory gives
 * its `*.conf` files (`gitroot.conf` first, the others in byte order of their names), then
 * the `*.conf` files of its `conf.d/` in byte order; names starting with `.` are skipped.
 * A missing path gives no files when it is the default, and ConfigError when `explicit`.
 */
export function listConfigFiles(path: string, explicit: boolean): string[] {
  const st = statOrNull(path);
  if (st === null) {
    if (explicit)
      throw new ConfigError(`config path ${path} does not exist; fix --config (a file, or a directory of *.conf files)`, { data: { source: path } });
    return [];
  }
  if (!st.isDirectory()) return [path];
  return [...confFilesIn(path, 'gitroot.conf'), ...confFilesIn(join(path, 'conf.d'))];
}

/** Reads and parses the local config files (strict grammar). */
function readFiles(path: string, explicit: boolean): SettingsSource[] {
  return listConfigFiles(path, explicit).map((f) => ({
    kind: 'file' as const,
    name: f,
    tokens: parseConfigText(decodeText(readLocal(f, 'config file'), f), f),
  }));
}

/** Reads the cached copy of `url`, or null (none, another URL's, or inconsistent). */
function readCache(dir: string, url: string): { meta: ConfigCacheMeta; body: Buffer } | null {
  const cdir = join(dir, CONFIG_CACHE_DIR);
  let meta: ConfigCacheMeta;
  let body: Buffer;
  try {
    meta = JSON.parse(readFileSync(join(cdir, CACHE_META), 'utf8')) as ConfigCacheMeta;
    body = readFileSync(join(cdir, CACHE_CONF));
  } catch {
    return null;
  }
  // The two files are replaced one after the other: a crash in between leaves a pair whose
  // checksum does not match, which is as good as no cache.
  if (meta.url !== url || meta.sha256 !== sha256(body)) return null;
  return { meta, body };
}

/**
 * Replaces the cached copy (body, then metadata; see readCache for a crash in between).
 * Returns a warning instead of failing: a config that was downloaded and validated is
 * still good to use when the home is read-only or full.
 */
function writeCache(dir: string, meta: ConfigCacheMeta, body: Buffer | null): string | null {
  const cdir = join(dir, CONFIG_CACHE_DIR);
  try {
    if (body !== null) writeFileAtomic(join(cdir, CACHE_CONF), body);
    writeJsonAtomic(join(cdir, CACHE_META), meta);
    return null;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return `could not update the cached fleet config in ${cdir}: ${err.code ?? err.message}; an offline boot will not have this copy (free space or fix permissions)`;
  }
}

/** Parses and validates a downloaded or cached body as the download source. */
function downloadSource(body: Buffer, shown: string): SettingsSource {
  const src: SettingsSource = { kind: 'download', name: shown, tokens: parseConfigText(decodeText(body, shown), shown) };
  resolveSettings({ files: [], download: src }); // throws ConfigError for a bad line
  return src;
}

/** What loading reports besides the settings: each source's status, and warnings. */
interface LoadReport {
  sources: SourceReport[];
  warnings: string[];
}

/** Source 2: the kernel command line (a missing default file counts as no command line). */
function readCmdlineSource(opts: LoadSettingsOptions, report: LoadReport): SettingsSource | null {
  const cmdlineFile = opts.cmdlineFile ?? DEFAULT_CMDLINE_FILE;
  if (opts.cmdlineFile === undefined && statOrNull(cmdlineFile) === null) {
    report.sources.push({ kind: 'cmdline', source: cmdlineFile, status: 'missing' });
    return null;
  }
  const text = decodeText(readCmdlineBytes(cmdlineFile), cmdlineFile);
  const source: SettingsSource = { kind: 'cmdline', name: cmdlineFile, tokens: tokenizeCmdline(text, cmdlineFile) };
  report.sources.push({ kind: 'cmdline', source: cmdlineFile, status: 'read' });
  return source;
}

/**
 * The cached copy of the fleet config as found: `source` when it still validates; `problem`
 * when it does not (a copy this gitroot no longer accepts, written by an older version, is no
 * copy: it is neither used nor offered to the server as If-None-Match).
 */
interface CachedConfig {
  entry: { meta: ConfigCacheMeta; body: Buffer } | null;
  source: SettingsSource | null;
  problem: string | null;
}

function readCachedConfig(dir: string, url: string, shown: string): CachedConfig {
  const entry = readCache(dir, url);
  if (entry === null) return { entry, source: null, problem: null };
  try {
    return { entry, source: downloadSource(entry.body, shown), problem: null };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { entry, source: null, problem: e.message };
  }
}

/**
 * Falls back on the cached copy: reported `cached` (with `why`, when given, as a warning
 * naming its date), or, with no valid copy, `unavailable` (warned about when there is a why).
 */
function fromCache(cache: CachedConfig, shown: string, why: string | null, report: LoadReport): SettingsSource | null {
  if (cache.entry === null || cache.source === null) {
    report.sources.push({ kind: 'download', source: shown, status: 'unavailable' });
    if (cache.problem !== null) {
      report.warnings.push(
        `${why ?? `not downloading ${shown}`}; the cached copy is not valid any more (${cache.problem}), continuing without the fleet config`,
      );
    } else if (why !== null) {
      report.warnings.push(`${why}; no cached copy either, continuing without the fleet config`);
    }
    return null;
  }
  report.sources.push({ kind: 'download', source: shown, status: 'cached' });
  if (why !== null) report.warnings.push(`${why}; using the copy cached at ${cache.entry.meta.fetchedAt}`);
  return cache.source;
}

type DownloadPlan = Extract<ConfigDownloadPlan, { action: 'download' }>;

/**
 * Source 3, downloaded: a new copy is validated, then cached; a 304 keeps the cached copy
 * (its check time updated); a network failure falls back on the cached copy.
 */
async function downloadFleetConfig(
  opts: LoadSettingsOptions,
  plan: DownloadPlan,
  cache: CachedConfig,
  shown: string,
  report: LoadReport,
): Promise<SettingsSource | null> {
  // got is loaded only when a download happens: every other command starts faster.
  const fetchConfig = opts.fetchConfig ?? (await import('./settings-download.js')).downloadConfig;
  let res;
  try {
    res = await fetchConfig({
      url: plan.url,
      etag: cache.source !== null ? (cache.entry?.meta.etag ?? null) : null,
      timeoutMs: plan.timeoutSeconds * 1000,
      retries: plan.retries,
      backoffMs: opts.backoffMs,
      env: opts.env,
    });
  } catch (e) {
    if (!(e instanceof NetworkError)) throw e;
    return fromCache(cache, shown, e.message, report);
  }
  const now = new Date().toISOString();
  if (res.status === 'not-modified' && cache.entry !== null && cache.source !== null) {
    const source = fromCache(cache, shown, null, report);
    report.sources[report.sources.length - 1]!.status = 'not-modified';
    const w = writeCache(opts.dir, { ...cache.entry.meta, checkedAt: now }, null);
    if (w !== null) report.warnings.push(w);
    return source;
  }
  if (res.status === 'not-modified') {
    // A 304 to a request that carried no ETag: the server is confused.
    return fromCache(cache, shown, `${shown} answered 304 Not Modified without being asked`, report);
  }
  // Validate first: a bad download throws here and the cache keeps the last good copy.
  const source = downloadSource(res.body, shown);
  const w = writeCache(opts.dir, { url: plan.url, fetchedAt: now, checkedAt: now, etag: res.etag, sha256: sha256(res.body), bytes: res.body.length }, res.body);
  if (w !== null) report.warnings.push(w);
  report.sources.push({ kind: 'download', source: shown, status: 'downloaded' });
  return source;
}

/** Source 3: the fleet config `gitroot.config` names, downloaded or cached, or none (skipped, unavailable). */
async function fleetConfig(opts: LoadSettingsOptions, plan: ConfigDownloadPlan, report: LoadReport): Promise<SettingsSource | null> {
  if (plan.action === 'skip') {
    if (plan.reason === 'noconfig') report.sources.push({ kind: 'download', source: '(gitroot.config)', status: 'skipped' });
    return null;
  }
  const shown = redactUrl(plan.url);
  const cache = readCachedConfig(opts.dir, plan.url, shown);
  // noupgrade promises no network; --offline asks for none.
  if (opts.offline || plan.offline) return fromCache(cache, shown, opts.offline ? `offline: not downloading ${shown}` : null, report);
  return downloadFleetConfig(opts, plan, cache, shown, report);
}

/**
 * Loads the effective settings from every source (see the module comment). Throws
 * ConfigError for an unknown or malformed setting in any source, UsageError when `dir` is
 * not a directory; network trouble only produces warnings.
 */
export async function loadSettings(opts: LoadSettingsOptions): Promise<LoadedSettings> {
  const st = statOrNull(opts.dir);
  if (st === null || !st.isDirectory()) {
    throw new UsageError(`gitroot home ${opts.dir} is not a directory; pass the right --dir (gitroot fetch creates it)`, { data: { dir: opts.dir } });
  }
  const report: LoadReport = { sources: [], warnings: [] };

  // 1. Local config files.
  const configPath = opts.configPath ?? DEFAULT_CONFIG_PATH;
  const files = readFiles(configPath, opts.configPath !== undefined);
  if (files.length === 0) report.sources.push({ kind: 'file', source: configPath, status: 'missing' });
  for (const f of files) report.sources.push({ kind: 'file', source: f.name, status: 'read' });

  // 2. The kernel command line.
  const cmdline = readCmdlineSource(opts, report);

  // 3. Validates the local sources (throws before any network), then the fleet config.
  const download = await fleetConfig(opts, planConfigDownload({ files, cmdline }), report);

  const resolved = resolveSettings({ files, download, cmdline });
  return { ...resolved, warnings: [...report.warnings, ...resolved.warnings], sources: report.sources };
}
