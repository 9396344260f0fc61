/**
 * docs/config.md stays in sync with the schema: its generated table is exactly what
 * render-docs produces, every key is in it, and `render-docs.js --check` catches drift.
 */
// needs: none
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderSettingsTable, spliceSettingsTable, TABLE_BEGIN, TABLE_END } from '../lib/params/render-docs.js';
import { SETTING_KEYS, SETTINGS_SCHEMA } from '../lib/params/settings-schema.js';
import { PROJECT_ROOT } from './helpers/cli.js';

const DOC = join(PROJECT_ROOT, 'docs', 'config.md');
const SCRIPT = join(PROJECT_ROOT, 'dist', 'lib', 'params', 'render-docs.js');

t.test('the table in docs/config.md is the one the schema renders', async (t) => {
  const doc = readFileSync(DOC, 'utf8');
  t.equal(spliceSettingsTable(doc, renderSettingsTable()), doc, 'run: node dist/lib/params/render-docs.js --write docs/config.md');
});

t.test('every key has a row with its type, default and example', async (t) => {
  const table = renderSettingsTable();
  const rows = table.trimEnd().split('\n');
  t.equal(rows.length, SETTING_KEYS.length + 2);
  SETTING_KEYS.forEach((key, i) => {
    const row = rows[i + 2]!;
    t.ok(row.startsWith(`| \`${key}\` |`), key);
    t.ok(row.includes(`\`${SETTINGS_SCHEMA[key].example}\``), `${key} example`);
    t.equal(row.split(/(?<!\\)\|/).length, 9, `${key}: seven cells`);
  });
  t.match(table, /\| `gitroot\.tries` \| int 1\.\.100 \| `3` \|/);
  t.match(table, /\| `gitroot\.bootloader` \| `bls` \\\| `extlinux` \\\| `none` \| `none` \|/);
  t.match(table, /\| `update-revision` \| SHA \(40 hex\) \| \(not set\) \|/);
});

t.test('spliceSettingsTable needs both markers', async (t) => {
  t.throws(() => spliceSettingsTable('no markers', 'x'), /markers/);
  t.equal(spliceSettingsTable(`a\n${TABLE_BEGIN}\nold\n${TABLE_END}\nb`, 'new\n'), `a\n${TABLE_BEGIN}\nnew\n${TABLE_END}\nb`);
});

t.test('render-docs.js --check and --write', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'gitroot-docs-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const copy = join(tmp, 'config.md');
  writeFileSync(copy, readFileSync(DOC));
  t.equal(spawnSync(process.execPath, [SCRIPT, '--check', copy]).status, 0, 'in sync');
  writeFileSync(copy, readFileSync(DOC, 'utf8').replace('| `gitroot.tries` | int 1..100 | `3` |', '| `gitroot.tries` | int 1..100 | `4` |'));
  const drift = spawnSync(process.execPath, [SCRIPT, '--check', copy], { encoding: 'utf8' });
  t.equal(drift.status, 1, 'drift detected');
  t.match(drift.stderr, /settings table is out of date; run node dist\/lib\/params\/render-docs\.js --write/);
  t.equal(spawnSync(process.execPath, [SCRIPT, '--write', copy]).status, 0);
  t.equal(readFileSync(copy, 'utf8'), readFileSync(DOC, 'utf8'), '--write repairs it');
  const printed = spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8' });
  t.equal(printed.stdout, renderSettingsTable());
});
