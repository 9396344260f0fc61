/**
 * examples/kiosk/build.sh end to end: two releases of the Debian 13 kiosk image (real
 * mmdebstrap, the real gitroot .deb installed with apt, the real update-initramfs) committed
 * into one repository, the second on top of the first, both signed. Checked in the committed
 * trees: the kernel, an initrd that holds gitroot and the baked-in allowed-signers
 * (lsinitramfs), the gitroot units and the kiosk service enabled, tty1's getty masked, the
 * settings file with the remote, each release's label; and the signatures verify with git.
 * Sizes and times are reported as comments, never asserted. Needs root and mmdebstrap:
 * under CI=true their absence is a failure, elsewhere a skip. About 10 minutes from scratch,
 * 4 with the caches warm.
 */
// needs: root git debian
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';

// Two image builds and commits: more than tap's default file timeout from scratch.
t.setTimeout(40 * 60_000);
const ci = process.env.CI === 'true';
const missing = [
  process.getuid?.() === 0 ? null : 'root',
  spawnSync('mmdebstrap', ['--version']).status === 0 ? null : 'mmdebstrap',
  spawnSync('lsinitramfs', ['--help']).error === undefined ? null : 'lsinitramfs',
].filter((m): m is string => m !== null);
const skip = missing.length === 0 || ci ? false : `missing ${missing.join(', ')}: run scripts/setup.sh as root`;

function run(cmd: string, args: string[], opts: { input?: string } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('two kiosk releases built with examples/kiosk/build.sh', { skip }, async (t) => {
  const dir = tempDir(t, 'kiosk');
  const repo = join(dir, 'kiosk-os.git');
  const key = join(dir, 'release-key');
  t.equal(run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kiosk-release', '-f', key]).status, 0, 'a signing key');
  const remote = 'https://updates.example.com/kiosk-os.git';
  const build = (label: string): { sha: string; seconds: number } => {
    const start = Date.now();
    const r = run('bash', [join(PROJECT_ROOT, 'examples', 'kiosk', 'build.sh'), repo, '--remote', remote, '--sign-key', key, '--label', label]);
    const seconds = (Date.now() - start) / 1000;
    t.equal(r.status, 0, `build.sh --label "${label}"${r.status === 0 ? '' : `: ${r.stderr.slice(-2000)}`}`);
    const sha = r.stdout.trim().split('\n').pop() ?? '';
    t.match(sha, /^[0-9a-f]{40}$/, 'prints the new commit as its last line');
    return { sha, seconds };
  };
  const git = (...args: string[]): string => run('git', ['--git-dir', repo, ...args]).stdout;

  const one = build('Release one');
  if (!/^[0-9a-f]{40}$/.test(one.sha)) return;
  const two = build('Release two');
  if (!/^[0-9a-f]{40}$/.test(two.sha)) return;
  t.equal(git('rev-parse', `${two.sha}^`).trim(), one.sha, 'release two is committed on top of release one');
  t.equal(git('rev-parse', 'refs/heads/master').trim(), two.sha, 'master is release two');

  const show = (rev: string, path: string): string => git('show', `${rev}:${path}`);
  t.equal(show(one.sha, 'etc/kiosk-label'), 'Release one\n');
  t.equal(show(two.sha, 'etc/kiosk-label'), 'Release two\n');

  const files = git('ls-tree', '-r', '--name-only', two.sha).split('\n');
  const kernel = files.find((f) => /^boot\/vmlinuz-\d[^/]*-amd64$/.test(f));
  const initrd = files.find((f) => /^boot\/initrd\.img-\d[^/]*-amd64$/.test(f));
  t.ok(kernel, `the tree has the kernel (${kernel})`);
  t.ok(initrd, `and its initrd (${initrd})`);
  for (const f of ['usr/bin/gitroot', 'usr/lib/gitroot/gitroot_native.node', 'usr/lib/systemd/boot/efi/systemd-bootx64.efi', 'usr/bin/bootctl']) {
    t.ok(files.includes(f), `the tree has ${f}`);
  }

  // The tree stores symlinks as git symlinks: read their targets.
  const link = (path: string): string => show(two.sha, path);
  for (const u of [
    'multi-user.target.wants/gitroot-mark-good.service',
    'timers.target.wants/gitroot-fetch.timer',
    'timers.target.wants/gitroot-fsck.timer',
    'multi-user.target.wants/gitroot-grow.service',
    'boot-complete.target.requires/gitroot-health.service',
    'multi-user.target.wants/kiosk.service',
  ]) {
    t.match(link(`etc/systemd/system/${u}`), /^\/(usr\/lib|etc)\/systemd\/system\//, `${u} enabled`);
  }
  t.equal(link('etc/systemd/system/getty@tty1.service'), '/dev/null', "tty1's getty masked: the kiosk has the screen");
  const conf = show(two.sha, 'etc/gitroot/gitroot.conf');
  t.match(conf, new RegExp(`^gitroot\\.remote=${remote.replace(/\./g, '\\.')}$`, 'm'), 'the settings name the remote');
  t.match(conf, /^gitroot\.allowed-signers=\/etc\/gitroot\/allowed-signers$/m, 'and the allowed signers');
  const signers = show(two.sha, 'etc/gitroot/allowed-signers');
  t.match(signers, /^kiosk-release namespaces="git" ssh-ed25519 /, 'the allowed-signers file holds the release key');

  // The initrd, read with the host's lsinitramfs, carries gitroot and the trust root.
  if (initrd !== undefined) {
    const file = join(dir, 'initrd.img');
    const blob = spawnSync('git', ['--git-dir', repo, 'cat-file', 'blob', `${two.sha}:${initrd}`], { maxBuffer: 512 << 20 });
    writeFileSync(file, blob.stdout);
    const list = new Set(run('lsinitramfs', [file]).stdout.split('\n'));
    for (const f of ['usr/lib/gitroot/gitroot.cjs', 'usr/lib/gitroot/gitroot_native.node', 'scripts/gitroot', 'usr/bin/node', 'etc/gitroot/allowed-signers']) {
      t.ok(list.has(f), `the initrd holds ${f}`);
    }
  }

  // Both releases are signed by the key the image trusts.
  const allowed = join(dir, 'allowed');
  writeFileSync(allowed, signers);
  for (const [name, rev] of [
    ['one', one.sha],
    ['two', two.sha],
  ] as const) {
    const v = run('git', ['--git-dir', repo, '-c', `gpg.ssh.allowedSignersFile=${allowed}`, 'verify-commit', rev]);
    t.equal(v.status, 0, `release ${name} verifies with git${v.status === 0 ? '' : `: ${v.stderr}`}`);
  }

  // Measured, not asserted.
  const treeBytes = git('ls-tree', '-r', '-l', two.sha)
    .split('\n')
    .reduce((sum, l) => sum + (Number(l.split(/\s+/)[3]) || 0), 0);
  run('git', ['--git-dir', repo, 'gc', '-q']);
  const repoBytes = Number(run('du', ['-sb', repo]).stdout.split(/\s+/)[0]);
  t.comment(
    `tree: ${files.length} files, ${(treeBytes / 1e6).toFixed(1)} MB of file content; repo after git gc (2 releases): ${(repoBytes / 1e6).toFixed(1)} MB`,
  );
  t.comment(`build.sh: release one ${one.seconds.toFixed(0)} s, release two (warm caches) ${two.seconds.toFixed(0)} s`);
});
