/**
 * TarReader (lib/tar/tar-read.ts) and openTarInput (lib/tar/tar-decompress.ts) against
 * archives written by real tools (GNU tar in gnu, posix/pax, ustar and v7 formats with every
 * sparse variant, bsdtar in its default pax, gnutar and ustar formats; gzip, xz, zstd and
 * bzip2 compression), each compared member by member with what lstat, readlink, getfattr
 * and the file bytes say about the tree that was archived: type, mode, owner, size, link
 * target, device numbers, xattrs (binary values included) and a SHA-256 of the content
 * (holes of sparse files as zeros).
 */
// needs: root
import t from 'tap';
import type { Test } from 'tap';
import { isDeepStrictEqual } from 'node:util';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, readlinkSync, mkdirSync, writeFileSync, linkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { openTarInput } from '../lib/tar/tar-decompress.js';
import { TarReader, type TarMember } from '../lib/tar/tar-read.js';
import { buildTarTree, scratch } from './helpers/tar-fixtures.js';
import { sh } from './helpers/cli.js';

interface Seen {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  link?: string;
  dev?: string;
  xattrs: Record<string, string>;
  sha?: string;
}

/** Every member of `file` by normalised path ('' = root), content hashed. */
async function readArchive(file: string): Promise<{ members: Map<string, Seen>; warnings: string[]; compression: string }> {
  const input = await openTarInput(file);
  const reader = new TarReader(input.chunks, input.label);
  const members = new Map<string, Seen>();
  try {
    for (let m: TarMember | null = await reader.next(); m !== null; m = await reader.next()) {
      const path = norm(m.name.toString('utf8'));
      const s: Seen = { type: m.type, mode: m.mode, uid: m.uid, gid: m.gid, size: m.size, xattrs: {} };
      for (const [k, v] of m.xattrs) s.xattrs[k] = v.toString('hex');
      if (m.type === 'symlink' || m.type === 'hardlink') s.link = m.type === 'hardlink' ? norm(m.linkname.toString('utf8')) : m.linkname.toString('utf8');
      if (m.type === 'char' || m.type === 'block') s.dev = `${m.devmajor},${m.devminor}`;
      if (m.type === 'file') {
        const h = createHash('sha256');
        let n = 0;
        await reader.readBody((c) => {
          h.update(c);
          n += c.length;
        });
        if (n !== m.size) throw new Error(`${path}: read ${n} bytes, header says ${m.size}`);
        s.sha = h.digest('hex');
      }
      if (members.has(path)) throw new Error(`${path} twice`);
      members.set(path, s);
    }
  } finally {
    input.close();
  }
  return { members, warnings: reader.warnings, compression: input.compression };
}

function norm(p: string): string {
  return p
    .split('/')
    .filter((c) => c !== '' && c !== '.')
    .join('/');
}

