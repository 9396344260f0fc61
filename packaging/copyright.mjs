#!/usr/bin/env node
/**
 * Writes debian/copyright (machine-readable, DEP-5) for the gitroot package:
 *
 *   node packaging/copyright.mjs META.json OUT
 *
 * META.json is esbuild's metafile of the bundle (scripts/build-bundle.mjs --metafile). The
 * bundle carries the code of every npm package it imports, so each of them gets a Files
 * paragraph with its copyright line (from its license file, else its package.json author)
 * and its license; a license this script has no text for is an error, not a guess.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const [metaPath, outPath] = process.argv.slice(2);
if (metaPath === undefined || outPath === undefined) {
  process.stderr.write('usage: node packaging/copyright.mjs META.json OUT\n');
  process.exit(2);
}

/** SPDX identifiers of npm's package.json to Debian's license short names (DEP-5 section 7). */
const DEBIAN_NAME = { MIT: 'Expat', 'BSD-2-Clause': 'BSD-2-clause' };
const LICENSE_TEXT = {
  Expat: `Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:
.
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.`,
  'BSD-2-clause': `Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
.
1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.
.
THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND
ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED
WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.`,
};

/** npm packages whose files went into the bundle, by name. */
function bundledPackages(meta) {
  const names = new Set();
  for (const input of Object.keys(meta.inputs)) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) names.add(m[1]);
  }
  return [...names].sort();
}

/** The package's copyright line: its license file's first "Copyright" line, else its author. */
function copyrightOf(dir, pkg) {
  const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  if (file !== undefined) {
    const line = readFileSync(join(dir, file), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .find((l) => /^copyright\b/i.test(l) && !/notice/i.test(l));
    if (line !== undefined) return line.replace(/^copyright\s*(\(c\)|©)?\s*/i, '');
  }
  const author = typeof pkg.author === 'string' ? pkg.author : pkg.author?.name;
  if (author) return author;
  throw new Error(`${pkg.name}: no copyright line in its license file and no author in package.json: add it to packaging/copyright.mjs by hand`);
}

const meta = JSON.parse(readFileSync(metaPath, 'utf8'));
const own = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const used = new Set([DEBIAN_NAME[own.license]]);
const paragraphs = [];
for (const name of bundledPackages(meta)) {
  const dir = join(root, 'node_modules', name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const license = DEBIAN_NAME[pkg.license];
  if (license === undefined) throw new Error(`${name}: license ${pkg.license} has no text in packaging/copyright.mjs: add it`);
  used.add(license);
  paragraphs.push(
    `Files: node_modules/${name}/*\nCopyright: ${copyrightOf(dir, pkg)}\nLicense: ${license}\nComment: ${name} ${pkg.version}, bundled into /usr/lib/gitroot/gitroot.cjs`,
  );
}

const text = [
  `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: gitroot
Comment: /usr/lib/gitroot/gitroot.cjs is one file holding gitroot's own code and the
 npm packages it uses (listed below by their source paths), built with esbuild.`,
  `Files: *
Copyright: 2026 the gitroot developers
License: ${DEBIAN_NAME[own.license]}`,
  ...paragraphs,
  ...[...used].sort().map(
    (l) =>
      `License: ${l}\n${LICENSE_TEXT[l]
        .split('\n')
        .map((x) => ` ${x}`)
        .join('\n')}`,
  ),
].join('\n\n');
writeFileSync(outPath, `${text}\n`);
