/**
 * `gitroot image`: a bootable GPT disk image of one revision, made as an ordinary user with
 * no loop devices or mounts, and byte-identical for the same repository and revision. Named
 * steps, every check before anything is written:
 *   1. source   resolve the revision; find its kernel and initrd (the rules `gitroot fetch`
 *               stages by) and the boot loader the firmware needs, in the revision's tree;
 *   2. home     lay out the gitroot home in a work directory: repo.git (the revision's history
 *               in one pack, its fetched ref), its kernel and initrd staged in boot/<sha>/ and
 *               checked to boot gitroot, state.json naming it the known-good revision;
 *   3. boot     the boot partition's files: the boot loader from the tree, gitroot's entries
 *               (BLS for systemd-boot, extlinux.conf for syslinux) and the kernel copies;
 *   4. plan     sizes, GUIDs and serials (image-plan.ts, derived from the commit);
 *   5. fat      the boot partition (mformat, mcopy; syslinux --install for BIOS);
 *   6. ext4     the data partition (mkfs.ext4 -d; debugfs pins owners and timestamps);
 *   7. disk     the GPT (sfdisk), both partitions copied in, the BIOS boot code;
 *   8. publish  the image renamed into place (a failed run leaves no partial image).
 * docs/image.md says what the image holds and why.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { S_IFDIR, S_IFREG } from '../fsutil/file-mode.js';
import { ImageSourceError, ToolError, UsageError } from '../errors/errors.js';
import { DEFAULT_BOOT_OPTIONS, baseOptions, planBootEntries } from '../bootloader/boot-plan.js';
import { createBootloader } from '../bootloader/create-bootloader.js';
import { commitTree, resolveInTree, selectKernel, stageKernel, storeTreeSource } from '../deploy/stage-kernel.js';
import { fsyncFile } from '../fsutil/atomic-write.js';
import { step, stepAsync } from '../fsutil/named-step.js';
import { INITRD_FILE, bootFilesDir, repoPath, statePath } from '../home/home-layout.js';
import { type DeployState, emptyState } from '../home/home-state.js';
import { fetchedRefName, tagRefName } from '../store/gitroot-refs.js';
import { parseCommit } from '../store/git-objects.js';
import { ObjectStore } from '../store/object-store.js';
import { initrdBootsGitroot, listInitrd } from './initrd-contents.js';
import { BOOT_LABEL, DATA_LABEL, type Firmware, type ImagePlan, MIB, planImage, sfdiskScript } from './image-plan.js';
import { copyInto, pipeTools, runTool } from './image-tools.js';

/** Where the home lies on the data partition (the initramfs default, `gitroot.dir=`). */
export const IMAGE_HOME_DIR = 'gitroot';
/** Where the running system finds the boot partition: systemd mounts the ESP at /efi. */
export const IMAGE_BOOT_MOUNT = '/efi';

/** The boot loader files a revision's tree must hold, per firmware. */
export const LOADER_FILES: Record<Firmware, Record<string, string>> = {
  uefi: { 'systemd-boot': 'usr/lib/systemd/boot/efi/systemd-bootx64.efi' },
  bios: { gptmbr: 'usr/lib/syslinux/mbr/gptmbr.bin', ldlinux: 'usr/lib/syslinux/modules/bios/ldlinux.c32' },
};
const LOADER_PACKAGE: Record<Firmware, string> = { uefi: 'systemd-boot-efi', bios: 'extlinux and syslinux-common' };

export interface ImageOptions {
  /** The repository holding the revision. */
  repo: string;
  /** A revision: commit id, branch, tag. */
  rev: string;
  /** The image file to write. */
  out: string;
  firmware: Firmware;
  /** The whole image's size in bytes; null for the smallest that fits (it grows on first boot). */
  sizeBytes: number | null;
  /** Kernel options added to the entries (e.g. `console=ttyS0`), kept by every later update. */
  cmdline?: string;
  /** Every timestamp in the image (default SOURCE_DATE_EPOCH, else the commit's committer time). */
  epoch?: number;
  onStep?: (name: string) => void;
  env?: NodeJS.ProcessEnv;
}

