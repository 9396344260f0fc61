/**
 * Finding and staging a revision's kernel (lib/deploy/stage-kernel.ts). Selection is checked
 * exhaustively on in-memory trees (symlinks at the root and in boot/, chains, absolute links,
 * links leaving the tree, loops, links to directories, dangling links, version order,
 * leftovers, initrd pairing), then end to end on real repositories built with `gitroot commit`:
 * copies identical to the committed files, a text file refused as a kernel, a bogus initrd
 * refused, too little space on a real 2 MiB tmpfs refused before anything is written, reuse.
 */
// needs: root git
import t from 'tap';
import type { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { NoSpaceError, ObjectCorruptError } from '../lib/errors/errors.js';
import { MODE_EXECUTABLE, MODE_FILE, MODE_GITLINK, MODE_SYMLINK, MODE_TREE } from '../lib/store/git-objects.js';
import { ObjectStore } from '../lib/store/object-store.js';
import {
  type KernelSelection,
  type TreeItem,
  type TreeSource,
  checkInitrdImage,
  checkKernelImage,
  commitTree,
  resolveInTree,
  selectKernel,
  stageKernel,
  storeTreeSource,
} from '../lib/deploy/stage-kernel.js';
import { commitSpec, debianRoot, fakeKernel, makeInitrd, noise, type TreeSpec } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';

// ---------------------------------------------------------------------------------------------
// In-memory trees: flat specs ({ 'boot/x': 'content', vmlinuz: { link } , sub: { gitlink } }).

type MemSpec = Record<string, string | { link: string } | { gitlink: true } | { dir: true } | { exec: string }>;

function memTree(spec: MemSpec): { src: TreeSource; root: string } {
  const trees = new Map<string, TreeItem[]>();
  const blobs = new Map<string, string>();
  let n = 0;
  const id = (): string => (++n).toString(16).padStart(40, '0');
  type Dir = Map<string, Dir | { mode: number; oid: string }>;
  const top: Dir = new Map();
  const dirAt = (parts: string[]): Dir => {
    let d = top;
    for (const p of parts) {
      let next = d.get(p);
      if (next === undefined) {
        next = new Map();
        d.set(p, next);
      }
      d = next as Dir;
    }
    return d;
  };
  for (const [p, v] of Object.entries(spec)) {
    const parts = p.split('/');
    const name = parts.pop() as string;
    const d = dirAt(parts);
    if (typeof v === 'object' && 'dir' in v) {
      dirAt([...parts, name]);
      continue;
    }
    const oid = id();
    if (typeof v === 'string') {
      blobs.set(oid, v);
      d.set(name, { mode: MODE_FILE, oid });
    } else if ('exec' in v) {
      blobs.set(oid, v.exec);
      d.set(name, { mode: MODE_EXECUTABLE, oid });
    } else if ('link' in v) {
      blobs.set(oid, v.link);
      d.set(name, { mode: MODE_SYMLINK, oid });
    } else {
      d.set(name, { mode: MODE_GITLINK, oid });
    }
  }
  const store = (d: Dir): string => {
    const items: TreeItem[] = [];
    for (const [name, v] of d) items.push(v instanceof Map ? { name, mode: MODE_TREE, oid: store(v) } : { name, ...v });
    const oid = id();
    trees.set(oid, items);
    return oid;
  };
  const root = store(top);
  return {
    root,
    src: {
      readTree: (oid) =>
        trees.get(oid) ??
        (() => {
          throw new Error(`no tree ${oid}`);
        })(),
      readLink: (oid) => blobs.get(oid) as string,
      blobSize: (oid) => Buffer.byteLength(blobs.get(oid) as string),
    },
  };
}

function pick(spec: MemSpec): KernelSelection {
  const { src, root } = memTree(spec);
  return selectKernel(src, root);
}

const K = (v: string): MemSpec => ({ [`boot/vmlinuz-${v}`]: `kernel ${v}`, [`boot/initrd.img-${v}`]: `initrd ${v}` });

t.test('selection: symlinks first (root before boot/), following chains and absolute links inside the tree', async (t) => {
  const cases: [string, MemSpec, string | null, string | null, KernelSelection['via']][] = [
    [
      'root symlinks',
      {
        ...K('6.1.0-9-amd64'),
        ...K('6.1.0-10-amd64'),
        vmlinuz: { link: 'boot/vmlinuz-6.1.0-9-amd64' },
        'initrd.img': { link: 'boot/initrd.img-6.1.0-9-amd64' },
      },
      'boot/vmlinuz-6.1.0-9-amd64',
      'boot/initrd.img-6.1.0-9-amd64',
      'symlink',
    ],
    [
      'boot/ symlinks',
      {
        ...K('6.1.0-9-amd64'),
        ...K('6.1.0-10-amd64'),
        'boot/vmlinuz': { link: 'vmlinuz-6.1.0-9-amd64' },
        'boot/initrd.img': { link: 'initrd.img-6.1.0-9-amd64' },
      },
      'boot/vmlinuz-6.1.0-9-amd64',
      'boot/initrd.img-6.1.0-9-amd64',
      'symlink',
    ],
    [
      'root preferred over boot/',
      { ...K('1'), ...K('2'), vmlinuz: { link: 'boot/vmlinuz-1' }, 'boot/vmlinuz': { link: 'vmlinuz-2' } },
      'boot/vmlinuz-1',
      'boot/initrd.img-1',
      'symlink',
    ],
    [
      'absolute link read inside the tree',
      { ...K('6.1.0-9-amd64'), ...K('6.1.0-10-amd64'), vmlinuz: { link: '/boot/vmlinuz-6.1.0-9-amd64' } },
      'boot/vmlinuz-6.1.0-9-amd64',
      'boot/initrd.img-6.1.0-9-amd64',
      'symlink',
    ],
    [
      'chain of links',
      { ...K('5'), vmlinuz: { link: 'boot/vmlinuz' }, 'boot/vmlinuz': { link: './../boot/./vmlinuz-5' } },
      'boot/vmlinuz-5',
      'boot/initrd.img-5',
      'symlink',
    ],
    [
      'link through a symlinked directory',
      { ...K('5'), kernels: { link: 'boot' }, vmlinuz: { link: 'kernels/vmlinuz-5' } },
      'boot/vmlinuz-5',
      'boot/initrd.img-5',
      'symlink',
    ],
    ['link to a plain file named vmlinuz', { 'boot/vmlinuz': { exec: 'k' }, 'boot/initrd.img': 'i' }, 'boot/vmlinuz', 'boot/initrd.img', 'symlink'],
    [
      'highest version without links',
      { ...K('6.1.0-9-amd64'), ...K('6.1.0-10-amd64'), ...K('5.10.0-28-amd64') },
      'boot/vmlinuz-6.1.0-10-amd64',
      'boot/initrd.img-6.1.0-10-amd64',
      'version',
    ],
    [
      'leftovers and non-versions are not kernels',
      {
        ...K('6.1.0-9-amd64'),
        'boot/vmlinuz-6.1.0-10-amd64.dpkg-tmp': 'x',
        'boot/vmlinuz-6.1.0-11-amd64.old': 'x',
        'boot/vmlinuz-rescue': 'x',
        'boot/vmlinuz-': 'x',
      },
      'boot/vmlinuz-6.1.0-9-amd64',
      'boot/initrd.img-6.1.0-9-amd64',
      'version',
    ],
    ['version without initrd', { 'boot/vmlinuz-6.1.0-10-amd64': 'k', 'boot/initrd.img-6.1.0-9-amd64': 'i' }, 'boot/vmlinuz-6.1.0-10-amd64', null, 'version'],
    ['a vmlinuz-* symlink is not a versioned kernel', { 'boot/vmlinuz-9': { link: 'vmlinuz-1' }, ...K('1') }, 'boot/vmlinuz-1', 'boot/initrd.img-1', 'version'],
    ['no kernel at all', { 'etc/hostname': 'kiosk', 'boot/config-6.1.0-10-amd64': 'CONFIG' }, null, null, null],
    ['no boot directory', { 'etc/hostname': 'kiosk' }, null, null, null],
    ['boot is a file', { boot: 'not a dir' }, null, null, null],
  ];
  for (const [name, spec, kernel, initrd, via] of cases) {
    const s = pick(spec);
    t.equal(s.kernel?.path ?? null, kernel, `${name}: kernel`);
    t.equal(s.initrd?.path ?? null, initrd, `${name}: initrd`);
    t.equal(s.via, via, `${name}: via`);
  }
});

t.test('selection: unusable symlinks are ignored with a warning and the version rule applies', async (t) => {
  const cases: [string, MemSpec, RegExp][] = [
    ['link leaving the tree', { vmlinuz: { link: '../../../../boot/vmlinuz-9.9.9' } }, /ignoring vmlinuz: it leads out of the tree/],
    ['link leaving via boot/..', { 'boot/vmlinuz': { link: '../../host/vmlinuz' } }, /ignoring boot\/vmlinuz: it leads out of the tree/],
    ['dangling link', { vmlinuz: { link: 'boot/vmlinuz-9.9.9' } }, /ignoring vmlinuz: boot\/vmlinuz-9.9.9 does not exist/],
    ['link loop', { vmlinuz: { link: 'a' }, a: { link: 'b' }, b: { link: 'a' } }, /ignoring vmlinuz: too many levels of symlinks/],
    ['self loop', { vmlinuz: { link: 'vmlinuz' } }, /too many levels of symlinks/],
    ['link to a directory', { vmlinuz: { link: 'boot' } }, /ignoring vmlinuz: boot is a directory, not a file/],
    ['link to the root', { vmlinuz: { link: '/' } }, /ignoring vmlinuz: the tree root is a directory/],
    ['link to a submodule', { vmlinuz: { link: 'mod' }, mod: { gitlink: true } }, /ignoring vmlinuz: mod is a submodule/],
    ['link through a file', { vmlinuz: { link: 'etc/hostname/x' }, 'etc/hostname': 'h' }, /etc\/hostname is a file, not a directory/],
    ['empty link', { vmlinuz: { link: '' } }, /empty symlink/],
  ];
  for (const [name, spec, warning] of cases) {
    const s = pick({ ...spec, ...K('6.1.0-10-amd64') });
    t.equal(s.kernel?.path, 'boot/vmlinuz-6.1.0-10-amd64', `${name}: falls back to the version rule`);
    t.equal(s.via, 'version', `${name}: via version`);
    t.match(s.warnings.join('\n'), warning, `${name}: warned`);
    const alone = pick(spec);
    t.equal(alone.kernel, null, `${name}: alone, no kernel`);
  }
});

t.test('selection: an initrd link for another kernel version is not used', async (t) => {
  const s = pick({ ...K('1'), ...K('2'), vmlinuz: { link: 'boot/vmlinuz-2' }, 'initrd.img': { link: 'boot/initrd.img-1' } });
  t.equal(s.kernel?.path, 'boot/vmlinuz-2');
  t.equal(s.initrd?.path, 'boot/initrd.img-2');
  t.match(s.warnings.join('\n'), /ignoring initrd.img: it is for kernel 1, not 2/);
  const bad = pick({ ...K('2'), vmlinuz: { link: 'boot/vmlinuz-2' }, 'initrd.img': { link: '../initrd' } });
  t.equal(bad.initrd?.path, 'boot/initrd.img-2', 'a bad initrd link falls back to the versioned initrd');
  t.match(bad.warnings.join('\n'), /ignoring initrd.img: it leads out of the tree/);
});

t.test('resolveInTree: directories on request, files otherwise', async (t) => {
  const { src, root } = memTree({ 'a/b/c': 'x', l: { link: 'a/b' } });
  t.match(resolveInTree(src, root, 'l/c'), { ok: true, path: 'a/b/c' });
  t.match(resolveInTree(src, root, 'l', 'dir'), { ok: true, path: 'a/b' });
  t.match(resolveInTree(src, root, 'l'), { ok: false });
  t.match(resolveInTree(src, root, 'a/b/c', 'dir'), { ok: false });
  t.match(resolveInTree(src, root, '..'), { ok: false, why: 'it leads out of the tree' });
});

t.test('kernel and initrd checks by magic', async (t) => {
  const bz = fakeKernel('x');
  t.equal(checkKernelImage(bz, bz.length), null, 'bzImage');
  t.match(checkKernelImage(bz.subarray(0, 4096), 1000), /truncated/, 'tiny bzImage');
  const text = Buffer.from('total 0\ndrwxr-xr-x 2 root root 40 vmlinuz-6.1.0\n'.repeat(2000));
  t.match(checkKernelImage(text, text.length), /looks like text/, 'directory listing (the Webconverger bug)');
  const arm = Buffer.alloc(4096);
  arm.write('ARMd', 0x38, 'latin1');
  t.equal(checkKernelImage(arm, 20 << 20), null, 'arm64 Image');
  const gz = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
  t.equal(checkKernelImage(gz, 8 << 20), null, 'gzip-compressed kernel');
  const bin = noise('unknown', 4096);
  t.equal(checkKernelImage(bin, 5 << 20), null, 'large binary without magic');
  t.match(checkKernelImage(bin, 100 << 10), /no kernel image signature and only/, 'small binary without magic');

  const cpio = Buffer.from('070701000000');
  t.equal(checkInitrdImage(cpio, 512), null, 'newc cpio (early microcode)');
  for (const [name, magic] of [
    ['gzip', [0x1f, 0x8b]],
    ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
    ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]],
    ['lz4', [0x02, 0x21, 0x4c, 0x18]],
    ['lz4 frame', [0x04, 0x22, 0x4d, 0x18]],
  ] as const) {
    t.equal(checkInitrdImage(Buffer.from([...magic, 1, 2, 3]), 1000), null, name);
  }
  t.match(checkInitrdImage(Buffer.from('#!/bin/sh\n'), 1000), /neither a cpio archive/, 'a script is not an initrd');
  t.match(checkInitrdImage(Buffer.from([0x1f, 0x8b]), 2), /only 2 bytes/);
  const real = makeInitrd('check');
  t.equal(checkInitrdImage(real, real.length), null, 'a real cpio | gzip initrd');
});

