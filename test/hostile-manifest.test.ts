/**
 * Hostile input, manifests: `.gitroot.mtree` files written by hand into commits made
 * with native git (what a hostile or broken release server could ship), served by a real
 * `gitroot mount`, and a source tree holding a manifest given to `gitroot commit`.
 *
 * The rule (docs/hostile-input.md):
 *   - a manifest that does not parse (paths with `..`, `.`, empty components, `.git`, absolute
 *     paths, bad escapes, NUL, unknown keywords or types, bad or huge numbers, keywords twice,
 *     xattrs over Linux's limits, a manifest over 64 MiB) refuses the revision: the mount
 *     fails with one line naming commit:.gitroot.mtree:LINE and the cause, exit 4;
 *   - entries for paths git does not hold are ignored when their type is one git stores
 *     (file, link); dir/char/block/fifo entries are how such paths are stored, so they are
 *     served, always inside the tree; an entry whose type disagrees with git's entry is
 *     ignored (git's entry is served with the defaults);
 *   - `gitroot commit` refuses a source tree that holds a `.gitroot.mtree` (it writes its own).
 */
// needs: root fuse git
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseManifest } from '../lib/manifest/mtree.js';
import { ManifestError } from '../lib/errors/errors.js';
import { gitroot, isMounted, mount, waitExit } from './helpers/cli.js';
import { tempDir } from './helpers/temp-dir.js';
import { gitSync } from './helpers/fetch-repos.js';
import { Campaign } from './helpers/hostile-campaign.js';

const campaign = new Campaign('2-manifests', 'test/hostile-manifest.test.ts');
t.teardown(() => campaign.save());

const HEAD = '#mtree v2.0\n';
const big = (n: number) => 'a'.repeat(n);

