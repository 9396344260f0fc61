/**
 * The test selection (scripts/test-select.mjs) and test/README.md agree with the marker line of
 * every test file: each file says what it needs in a word the script knows, the fast set is
 * exactly the files that need nothing, and the README lists each file once, under the most
 * demanding thing it needs.
 */
// needs: none
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './helpers/cli.js';

const ORDER = ['qemu', 'debian', 'fuse', 'root', 'server', 'git', 'none'];
const testDir = path.join(PROJECT_ROOT, 'test');
const files = fs
  .readdirSync(testDir)
  .filter((f) => f.endsWith('.test.ts'))
  .sort();
const needs = new Map(
  files.map((f) => [f.replace(/\.test\.ts$/, ''), /^\/\/ needs: (.+)$/m.exec(fs.readFileSync(path.join(testDir, f), 'utf8'))?.[1].split(' ') ?? []]),
);

function select(...args: string[]): { status: number | null; files: string[]; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'scripts', 'test-select.mjs'), ...args], { encoding: 'utf8' });
  return { status: r.status, files: r.stdout.split('\n').filter(Boolean), stderr: r.stderr };
}

t.test('every test file has a marker the script accepts; the fast set is the files that need nothing', async (t) => {
  const r = select();
  t.equal(r.status, 0, r.stderr);
  t.same(
    r.files,
    [...needs].filter(([, w]) => w.join(' ') === 'none').map(([n]) => `test/${n}.test.ts`),
  );
  const local = select('--allow', 'git');
  t.same(
    local.files,
    [...needs].filter(([, w]) => w.every((x) => x === 'none' || x === 'git')).map(([n]) => `test/${n}.test.ts`),
  );
  t.equal(select('--allow', 'network').status, 2, 'an unknown need is refused');
});

t.test('test/README.md lists every test file under the most demanding thing it needs', async (t) => {
  const readme = fs.readFileSync(path.join(testDir, 'README.md'), 'utf8');
  const listed = new Map<string, string>();
  for (const m of readme.matchAll(/^- `(\w+)`, [^\n]*?: (`.+)\.$/gm)) {
    for (const name of m[2].split(', ').map((s) => s.replace(/`/g, ''))) {
      t.notOk(listed.has(name), `${name} listed once`);
      listed.set(name, m[1]);
    }
  }
  for (const [name, words] of needs) {
    const top = ORDER.find((o) => words.includes(o));
    t.equal(listed.get(name), top, `${name} (needs: ${words.join(' ')}) is listed in test/README.md under ${top}`);
  }
  for (const name of listed.keys()) t.ok(needs.has(name), `${name} is a test file`);
});
