/**
 * Generates the settings table of docs/config.md from settings-schema.ts, so the document
 * cannot drift from the code (test/render-docs.test.ts fails when it does).
 *
 *   node dist/lib/params/render-docs.js                     prints the table
 *   node dist/lib/params/render-docs.js --write docs/config.md   replaces it in the document
 *   node dist/lib/params/render-docs.js --check docs/config.md   exit 1 when out of date
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { writeFileAtomic } from '../fsutil/atomic-write.js';
import { SETTING_KEYS, SETTINGS_SCHEMA, type SettingSpec, type WritableSource } from './settings-schema.js';

/** Marks the start of the generated table in docs/config.md. */
export const TABLE_BEGIN =
  '<!-- settings table: generated from lib/params/settings-schema.ts by `node dist/lib/params/render-docs.js --write docs/config.md`; do not edit by hand -->';
/** Marks its end. */
export const TABLE_END = '<!-- end of generated settings table -->';

const WHERE: Record<WritableSource, string> = { file: 'files', download: 'fleet', cmdline: 'cmdline' };

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function typeText(spec: SettingSpec): string {
  switch (spec.type) {
    case 'int':
      return `int ${spec.min}..${spec.max}`;
    case 'enum':
      return (spec.values ?? []).map((v) => `\`${v}\``).join(' | ');
    case 'url':
      return `URL (${(spec.schemes ?? []).join(', ')})`;
    case 'sha40':
      return 'SHA (40 hex)';
    default:
      return spec.type;
  }
}

function defaultText(spec: SettingSpec): string {
  return spec.default === null ? '(not set)' : `\`${String(spec.default)}\``;
}

/** The Markdown table of every setting: key, type, default, meaning, example, where it may be set, who uses it. */
export function renderSettingsTable(): string {
  const rows = ['| Key | Type | Default | Meaning | Example | Set in | Used by |', '|---|---|---|---|---|---|---|'];
  for (const key of SETTING_KEYS) {
    const spec: SettingSpec = SETTINGS_SCHEMA[key];
    const where = (spec.allowedIn ?? (['file', 'download', 'cmdline'] as const)).map((s) => WHERE[s]).join(', ');
    rows.push(
      `| \`${key}\` | ${cell(typeText(spec))} | ${cell(defaultText(spec))} | ${cell(spec.meaning)} | \`${cell(spec.example)}\` | ${where} | ${cell(spec.usedBy)} |`,
    );
  }
  return rows.join('\n') + '\n';
}

/** `doc` with the text between the markers replaced by `table`; throws when a marker is missing. */
export function spliceSettingsTable(doc: string, table: string): string {
  const a = doc.indexOf(TABLE_BEGIN);
  const b = doc.indexOf(TABLE_END);
  if (a < 0 || b < a) throw new Error('docs/config.md lacks the generated-table markers');
  return `${doc.slice(0, a + TABLE_BEGIN.length)}\n${table}${doc.slice(b)}`;
}

/** Command-line entry: print, --write or --check. Returns the exit status. */
function main(argv: string[]): number {
  const [mode, path] = argv;
  if (mode === undefined) {
    process.stdout.write(renderSettingsTable());
    return 0;
  }
  if ((mode !== '--write' && mode !== '--check') || path === undefined) {
    process.stderr.write('usage: render-docs.js [--write|--check docs/config.md]\n');
    return 2;
  }
  const doc = readFileSync(path, 'utf8');
  const fresh = spliceSettingsTable(doc, renderSettingsTable());
  if (mode === '--check') {
    if (fresh === doc) return 0;
    process.stderr.write(`${path}: settings table is out of date; run node dist/lib/params/render-docs.js --write ${path}\n`);
    return 1;
  }
  if (fresh !== doc) writeFileAtomic(path, fresh);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
