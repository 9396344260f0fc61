/**
 * The object store's fallback to good copies (what makes a repair take effect, and what keeps
 * a damaged copy from hiding a good one): a damaged packed copy with a good loose copy, and a
 * damaged loose copy with a good packed one, read correctly in both verification modes and the
 * damaged copy is reported; with no good copy the read fails (never wrong bytes); a pack
 * replaced under the same name while a store is open is reopened and read.
 */
// needs: git
import t from 'tap';
import type { Test } from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ObjectStore } from '../lib/store/object-store.js';
import { ObjectCorruptError } from '../lib/errors/errors.js';
import { noise } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';

const git = (repo: string, args: string[], input?: string | Buffer): string =>
  execFileSync('git', ['--git-dir', repo, ...args], { input, maxBuffer: 1 << 28 })
    .toString()
    .trim();

function flip(file: string, at: number): void {
  fs.chmodSync(file, 0o644);
  const b = fs.readFileSync(file);
  b[at] ^= 0x08;
  fs.writeFileSync(file, b);
}

/** A bare repo holding `content` as a blob, both loose and in a pack; returns the paths. */
function twoCopies(t: Test, content: Buffer) {
  const repo = path.join(tempDir(t, 'fsck-store'), 'r.git');
  execFileSync('git', ['init', '-q', '--bare', repo]);
  const oid = git(repo, ['hash-object', '-w', '--stdin'], content);
  const loose = path.join(repo, 'objects', oid.slice(0, 2), oid.slice(2));
  const packName = git(repo, ['pack-objects', '-q', path.join(repo, 'objects', 'pack', 'pack')], `${oid}\n`);
  const pack = path.join(repo, 'objects', 'pack', `pack-${packName}.pack`);
  const offset = Number(
    git(repo, ['verify-pack', '-v', pack.replace(/\.pack$/, '.idx')])
      .split('\n')[0]
      .split(/\s+/)[4],
  );
  return { repo, oid, loose, pack, offset };
}

for (const verify of ['sha1', 'crc32'] as const) {
  t.test(`${verify}: a damaged packed copy, a good loose one: right bytes, the damaged copy reported`, async (t) => {
    const content = noise('blob', 50_000);
    const c = twoCopies(t, content);
    flip(c.pack, c.offset + 1000);
    const store = ObjectStore.open(c.repo, { verify });
    t.teardown(() => store.close());
    t.ok(store.readObject(c.oid).data.equals(content), 'the loose copy is read');
    t.same(
      store.damaged().map((d) => [d.oid, d.path]),
      [[c.oid, c.pack]],
      'the packed copy is reported damaged',
    );
    t.ok(store.readObject(c.oid).data.equals(content), 'and skipped from then on');
    const out = path.join(path.dirname(c.repo), 'out');
    const fd = fs.openSync(out, 'w');
    t.equal(await store.copyBlobToFd(c.oid, fd), content.length);
    fs.closeSync(fd);
    t.ok(fs.readFileSync(out).equals(content), 'streaming takes the good copy too');
  });

  t.test(`${verify}: a damaged loose copy, a good packed one: right bytes; both damaged: an error, never bytes`, async (t) => {
    const content = noise('blob2', 30_000);
    const c = twoCopies(t, content);
    flip(c.loose, 200);
    const store = ObjectStore.open(c.repo, { verify });
    t.teardown(() => store.close());
    t.ok(store.readObject(c.oid).data.equals(content), 'the packed copy is read (packs come first)');
    flip(c.pack, c.offset + 500);
    const fresh = ObjectStore.open(c.repo, { verify });
    t.teardown(() => fresh.close());
    t.throws(() => fresh.readObject(c.oid), ObjectCorruptError, 'no good copy: corrupt');
    t.same(
      fresh
        .damaged()
        .map((d) => d.path)
        .sort(),
      [c.loose, c.pack].sort(),
      'both copies were tried and reported',
    );
    t.ok(fresh.has(c.oid), 'the object is still there (damaged, not missing)');
  });
}

t.test('a pack replaced under the same name while the store is open is reopened and read', async (t) => {
  const content = noise('blob3', 40_000);
  const c = twoCopies(t, content);
  fs.rmSync(c.loose);
  const good = fs.readFileSync(c.pack);
  flip(c.pack, c.offset + 700);
  const store = ObjectStore.open(c.repo);
  t.teardown(() => store.close());
  t.throws(() => store.readObject(c.oid), ObjectCorruptError, 'the only copy is damaged');
  // What installing a re-fetched pack of identical content does: a new file renamed over the old.
  const tmp = `${c.pack}.new`;
  fs.writeFileSync(tmp, good);
  fs.renameSync(tmp, c.pack);
  const idx = c.pack.replace(/\.pack$/, '.idx');
  fs.copyFileSync(idx, `${idx}.new`);
  fs.renameSync(`${idx}.new`, idx);
  t.ok(store.readObject(c.oid).data.equals(content), 'the replaced pack is read');
});
