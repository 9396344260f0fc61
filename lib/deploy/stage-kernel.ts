/**
 * Finding and staging a revision's kernel and initrd. selectKernel reads a commit's tree (never
 * the host's files): it prefers the `vmlinuz`/`initrd.img` symlinks at the tree root, then in
 * `boot/`, following symlinks only inside the tree, and otherwise takes the highest
 * `boot/vmlinuz-<version>` by Debian version order with its `boot/initrd.img-<version>`.
 * stageKernel checks free space, copies both into `D/boot/<sha>.tmp-*`, checks their magic
 * (a text file is never accepted as a kernel), fsyncs, and renames the directory to
 * `D/boot/<sha>/`: that directory is absent or complete, never partial.
 */
import { closeSync, existsSync, fsyncSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ObjectCorruptError, RevisionNotFoundError } from '../errors/errors.js';
import type { ObjectStore } from '../store/object-store.js';
import { MODE_EXECUTABLE, MODE_FILE, MODE_SYMLINK, MODE_TREE, parseCommit, parseTree } from '../store/git-objects.js';
import { bootFilesDir, INITRD_FILE, KERNEL_FILE } from '../home/home-layout.js';
import { compareDebianVersions } from './debian-version.js';
import { SPACE_MARGIN_BYTES, checkFreeSpace } from '../fsutil/free-space.js';
import { makeTempDir, publishDir } from '../fsutil/durable-dir.js';
import { stepAsync, step } from '../fsutil/named-step.js';

/** One entry of a tree, as selectKernel needs it. */
export interface TreeItem {
  name: string;
  mode: number;
  /** Object id, 40 hex. */
  oid: string;
}

/** Read access to the trees and blobs of a repository (injected so selection can be tested without git). */
export interface TreeSource {
  /** Entries of a tree object. */
  readTree(oid: string): TreeItem[];
  /** Content of a symlink blob: the link's target. */
  readLink(oid: string): string;
  /** Size of a blob in bytes. */
  blobSize(oid: string): number;
}

/** A TreeSource reading from an ObjectStore (every object verified against its id). */
export function storeTreeSource(store: ObjectStore): TreeSource {
  const trees = new Map<string, TreeItem[]>();
  return {
    readTree(oid) {
      let items = trees.get(oid);
      if (items === undefined) {
        const obj = store.readObject(oid);
        if (obj.type !== 'tree') throw new ObjectCorruptError(`object ${oid} is a ${obj.type}, not a tree: the repository is damaged; run 'git fsck' on it`);
        items = parseTree(obj.data).map((e) => ({ name: e.name, mode: e.mode, oid: e.oid.toString('hex') }));
        trees.set(oid, items);
      }
      return items;
    },
    readLink(oid) {
      const obj = store.readObject(oid);
      if (obj.type !== 'blob') throw new ObjectCorruptError(`object ${oid} is a ${obj.type}, not a blob: the repository is damaged; run 'git fsck' on it`);
      return obj.data.toString('utf8');
    },
    blobSize(oid) {
      return store.readHeader(oid).size;
    },
  };
}

/** The tree id of commit `sha` (RevisionNotFoundError if the repository lacks it). */
export function commitTree(store: ObjectStore, sha: string, repo: string): string {
  if (!store.has(sha)) {
    throw new RevisionNotFoundError(`commit ${sha} is not in ${repo}: fetch it first (or check the revision)`, { data: { sha, repo } });
  }
  const obj = store.readObject(sha);
  if (obj.type !== 'commit') {
    throw new RevisionNotFoundError(`${sha} in ${repo} is a ${obj.type}, not a commit: name a commit`, { data: { sha, repo } });
  }
  return parseCommit(obj.data).tree;
}

/** A file chosen from the tree. */
export interface KernelFile {
  /** Path of the file in the tree (symlinks resolved), e.g. `boot/vmlinuz-6.1.0-10-amd64`. */
  path: string;
  /** Blob id, 40 hex. */
  oid: string;
  size: number;
  /** Version from the file name (`vmlinuz-<version>`, `initrd.img-<version>`), or null. */
  version: string | null;
}

/** What selectKernel found. */
export interface KernelSelection {
  /** The kernel, or null when the tree has none. */
  kernel: KernelFile | null;
  /** The initrd for it, or null. */
  initrd: KernelFile | null;
  /** How the kernel was found. */
  via: 'symlink' | 'version' | null;
  /** Symlinks ignored and other oddities, one line each. */
  warnings: string[];
}

/** Symlink hops allowed while resolving one path (Linux's limit). */
const MAX_LINKS = 40;

type Resolved = { ok: true; path: string; oid: string; mode: number } | { ok: false; why: string };