// ---------------------------------------------------------------------------------------------
// Real repositories.

const V = '6.1.0-10-amd64';

interface Staging {
  home: string;
  repo: string;
  work: string;
}

function setup(t: Test): Staging {
  const work = tempDir(t, 'kernel');
  const home = path.join(work, 'home');
  fs.mkdirSync(home);
  return { home, work, repo: path.join(home, 'repo.git') };
}

function selectIn(repo: string, sha: string): { store: ObjectStore; sel: KernelSelection } {
  const store = ObjectStore.open(repo);
  return { store, sel: selectKernel(storeTreeSource(store), commitTree(store, sha, repo)) };
}

const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test('staging from a real repository: via symlink, via highest version, symlink out of the tree', async (t) => {
  const s = setup(t);
  const viaLink = debianRoot(V, 'a');
  const shaLink = commitSpec(s.work, s.repo, viaLink);
  const versions: TreeSpec = {
    'boot/vmlinuz-6.1.0-9-amd64': fakeKernel('old'),
    'boot/initrd.img-6.1.0-9-amd64': makeInitrd('old'),
    'boot/vmlinuz-6.1.0-10-amd64': fakeKernel('new'),
    'boot/initrd.img-6.1.0-10-amd64': makeInitrd('new'),
  };
  const shaVersion = commitSpec(s.work, s.repo, versions);
  const outside: TreeSpec = { ...versions, vmlinuz: { link: '../../../../../../boot/vmlinuz' } };
  const shaOutside = commitSpec(s.work, s.repo, outside);

  for (const [name, sha, spec, kpath, ipath] of [
    ['symlink', shaLink, viaLink, `boot/vmlinuz-${V}`, `boot/initrd.img-${V}`],
    ['highest version', shaVersion, versions, 'boot/vmlinuz-6.1.0-10-amd64', 'boot/initrd.img-6.1.0-10-amd64'],
    ['symlink leaving the tree ignored', shaOutside, outside, 'boot/vmlinuz-6.1.0-10-amd64', 'boot/initrd.img-6.1.0-10-amd64'],
  ] as const) {
    const { store, sel } = selectIn(s.repo, sha);
    t.equal(sel.kernel?.path, kpath, `${name}: kernel`);
    t.equal(sel.initrd?.path, ipath, `${name}: initrd`);
    if (name.includes('leaving')) t.match(sel.warnings.join('\n'), /ignoring vmlinuz: it leads out of the tree/);
    const files = await stageKernel({ dir: s.home, sha, store, selection: sel as KernelSelection & { kernel: NonNullable<KernelSelection['kernel']> } });
    store.close();
    t.same(files, {
      kernelDir: sha,
      kernel: 'vmlinuz',
      initrd: 'initrd.img',
      kernelVersion: kpath.slice('boot/vmlinuz-'.length),
      kernelSource: kpath,
      reused: false,
    });
    const dir = path.join(s.home, 'boot', sha);
    t.equal(digest(fs.readFileSync(path.join(dir, 'vmlinuz'))), digest(spec[kpath] as Buffer), `${name}: kernel copied exactly`);
    t.equal(digest(fs.readFileSync(path.join(dir, 'initrd.img'))), digest(spec[ipath] as Buffer), `${name}: initrd copied exactly`);
    t.same(fs.readdirSync(dir).sort(), ['initrd.img', 'vmlinuz']);
  }
  t.same(fs.readdirSync(path.join(s.home, 'boot')).sort(), [shaLink, shaOutside, shaVersion].sort(), 'no temp directories left');

  const { store, sel } = selectIn(s.repo, shaLink);
  const again = await stageKernel({ dir: s.home, sha: shaLink, store, selection: sel as never });
  store.close();
  t.equal(again.reused, true, 'a complete D/boot/<sha> is reused');
});

