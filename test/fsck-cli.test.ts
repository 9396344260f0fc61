/**
 * `gitroot fsck` end to end on a real home (revisions made with `gitroot commit`, packed by
 * git, state.json written through the lock): clean is exit 0 with the verdict recorded; a
 * flipped byte in a pack entry is exit 4 with a one-line summary on stderr and the report on
 * stdout naming exactly that object, the pack, the revision and both paths it breaks; the
 * boot decision (`gitroot select`) then passes over that revision, until the pack set changes;
 * a missing object and a manifest that does not parse; --revision; usage errors.
 */
// needs: git
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { type DeployState, emptyState, writeState } from '../lib/home/home-state.js';
import { acquireLock, releaseLock, withLock } from '../lib/home/home-lock.js';
import { gitroot } from './helpers/cli.js';
import { commitSpec, noise } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';
import { gitSync } from './helpers/fetch-repos.js';

const T0 = '2026-05-06T07:08:09.000Z';

/** The offset and size in the pack of `oid` (git verify-pack -v). */
function packEntry(repo: string, idx: string, oid: string): { offset: number; size: number } {
  for (const line of gitSync(['--git-dir', repo, 'verify-pack', '-v', idx]).split('\n')) {
    const c = line.split(/\s+/);
    if (c[0] === oid) return { offset: Number(c[4]), size: Number(c[3]) };
  }
  throw new Error(`${oid} is not in ${idx}`);
}

