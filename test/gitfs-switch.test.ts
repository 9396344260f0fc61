/**
 * `gitroot switch` on real FUSE mounts (`gitroot mount` daemons, real git): a running mount
 * starts serving another revision. A file opened before the switch reads its old bytes to
 * the end, one opened after reads the new; directories replaced by files and the reverse,
 * changed symlinks, modes and owners, added names (also ones the kernel had cached as
 * missing) and removed ones; hardlink groups that change and ones that stay; unchanged files
 * keep their inode numbers and their page cache (fincore, and the daemon is not asked to read
 * them again); the old revision's inodes are freed once the kernel lets them go; many readers
 * during many switches see no error and no byte of the wrong revision; refusals (unknown
 * revision, damaged tree, untrusted) change nothing; an overlay on top keeps its writes and
 * what the kernel allows of its cache (see docs/live.md for why apply-live gives new lookups a
 * fresh overlay view).
 */
// needs: root fuse git
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, gitroot, isMounted, mount, sh, waitExit } from './helpers/cli.js';
import { tempDir } from './helpers/temp-dir.js';
import { keygen } from './helpers/trust-fixtures.js';

interface Rel {
  src: string;
  repo: string;
}

/** A fresh source dir and repository. */
function release(t: { teardown(fn: () => unknown): void }, prefix: string): Rel & { dir: string } {
  const dir = tempDir(t, prefix);
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  return { dir, src, repo: path.join(dir, 'repo.git') };
}

function commit(r: Rel, message: string, extra: string[] = []): string {
  const c = gitroot(['commit', r.src, '--repo', r.repo, '-m', message, ...extra]);
  if (c.status !== 0) throw new Error(`commit failed: ${c.stderr}`);
  return c.stdout.trim();
}

function put(r: Rel, p: string, content: string | Buffer, mode = 0o644): void {
  const f = path.join(r.src, p);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.rmSync(f, { recursive: true, force: true });
  fs.writeFileSync(f, content);
  fs.chmodSync(f, mode);
}

function switchTo(mnt: string, rev: string, extra: string[] = []): { status: number; json: Record<string, unknown> | null; stderr: string } {
  const r = gitroot(['switch', mnt, '--rev', rev, '--json', ...extra]);
  let json = null;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    /* a refusal prints nothing on stdout */
  }
  return { status: r.status, json, stderr: r.stderr };
}

