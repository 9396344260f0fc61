#!/usr/bin/env node
/**
 * Builds dist/gitroot.cjs: the whole gitroot CLI (its code and every npm dependency) in one
 * CommonJS file, for the initramfs. klibc's run-init deletes every file of the initramfs
 * before switching root, so the git-fs daemon that keeps serving `/` afterwards must have
 * nothing left to load from disk: one file, read once at start. The native addon is the
 * only other file; its path comes from GITROOT_NATIVE_ADDON (lib/native/addon.ts) and the
 * daemon loads it at start, before the switch.
 *
 *   node scripts/build-bundle.mjs [--out dist/gitroot.cjs] [--no-minify] [--metafile FILE]
 *
 * Prints the output path and size on stderr. --metafile writes esbuild's list of every
 * input file (the Debian package build reads it to name the bundled npm packages in
 * debian/copyright: packaging/copyright.mjs).
 */
import { build } from 'esbuild';
import { statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { syncVersion } from './sync-version.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const outfile = resolve(outIndex >= 0 ? args[outIndex + 1] : join(root, 'dist', 'gitroot.cjs'));
const minify = !args.includes('--no-minify');
const metaIndex = args.indexOf('--metafile');
const metafile = metaIndex >= 0 ? resolve(args[metaIndex + 1]) : null;

// `gitroot --version` in the bundle: the constant must match package.json before it is inlined.
syncVersion();

// bin/gitroot.ts awaits at top level, which a CommonJS file cannot: this entry does the
// same with a promise. Only the entry point sets the exit status (house rule).
const entry = `
import { run } from './lib/cli/main.ts';
run(process.argv).then((status) => { process.exitCode = status; });
`;

const result = await build({
  stdin: { contents: entry, resolveDir: root, sourcefile: 'gitroot-bundle-entry.ts', loader: 'ts' },
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify,
  // Keep class names: errors report `name`, and tests and logs read them.
  keepNames: true,
  legalComments: 'none',
  logLevel: 'warning',
  // The sources import './x.js' for files that are './x.ts' (NodeNext style).
  resolveExtensions: ['.ts', '.js', '.mjs', '.cjs', '.json'],
  // import.meta.url does not exist in CommonJS: every use (addon and template lookup)
  // reads the bundle's own file URL instead.
  define: { 'import.meta.url': '__gitrootBundleUrl' },
  banner: { js: '"use strict";const __gitrootBundleUrl=require("node:url").pathToFileURL(__filename).href;' },
  metafile: metafile !== null,
});
if (metafile !== null) writeFileSync(metafile, JSON.stringify(result.metafile));

process.stderr.write(`bundle: ${outfile} (${(statSync(outfile).size / 1e6).toFixed(2)} MB)\n`);
