/**
 * The CRC32 verification mode of the object store (what git-fs uses): a byte flipped
 * anywhere in a packed object's entry (header or compressed payload), in the object itself
 * or in any delta base it is built from, must raise ObjectCorruptError and never return
 * data. Exhaustive over every byte of the entries of a small deltified pack.
 */
// needs: git
import t from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ObjectStore } from '../lib/store/object-store.js';
import { ObjectCorruptError, ObjectMissingError } from '../lib/errors/errors.js';

const ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@t',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@t',
};
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, env: ENV, maxBuffer: 1 << 28 }).toString();

t.test('every flipped byte of a packed entry is caught, whole or deltified', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gitroot-crc-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  git(dir, 'init', '-q');
  let text = '';
  for (let i = 0; i < 400; i++) text += `line ${i} of a file that changes a little between versions\n`;
  for (let v = 0; v < 4; v++) {
    fs.writeFileSync(path.join(dir, 'f.txt'), text + `version ${v}\n`);
    git(dir, 'add', '-A');
    git(dir, 'commit', '-qm', `v${v}`);
  }
  git(dir, 'repack', '-adq', '--depth=10', '--window=10');
  const idx = fs.readdirSync(path.join(dir, '.git/objects/pack')).find((n) => n.endsWith('.idx'))!;
  const packPath = path.join(dir, '.git/objects/pack', idx.replace(/\.idx$/, '.pack'));
  // verify-pack -v: oid type size size-in-pack offset [depth base]
  const rows = git(dir, 'verify-pack', '-v', packPath.replace(/\.pack$/, '.idx'))
    .split('\n')
    .map((l) => l.split(/\s+/))
    .filter((c) => /^[0-9a-f]{40}$/.test(c[0]) && c[1] === 'blob');
  const deltified = rows.filter((r) => r.length >= 7);
  t.ok(deltified.length > 0, 'the pack has deltified blobs');
  const original = fs.readFileSync(packPath);
  const expected = new Map(rows.map((r) => [r[0], git(dir, 'cat-file', 'blob', r[0])]));

  let flips = 0;
  let caught = 0;
  for (const row of rows) {
    const [, , , inPack, offset] = row;
    for (let i = 0; i < Number(inPack); i++) {
      const damaged = Buffer.from(original);
      damaged[Number(offset) + i] ^= 0x01;
      fs.writeFileSync(packPath, damaged);
      const store = ObjectStore.open(path.join(dir, '.git'), { verify: 'crc32', baseCacheBytes: 0 });
      // Every blob built from this entry (itself, and anything deltified against it).
      for (const [oid, want] of expected) {
        let got: string | undefined;
        try {
          got = store.readObject(oid).data.toString('latin1');
        } catch (e) {
          if (!(e instanceof ObjectCorruptError || e instanceof ObjectMissingError)) throw e;
          if (oid === row[0]) caught++;
          continue;
        }
        if (got !== want) t.fail(`wrong bytes for ${oid} after flipping byte ${i} of the entry at ${offset}`);
      }
      store.close();
      flips++;
    }
  }
  fs.writeFileSync(packPath, original);
  t.equal(caught, flips, `all ${flips} single-byte flips of ${rows.length} entries were refused, no wrong bytes`);
});
