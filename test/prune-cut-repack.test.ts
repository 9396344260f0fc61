/**
 * A power cut inside prune's `git repack -a -d`, after the new all-objects pack was renamed in
 * and before the old packs were deleted, on a home with little room: the state is made for real
 * (two releases fetched over `git http-backend` into a home on a small tmpfs, copies of the old
 * packs kept outside it, `git repack -a -d`, the copies put back), then the tmpfs is shrunk so
 * that less than one more copy of the objects fits. `gitroot prune` and `gitroot fetch` (its
 * auto-prune) must both recover by themselves: the old packs go (the new one holds every object),
 * the repack fits, git fsck is clean, every revision state.json names is complete down to every
 * blob, and the fetch then stages the next release. With a git-fs daemon serving the revision
 * from those packs (as on a booted machine, where it serves /) their space stays held until it
 * lets go: prune then removes them, skips the repack with a warning, every file still reads
 * back through the mount, and once it is unmounted (the next boot) the next prune repacks.
 * Without the redundant-pack step both failed with git's "Out of diskspace" on every run.
 */
// needs: root fuse git server
import t from 'tap';
import type { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { gitrootAsync as gitroot, isMounted, mount, sh } from './helpers/cli.js';
import { gitRun, gitSync, makeServerRepo, pushCommit, randomFiles, repoHealth, type ServerRepo } from './helpers/fetch-repos.js';

const MIB = 1024 * 1024;
let server: GitHttpServer;
let work: string;

t.before(async () => {
  work = fs.mkdtempSync('/tmp/gitroot-cut-repack-');
  server = await startGitHttpServer({ projectRoot: path.join(work, 'srv') });
});
t.teardown(async () => {
  await server?.close();
  for (const n of fs.existsSync(work) ? fs.readdirSync(work) : []) {
    const p = path.join(work, n);
    if (isMounted(p)) spawnSync('umount', [p]);
  }
  if (!fs.readFileSync('/proc/mounts', 'utf8').includes(work)) fs.rmSync(work, { recursive: true, force: true });
});

function packs(repo: string): string[] {
  return fs
    .readdirSync(path.join(repo, 'objects', 'pack'))
    .filter((n) => n.endsWith('.pack'))
    .sort();
}

function packBytes(repo: string): number {
  return packs(repo).reduce((s, n) => s + fs.statSync(path.join(repo, 'objects', 'pack', n)).size, 0);
}

const free = (mnt: string) => Number(sh(`df -B1 --output=avail ${mnt} | tail -1`));

/**
 * A home on its own tmpfs with releases 1 and 2 fetched (two packs), left as a repack cut after
 * its rename and before its deletes leaves it, with room for half a copy of the objects.
 */
async function cutHome(t: Test, name: string): Promise<{ mnt: string; dir: string; repo: string; conf: string; cmdline: string; served: ServerRepo }> {
  const projectRoot = path.join(work, 'srv');
  fs.mkdirSync(projectRoot, { recursive: true });
  const served = makeServerRepo(work, projectRoot, `${name}.git`, { 'etc/motd': 'release 1\n', ...randomFiles(6, MIB, 'base') });
  const mnt = path.join(work, name);
  fs.mkdirSync(mnt);
  sh(`mount -t tmpfs -o size=96m gitroot-test-${name} ${mnt}`);
  t.teardown(() => {
    if (isMounted(mnt)) spawnSync('umount', [mnt]);
  });
  const dir = path.join(mnt, 'home');
  const conf = path.join(work, `${name}.conf`);
  const cmdline = path.join(work, `${name}.cmdline`);
  fs.writeFileSync(
    conf,
    [
      'gitroot.bootloader=none',
      `gitroot.remote=${server.url(`${name}.git`)}`,
      'fetch-revision=main',
      'gitroot.timeout=10',
      'gitroot.retries=0',
      'gitroot.min-free=0',
      'gitroot.keep=1',
    ].join('\n') + '\n',
  );
  fs.writeFileSync(cmdline, 'quiet\n');
  const fetch = () => gitroot(['fetch', '--dir', dir, '--config', conf, '--cmdline', cmdline, '--json']);
  const f1 = await fetch();
  t.equal(f1.status, 0, `release 1 fetched (${f1.stderr.trim()})`);
  pushCommit(served, { 'etc/motd': 'release 2\n', ...randomFiles(6, MIB, 'r2') });
  const f2 = await fetch();
  t.equal(f2.status, 0, `release 2 fetched (${f2.stderr.trim()})`);
  const repo = path.join(dir, 'repo.git');
  const packDir = path.join(repo, 'objects', 'pack');
  t.equal(packs(repo).length, 2, 'two packs: the first fetch and the update');

  // The cut: keep the old packs outside the home, repack, put them back (what a kill between
  // git's rename of the new pack and its unlink of the old ones leaves).
  const saved = path.join(work, `${name}-old-packs`);
  fs.mkdirSync(saved);
  for (const n of fs.readdirSync(packDir)) fs.copyFileSync(path.join(packDir, n), path.join(saved, n));
  t.equal(gitRun(['--git-dir', repo, 'repack', '-a', '-d', '-q']).status, 0, 'git repack -a -d');
  const newPack = packs(repo);
  t.equal(newPack.length, 1, 'one all-objects pack');
  const newBytes = packBytes(repo);
  for (const n of fs.readdirSync(saved)) fs.copyFileSync(path.join(saved, n), path.join(packDir, n));
  t.equal(packs(repo).length, 3, 'old packs back beside the new one');
  t.equal(repoHealth(repo).fsck, 0, 'the cut state is a valid repository');

  // Room for half a copy: a repack (which writes a whole new pack first) cannot fit.
  const used = Number(sh(`df -B1 --output=used ${mnt} | tail -1`));
  const size = Math.ceil((used + newBytes / 2) / 4096) * 4096;
  sh(`mount -o remount,size=${size} ${mnt}`);
  t.ok(free(mnt) < newBytes, `${free(mnt)} bytes free, less than the ${newBytes} bytes of one copy`);
  return { mnt, dir, repo, conf, cmdline, served };
}

/** Every revision state.json names is complete: closure present and every blob read back. */
function stateRevisionsComplete(t: Test, dir: string, repo: string): void {
  const state = fs.readFileSync(path.join(dir, 'state.json'), 'utf8');
  const shas = [...new Set(state.match(/\b[0-9a-f]{40}\b/g) ?? [])];
  t.ok(shas.length > 0, 'state.json names revisions');
  for (const sha of shas) {
    t.equal(gitRun(['--git-dir', repo, 'rev-list', '--objects', '--missing=error', '--quiet', sha]).status, 0, `${sha.slice(0, 12)}: closure present`);
    const archive = spawnSync('git', ['--git-dir', repo, 'archive', '--format=tar', sha], { maxBuffer: 256 * MIB });
    t.equal(archive.status, 0, `${sha.slice(0, 12)}: every blob reads back`);
  }
}

t.test('gitroot prune recovers from a repack cut between its rename and its deletes', async (t) => {
  const { mnt, dir, repo, conf, served } = await cutHome(t, 'prune');
  // A git-fs daemon serves the revision from the packs as they are now (the old ones, put back
  // last, are the newest: it reads from them).
  const view = path.join(work, 'prune-view');
  fs.mkdirSync(view);
  mount(t, view, repo, ['--rev', served.commits[1]]);
  t.equal(fs.readFileSync(path.join(view, 'etc', 'motd'), 'utf8'), 'release 2\n', 'served through git-fs');
  const freeBefore = free(mnt);
  const r = await gitroot(['prune', '--dir', dir, '--config', conf, '--json']);
  t.equal(r.status, 0, `prune succeeds (${r.stderr.trim()})`);
  t.notMatch(r.stderr, /diskspace|No space/i, 'no disk-full error');
  t.equal(packs(repo).length, 1, 'the redundant packs are gone from objects/pack');
  // The daemon still holds them open, so their space is not free yet: the repack waits.
  t.match(r.stderr, /warning: repack skipped: .* free .* needed for its new pack .*git-fs serving \/ until the next boot/, 'repack skipped, saying why');
  const health = repoHealth(repo);
  t.equal(health.fsck, 0, `git fsck clean ${health.fsckErr}`);
  t.equal(health.closure, 0, `every ref complete ${health.closureErr}`);
  stateRevisionsComplete(t, dir, repo);
  // Every file still reads back through the running git-fs, byte for byte.
  const names = gitSync(['--git-dir', repo, 'ls-tree', '-r', '--name-only', served.commits[1]])
    .split('\n')
    .filter((p) => p !== '');
  let same = 0;
  for (const p of names) {
    const want = spawnSync('git', ['--git-dir', repo, 'cat-file', 'blob', `${served.commits[1]}:${p}`], { maxBuffer: 64 * MIB }).stdout;
    if (Buffer.compare(fs.readFileSync(path.join(view, p)), want) === 0) same++;
    else t.fail(`${p} differs through git-fs`);
  }
  t.equal(same, names.length, `all ${names.length} files served correctly after the packs went`);

  // The next boot: the daemon is gone, the space comes free and the next prune repacks.
  t.equal(spawnSync('umount', [view]).status, 0, 'git-fs unmounted');
  await new Promise((res) => setTimeout(res, 500));
  t.ok(free(mnt) > freeBefore + MIB, `space freed once the daemon let go (${freeBefore} -> ${free(mnt)} bytes free)`);
  const again = await gitroot(['prune', '--dir', dir, '--config', conf, '--json']);
  t.equal(again.status, 0, `the next prune succeeds (${again.stderr.trim()})`);
  t.notMatch(again.stderr, /repack skipped/, 'and repacks');
  t.equal(packs(repo).length, 1, 'one pack');
  t.equal(repoHealth(repo).fsck, 0, 'git fsck clean');
  stateRevisionsComplete(t, dir, repo);
});

t.test('gitroot fetch (auto-prune) recovers by itself and stages the next release', async (t) => {
  const { mnt, dir, repo, conf, cmdline, served } = await cutHome(t, 'fetch');
  const r3 = pushCommit(served, { 'etc/motd': 'release 3\n' });
  const r = await gitroot(['fetch', '--dir', dir, '--config', conf, '--cmdline', cmdline, '--json']);
  t.equal(r.status, 0, `fetch succeeds (${r.stderr.trim()}, ${free(mnt)} bytes free)`);
  t.notMatch(r.stderr, /diskspace/i, 'no repack out of disk space');
  if (r.status === 0) t.equal(JSON.parse(r.stdout).revision, r3, 'release 3 fetched');
  const health = repoHealth(repo);
  t.equal(health.fsck, 0, `git fsck clean ${health.fsckErr}`);
  t.equal(health.closure, 0, `every ref complete ${health.closureErr}`);
  stateRevisionsComplete(t, dir, repo);
  t.ok(packs(repo).length <= 2, `the redundant packs are gone (${packs(repo).join(', ')})`);
});
