/**
 * Fixtures for the deploy and boot loader tests, built at run time: fake-but-valid kernels (a
 * binary file with the bzImage `HdrS` magic at 0x202), real initrds (`cpio -o -H newc | gzip`,
 * or bsdtar's newc writer where cpio is missing), OS trees with Debian's kernel names and
 * symlinks, committed with the real `gitroot commit`.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, PROJECT_ROOT } from './cli.js';

export { PROJECT_ROOT };

/** Deterministic pseudo-random bytes (with NULs, so never text) for `seed`. */
export function noise(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  for (let i = 0; i < size; i += 97) out[i] = 0;
  return out;
}

/** A fake x86 kernel: binary noise with `HdrS` at 0x202 (what the bzImage check looks for). */
export function fakeKernel(seed: string, size = 300 * 1024): Buffer {
  const k = noise(`kernel:${seed}`, size);
  k.write('HdrS', 0x202, 'latin1');
  return k;
}

let archiver: 'cpio' | 'bsdtar' | null | undefined;
function whichArchiver(): 'cpio' | 'bsdtar' {
  if (archiver === undefined) {
    archiver = spawnSync('cpio', ['--version']).status === 0 ? 'cpio' : spawnSync('bsdtar', ['--version']).status === 0 ? 'bsdtar' : null;
  }
  if (archiver === null) throw new Error("neither cpio nor bsdtar is installed: 'apt-get install cpio'");
  return archiver;
}

/** A real initrd: a newc cpio archive of a small tree (holding `seed`), gzip-compressed. */
export function makeInitrd(seed: string): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gitroot-initrd-'));
  try {
    fs.mkdirSync(path.join(dir, 'scripts'));
    fs.writeFileSync(path.join(dir, 'init'), `#!/bin/sh\necho ${seed}\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'scripts', 'gitroot'), `# ${seed}\n`);
    const cmd =
      whichArchiver() === 'cpio'
        ? 'find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -n -9'
        : 'find . | LC_ALL=C sort | bsdtar --format newc -cf - -T - | gzip -n -9';
    const r = spawnSync('bash', ['-c', cmd], { cwd: dir, maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`building an initrd failed: ${r.stderr.toString()}`);
    return r.stdout;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A tree description: path -> file content, `{ link: target }`, or `{ dir: true }`. */
export type TreeSpec = Record<string, string | Buffer | { link: string } | { dir: true }>;

/** Writes `spec` under `root` (created). */
export function writeTree(root: string, spec: TreeSpec): void {
  fs.mkdirSync(root, { recursive: true });
  for (const [rel, v] of Object.entries(spec)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (typeof v === 'string' || Buffer.isBuffer(v)) fs.writeFileSync(p, v);
    else if ('link' in v) fs.symlinkSync(v.link, p);
    else fs.mkdirSync(p, { recursive: true });
  }
}

/** A minimal Debian-like root with kernel `version`: boot/vmlinuz-V, boot/initrd.img-V and the root symlinks. */
export function debianRoot(version: string, seed: string, extra: TreeSpec = {}): TreeSpec {
  return {
    'etc/os-release': `ID=debian\nVERSION_ID=12\nBUILD=${seed}\n`,
    'usr/bin/true': '#!/bin/sh\n',
    [`boot/vmlinuz-${version}`]: fakeKernel(`${seed}:${version}`),
    [`boot/initrd.img-${version}`]: makeInitrd(`${seed}:${version}`),
    vmlinuz: { link: `boot/vmlinuz-${version}` },
    'initrd.img': { link: `boot/initrd.img-${version}` },
    ...extra,
  };
}

/** Commits the tree `spec` to `repo` with the real `gitroot commit`; returns the commit id. */
export function commitSpec(work: string, repo: string, spec: TreeSpec, message = 'release'): string {
  const root = fs.mkdtempSync(path.join(work, 'tree-'));
  writeTree(root, spec);
  const r = spawnSync(process.execPath, [CLI, 'commit', root, '--repo', repo, '-m', message], { encoding: 'utf8' });
  fs.rmSync(root, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`gitroot commit failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim();
}

/** The compiled child-process driver (built by `tsc` with the rest of dist/). */
export const DEPLOY_CHILD = path.join(PROJECT_ROOT, 'dist', 'test', 'helpers', 'deploy-child.js');