export interface ImageResult {
  image: string;
  revision: string;
  firmware: Firmware;
  bytes: number;
  sha256: string;
  kernel: { path: string; version: string | null };
  partitions: Array<{ name: string; uuid: string; startMib: number; sizeMib: number }>;
  /** The kernel command line of the image's boot entry. */
  options: string;
  epoch: number;
}

interface Source {
  sha: string;
  /** An annotated tag the revision was named through (its signature can vouch for it at boot), or null. */
  tag: string | null;
  epoch: number;
  loader: Record<string, { oid: string; path: string }>;
}

/** The commit `rev` names and the tag it went through, with native git (resolution rules users know). */
async function resolveSource(repo: string, rev: string, env: NodeJS.ProcessEnv): Promise<{ sha: string; tag: string | null }> {
  let sha: string;
  try {
    sha = (await runTool('git', ['--git-dir', repo, 'rev-parse', '--verify', '--quiet', `${rev}^{commit}`], { env })).trim();
  } catch {
    throw new UsageError(`revision '${rev}' is not a commit in ${repo}: name a commit, branch or tag of it`, { data: { rev, repo } });
  }
  const id = (await runTool('git', ['--git-dir', repo, 'rev-parse', '--verify', rev], { env })).trim();
  const type = (await runTool('git', ['--git-dir', repo, 'cat-file', '-t', id], { env })).trim();
  return { sha, tag: type === 'tag' ? id : null };
}

/** Step 1: what the image is made of, refused in one line when something is missing. */
async function readSource(o: ImageOptions, store: ObjectStore, env: NodeJS.ProcessEnv): Promise<Source & { selection: ReturnType<typeof selectKernel> }> {
  const { sha, tag } = await resolveSource(o.repo, o.rev, env);
  const commit = parseCommit(store.readObject(sha).data);
  const committed = Number(/ (\d+) [+-]\d{4}$/.exec(commit.committer)?.[1] ?? 0);
  const epoch = o.epoch ?? (env.SOURCE_DATE_EPOCH !== undefined && /^\d+$/.test(env.SOURCE_DATE_EPOCH) ? Number(env.SOURCE_DATE_EPOCH) : committed);
  const src = storeTreeSource(store);
  const root = commitTree(store, sha, o.repo);
  const selection = selectKernel(src, root);
  if (selection.kernel === null) {
    throw new ImageSourceError(`revision ${sha} has no kernel (boot/vmlinuz-<version>): install a kernel package (linux-image-amd64) in the release`, {
      data: { revision: sha },
    });
  }
  if (selection.initrd === null) {
    throw new ImageSourceError(
      `revision ${sha} has ${selection.kernel.path} but no initrd beside it: ` +
        'install gitroot in the release and run update-initramfs there, so its initrd boots gitroot',
      { data: { revision: sha } },
    );
  }
  const loader: Source['loader'] = {};
  for (const [what, path] of Object.entries(LOADER_FILES[o.firmware])) {
    const r = resolveInTree(src, root, path);
    if (!r.ok) {
      throw new ImageSourceError(
        `revision ${sha} has no ${path}, which ${o.firmware === 'uefi' ? 'UEFI firmware boots (systemd-boot)' : 'BIOS boot with syslinux needs'}: ` +
          `install ${LOADER_PACKAGE[o.firmware]} in the release, or make the image with --firmware ${o.firmware === 'uefi' ? 'bios' : 'uefi'}`,
        { data: { revision: sha, path, firmware: o.firmware } },
      );
    }
    loader[what] = { oid: r.oid, path: r.path };
  }
  return { sha, tag, epoch, loader, selection };
}

