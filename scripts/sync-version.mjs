#!/usr/bin/env node
/**
 * Writes lib/http/gitroot-version.ts from package.json's "version", so the version has one
 * owner (package.json) and the code one constant, usable by the ESM build, the tap tests and
 * the single-file bundle alike (none of them reads package.json at run time: the initramfs has
 * none). Rewrites the file only when it differs. Run by scripts/setup.sh, `npm run build` and
 * scripts/build-bundle.mjs; test/gitroot-version.test.ts fails when the two drift apart.
 *
 *   node scripts/sync-version.mjs
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The text lib/http/gitroot-version.ts must hold for `version`. */
export function versionModule(version) {
  return `/**
 * gitroot's version, generated from package.json by scripts/sync-version.mjs (run by setup,
 * \`npm run build\` and the bundle build): edit package.json, not this file.
 */

/** The version of gitroot, as \`gitroot --version\` prints it. */
export const GITROOT_VERSION = '${version.replace(/[\\']/g, '\\$&')}';
/** How gitroot names itself to servers: HTTP User-Agent and the git protocol's agent=. */
export const USER_AGENT = \`gitroot/\${GITROOT_VERSION}\`;
`;
}

/** Brings lib/http/gitroot-version.ts in line with package.json; returns true when it wrote. */
export function syncVersion() {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  if (typeof version !== 'string' || version === '') throw new Error('package.json has no "version"');
  const file = join(root, 'lib', 'http', 'gitroot-version.ts');
  const want = versionModule(version);
  let have = null;
  try {
    have = readFileSync(file, 'utf8');
  } catch {
    /* first run */
  }
  if (have === want) return false;
  writeFileSync(file, want);
  return true;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (syncVersion()) process.stderr.write('sync-version: wrote lib/http/gitroot-version.ts\n');
}