t.test('a revision without a kernel selects nothing', async (t) => {
  const s = setup(t);
  const sha = commitSpec(s.work, s.repo, { 'etc/hostname': 'kiosk\n', 'boot/grub/grub.cfg': '# nothing\n' });
  const { store, sel } = selectIn(s.repo, sha);
  store.close();
  t.equal(sel.kernel, null);
  t.equal(sel.initrd, null);
});

t.test('a text file named vmlinuz-<version> is refused and nothing is left behind', async (t) => {
  const s = setup(t);
  const listing = 'total 12\ndrwxr-xr-x 2 root root 4096 Jan  1 00:00 .\n-rw-r--r-- 1 root root 0 vmlinuz\n';
  const sha = commitSpec(s.work, s.repo, { [`boot/vmlinuz-${V}`]: listing, [`boot/initrd.img-${V}`]: makeInitrd('x') });
  const { store, sel } = selectIn(s.repo, sha);
  t.equal(sel.kernel?.path, `boot/vmlinuz-${V}`);
  const err = await stageKernel({ dir: s.home, sha, store, selection: sel as never }).catch((e: unknown) => e);
  store.close();
  t.type(err, ObjectCorruptError);
  t.match((err as Error).message, /^copy kernel: boot\/vmlinuz-6.1.0-10-amd64 in revision [0-9a-f]{40} is not a kernel: .*looks like text/);
  t.same(fs.readdirSync(path.join(s.home, 'boot')), [], 'no kernel directory, no temp directory');
});