function serving(mnt: string): { commit: string; stats: Record<string, number> } {
  const r = gitroot(['switch', mnt, '--status', '--json']);
  if (r.status !== 0) throw new Error(`switch --status failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const ino = (p: string) => fs.statSync(p).ino;
/** Bytes of `file` in the page cache (util-linux fincore). */
const cached = (file: string) => Number(sh(`fincore --bytes --noheadings --output RES ${JSON.stringify(file)}`).trim());
const oneLine = (s: string) => s.trim().split('\n').length === 1 && !/\n\s+at /.test(s);

/** A pattern that says which revision and path its bytes belong to, `size` bytes long. */
function pattern(tag: string, size: number): Buffer {
  const unit = Buffer.from(`${tag}|`);
  const b = Buffer.alloc(size);
  for (let o = 0; o < size; o += unit.length) unit.copy(b, o);
  return b;
}

t.test('switch: old fds read old bytes, new lookups see the new tree, unchanged paths keep inodes and cache', async (t) => {
  const r = release(t, 'switch');
  put(r, 'etc/changed.conf', pattern('A-changed', 300_000));
  put(r, 'etc/same.conf', pattern('same', 200_000));
  put(r, 'usr/lib/big.bin', pattern('A-big', 9 * 1024 * 1024)); // served from a spill file
  put(r, 'usr/bin/tool', '#!/bin/sh\necho A\n', 0o755);
  put(r, 'usr/bin/keep', '#!/bin/sh\necho keep\n', 0o755);
  put(r, 'dir2file/inner/f', 'inside a directory\n');
  put(r, 'file2dir', 'a file\n');
  put(r, 'etc/removed', 'going away\n');
  put(r, 'etc/moded', 'mode changes\n');
  put(r, 'etc/owned', 'owner changes\n');
  fs.symlinkSync('changed.conf', path.join(r.src, 'etc/link'));
  const A = commit(r, 'A');

  put(r, 'etc/changed.conf', pattern('B-changed', 310_000));
  put(r, 'usr/lib/big.bin', pattern('B-big', 9 * 1024 * 1024 + 5));
  put(r, 'usr/bin/tool', '#!/bin/sh\necho B\n', 0o755);
  fs.rmSync(path.join(r.src, 'dir2file'), { recursive: true });
  put(r, 'dir2file', 'now a file\n');
  fs.rmSync(path.join(r.src, 'file2dir'));
  put(r, 'file2dir/g', 'now inside a directory\n');
  fs.rmSync(path.join(r.src, 'etc/removed'));
  put(r, 'etc/added', 'new in B\n');
  fs.chmodSync(path.join(r.src, 'etc/moded'), 0o600);
  fs.chownSync(path.join(r.src, 'etc/owned'), 65534, 65534);
  fs.rmSync(path.join(r.src, 'etc/link'));
  fs.symlinkSync('same.conf', path.join(r.src, 'etc/link'));
  const B = commit(r, 'B');

  const mnt = path.join(r.dir, 'mnt');
  fs.mkdirSync(mnt);
  const m = mount(t, mnt, r.repo, ['--rev', A]);
  const at = (p: string) => path.join(mnt, p);

  // Before: read what will stay, look up a name B adds (a cached negative entry), hold fds open.
  t.equal(fs.readFileSync(at('etc/same.conf')).length, 200_000, 'unchanged file read (now in the page cache)');
  t.equal(fs.readFileSync(at('usr/bin/keep'), 'utf8'), '#!/bin/sh\necho keep\n');
  t.notOk(fs.existsSync(at('etc/added')), 'etc/added does not exist in A (the kernel caches that)');
  t.equal(fs.readFileSync(at('dir2file/inner/f'), 'utf8'), 'inside a directory\n');
  const before = {
    same: ino(at('etc/same.conf')),
    keep: ino(at('usr/bin/keep')),
    etc: ino(at('etc')),
    changed: ino(at('etc/changed.conf')),
    tool: ino(at('usr/bin/tool')),
  };
  const sameCached = cached(at('etc/same.conf'));
  t.ok(sameCached >= 200_000, `etc/same.conf is in the page cache (${sameCached} bytes)`);
  const oldChanged = fs.openSync(at('etc/changed.conf'), 'r');
  const oldBig = fs.openSync(at('usr/lib/big.bin'), 'r');
  const firstPart = Buffer.alloc(1000);
  fs.readSync(oldChanged, firstPart, 0, 1000, 0); // half read before the switch
  const cwdProbe = spawn('sleep', ['60'], { cwd: at('dir2file/inner'), stdio: 'ignore' }); // a process inside a directory B removes
  t.teardown(() => {
    cwdProbe.kill('SIGKILL');
  });
  const sw = switchTo(mnt, B);
  t.equal(sw.status, 0, `switch succeeds: ${sw.stderr}`);
  t.match(sw.json, { from: A, to: B, changed: true }, 'the answer names both revisions');
  t.equal(serving(mnt).commit, B, 'the daemon serves B');

  // Old fds: the old bytes to the end, never a mix.
  const restChanged = Buffer.alloc(300_000 - 1000);
  t.equal(fs.readSync(oldChanged, restChanged, 0, restChanged.length, 1000), restChanged.length, 'the rest of the old file reads');
  t.ok(Buffer.concat([firstPart, restChanged]).equals(pattern('A-changed', 300_000)), 'an fd opened before the switch reads A to the end');
  t.equal(fs.fstatSync(oldChanged).size, 300_000, 'and keeps its old size');
  const bigOld = Buffer.alloc(9 * 1024 * 1024);
  t.equal(fs.readSync(oldBig, bigOld, 0, bigOld.length, 0), bigOld.length);
  t.ok(bigOld.equals(pattern('A-big', 9 * 1024 * 1024)), 'a big (spilled) file opened before reads A');
  // New opens: B.
  t.ok(fs.readFileSync(at('etc/changed.conf')).equals(pattern('B-changed', 310_000)), 'a new open reads B');
  t.ok(fs.readFileSync(at('usr/lib/big.bin')).equals(pattern('B-big', 9 * 1024 * 1024 + 5)), 'the big file reads B');
  t.equal(sh(at('usr/bin/tool')), 'B\n', 'a changed program runs the new version');
  t.equal(fs.readFileSync(at('etc/added'), 'utf8'), 'new in B\n', 'a name cached as missing appears');
  t.notOk(fs.existsSync(at('etc/removed')), 'a removed file is gone');
  t.ok(fs.statSync(at('dir2file')).isFile(), 'a directory replaced by a file is a file');
  t.equal(fs.readFileSync(at('dir2file'), 'utf8'), 'now a file\n');
  t.ok(fs.statSync(at('file2dir')).isDirectory(), 'a file replaced by a directory is a directory');
  t.equal(fs.readFileSync(at('file2dir/g'), 'utf8'), 'now inside a directory\n');
  t.equal(fs.statSync(at('etc/moded')).mode & 0o7777, 0o600, 'a changed mode shows');
  t.equal(fs.statSync(at('etc/owned')).uid, 65534, 'a changed owner shows');
  t.equal(fs.readlinkSync(at('etc/link')), 'same.conf', 'a changed symlink shows');
  t.same(fs.readdirSync(at('etc')).sort(), ['added', 'changed.conf', 'link', 'moded', 'owned', 'same.conf'], "the listing is B's");
  t.equal(sh('ls; cat f', `/proc/${cwdProbe.pid}/cwd`), 'f\ninside a directory\n', 'a process inside a removed directory still lists and reads it as it was');

  const statsSwitched = serving(mnt).stats;

  // What did not change keeps its inode and its page cache; what changed has new inodes.
  t.equal(ino(at('etc/same.conf')), before.same, 'an unchanged file keeps its inode number');
  t.equal(ino(at('usr/bin/keep')), before.keep, 'another unchanged file keeps its inode number');
  t.equal(ino(at('etc')), before.etc, 'a changed directory keeps its inode number');
  t.not(ino(at('etc/changed.conf')), before.changed, 'a changed file has a new inode');
  t.not(ino(at('usr/bin/tool')), before.tool, 'a changed program has a new inode');
  t.equal(cached(at('etc/same.conf')), sameCached, "the unchanged file's pages are still cached");
  const readsBefore = serving(mnt).stats.reads;
  t.ok(fs.readFileSync(at('etc/same.conf')).equals(pattern('same', 200_000)), 'the unchanged file reads');
  t.equal(serving(mnt).stats.reads, readsBefore, 'from the page cache: the daemon was not asked to read it again');

  // The old revision's inodes go once nothing holds them.
  fs.closeSync(oldChanged);
  fs.closeSync(oldBig);
  cwdProbe.kill('SIGKILL');
  await new Promise((res) => cwdProbe.once('exit', res));
  sh('echo 2 > /proc/sys/vm/drop_caches'); // unused dentries go, the kernel sends its forgets
  let after = serving(mnt).stats;
  for (let i = 0; i < 50 && after.freed <= statsSwitched.freed; i++) {
    await new Promise((res) => setTimeout(res, 100));
    after = serving(mnt).stats;
  }
  t.ok(statsSwitched.freed > 0, `what nothing held was freed at the switch (${statsSwitched.freed} inodes)`);
  t.ok(after.freed > statsSwitched.freed, `what open files and a process held is freed once they let go (${after.freed - statsSwitched.freed} more)`);

  // Back to A.
  const back = switchTo(mnt, A);
  t.equal(back.status, 0, back.stderr);
  t.ok(fs.readFileSync(at('etc/changed.conf')).equals(pattern('A-changed', 300_000)), 'switching back serves A again');
  t.ok(fs.statSync(at('dir2file')).isDirectory(), 'and its directory');
  const again = switchTo(mnt, A);
  t.equal(again.status, 0);
  t.match(again.json, { changed: false }, 'a switch to what it serves changes nothing');

  t.equal(gitroot(['umount', mnt]).status, 0, 'umount');
  t.ok(await waitExit(m.pid), 'the daemon exits');
  t.notOk(fs.existsSync(path.join(r.dir, '.mnt.gitroot.sock')), 'its control socket is removed');
});

t.test('switch: hardlink groups that change get new inodes, groups that stay keep theirs', async (t) => {
  const r = release(t, 'switch-links');
  put(r, 'usr/bin/stay1', 'same group\n');
  fs.mkdirSync(path.join(r.src, 'usr/sbin'), { recursive: true });
  fs.linkSync(path.join(r.src, 'usr/bin/stay1'), path.join(r.src, 'usr/sbin/stay2'));
  put(r, 'usr/bin/grow1', 'group gains a path\n');
  fs.linkSync(path.join(r.src, 'usr/bin/grow1'), path.join(r.src, 'usr/bin/grow2'));
  put(r, 'usr/bin/split1', 'group splits\n');
  fs.linkSync(path.join(r.src, 'usr/bin/split1'), path.join(r.src, 'usr/bin/split2'));
  put(r, 'usr/bin/edit1', 'content of the group changes\n');
  fs.linkSync(path.join(r.src, 'usr/bin/edit1'), path.join(r.src, 'usr/bin/edit2'));
  put(r, 'usr/bin/touch', 'B changes this, so usr/bin is looked at\n');
  const A = commit(r, 'A');

  fs.linkSync(path.join(r.src, 'usr/bin/grow1'), path.join(r.src, 'usr/bin/grow3'));
  fs.rmSync(path.join(r.src, 'usr/bin/split2'));
  put(r, 'usr/bin/split2', 'group splits\n');
  fs.rmSync(path.join(r.src, 'usr/bin/edit2'));
  fs.writeFileSync(path.join(r.src, 'usr/bin/edit1'), 'new content of the group\n');
  fs.linkSync(path.join(r.src, 'usr/bin/edit1'), path.join(r.src, 'usr/bin/edit2'));
  put(r, 'usr/bin/touch', 'changed\n');
  const B = commit(r, 'B');

  const mnt = path.join(r.dir, 'mnt');
  fs.mkdirSync(mnt);
  mount(t, mnt, r.repo, ['--rev', A]);
  const at = (p: string) => path.join(mnt, p);
  // usr/bin is loaded; usr/sbin is not, so its member of the unchanged group is listed only after the switch.
  const names = ['stay1', 'grow1', 'grow2', 'split1', 'split2', 'edit1', 'edit2'];
  const before = Object.fromEntries(names.map((n) => [n, fs.statSync(at(`usr/bin/${n}`))]));
  t.equal(before.grow1.ino, before.grow2.ino, 'A: grow1 and grow2 are one inode');
  t.equal(before.grow1.nlink, 2);
  const oldEdit = fs.openSync(at('usr/bin/edit2'), 'r');

  t.equal(switchTo(mnt, B).status, 0, 'switch');
  const after = Object.fromEntries([...names, 'grow3'].map((n) => [n, fs.statSync(at(`usr/bin/${n}`))]));
  t.equal(after.stay1.ino, before.stay1.ino, 'a group that stays keeps its inode');
  t.equal(fs.statSync(at('usr/sbin/stay2')).ino, before.stay1.ino, 'and its member in a directory listed after the switch gets the same');
  t.equal(after.stay1.nlink, 2);
  t.not(after.grow1.ino, before.grow1.ino, 'a group that gains a path gets a new inode');
  t.ok(after.grow1.ino === after.grow2.ino && after.grow2.ino === after.grow3.ino, 'shared by all three paths');
  t.equal(after.grow1.nlink, 3, 'with link count 3');
  t.not(after.split1.ino, after.split2.ino, 'a group that splits: two inodes');
  t.equal(after.split1.nlink, 1);
  t.equal(after.edit1.ino, after.edit2.ino, 'a group whose content changes is still one inode');
  t.not(after.edit1.ino, before.edit1.ino, 'a new one');
  t.equal(fs.readFileSync(at('usr/bin/edit2'), 'utf8'), 'new content of the group\n', 'with the new content');
  t.equal(fs.readFileSync(oldEdit, 'utf8'), 'content of the group changes\n', 'an fd opened before reads the old content');
  fs.closeSync(oldEdit);
  t.equal(gitroot(['umount', mnt]).status, 0);
});

t.test('switch under concurrent readers: no error, every read is all of one revision', async (t) => {
  const r = release(t, 'switch-readers');
  const FILES = 24;
  const spec = (rev: string) => {
    for (let i = 0; i < FILES; i++) {
      const size = 4096 * (1 + (i % 7)) * 9 + i; // 36 KiB .. 252 KiB, odd tails
      put(r, `data/f${i}`, i % 3 === 0 ? pattern(`same-f${i}`, size) : pattern(`${rev}-f${i}`, size + (rev === 'B' ? 17 : 0)));
    }
    put(r, 'data/big', pattern(`${rev}-big`, 8 * 1024 * 1024 + 3));
    fs.rmSync(path.join(r.src, 'list'), { recursive: true, force: true });
    for (let i = 0; i < 20; i++) put(r, `list/${rev}${i}`, `${rev}\n`);
  };
  spec('A');
  const A = commit(r, 'A');
  spec('B');
  const B = commit(r, 'B');
  const mnt = path.join(r.dir, 'mnt');
  fs.mkdirSync(mnt);
  mount(t, mnt, r.repo, ['--rev', A]);

  // Each reader (its own process) reads whole files and listings for a while and judges each:
  // all bytes of revision A, or all of B (files every third unchanged in both).
  const reader = `
    const fs = require('fs');
    const [mnt, stop, seed] = [process.argv[1], process.argv[2], Number(process.argv[3])];
    const pattern = (tag, size) => { const u = Buffer.from(tag + '|'); const b = Buffer.alloc(size); for (let o = 0; o < size; o += u.length) u.copy(b, o); return b; };
    const sizeOf = (i, rev) => 4096 * (1 + (i % 7)) * 9 + i + (i % 3 !== 0 && rev === 'B' ? 17 : 0);
    const res = { reads: 0, A: 0, B: 0, same: 0, lists: 0, errors: [], wrong: [] };
    let x = seed;
    const end = Date.now() + 300000;
    for (let n = 0; Date.now() < end && !(n % 16 === 0 && fs.existsSync(stop)); n++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      const i = x % 27;
      try {
        if (i === 24 || i === 25) {
          const names = fs.readdirSync(mnt + '/list');
          res.lists++;
          const revs = new Set(names.map((n) => n[0]));
          if (names.length !== 20 || revs.size !== 1) res.wrong.push('list: ' + names.join(','));
          continue;
        }
        if (i === 26) {
          const b = fs.readFileSync(mnt + '/data/big');
          res.reads++;
          if (b.equals(pattern('A-big', 8 * 1024 * 1024 + 3))) res.A++;
          else if (b.equals(pattern('B-big', 8 * 1024 * 1024 + 3))) res.B++;
          else res.wrong.push('big');
          continue;
        }
        const b = fs.readFileSync(mnt + '/data/f' + i);
        res.reads++;
        if (i % 3 === 0) { if (b.equals(pattern('same-f' + i, sizeOf(i, 'A')))) res.same++; else res.wrong.push('f' + i); }
        else if (b.equals(pattern('A-f' + i, sizeOf(i, 'A')))) res.A++;
        else if (b.equals(pattern('B-f' + i, sizeOf(i, 'B')))) res.B++;
        else res.wrong.push('f' + i + ' (' + b.length + ' bytes)');
      } catch (e) { res.errors.push(String(e.code || e.message)); }
    }
    process.stdout.write(JSON.stringify(res));
  `;
  const stop = path.join(r.dir, 'stop');
  const SWITCHES = 8;
  const readers = [1, 2, 3].map(
    (seed) =>
      new Promise<{ reads: number; A: number; B: number; same: number; lists: number; errors: string[]; wrong: string[] }>((resolve, reject) => {
        const c = spawn(process.execPath, ['-e', reader, mnt, stop, String(seed)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.on('exit', () => {
          try {
            resolve(JSON.parse(out));
          } catch (e) {
            reject(e);
          }
        });
      }),
  );
  // Switch back and forth while they read; every switch must succeed.
  let switches = 0;
  const failures: string[] = [];
  await new Promise((res) => setTimeout(res, 300));
  while (switches < SWITCHES) {
    const rr = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [CLI, 'switch', mnt, '--rev', switches % 2 === 0 ? B : A], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr.on('data', (d) => (err += d));
      c.on('exit', (code) => resolve({ status: code, stderr: err }));
    });
    if (rr.status !== 0) failures.push(rr.stderr.trim());
    switches++;
    await new Promise((res) => setTimeout(res, 100));
  }
  fs.writeFileSync(stop, '');
  const results = await Promise.all(readers);
  t.same(failures, [], `${switches} switches, all succeeded`);
  const total = results.reduce((a, x) => ({ reads: a.reads + x.reads, A: a.A + x.A, B: a.B + x.B, same: a.same + x.same, lists: a.lists + x.lists }), {
    reads: 0,
    A: 0,
    B: 0,
    same: 0,
    lists: 0,
  });
  t.same(
    results.flatMap((x) => x.errors),
    [],
    `no read failed (${total.reads} reads, ${total.lists} listings)`,
  );
  t.same(
    results.flatMap((x) => x.wrong),
    [],
    'every file read was all of one revision, every listing all of one',
  );
  t.ok(total.A > 0 && total.B > 0, `both revisions were read (A ${total.A}, B ${total.B}, unchanged ${total.same})`);
  t.equal(gitroot(['umount', mnt]).status, 0);
});

t.test('refusals: an unknown revision, a damaged tree, an untrusted revision change nothing', async (t) => {
  const r = release(t, 'switch-refuse');
  put(r, 'etc/version', 'A\n');
  const key = keygen(r.dir, 'release');
  const signers = path.join(r.dir, 'allowed-signers');
  fs.writeFileSync(signers, `release@example.com namespaces="git" ${key.pub}\n`);
  const A = commit(r, 'A', ['--sign-key', key.path]);
  put(r, 'etc/version', 'B\n');
  const unsigned = commit(r, 'B unsigned');
  put(r, 'etc/version', 'C\n');
  const signed = commit(r, 'C signed', ['--sign-key', key.path]);
  // A commit whose tree is a blob, and one whose tree is missing (as git would store them).
  const blob = spawnSync('git', ['--git-dir', r.repo, 'hash-object', '-w', '--stdin'], { input: 'not a tree\n', encoding: 'utf8' }).stdout.trim();
  const body = (tree: string) => `tree ${tree}\nauthor a <a@a> 1700000000 +0000\ncommitter a <a@a> 1700000000 +0000\n\nbroken\n`;
  const lit = (text: string) =>
    spawnSync('git', ['--git-dir', r.repo, 'hash-object', '-w', '-t', 'commit', '--literally', '--stdin'], { input: text, encoding: 'utf8' }).stdout.trim();
  const blobTree = lit(body(blob));
  const missingTree = lit(body('1'.repeat(40)));

  const mnt = path.join(r.dir, 'mnt');
  fs.mkdirSync(mnt);
  mount(t, mnt, r.repo, ['--rev', A]);
  const version = () => fs.readFileSync(path.join(mnt, 'etc/version'), 'utf8');
  t.equal(version(), 'A\n');

  const cases: Array<[string, string[], number, RegExp]> = [
    ['an unknown revision', ['no-such-branch'], 3, /unknown revision 'no-such-branch'/],
    ['an unknown full SHA', ['f'.repeat(40)], 3, /f{40}/],
    ['a commit whose tree is a blob', [blobTree], 4, /names \S+ as its tree, but that is a blob: the revision is damaged/],
    ['a commit whose tree is missing', [missingTree], 4, /1{40}/],
    ['an unsigned revision with --allowed-signers', [unsigned, '--allowed-signers', signers], 8, /unsigned|no signature|not signed/],
  ];
  for (const [what, args, code, re] of cases) {
    const res = switchTo(mnt, args[0], args.slice(1));
    t.equal(res.status, code, `${what}: exit ${code} (${res.stderr.trim()})`);
    t.match(res.stderr, re, `${what}: names why`);
    t.ok(oneLine(res.stderr), `${what}: one line`);
    t.equal(version(), 'A\n', `${what}: the mount still serves A`);
    t.equal(serving(mnt).commit, A, `${what}: the daemon says A`);
  }
  const bad = path.join(r.dir, 'bad-signers');
  fs.writeFileSync(bad, 'garbage\n');
  const badRes = switchTo(mnt, signed, ['--allowed-signers', bad]);
  t.equal(badRes.status, 2, `a malformed allowed-signers file is a config error (${badRes.stderr.trim()})`);
  t.equal(version(), 'A\n');

  const ok = switchTo(mnt, signed, ['--allowed-signers', signers]);
  t.equal(ok.status, 0, `a revision signed by a listed key switches: ${ok.stderr}`);
  t.equal(version(), 'C\n');

  const notMount = gitroot(['switch', r.dir, '--rev', A]);
  t.equal(notMount.status, 2, 'switching a directory that is no gitroot mount is a usage error');
  t.match(notMount.stderr, /is not a gitroot mount/);
  t.equal(gitroot(['switch', mnt]).status, 2, 'no --rev: usage error');
  fs.chmodSync(r.dir, 0o755); // the mountpoint must be reachable for the check to be the socket's
  const nobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'switch', mnt, '--rev', A], {
    encoding: 'utf8',
  });
  t.equal(nobody.status, 5, 'only root may switch');
  t.match(nobody.stderr, /only root may switch/);
  t.equal(version(), 'C\n', 'nothing changed');
  t.equal(gitroot(['umount', mnt]).status, 0);
});

t.test('an overlay on top: its writes stay; the paths it had cached keep what the kernel allows', async (t) => {
  const r = release(t, 'switch-overlay');
  put(r, 'etc/changed', 'A\n');
  put(r, 'etc/same', 'same\n');
  put(r, 'etc/uncached', 'A uncached\n');
  const A = commit(r, 'A');
  put(r, 'etc/changed', 'B\n');
  put(r, 'etc/uncached', 'B uncached\n');
  put(r, 'etc/added', 'B added\n');
  const B = commit(r, 'B');
  const lower = path.join(r.dir, 'lower');
  const rw = path.join(r.dir, 'rw');
  const root = path.join(r.dir, 'root');
  for (const d of [lower, rw, root]) fs.mkdirSync(d);
  mount(t, lower, r.repo, ['--rev', A]);
  sh(`mount -t tmpfs gitroot-rw ${rw} && mkdir ${rw}/upper ${rw}/work`);
  sh(`mount -t overlay -o lowerdir=${lower},upperdir=${rw}/upper,workdir=${rw}/work gitroot ${root}`);
  t.teardown(() => {
    for (const p of [root, rw]) if (isMounted(p)) spawnSync('umount', ['-l', p]);
  });
  fs.writeFileSync(path.join(root, 'etc/written'), 'written before the switch\n');
  fs.writeFileSync(path.join(root, 'etc/same'), 'overwritten in the upper layer\n');
  t.equal(fs.readFileSync(path.join(root, 'etc/changed'), 'utf8'), 'A\n', 'the overlay reads A');
  const oldFd = fs.openSync(path.join(root, 'etc/changed'), 'r');

  t.equal(switchTo(lower, B).status, 0, 'switch the lower layer');
  t.equal(fs.readFileSync(path.join(root, 'etc/written'), 'utf8'), 'written before the switch\n', 'a file written through the overlay stays');
  t.equal(fs.readFileSync(path.join(root, 'etc/same'), 'utf8'), 'overwritten in the upper layer\n', 'a lower file changed in the upper stays changed');
  t.equal(fs.readFileSync(oldFd, 'utf8'), 'A\n', 'an fd opened through the overlay before reads A');
  fs.closeSync(oldFd);
  t.equal(fs.readFileSync(path.join(root, 'etc/uncached'), 'utf8'), 'B uncached\n', 'a path the overlay had not looked up reads B');
  // overlayfs keeps the lower dentries it looked up and does not allow the lower layer to change
  // under it: a cached path that changed is stale (ESTALE) through this overlay. This is why
  // apply-live gives new lookups fresh overlay views of what changed (docs/live.md).
  let err = 0;
  try {
    fs.readFileSync(path.join(root, 'etc/changed'));
  } catch (e) {
    err = (e as NodeJS.ErrnoException).errno ?? 0;
  }
  t.equal(err, -116 /* ESTALE */, 'a path the overlay had cached and that changed is stale through this overlay');
  t.equal(fs.readFileSync(path.join(lower, 'etc/changed'), 'utf8'), 'B\n', 'the lower layer itself serves B');
});
