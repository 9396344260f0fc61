/**
 * `gitroot fsck --repair` end to end against a real `git http-backend` on 127.0.0.1: a home
 * that fetched two releases with `gitroot fetch` gets a byte flipped in the pack of the second;
 * the repair fetches that revision again as a full pack, moves the damaged pack into
 * objects/pack/corrupt-<date>/ (every kept revision is complete without it), fsck is clean
 * after, the verdict says so and the revision serves correct bytes on a real mount. Also: a
 * home whose only pack is damaged (the full pack replaces it), and a repair with no
 * gitroot.remote (one-line usage error, nothing changed).
 */
// needs: root fuse git server
import t from 'tap';
import type { Test } from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { commitSpec, debianRoot, noise } from './helpers/deploy-fixtures.js';
import { machine } from './helpers/machine.js';
import { tempDir } from './helpers/temp-dir.js';
import { gitrootAsync as gitroot, isMounted, mount, waitExit } from './helpers/cli.js';
import { gitSync } from './helpers/fetch-repos.js';

let server: GitHttpServer;
let work: string;
let url: string;
let serverRepo: string;
const releases: string[] = [];

t.before(async () => {
  work = fs.mkdtempSync('/tmp/gitroot-fsck-repair-');
  const projectRoot = path.join(work, 'srv');
  fs.mkdirSync(projectRoot);
  serverRepo = path.join(projectRoot, 'os.git');
  releases.push(commitSpec(work, serverRepo, debianRoot('6.1.0-9', 'r1', { 'usr/lib/libold.so': noise('old', 100_000) }), 'release 1'));
  releases.push(
    commitSpec(
      work,
      serverRepo,
      debianRoot('6.1.0-9', 'r2', { 'usr/lib/libold.so': noise('old', 100_000), 'usr/lib/libnew.so': noise('new', 200_000) }),
      'release 2',
    ),
  );
  server = await startGitHttpServer({ projectRoot });
  url = server.url('os.git');
});
t.teardown(async () => {
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

interface Machine {
  dir: string;
  conf: string;
  cmdline: (extra?: string) => string;
}

/** A machine whose command line is a new file for each command (`cmdline(extra)`). */
function repairMachine(base: string): Machine {
  const m = machine(base, { remote: url, timeout: 10 });
  let n = 0;
  return {
    dir: m.dir,
    conf: m.conf,
    cmdline: (extra = '') => {
      const f = path.join(base, `cmdline-${n++}`);
      fs.writeFileSync(f, `quiet ${extra}\n`);
      return f;
    },
  };
}

/** Flips a byte in the middle of `oid`'s entry in the pack that holds it; returns the pack. */
function damagePacked(repo: string, oid: string): string {
  const packDir = path.join(repo, 'objects', 'pack');
  for (const idx of fs
    .readdirSync(packDir)
    .filter((n) => n.endsWith('.idx'))
    .map((n) => path.join(packDir, n))) {
    for (const line of gitSync(['--git-dir', repo, 'verify-pack', '-v', idx]).split('\n')) {
      const c = line.split(/\s+/);
      if (c[0] !== oid) continue;
      const pack = idx.replace(/\.idx$/, '.pack');
      fs.chmodSync(pack, 0o644);
      const b = fs.readFileSync(pack);
      b[Number(c[4]) + Math.floor(Number(c[3]) / 2)] ^= 0x04;
      fs.writeFileSync(pack, b);
      return pack;
    }
  }
  throw new Error(`${oid} is in no pack of ${repo}`);
}

async function readBack(t: Test, repo: string, rev: string, file: string, work: string): Promise<Buffer | string> {
  const mnt = fs.mkdtempSync(path.join(work, 'mnt-'));
  const m = mount(t, mnt, repo, ['--rev', rev]);
  let out: Buffer | string;
  try {
    out = fs.readFileSync(path.join(mnt, file));
  } catch (e) {
    out = String((e as NodeJS.ErrnoException).code);
  }
  const um = await gitroot(['umount', mnt]);
  t.equal(um.status, 0, um.stderr);
  t.notOk(isMounted(mnt));
  t.ok(await waitExit(m.pid));
  return out;
}

t.test('a damaged pack of the second release: fetched again in full, the damaged pack moved aside, clean after', async (t) => {
  const m = repairMachine(tempDir(t, 'repair'));
  const f1 = await gitroot(['fetch', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline(`update-revision=${releases[0]}`), '--json']);
  t.equal(f1.status, 0, f1.stderr);
  const f2 = await gitroot(['fetch', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline(), '--json']);
  t.equal(f2.status, 0, f2.stderr);
  t.equal(JSON.parse(f2.stdout).revision, releases[1]);
  const repo = path.join(m.dir, 'repo.git');
  const newOid = gitSync(['--git-dir', serverRepo, 'rev-parse', `${releases[1]}:usr/lib/libnew.so`]);
  const want = execFileSync('git', ['--git-dir', serverRepo, 'cat-file', 'blob', newOid]);
  const pack = damagePacked(repo, newOid);
  t.equal(await readBack(t, repo, releases[1], 'usr/lib/libnew.so', m.dir), 'EIO', 'the damaged file reads as EIO before the repair');

  const before = await gitroot(['fsck', '--dir', m.dir, '--json']);
  t.equal(before.status, 4);
  t.match(JSON.parse(before.stdout).objects, [{ oid: newOid, where: pack, breaks: [{ revision: releases[1], paths: ['usr/lib/libnew.so'] }] }]);

  server.resetStats();
  const fix = await gitroot(['fsck', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline(), '--repair', '--json']);
  t.equal(fix.status, 0, `repair succeeds: ${fix.stderr}`);
  const r = JSON.parse(fix.stdout);
  t.equal(r.clean, true, 'clean after the repair');
  t.same(r.repair.before.brokenRevisions, [releases[1]]);
  t.equal(r.repair.fetched.length, 1);
  t.equal(r.repair.fetched[0].revision, releases[1]);
  const increment = gitSync(['--git-dir', serverRepo, 'rev-list', '--objects', releases[1], '--not', releases[0]]).split('\n').length;
  const allOfR2 = gitSync(['--git-dir', serverRepo, 'rev-list', '--objects', '--no-walk', releases[1]]).split('\n').length;
  t.ok(allOfR2 > increment, `the revision has ${allOfR2} objects, ${increment} of them new since release 1`);
  t.ok(
    r.repair.fetched[0].objects >= allOfR2,
    `a full pack (${r.repair.fetched[0].objects} objects), not the ${increment}-object increment an ordinary fetch with haves gets`,
  );
  t.equal(server.stats.byCommand.fetch?.requests, 1, 'one pack request to the server');
  const idx = pack.replace(/\.pack$/, '.idx');
  t.same([...r.repair.movedAside].sort(), [idx, pack].sort(), 'the damaged pack and its index were moved aside');
  t.match(r.repair.corruptDir, new RegExp(`^${path.join(repo, 'objects', 'pack', 'corrupt-')}\\d{8}T\\d{6}Z$`));
  t.ok(fs.existsSync(path.join(r.repair.corruptDir, path.basename(pack))), 'kept for inspection, not deleted');
  t.notOk(fs.existsSync(pack), 'no longer among the packs');
  t.equal(JSON.parse(fs.readFileSync(path.join(m.dir, 'fsck.json'), 'utf8')).revisions[releases[1]], 'ok', 'the verdict says ok');

  const after = await gitroot(['fsck', '--dir', m.dir, '--json']);
  t.equal(after.status, 0, after.stderr);
  t.equal(JSON.parse(after.stdout).revisions.length, 2, 'both fetched revisions checked');
  t.same(await readBack(t, repo, releases[1], 'usr/lib/libnew.so', m.dir), want, 'the repaired revision serves the right bytes');
  const git = execFileSync('git', ['--git-dir', repo, 'fsck', '--full', '--no-dangling'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  t.equal(git.trim(), '', 'git fsck --full agrees');
});

t.test('the only pack damaged: the full pack replaces it, clean after', async (t) => {
  const m = repairMachine(tempDir(t, 'repair-only'));
  const f = await gitroot(['fetch', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline(), '--json']);
  t.equal(f.status, 0, f.stderr);
  const repo = path.join(m.dir, 'repo.git');
  const oid = gitSync(['--git-dir', serverRepo, 'rev-parse', `${releases[1]}:usr/lib/libold.so`]);
  damagePacked(repo, oid);
  const fix = await gitroot(['fsck', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline(), '--repair', '--json']);
  t.equal(fix.status, 0, fix.stderr);
  const r = JSON.parse(fix.stdout);
  t.equal(r.clean, true);
  t.equal(r.repair.before.brokenObjects, 1);
  t.equal(r.packs.filter((p: { problems: string[] }) => p.problems.length > 0).length, 0, 'no pack fails its checksums');
  t.same(
    await readBack(t, repo, releases[1], 'usr/lib/libold.so', m.dir),
    execFileSync('git', ['--git-dir', serverRepo, 'cat-file', 'blob', oid]),
    'right bytes',
  );
});

t.test('repair without gitroot.remote: one-line usage error, nothing changed', async (t) => {
  const m = repairMachine(tempDir(t, 'repair-noremote'));
  const f = await gitroot(['fetch', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline(), '--json']);
  t.equal(f.status, 0, f.stderr);
  const repo = path.join(m.dir, 'repo.git');
  damagePacked(repo, gitSync(['--git-dir', serverRepo, 'rev-parse', `${releases[1]}:usr/lib/libnew.so`]));
  fs.writeFileSync(m.conf, fs.readFileSync(m.conf, 'utf8').replace(/^gitroot\.remote=.*$/m, ''));
  const packs = fs.readdirSync(path.join(repo, 'objects', 'pack')).sort();
  const r = await gitroot(['fsck', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline(), '--repair']);
  t.equal(r.status, 2, 'usage error');
  t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.match(r.stderr, /gitroot\.remote is not set/);
  t.same(fs.readdirSync(path.join(repo, 'objects', 'pack')).sort(), packs, 'no pack moved');
});