/** The base kernel command line of the image's entry: where the home is and which boot loader keeps the entries. */
export function imageOptions(plan: Pick<ImagePlan, 'data' | 'boot' | 'firmware'>, extra = ''): string {
  return baseOptions(
    [
      DEFAULT_BOOT_OPTIONS,
      `gitroot.medium=PARTUUID=${plan.data.uuid.toLowerCase()}`,
      `gitroot.bootloader=${plan.firmware === 'uefi' ? 'bls' : 'extlinux'}`,
      `gitroot.boot=${IMAGE_BOOT_MOUNT}`,
      `gitroot.boot-medium=PARTUUID=${plan.boot.uuid.toLowerCase()}`,
      extra,
    ].join(' '),
  );
}

/** Step 2a: repo.git with the revision's history in one pack (deterministic: one thread, no reuse of on-disk order). */
async function writeRepository(o: ImageOptions, home: string, s: Source, env: NodeJS.ProcessEnv): Promise<void> {
  const repo = repoPath(home);
  // An empty template: no sample hooks, which differ between git versions.
  const template = join(home, '..', '.template');
  mkdirSync(template, { recursive: true });
  await runTool('git', ['init', '--bare', '--quiet', `--template=${template}`, repo], { env });
  rmSync(template, { recursive: true });
  mkdirSync(join(repo, 'objects', 'pack'), { recursive: true });
  // pack-objects writes to stdout and index-pack stores it in the new repository: the source
  // repository is only read (it may belong to another user).
  await pipeTools(
    ['git', ['--git-dir', o.repo, '-c', 'pack.threads=1', 'pack-objects', '--revs', '--stdout', '--quiet', '--delta-base-offset'], `${s.tag ?? s.sha}\n`],
    ['git', ['--git-dir', repo, 'index-pack', '--stdin', '--fix-thin']],
    env,
  );
  const writeRef = (name: string, oid: string) => {
    mkdirSync(dirname(join(repo, name)), { recursive: true });
    writeFileSync(join(repo, name), `${oid}\n`);
  };
  writeRef(fetchedRefName({ sha: s.sha }), s.sha);
  if (s.tag !== null) writeRef(tagRefName(s.sha), s.tag);
}

/** Step 2c: state.json of a machine whose known-good revision is the image's. */
export function seededState(sha: string, staged: DeployState['staged'][string]): DeployState {
  return { ...emptyState(), good: sha, staged: { [sha]: staged } };
}

/** Sets the times of everything under `dir` to `epoch` (children first, so directories keep theirs). */
function pinTimes(dir: string, epoch: number): string[] {
  const paths: string[] = [];
  const walk = (p: string) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const q = join(p, e.name);
      if (e.isDirectory()) walk(q);
      paths.push(q);
      if (e.isSymbolicLink()) lutimesSync(q, epoch, epoch);
      else utimesSync(q, epoch, epoch);
    }
  };
  walk(dir);
  utimesSync(dir, epoch, epoch);
  return paths.map((p) => relative(dir, p)).sort();
}

/** Step 3: the boot partition's files in `bootDir`. */
async function writeBootFiles(o: ImageOptions, store: ObjectStore, s: Source, home: string, bootDir: string, state: DeployState): Promise<void> {
  const blob = async (oid: string, path: string) => {
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(path, 'w', 0o644);
    try {
      await store.copyBlobToFd(oid, fd);
    } finally {
      closeSync(fd);
    }
  };
  if (o.firmware === 'uefi') {
    // The removable-media path firmware boots with no boot variables set, and systemd-boot's own.
    await blob(s.loader['systemd-boot'].oid, join(bootDir, 'EFI', 'BOOT', 'BOOTX64.EFI'));
    await blob(s.loader['systemd-boot'].oid, join(bootDir, 'EFI', 'systemd', 'systemd-bootx64.efi'));
  } else {
    await blob(s.loader.ldlinux.oid, join(bootDir, 'extlinux', 'ldlinux.c32'));
  }
  const bootloader = createBootloader(o.firmware === 'uefi' ? 'bls' : 'extlinux', { homeDir: home, bootDir });
  bootloader.writeEntries(planBootEntries(state, bootloader.location));
}

