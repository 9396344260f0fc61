/**
 * Hostile input, git trees: tree objects written raw (`git hash-object -t tree
 * --literally`) with entries git never writes (`..`, `.`, `.git`, `a/b`, '', a name twice,
 * names that are not UTF-8, unknown modes, entries pointing at the wrong object type, a
 * loose object whose content is not what its name says), served by a real `gitroot mount`.
 *
 * The rule (docs/hostile-input.md): a directory whose tree holds such an entry fails as a
 * whole with EIO (nothing of it is served), its parent still lists it, every other file keeps
 * serving from the same daemon; a root tree of that kind, or a commit whose tree is not a
 * tree, is refused at mount time with a one-line error (exit 4). Odd but legal names (control
 * characters, newlines, spaces, `...`) are served exactly. No listing ever shows a path
 * outside the mount.
 */
// needs: root fuse git
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { gitroot, isMounted, mount, waitExit } from './helpers/cli.js';
import { tempDir } from './helpers/temp-dir.js';
import { Campaign } from './helpers/hostile-campaign.js';

const campaign = new Campaign('1-trees', 'test/hostile-trees.test.ts');
t.teardown(() => campaign.save());

const ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'T',
  GIT_AUTHOR_EMAIL: 't@example.org',
  GIT_COMMITTER_NAME: 'T',
  GIT_COMMITTER_EMAIL: 't@example.org',
};

