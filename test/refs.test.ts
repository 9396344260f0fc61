/**
 * Tests of revision resolution and ref listing (lib/store/refs.ts) against `git rev-parse`
 * and `git for-each-ref`, on repositories built at run time: loose and packed refs, annotated
 * and nested tags, branch/tag name clashes, remotes, detached and unborn HEADs, worktrees,
 * abbreviated ids (unique, ambiguous, commit-preferred) and ~/^ steps.
 */
// needs: git
import t from 'tap';
import type { Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { listRefs, resolveRevision } from '../lib/store/refs.js';
import { ObjectStore } from '../lib/store/object-store.js';
import { tempDir } from './helpers/temp-dir.js';

const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Store Test',
  GIT_AUTHOR_EMAIL: 'store@test',
  GIT_AUTHOR_DATE: '1700000000 +0000',
  GIT_COMMITTER_NAME: 'Store Test',
  GIT_COMMITTER_EMAIL: 'store@test',
  GIT_COMMITTER_DATE: '1700000000 +0000',
};

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'gc.auto=0', '-c', 'advice.detachedHead=false', ...args], { cwd, env: GIT_ENV, stdio: ['pipe', 'pipe', 'pipe'] })
    .toString('utf8')
    .trim();
}

/** What git resolves `rev` to as a commit, or null if git refuses it. */
function gitCommit(cwd: string, rev: string): string | null {
  try {
    return git(cwd, 'rev-parse', '--verify', '--quiet', `${rev}^{commit}`);
  } catch {
    return null;
  }
}

function commit(repo: string, file: string, text: string, message: string): string {
  fs.writeFileSync(path.join(repo, file), text);
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '-m', message);
  return git(repo, 'rev-parse', 'HEAD');
}

function blobId(data: string): string {
  return createHash('sha1')
    .update(`blob ${Buffer.byteLength(data)}\0${data}`)
    .digest('hex');
}

function writeBlob(repo: string, data: string): void {
  execFileSync('git', ['hash-object', '-w', '--stdin'], { cwd: repo, input: data, env: GIT_ENV });
}

/** main: c1-c2-c3 plus a merge of side; branches, tags of every kind, a remote. */
function refsRepo(t: Test): { repo: string; c: string[] } {
  const repo = tempDir(t, 'repo');
  git(repo, 'init', '-q', '-b', 'main');
  const c1 = commit(repo, 'a', '1', 'c1');
  const c2 = commit(repo, 'a', '2', 'c2');
  git(repo, 'checkout', '-q', '-b', 'side');
  const s1 = commit(repo, 'b', 'side', 's1');
  git(repo, 'checkout', '-q', 'main');
  const c3 = commit(repo, 'a', '3', 'c3');
  git(repo, 'merge', '-q', '--no-edit', '-m', 'merge', 'side');
  git(repo, 'branch', 'feature', c2);
  git(repo, 'branch', 'nested/deep/branch', c1);
  git(repo, 'tag', 'light', c1);
  git(repo, 'tag', '-a', '-m', 'annotated', 'v1', c2);
  git(repo, 'tag', '-a', '-m', 'tag of a tag', 'v1-outer', 'v1');
  git(repo, 'tag', '-a', '-m', 'a tree', 'treetag', `${c3}^{tree}`);
  // A branch and a tag with one name: git takes the tag.
  git(repo, 'branch', 'dup', c1);
  git(repo, 'tag', 'dup', c3);
  git(repo, 'update-ref', 'refs/remotes/origin/main', c2);
  git(repo, 'update-ref', 'refs/remotes/origin/other', s1);
  git(repo, 'symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/remotes/origin/main');
  return { repo, c: [c1, c2, c3, s1] };
}

const REVS = [
  'HEAD',
  'main',
  'refs/heads/main',
  'heads/main',
  'feature',
  'side',
  'nested/deep/branch',
  'light',
  'v1',
  'refs/tags/v1',
  'tags/v1',
  'v1-outer',
  'dup',
  'refs/heads/dup',
  'origin',
  'origin/main',
  'remotes/origin/other',
  'HEAD~1',
  'HEAD~2',
  'HEAD^',
  'HEAD^2',
  'HEAD^1~1',
  'main~0',
  'v1^{commit}',
  'v1-outer~1',
  'HEAD^{}',
  'v1^0',
];

