/**
 * scanTree and commitDirectory on a real tree built here (needs root: mknod, chown,
 * security.* xattrs), checked with native git: ls-tree modes and blob contents, the
 * manifest, parents, idents, reproducibility, progress, and every error case.
 */
// needs: root git
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { addSocket } from '../fixtures/edge-tree.js';
import { GitCommandError, RepoNotFoundError, SourceTreeError, UsageError } from '../lib/errors/errors.js';
import { MANIFEST_NAME, parseManifest, type ManifestEntry } from '../lib/manifest/mtree.js';
import { commitDirectory } from '../lib/commit/commit-tree.js';
import { scanTree } from '../lib/commit/scan-tree.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** security.capability for cap_net_raw=ep (what Debian's ping carries). */
const CAP_NET_RAW = Buffer.from('0100000200200000000000000000000000000000', 'hex');
const EPOCH_ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function gitOut(gitdir: string, args: string[]): Buffer {
  return execFileSync('git', [`--git-dir=${gitdir}`, ...args], { maxBuffer: 256 << 20 });
}

function gitStr(gitdir: string, args: string[]): string {
  return gitOut(gitdir, args).toString('utf8').trim();
}

/** `git ls-tree -r -z` as path -> { mode, sha }. */
function lsTree(gitdir: string, rev: string): Map<string, { mode: string; sha: string }> {
  const out = new Map<string, { mode: string; sha: string }>();
  for (const rec of gitOut(gitdir, ['ls-tree', '-r', '-z', rev]).toString('utf8').split('\0')) {
    if (rec === '') continue;
    const tab = rec.indexOf('\t');
    const [mode, , sha] = rec.slice(0, tab).split(' ');
    out.set(rec.slice(tab + 1), { mode: mode!, sha: sha! });
  }
  return out;
}

function branchTip(gitdir: string, branch: string): string | null {
  const r = spawnSync('git', [`--git-dir=${gitdir}`, 'rev-parse', '--verify', '-q', `refs/heads/${branch}`]);
  return r.status === 0 ? r.stdout.toString().trim() : null;
}

const BIG = Buffer.alloc(3 * 1024 * 1024 + 17, 'gitroot ');

/** Regular files of the test tree: path -> [content, mode, uid, gid]. */
const FILES: Record<string, [string | Buffer, number, number, number]> = {
  'bin/su': ['setuid binary\n', 0o4755, 0, 0],
  'bin/sgid': ['setgid binary\n', 0o2755, 0, 42],
  'bin/sticky': ['sticky file\n', 0o1644, 0, 0],
  'bin/tool': ['#!/bin/sh\n', 0o755, 0, 0],
  'bin/ping': ['ping with caps\n', 0o755, 0, 0],
  'etc/shadow': ['root:*:19000::::::\n', 0o640, 0, 42],
  'etc/secret': ['secret\n', 0o600, 0, 0],
  'etc/nothing': ['mode 0000\n', 0o000, 0, 0],
  'etc/exec-0700': ['owner-only exec\n', 0o700, 0, 0],
  'etc/plain': ['', 0o644, 0, 0],
  'home/user/.profile': ['PATH=$HOME/bin\n', 0o644, 1000, 1000],
  'srv/nobody': ['nobody\n', 0o644, 65534, 65534],
  'var/tmp/keep': ['kept\n', 0o600, 1000, 1000],
  'hard/a': ['shared by three names\n', 0o640, 0, 0],
  'attrs/user': ['has user.test\n', 0o644, 0, 0],
  'big/three-mib': [BIG, 0o644, 0, 0],
  'names/with space': ['1\n', 0o644, 0, 0],
  'names/café 日本': ['2\n', 0o644, 0, 0],
  'names/new\nline': ['3\n', 0o644, 0, 0],
  'names/back\\slash': ['4\n', 0o644, 0, 0],
  'names/#hash=eq': ['5\n', 0o644, 0, 0],
  'names/quote"dq': ['6\n', 0o644, 0, 0],
  'names/tab\there': ['7\n', 0o644, 0, 0],
  'names/ leading': ['8\n', 0o644, 0, 0],
};
const HARDLINKS = ['hard/b', 'other/c'];
const SYMLINKS: Record<string, string> = {
  'links/dangling': 'does/not/exist',
  'links/absolute': '/etc/passwd',
  'links/relative': '../etc/shadow',
  'links/spaced name': 'target with space',
};

