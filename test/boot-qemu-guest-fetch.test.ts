/**
 * Under QEMU, on one disk image holding releases a and b (b good):
 *
 *   boot 1: `git-revision=<a>` typed at the boot prompt (appended to the kernel command line)
 *           boots the older release a, without touching the good or pending revision;
 *   boot 2: `git-revision=<a SHA the repository lacks>` falls back to the good b, with the
 *           reason on the console. In that boot, a second virtio disk holds a bare repository
 *           with release d (which carries the kernel and the initramfs): the guest brings up
 *           its loopback, serves that repository with real `git http-backend` on 127.0.0.1
 *           (the fixture server, bundled, run by the guest's node) and runs
 *           `gitroot fetch --dir /run/gitroot/home`, which writes the new pack and state to the
 *           medium and stages d's kernel and initrd in the home;
 *   boot 3: the host, acting as the boot loader, boots the kernel and initrd staged on the
 *           medium: d boots as the pending revision and is marked good.
 *
 * QEMU has no network device (`-nic none`): the only network is the guest's own loopback.
 * Each boot is judged from its serial console and from the disk image afterwards; boot times
 * go to /tmp/gitroot-qemu-logs/boot-qemu-guest-fetch.json.
 */
// needs: root git debian qemu
import t from 'tap';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  STEP_MARK_GOOD,
  STEP_STATUS,
  SCENARIO_PACKAGES,
  type BootTimings,
  bootGuest,
  bootTimings,
  buildDiskImage,
  buildGuestGitServer,
  buildGuestTree,
  buildInitramfs,
  commitTree,
  dumpImageFile,
  ensureKernel,
  guestAppend,
  listImageDir,
  parseGuestSerial,
  qemuAvailable,
  readImageJson,
  reviseGuestTree,
  statusOf,
  writeHomeState,
  writeTimings,
} from '../fixtures/qemu/qemu-harness.js';
import { sh } from './helpers/cli.js';
import { tempDir } from './helpers/temp-dir.js';

const BOOT_TIMEOUT_MS = 600_000;
const avail = qemuAvailable();
const skip = avail.ok || process.env.CI === 'true' ? false : `missing ${avail.missing.join(', ')}: run scripts/setup.sh`;
// Three boots and a fetch under TCG: more than tap's default file timeout on a loaded machine.
t.setTimeout(40 * 60_000);

/** A commit id no repository here has. */
const MISSING = 'deadbeef'.repeat(5);

/**
 * Release b's fetch step: runs only when the update disk is attached as /dev/vdb. It brings
 * up the loopback, serves the disk's repositories on 127.0.0.1 and fetches from there with the
 * remote in /etc/gitroot (in the tmpfs layer: gone at the next boot).
 */
const STEP_FETCH = `[ -b /dev/vdb ] || exit 0
up() { read -r u _ < /proc/uptime; echo "$u"; }
ip link set lo up
echo "GITROOT-CHECK lo=$(ip -o link show lo | grep -o 'state [A-Z]*' | head -n1)"
mkdir -p /mnt/updates
mount -o ro /dev/vdb /mnt/updates || { echo "GITROOT-CHECK fetch-exit=no-update-disk"; exit 1; }
node /mnt/updates/git-server.cjs /mnt/updates/srv > /tmp/git-server.port 2> /tmp/git-server.err &
server=$!
i=0
while [ ! -s /tmp/git-server.port ] && [ $i -lt 600 ] && kill -0 $server 2>/dev/null; do sleep 0.2; i=$((i + 1)); done
port=$(cat /tmp/git-server.port)
echo "GITROOT-CHECK git-server-port=\${port:-none} $(tr '\\n' ' ' < /tmp/git-server.err)"
mkdir -p /etc/gitroot
echo "gitroot.remote=http://127.0.0.1:$port/os.git" > /etc/gitroot/gitroot.conf
# A clock on the console while the fetch runs (its own progress lines go there too).
(while sleep 15; do echo "GITROOT-TICK uptime=$(up)"; done) &
ticker=$!
t0=$(up)
gitroot fetch --dir /run/gitroot/home --json > /tmp/fetch.json
echo "GITROOT-CHECK fetch-exit=$?"
echo "GITROOT-CHECK fetch-uptime=$t0-$(up)"
kill $ticker
echo "GITROOT-CHECK fetch-json=$(tr -d '\\n' < /tmp/fetch.json)"
kill $server
wait $server 2>/dev/null
sync
`;

interface State {
  good: string | null;
  pending: { revision: string; triesLeft: number; tries: number } | null;
  booted: string | null;
  failed: string[];
  previousGood: string[];
  staged: Record<string, { kernelDir: string | null; kernel: string | null; initrd: string | null; kernelVersion: string | null }>;
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Starts the bundled guest server on the host (a smoke test of the bundle), returns its port and a stop function. */
async function startBundledServer(bundle: string, root: string): Promise<{ port: string; stop(): void }> {
  const child = spawn(process.execPath, [bundle, root], { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(out.trim());
    });
    child.on('exit', (code) => reject(new Error(`the bundled git server exited (${code})`)));
  });
  return {
    port,
    stop: () => {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    },
  };
}