function git(gitdir: string, args: string[], input?: Buffer | string): string {
  const r = spawnSync('git', ['--git-dir', gitdir, ...args], { input, env: ENV, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr.toString()}`);
  return r.stdout.toString().trim();
}

type Entry = [mode: string, name: Buffer | string, oid: string];

/** A tree object written byte by byte, whatever it holds. */
function rawTree(gitdir: string, entries: Entry[]): string {
  const body = Buffer.concat(
    entries.map(([mode, name, oid]) =>
      Buffer.concat([Buffer.from(`${mode} `), Buffer.isBuffer(name) ? name : Buffer.from(name), Buffer.from([0]), Buffer.from(oid, 'hex')]),
    ),
  );
  return git(gitdir, ['hash-object', '-t', 'tree', '--literally', '-w', '--stdin'], body);
}

function blob(gitdir: string, content: string): string {
  return git(gitdir, ['hash-object', '-w', '--stdin'], content);
}

/** A commit object naming `tree`, written raw (`git commit-tree` would check the tree's type). */
function commitTree(gitdir: string, tree: string): string {
  return git(
    gitdir,
    ['hash-object', '-t', 'commit', '--literally', '-w', '--stdin'],
    `tree ${tree}\nauthor T <t@example.org> 1700000000 +0000\ncommitter T <t@example.org> 1700000000 +0000\n\nhostile\n`,
  );
}

function errno(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

t.test('hostile entries in subdirectories: that directory is EIO, everything else serves', async (t) => {
  const work = tempDir(t, 'hostile-trees');
  const repo = path.join(work, 'r.git');
  git(repo, ['init', '-q', '--bare']);
  const good = blob(repo, 'good bytes\n');
  const secret = blob(repo, 'must never be served through a hostile name\n');
  const sub = rawTree(repo, [['100644', 'inner', good]]);
  const commitObj = commitTree(repo, sub);

  // name -> the raw entries of a directory that must fail as a whole.
  const hostile: Record<string, Entry[]> = {
    dotdot: [
      ['100644', '..', secret],
      ['100644', 'ok', good],
    ],
    'dotdot-dir': [
      ['40000', '..', sub],
      ['100644', 'ok', good],
    ],
    dot: [
      ['40000', '.', sub],
      ['100644', 'ok', good],
    ],
    dotgit: [
      ['40000', '.git', sub],
      ['100644', 'ok', good],
    ],
    'dotgit-file': [['100644', '.git', secret]],
    slash: [
      ['100644', 'a/b', secret],
      ['100644', 'ok', good],
    ],
    'slash-abs': [['100644', '/etc/passwd', secret]],
    'slash-climb': [['100644', '../../../etc/shadow', secret]],
    'empty-name': [
      ['100644', '', secret],
      ['100644', 'ok', good],
    ],
    duplicate: [
      ['100644', 'x', good],
      ['100644', 'x', secret],
    ],
    'duplicate-dir-file': [
      ['100644', 'x', good],
      ['40000', 'x', sub],
    ],
    'not-utf8': [['100644', Buffer.from([0x66, 0xff, 0xfe]), secret]],
    'not-utf8-collide': [
      ['100644', Buffer.from([0x61, 0xff]), good],
      ['100644', Buffer.from([0x61, 0xfe]), secret],
    ],
    'mode-777': [['777', 'x', secret]],
    'mode-zero': [['0', 'x', secret]],
    'mode-170000': [['170000', 'x', secret]],
    'mode-100777': [['100777', 'x', secret]],
    'mode-20000-chardev': [['20000', 'x', secret]],
    'file-is-tree': [['100644', 'x', sub]],
    'file-is-commit': [['100644', 'x', commitObj]],
    'link-is-tree': [['120000', 'x', sub]],
  };
  // Odd but legal names: served exactly, with their content.
  const legal: Record<string, Buffer> = {
    newline: Buffer.from('a\nb'),
    ctrl: Buffer.from([0x01, 0x02, 0x7f, 0x41]),
    spaces: Buffer.from(' lead and trail '),
    dots3: Buffer.from('...'),
    dotdotx: Buffer.from('..x'),
    backslash: Buffer.from('a\\b'),
    'dotGIT-case': Buffer.from('.GIT'),
    utf8: Buffer.from('ünïcødé ☃'),
  };

  const top: Entry[] = [['100644', 'good', good]];
  for (const [name, entries] of Object.entries(hostile)) top.push(['40000', `bad-${name}`, rawTree(repo, entries)]);
  for (const [name, bytes] of Object.entries(legal)) top.push(['40000', `legal-${name}`, rawTree(repo, [['100644', bytes, good]])]);
  // Directory entry pointing at a blob, and a gitlink (served as an empty directory).
  top.push(['40000', 'bad-dir-is-blob', good]);
  top.push(['160000', 'submodule', commitObj]);
  top.sort((a, b) => Buffer.compare(Buffer.from(a[1] + (a[0] === '40000' ? '/' : '')), Buffer.from(b[1] + (b[0] === '40000' ? '/' : ''))));
  const root = rawTree(repo, top);
  const c = commitTree(repo, root);
  campaign.input(Object.keys(hostile).length + Object.keys(legal).length + 2);

  const mnt = path.join(work, 'mnt');
  fs.mkdirSync(mnt);
  const m = mount(t, mnt, repo, ['--rev', c]);
  const listing = fs.readdirSync(mnt).sort();
  campaign.check(
    t,
    listing.length === top.length && listing.every((n) => !n.includes('/') && n !== '..' && n !== '.'),
    `root lists exactly its ${top.length} entries, none escaping (${listing.length})`,
  );
  for (const name of Object.keys(hostile)) {
    const dir = path.join(mnt, `bad-${name}`);
    const st = fs.lstatSync(dir);
    campaign.check(t, st.isDirectory(), `bad-${name}: listed by its parent as a directory`);
    const code = errno(() => fs.readdirSync(dir));
    campaign.check(t, code === 'EIO', `bad-${name}: listing it fails with EIO (${code})`);
    const inner = errno(() => fs.readFileSync(path.join(dir, 'ok')));
    campaign.check(t, inner === 'EIO', `bad-${name}: nothing inside it is served (${inner})`);
    campaign.check(t, fs.readFileSync(path.join(mnt, 'good'), 'utf8') === 'good bytes\n', `after bad-${name}: the good file still reads right`);
  }
  const dirBlob = errno(() => fs.readdirSync(path.join(mnt, 'bad-dir-is-blob')));
  campaign.check(t, dirBlob === 'EIO', `a directory entry pointing at a blob: EIO (${dirBlob})`);
  campaign.check(t, fs.readdirSync(path.join(mnt, 'submodule')).length === 0, 'a gitlink is an empty directory');
  for (const [name, bytes] of Object.entries(legal)) {
    const dir = path.join(mnt, `legal-${name}`);
    const names = fs.readdirSync(Buffer.from(dir), { encoding: 'buffer' });
    campaign.check(t, names.length === 1 && names[0].equals(bytes), `legal-${name}: served under its exact name`);
    const content = fs.readFileSync(Buffer.concat([Buffer.from(`${dir}/`), bytes]), 'utf8');
    campaign.check(t, content === 'good bytes\n', `legal-${name}: its content is right`);
  }
  // Nothing the hostile names pointed at is reachable anywhere in the mount.
  const found = spawnSync('grep', ['-rl', 'must never be served', mnt], { encoding: 'utf8' });
  campaign.check(t, found.stdout === '', `no file in the mount serves the hidden blob (${found.stdout.trim()})`);
  campaign.check(t, isMounted(mnt) && (await waitExit(m.pid, 1)) === false, 'the daemon is alive after all of it');
  const log = fs.readFileSync(`/run/gitroot/mounts/${mnt.replace(/\//g, '_')}.log`, 'utf8');
  campaign.check(
    t,
    /unsafe entry name '\.\.'/.test(log) && /appears twice/.test(log) && /not valid UTF-8/.test(log) && /mode 777/.test(log),
    'the mount log names each cause',
  );
  t.equal(gitroot(['umount', mnt]).status, 0, 'unmounted');
});

t.test('a hostile root tree or a commit whose tree is not a tree: the mount is refused', async (t) => {
  const work = tempDir(t, 'hostile-root');
  const repo = path.join(work, 'r.git');
  git(repo, ['init', '-q', '--bare']);
  const good = blob(repo, 'good bytes\n');
  const sub = rawTree(repo, [['100644', 'inner', good]]);
  const cases: Record<string, string> = {
    'root holds ..': rawTree(repo, [
      ['100644', '..', good],
      ['100644', 'ok', good],
    ]),
    'root holds .git': rawTree(repo, [['40000', '.git', sub]]),
    'root holds a name twice': rawTree(repo, [
      ['40000', 'etc', sub],
      ['40000', 'etc', sub],
    ]),
    'root holds an absolute name': rawTree(repo, [['100644', '/etc/shadow', good]]),
    'root holds a bad mode': rawTree(repo, [['100000', 'x', good]]),
    'truncated tree': git(repo, ['hash-object', '-t', 'tree', '--literally', '-w', '--stdin'], Buffer.from('100644 abc\0\x01\x02')),
  };
  const mnt = path.join(work, 'mnt');
  fs.mkdirSync(mnt);
  const tryMount = (what: string, c: string, re: RegExp) => {
    campaign.input();
    const r = gitroot(['mount', mnt, '--repo', repo, '--rev', c]);
    campaign.check(t, r.status === 4, `${what}: exit 4 (${r.status})`);
    const lines = r.stderr.trim().split('\n');
    campaign.check(t, lines.length === 1 && re.test(lines[0]) && !/\n\s+at /.test(r.stderr), `${what}: one clear line (${lines[0]})`);
    campaign.check(t, !isMounted(mnt), `${what}: nothing mounted`);
  };
  for (const [what, tree] of Object.entries(cases)) tryMount(what, commitTree(repo, tree), /malformed tree/);
  tryMount('commit whose tree is a blob', commitTree(repo, good), /that is a blob: the revision is damaged/);
  tryMount('commit whose tree is a commit', commitTree(repo, commitTree(repo, sub)), /that is a commit: the revision is damaged/);
});

t.test('a loose object whose content is not what its name says (a would-be cycle): EIO, never served', async (t) => {
  const work = tempDir(t, 'hostile-loop');
  const repo = path.join(work, 'r.git');
  git(repo, ['init', '-q', '--bare']);
  const good = blob(repo, 'good bytes\n');
  // A directory `loop` whose tree id X names a loose file claiming to be a tree {loop: X}.
  const placeholder = rawTree(repo, [['100644', 'placeholder', good]]);
  const root = rawTree(repo, [
    ['100644', 'good', good],
    ['40000', 'loop', placeholder],
  ]);
  const c = commitTree(repo, root);
  const file = path.join(repo, 'objects', placeholder.slice(0, 2), placeholder.slice(2));
  const body = Buffer.concat([Buffer.from('40000 loop\0'), Buffer.from(placeholder, 'hex')]);
  const zlib = await import('node:zlib');
  fs.chmodSync(file, 0o644);
  fs.writeFileSync(file, zlib.deflateSync(Buffer.concat([Buffer.from(`tree ${body.length}\0`), body])));
  campaign.input();
  const mnt = path.join(work, 'mnt');
  fs.mkdirSync(mnt);
  mount(t, mnt, repo, ['--rev', c]);
  const code = errno(() => fs.readdirSync(path.join(mnt, 'loop')));
  campaign.check(t, code === 'EIO', `the self-referencing directory is EIO (${code})`);
  campaign.check(t, fs.readFileSync(path.join(mnt, 'good'), 'utf8') === 'good bytes\n', 'the rest serves');
  t.equal(gitroot(['umount', mnt]).status, 0, 'unmounted');
});