t.test('clean, then a flipped byte in a pack entry: named, mapped to its paths, avoided at boot until the packs change', async (t) => {
  const work = tempDir(t, 'fsck-cli');
  const dir = path.join(work, 'home');
  const repo = path.join(dir, 'repo.git');
  const lib = noise('libp', 40_000);
  const G = commitSpec(work, repo, { 'etc/os-release': 'BUILD=good\n', 'usr/bin/ls': noise('ls', 20_000) }, 'good');
  const P = commitSpec(
    work,
    repo,
    {
      'etc/os-release': 'BUILD=next\n',
      'usr/bin/ls': noise('ls', 20_000),
      'usr/lib/libp.so': lib,
      'opt/libp.so': lib,
    },
    'next',
  );
  gitSync(['--git-dir', repo, 'repack', '-adq']);
  const state: DeployState = { ...emptyState(), good: G, booted: G, pending: { revision: P, triesLeft: 3, tries: 3, stagedAt: T0 } };
  await withLock(dir, {}, (lock) => writeState(lock, state));
  const cmdline = path.join(work, 'cmdline');
  fs.writeFileSync(cmdline, 'quiet\n');

  const clean = gitroot(['fsck', '--dir', dir, '--json']);
  t.equal(clean.status, 0, clean.stderr);
  const c = JSON.parse(clean.stdout);
  t.equal(c.clean, true);
  t.same(
    c.revisions.map((r: { revision: string; roles: string[]; status: string }) => [r.revision, r.roles, r.status]),
    [
      [G, ['good', 'booted'], 'ok'],
      [P, ['pending', 'ref:refs/heads/master'], 'ok'],
    ],
  );
  t.equal(c.packs.length, 1);
  t.same(c.packs[0].problems, []);
  t.ok(c.objectsChecked >= 8, `${c.objectsChecked} objects verified`);
  t.equal(c.verdict.written, true);
  const v1 = JSON.parse(fs.readFileSync(path.join(dir, 'fsck.json'), 'utf8'));
  t.same(v1.revisions, { [G]: 'ok', [P]: 'ok' });
  t.equal(JSON.parse(gitroot(['select', '--dir', dir, '--cmdline', cmdline, '--json']).stdout).revision, P, 'a clean verdict: the pending revision boots');

  // Damage the blob only P has, in the middle of its pack entry.
  const oid = gitSync(['--git-dir', repo, 'rev-parse', `${P}:usr/lib/libp.so`]);
  const packDir = path.join(repo, 'objects', 'pack');
  const idx = path.join(
    packDir,
    fs.readdirSync(packDir).find((n) => n.endsWith('.idx'))!,
  );
  const pack = idx.replace(/\.idx$/, '.pack');
  const e = packEntry(repo, idx, oid);
  const original = fs.readFileSync(pack);
  const damaged = Buffer.from(original);
  damaged[e.offset + Math.floor(e.size / 2)] ^= 0x20;
  fs.writeFileSync(pack, damaged);

  const bad = gitroot(['fsck', '--dir', dir, '--json']);
  t.equal(bad.status, 4, 'damage is exit 4');
  t.equal(bad.stderr.trim().split('\n').length, 1, 'one line on stderr');
  t.match(
    bad.stderr,
    /^gitroot: fsck: .* is damaged \(1 broken or missing object; breaking revision [0-9a-f]{12}; 1 pack failing checksums\).*gitroot fsck --repair/,
  );
  const r = JSON.parse(bad.stdout);
  t.equal(r.clean, false);
  t.same(
    r.objects.map((o: { oid: string; problem: string; expected: string; where: string; breaks: unknown }) => [o.oid, o.problem, o.expected, o.where, o.breaks]),
    [[oid, 'corrupt', 'blob', pack, [{ revision: P, paths: ['opt/libp.so', 'usr/lib/libp.so'] }]]],
    'exactly that object, its pack, its revision and both paths',
  );
  t.same(
    r.revisions.map((x: { status: string }) => x.status),
    ['ok', 'broken'],
  );
  t.ok(r.packs[0].problems.includes('the .pack checksum does not match its content'), r.packs[0].problems.join('; '));
  t.same(JSON.parse(fs.readFileSync(path.join(dir, 'fsck.json'), 'utf8')).revisions, { [G]: 'ok', [P]: 'broken' }, 'verdict recorded');

  const human = gitroot(['fsck', '--dir', dir]);
  t.equal(human.status, 4);
  t.match(human.stdout, new RegExp(`corrupt blob ${oid} in ${pack}`));
  t.match(human.stdout, new RegExp(`breaks ${P.slice(0, 12)} usr/lib/libp\\.so`));
  t.match(human.stdout, new RegExp(`revision ${P} \\[pending, ref:refs/heads/master\\]: BROKEN \\(2 paths\\)`));

  const sel = JSON.parse(gitroot(['select', '--dir', dir, '--cmdline', cmdline, '--json']).stdout);
  t.equal(sel.revision, G, 'the boot passes over the revision fsck found broken');
  t.equal(sel.health[P], 'damaged');
  t.match(sel.reason, /damaged/);

  const only = gitroot(['fsck', '--dir', dir, '--revision', G, '--json']);
  const o = JSON.parse(only.stdout);
  t.same(
    o.revisions.map((x: { revision: string; roles: string[]; status: string }) => [x.revision, x.roles, x.status]),
    [[G, ['asked', 'good', 'booted'], 'ok']],
    'only the revision asked for, which reads fine',
  );
  t.same(o.objects, [], 'no object of it is broken');
  t.equal(only.status, 4, 'the pack still fails its checksum: still damage');
  t.equal(o.verdict.written, false, '--revision does not record a verdict');

  // The pack set changes (as any fetch does) while the object is still damaged: still avoided.
  gitSync(['--git-dir', repo, 'pack-objects', '-q', path.join(packDir, 'pack')], { input: `${G}\n` });
  t.equal(
    JSON.parse(gitroot(['select', '--dir', dir, '--cmdline', cmdline, '--json']).stdout).revision,
    G,
    'packs changed but the object the verdict lists still fails: still passed over',
  );
  // The object reads again (as after a repair): the old verdict keeps nothing out.
  fs.writeFileSync(pack, original);
  t.equal(JSON.parse(gitroot(['select', '--dir', dir, '--cmdline', cmdline, '--json']).stdout).revision, P, 'a stale verdict keeps nothing out');
  const again = gitroot(['fsck', '--dir', dir, '--json']);
  t.equal(again.status, 0, again.stderr);
  t.same(JSON.parse(fs.readFileSync(path.join(dir, 'fsck.json'), 'utf8')).revisions, { [G]: 'ok', [P]: 'ok' });
});