/** Build the test tree under `root` (which must not exist). */
async function buildTree(root: string): Promise<void> {
  await fs.mkdir(root);
  for (const [rel, [content, mode, uid, gid]] of Object.entries(FILES)) {
    const abs = path.join(root, rel);
    await fs.mkdir(path.dirname(abs), { recursive: true });
    await fs.writeFile(abs, content);
    await fs.chown(abs, uid, gid);
    await fs.chmod(abs, mode); // after chown, which clears setuid/setgid
  }
  await fs.mkdir(path.join(root, 'other'));
  for (const rel of HARDLINKS) await fs.link(path.join(root, 'hard/a'), path.join(root, rel));
  for (const [rel, target] of Object.entries(SYMLINKS)) {
    await fs.mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await fs.symlink(target, path.join(root, rel));
  }
  await fs.lchown(path.join(root, 'links/absolute'), 1000, 1000);
  await fs.mkdir(path.join(root, 'tmp'));
  await fs.chmod(path.join(root, 'tmp'), 0o1777);
  await fs.chmod(path.join(root, 'var/tmp'), 0o1777);
  await fs.mkdir(path.join(root, 'empty'));
  await fs.mkdir(path.join(root, 'var/lib/empty/inner'), { recursive: true });
  await fs.chmod(path.join(root, 'home/user'), 0o700);
  await fs.chown(path.join(root, 'home/user'), 1000, 1000);
  await fs.mkdir(path.join(root, 'dev'));
  sh('mknod', ['-m', '0666', path.join(root, 'dev/null'), 'c', '1', '3']);
  sh('mknod', ['-m', '0660', path.join(root, 'dev/loop0'), 'b', '7', '0']);
  await fs.chown(path.join(root, 'dev/loop0'), 0, 6);
  await fs.mkdir(path.join(root, 'run'));
  sh('mkfifo', ['-m', '0600', path.join(root, 'run/initctl')]);
  await addSocket(root, 'run/control.sock');
  sh('setfattr', ['-n', 'user.test', '-v', 'hello', path.join(root, 'attrs/user')]);
  sh('setfattr', ['-n', 'security.capability', '-v', `0x${CAP_NET_RAW.toString('hex')}`, path.join(root, 'bin/ping')]);
  sh('setfattr', ['-n', 'user.dir', '-v', 'on a dir', path.join(root, 'srv')]);
  await fs.chmod(root, 0o750);
}

