/**
 * `gitroot commit --sign-key` through the real CLI: the commit it records carries an SSH
 * signature git accepts (`git verify-commit` with gpg.ssh.allowedSignersFile, and
 * `ssh-keygen -Y verify` via git), on a new repository and on top of an existing branch (the
 * parent kept, the tree the same as without signing); the branch moves only to the signed
 * commit and no temporary branch is left. Keys it cannot use (encrypted, RSA, a public key,
 * a missing file) are refused with exit 2 and one line before anything is recorded.
 */
// needs: git
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { gitroot } from './helpers/cli.js';
import { writeTree } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';
import { gitVerifies, keygen, run } from './helpers/trust-fixtures.js';

const refs = (repo: string) => run('git', ['--git-dir', repo, 'for-each-ref', '--format=%(refname) %(objectname)']).toString().trim();

t.test('signed commits verify with git, on a new branch and on top of one', async (t) => {
  const work = tempDir(t, 'sign');
  const repo = path.join(work, 'os.git');
  const root = path.join(work, 'root');
  writeTree(root, { 'etc/os-release': 'ID=debian\n', 'usr/bin/true': '#!/bin/sh\n' });
  const key = keygen(work, 'release');
  const signers = path.join(work, 'allowed-signers');
  fs.writeFileSync(signers, `release@example.com namespaces="git" ${key.pub}\n`);

  const first = gitroot(['commit', root, '--repo', repo, '-m', 'release 1', '--sign-key', key.path, '--json']);
  t.equal(first.status, 0, first.stderr);
  const one = JSON.parse(first.stdout);
  t.match(one, { parent: null, branch: 'master', signedBy: key.fingerprint });
  t.ok(gitVerifies(repo, one.commit, signers), 'git verify-commit accepts the first commit');
  t.equal(refs(repo), `refs/heads/master ${one.commit}`, 'master names the signed commit; no other ref');

  fs.writeFileSync(path.join(root, 'etc', 'motd'), 'two\n');
  const second = gitroot(['commit', root, '--repo', repo, '-m', 'release 2', '--sign-key', key.path, '--json']);
  t.equal(second.status, 0, second.stderr);
  const two = JSON.parse(second.stdout);
  t.equal(two.parent, one.commit, 'the previous signed commit is the parent');
  t.ok(gitVerifies(repo, two.commit, signers), 'git verify-commit accepts the second commit');
  t.equal(refs(repo), `refs/heads/master ${two.commit}`);
  const body = run('git', ['--git-dir', repo, 'cat-file', 'commit', two.commit]).toString();
  t.match(
    body,
    /^tree [0-9a-f]{40}\nparent [0-9a-f]{40}\nauthor .*\ncommitter .*\ngpgsig -----BEGIN SSH SIGNATURE-----\n( .+\n)+ -----END SSH SIGNATURE-----\n\nrelease 2\n$/,
    'gpgsig after the committer, as git writes it',
  );

  const plain = gitroot(['commit', root, '--repo', path.join(work, 'plain.git'), '-m', 'release 2', '--json']);
  t.equal(JSON.parse(plain.stdout).tree, two.tree, 'signing does not change the tree');
  t.notOk(gitVerifies(path.join(work, 'plain.git'), JSON.parse(plain.stdout).commit, signers), 'the unsigned one does not verify');

  const other = keygen(work, 'other');
  const unlisted = gitroot(['commit', root, '--repo', repo, '-m', 'release 3', '--sign-key', other.path, '--json']);
  t.equal(unlisted.status, 0);
  t.notOk(gitVerifies(repo, JSON.parse(unlisted.stdout).commit, signers), 'a key the file does not list: git refuses it');
});

t.test('keys it cannot use are refused before anything is recorded', async (t) => {
  const work = tempDir(t, 'sign-bad');
  const repo = path.join(work, 'os.git');
  const root = path.join(work, 'root');
  writeTree(root, { 'etc/os-release': 'ID=debian\n' });
  const ok = gitroot(['commit', root, '--repo', repo, '-m', 'base']);
  t.equal(ok.status, 0);
  const before = refs(repo);
  const enc = path.join(work, 'enc');
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', enc]);
  const rsa = keygen(work, 'rsa', 'rsa');
  const cases: Array<[string, string, RegExp]> = [
    ['an encrypted key', enc, /--sign-key \S+enc: it is encrypted \(aes256-ctr, bcrypt\): gitroot cannot ask for a passphrase/],
    ['an RSA key', rsa.path, /it is a ssh-rsa key: gitroot commit --sign-key signs with ssh-ed25519 keys only/],
    ['a public key', `${rsa.path}.pub`, /it is not an OpenSSH private key/],
    ['a missing file', path.join(work, 'nope'), /--sign-key \S+nope cannot be read \(ENOENT\)/],
  ];
  for (const [what, file, message] of cases) {
    fs.writeFileSync(path.join(root, 'etc', 'motd'), `${what}\n`);
    const r = gitroot(['commit', root, '--repo', repo, '-m', 'x', '--sign-key', file]);
    t.equal(r.status, 2, `${what}: exit 2`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line (${r.stderr.trim()})`);
    t.match(r.stderr, message, what);
    t.equal(r.stdout, '', `${what}: nothing on stdout`);
    t.equal(refs(repo), before, `${what}: the branch is unchanged and no temporary branch exists`);
  }
});