/** Every path under `dir` (relative, sorted, parents before children) with whether it is a directory. */
function listTree(dir: string): Array<{ path: string; dir: boolean; mode: number }> {
  const out: Array<{ path: string; dir: boolean; mode: number }> = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const p = rel === '' ? name : `${rel}/${name}`;
      const st = statSync(join(dir, p));
      out.push({ path: p, dir: st.isDirectory(), mode: st.mode & 0o7777 });
      if (st.isDirectory()) walk(p);
    }
  };
  walk('');
  return out;
}

/**
 * Step 5: the FAT boot partition image. Directories and files are added one by one in sorted
 * order, so the directory entries do not depend on how the work directory's file system
 * orders them; mtools stamps everything with SOURCE_DATE_EPOCH, in UTC.
 */
async function makeFat(file: string, plan: ImagePlan, bootDir: string, env: NodeJS.ProcessEnv): Promise<void> {
  closeSync(openSync(file, 'w'));
  await runTool('truncate', ['-s', String(plan.boot.sizeMib * MIB), file], { env });
  const fatEnv = { ...env, TZ: 'UTC', SOURCE_DATE_EPOCH: String(plan.epoch), MTOOLS_SKIP_CHECK: '1' };
  await runTool('mformat', ['-i', file, '-F', '-N', plan.fatSerial, '-v', BOOT_LABEL, '::'], { env: fatEnv });
  for (const e of listTree(bootDir)) {
    if (e.dir) await runTool('mmd', ['-i', file, `::/${e.path}`], { env: fatEnv });
    else await runTool('mcopy', ['-m', '-Q', '-i', file, join(bootDir, e.path), `::/${e.path}`], { env: fatEnv });
  }
  if (plan.firmware === 'bios') await runTool('syslinux', ['--install', '--directory', '/extlinux', file], { env: fatEnv });
}

/**
 * Step 6: the ext4 data partition image: an empty file system, then debugfs adds the work
 * directory's tree in sorted order (so inode numbers do not depend on the work directory's
 * file system) with owner root, the source's permissions and every timestamp the epoch.
 */
async function makeExt4(file: string, plan: ImagePlan, dataRoot: string, env: NodeJS.ProcessEnv): Promise<void> {
  closeSync(openSync(file, 'w'));
  await runTool('truncate', ['-s', String(plan.data.sizeMib * MIB), file], { env });
  const extEnv = { ...env, E2FSPROGS_FAKE_TIME: String(plan.epoch) };
  await runTool('mkfs.ext4', ['-q', '-F', '-L', DATA_LABEL, '-U', plan.ext4Uuid, '-E', `root_owner=0:0,hash_seed=${plan.ext4HashSeed},nodiscard`, file], {
    env: extEnv,
  });
  const quote = (p: string) => `"${p.replace(/(["\\])/g, '\\$1')}"`;
  const hex = `0x${plan.epoch.toString(16)}`;
  const cmds: string[] = [];
  const tree = listTree(dataRoot);
  for (const e of tree) {
    const parent = e.path.includes('/') ? `/${e.path.slice(0, e.path.lastIndexOf('/'))}` : '/';
    if (e.dir) cmds.push(`mkdir ${quote(`/${e.path}`)}`);
    else cmds.push(`cd ${quote(parent)}`, `write ${quote(join(dataRoot, e.path))} ${quote(basename(e.path))}`);
  }
  for (const e of [{ path: '', dir: true, mode: 0o755 }, { path: 'lost+found', dir: true, mode: 0o700 }, ...tree]) {
    const q = quote(`/${e.path}`);
    const mode = (e.dir ? S_IFDIR : S_IFREG) | e.mode;
    cmds.push(
      `sif ${q} mode 0${mode.toString(8)}`,
      `sif ${q} uid 0`,
      `sif ${q} gid 0`,
      ...['atime', 'ctime', 'mtime', 'crtime'].map((f) => `sif ${q} ${f} ${hex}`),
    );
  }
  const script = `${file}.debugfs`;
  writeFileSync(script, `${cmds.join('\n')}\n`);
  try {
    const log = await runTool('debugfs', ['-w', '-f', script, file], { env: extEnv });
    // debugfs reports a failed command on its output and still exits 0.
    const bad = log.split('\n').find((l) => /: (File not found|Ext2 |Could not|No free space|Filesystem full)/i.test(l));
    if (bad !== undefined) throw new ToolError(`debugfs could not build the data partition: ${bad.trim()}`);
  } finally {
    rmSync(script, { force: true });
  }
  await runTool('e2fsck', ['-fn', file], { env: extEnv });
}