/**
 * Resolves `path` inside the tree `root`, following symlinks only inside it: absolute targets
 * are paths in the tree (what the booted system would open), a target climbing above the tree
 * root is refused. `want` says whether the result must be a regular file or a directory.
 */
export function resolveInTree(src: TreeSource, root: string, path: string, want: 'file' | 'dir' = 'file'): Resolved {
  let queue = path.split('/').filter((c) => c !== '');
  const dirs: { name: string; oid: string }[] = [];
  let hops = 0;
  while (queue.length > 0) {
    const name = queue.shift() as string;
    if (name === '.') continue;
    if (name === '..') {
      if (dirs.length === 0) return { ok: false, why: 'it leads out of the tree' };
      dirs.pop();
      continue;
    }
    const here = [...dirs.map((d) => d.name), name].join('/');
    const entry = src.readTree(dirs.length === 0 ? root : dirs[dirs.length - 1].oid).find((e) => e.name === name);
    if (entry === undefined) return { ok: false, why: `${here} does not exist in the tree` };
    if (entry.mode === MODE_SYMLINK) {
      if (++hops > MAX_LINKS) return { ok: false, why: 'too many levels of symlinks (a loop)' };
      const target = src.readLink(entry.oid);
      if (target === '') return { ok: false, why: `${here} is an empty symlink` };
      if (target.startsWith('/')) dirs.length = 0;
      queue = [...target.split('/').filter((c) => c !== ''), ...queue];
      continue;
    }
    if (entry.mode === MODE_TREE) {
      dirs.push({ name, oid: entry.oid });
      continue;
    }
    if (entry.mode !== MODE_FILE && entry.mode !== MODE_EXECUTABLE) return { ok: false, why: `${here} is a submodule, not a file` };
    if (queue.length > 0) return { ok: false, why: `${here} is a file, not a directory` };
    if (want === 'dir') return { ok: false, why: `${here} is a file, not a directory` };
    return { ok: true, path: here, oid: entry.oid, mode: entry.mode };
  }
  const here = dirs.map((d) => d.name).join('/');
  if (want === 'file') return { ok: false, why: `${here === '' ? 'the tree root' : here} is a directory, not a file` };
  return { ok: true, path: here, oid: dirs.length === 0 ? root : dirs[dirs.length - 1].oid, mode: MODE_TREE };
}

/** Whether the entry `name` exists directly in directory `dir` ('' = root) of the tree, without following it. */
function entryExists(src: TreeSource, root: string, dir: string, name: string): boolean {
  const d = dir === '' ? { ok: true as const, oid: root } : resolveInTree(src, root, dir, 'dir');
  if (!d.ok) return false;
  return src.readTree(d.oid).some((e) => e.name === name);
}

/** Version in a Debian file name: `vmlinuz-6.1.0-10-amd64` -> `6.1.0-10-amd64`. */
function versionOf(path: string, prefix: string): string | null {
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (!base.startsWith(prefix)) return null;
  const v = base.slice(prefix.length);
  return isPlausibleVersion(v) ? v : null;
}

/** Version strings the kernel packages use; package-manager leftovers (`.dpkg-tmp`, `.old`, `.bak`) are not. */
function isPlausibleVersion(v: string): boolean {
  return /^[0-9][A-Za-z0-9.+~_-]*$/.test(v) && !/\.(dpkg-[a-z]+|old|bak|orig)$/.test(v);
}

/** Where the `vmlinuz`/`initrd.img` symlinks are looked for, in order: Debian's default (root) first. */
const LINK_DIRS = ['', 'boot'];

function fileOf(src: TreeSource, r: Resolved & { ok: true }, prefix: string): KernelFile {
  return { path: r.path, oid: r.oid, size: src.blobSize(r.oid), version: versionOf(r.path, prefix) };
}

/** Resolves the link `<dir>/<name>` if it exists; pushes a warning when it exists but is unusable. */
function linked(src: TreeSource, root: string, dir: string, name: string, prefix: string, warnings: string[]): KernelFile | null {
  if (!entryExists(src, root, dir, name)) return null;
  const path = dir === '' ? name : `${dir}/${name}`;
  const r = resolveInTree(src, root, path);
  if (!r.ok) {
    warnings.push(`ignoring ${path}: ${r.why}`);
    return null;
  }
  return fileOf(src, r, prefix);
}

/**
 * Chooses the kernel and initrd of the tree `root` (pure apart from reading `src`): the
 * `vmlinuz` symlink (root, then boot/) if it resolves to a file inside the tree, else the
 * highest `boot/vmlinuz-<version>`; the initrd is the `initrd.img` link beside the kernel link
 * when it matches the kernel's version, else `boot/initrd.img-<version>`.
 */
