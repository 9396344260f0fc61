/**
 * `gitroot commit --from-tar` (lib/commit/commit-tar.ts) end to end, through the real CLI:
 * the tree (and so the manifest) it records from an archive is the very tree `gitroot
 * commit DIR` records from that directory, compared by tree SHA, for
 * - the real Debian bookworm minbase tree archived by GNU tar (file and pipe), bsdtar, and
 *   GNU tar compressed with gzip, xz and zstd, also run as an unprivileged user;
 * - an mmdebstrap --mode=unshare tarball against the same tarball extracted by root;
 * - the edge-case tree (odd names, every mode, xattrs incl. binary and on symlinks) and a
 *   tree with sparse files, owners above 2^21 and long names, archived by GNU tar and bsdtar.
 * Then every kind of bad archive, each made by real tools: exit status 4, one line naming
 * the member (or the archive) and the fix, nothing on stdout, and the branch unchanged.
 */
// needs: root git debian
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, statSync, writeFileSync, linkSync } from 'node:fs';
import { join } from 'node:path';
import { buildEdgeTree } from '../fixtures/edge-tree.js';
import { CLI, gitroot, sh } from './helpers/cli.js';
import { buildTarTree, debianTree, refsOf, scratch } from './helpers/tar-fixtures.js';

const X = `--xattrs --xattrs-include='*' --numeric-owner`;

/** `gitroot commit --from-tar FILE --repo REPO --json` (FILE may be - with `input` on stdin via a shell pipe). */
function fromTar(file: string, repo: string): { status: number; stdout: string; stderr: string; tree?: string } {
  const r = gitroot(['commit', '--from-tar', file, '--repo', repo, '--json']);
  return r.status === 0 ? { ...r, tree: JSON.parse(r.stdout).tree as string } : r;
}

function fromDir(dir: string, repo: string): string {
  const r = gitroot(['commit', dir, '--repo', repo, '--json']);
  if (r.status !== 0) throw new Error(`commit DIR failed: ${r.stderr}`);
  return JSON.parse(r.stdout).tree as string;
}

/** Runs a shell pipeline that ends in the gitroot CLI; returns its tree or throws. */
function pipeTree(cmd: string, repo: string): string {
  const out = sh(`set -o pipefail; ${cmd} | node ${CLI} commit --from-tar - --repo ${repo} --json`);
  return JSON.parse(out).tree as string;
}

t.test('Debian minbase: commit --from-tar of its archives records the tree commit DIR records', async (t) => {
  const dir = scratch(t, 'tar-debian');
  const root = debianTree(join(dir, 'rootfs'));
  const want = fromDir(root, join(dir, 'dir.git'));
  t.match(want, /^[0-9a-f]{40}$/);

  const gnu = join(dir, 'gnu.tar');
  sh(`tar ${X} -cf ${gnu} -C ${root} .`);
  const r = fromTar(gnu, join(dir, 'gnu.git'));
  t.equal(r.tree, want, `GNU tar file: same tree (${r.stderr.trim().split('\n').pop()})`);
  const res = JSON.parse(r.stdout);
  t.ok(res.files > 5000 && res.manifestEntries > 50, `${res.files} files, ${res.manifestEntries} manifest entries`);
  t.same(res.warnings, []);

  t.equal(pipeTree(`tar ${X} -cf - -C ${root} .`, join(dir, 'pipe.git')), want, 'GNU tar through a pipe on standard input');

  const bsd = join(dir, 'bsd.tar');
  sh(`bsdtar --numeric-owner -cf ${bsd} -C ${root} .`);
  t.equal(fromTar(bsd, join(dir, 'bsd.git')).tree, want, 'bsdtar');

  for (const [kind, cmd] of [
    ['gzip', 'gzip -1 -c'],
    ['xz', 'xz -T0 -0 -c'],
    ['zstd', 'zstd -q -c'],
  ] as const) {
    const z = join(dir, `gnu.tar.${kind}`);
    sh(`${cmd} ${gnu} > ${z}`);
    t.equal(fromTar(z, join(dir, `${kind}.git`)).tree, want, `GNU tar + ${kind}`);
  }

  t.test('peak RSS stays under 160 MB', async (t) => {
    const repo = join(dir, 'rss.git');
    const m = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, CLI, 'commit', '--from-tar', gnu, '--repo', repo], { encoding: 'utf8' });
    t.equal(m.status, 0, m.stderr);
    const kb = Number(m.stderr.trim().split('\n').pop());
    t.ok(kb > 10_000 && kb <= 160 * 1024, `peak RSS ${(kb / 1024).toFixed(0)} MB (node or git fast-import, whichever is larger)`);
  });

  t.test('as an unprivileged user (nobody): same tree, no root needed', async (t) => {
    const home = join(dir, 'nobody');
    mkdirSync(home);
    chownSync(home, 65534, 65534);
    const repo = join(home, 'repo.git');
    sh(`chmod 755 ${dir}`); // mkdtemp made it 0700; the archive itself is 0644
    // Without the test runner's NODE_OPTIONS (its hooks write into the project as root).
    const out = sh(`env -u NODE_OPTIONS setpriv --reuid=65534 --regid=65534 --clear-groups node ${CLI} commit --from-tar ${gnu} --repo ${repo} --json`);
    t.equal(JSON.parse(out).tree, want);
    t.equal(statSync(join(repo, 'HEAD')).uid, 65534, 'the repository belongs to nobody');
  });
});