/** Step 7: the whole disk: GPT, both partitions, the BIOS boot code. */
async function makeDisk(file: string, plan: ImagePlan, fat: string, ext4: string, mbr: string | null, env: NodeJS.ProcessEnv): Promise<void> {
  closeSync(openSync(file, 'w'));
  await runTool('truncate', ['-s', String(plan.totalMib * MIB), file], { env });
  await runTool('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', file], { env, input: sfdiskScript(plan) });
  copyInto(fat, file, plan.boot.startMib * MIB);
  copyInto(ext4, file, plan.data.startMib * MIB);
  if (mbr !== null) {
    // syslinux's GPT-aware MBR: the first 440 bytes only (the rest is the protective MBR's table).
    const code = Buffer.alloc(440);
    const fd = openSync(mbr, 'r');
    try {
      readSync(fd, code, 0, 440, 0);
    } finally {
      closeSync(fd);
    }
    const out = openSync(file, 'r+');
    try {
      writeSync(out, code, 0, 440, 0);
    } finally {
      closeSync(out);
    }
  }
  fsyncFile(file);
}

function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(4 * MIB);
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

function treeBytes(dir: string): number {
  let n = 0;
  const walk = (p: string) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const q = join(p, e.name);
      if (e.isDirectory()) walk(q);
      else n += statSync(q).size + 4096;
    }
  };
  walk(dir);
  return n;
}

type Selected = ReturnType<typeof selectKernel> & { kernel: NonNullable<ReturnType<typeof selectKernel>['kernel']> };

/** Step 2: the home in `dataRoot/gitroot`: repository, staged kernel (its initrd checked), state. */
async function writeHome(
  o: ImageOptions & { repo: string },
  store: ObjectStore,
  s: Source,
  selection: Selected,
  dataRoot: string,
  env: NodeJS.ProcessEnv,
): Promise<{ home: string; state: DeployState; options: string }> {
  const home = join(dataRoot, IMAGE_HOME_DIR);
  mkdirSync(home, { recursive: true });
  await stepAsync('write repository', () => writeRepository(o, home, s, env));
  const files = await stepAsync('stage kernel', () => stageKernel({ dir: home, sha: s.sha, store, selection, marginBytes: 0 }));
  const names = await stepAsync('check initrd', () => listInitrd(join(bootFilesDir(home), s.sha, INITRD_FILE)));
  if (!initrdBootsGitroot(names)) {
    throw new ImageSourceError(
      `the initrd of revision ${s.sha} (${selection.initrd?.path}) does not boot gitroot ` +
        '(no scripts/gitroot or 95gitroot module with usr/lib/gitroot/gitroot.cjs): install the gitroot package in the release and run update-initramfs there',
      { data: { revision: s.sha } },
    );
  }
  // The entry names the partitions by GUID, which does not depend on the sizes planned later.
  const ids = planImage({ commit: s.sha, firmware: o.firmware, bootBytes: 0, kernelBytes: 0, homeBytes: 0, sizeBytes: null, epoch: s.epoch });
  const options = imageOptions(ids, o.cmdline);
  const state = seededState(s.sha, {
    kernelDir: files.kernelDir,
    kernel: files.kernel,
    initrd: files.initrd,
    kernelVersion: files.kernelVersion,
    kernelSource: files.kernelSource,
    options,
    stagedAt: new Date(s.epoch * 1000).toISOString(),
  });
  step('write state', () => writeFileSync(statePath(home), `${JSON.stringify(state, null, 2)}\n`));
  return { home, state, options };
}