export function selectKernel(src: TreeSource, root: string): KernelSelection {
  const warnings: string[] = [];
  let kernel: KernelFile | null = null;
  let via: KernelSelection['via'] = null;
  let linkDir: string | null = null;
  for (const dir of LINK_DIRS) {
    kernel = linked(src, root, dir, 'vmlinuz', 'vmlinuz-', warnings);
    if (kernel !== null) {
      via = 'symlink';
      linkDir = dir;
      break;
    }
  }
  const boot = resolveInTree(src, root, 'boot', 'dir');
  const bootItems = boot.ok ? src.readTree(boot.oid) : [];
  const bootPath = boot.ok ? boot.path : 'boot';
  const isFile = (m: number): boolean => m === MODE_FILE || m === MODE_EXECUTABLE;
  if (kernel === null) {
    const versions = bootItems
      .filter((e) => isFile(e.mode) && e.name.startsWith('vmlinuz-') && isPlausibleVersion(e.name.slice(8)))
      .sort((a, b) => compareDebianVersions(b.name.slice(8), a.name.slice(8)));
    const best = versions[0];
    if (best !== undefined) {
      kernel = { path: `${bootPath}/${best.name}`, oid: best.oid, size: src.blobSize(best.oid), version: best.name.slice(8) };
      via = 'version';
    }
  }
  if (kernel === null) return { kernel: null, initrd: null, via: null, warnings };

  let initrd: KernelFile | null = null;
  if (linkDir !== null) {
    const link = linked(src, root, linkDir, 'initrd.img', 'initrd.img-', warnings);
    if (link !== null && kernel.version !== null && link.version !== null && link.version !== kernel.version) {
      warnings.push(`ignoring ${linkDir === '' ? '' : linkDir + '/'}initrd.img: it is for kernel ${link.version}, not ${kernel.version}`);
    } else {
      initrd = link;
    }
  }
  if (initrd === null && kernel.version !== null) {
    const name = `initrd.img-${kernel.version}`;
    const e = bootItems.find((x) => x.name === name && isFile(x.mode));
    if (e !== undefined) initrd = { path: `${bootPath}/${name}`, oid: e.oid, size: src.blobSize(e.oid), version: kernel.version };
  }
  return { kernel, initrd, via, warnings };
}

/** Smallest file accepted as a kernel when it carries a known image signature. */
export const MIN_KERNEL_BYTES = 64 * 1024;
/** Smallest file accepted as a kernel without a known signature (it must also be binary). */
export const MIN_UNKNOWN_KERNEL_BYTES = 1024 * 1024;
/** Bytes of a file's head that the checks look at. */
export const HEAD_BYTES = 4096;

function at(head: Buffer, off: number, bytes: number[]): boolean {
  return head.length >= off + bytes.length && bytes.every((b, i) => head[off + i] === b);
}

