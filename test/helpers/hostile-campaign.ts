/**
 * Counts of the hostile-input campaign (test/hostile-*.test.ts): how many hostile inputs each
 * category tried, how many faults (kill -9, server faults) it injected and how many checks
 * failed. Every count comes from a check that really ran: `check()` is a tap assertion that
 * also counts, so a failing check is both a failed test and a counted failure.
 *
 * Each test file writes one JSON file per category to CAMPAIGN_DIR (default
 * /tmp/gitroot-hostile-campaign, or $GITROOT_CAMPAIGN_DIR). `render` turns those files into
 * the table of docs/hostile-input.md (between its campaign markers):
 *
 *   node dist/test/helpers/hostile-campaign.js render docs/hostile-input.md
 */
import type { Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the per-category count files go. */
export const CAMPAIGN_DIR = process.env.GITROOT_CAMPAIGN_DIR ?? path.join(os.tmpdir(), 'gitroot-hostile-campaign');

/** What one category recorded. */
export interface CategoryCounts {
  category: string;
  /** Test file that ran it. */
  source: string;
  /** Hostile inputs tried (trees, manifests, config values, symlinks, ...). */
  inputs: number;
  /** Faults injected (kill -9 at a random moment, a misbehaving server answer). */
  faults: number;
  /** Checks that ran. */
  checks: number;
  /** Checks that failed (wrong bytes, unbootable state, crash, unclear error, ...). */
  failures: number;
  /** The first failures, one line each. */
  failureLines: string[];
  /** Free-form measurements (peak RSS, durations), rendered as `key=value`. */
  measured: Record<string, string | number>;
  /** When the run finished (ISO time). */
  finishedAt: string;
}

type Assert = Pick<Test, 'ok'>;

/** One category's counters. Call save() at the end of the test (teardown does it). */
export class Campaign {
  readonly counts: CategoryCounts;

  constructor(category: string, source: string) {
    this.counts = {
      category,
      source,
      inputs: 0,
      faults: 0,
      checks: 0,
      failures: 0,
      failureLines: [],
      measured: {},
      finishedAt: '',
    };
  }

  /** Counts `n` hostile inputs tried. */
  input(n = 1): void {
    this.counts.inputs += n;
  }

  /** Counts `n` injected faults. */
  fault(n = 1): void {
    this.counts.faults += n;
  }

  /**
   * A tap assertion that is also counted; returns `ok`. With `todo` (a known defect, named in
   * docs/hostile-input.md) a failure still counts here but is a tap TODO, so the suite stays
   * green until the defect is fixed.
   */
  check(t: Assert, ok: boolean, message: string, todo?: string): boolean {
    this.counts.checks += 1;
    if (!ok) {
      this.counts.failures += 1;
      if (this.counts.failureLines.length < 20) this.counts.failureLines.push(todo === undefined ? message : `${message} [known: ${todo}]`);
    }
    if (todo === undefined) t.ok(ok, message);
    else t.ok(ok, message, { todo });
    return ok;
  }

  /** Records a measurement for the report. */
  measure(key: string, value: string | number): void {
    this.counts.measured[key] = value;
  }

  /** Writes the counts to CAMPAIGN_DIR/<category>.json (atomically). */
  save(): void {
    this.counts.finishedAt = new Date().toISOString();
    fs.mkdirSync(CAMPAIGN_DIR, { recursive: true });
    const file = path.join(CAMPAIGN_DIR, `${this.counts.category}.json`);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(this.counts, null, 2) + '\n');
    fs.renameSync(`${file}.tmp`, file);
  }
}

/** Reads every category file in `dir`, sorted by category. */
export function readCampaign(dir = CAMPAIGN_DIR): CategoryCounts[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as CategoryCounts);
}

/** The markdown table (and totals) of a campaign run. */
export function renderTable(rows: CategoryCounts[]): string {
  const lines = ['| category | test | inputs tried | faults injected | checks | failures | measured |', '|---|---|---:|---:|---:|---:|---|'];
  const total = { inputs: 0, faults: 0, checks: 0, failures: 0 };
  for (const r of rows) {
    const measured = Object.entries(r.measured)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ');
    lines.push(`| ${r.category} | \`${r.source}\` | ${r.inputs} | ${r.faults} | ${r.checks} | ${r.failures} | ${measured} |`);
    total.inputs += r.inputs;
    total.faults += r.faults;
    total.checks += r.checks;
    total.failures += r.failures;
  }
  lines.push(`| **total** | | **${total.inputs}** | **${total.faults}** | **${total.checks}** | **${total.failures}** | |`);
  const failed = rows.flatMap((r) => r.failureLines.map((l) => `- ${r.category}: ${l}`));
  const last =
    rows
      .map((r) => r.finishedAt)
      .sort()
      .at(-1) ?? 'never';
  return [
    `Run finished ${last}; ${rows.length} categories.`,
    '',
    ...lines,
    '',
    failed.length === 0 ? 'No check failed.' : `Failed checks:\n\n${failed.join('\n')}`,
  ].join('\n');
}

const BEGIN = '<!-- campaign:begin (generated by: node dist/test/helpers/hostile-campaign.js render docs/hostile-input.md) -->';
const END = '<!-- campaign:end -->';

/** Replaces the generated part of `doc` (between the markers) with the table of `rows`. */
export function renderInto(doc: string, rows: CategoryCounts[]): string {
  const b = doc.indexOf(BEGIN);
  const e = doc.indexOf(END);
  if (b < 0 || e < b) throw new Error(`the document has no campaign markers: add\n${BEGIN}\n${END}`);
  return `${doc.slice(0, b + BEGIN.length)}\n${renderTable(rows)}\n${doc.slice(e)}`;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [cmd, out] = process.argv.slice(2);
  if (cmd !== 'render' || out === undefined) {
    process.stderr.write('usage: node dist/test/helpers/hostile-campaign.js render docs/hostile-input.md\n');
    process.exit(2);
  }
  const rows = readCampaign();
  if (rows.length === 0) {
    process.stderr.write(`no campaign counts in ${CAMPAIGN_DIR}: run the hostile tests first (npx tap test/hostile-*.test.ts)\n`);
    process.exit(3);
  }
  fs.writeFileSync(out, renderInto(fs.readFileSync(out, 'utf8'), rows));
  process.stdout.write(renderTable(rows) + '\n');
}