t.test('mmdebstrap tarball: same tree as that tarball extracted by root', async (t) => {
  const dir = scratch(t, 'tar-mmdebstrap');
  const tarball = join(dir, 'bookworm.tar');
  // --mode=unshare works as root here too (it needs unprivileged user namespaces and uidmap).
  const mm = spawnSync('mmdebstrap', ['--quiet', '--mode=unshare', '--variant=minbase', 'bookworm', tarball], { encoding: 'utf8' });
  t.equal(mm.status, 0, `mmdebstrap succeeds: ${mm.stderr.slice(-500)}`);
  const root = join(dir, 'extracted');
  mkdirSync(root);
  sh(`tar ${X} -xpf ${tarball} -C ${root}`);
  const want = fromDir(root, join(dir, 'dir.git'));
  const r = fromTar(tarball, join(dir, 'tar.git'));
  t.equal(r.tree, want, `same tree ${r.stderr.trim().split('\n').pop()}`);
  const names = sh(`tar -tf ${tarball}`).split('\n');
  t.ok(names.indexOf('./') > names.indexOf('./dev/'), 'members come in no tree order (./dev/ before ./)');
});

t.test('members without their parent directories: what tar -x as root creates on its own', async (t) => {
  const dir = scratch(t, 'tar-implicit');
  const src = join(dir, 'src');
  mkdirSync(join(src, 'usr/lib/deep'), { recursive: true });
  mkdirSync(join(src, 'run'));
  writeFileSync(join(src, 'usr/lib/deep/file'), 'deep\n');
  sh(`chmod 0700 ${src}/usr/lib && mkfifo ${src}/run/initctl && chown 5:5 ${src}/usr/lib/deep/file`);
  // Named members only: tar adds no parent directories (and no ./) for them.
  const tarball = join(dir, 'implicit.tar');
  sh(`tar ${X} -cf ${tarball} -C ${src} ./usr/lib/deep/file ./run/initctl`);
  t.equal(sh(`tar -tf ${tarball}`), './usr/lib/deep/file\n./run/initctl\n');
  const root = join(dir, 'extracted');
  sh(`mkdir ${root} && (umask 022 && tar ${X} -xpf ${tarball} -C ${root})`);
  t.equal(statSync(join(root, 'usr/lib')).mode & 0o7777, 0o755, "tar -x made usr/lib 0755, not the source's 0700");
  const want = fromDir(root, join(dir, 'dir.git'));
  t.equal(fromTar(tarball, join(dir, 'tar.git')).tree, want, 'same tree as the extracted one');
  t.match(
    sh(`git --git-dir=${dir}/tar.git show HEAD:.gitroot.mtree`),
    /\n\.\/run type=dir mode=0755 uid=0 gid=0\n\.\/run\/initctl type=fifo /,
    'run/, holding only a FIFO, is recorded as extraction made it',
  );
});

t.test("edge-case trees: GNU tar and bsdtar archives give commit DIR's tree", async (t) => {
  const dir = scratch(t, 'tar-edge');
  const edge = join(dir, 'edge');
  await buildEdgeTree(edge, { bigFileBytes: 17 * 1024 * 1024 });
  const tarTree = join(dir, 'tartree');
  buildTarTree(tarTree);
  for (const [name, src] of [
    ['edge', edge],
    ['sparse-and-big-owners', tarTree],
  ] as const) {
    const want = fromDir(src, join(dir, `${name}-dir.git`));
    const cases: Array<[string, string]> = [
      ['GNU tar', `tar ${X} -cf OUT -C ${src} .`],
      ['GNU tar --sparse (old GNU sparse headers)', `tar ${X} --sparse -cf OUT -C ${src} .`],
      ['GNU tar posix --sparse (pax sparse 1.0)', `tar --format=posix ${X} --sparse -cf OUT -C ${src} .`],
      ['bsdtar', `bsdtar --numeric-owner -cf OUT -C ${src} .`],
    ];
    for (const [i, [label, cmd]] of cases.entries()) {
      const out = join(dir, `${name}-${i}.tar`);
      sh(cmd.replace('OUT', out));
      const r = fromTar(out, join(dir, `${name}-${i}.git`));
      t.equal(r.tree, want, `${name}, ${label}: same tree ${r.status === 0 ? '' : r.stderr}`);
    }
  }
});