/** What the manifest of the test tree must say, path by path. */
function expectedManifest(): Map<string, ManifestEntry> {
  const x = (name: string, value: string | Buffer) => new Map([[name, Buffer.from(value)]]);
  const list: ManifestEntry[] = [
    { path: '', type: 'dir', mode: 0o750 },
    { path: 'attrs/user', type: 'file', xattrs: x('user.test', 'hello') },
    { path: 'bin/ping', type: 'file', xattrs: x('security.capability', CAP_NET_RAW) },
    { path: 'bin/sgid', type: 'file', mode: 0o2755, gid: 42 },
    { path: 'bin/sticky', type: 'file', mode: 0o1644 },
    { path: 'bin/su', type: 'file', mode: 0o4755 },
    { path: 'dev', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: 'dev/loop0', type: 'block', mode: 0o660, uid: 0, gid: 6, rdev: { major: 7, minor: 0 } },
    { path: 'dev/null', type: 'char', mode: 0o666, uid: 0, gid: 0, rdev: { major: 1, minor: 3 } },
    { path: 'empty', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: 'etc/exec-0700', type: 'file', mode: 0o700 },
    { path: 'etc/nothing', type: 'file', mode: 0o000 },
    { path: 'etc/secret', type: 'file', mode: 0o600 },
    { path: 'etc/shadow', type: 'file', mode: 0o640, gid: 42 },
    { path: 'hard/a', type: 'file', mode: 0o640, inode: 1, nlink: 3 },
    { path: 'hard/b', type: 'file', mode: 0o640, inode: 1, nlink: 3 },
    { path: 'home/user', type: 'dir', mode: 0o700, uid: 1000, gid: 1000 },
    { path: 'home/user/.profile', type: 'file', uid: 1000, gid: 1000 },
    { path: 'links/absolute', type: 'link', uid: 1000, gid: 1000 },
    { path: 'other/c', type: 'file', mode: 0o640, inode: 1, nlink: 3 },
    { path: 'run', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: 'run/initctl', type: 'fifo', mode: 0o600, uid: 0, gid: 0 },
    { path: 'srv', type: 'dir', xattrs: x('user.dir', 'on a dir') },
    { path: 'srv/nobody', type: 'file', uid: 65534, gid: 65534 },
    { path: 'tmp', type: 'dir', mode: 0o1777, uid: 0, gid: 0 },
    { path: 'var/lib', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: 'var/lib/empty', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: 'var/lib/empty/inner', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: 'var/tmp', type: 'dir', mode: 0o1777 },
    { path: 'var/tmp/keep', type: 'file', mode: 0o600, uid: 1000, gid: 1000 },
  ];
  return new Map(list.map((e) => [e.path, e]));
}

/** The git entries the tree must produce: path -> [git mode, content]. */
function expectedGitEntries(): Map<string, [string, Buffer]> {
  const m = new Map<string, [string, Buffer]>();
  for (const [rel, [content, mode]] of Object.entries(FILES)) {
    m.set(rel, [mode & 0o111 ? '100755' : '100644', Buffer.from(content)]);
  }
  for (const rel of HARDLINKS) m.set(rel, m.get('hard/a')!);
  for (const [rel, target] of Object.entries(SYMLINKS)) m.set(rel, ['120000', Buffer.from(target)]);
  return m;
}