t.test('QEMU: git-revision= at the prompt, and a fetch inside the guest from its own loopback that the next boot uses', { skip }, async (t) => {
  if (!avail.ok) return t.fail(`missing ${avail.missing.join(', ')}: run scripts/setup.sh`);
  const kernel = ensureKernel();
  const initrd = buildInitramfs(kernel);
  const dir = tempDir(t, 'qemu-guest-fetch');

  // Releases a and b on the medium, b good (a the previous good one).
  // Every release carries the kernel and the initramfs these boots use, in boot/ where Debian
  // keeps them: the fetcher stages a release's kernel from its tree.
  const tree = join(dir, 'tree');
  buildGuestTree(tree, {
    label: 'a',
    gitroot: true,
    include: SCENARIO_PACKAGES,
    steps: { '60-status': STEP_STATUS },
    files: {
      [`boot/vmlinuz-${kernel.version}`]: { content: readFileSync(kernel.vmlinuz) },
      [`boot/initrd.img-${kernel.version}`]: { content: readFileSync(initrd.path) },
    },
  });
  const content = join(dir, 'medium');
  const home = join(content, 'gitroot');
  const repo = join(home, 'repo.git');
  const shaA = commitTree(tree, repo, 'release a');
  reviseGuestTree(tree, { label: 'b', steps: { '50-mark-good': STEP_MARK_GOOD, '60-status': STEP_STATUS, '70-fetch': STEP_FETCH } });
  const shaB = commitTree(tree, repo, 'release b');
  writeHomeState(home, { good: shaB, previousGood: [shaA] });
  const disk = join(dir, 'disk.img');
  // Room for the fetch: gitroot keeps gitroot.min-free plus twice the last pack free, and
  // staging d copies its kernel and initrd (47 MB) into the home.
  buildDiskImage(content, disk, { freeMb: 1024 });

  // The update disk: the fleet's repository with release d (new content: 2 MiB of its own),
  // and the server the guest runs.
  const updates = join(dir, 'updates');
  const srv = join(updates, 'srv');
  mkdirSync(srv, { recursive: true });
  sh(`git clone --quiet --bare ${repo} ${srv}/os.git`);
  reviseGuestTree(tree, {
    label: 'd',
    steps: { '50-mark-good': STEP_MARK_GOOD, '60-status': STEP_STATUS },
    files: { 'usr/share/gitroot-test/release-d.bin': { content: randomBytes(2 * 1024 * 1024) } },
  });
  const shaD = commitTree(tree, join(srv, 'os.git'), 'release d');
  sh(`rm -rf ${tree}`);
  const bundle = await buildGuestGitServer(join(updates, 'git-server.cjs'));
  {
    // The same bundle on the host first, so a broken bundle is told apart from a guest problem.
    const s = await startBundledServer(bundle, srv);
    try {
      t.match(sh(`git ls-remote http://127.0.0.1:${s.port}/os.git refs/heads/master`), shaD, 'the bundled server serves d (checked on the host)');
    } finally {
      s.stop();
    }
  }
  const updatesDisk = join(dir, 'updates.img');
  buildDiskImage(updates, updatesDisk, { label: 'UPDATES' });

  const state = (): State => readImageJson<State>(disk, '/gitroot/state.json')!;
  const timings: BootTimings[] = [];
  const boot = async (name: string, o: { append: string; disks?: string[]; kernel?: string; initrd?: string; timeoutMs?: number }) => {
    const r = await bootGuest({
      kernel: o.kernel ?? kernel.vmlinuz,
      initrd: o.initrd ?? initrd.path,
      disk: o.disks ?? [disk],
      append: o.append,
      timeoutMs: o.timeoutMs ?? BOOT_TIMEOUT_MS,
      logName: `boot-qemu-guest-fetch-${name}`,
    });
    const rep = parseGuestSerial(r.serial);
    timings.push(bootTimings(name, rep, r));
    return { r, rep };
  };

  // 1. git-revision= naming the older release a.
  {
    const { r, rep } = await boot('1-prompt-older', { append: guestAppend(`git-revision=${shaA}`) });
    t.equal(r.exitReason, 'exited', `boot 1 powered off by itself (serial log: ${r.logPath})`);
    t.same(rep.booted, { rev: shaA, kind: 'cmdline', label: 'a' }, 'boot 1: git-revision=<a> boots the older a');
    t.ok(
      rep.bootNotes.some((n) => n.includes(`revision ${shaA} (cmdline: git-revision=${shaA} names it`)),
      'the boot log says git-revision= chose it',
    );
    t.ok(rep.done, 'the test init ran to the end');
    t.match(statusOf(rep), { booted: shaA, good: shaB, pending: null }, "'gitroot status' in the guest: a booted, b still good");
    t.match(state(), { good: shaB, booted: shaA, pending: null, previousGood: [shaA], failed: [] }, 'state.json: only booted changed');
  }

  // 2. git-revision= naming a revision the repository lacks: the good b boots; its fetch step
  //    fetches d from the guest's loopback.
  const packsBefore = listImageDir(disk, '/gitroot/repo.git/objects/pack')!.filter((n) => n.endsWith('.pack'));
  {
    const { r, rep } = await boot('2-prompt-missing-and-fetch', {
      append: guestAppend(`git-revision=${MISSING}`),
      disks: [disk, updatesDisk],
      timeoutMs: 900_000,
    });
    t.equal(r.exitReason, 'exited', `boot 2 powered off by itself (serial log: ${r.logPath})`);
    t.same(rep.booted, { rev: shaB, kind: 'good', label: 'b' }, 'boot 2: git-revision=<missing> falls back to the good b');
    t.ok(rep.bootNotes.includes(`note: git-revision=${MISSING} is not in the repository: passed over`), 'the boot log says the named revision is missing');
    t.ok(
      rep.bootNotes.some((n) => n.includes(`revision ${shaB} (good: known-good revision ${shaB}: git-revision=${MISSING.slice(0, 12)}`)),
      'and why the good one boots',
    );
    t.equal(rep.checks.lo, 'state UNKNOWN', 'the guest brought its loopback up');
    t.match(rep.checks['git-server-port'], /^\d+ ?$/, 'the git server runs in the guest on 127.0.0.1');
    t.equal(rep.checks['fetch-exit'], '0', 'gitroot fetch in the guest succeeds');
    const fetched = JSON.parse(rep.checks['fetch-json'] ?? 'null') as Record<string, unknown> | null;
    t.match(
      fetched,
      { action: 'staged', revision: shaD, kernel: { kernelDir: shaD, version: kernel.version, kept: false } },
      'it fetched d and staged its kernel',
    );
    t.ok(((fetched as { fetch?: { bytes?: number } } | null)?.fetch?.bytes ?? 0) > 2 * 1024 * 1024, "the fetch brought d's new content over the loopback");
    t.ok(rep.done, 'the test init ran to the end');
    const [t0, t1] = (rep.checks['fetch-uptime'] ?? '').split('-').map(Number);
    if (t0 !== undefined && t1 !== undefined)
      t.comment(`fetch inside the guest (TCG): ${(t1 - t0).toFixed(1)} s, ${(fetched as { fetch?: { bytes?: number } } | null)?.fetch?.bytes ?? '?'} bytes`);
  }
  const st = state();
  t.match(st, { good: shaB, booted: shaB, pending: { revision: shaD, triesLeft: 3, tries: 3 }, failed: [] }, 'state.json on the image: d pending with 3 tries');
  const packsAfter = listImageDir(disk, '/gitroot/repo.git/objects/pack')!.filter((n) => n.endsWith('.pack'));
  t.equal(
    packsAfter.length,
    packsBefore.length + 1,
    `the fetch wrote one new pack to the medium (${packsAfter.filter((p) => !packsBefore.includes(p)).join(', ')})`,
  );
  t.match(readImageJson(disk, '/gitroot/last-fetch.json'), { result: 'staged', revision: shaD }, 'last-fetch.json on the medium records it');
  const staged = st.staged[shaD];
  t.match(staged, { kernelDir: shaD, kernelVersion: kernel.version }, 'state.json names the staged kernel');
  t.ok(staged?.kernel && staged.initrd, 'a kernel and an initrd are staged');
  if (!staged?.kernel || !staged.initrd) return; // nothing to boot
  const stagedKernel = join(dir, 'staged-vmlinuz');
  const stagedInitrd = join(dir, 'staged-initrd');
  dumpImageFile(disk, `/gitroot/boot/${shaD}/${staged!.kernel}`, stagedKernel);
  dumpImageFile(disk, `/gitroot/boot/${shaD}/${staged!.initrd}`, stagedInitrd);
  t.equal(sha256(stagedKernel), sha256(kernel.vmlinuz), "the staged kernel is d's kernel, byte for byte");
  t.equal(sha256(stagedInitrd), sha256(initrd.path), "the staged initrd is d's initrd, byte for byte");

  // 3. The next boot, from the kernel and initrd staged on the medium: d, pending.
  {
    const { r, rep } = await boot('3-fetched', { append: guestAppend(), kernel: stagedKernel, initrd: stagedInitrd });
    t.equal(r.exitReason, 'exited', `boot 3 powered off by itself (serial log: ${r.logPath})`);
    t.same(rep.booted, { rev: shaD, kind: 'pending', label: 'd' }, 'boot 3: the fetched d boots as the pending revision');
    t.ok(
      rep.bootNotes.some((n) => n.includes(`pending revision ${shaD}: try 1 of 3`)),
      'the boot log says try 1 of 3',
    );
    t.equal(rep.checks['mark-good-exit'], '0', 'and it is marked good');
    t.ok(rep.done, 'the test init ran to the end');
  }
  t.match(state(), { good: shaD, booted: shaD, pending: null, previousGood: [shaB, shaA], failed: [] }, 'state.json: d good, b and a previous good');

  for (const line of writeTimings('boot-qemu-guest-fetch', timings)) t.comment(line);
});