/** xattrs of every path below `root` that has any, by getfattr (hex values). */
function xattrsOf(root: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  const text = execFileSync('getfattr', ['-R', '-h', '-P', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { encoding: 'utf8' });
  let cur: Record<string, string> | null = null;
  for (const line of text.split('\n')) {
    const f = /^# file: (.*)$/.exec(line);
    if (f) {
      cur = {};
      out.set(norm(f[1]!.slice(root.length)), cur);
      continue;
    }
    const kv = /^([^=]+)=0x([0-9a-f]*)$/.exec(line);
    if (kv && cur) cur[kv[1]!] = kv[2]!;
  }
  return out;
}

/** What the archive of `root` must say about each path, from the tree itself. */
function expected(root: string, withXattrs: boolean): Map<string, Seen & { ino: string }> {
  const x = withXattrs ? xattrsOf(root) : new Map();
  const out = new Map<string, Seen & { ino: string }>();
  const visit = (rel: string): void => {
    const abs = rel === '' ? root : join(root, rel);
    const st = lstatSync(abs);
    const type = st.isFile()
      ? 'file'
      : st.isDirectory()
        ? 'dir'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isCharacterDevice()
            ? 'char'
            : st.isBlockDevice()
              ? 'block'
              : 'fifo';
    const e: Seen & { ino: string } = {
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: type === 'file' ? st.size : 0,
      xattrs: x.get(rel) ?? {},
      ino: `${st.dev}:${st.ino}`,
    };
    if (type === 'symlink') e.link = readlinkSync(abs);
    if (type === 'char' || type === 'block') {
      const rdev = lstatSync(abs, { bigint: true }).rdev; // glibc's dev_t layout
      e.dev = `${((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n)},${(rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n)}`;
    }
    if (type === 'file') e.sha = createHash('sha256').update(readFileSync(abs)).digest('hex');
    out.set(rel, e);
    if (type === 'dir') for (const n of readdirSync(abs)) visit(rel === '' ? n : `${rel}/${n}`);
  };
  visit('');
  return out;
}

/** Compares an archive's members with the tree: every path once, same facts; hardlinks as one file plus links to it. */
function sameAsTree(t: Test, members: Map<string, Seen>, want: Map<string, Seen & { ino: string }>, label: string): void {
  t.same([...members.keys()].sort(), [...want.keys()].sort(), `${label}: the archive holds exactly the tree's paths`);
  const firstOfInode = new Map<string, string>();
  let bad = 0;
  for (const [path, w] of want) {
    const m = members.get(path);
    if (!m) continue;
    const { ino, ...facts } = w;
    if (m.type === 'hardlink') {
      const target = members.get(m.link!);
      if (target?.type !== 'file' || want.get(m.link!)?.ino !== ino) {
        t.fail(`${label}: ${path} links to ${m.link}, not a name of its inode`);
        bad++;
      }
      continue;
    }
    if (w.type === 'file') {
      if (firstOfInode.has(ino)) {
        t.fail(`${label}: ${path} and ${firstOfInode.get(ino)} are one inode but both stored as files`);
        bad++;
      }
      firstOfInode.set(ino, path);
    }
    const got = { ...m };
    if (w.type === 'symlink') {
      got.mode = facts.mode;
    } // symlink modes are whatever the tool writes; Linux has none
    if (!isDeepStrictEqual(got, facts)) {
      t.same(got, facts, `${label}: ${path}`);
      bad++;
    }
  }
  t.equal(bad, 0, `${label}: every member matches the tree`);
}

/** A tree that ustar (and, without devices and the 180-byte path, v7) headers can hold whole. */
function buildBasicTree(root: string, devices: boolean): void {
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  writeFileSync(join(root, 'etc/big'), Buffer.alloc(70_000, 7));
  linkSync(join(root, 'etc/passwd'), join(root, 'etc/passwd-link'));
  symlinkSync('passwd', join(root, 'etc/link'));
  mkdirSync(join(root, 'empty'));
  if (devices) {
    // 180 bytes in all: ustar must split it into prefix and name (v7 has no prefix).
    const deep = join(root, 'a'.repeat(60), 'b'.repeat(60), 'c'.repeat(50));
    mkdirSync(join(deep, '..'), { recursive: true });
    writeFileSync(deep, 'split name\n');
  }
  sh(`chown 1000:42 ${root}/etc/passwd && chmod 4750 ${root}/etc/passwd && chmod 1777 ${root}/empty`);
  if (devices) sh(`mkdir ${root}/dev && mknod -m 0600 ${root}/dev/sda b 8 0 && mknod ${root}/dev/null c 1 3 && mkfifo ${root}/dev/fifo`);
}

t.test('GNU tar and bsdtar archives read back exactly as the tree they were made from', async (t) => {
  const dir = scratch(t, 'tar-read');
  const tree = join(dir, 'tree');
  buildTarTree(tree);
  const want = expected(tree, true);
  const x = `--xattrs --xattrs-include='*' --numeric-owner`;
  const cases: Array<[string, string]> = [
    ['GNU tar, gnu format (long names as L/K members, base-256 owner, old GNU sparse headers with extension blocks)', `tar ${x} --sparse -cf OUT -C ${tree} .`],
    ['GNU tar, posix format, sparse 0.0', `tar --format=posix ${x} --sparse --sparse-version=0.0 -cf OUT -C ${tree} .`],
    ['GNU tar, posix format, sparse 0.1', `tar --format=posix ${x} --sparse --sparse-version=0.1 -cf OUT -C ${tree} .`],
    ['GNU tar, posix format, sparse 1.0', `tar --format=posix ${x} --sparse --sparse-version=1.0 -cf OUT -C ${tree} .`],
    ['GNU tar, posix format, no sparse', `tar --format=posix ${x} -cf OUT -C ${tree} .`],
    ['bsdtar default (restricted pax: LIBARCHIVE.xattr and SCHILY.xattr, sparse 1.0)', `bsdtar --numeric-owner -cf OUT -C ${tree} .`],
    ['bsdtar pax', `bsdtar --format=pax --numeric-owner -cf OUT -C ${tree} .`],
  ];
  let i = 0;
  for (const [label, cmd] of cases) {
    const out = join(dir, `a${i++}.tar`);
    sh(cmd.replace('OUT', out));
    const r = await readArchive(out);
    sameAsTree(t, r.members, want, label);
    t.same(r.warnings, [], `${label}: no pax keyword left unknown`);
    if (/sparse(?! )| sparse /.test(label) && !label.includes('no sparse')) {
      const stored = lstatSync(out).size;
      t.ok(stored < 1 << 20, `${label}: the 12 MiB sparse file is stored sparse (${stored} bytes in all)`);
    }
  }

  t.test('bsdtar gnutar format: long names as L/K members, no xattrs', async (t) => {
    const out = join(dir, 'bsd-gnutar.tar');
    sh(`bsdtar --format=gnutar --numeric-owner -cf ${out} -C ${tree} .`);
    const r = await readArchive(out);
    // bsdtar's gnutar writer skips (with a message, exit 0) a minor number over 2^21.
    const noX = new Map([...want].filter(([k]) => k !== 'dev/big').map(([k, v]) => [k, { ...v, xattrs: {} }]));
    sameAsTree(t, r.members, noX, 'bsdtar gnutar');
  });
});

t.test('ustar and v7 headers (prefix/name split, no extensions)', async (t) => {
  const dir = scratch(t, 'tar-read-ustar');
  const withDev = join(dir, 'with-dev');
  buildBasicTree(withDev, true);
  const plain = join(dir, 'plain');
  buildBasicTree(plain, false);
  const cases: Array<[string, string, string]> = [
    ['GNU tar ustar', withDev, `tar --format=ustar --numeric-owner -cf OUT -C ${withDev} .`],
    ['bsdtar ustar', withDev, `bsdtar --format=ustar --numeric-owner -cf OUT -C ${withDev} .`],
    ['GNU tar v7', plain, `tar --format=v7 --numeric-owner -cf OUT -C ${plain} .`],
  ];
  for (const [label, tree, cmd] of cases) {
    const out = join(dir, `${label.replace(/ /g, '-')}.tar`);
    sh(cmd.replace('OUT', out));
    const r = await readArchive(out);
    sameAsTree(t, r.members, expected(tree, false), label);
  }
});

t.test('compressed input is recognised by its bytes, whatever its name', async (t) => {
  const dir = scratch(t, 'tar-read-z');
  const tree = join(dir, 'tree');
  buildTarTree(tree);
  const plain = join(dir, 'plain.tar');
  sh(`tar --xattrs --xattrs-include='*' --numeric-owner -cf ${plain} -C ${tree} .`);
  const base = await readArchive(plain);
  t.equal(base.compression, 'none');
  for (const [kind, cmd] of [
    ['gzip', 'gzip -c'],
    ['xz', 'xz -c -T1'],
    ['zstd', 'zstd -q -c'],
    ['bzip2', 'bzip2 -c'],
  ] as const) {
    const out = join(dir, `archive-${kind}.data`); // no telling suffix
    sh(`${cmd} ${plain} > ${out}`);
    const r = await readArchive(out);
    t.equal(r.compression, kind, `${kind} recognised`);
    t.same(r.members, base.members, `${kind}: the same members as the plain archive`);
  }
});

t.test('global pax headers and keywords gitroot does not know', async (t) => {
  const dir = scratch(t, 'tar-read-pax');
  const tree = join(dir, 'tree');
  buildBasicTree(tree, false);
  const out = join(dir, 'global.tar');
  // comment=... goes into a global header (ignored, like times); GNU.custom:=... into each member's.
  sh(`tar --format=posix --numeric-owner --pax-option='comment=built for the test,GNU.custom:=1' -cf ${out} -C ${tree} .`);
  t.match(readFileSync(out).toString('latin1'), /comment=built for the test/, 'the archive has the global header');
  const r = await readArchive(out);
  sameAsTree(t, r.members, expected(tree, false), 'with a global header');
  t.equal(r.warnings.length, 1, 'one warning for the unknown keyword, not one per member');
  t.match(r.warnings[0], /^ignored pax keyword GNU\.custom \(first on member \.\/ of .*global\.tar\)/);
});