/** Manifests that must refuse the revision, with what the one-line error must say. */
const REFUSED: Record<string, [string, RegExp]> = {
  'dot-dot climbing out': ['./../../etc/shadow type=file mode=4755\n', /\.\." component/],
  'dot-dot in the middle': ['./usr/../../etc type=dir mode=0777\n', /component/],
  'single dot': ['./usr/./bin type=dir\n', /component/],
  'empty component': ['./usr//bin type=dir\n', /component/],
  'trailing slash': ['./usr/ type=dir\n', /component/],
  'absolute path': ['/etc/shadow type=file mode=4755 uid=0\n', /absolute path/],
  'relative path': ['etc/shadow type=file\n', /does not start with/],
  '.git component': ['./.git/config type=file\n', /\.git component/],
  'escaped dot-dot': ['./\\056\\056/etc type=dir\n', /component/],
  'escaped slash making ..': ['./a\\057..\\057..\\057x type=char device=native,1,3\n', /component/],
  'NUL byte': ['./a\\000b type=file\n', /NUL/],
  'bad escape': ['./a\\9 type=file\n', /malformed escape/],
  'not UTF-8': ['./a\\377 type=file\n', /not valid UTF-8/],
  'no type': ['./etc/hosts mode=0644\n', /no type=/],
  'unknown type': ['./x type=socket\n', /unknown type/],
  'unknown keyword': ['./etc/hosts type=file sha256digest=abc\n', /unknown keyword/],
  'not key=value': ['./etc/hosts type=file junk\n', /not a keyword=value/],
  'keyword twice': ['./etc/hosts type=file mode=0644 mode=4755\n', /given twice/],
  'empty value': ['./etc/hosts type=file mode=\n', /has no value/],
  'mode not octal': ['./etc/hosts type=file mode=0999\n', /bad mode/],
  'mode too big': ['./etc/hosts type=file mode=17777\n', /bad mode/],
  'uid negative': ['./etc/hosts type=file uid=-1\n', /bad uid/],
  'uid huge': [`./etc/hosts type=file uid=${'9'.repeat(40)}\n`, /bad uid/],
  'uid over 32 bits': ['./etc/hosts type=file uid=4294967296\n', /bad uid/],
  'uid float': ['./etc/hosts type=file uid=1e3\n', /bad uid/],
  'gid hex': ['./etc/hosts type=file gid=0x10\n', /bad gid/],
  'device on a file': ['./etc/hosts type=file device=native,1,3\n', /only allowed on char and block/],
  'device huge': ['./dev/x type=char device=native,4294967296,1\n', /bad device/],
  'device malformed': ['./dev/x type=block device=8:0\n', /bad device/],
  'char without device': ['./dev/x type=char\n', /needs device=/],
  'root not a dir': ['. type=file\n', /root "\." must have type=dir/],
  'duplicate path': ['./etc type=dir\n./etc type=dir mode=0777\n', /duplicate entry/],
  'hardlink group short': ['./etc/hosts type=file inode=1 nlink=3\n./etc/hostname type=file inode=1 nlink=3\n', /says nlink=3 but has 2/],
  'nlink 1': ['./etc/hosts type=file inode=1 nlink=1\n', /below 2/],
  'inode without nlink': ['./etc/hosts type=file inode=7\n', /go together/],
  'xattr name too long': [`./etc/hosts type=file xattr.user.${big(300)}=1\n`, /at most 255/],
  'xattr value too big': [`./etc/hosts type=file xattr.user.big=${big(70_000)}\n`, /at most 65536/],
  'xattr list too big': [
    `./etc/hosts type=file ${Array.from({ length: 300 }, (_, i) => `xattr.user.${big(240)}${i}=1`).join(' ')}\n`,
    /xattr names .* take over 65536/,
  ],
  'xattr empty name': ['./etc/hosts type=file xattr.=1\n', /bad xattr name/],
  'binary garbage': ['\x00\x01\x02\xff\xfe garbage\n', /does not start with/],
};

/** Manifests that are served, each with a check of what the mount shows. */
type Check = (mnt: string) => boolean;
const SERVED: Record<string, [string, Check, string]> = {
  'setuid on a path git does not hold': [
    './usr/bin/nothere type=file mode=4755 uid=0\n',
    (m) => !fs.existsSync(path.join(m, 'usr/bin/nothere')),
    'the path does not appear',
  ],
  'type mismatch: file entry on a git symlink': [
    './lnk type=file mode=4755 uid=0\n',
    (m) => fs.lstatSync(path.join(m, 'lnk')).isSymbolicLink() && fs.readlinkSync(path.join(m, 'lnk')) === '/etc/hosts',
    "git's symlink is served",
  ],
  'type mismatch: device on a git file': [
    './etc/hosts type=char device=native,1,1 mode=0666\n',
    (m) => fs.lstatSync(path.join(m, 'etc/hosts')).isFile() && fs.readFileSync(path.join(m, 'etc/hosts'), 'utf8') === '127.0.0.1 localhost\n',
    "git's file is served with its content",
  ],
  'device under a git file': [
    './etc/hosts/evil type=char device=native,1,1\n',
    (m) => fs.lstatSync(path.join(m, 'etc/hosts')).isFile(),
    'the file stays a file',
  ],
  'device under a git symlink': [
    './lnk/evil type=char device=native,1,1\n',
    (m) => fs.lstatSync(path.join(m, 'lnk')).isSymbolicLink() && !fs.readdirSync(m).includes('evil'),
    'the symlink stays a symlink, nothing appears',
  ],
  'directory at a new path, deep': [
    './new/a/b/c type=dir mode=0700\n',
    (m) => fs.statSync(path.join(m, 'new/a/b/c')).isDirectory() && (fs.statSync(path.join(m, 'new/a/b/c')).mode & 0o7777) === 0o700,
    'served inside the tree',
  ],
  'unknown comment and blank lines': [
    '# a comment\n\n   \n#another\n./etc/hosts type=file mode=0600\n',
    (m) => (fs.statSync(path.join(m, 'etc/hosts')).mode & 0o7777) === 0o600,
    'the entry applies',
  ],
  'CRLF line ends': ['./etc/hosts type=file mode=0640\r\n', (m) => (fs.statSync(path.join(m, 'etc/hosts')).mode & 0o7777) === 0o640, 'the entry applies'],
  'largest numbers': [
    './etc/hosts type=file uid=4294967294 gid=4294967294\n',
    (m) => fs.statSync(path.join(m, 'etc/hosts')).uid === 4294967294,
    'served as written',
  ],
  'xattr at the limit': [
    `./etc/hosts type=file xattr.user.big=${big(65536)}\n`,
    (m) => spawnSync('getfattr', ['--only-values', '-n', 'user.big', path.join(m, 'etc/hosts')]).stdout.length === 65536,
    'the 64 KiB value is served',
  ],
  'manifest is a symlink': [
    'SYMLINK',
    (m) => !fs.readdirSync(m).includes('.gitroot.mtree') && fs.readFileSync(path.join(m, 'etc/hosts'), 'utf8') === '127.0.0.1 localhost\n',
    'ignored and hidden',
  ],
};

function makeRepo(work: string): { repo: string; commitWith: (manifest: string | null) => string } {
  const tree = path.join(work, 'tree');
  const repo = path.join(work, 'r.git');
  gitSync(['init', '-q', '-b', 'main', tree]);
  fs.mkdirSync(path.join(tree, 'etc'));
  fs.mkdirSync(path.join(tree, 'usr/bin'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'etc/hosts'), '127.0.0.1 localhost\n');
  fs.writeFileSync(path.join(tree, 'etc/hostname'), 'kiosk\n');
  fs.writeFileSync(path.join(tree, 'usr/bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
  fs.symlinkSync('/etc/hosts', path.join(tree, 'lnk'));
  gitSync(['init', '-q', '--bare', repo]);
  let n = 0;
  return {
    repo,
    commitWith: (manifest) => {
      const file = path.join(tree, '.gitroot.mtree');
      fs.rmSync(file, { force: true });
      if (manifest === 'SYMLINK') fs.symlinkSync('/etc/shadow', file);
      else if (manifest !== null) fs.writeFileSync(file, manifest);
      gitSync(['add', '-A'], { cwd: tree });
      gitSync(['commit', '-q', '--allow-empty', '-m', `case ${n++}`], { cwd: tree });
      const sha = gitSync(['rev-parse', 'HEAD'], { cwd: tree });
      gitSync(['push', '-q', repo, `HEAD:refs/heads/c${n}`], { cwd: tree });
      return sha;
    },
  };
}

t.test('the parser refuses every hostile manifest with a ManifestError naming the line', async (t) => {
  for (const [what, [text, re]] of Object.entries(REFUSED)) {
    campaign.input();
    let err: unknown = null;
    try {
      parseManifest(HEAD + text, 'c:.gitroot.mtree');
    } catch (e) {
      err = e;
    }
    campaign.check(
      t,
      err instanceof ManifestError && /^c:\.gitroot\.mtree:\d+: /.test((err as Error).message) && re.test((err as Error).message),
      `${what}: ManifestError (${(err as Error)?.message?.slice(0, 160)})`,
    );
  }
});

t.test('the mount refuses a revision whose manifest is hostile; serves the rest as documented', async (t) => {
  const work = tempDir(t, 'hostile-mtree');
  const { repo, commitWith } = makeRepo(work);
  const mnt = path.join(work, 'mnt');
  fs.mkdirSync(mnt);
  // Through the real mount: a sample of the refused kinds (every kind goes through the same
  // parser, tested in full above), and every served case.
  const sample = [
    'dot-dot climbing out',
    'absolute path',
    '.git component',
    'escaped slash making ..',
    'NUL byte',
    'unknown keyword',
    'uid huge',
    'device huge',
    'xattr value too big',
    'xattr list too big',
    'binary garbage',
    'duplicate path',
  ];
  for (const what of sample) {
    const [text, re] = REFUSED[what];
    const c = commitWith(HEAD + text);
    campaign.input();
    const r = gitroot(['mount', mnt, '--repo', repo, '--rev', c]);
    const lines = r.stderr.trim().split('\n');
    campaign.check(
      t,
      r.status === 4 && lines.length === 1 && new RegExp(`${c.slice(0, 12)}:\\.gitroot\\.mtree:\\d+: `).test(lines[0]) && re.test(lines[0]),
      `mount, ${what}: refused, exit 4, one line (${r.status}: ${lines[0].slice(0, 160)})`,
    );
    campaign.check(t, !isMounted(mnt), `mount, ${what}: nothing mounted`);
  }
  // A manifest too big to hold: refused before it is read.
  const huge = commitWith(HEAD + `${'#'.repeat(1 << 20)}\n`.repeat(65));
  campaign.input();
  const r = gitroot(['mount', mnt, '--repo', repo, '--rev', huge]);
  campaign.check(
    t,
    r.status === 4 && /over the 67108864-byte limit/.test(r.stderr) && r.stderr.trim().split('\n').length === 1,
    `mount, a 65 MiB manifest: refused in one line (${r.stderr.trim().slice(0, 160)})`,
  );

  for (const [what, [text, check, says]] of Object.entries(SERVED)) {
    const c = commitWith(text === 'SYMLINK' ? text : HEAD + text);
    campaign.input();
    const m = mount(t, mnt, repo, ['--rev', c]);
    let ok = false;
    try {
      ok = check(mnt);
    } catch (e) {
      t.comment(`${what}: ${(e as Error).message}`);
    }
    campaign.check(t, ok, `mount, ${what}: ${says}`);
    campaign.check(t, fs.readFileSync(path.join(mnt, 'usr/bin/tool'), 'utf8') === '#!/bin/sh\n', `mount, ${what}: other files serve`);
    campaign.check(t, gitroot(['umount', mnt]).status === 0, `mount, ${what}: unmounted`);
    await waitExit(m.pid, 30_000);
  }
});

t.test('gitroot commit refuses a source tree holding its own .gitroot.mtree', async (t) => {
  const work = tempDir(t, 'hostile-mtree-commit');
  const src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(src, 'etc/hosts'), 'x\n');
  for (const text of [HEAD + './../../etc/shadow type=file mode=4755\n', HEAD + './etc/hosts type=file mode=4755 uid=0\n']) {
    fs.writeFileSync(path.join(src, '.gitroot.mtree'), text);
    campaign.input();
    const r = gitroot(['commit', src, '--repo', path.join(work, 'r.git'), '-m', 'x']);
    campaign.check(
      t,
      r.status !== 0 && /gitroot writes its own manifest there: remove or rename it/.test(r.stderr) && r.stderr.trim().split('\n').length === 1,
      `commit with a planted manifest: refused in one line (${r.stderr.trim()})`,
    );
    campaign.check(t, !fs.existsSync(path.join(work, 'r.git', 'refs', 'heads', 'master')), 'no commit made');
  }
});