function checkRevs(t: Test, repo: string, store?: ObjectStore): void {
  const wrong: string[] = [];
  for (const rev of REVS) {
    const want = gitCommit(repo, rev);
    if (want === null) throw new Error(`git cannot resolve ${rev}`);
    const got = resolveRevision(repo, rev, store);
    if (got !== want) wrong.push(`${rev}: ${got} != ${want}`);
  }
  t.same(wrong, [], `${REVS.length} revisions resolve as git resolves them`);
}

function checkList(t: Test, repo: string): void {
  const theirs = git(repo, 'for-each-ref', '--format=%(refname) %(objectname)').split('\n');
  const ours = listRefs(repo).map((r) => `${r.name} ${r.oid}`);
  t.same(ours, theirs, 'listRefs matches git for-each-ref');
}

t.test('loose refs, then packed refs, then both', async (t) => {
  const { repo, c } = refsRepo(t);
  checkRevs(t, repo);
  checkList(t, repo);
  t.equal(resolveRevision(repo, 'dup'), c[2], 'a tag wins over a branch of the same name, as in git');

  git(repo, 'pack-refs', '--all', '--prune');
  t.notOk(fs.existsSync(path.join(repo, '.git', 'refs', 'tags', 'v1')), 'refs are packed');
  t.match(fs.readFileSync(path.join(repo, '.git', 'packed-refs'), 'utf8'), /\n\^[0-9a-f]{40}\n/, 'with peeled lines');
  const store = ObjectStore.open(repo);
  checkRevs(t, repo, store);
  store.close();
  checkList(t, repo);
  const v1 = listRefs(repo).find((r) => r.name === 'refs/tags/v1');
  t.equal(v1?.peeled, c[1], 'listRefs reports the peeled id');
  const originHead = listRefs(repo).find((r) => r.name === 'refs/remotes/origin/HEAD');
  t.equal(originHead?.symref, 'refs/remotes/origin/main', 'and symbolic refs');

  // A loose ref written after packing overrides its packed copy.
  git(repo, 'update-ref', 'refs/heads/feature', c[0]);
  t.equal(resolveRevision(repo, 'feature'), c[0], 'loose overrides packed');
  checkList(t, repo);
});

t.test('full and abbreviated ids', async (t) => {
  const { repo, c } = refsRepo(t);
  t.equal(resolveRevision(repo, c[1]), c[1], 'full id');
  t.equal(resolveRevision(repo, c[1].toUpperCase()), c[1], 'upper-case full id');
  t.equal(resolveRevision(repo, c[1].slice(0, 7)), c[1], '7-digit abbreviation');
  const tagObject = git(repo, 'rev-parse', 'v1');
  t.equal(resolveRevision(repo, tagObject), c[1], 'an annotated tag id peels to its commit');
  t.equal(resolveRevision(repo, `${c[2].slice(0, 10)}~1`), gitCommit(repo, `${c[2]}~1`), 'abbreviation with a step');
  t.throws(() => resolveRevision(repo, '0'.repeat(40)), { code: 'ENOREV' }, 'a full id that is not there');
  t.throws(() => resolveRevision(repo, c[1].slice(0, 3)), { code: 'ENOREV' }, 'three digits are too few');
});

