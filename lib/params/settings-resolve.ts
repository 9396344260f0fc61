/**
 * Settings precedence, as pure functions over already-read tokens:
 *
 *   built-in defaults < local config files (in the order given) < the downloaded fleet
 *   config < the kernel command line
 *
 * A later source overrides an earlier one key by key, flags included (`noupgrade=0` on the
 * command line undoes `noupgrade` in a file), and every effective value remembers where it
 * came from. Local files and the downloaded config are strict (every line must be a known
 * key the source may set); the command line ignores parameters that are not gitroot's,
 * except unknown `gitroot.*` keys, which are errors.
 *
 * Whether to download the fleet config is decided here too ({@link planConfigDownload}),
 * from the sources that rank below it and the command line: the URL and `noconfig` can
 * never come from the downloaded config itself.
 */
import { ConfigError } from '../errors/errors.js';
import { formatOrigin, type Origin, type SettingToken } from './settings-grammar.js';
import {
  allowedIn,
  defaultSettings,
  isSettingKey,
  parseSettingValue,
  SETTING_KEYS,
  suggestKey,
  type SettingKey,
  type Settings,
  type SettingValue,
  type SourceKind,
  type WritableSource,
} from './settings-schema.js';

/** The tokens of one source, tagged with its kind. */
export interface SettingsSource {
  kind: WritableSource;
  /** Its name in messages: a file path, a URL, '/proc/cmdline'. */
  name: string;
  tokens: SettingToken[];
}

/** Where an effective value came from. */
export interface SettingOrigin extends Origin {
  kind: SourceKind;
}

/** The sources to combine, each in its own slot so their order cannot be mixed up. */
export interface SettingsInputs {
  /** Local config files, lowest priority first. */
  files: SettingsSource[];
  /** The downloaded (or cached) fleet config, if any. */
  download?: SettingsSource | null;
  /** The kernel command line, if any. */
  cmdline?: SettingsSource | null;
}

/** The effective settings, where each came from, and warnings for a human. */
export interface ResolvedSettings {
  settings: Settings;
  origins: Record<SettingKey, SettingOrigin>;
  warnings: string[];
}

/** What to do about the fleet config. */
export type ConfigDownloadPlan =
  | { action: 'download'; url: string; origin: SettingOrigin; timeoutSeconds: number; retries: number; offline: boolean }
  | { action: 'skip'; reason: 'unset' | 'noconfig'; origin: SettingOrigin };

const SOURCE_WORDS: Record<WritableSource, string> = {
  file: 'a local config file',
  download: 'the downloaded config',
  cmdline: 'the kernel command line',
};

function where(token: SettingToken, kind: WritableSource): string {
  // On the command line there are no lines: name the token instead.
  return kind === 'cmdline' ? `${formatOrigin(token.origin)}: '${token.text}'` : formatOrigin(token.origin);
}

function allowedList(key: SettingKey): string {
  return (['file', 'download', 'cmdline'] as const)
    .filter((s) => allowedIn(key, s))
    .map((s) => SOURCE_WORDS[s])
    .join(' or ');
}

/**
 * Checks one token of a source: returns its key and typed value, null when the command line
 * token is none of gitroot's business, or throws ConfigError naming `source:line` (the
 * token, for the command line). Pushes a warning for a likely typo on the command line.
 */
export function checkToken(token: SettingToken, kind: WritableSource, warnings: string[]): { key: SettingKey; value: SettingValue } | null {
  const at = where(token, kind);
  const data = { source: token.origin.source, line: token.origin.line, token: token.text, key: token.key };
  if (!isSettingKey(token.key)) {
    const guess = suggestKey(token.key);
    const hint = guess ? ` (did you mean ${guess}?)` : '';
    if (kind === 'cmdline' && !token.key.startsWith('gitroot.')) {
      // Someone else's kernel parameter (quiet, root=, console=...): not ours to judge.
      if (guess) warnings.push(`${at}: not a gitroot setting, ignored${hint}`);
      return null;
    }
    const fix = kind === 'cmdline' ? 'fix or remove it from the boot entry' : 'fix or remove the line';
    throw new ConfigError(`${at}: unknown setting '${token.key}'${hint}; ${fix} (docs/config.md lists them all)`, { data });
  }
  const key = token.key;
  if (!allowedIn(key, kind)) {
    throw new ConfigError(`${at}: ${key} cannot be set by ${SOURCE_WORDS[kind]}, only by ${allowedList(key)}; remove it here`, { data });
  }
  const parsed = parseSettingValue(key, token.value);
  if (!parsed.ok) throw new ConfigError(`${at}: ${key} ${parsed.problem}`, { data });
  return { key, value: parsed.value };
}

/**
 * Combines sources by precedence (defaults < files < download < cmdline). Throws
 * ConfigError for the first unknown or malformed setting of any source.
 */
export function resolveSettings(inputs: SettingsInputs): ResolvedSettings {
  const values: Record<string, SettingValue> = defaultSettings();
  const origins = {} as Record<SettingKey, SettingOrigin>;
  for (const k of SETTING_KEYS) origins[k] = { kind: 'default', source: 'default' };
  const warnings: string[] = [];
  const ordered = [...inputs.files, ...(inputs.download ? [inputs.download] : []), ...(inputs.cmdline ? [inputs.cmdline] : [])];
  for (const src of ordered) {
    for (const token of src.tokens) {
      const r = checkToken(token, src.kind, warnings);
      if (r === null) continue;
      values[r.key] = r.value;
      origins[r.key] = { kind: src.kind, ...token.origin };
    }
  }
  return { settings: values as Settings, origins, warnings };
}

/**
 * Decides whether the fleet config is to be downloaded, from the sources below it and the
 * command line (`download` in `inputs` is ignored). Skipped when `gitroot.config` is unset
 * or `noconfig` is on; when `noupgrade` is on, only its cached copy is read (no network).
 * Network knobs for the download (timeout, retries) come from the same sources.
 */
export function planConfigDownload(inputs: SettingsInputs): ConfigDownloadPlan {
  const pre = resolveSettings({ files: inputs.files, cmdline: inputs.cmdline ?? null });
  const url = pre.settings['gitroot.config'];
  if (url === null) return { action: 'skip', reason: 'unset', origin: pre.origins['gitroot.config'] };
  if (pre.settings.noconfig) return { action: 'skip', reason: 'noconfig', origin: pre.origins.noconfig };
  return {
    action: 'download',
    url,
    origin: pre.origins['gitroot.config'],
    timeoutSeconds: pre.settings['gitroot.timeout'],
    retries: pre.settings['gitroot.retries'],
    offline: pre.settings.noupgrade,
  };
}
