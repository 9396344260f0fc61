/**
 * A store opened with a relative path keeps reading after every absolute path to its
 * repository is gone, as long as its working directory leads there. That is the boot
 * daemon's situation after the switch to the new root: it runs with its cwd in the gitroot
 * home, and the initramfs's absolute paths (/run/gitroot/medium/...) no longer resolve from
 * its old root. Simulated here by renaming the directories above the repository while a
 * real process holds the store open, then reading an object it has not read before.
 */
// needs: git
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveGitDir } from '../lib/store/git-dir.js';
import { PROJECT_ROOT } from './helpers/cli.js';

const STORE_JS = join(PROJECT_ROOT, 'dist', 'lib', 'store', 'object-store.js');

function git(args: string[], cwd: string, input?: string): string {
  return execFileSync('git', args, { cwd, input, encoding: 'utf8' }).trim();
}

t.test('resolveGitDir keeps a relative repository relative, an absolute one absolute', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'gitroot-rel-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  git(['init', '-q', '--bare', 'repo.git'], base);
  const cwd = process.cwd();
  process.chdir(base);
  try {
    t.same(resolveGitDir('repo.git'), { gitDir: 'repo.git', commonDir: 'repo.git', objectsDir: join('repo.git', 'objects') });
    t.same(resolveGitDir('./repo.git/'), { gitDir: 'repo.git', commonDir: 'repo.git', objectsDir: join('repo.git', 'objects') });
    t.equal(resolveGitDir(join(base, 'repo.git')).objectsDir, join(base, 'repo.git', 'objects'));
  } finally {
    process.chdir(cwd);
  }
});

t.test('a store opened relatively reads a loose object after the absolute path to it is gone', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'gitroot-rel-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const home = join(base, 'medium', 'gitroot');
  mkdirSync(home, { recursive: true });
  git(['init', '-q', '--bare', 'repo.git'], home);
  const packed = git(['hash-object', '-w', '--stdin'], join(home, 'repo.git'), 'packed content\n');
  git(['repack', '-q', '-a', '-d'], join(home, 'repo.git'));
  const loose = git(['hash-object', '-w', '--stdin'], join(home, 'repo.git'), 'loose content, written after the repack\n');

  const script = `
    const { ObjectStore } = await import(${JSON.stringify(STORE_JS)});
    const store = ObjectStore.open(process.argv[1]);
    const first = store.readObject(${JSON.stringify(packed)}).data.toString();
    process.stdout.write('ready ' + JSON.stringify(first) + '\\n');
    process.stdin.once('data', () => {
      let out;
      try { out = 'loose ' + JSON.stringify(store.readObject(${JSON.stringify(loose)}).data.toString()); }
      catch (e) { out = 'error ' + e.message; }
      process.stdout.write(out + '\\n');
      process.exit(0);
    });`;
  const run = (repoArg: string, moveTo: string): Promise<string[]> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, repoArg], { cwd: home, stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (c: string) => {
        out += c;
        if (out.startsWith('ready') && out.endsWith('\n') && out.split('\n').length === 2) {
          // Every absolute path to the repository stops resolving; the child's cwd still leads there.
          renameSync(join(base, 'medium'), join(base, moveTo));
          child.stdin.write('go\n');
        }
      });
      child.on('error', reject);
      child.on('exit', () => resolve(out.trim().split('\n')));
    });

  const rel = await run('repo.git', 'moved-1');
  t.same(rel, ['ready "packed content\\n"', 'loose "loose content, written after the repack\\n"'], 'relative: the loose object is read through the cwd');
  // The same with an absolute path fails: the test can tell the two apart.
  renameSync(join(base, 'moved-1'), join(base, 'medium'));
  const abs = await run(join(home, 'repo.git'), 'moved-2');
  t.equal(abs[0], 'ready "packed content\\n"');
  t.match(abs[1], /^error /, 'absolute: the loose object is out of reach once the path is gone');
});
