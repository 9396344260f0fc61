/**
 * Corruption never yields wrong bytes, on a real FUSE mount (`gitroot mount`): a byte flipped
 * in a loose object, in a pack entry, and in the pack entry of a file big enough to be served
 * from a spill file makes exactly those files fail with EIO (again on every read), while
 * every other file reads back byte for byte as git has it; `gitroot fsck` names exactly those
 * three objects and the paths they break.
 */
// needs: root fuse git
import t from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type DeployState, emptyState, writeState } from '../lib/home/home-state.js';
import { withLock } from '../lib/home/home-lock.js';
import { gitroot, isMounted, mount, waitExit } from './helpers/cli.js';
import { commitSpec, noise } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';
import { gitSync } from './helpers/fetch-repos.js';

function flip(file: string, at: number): void {
  fs.chmodSync(file, 0o644);
  const b = fs.readFileSync(file);
  b[at] ^= 0x10;
  fs.writeFileSync(file, b);
}

t.test('flipped bytes in a loose object and in pack entries: EIO for those files only, fsck names them', async (t) => {
  t.ok(fs.existsSync('/dev/fuse'), '/dev/fuse exists (a missing one fails, never skips)');
  const work = tempDir(t, 'fsck-mount');
  const dir = path.join(work, 'home');
  const repo = path.join(dir, 'repo.git');
  const base: Record<string, Buffer | string> = { 'etc/os-release': 'ID=debian\n', 'etc/motd': 'hello\n', 'usr/lib/big.so': noise('big', 5 * 1024 * 1024) };
  for (let i = 0; i < 40; i++) base[`usr/bin/tool${i}`] = noise(`tool${i}`, 1000 + i * 997);
  commitSpec(work, repo, base, 'release 1');
  gitSync(['--git-dir', repo, 'repack', '-adq']);
  const r2 = commitSpec(work, repo, { ...base, 'usr/bin/new': noise('new', 30_000) }, 'release 2');
  await withLock(dir, {}, (lock) => writeState(lock, { ...emptyState(), good: r2, booted: r2 } as DeployState));

  const blob = (p: string) => gitSync(['--git-dir', repo, 'rev-parse', `${r2}:${p}`]);
  const files = gitSync(['--git-dir', repo, 'ls-tree', '-r', '--name-only', r2])
    .split('\n')
    .filter((p) => p !== '.gitroot.mtree');
  const expected = new Map(files.map((p) => [p, execFileSync('git', ['--git-dir', repo, 'cat-file', 'blob', blob(p)], { maxBuffer: 1 << 28 })]));

  // The loose object of usr/bin/new (the second commit wrote it loose).
  const looseOid = blob('usr/bin/new');
  const loose = path.join(repo, 'objects', looseOid.slice(0, 2), looseOid.slice(2));
  t.ok(fs.existsSync(loose), 'usr/bin/new is a loose object');
  flip(loose, Math.floor(fs.statSync(loose).size / 2));
  // Pack entries of a small file and of the big one.
  const packDir = path.join(repo, 'objects', 'pack');
  const idx = path.join(
    packDir,
    fs.readdirSync(packDir).find((n) => n.endsWith('.idx'))!,
  );
  const rows = new Map(
    gitSync(['--git-dir', repo, 'verify-pack', '-v', idx])
      .split('\n')
      .map((l) => l.split(/\s+/))
      .map((c) => [c[0], c]),
  );
  const damaged = new Map<string, string>([['usr/bin/new', looseOid]]);
  for (const p of ['usr/bin/tool7', 'usr/lib/big.so']) {
    const oid = blob(p);
    const row = rows.get(oid);
    t.ok(row, `${p} is packed`);
    flip(idx.replace(/\.idx$/, '.pack'), Number(row![4]) + Math.floor(Number(row![3]) / 2));
    damaged.set(p, oid);
  }

  const mnt = path.join(work, 'mnt');
  fs.mkdirSync(mnt);
  const m = mount(t, mnt, repo, ['--rev', r2]);
  let eio = 0;
  let good = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (const p of files) {
      let got: Buffer | null = null;
      let code: string | undefined;
      try {
        got = fs.readFileSync(path.join(mnt, p));
      } catch (e) {
        code = (e as NodeJS.ErrnoException).code;
      }
      if (damaged.has(p)) {
        if (code === 'EIO') eio++;
        else t.fail(`${p}: expected EIO, got ${code ?? `${got?.length} bytes`}`);
      } else if (got !== null && got.equals(expected.get(p)!)) {
        good++;
      } else {
        t.fail(`${p}: wrong bytes or an error (${code})`);
      }
    }
  }
  t.equal(eio, 2 * damaged.size, `the ${damaged.size} damaged files fail with EIO on every read`);
  t.equal(good, 2 * (files.length - damaged.size), `the other ${files.length - damaged.size} files read back byte for byte`);
  const um = gitroot(['umount', mnt]);
  t.equal(um.status, 0, um.stderr);
  t.notOk(isMounted(mnt));
  t.ok(await waitExit(m.pid));

  const r = gitroot(['fsck', '--dir', dir, '--json']);
  t.equal(r.status, 4);
  const rep = JSON.parse(r.stdout);
  t.same(
    rep.objects.map((o: { oid: string; breaks: Array<{ revision: string; paths: string[] }> }) => [o.oid, o.breaks]).sort(),
    [...damaged].map(([p, oid]) => [oid, [{ revision: r2, paths: [p] }]]).sort(),
    'fsck names exactly the three objects and their paths',
  );
  t.equal(rep.objects.find((o: { oid: string }) => o.oid === looseOid).where, loose, 'the loose copy is named');
});