t.test('ambiguous abbreviations are refused; a unique commit among them wins', async (t) => {
  const repo = tempDir(t, 'ambig');
  git(repo, 'init', '-q', '-b', 'main');
  const head = commit(repo, 'f', 'x', 'c');
  // Two blobs sharing a 4-digit prefix that the commit does not have.
  const seen = new Map<string, string>();
  let pair: string[] = [];
  for (let i = 0; pair.length === 0; i++) {
    const data = `blob number ${i}\n`;
    const p = blobId(data).slice(0, 4);
    const other = seen.get(p);
    if (other !== undefined && p !== head.slice(0, 4)) pair = [other, data];
    seen.set(p, data);
  }
  for (const data of pair) writeBlob(repo, data);
  const clash = blobId(pair[0]).slice(0, 4);
  t.not(clash, '', 'found two blobs with one prefix');
  t.throws(() => resolveRevision(repo, clash), { code: 'ENOREV', message: /ambiguous/ });
  t.equal(gitCommit(repo, clash), null, 'git refuses it too');

  // A blob sharing the commit's prefix: in a commit context, git picks the commit.
  const prefix = head.slice(0, 4);
  let i = 0;
  while (!blobId(`collide ${i}\n`).startsWith(prefix)) i++;
  writeBlob(repo, `collide ${i}\n`);
  const store = ObjectStore.open(repo);
  t.ok(store.findByPrefix(prefix).length >= 2, 'the prefix is shared');
  store.close();
  t.equal(resolveRevision(repo, prefix), head, 'the commit is chosen');
  t.equal(gitCommit(repo, prefix), head, 'as git chooses it');
});

t.test('HEAD: symbolic, detached, unborn; worktrees and bare repositories', async (t) => {
  const { repo, c } = refsRepo(t);
  git(repo, 'checkout', '-q', '--detach', c[0]);
  t.equal(resolveRevision(repo, 'HEAD'), c[0], 'detached HEAD');
  git(repo, 'checkout', '-q', 'main');

  const wt = path.join(tempDir(t, 'wt'), 'tree');
  git(repo, 'worktree', 'add', '-q', '--detach', wt, c[3]);
  t.equal(resolveRevision(wt, 'HEAD'), c[3], 'a linked worktree has its own HEAD');
  t.equal(resolveRevision(wt, 'feature'), c[1], 'and shares branches');
  t.equal(resolveRevision(path.join(repo, '.git'), 'HEAD'), gitCommit(repo, 'HEAD'), 'a .git directory works');

  const bare = path.join(tempDir(t, 'bare'), 'r.git');
  git(repo, 'clone', '-q', '--bare', repo, bare);
  t.equal(resolveRevision(bare, 'HEAD'), gitCommit(repo, 'main'), 'bare clone');
  t.equal(resolveRevision(bare, 'v1-outer'), c[1], 'bare clone tags (packed by clone)');

  const unborn = tempDir(t, 'unborn');
  git(unborn, 'init', '-q', '-b', 'main');
  t.throws(() => resolveRevision(unborn, 'HEAD'), { code: 'ENOREV', message: /no commits yet/ });
});

t.test('unknown and invalid revisions', async (t) => {
  const { repo } = refsRepo(t);
  for (const rev of ['nope', 'treetag', 'HEAD~10', 'HEAD^3', '../../../etc/passwd', 'refs/heads/../../HEAD', '', 'main..side', 'HEAD@{0}', 'zzzz', 'main~x']) {
    t.throws(() => resolveRevision(repo, rev), { code: 'ENOREV', name: 'RevisionNotFoundError' }, `'${rev}' is refused`);
  }
  try {
    resolveRevision(repo, 'nope');
  } catch (err) {
    t.equal((err as Error).message, `unknown revision 'nope' in ${repo}: give a commit SHA, branch or tag that exists (git -C ${repo} log --oneline)`);
  }
  t.throws(() => resolveRevision(repo, 'treetag'), { message: /names a tree/ }, 'a tag of a tree is not a commit');
  t.throws(() => resolveRevision(tempDir(t, 'none'), 'HEAD'), { code: 'ENOREPO' });
  fs.writeFileSync(path.join(repo, '.git', 'refs', 'heads', 'broken'), 'garbage\n');
  t.throws(() => resolveRevision(repo, 'broken'), { code: 'ENOREV', message: /malformed/ });
  t.notOk(
    listRefs(repo).some((r) => r.name === 'refs/heads/broken'),
    'listRefs skips broken refs',
  );
});