/** Compressed-stream magics the kernel can unpack an initramfs from (and kernels ship in). */
const COMPRESSED: [string, number[]][] = [
  ['gzip', [0x1f, 0x8b]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
  ['lz4', [0x04, 0x22, 0x4d, 0x18]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['lzma', [0x5d, 0x00, 0x00]],
  ['lzo', [0x89, 0x4c, 0x5a, 0x4f]],
];

/** The kind of kernel image `head` starts like, or null. */
export function kernelImageKind(head: Buffer): string | null {
  if (at(head, 0x202, [0x48, 0x64, 0x72, 0x53])) return 'x86 bzImage';
  if (at(head, 0x38, [0x41, 0x52, 0x4d, 0x64])) return 'arm64 Image';
  if (at(head, 0x38, [0x52, 0x53, 0x43, 0x05])) return 'riscv Image';
  if (at(head, 0, [0x27, 0x05, 0x19, 0x56])) return 'U-Boot uImage';
  if (at(head, 0, [0x4d, 0x5a])) return 'EFI PE image';
  for (const [name, magic] of COMPRESSED) if (at(head, 0, magic)) return `${name}-compressed image`;
  return null;
}

/** Why `head` (the first bytes) of a `size`-byte file is not a plausible kernel, or null if it is. */
export function checkKernelImage(head: Buffer, size: number): string | null {
  const kind = kernelImageKind(head);
  if (kind !== null) return size >= MIN_KERNEL_BYTES ? null : `a ${kind} of only ${size} bytes is truncated`;
  const sample = head.subarray(0, Math.min(head.length, HEAD_BYTES));
  if (!sample.includes(0)) return `it has no kernel image signature (no bzImage 'HdrS' at 0x202) and looks like text`;
  if (size < MIN_UNKNOWN_KERNEL_BYTES) return `it has no kernel image signature and only ${size} bytes`;
  return null;
}

/** The format `head` of an initrd starts like (cpio or a compressed stream), or null. */
export function initrdImageKind(head: Buffer): string | null {
  const ascii = head.toString('latin1', 0, 6);
  if (ascii === '070701' || ascii === '070702' || ascii === '070707') return 'cpio';
  if (at(head, 0, [0xc7, 0x71]) || at(head, 0, [0x71, 0xc7])) return 'cpio (binary)';
  for (const [name, magic] of COMPRESSED) if (at(head, 0, magic)) return name;
  return null;
}

/** Why `head` of a `size`-byte file is not a plausible initrd, or null if it is. */
export function checkInitrdImage(head: Buffer, size: number): string | null {
  if (initrdImageKind(head) === null) return 'it is neither a cpio archive nor a gzip, zstd, xz, lz4, bzip2, lzma or lzo stream';
  if (size < 32) return `it has only ${size} bytes`;
  return null;
}

/** What stageKernel put in place. */
export interface StagedKernelFiles {
  /** Commit id whose `D/boot/<id>/` holds the files (the staged revision itself). */
  kernelDir: string;
  kernel: string;
  initrd: string | null;
  kernelVersion: string | null;
  kernelSource: string;
  /** True when `D/boot/<sha>/` already held these files and nothing was copied. */
  reused: boolean;
}

export interface StageKernelOptions {
  /** The gitroot home `D`. */
  dir: string;
  /** The revision whose kernel is staged. */
  sha: string;
  store: ObjectStore;
  /** What selectKernel chose for it (kernel not null). */
  selection: KernelSelection & { kernel: KernelFile };
  /** Space kept free beyond the files' size (default SPACE_MARGIN_BYTES). */
  marginBytes?: number;
}

function readHead(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(HEAD_BYTES);
    const n = readSync(fd, buf, 0, HEAD_BYTES, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

async function copyBlob(store: ObjectStore, oid: string, path: string): Promise<void> {
  const fd = openSync(path, 'wx', 0o644);
  try {
    await store.copyBlobToFd(oid, fd);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function sizeOrNull(path: string): number | null {
  try {
    return statSync(path).size;
  } catch {
    return null;
  }
}

/**
 * Copies the selected kernel and initrd to `D/boot/<sha>/` (kernel as KERNEL_FILE, initrd as
 * INITRD_FILE). Steps: check space, copy into a temp directory, check both files' magic,
 * fsync, rename into place. When `D/boot/<sha>/` already holds files of the right sizes (they
 * were checked when staged), nothing is copied. Throws NoSpaceError before writing anything
 * when the files do not fit, and ObjectCorruptError when a file is not a kernel or initrd.
 */
export async function stageKernel(opts: StageKernelOptions): Promise<StagedKernelFiles> {
  const { dir, sha, store, selection } = opts;
  const { kernel, initrd } = selection;
  const bootDir = bootFilesDir(dir);
  const final = join(bootDir, sha);
  const result = {
    kernelDir: sha,
    kernel: KERNEL_FILE,
    initrd: initrd === null ? null : INITRD_FILE,
    kernelVersion: kernel.version,
    kernelSource: kernel.path,
  };
  const have = step(
    'check staged kernel',
    () =>
      existsSync(final) &&
      sizeOrNull(join(final, KERNEL_FILE)) === kernel.size &&
      (initrd === null ? !existsSync(join(final, INITRD_FILE)) : sizeOrNull(join(final, INITRD_FILE)) === initrd.size),
  );
  if (have) return { ...result, reused: true };

  step('check space for kernel', () => {
    const needed = kernel.size + (initrd?.size ?? 0);
    checkFreeSpace(existsSync(bootDir) ? bootDir : dir, needed, `the kernel and initrd of ${sha}`, opts.marginBytes ?? SPACE_MARGIN_BYTES);
  });
  const tmp = step('create kernel directory', () => makeTempDir(bootDir, sha));
  try {
    await stepAsync('copy kernel', async () => {
      await copyBlob(store, kernel.oid, join(tmp, KERNEL_FILE));
      const why = checkKernelImage(readHead(join(tmp, KERNEL_FILE)), kernel.size);
      if (why !== null) {
        throw new ObjectCorruptError(
          `${kernel.path} in revision ${sha} is not a kernel: ${why}; ` + 'fix the release (commit a real kernel) or stage another revision',
          { data: { path: kernel.path, reason: why } },
        );
      }
    });
    if (initrd !== null) {
      await stepAsync('copy initrd', async () => {
        await copyBlob(store, initrd.oid, join(tmp, INITRD_FILE));
        const why = checkInitrdImage(readHead(join(tmp, INITRD_FILE)), initrd.size);
        if (why !== null) {
          throw new ObjectCorruptError(
            `${initrd.path} in revision ${sha} is not an initrd: ${why}; ` + 'fix the release (commit a real initramfs) or stage another revision',
            { data: { path: initrd.path, reason: why } },
          );
        }
      });
    }
    step('publish kernel directory', () => publishDir(tmp, final));
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { ...result, reused: false };
}