t.test('scan and commit a real tree', async (t) => {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'gitroot-commit-'));
  t.teardown(() => fs.rm(base, { recursive: true, force: true }));
  const root = path.join(base, 'root');
  const gitdir = path.join(base, 'repo.git');
  await buildTree(root);

  t.test('scanTree reports files, manifest and the skipped socket', async (t) => {
    const scan = await scanTree(root);
    t.same(scan.files.map((f) => f.path).sort(), [...expectedGitEntries().keys()].sort());
    const su = scan.files.find((f) => f.path === 'bin/su')!;
    t.match(su, { gitMode: 0o100755, source: path.join(root, 'bin/su'), size: FILES['bin/su']![0].length });
    t.match(
      scan.files.find((f) => f.path === 'links/absolute'),
      { gitMode: 0o120000, linkTarget: '/etc/passwd', size: 11 },
    );
    t.same(new Map(scan.manifest.map((e) => [e.path, e])), expectedManifest());
    t.equal(scan.warnings.length, 1);
    t.match(scan.warnings[0], /^skipped socket \.\/run\/control\.sock: /);
  });

  let first = '';
  t.test('first commit: git entries, blobs, manifest, repo setup', async (t) => {
    const seen: Array<[number, number]> = [];
    const r = await commitDirectory({ rootdir: root, gitdir, branch: 'stable', env: EPOCH_ENV, onProgress: (d, n) => seen.push([d, n]) });
    first = r.commit;
    t.match(r, { parent: null, branch: 'stable', files: expectedGitEntries().size, manifestEntries: expectedManifest().size });
    t.match(r.commit, /^[0-9a-f]{40}$/);
    t.equal(r.tree, gitStr(gitdir, ['rev-parse', `${r.commit}^{tree}`]));
    t.equal(branchTip(gitdir, 'stable'), r.commit);
    t.equal(r.warnings.length, 1, 'the socket');
    t.match(r.warnings[0], /socket \.\/run\/control\.sock/);
    const distinctContents = Object.keys(FILES).length; // hard/b and other/c share hard/a's blob
    t.same(
      seen,
      Array.from({ length: distinctContents }, (_, i) => [i + 1, distinctContents]),
      'progress per distinct file',
    );
    const bytes = Object.values(FILES).reduce((n, [c]) => n + Buffer.byteLength(c), 0);
    t.equal(r.bytes, bytes, 'bytes streamed, hardlinked content once');

    t.equal(gitStr(gitdir, ['rev-parse', '--is-bare-repository']), 'true');
    t.equal(gitStr(gitdir, ['symbolic-ref', 'HEAD']), 'refs/heads/stable');
    t.equal(gitStr(gitdir, ['config', 'core.bigFileThreshold']), '16m');

    const tree = lsTree(gitdir, r.commit);
    const want = expectedGitEntries();
    t.same([...tree.keys()].sort(), [...want.keys(), MANIFEST_NAME].sort(), 'exactly the files, symlinks and the manifest');
    for (const [rel, [mode, content]] of want) {
      const got = tree.get(rel);
      t.equal(got?.mode, mode, `${JSON.stringify(rel)} mode`);
      if (got && !gitOut(gitdir, ['cat-file', 'blob', got.sha]).equals(content)) t.fail(`${JSON.stringify(rel)} content`);
    }
    t.equal(tree.get(MANIFEST_NAME)?.mode, '100644');
    const text = gitOut(gitdir, ['cat-file', 'blob', tree.get(MANIFEST_NAME)!.sha]).toString('utf8');
    t.match(text, /^#mtree v2\.0\n# gitroot metadata manifest/);
    t.same(parseManifest(text, 'manifest'), expectedManifest());
    t.match(text, /\n\.\/tmp type=dir mode=1777 uid=0 gid=0\n/);
    t.match(text, /\n\.\/bin\/su type=file mode=4755\n/);
    t.match(text, /\n\.\/dev\/null type=char mode=0666 uid=0 gid=0 device=native,1,3\n/);

    const log = gitStr(gitdir, ['log', '-1', '--format=%an <%ae> %at|%cn <%ce> %ct|%s', r.commit]);
    t.equal(log, `gitroot <gitroot@localhost> 1700000000|gitroot <gitroot@localhost> 1700000000|Snapshot of ${root}`);
    sh('git', [`--git-dir=${gitdir}`, 'fsck', '--full', '--strict', '--no-progress']);
  });

  t.test('second commit has the first as parent; an identical tree still makes a commit', async (t) => {
    await fs.writeFile(path.join(root, 'etc/new'), 'second release\n');
    const env = { ...EPOCH_ENV, GIT_COMMITTER_NAME: 'Release Bot', GIT_COMMITTER_EMAIL: 'bot@example.org', GIT_AUTHOR_DATE: '@1600000000 +0200' };
    const second = await commitDirectory({ rootdir: root, gitdir, branch: 'stable', message: 'Release 2', env });
    t.equal(second.parent, first);
    t.equal(gitStr(gitdir, ['rev-parse', `${second.commit}^`]), first);
    t.equal(gitOut(gitdir, ['cat-file', 'blob', `${second.commit}:etc/new`]).toString(), 'second release\n');
    t.equal(
      gitStr(gitdir, ['log', '-1', '--format=%an|%ad|%cn <%ce>|%B', '--date=raw', second.commit]),
      'gitroot|1600000000 +0200|Release Bot <bot@example.org>|Release 2',
    );

    const third = await commitDirectory({ rootdir: root, gitdir, branch: 'stable', env });
    t.equal(third.parent, second.commit);
    t.not(third.commit, second.commit, 'a new commit (release marker)');
    t.equal(third.tree, second.tree, 'with the same tree');
    await fs.rm(path.join(root, 'etc/new'));
  });

  t.test('same tree, same time, fresh repo: the same commit id', async (t) => {
    const other = path.join(base, 'again.git');
    const r = await commitDirectory({ rootdir: root, gitdir: other, branch: 'stable', env: EPOCH_ENV });
    t.equal(r.commit, first);
  });

  t.test('branches are independent; an empty directory becomes a repository', async (t) => {
    const empty = path.join(base, 'made-empty.git');
    await fs.mkdir(empty);
    const r = await commitDirectory({ rootdir: root, gitdir: empty, env: EPOCH_ENV });
    t.equal(r.branch, 'master');
    t.equal(gitStr(empty, ['symbolic-ref', 'HEAD']), 'refs/heads/master');
    const side = await commitDirectory({ rootdir: root, gitdir, branch: 'testing/next', env: EPOCH_ENV });
    t.equal(side.parent, null);
    t.equal(branchTip(gitdir, 'testing/next'), side.commit);
  });

  t.test('a file that vanishes mid-commit: SourceTreeError, branch unchanged, no crash report', async (t) => {
    const before = branchTip(gitdir, 'stable');
    const victim = path.join(root, 'names/with space');
    let calls = 0;
    await t.rejects(
      commitDirectory({
        rootdir: root,
        gitdir,
        branch: 'stable',
        env: EPOCH_ENV,
        onProgress: () => {
          if (calls++ === 0) rmSync(victim);
        },
      }),
      { code: 'ESOURCE', message: /^cannot read \.\/names\/with\\040space \(ENOENT\)/ },
    );
    t.equal(branchTip(gitdir, 'stable'), before);
    t.same(
      (await fs.readdir(gitdir)).filter((n) => n.startsWith('fast_import_crash')),
      [],
    );
    await fs.writeFile(victim, FILES['names/with space']![0]);
  });

  t.test('a failing progress callback aborts cleanly: its error, branch unchanged', async (t) => {
    const before = branchTip(gitdir, 'stable');
    const boom = new Error('stop here');
    await t.rejects(
      commitDirectory({
        rootdir: root,
        gitdir,
        branch: 'stable',
        env: EPOCH_ENV,
        onProgress: () => {
          throw boom;
        },
      }),
      boom,
    );
    t.equal(branchTip(gitdir, 'stable'), before);
    t.same(
      (await fs.readdir(gitdir)).filter((n) => n.startsWith('fast_import_crash')),
      [],
    );
  });

  t.test('a symlink to the tree is followed for the root only', async (t) => {
    const alias = path.join(base, 'current');
    await fs.symlink(root, alias);
    const scan = await scanTree(alias);
    t.equal(scan.files.find((f) => f.path === 'bin/su')?.source, path.join(root, 'bin/su'));
    t.equal(scan.manifest.length, expectedManifest().size);
  });

  t.test("git refuses the ref update: GitCommandError with git's line, branch unchanged", async (t) => {
    const tip = branchTip(gitdir, 'stable');
    const err = await commitDirectory({ rootdir: root, gitdir, branch: 'stable/child', env: EPOCH_ENV }).catch((e: unknown) => e);
    t.type(err, GitCommandError);
    t.match((err as Error).message, /^git fast-import failed \(exit \d+\): .*refs\/heads\/stable/);
    t.equal(branchTip(gitdir, 'stable'), tip);
    t.equal(branchTip(gitdir, 'stable/child'), null);
  });

  t.test('a concurrent update of the branch is not overwritten', async (t) => {
    const orphan = gitStr(gitdir, ['commit-tree', '-m', 'someone else', `${first}^{tree}`]);
    let moved = false;
    const err = await commitDirectory({
      rootdir: root,
      gitdir,
      branch: 'stable',
      env: EPOCH_ENV,
      onProgress: () => {
        if (!moved) {
          moved = true;
          sh('git', [`--git-dir=${gitdir}`, 'update-ref', 'refs/heads/stable', orphan]);
        }
      },
    }).catch((e: unknown) => e);
    t.type(err, GitCommandError);
    t.match((err as Error).message, /Not updating refs\/heads\/stable/);
    t.equal(branchTip(gitdir, 'stable'), orphan);
  });
});

