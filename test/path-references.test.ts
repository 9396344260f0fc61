/**
 * Every project path the documentation and the code comments name exists: `lib/...`,
 * `docs/...`, `test/...`, `scripts/...` and the other top-level folders, in README.md,
 * docs/*.md, test/README.md and the comments of every source, script and unit file; and
 * every bare module name (`boot-select.ts`) is the name of a file the project has. Globs
 * (`test/hostile-*.test.ts`) must match at least one file; placeholders (`<sha>`) stand for
 * any name. CHANGELOG.md is history and may name files that are gone.
 */
// needs: none
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './helpers/cli.js';

const TOP = ['lib', 'docs', 'test', 'scripts', 'fixtures', 'bench', 'boot', 'native', 'initramfs-hooks', 'bin', 'packaging', 'examples'];
const SOURCE_DIRS = TOP.filter((d) => d !== 'docs');
const CODE = /\.(ts|mjs|js|c|h)$/;
const HASH_COMMENTED = /(\.(sh|service|timer|in|conf|gyp)|^[^.]+)$/;

/**
 * Paths with a project folder's name that are not the project's: inside an OS tree or an
 * initramfs (`boot/vmlinuz-<version>`: the project's boot/ holds only units and templates;
 * initramfs-tools' `scripts/gitroot`, `lib/modules`), and the Linux source file the
 * command-line splitter follows.
 */
const NOT_OURS = [/^boot\/(?!.*\.(service|timer|in)$)/, /^scripts\/(gitroot|local-top|init-top|functions)\b/, /^lib\/modules\b/, /^lib\/cmdline\.c$/];

/** ../shared (fixtures every developer and CI run has beside the project), when it is there. */
const SHARED = path.resolve(PROJECT_ROOT, '..', 'shared');
const SHARED_FILES = fs.existsSync(SHARED) ? walkAbs(SHARED).map((f) => path.relative(SHARED, f)) : null;

function walkAbs(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walkAbs(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(path.join(PROJECT_ROOT, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) walk(rel, out);
    else out.push(rel);
  }
  return out;
}

const FILES = new Set(TOP.flatMap((d) => walk(d)));
const BASENAMES = new Set([...FILES, ...(SHARED_FILES ?? [])].map((f) => path.posix.basename(f)));
const DIRS = new Set(
  [...FILES].flatMap((f) =>
    f
      .split('/')
      .slice(0, -1)
      .map((_, i, a) => a.slice(0, i + 1).join('/')),
  ),
);

/**
 * The text of `rel` that is prose: whole Markdown files, comments of code and scripts, and
 * the string literals of the product's code (its messages name files too).
 */
function prose(rel: string): string {
  const text = fs.readFileSync(path.join(PROJECT_ROOT, rel), 'utf8');
  if (rel.endsWith('.md')) return text;
  const strings = rel.startsWith('lib/') || rel.startsWith('bin/') ? /'[^'\n]*'|"[^"\n]*"|`[^`]*`/g : /$^/g;
  if (CODE.test(rel)) return [...text.matchAll(/\/\*[\s\S]*?\*\/|(?<![:'"`])\/\/[^\n]*/g), ...text.matchAll(strings)].map((m) => m[0]).join('\n');
  if (HASH_COMMENTED.test(path.posix.basename(rel))) return [...text.matchAll(/(?:^|\s)#[^\n]*/g)].map((m) => m[0]).join('\n');
  return '';
}

/** Whether a path (maybe with a glob `*` or a placeholder `<x>`, `{a,b}`, `XXXXXX`, `N`) names something the project has. */
function exists(ref: string): boolean {
  const p = ref.replace(/\/$/, '');
  if (FILES.has(p) || DIRS.has(p)) return true;
  if (!/[*<{]|X{3,}/.test(p)) return false;
  const re = new RegExp(
    `^${p
      .split(/(\*|<[^>]*>|\{[^}]*\}|X{3,})/)
      .map((part, i) => (i % 2 ? '[^/]+' : part.replace(/[.+?^$()|[\]\\]/g, '\\$&')))
      .join('')}$`,
  );
  return [...FILES, ...DIRS].some((f) => re.test(f));
}

const sources = ['README.md', 'test/README.md', ...walk('docs'), ...[...FILES].filter((f) => SOURCE_DIRS.some((d) => f.startsWith(`${d}/`)))].filter(
  (f) => fs.existsSync(path.join(PROJECT_ROOT, f)) && !f.startsWith('bench/results/') && !f.startsWith('native/build'),
);

t.test('every project path named in the docs and comments exists', async (t) => {
  const pathRe = new RegExp(`(?<![\\w./$~-])((?:${TOP.join('|')})/[\\w.*<>{},/-]*[\\w*>}/])`, 'g');
  let checked = 0;
  for (const file of sources) {
    for (const m of prose(file).matchAll(pathRe)) {
      const ref = m[1].replace(/[.,]+$/, '');
      if (NOT_OURS.some((re) => re.test(ref)) || ref.startsWith('bench/results/')) continue;
      checked++;
      if (!exists(ref)) t.fail(`${file} names ${ref}, which does not exist`);
    }
  }
  t.ok(checked > 100, `${checked} paths checked`);
});

t.test(
  'every path into ../shared named in the docs and comments exists there',
  { skip: SHARED_FILES === null ? '../shared is not there' : false },
  async (t) => {
    for (const file of sources) {
      for (const m of prose(file).matchAll(/(?<![\w.-])(?:\.\.\/)?shared\/([\w./-]*\w)/g)) {
        if (!SHARED_FILES!.some((f) => f === m[1] || f.startsWith(`${m[1]}/`))) t.fail(`${file} names shared/${m[1]}, which ../shared does not have`);
      }
    }
  },
);

t.test('every bare module name in the docs and comments is a file the project has', async (t) => {
  let checked = 0;
  for (const file of sources) {
    for (const m of prose(file).matchAll(/(?<![\w./-])([a-z][\w-]*\.(?:ts|sh|mjs|c))\b/g)) {
      checked++;
      if (!BASENAMES.has(m[1])) t.fail(`${file} names ${m[1]}, which no file of the project is called`);
    }
  }
  t.ok(checked > 50, `${checked} names checked`);
});