t.test('a missing object and a manifest that does not parse', async (t) => {
  const work = tempDir(t, 'fsck-missing');
  const dir = path.join(work, 'home');
  const repo = path.join(dir, 'repo.git');
  commitSpec(work, repo, { 'etc/os-release': 'BUILD=1\n' }, 'one');
  const w = (content: string) => gitSync(['--git-dir', repo, 'hash-object', '-w', '--stdin'], { input: content });
  const gone = w('this blob will be lost\n');
  const manifest = w('#mtree v2.0\n./etc bogus=1\n');
  const tree = gitSync(['--git-dir', repo, 'mktree'], { input: `100644 blob ${manifest}\t.gitroot.mtree\n100644 blob ${gone}\tlost.txt\n` });
  const commit = gitSync(['--git-dir', repo, 'commit-tree', tree, '-m', 'x']);
  gitSync(['--git-dir', repo, 'update-ref', 'refs/heads/extra', commit]);
  fs.rmSync(path.join(repo, 'objects', gone.slice(0, 2), gone.slice(2)));

  const r = gitroot(['fsck', '--dir', dir, '--json']);
  t.equal(r.status, 4);
  const rep = JSON.parse(r.stdout);
  const extra = rep.revisions.find((x: { revision: string }) => x.revision === commit);
  t.match(extra, { roles: ['ref:refs/heads/extra'], status: 'broken', broken: [{ oid: gone, path: 'lost.txt' }], manifest: { status: 'invalid' } });
  t.match(extra.manifest.detail, /unknown keyword "bogus"/);
  t.match(rep.objects, [{ oid: gone, problem: 'missing', where: null, breaks: [{ revision: commit, paths: ['lost.txt'] }] }]);
  t.equal(rep.revisions.filter((x: { status: string }) => x.status === 'ok').length, 1, 'the other revision is fine');
});

t.test('the verdict is written only under the home lock: a held lock leaves the old verdict and says why', async (t) => {
  const work = tempDir(t, 'fsck-lock');
  const dir = path.join(work, 'home');
  commitSpec(work, path.join(dir, 'repo.git'), { 'etc/os-release': 'BUILD=1\n' }, 'one');
  fs.writeFileSync(path.join(dir, 'fsck.json'), 'old verdict\n');
  const lock = await acquireLock(dir, { command: 'test holder' });
  t.teardown(() => releaseLock(lock));
  const r = gitroot(['fsck', '--dir', dir, '--wait', '0', '--json']);
  t.equal(r.status, 0, 'clean all the same');
  const rep = JSON.parse(r.stdout);
  t.equal(rep.verdict.written, false);
  t.match(rep.verdict.reason, /test holder/, 'names the holder');
  t.equal(fs.readFileSync(path.join(dir, 'fsck.json'), 'utf8'), 'old verdict\n', 'the old file is untouched');
  releaseLock(lock);
  t.equal(JSON.parse(gitroot(['fsck', '--dir', dir, '--json']).stdout).verdict.written, true, 'written once the lock is free');
});

t.test('usage errors are one line', async (t) => {
  const work = tempDir(t, 'fsck-usage');
  const none = gitroot(['fsck', '--dir', path.join(work, 'nothing')]);
  t.equal(none.status, 2, 'no such home: usage error, like select, mark-good and prune');
  t.match(none.stderr, /^gitroot: gitroot home \S+nothing is not a directory; pass the right --dir\n$/);
  const empty = gitroot(['fsck', '--dir', work]);
  t.equal(empty.status, 3, 'a home without a repository: not found');
  t.equal(empty.stderr.trim().split('\n').length, 1, empty.stderr);
  const noDir = gitroot(['fsck']);
  t.equal(noDir.status, 2);
  const help = gitroot(['fsck', '--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /--repair/);
});