t.test('error cases', async (t) => {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'gitroot-commit-err-'));
  t.teardown(() => fs.rm(base, { recursive: true, force: true }));
  const ok = path.join(base, 'ok');
  await fs.mkdir(ok);
  await fs.writeFile(path.join(ok, 'f'), 'x');
  const gitdir = path.join(base, 'repo.git');

  t.test('missing rootdir: SourceTreeError, and no repository is created', async (t) => {
    await t.rejects(commitDirectory({ rootdir: path.join(base, 'nope'), gitdir }), { code: 'ESOURCE', message: /does not exist: give the root directory/ });
    await t.rejects(fs.stat(gitdir), { code: 'ENOENT' });
    await t.rejects(scanTree(path.join(base, 'nope')), SourceTreeError);
  });

  t.test('rootdir that is a file', async (t) => {
    await t.rejects(commitDirectory({ rootdir: path.join(ok, 'f'), gitdir }), { code: 'ESOURCE', message: /is not a directory/ });
  });

  const badTree = async (name: string, make: (dir: string) => Promise<void>) => {
    const dir = path.join(base, name);
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'fine'), 'fine');
    await make(dir);
    return dir;
  };

  t.test('.git anywhere in the tree', async (t) => {
    const top = await badTree('dotgit-top', (d) => fs.mkdir(path.join(d, '.git')));
    await t.rejects(commitDirectory({ rootdir: top, gitdir }), { code: 'ESOURCE', message: /^\.\/\.git is a git directory or file.*: remove it/ });
    const nested = await badTree('dotgit-nested', async (d) => {
      await fs.mkdir(path.join(d, 'srv/project'), { recursive: true });
      await fs.writeFile(path.join(d, 'srv/project/.git'), 'gitdir: elsewhere\n');
    });
    await t.rejects(scanTree(nested), { code: 'ESOURCE', data: { path: 'srv/project/.git' } });
    await t.rejects(fs.stat(gitdir), { code: 'ENOENT' }, 'nothing created');
  });

  t.test('a top-level .gitroot.mtree in the source', async (t) => {
    const dir = await badTree('has-manifest', (d) => fs.writeFile(path.join(d, MANIFEST_NAME), 'x'));
    await t.rejects(scanTree(dir), { code: 'ESOURCE', message: /gitroot writes its own manifest there: remove or rename it/ });
  });

  t.test('a name that is not UTF-8', async (t) => {
    const dir = await badTree('latin1', (d) => fs.writeFile(Buffer.concat([Buffer.from(d + '/caf'), Buffer.from([0xe9])]), 'x'));
    await t.rejects(scanTree(dir), { code: 'ESOURCE', message: /^file name \.\/caf\\351 is not valid UTF-8: rename it/ });
  });

  t.test('a symlink target that is not UTF-8', async (t) => {
    const dir = await badTree('latin1-link', (d) => fs.symlink(Buffer.from([0x61, 0xff]), path.join(d, 'l')));
    await t.rejects(scanTree(dir), { code: 'ESOURCE', message: /symlink \.\/l points to a name that is not valid UTF-8/ });
  });

  t.test('bad branch names: UsageError before anything happens', async (t) => {
    for (const branch of ['bad..name', 'with space', '-leading', 'HEAD', '', 'end.lock', 'a~1', 'x:y', 'trailing/', '@{-1}', 'refs/heads/../x']) {
      await t.rejects(commitDirectory({ rootdir: ok, gitdir, branch }), UsageError, JSON.stringify(branch));
    }
    await t.rejects(fs.stat(gitdir), { code: 'ENOENT' });
  });

  t.test('gitdir that is a regular file or a non-repository directory: RepoNotFoundError', async (t) => {
    const file = path.join(base, 'file.git');
    await fs.writeFile(file, 'not a repo');
    await t.rejects(commitDirectory({ rootdir: ok, gitdir: file }), RepoNotFoundError);
    await t.rejects(commitDirectory({ rootdir: ok, gitdir: file }), { code: 'ENOREPO', message: /is not a git repository: give a bare repository/ });
    const dir = path.join(base, 'stuff');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'data'), 'x');
    await t.rejects(commitDirectory({ rootdir: ok, gitdir: dir }), RepoNotFoundError);
    t.same(await fs.readdir(dir), ['data'], 'left alone');
  });

  t.test('bad identity settings: UsageError', async (t) => {
    await t.rejects(commitDirectory({ rootdir: ok, gitdir, env: { ...process.env, SOURCE_DATE_EPOCH: 'yesterday' } }), UsageError);
    await t.rejects(commitDirectory({ rootdir: ok, gitdir, env: { ...process.env, GIT_COMMITTER_DATE: 'garbage' } }), {
      code: 'EUSAGE',
      message: /^git rejects the commit identity \(fatal: invalid date format: garbage\): fix or unset GIT_COMMITTER_NAME\/EMAIL\/DATE$/,
    });
    await t.rejects(commitDirectory({ rootdir: ok, gitdir, env: { ...process.env, GIT_AUTHOR_NAME: '' } }), { code: 'EUSAGE', message: /GIT_AUTHOR_NAME/ });
    await t.rejects(fs.stat(gitdir), { code: 'ENOENT' }, 'nothing created');
  });

  t.test('unreadable file or directory (scan as an unprivileged user)', async (t) => {
    await fs.chmod(base, 0o755);
    const dir = path.join(base, 'unreadable');
    await fs.mkdir(path.join(dir, 'closed'), { recursive: true });
    await fs.writeFile(path.join(dir, 'secret'), 's');
    await fs.chmod(path.join(dir, 'secret'), 0o600);
    await fs.writeFile(path.join(dir, 'closed/inside'), 'x');
    await fs.chmod(path.join(dir, 'closed'), 0o700);
    const script = path.join(base, 'scan-as-nobody.mts');
    await fs.writeFile(
      script,
      [
        `import { scanTree } from ${JSON.stringify(path.join(REPO_ROOT, 'lib/commit/scan-tree.ts'))};`,
        'try { await scanTree(process.argv[2]!); console.log(JSON.stringify({})); }',
        'catch (e) { console.log(JSON.stringify({ code: (e as any).code, message: (e as Error).message })); }',
      ].join('\n'),
    );
    const asNobody = (target: string) => {
      const r = spawnSync(process.execPath, ['--import=@tapjs/typescript/import', script, target], {
        uid: 65534,
        gid: 65534,
        cwd: REPO_ROOT,
        env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
        encoding: 'utf8',
      });
      try {
        return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { code?: string; message?: string };
      } catch {
        return { message: `child failed: ${r.stderr}` };
      }
    };
    const fileCase = asNobody(dir);
    t.equal(fileCase.code, 'ESOURCE', fileCase.message ?? 'no message');
    t.match(fileCase.message, /^cannot (read|read directory) \.\/(secret|closed) \(EACCES\): make it readable/);
    await fs.rm(path.join(dir, 'secret'));
    const dirCase = asNobody(dir);
    t.equal(dirCase.message, 'cannot read directory ./closed (EACCES): make it readable by this user, or remove it from the tree');
  });
});
