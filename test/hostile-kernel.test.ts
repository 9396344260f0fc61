/**
 * Hostile input, kernel and initrd links: releases whose `vmlinuz`/`initrd.img`
 * symlinks point outside the tree (absolute host paths, `../../`), loop, point at a directory
 * or at a device path, or whose only kernel is itself such a link, fetched and staged by the
 * real `gitroot fetch` from a real `git http-backend`. A host file that looks exactly like a
 * kernel (and one like an initrd) sits at the absolute paths the links name.
 *
 * The rule (docs/hostile-input.md; lib/deploy/stage-kernel.ts resolves links inside the tree
 * only): no host file is ever read or staged. A bad link is ignored with a warning naming it
 * and why, and the tree's own `boot/vmlinuz-<version>` is staged instead; a release with no
 * usable kernel at all is refused in one line (exit 2) with nothing staged and no state
 * written.
 */
// needs: git server
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { gitrootAsync } from './helpers/cli.js';
import { type TreeSpec, commitSpec, debianRoot, fakeKernel, makeInitrd } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';
import { repoHealth } from './helpers/fetch-repos.js';
import { Campaign } from './helpers/hostile-campaign.js';

const campaign = new Campaign('3-kernel-links', 'test/hostile-kernel.test.ts');
t.teardown(() => campaign.save());

const work = fs.mkdtempSync('/tmp/gitroot-hostile-kernel-');
const projectRoot = path.join(work, 'srv');
const srvRepo = path.join(projectRoot, 'os.git');
const hostKernel = path.join(work, 'host-vmlinuz');
const hostInitrd = path.join(work, 'host-initrd.img');
let server: GitHttpServer;

t.before(async () => {
  fs.mkdirSync(projectRoot);
  fs.writeFileSync(hostKernel, fakeKernel('HOST KERNEL: must never be staged'));
  fs.writeFileSync(hostInitrd, makeInitrd('HOST INITRD: must never be staged'));
  server = await startGitHttpServer({ projectRoot });
});
t.teardown(async () => {
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/** Every file under `dir`, recursively. */
function files(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => path.join(dir, f))
    .filter((f) => fs.lstatSync(f).isFile());
}

const climb = '../'.repeat(12);

/** name -> [links replacing Debian's, whether the tree keeps its own boot/vmlinuz-V, what the warning says]. */
const CASES: Record<string, [TreeSpec, boolean, RegExp]> = {
  'absolute link to a host kernel': [{ vmlinuz: { link: hostKernel } }, true, /ignoring vmlinuz: .* does not exist in the tree/],
  'relative link climbing out': [{ vmlinuz: { link: `${climb}${hostKernel.slice(1)}` } }, true, /ignoring vmlinuz: it leads out of the tree/],
  'link via boot/.. climbing out': [
    { 'boot/vmlinuz': { link: `../..${hostKernel}` }, vmlinuz: { link: 'boot/vmlinuz' } },
    true,
    /ignoring vmlinuz: it leads out of the tree/,
  ],
  'link loop': [{ vmlinuz: { link: 'a' }, a: { link: 'b' }, b: { link: 'vmlinuz' } }, true, /ignoring vmlinuz: too many levels of symlinks/],
  'link to a directory': [{ vmlinuz: { link: '/boot' } }, true, /ignoring vmlinuz: boot is a directory/],
  'link to a device path': [{ vmlinuz: { link: '/dev/sda' } }, true, /ignoring vmlinuz: dev(\/sda)? does not exist in the tree/],
  'link to /proc': [{ vmlinuz: { link: '/proc/self/mem' } }, true, /ignoring vmlinuz: proc does not exist/],
  'initrd link climbing out': [{ 'initrd.img': { link: `${climb}${hostInitrd.slice(1)}` } }, true, /ignoring initrd.img: it leads out of the tree/],
  'initrd link absolute to host': [{ 'initrd.img': { link: hostInitrd } }, true, /ignoring initrd.img: .* does not exist in the tree/],
  'only kernel is a link out': [{ vmlinuz: { link: hostKernel }, 'initrd.img': { link: hostInitrd } }, false, /has no kernel/],
  'only kernel is a loop': [{ vmlinuz: { link: 'vmlinuz' } }, false, /has no kernel/],
};

let n = 0;
for (const [what, [links, keepOwn, says]] of Object.entries(CASES)) {
  t.test(what, async (t) => {
    const v = `6.1.0-${++n}-amd64`;
    const spec: TreeSpec = { ...debianRoot(v, `k${n}`), ...links };
    if (!('vmlinuz' in links)) spec.vmlinuz = { link: `boot/vmlinuz-${v}` };
    if (!keepOwn) {
      // Its own kernel is a link out too: no regular kernel file in boot/.
      delete spec[`boot/vmlinuz-${v}`];
      delete spec[`boot/initrd.img-${v}`];
      spec[`boot/vmlinuz-${v}`] = { link: hostKernel };
    }
    const sha = commitSpec(work, srvRepo, spec, what);
    campaign.input();
    const base = tempDir(t, 'hk');
    const dir = path.join(base, 'home');
    const boot = path.join(base, 'bootmedium');
    fs.mkdirSync(boot);
    const conf = path.join(base, 'gitroot.conf');
    fs.writeFileSync(conf, `gitroot.bootloader=bls\ngitroot.boot=${boot}\ngitroot.remote=${server.url('os.git')}\ngitroot.retries=0\n`);
    const cmdline = path.join(base, 'cmdline');
    fs.writeFileSync(cmdline, `quiet update-revision=${sha}\n`);
    const r = await gitrootAsync(['fetch', '--dir', dir, '--config', conf, '--cmdline', cmdline, '--json']);
    const staged = [...files(path.join(dir, 'boot')), ...files(boot)];
    const host = [fs.readFileSync(hostKernel), fs.readFileSync(hostInitrd)];
    campaign.check(t, !staged.some((f) => host.some((h) => fs.readFileSync(f).equals(h))), `${what}: no host file staged anywhere (${staged.length} files)`);
    if (keepOwn) {
      campaign.check(t, r.status === 0 && JSON.parse(r.stdout).action === 'staged', `${what}: staged (${r.status} ${r.stderr.trim().slice(0, 200)})`);
      campaign.check(t, says.test(r.stderr), `${what}: a warning names the link and why (${r.stderr.trim().slice(0, 200)})`);
      const kdir = path.join(dir, 'boot', sha);
      campaign.check(
        t,
        fs.existsSync(path.join(kdir, 'vmlinuz')) && fs.readFileSync(path.join(kdir, 'vmlinuz')).equals(spec[`boot/vmlinuz-${v}`] as Buffer),
        `${what}: the tree's own boot/vmlinuz-${v} is the staged kernel`,
      );
      campaign.check(
        t,
        fs.existsSync(path.join(kdir, 'initrd.img')) && fs.readFileSync(path.join(kdir, 'initrd.img')).equals(spec[`boot/initrd.img-${v}`] as Buffer),
        `${what}: the tree's own initrd is staged`,
      );
    } else {
      const lines = r.stderr.trim().split('\n');
      campaign.check(t, r.status === 2 && lines.length === 1 && says.test(lines[0]), `${what}: refused in one line, exit 2 (${r.status}: ${lines[0]})`);
      campaign.check(t, staged.length === 0 && !fs.existsSync(path.join(dir, 'state.json')), `${what}: nothing staged, no state written`);
    }
    const h = repoHealth(path.join(dir, 'repo.git'));
    campaign.check(t, h.fsck === 0, `${what}: the repository is fsck clean`);
  });
}
