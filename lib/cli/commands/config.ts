/** `gitroot config`: print the effective settings and where each came from. */
import type { Command } from 'commander';
import { formatOrigin, quoteValue } from '../../params/settings-grammar.js';
import { loadSettings, type LoadedSettings } from '../../params/settings-load.js';
import { redactUrl } from '../../http/url-redact.js';
import { SETTING_KEYS, SETTINGS_SCHEMA, type SettingValue } from '../../params/settings-schema.js';
import { note, printJson, printLine } from '../output.js';
import { type SharedOpts, addCmdlineOption, addConfigOption, addDirOption, addJsonOption } from '../cli-options.js';

interface ConfigOpts extends Omit<SharedOpts, 'wait'> {
  showOrigin?: boolean;
  offline?: boolean;
}

/** Values as shown to people and scripts: URLs without passwords. */
function shownValue(key: (typeof SETTING_KEYS)[number], value: SettingValue): SettingValue {
  return SETTINGS_SCHEMA[key].type === 'url' && typeof value === 'string' ? redactUrl(value) : value;
}

/** The human listing: `key=value` per key in table order, unset keys as comments, so the output reads back as a config file. */
export function formatSettingsText(loaded: LoadedSettings, showOrigin: boolean): string[] {
  return SETTING_KEYS.map((key) => {
    const v = shownValue(key, loaded.settings[key]);
    const line = v === null ? `# ${key} is not set` : `${key}=${typeof v === 'string' ? quoteValue(v) : String(v)}`;
    return showOrigin ? `${formatOrigin(loaded.origins[key])}\t${line}` : line;
  });
}

/** The --json document: settings, origins, warnings and the sources read. */
export function settingsJson(loaded: LoadedSettings): Record<string, unknown> {
  const settings: Record<string, SettingValue> = {};
  for (const key of SETTING_KEYS) settings[key] = shownValue(key, loaded.settings[key]);
  return { settings, origins: loaded.origins, warnings: loaded.warnings, sources: loaded.sources };
}

/** Registers `gitroot config` on the program. */
export function registerConfig(program: Command): void {
  const cmd = program
    .command('config')
    .description('print the effective settings (defaults < config files < downloaded fleet config < kernel command line) and where each came from');
  addDirOption(cmd, 'the downloaded config is cached in DIR/config-cache');
  addCmdlineOption(cmd);
  addConfigOption(cmd);
  cmd
    .option('--show-origin', 'print where each value came from (default, file:line, URL:line, the command line file)')
    .option('--offline', 'do not download the fleet config; use its cached copy');
  addJsonOption(cmd, '{settings, origins, warnings, sources}').action(async (opts: ConfigOpts) => {
    const loaded = await loadSettings({
      dir: opts.dir,
      cmdlineFile: opts.cmdline,
      configPath: opts.config,
      offline: opts.offline,
    });
    if (opts.json) {
      printJson(settingsJson(loaded));
      return;
    }
    for (const w of loaded.warnings) note(`warning: ${w}`);
    for (const line of formatSettingsText(loaded, opts.showOrigin === true)) printLine(line);
  });
}