t.test('bad archives: one line naming the member and the fix, exit 4, nothing committed', async (t) => {
  const dir = scratch(t, 'tar-bad');
  const src = join(dir, 'src');
  mkdirSync(join(src, 'd'), { recursive: true });
  writeFileSync(join(src, 'd/a'), 'hello\n');
  linkSync(join(src, 'd/a'), join(src, 'd/b'));
  writeFileSync(join(src, 'd/big'), Buffer.alloc(100_000, 'x'));
  const ok = join(dir, 'ok.tar');
  sh(`tar ${X} -cf ${ok} -C ${src} .`);
  // An existing repository with a branch, so "unchanged" is a real check.
  const repo = join(dir, 'repo.git');
  t.equal(fromTar(ok, repo).status, 0, 'a good archive commits');
  const refsBefore = refsOf(repo);
  t.match(refsBefore, /^refs\/heads\/master [0-9a-f]{40}\n$/);

  /** Block numbers of the members (GNU tar -R), and of the end-of-archive block. */
  const blocks = (file: string): Map<string, number> => {
    const m = new Map<string, number>();
    for (const line of sh(`tar -tvR -f ${file}`).split('\n')) {
      const b = /^block (\d+): (.*)$/.exec(line);
      if (b)
        m.set(
          b[2]!.includes('** Block of NULs **')
            ? 'END'
            : b[2]!
                .split(' ')
                .filter((x) => x !== '')
                .slice(5)[0]!,
          Number(b[1]),
        );
    }
    return m;
  };
  const b = blocks(ok);
  const cut = (name: string, bytes: number): string => {
    const out = join(dir, name);
    sh(`head -c ${bytes} ${ok} > ${out}`);
    return out;
  };
  const make = (name: string, cmd: string): string => {
    const out = join(dir, name);
    sh(cmd.replace(/OUT/g, out));
    return out;
  };
  // Members: ./ ./d/ then ./d/a or ./d/b (one is the file, the other the link), ./d/big.
  const big = b.get('./d/big')!;
  const latin1 = join(dir, 'latin1');
  mkdirSync(latin1);
  writeFileSync(Buffer.from(`${latin1}/caf\xe9`, 'latin1'), 'x');
  const aclDir = join(dir, 'acl');
  mkdirSync(aclDir);
  writeFileSync(join(aclDir, 'f'), 'x');
  sh(`setfacl -m u:1000:r ${aclDir}/f`);
  const nested = join(dir, 'nested');
  mkdirSync(join(nested, 'two/etc'), { recursive: true });
  mkdirSync(join(nested, 'one'));
  writeFileSync(join(nested, 'one/etc'), 'a file named etc');
  writeFileSync(join(nested, 'two/etc/passwd'), 'inside');

  const cases: Array<[string, string, RegExp]> = [
    [
      'truncated inside a header',
      cut('mid-header.tar', big * 512 + 100),
      /is truncated: it ends inside the header at byte \d+ \(after member \.\/d\/[ab]\): the archive was cut short; create or download it again$/,
    ],
    [
      'truncated inside member data',
      cut('mid-data.tar', (big + 1) * 512 + 50_000),
      /is truncated: it ends inside the data of member \.\/d\/big: the archive was cut short; create or download it again$/,
    ],
    ['no end-of-archive block', cut('no-end.tar', b.get('END')! * 512), /is truncated: it ends after member \.\/d\/big without the end-of-archive block: /],
    [
      'absolute path',
      make('abs.tar', `tar -P -cf OUT ${src}/d/a`),
      /member \/.*\/d\/a of .*abs\.tar has an absolute path: archive the tree relative to its root \(tar -C DIR -cf OUT \.\)/,
    ],
    [
      'climbs out with ..',
      make('dotdot.tar', `cd ${src}/d && tar -P -cf OUT ../d/a`),
      /member \.\.\/d\/a of .*dotdot\.tar has a "\.\." component, which would climb out of the tree: archive the tree from its root/,
    ],
    [
      'hardlink to a member not seen before',
      make('nolink.tar', `cp ${ok} OUT && tar --delete -f OUT ${sh(`tar -tvf ${ok} | grep '^-' | grep -o './d/[ab]$'`).trim()}`),
      /member \.\/d\/[ab] of .*nolink\.tar is a hardlink to \.\/d\/[ab], which no member before it holds: put the file itself into the archive/,
    ],
    [
      'name not UTF-8',
      make('latin1.tar', `tar -cf OUT -C ${latin1} .`),
      /latin1\.tar: file name \.\/caf\\351 is not valid UTF-8: rename it \(e\.g\. with convmv\) before committing$/,
    ],
    [
      'duplicate member',
      make('dup.tar', `cp ${ok} OUT && tar -rf OUT -C ${src} ./d/big`),
      /member \.\/d\/big of .*dup\.tar names \.\/d\/big, which an earlier member already holds: extraction would keep only the last one; create the archive with each path once$/,
    ],
    [
      'member inside a non-directory',
      make('nested.tar', `tar -cf OUT -C ${nested}/one etc && tar -rf OUT -C ${nested}/two etc/passwd`),
      /member \.\/etc\/passwd of .*nested\.tar is inside \.\/etc, which the archive holds as not a directory: remove one of the two/,
    ],
    [
      'unsupported member type (multi-volume continuation)',
      make('vol2.tar', `cd ${dir} && tar -c -M -L 60 -f vol1.tar -f OUT -C ${src} .`),
      /member \.\/d\/big of .*vol2\.tar is a continuation of a multi-volume archive, which gitroot cannot record: /,
    ],
    [
      'POSIX ACL in pax keywords (bsdtar default)',
      make('acl.tar', `bsdtar -cf OUT -C ${aclDir} .`),
      /member \.\/f of .*acl\.tar carries a POSIX ACL \(pax SCHILY\.acl\.access\): gitroot records ACLs only as system\.posix_acl_\* xattrs/,
    ],
    [
      'garbage',
      make('garbage.tar', `head -c 20000 /dev/urandom > OUT`),
      /garbage\.tar is not a tar archive \(the header checksum does not match at byte 0\): give a tar file, plain or compressed with gzip, xz or zstd$/,
    ],
    ['a text file', make('text.tar', `cp /etc/os-release OUT`), /text\.tar is not a tar archive/],
    ['an empty file', make('empty.tar', `: > OUT`), /empty\.tar is empty: give a tar archive$/],
    [
      'truncated xz',
      make('cut.tar.xz', `xz -c ${ok} > OUT.whole && head -c $(($(stat -c %s OUT.whole) / 2)) OUT.whole > OUT`),
      /cut\.tar\.xz: its xz data is damaged or truncated \(xz: .*\): create or download the archive again$/,
    ],
    [
      'truncated gzip',
      make('cut.tar.gz', `gzip -c ${ok} > OUT.whole && head -c $(($(stat -c %s OUT.whole) / 2)) OUT.whole > OUT`),
      /cut\.tar\.gz: its gzip data is damaged or truncated \(unexpected end of file\): create or download the archive again$/,
    ],
    ['a directory given as the archive', src, /is a directory, not a tar archive: to commit a directory, give it without --from-tar$/],
    ['a missing file', join(dir, 'nope.tar'), /nope\.tar does not exist: give the tar archive to commit, or - for standard input$/],
  ];
  for (const [what, file, re] of cases) {
    const r = gitroot(['commit', '--from-tar', file, '--repo', repo]);
    t.equal(r.status, 4, `${what}: exit 4 (${r.stderr.trim()})`);
    const lines = r.stderr.trim().split('\n');
    t.equal(lines.length, 1, `${what}: one line`);
    t.match(lines[0], new RegExp(`^gitroot: .*?${re.source}`), `${what}: names the cause and the fix`);
    t.equal(r.stdout, '', `${what}: nothing on stdout`);
    t.equal(refsOf(repo), refsBefore, `${what}: branch unchanged, no new ref`);
  }
  t.same(
    readdirSync(repo).filter((n) => n.startsWith('fast_import_crash')),
    [],
    'no fast-import crash reports',
  );

  t.test('an archive that is not a tar creates no repository', async (t) => {
    const fresh = join(dir, 'fresh.git');
    t.equal(gitroot(['commit', '--from-tar', join(dir, 'garbage.tar'), '--repo', fresh]).status, 4);
    t.throws(() => statSync(fresh), { code: 'ENOENT' });
  });

  t.test('usage: a directory and --from-tar, or neither', async (t) => {
    for (const args of [
      ['commit', src, '--from-tar', ok, '--repo', repo],
      ['commit', '--repo', repo],
    ]) {
      const r = gitroot(args);
      t.equal(r.status, 2, args.join(' '));
      t.match(r.stderr, /^gitroot: give either a directory or --from-tar FILE \(not both, not neither\)/);
    }
    t.equal(refsOf(repo), refsBefore);
  });
});