t.test('a bogus initrd is refused and nothing is left behind', async (t) => {
  const s = setup(t);
  const sha = commitSpec(s.work, s.repo, { [`boot/vmlinuz-${V}`]: fakeKernel('k'), [`boot/initrd.img-${V}`]: '#!/bin/sh\necho not an initrd\n' });
  const { store, sel } = selectIn(s.repo, sha);
  const err = await stageKernel({ dir: s.home, sha, store, selection: sel as never }).catch((e: unknown) => e);
  store.close();
  t.type(err, ObjectCorruptError);
  t.match((err as Error).message, /^copy initrd: .* is not an initrd/);
  t.same(fs.readdirSync(path.join(s.home, 'boot')), []);
});

const notRoot = process.getuid?.() !== 0;
if (notRoot && process.env.CI === 'true') throw new Error('the tmpfs test mounts a filesystem and needs root');

t.test(
  'too little space on a real 2 MiB tmpfs: NoSpaceError before anything is written',
  { skip: notRoot ? 'needs root to mount a tmpfs' : false },
  async (t) => {
    const s = setup(t);
    const sha = commitSpec(s.work, s.repo, debianRoot(V, 'big', { [`boot/vmlinuz-${V}`]: fakeKernel('big', 3 << 20) }));
    const boot = path.join(s.home, 'boot');
    fs.mkdirSync(boot);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'gitroot-test', boot], { encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`mount -t tmpfs failed: ${m.stderr}`);
    t.teardown(() => {
      spawnSync('umount', [boot]);
    });
    fs.writeFileSync(path.join(boot, 'marker'), 'before');
    const { store, sel } = selectIn(s.repo, sha);
    const err = await stageKernel({ dir: s.home, sha, store, selection: sel as never }).catch((e: unknown) => e);
    t.type(err, NoSpaceError);
    t.equal((err as NoSpaceError).code, 'ENOSPACE');
    t.match(
      (err as Error).message,
      /^check space for kernel: not enough space in .*boot for the kernel and initrd of [0-9a-f]{40}: .* needed .* free: free space there/,
    );
    t.ok(((err as NoSpaceError).data.needed as number) > 3 << 20, 'names the bytes needed');
    t.ok(((err as NoSpaceError).data.free as number) <= 2 << 20, 'names the bytes free');
    t.same(fs.readdirSync(boot), ['marker'], 'nothing written');

    // The same revision with a small kernel fits on the same tmpfs.
    const small = commitSpec(s.work, s.repo, debianRoot(V, 'small'));
    const { store: st2, sel: sel2 } = selectIn(s.repo, small);
    const ok = await stageKernel({ dir: s.home, sha: small, store: st2, selection: sel2 as never });
    st2.close();
    store.close();
    t.equal(ok.reused, false);
    t.same(fs.readdirSync(boot).sort(), ['marker', small].sort());
  },
);