/** The BIOS boot code from the tree, as a file (null for UEFI). */
async function gptMbr(o: ImageOptions, store: ObjectStore, s: Source, work: string): Promise<string | null> {
  if (o.firmware !== 'bios') return null;
  const mbr = join(work, 'gptmbr.bin');
  const fd = openSync(mbr, 'w');
  try {
    await store.copyBlobToFd(s.loader.gptmbr.oid, fd);
  } finally {
    closeSync(fd);
  }
  return mbr;
}

/** Makes the disk image (see the module comment); nothing is left at `out` unless it succeeds. */
export async function buildImage(o: ImageOptions): Promise<ImageResult> {
  const env = o.env ?? process.env;
  const on = o.onStep ?? (() => {});
  const out = resolve(o.out);
  const repo = resolve(o.repo);
  step('check output', () => {
    if (!statSync(dirname(out), { throwIfNoEntry: false })?.isDirectory()) {
      throw new UsageError(`cannot write ${out}: the directory ${dirname(out)} does not exist`);
    }
  });
  const store = step('open repository', () => ObjectStore.open(repo));
  const work = mkdtempSync(join(dirname(out), `.${basename(out)}.tmp-`));
  try {
    on('source');
    const s = await stepAsync('source', () => readSource({ ...o, repo }, store, env));
    const selection = s.selection as Selected;
    on('home');
    const dataRoot = join(work, 'data');
    const { home, state, options } = await writeHome({ ...o, repo }, store, s, selection, dataRoot, env);
    on('boot');
    const bootDir = join(work, 'boot');
    mkdirSync(bootDir);
    await stepAsync('write boot files', () => writeBootFiles(o, store, s, home, bootDir, state));
    on('plan');
    const plan = planImage({
      commit: s.sha,
      firmware: o.firmware,
      bootBytes: treeBytes(bootDir),
      kernelBytes: selection.kernel.size + (selection.initrd?.size ?? 0),
      homeBytes: treeBytes(dataRoot),
      sizeBytes: o.sizeBytes,
      epoch: s.epoch,
    });
    pinTimes(bootDir, s.epoch);
    on('fat');
    const fat = join(work, 'boot.fat');
    await stepAsync('make boot partition', () => makeFat(fat, plan, bootDir, env));
    on('ext4');
    const ext4 = join(work, 'data.ext4');
    await stepAsync('make data partition', () => makeExt4(ext4, plan, dataRoot, env));
    on('disk');
    const disk = join(work, 'disk.img');
    const mbr = await gptMbr(o, store, s, work);
    await stepAsync('make disk', () => makeDisk(disk, plan, fat, ext4, mbr, env));
    on('publish');
    const sha256 = sha256File(disk);
    step('publish image', () => renameSync(disk, out));
    return {
      image: out,
      revision: s.sha,
      firmware: o.firmware,
      bytes: plan.totalMib * MIB,
      sha256,
      kernel: { path: selection.kernel.path, version: selection.kernel.version },
      partitions: [plan.boot, plan.data].map((p) => ({ name: p.name, uuid: p.uuid, startMib: p.startMib, sizeMib: p.sizeMib })),
      options,
      epoch: s.epoch,
    };
  } finally {
    store.close();
    rmSync(work, { recursive: true, force: true });
  }
}
