/**
 * The version has one owner, package.json: lib/http/gitroot-version.ts must be what
 * scripts/sync-version.mjs makes of it, and `gitroot --version` prints it.
 */
// needs: git
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GITROOT_VERSION, USER_AGENT } from '../lib/http/gitroot-version.js';
import { PROJECT_ROOT, gitroot } from './helpers/cli.js';

const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };

t.test("the constant is package.json's version (run node scripts/sync-version.mjs when not)", async (t) => {
  t.equal(GITROOT_VERSION, pkg.version);
  t.equal(USER_AGENT, `gitroot/${pkg.version}`);
  const { versionModule } = (await import(join(PROJECT_ROOT, 'scripts', 'sync-version.mjs'))) as { versionModule: (v: string) => string };
  t.equal(readFileSync(join(PROJECT_ROOT, 'lib', 'http', 'gitroot-version.ts'), 'utf8'), versionModule(pkg.version), 'the file is exactly the generated one');
});

t.test('gitroot --version prints it', async (t) => {
  const r = gitroot(['--version']);
  t.equal(r.status, 0);
  t.equal(r.stdout.trim(), pkg.version);
});
