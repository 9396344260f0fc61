/**
 * The Debian package (scripts/build-deb.sh, npm run deb), built for Debian 13 in a real
 * trixie build root (mmdebstrap, cached) and checked the way a user meets it: lintian has no
 * errors; the .deb holds the command, the bundle, the addon linked against trixie's
 * libfuse3.so.4, the initramfs-tools and dracut parts, the units and the docs, and depends
 * on libfuse3-4 and Debian's nodejs (built for bookworm, the same sources depend on
 * libfuse3-3); `apt-get install ./gitroot_*.deb` into a fresh trixie
 * tree (kernel, initramfs-tools, systemd) succeeds, its trigger rebuilds the initrd with
 * gitroot inside (lsinitramfs), the units are enabled, and the installed `gitroot commit` and
 * `gitroot mount` serve a file over FUSE with trixie's node and libfuse3-4
 * (fixtures/deb/install-check.sh: a chroot with its own /dev and /proc in mmdebstrap's
 * private namespace). Needs root, mmdebstrap and /dev/fuse: under CI=true their absence is
 * a failure, elsewhere a skip. About 8 minutes from scratch, under 3 with the caches warm.
 */
// needs: root fuse debian
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';

const ci = process.env.CI === 'true';
const missing = [
  process.getuid?.() === 0 ? null : 'root',
  spawnSync('mmdebstrap', ['--version']).status === 0 ? null : 'mmdebstrap',
  existsSync('/dev/fuse') ? null : '/dev/fuse',
].filter((m): m is string => m !== null);
const skip = missing.length === 0 || ci ? false : `missing ${missing.join(', ')}: run scripts/setup.sh as root`;
const version = (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Runs a command, output captured (never inherited: tap's stdout is its protocol). */
function run(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('the Debian 13 package', { skip }, async (t) => {
  const out = tempDir(t, 'deb');
  const build = run('bash', [join(PROJECT_ROOT, 'scripts', 'build-deb.sh'), '--suite', 'trixie', '--out', out]);
  t.equal(build.status, 0, `npm run deb succeeds${build.status === 0 ? '' : `: ${build.stderr.slice(-2000)}`}`);
  if (build.status !== 0) return;
  const deb = build.stdout.trim().split('\n').pop() ?? '';
  t.match(deb, new RegExp(`/gitroot_${version.replace(/\./g, '\\.')}-\\d+_amd64\\.deb$`), 'named gitroot_VERSION-REV_amd64.deb, VERSION from package.json');

  await t.test('lintian reports no errors', async (t) => {
    const report = readFileSync(deb.replace(/\.deb$/, '.lintian'), 'utf8');
    const tags = report.split('\n').filter((l) => /^[EWIPX]: /.test(l));
    t.same(
      tags.filter((l) => l.startsWith('E: ')),
      [],
      'no E: tags',
    );
    t.comment(`lintian: ${tags.length === 0 ? 'clean' : tags.join(' | ')}`);
  });

  await t.test('control fields: Depends computed for trixie', async (t) => {
    const field = (name: string): string => run('dpkg-deb', ['-f', deb, name]).stdout.trim();
    t.equal(field('Package'), 'gitroot');
    t.equal(field('Architecture'), 'amd64');
    const depends = field('Depends').split(/,\s*/);
    t.ok(
      depends.some((d) => /^libfuse3-4 \(>= 3\.\d+/.test(d)),
      `libfuse3-4 from the addon's ELF dependencies (${depends.join(', ')})`,
    );
    t.notOk(
      depends.some((d) => d.startsWith('libfuse3-3')),
      "not bookworm's libfuse3-3",
    );
    t.notOk(
      depends.some((d) => d.startsWith('libnode')),
      'the addon does not link libnode: N-API comes from the loading node',
    );
    for (const d of ['nodejs (>= 20)', 'fuse3', 'git', 'ca-certificates', 'fdisk', 'e2fsprogs']) t.ok(depends.includes(d), `depends on ${d}`);
  });

  await t.test('the same sources built for bookworm depend on libfuse3-3', async (t) => {
    const outB = tempDir(t, 'deb-bookworm');
    const b = run('bash', [join(PROJECT_ROOT, 'scripts', 'build-deb.sh'), '--suite', 'bookworm', '--out', outB]);
    t.equal(b.status, 0, `build-deb.sh --suite bookworm${b.status === 0 ? '' : `: ${b.stderr.slice(-2000)}`}`);
    if (b.status !== 0) return;
    const depends = run('dpkg-deb', ['-f', b.stdout.trim().split('\n').pop() ?? '', 'Depends'])
      .stdout.trim()
      .split(/,\s*/);
    t.ok(
      depends.some((d) => /^libfuse3-3 \(>= 3\.\d+/.test(d)),
      `libfuse3-3 (${depends.join(', ')})`,
    );
    t.notOk(
      depends.some((d) => d.startsWith('libfuse3-4')),
      "not trixie's libfuse3-4",
    );
  });

  await t.test('contents', async (t) => {
    const files = new Set(
      run('dpkg-deb', ['-c', deb])
        .stdout.split('\n')
        .map((l) => l.split(/\s+/)[5]?.replace(/^\./, ''))
        .filter(Boolean),
    );
    for (const f of [
      '/usr/bin/gitroot',
      '/usr/lib/gitroot/gitroot.cjs',
      '/usr/lib/gitroot/gitroot_native.node',
      '/usr/share/initramfs-tools/hooks/gitroot',
      '/usr/share/initramfs-tools/scripts/gitroot',
      '/usr/lib/dracut/modules.d/95gitroot/module-setup.sh',
      '/usr/lib/dracut/modules.d/95gitroot/mount-gitroot.sh',
      '/usr/lib/dracut/modules.d/95gitroot/parse-gitroot.sh',
      '/usr/lib/dracut/dracut.conf.d/90-gitroot.conf',
      '/usr/lib/systemd/system/gitroot-mark-good.service',
      '/usr/lib/systemd/system/gitroot-fetch.timer',
      '/usr/lib/systemd/system/gitroot-fsck.timer',
      '/usr/share/gitroot/boot/bls-entry.conf.in',
      '/usr/share/doc/gitroot/copyright',
      '/usr/share/doc/gitroot/changelog.Debian.gz',
      '/usr/share/man/man1/gitroot.1.gz',
      '/usr/share/doc/gitroot/packaging.md',
    ])
      t.ok(files.has(f), f);
    t.notOk(
      [...files].some((f) => f.startsWith('/etc/')),
      "no files in /etc: the admin's",
    );
    const copyright = run('sh', ['-c', `dpkg-deb --fsys-tarfile '${deb}' | tar -xOf - ./usr/share/doc/gitroot/copyright`]).stdout;
    t.match(copyright, /^Format: https:\/\/www\.debian\.org\/doc\/packaging-manuals\/copyright-format\/1\.0\//, 'copyright is DEP-5');
    for (const pkg of ['commander', 'got', 'hpagent'])
      t.match(copyright, new RegExp(`^Files: node_modules/${pkg}/\\*$`, 'm'), `copyright names the bundled ${pkg}`);
  });

  await t.test('apt-get install into a fresh trixie tree: initrd, units, a FUSE mount', async (t) => {
    const res = tempDir(t, 'deb-install');
    const check = run('bash', [join(PROJECT_ROOT, 'fixtures', 'deb', 'install-check.sh'), deb, res]);
    t.equal(check.status, 0, `the tree is made and the checks run${check.status === 0 ? '' : `: ${check.stderr.slice(-2000)}`}`);
    if (check.status !== 0) return;
    const dir = join(res, 'out');
    const step = (name: string): { rc: number; log: string } => ({
      rc: Number(readFileSync(join(dir, `${name}.rc`), 'utf8')),
      log: readFileSync(join(dir, `${name}.log`), 'utf8'),
    });
    const ok = (name: string, what: string): string => {
      const s = step(name);
      t.equal(s.rc, 0, `${what}${s.rc === 0 ? '' : `: ${s.log.slice(-1500)}`}`);
      return s.log;
    };
    const install = ok('install', 'apt-get install ./gitroot.deb succeeds');
    t.match(install, /update-initramfs: Generating \/boot\/initrd\.img-/, "the package's trigger rebuilt the initrd");
    t.match(ok('status', 'dpkg knows it'), new RegExp(`^install ok installed ${version.replace(/\./g, '\\.')}-\\d+$`, 'm'));

    const initrd = new Set(ok('initrd', 'lsinitramfs reads the initrd').split('\n'));
    for (const f of [
      'usr/lib/gitroot/gitroot.cjs',
      'usr/lib/gitroot/gitroot_native.node',
      'scripts/gitroot',
      'usr/bin/node',
      'usr/lib/x86_64-linux-gnu/libfuse3.so.4',
    ]) {
      t.ok(initrd.has(f), `the initrd holds ${f}`);
    }
    // Debian's node reads these at every start (shared builtins): without them it aborts in the initramfs.
    for (const f of ['usr/share/nodejs/cjs-module-lexer/lexer.js', 'usr/share/nodejs/undici/undici-fetch.js', 'usr/share/nodejs/acorn/dist/acorn.js']) {
      t.ok(initrd.has(f), `the initrd holds node's shared builtin ${f}`);
    }
    t.ok(
      [...initrd].some((f) => /(^|\/)s?bin\/fsck\.ext4$/.test(f)),
      'and fsck.ext4, to check the medium before it is mounted',
    );
    // fuse is built into Debian's kernel; overlay is a module the hook adds.
    t.ok(
      [...initrd].some((f) => /\/kernel\/fs\/overlayfs\/overlay\.ko(\.xz|\.zst)?$/.test(f)),
      'the overlay module is in',
    );

    const units = ok('units', 'units listed');
    for (const u of [
      'multi-user.target.wants/gitroot-mark-good.service',
      'timers.target.wants/gitroot-fetch.timer',
      'timers.target.wants/gitroot-fsck.timer',
      'multi-user.target.wants/gitroot-grow.service',
      'boot-complete.target.requires/gitroot-health.service',
    ]) {
      t.match(units, new RegExp(`/etc/systemd/system/${u.replace(/\./g, '\\.')} -> /usr/lib/systemd/system/`), `${u} enabled`);
    }
    t.equal(ok('version', 'the installed gitroot runs').trim(), version);
    t.match(ok('node', 'node runs'), /^v20\./, "trixie's node 20");
    t.match(ok('ldd', "the addon's libraries resolve"), /libfuse3\.so\.4 => \/(usr\/)?lib\/x86_64-linux-gnu\/libfuse3\.so\.4/);

    t.match(ok('commit', 'gitroot commit'), /^[0-9a-f]{40}$/m);
    ok('mount', 'gitroot mount');
    t.equal(ok('read', 'a file and a symlink read through the mount'), 'served by git-fs on Debian GNU/Linux 13 (trixie)\n'.repeat(2));
    t.match(ok('mounts', 'the mount was a FUSE git-fs'), / fuse\.gitfs ro,/);
    ok('umount', 'gitroot umount');
    ok('after', 'nothing is left mounted');
  });
});
