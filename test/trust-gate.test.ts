/**
 * Signed revisions and downgrade protection through the real CLI (`gitroot fetch`) against a
 * real `git http-backend` on 127.0.0.1. The server's commits are signed by real git
 * (`git commit-tree -S`, gpg.format=ssh) with ssh-keygen keys, or made bad the ways an
 * attacker or an accident would: unsigned, one byte flipped after signing, an unlisted key,
 * another namespace, an expired key. Each bad one is refused with exit 8 (ETRUST) and a
 * one-line reason naming the commit; state.json, D/boot and the boot entries stay
 * byte-for-byte as they were; last-fetch.json records the refusal. Then a branch
 * force-pushed back to an older commit is refused as a downgrade, unless update-revision
 * names it or gitroot.allow-downgrade is set.
 */
// needs: git server
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { commitSpec, debianRoot } from './helpers/deploy-fixtures.js';
import { type Machine, configure, machine } from './helpers/machine.js';
import { tempDir } from './helpers/temp-dir.js';
import { gitrootAsync as gitroot } from './helpers/cli.js';
import {
  type TestKey,
  catFile,
  commitTree,
  gitVerifies,
  hashObject,
  keygen,
  run,
  setBranch,
  setTag,
  sshKeygenSign,
  tagObject,
  tamper,
  withGpgsig,
} from './helpers/trust-fixtures.js';
import { decideBoot } from '../lib/boot/boot-decide.js';
import { readAllowedSigners } from '../lib/trust/allowed-signers.js';

const fetch = (m: Machine) => gitroot(['fetch', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, '--json']);

/** Everything a refused attempt must leave alone. */
function snapshot(m: Machine): string {
  const out: string[] = [];
  const walk = (root: string, rel = '') => {
    if (!fs.existsSync(path.join(root, rel))) return;
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const p = path.join(rel, name);
      const st = fs.lstatSync(path.join(root, p));
      if (st.isDirectory()) walk(root, p);
      else out.push(`${root}/${p} ${st.size} ${fs.readFileSync(path.join(root, p)).toString('base64')}`);
    }
  };
  out.push(fs.existsSync(path.join(m.dir, 'state.json')) ? fs.readFileSync(path.join(m.dir, 'state.json'), 'utf8') : 'no state');
  walk(path.join(m.dir, 'boot'));
  walk(m.boot);
  return out.join('\n');
}

const lastFetch = (m: Machine) => JSON.parse(fs.readFileSync(path.join(m.dir, 'last-fetch.json'), 'utf8'));

let server: GitHttpServer;
let work: string;
let repo: string;
let url: string;
let signersFile: string;
let keys: Record<'release' | 'other' | 'old' | 'rsa', TestKey>;
/** Commits on the server, by name. */
const c: Record<string, string> = {};
/** Annotated tags on the server (refs/tags/<name>), by name: their object ids. */
const tags: Record<string, string> = {};

t.before(async () => {
  work = fs.mkdtempSync('/tmp/gitroot-trust-fetch-');
  const projectRoot = path.join(work, 'srv');
  fs.mkdirSync(projectRoot);
  repo = path.join(projectRoot, 'os.git');
  keys = { release: keygen(work, 'release'), other: keygen(work, 'other'), old: keygen(work, 'old'), rsa: keygen(work, 'rsa', 'rsa') };
  signersFile = path.join(work, 'allowed-signers');
  fs.writeFileSync(
    signersFile,
    [
      `release@example.com namespaces="git" ${keys.release.pub}`,
      `old@example.com valid-before="20200101" ${keys.old.pub}`,
      `rsa@example.com ${keys.rsa.pub}`,
    ].join('\n') + '\n',
  );
  // Two releases with kernels, recorded by gitroot commit (unsigned); their trees are reused.
  c.r1 = commitSpec(work, repo, debianRoot('6.1.0-9', 'r1'), 'release 1');
  c.r2 = commitSpec(work, repo, debianRoot('6.1.0-10', 'r2', { 'etc/motd': 'release two\n' }), 'release 2');
  const tree = (sha: string) =>
    run('git', ['--git-dir', repo, 'rev-parse', `${sha}^{tree}`])
      .toString()
      .trim();
  const [t1, t2] = [tree(c.r1), tree(c.r2)];
  // A signed line: s1 <- s2 <- s3, and children of s1 made bad in each way.
  c.s1 = commitTree(repo, t1, null, 'signed release 1', keys.release);
  c.s2 = commitTree(repo, t2, c.s1, 'signed release 2', keys.release);
  c.s3 = commitTree(repo, t1, c.s2, 'signed release 3', keys.release);
  c.unsigned = commitTree(repo, t2, c.s1, 'unsigned release', null);
  c.tampered = hashObject(repo, 'commit', tamper(catFile(repo, 'commit', commitTree(repo, t2, c.s1, 'Release tampered', keys.release))));
  c.unlisted = commitTree(repo, t2, c.s1, 'signed by an unlisted key', keys.other);
  const body = catFile(repo, 'commit', c.unsigned);
  c.namespace = hashObject(repo, 'commit', withGpgsig(body, sshKeygenSign(keys.release, 'file', body)));
  c.expired = commitTree(repo, t2, c.s1, 'signed by an expired key', keys.old);
  c.rsa = commitTree(repo, t2, c.s1, 'signed by the RSA key', keys.rsa);
  for (const name of ['s1', 'unsigned', 'tampered', 'unlisted', 'namespace', 'expired', 'rsa']) setBranch(repo, name, c[name]);
  setBranch(repo, 'master', c.s2);
  // Tags of the unsigned commit: only a tag's signature can vouch for it.
  tags['v-signed'] = tagObject(repo, 'v-signed', c.unsigned, 'release 4 (signed tag)', keys.release);
  tags['v-plain'] = tagObject(repo, 'v-plain', c.unsigned, 'release 4 (unsigned tag)', null);
  tags['v-unlisted'] = tagObject(repo, 'v-unlisted', c.unsigned, 'release 4 (tag by an unlisted key)', keys.other);
  tags['v-nested'] = tagObject(repo, 'v-nested', tags['v-plain'], 'release 4 (signed tag of a tag)', keys.release);
  tags['v-tampered'] = hashObject(repo, 'tag', tamper(catFile(repo, 'tag', tagObject(repo, 'v-tmp', c.unsigned, 'Release 4, tampered', keys.release))));
  setTag(repo, 'v-tampered', tags['v-tampered']);
  setTag(repo, 'v-light', c.unsigned); // lightweight: no tag object, the commit itself must be signed
  tagObject(repo, 's1', c.unsigned, 'a tag named like the branch s1', keys.release); // the branch wins
  server = await startGitHttpServer({ projectRoot });
  url = server.url('os.git');
});
t.teardown(async () => {
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

t.test('a commit signed by a listed key is staged; the fetch reports the key', async (t) => {
  const m = machine(tempDir(t, 'trust-ok'), { remote: url, settings: [`gitroot.allowed-signers=${signersFile}`, 'fetch-revision=s1'] });
  const r = await fetch(m);
  t.equal(r.status, 0, `exit 0 (${r.stderr.trim()})`);
  const out = JSON.parse(r.stdout);
  t.match(out, {
    action: 'staged',
    revision: c.s1,
    trust: { signature: { object: c.s1, kind: 'commit', keyFingerprint: keys.release.fingerprint, principals: ['release@example.com'] } },
  });
  t.ok(gitVerifies(repo, c.s1, signersFile), 'git verify-commit agrees');
  t.type(out.trust.verifyMs, 'number', 'the time verification took is reported (bench/trust-bench.ts measures it)');
  configure(m, ['fetch-revision=rsa']);
  const rsa = await fetch(m);
  t.equal(rsa.status, 0, `the RSA-signed child is staged too (${rsa.stderr.trim()})`);
  t.match(JSON.parse(rsa.stdout), { action: 'staged', revision: c.rsa, trust: { signature: { keyType: 'ssh-rsa' } } });
});

const refusals: Array<[string, string, RegExp]> = [
  ['unsigned', 'unsigned', /it is not signed; sign it with 'git commit -S'/],
  ['tampered', 'bad-signature', /does not verify .*altered after signing/],
  ['unlisted', 'unlisted-key', /signed by ssh-ed25519 key SHA256:\S+, which .*allowed-signers does not list/],
  ['namespace', 'wrong-namespace', /signed in namespace 'file', not 'git'/],
  ['expired', 'expired', /allows key SHA256:\S+ only until 2020-01-01/],
];

for (const [branch, why, message] of refusals) {
  t.test(`refused: ${branch} (${why}); nothing staged, last-fetch records it`, async (t) => {
    const m = machine(tempDir(t, `trust-${branch}`), { remote: url, settings: [`gitroot.allowed-signers=${signersFile}`, 'fetch-revision=s1'] });
    const first = await fetch(m);
    t.equal(first.status, 0, `the signed s1 is staged first (${first.stderr.trim()})`);
    const before = snapshot(m);
    configure(m, [`fetch-revision=${branch}`]);
    const r = await fetch(m);
    const sha = c[branch];
    t.equal(r.status, 8, 'exit 8 (ETRUST)');
    t.equal(r.stdout, '', 'nothing on stdout');
    const lines = r.stderr.trim().split('\n');
    t.equal(lines.length, 1, `one line: ${r.stderr.trim()}`);
    t.match(lines[0], new RegExp(`^gitroot: refusing commit ${sha.slice(0, 12)} \\(${sha}\\): `), 'names the commit, short and full');
    t.match(lines[0], message);
    t.notMatch(r.stderr, /\s+at\s/, 'no stack trace');
    t.equal(snapshot(m), before, 'state.json, D/boot and the entries are unchanged');
    t.match(lastFetch(m), { result: 'refused', revision: sha, error: { code: 'ETRUST' } });
    t.equal(gitVerifies(repo, sha, signersFile), false, 'git verify-commit refuses it too');
  });
}

t.test('gitroot.gpg-keyring is refused at settings load, before any network', async (t) => {
  const m = machine(tempDir(t, 'trust-gpg'), { remote: url, settings: [`gitroot.gpg-keyring=${path.join(work, 'fleet.gpg')}`] });
  const requests = server.stats.requests;
  const r = await fetch(m);
  t.equal(r.status, 2, 'exit 2 (ECONFIG)');
  t.equal(r.stderr.trim(), 'gitroot: gitroot.gpg-keyring is not supported in this build: use gitroot.allowed-signers (SSH signatures; see docs/trust.md)');
  t.equal(server.stats.requests, requests, 'no request reached the server');
});

t.test('an unreadable allowed-signers file is a config error naming it', async (t) => {
  const m = machine(tempDir(t, 'trust-nofile'), { remote: url, settings: [`gitroot.allowed-signers=${path.join(work, 'missing')}`, 'fetch-revision=s1'] });
  const requests = server.stats.requests;
  const r = await fetch(m);
  t.equal(r.status, 2);
  t.match(r.stderr.trim(), /^gitroot: gitroot\.allowed-signers=\S+missing cannot be read \(ENOENT\): /);
  t.equal(server.stats.requests, requests, 'read before any request');
  t.notOk(fs.existsSync(path.join(m.dir, 'state.json')), 'nothing staged');
});

t.test('downgrade: a branch force-pushed back to an older commit is refused, unless pinned or allowed', async (t) => {
  const m = machine(tempDir(t, 'trust-down'), { remote: url, settings: ['fetch-revision=line'] });
  setBranch(repo, 'line', c.s2);
  const first = await fetch(m);
  t.equal(first.status, 0, `s2 staged (${first.stderr.trim()})`);
  const again = await fetch(m);
  t.match(
    JSON.parse(again.stdout),
    { action: 'up-to-date', revision: c.s2, trust: { downgrade: { why: 'up-to-date' } } },
    'the same tip is up to date, not a downgrade',
  );
  const before = snapshot(m);

  setBranch(repo, 'line', c.s1); // force-push to the parent
  const r = await fetch(m);
  t.equal(r.status, 8, 'exit 8 (ETRUST)');
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  t.match(
    r.stderr,
    new RegExp(`^gitroot: refusing commit ${c.s1.slice(0, 12)} \\(${c.s1}\\): it does not descend from the pending ${c.s2.slice(0, 12)} revision`),
  );
  t.match(r.stderr, new RegExp(`update-revision=${c.s1}`));
  t.equal(snapshot(m), before, 'nothing staged');
  t.match(lastFetch(m), { result: 'refused', revision: c.s1, error: { code: 'ETRUST' } });
  const status = await gitroot(['status', '--dir', m.dir]);
  t.match(status.stdout, new RegExp(`refused: refusing commit ${c.s1.slice(0, 12)}`), 'gitroot status shows the refusal and why');

  setBranch(repo, 'line', c.unsigned); // a sibling of s2: another history
  const sib = await fetch(m);
  t.equal(sib.status, 8, 'a commit on another line is refused too');
  t.equal(snapshot(m), before);

  fs.writeFileSync(m.cmdline, `BOOT_IMAGE=/vmlinuz quiet update-revision=${c.s1}\n`);
  const pinned = await fetch(m);
  t.equal(pinned.status, 0, `update-revision naming it stages it (${pinned.stderr.trim()})`);
  t.match(JSON.parse(pinned.stdout), { action: 'staged', revision: c.s1, trust: { downgrade: { why: 'pinned' } } });
  fs.writeFileSync(m.cmdline, 'BOOT_IMAGE=/vmlinuz quiet\n');

  setBranch(repo, 'line', c.s3); // newer again: descends from s1 (pending) and s2
  const up = await fetch(m);
  t.equal(up.status, 0, `a descendant is staged (${up.stderr.trim()})`);
  t.match(JSON.parse(up.stdout), { action: 'staged', revision: c.s3, trust: { downgrade: { why: 'descendant' } } });

  setBranch(repo, 'line', c.s2);
  configure(m, ['gitroot.allow-downgrade']);
  const allowed = await fetch(m);
  t.equal(allowed.status, 0, `gitroot.allow-downgrade lets it through (${allowed.stderr.trim()})`);
  const out = JSON.parse(allowed.stdout);
  t.match(out, { action: 'staged', revision: c.s2, trust: { downgrade: { why: 'allowed-downgrade' } } });
  t.match(out.warnings.join('\n'), /downgrade allowed/, 'with a warning');
});

t.test('signed annotated tags: fetch-revision=<tag> and update-revision=<tag id> stage the commit the tag vouches for', async (t) => {
  const m = machine(tempDir(t, 'trust-tag'), { remote: url, settings: [`gitroot.allowed-signers=${signersFile}`, 'fetch-revision=v-signed'] });
  const home = path.join(m.dir, 'repo.git');
  t.ok(gitVerifies(repo, tags['v-signed'], signersFile, 'tag'), 'git verify-tag accepts the tag');
  t.notOk(gitVerifies(repo, c.unsigned, signersFile), 'git verify-commit refuses its commit');
  const r = await fetch(m);
  t.equal(r.status, 0, `exit 0 (${r.stderr.trim()})`);
  const out = JSON.parse(r.stdout);
  t.match(out, {
    action: 'staged',
    revision: c.unsigned,
    fetch: { tag: tags['v-signed'] },
    trust: { signature: { object: tags['v-signed'], kind: 'tag', keyFingerprint: keys.release.fingerprint, principals: ['release@example.com'] } },
  });
  const rev = (ref: string) => run('git', ['--git-dir', home, 'rev-parse', '--verify', '-q', ref]).toString().trim();
  t.equal(rev(`refs/gitroot/tag/${c.unsigned}`), tags['v-signed'], 'refs/gitroot/tag/<commit> names the tag');
  t.equal(rev('refs/gitroot/fetched/v-signed'), c.unsigned, 'the fetched ref names the commit');

  const st = await gitroot(['status', '--dir', m.dir, '--json']);
  t.same(JSON.parse(st.stdout).tags, { [c.unsigned]: { tag: tags['v-signed'], name: 'v-signed' } }, 'status --json names the tag');
  t.match((await gitroot(['status', '--dir', m.dir])).stdout, new RegExp(`^pending +${c.unsigned} .*tag v-signed`, 'm'), 'and so does the table');

  // The boot's trust root verifies the recorded tag; without it the commit alone is untrusted.
  const signers = readAllowedSigners(signersFile);
  const ok = await decideBoot({ dir: m.dir, cmdline: '', signers });
  t.match(ok, { revision: c.unsigned, kind: 'pending', health: { [c.unsigned]: 'ok' } }, 'gitroot boot trusts it through the tag');

  // prune keeps the tag (ref and object) with its revision; the boot still trusts it after a repack.
  const p = await gitroot(['prune', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, '--json']);
  t.equal(p.status, 0, p.stderr);
  t.notOk(JSON.parse(p.stdout).refsDeleted.includes(`refs/gitroot/tag/${c.unsigned}`), 'prune keeps the tag ref');
  t.equal(run('git', ['--git-dir', home, 'cat-file', '-t', tags['v-signed']]).toString().trim(), 'tag', 'the tag object survives the repack');
  t.match(await decideBoot({ dir: m.dir, cmdline: '', signers }), { revision: c.unsigned, health: { [c.unsigned]: 'ok' } });
  const fsck = await gitroot(['fsck', '--dir', m.dir, '--json']);
  t.equal(fsck.status, 0, `gitroot fsck is clean with the tag ref (${fsck.stderr.trim()})`);
  t.ok(
    JSON.parse(fsck.stdout).revisions.some((r: { roles: string[] }) => r.roles.includes(`ref:refs/gitroot/tag/${c.unsigned}`)),
    'and checks the tag',
  );

  const moved = `${rev(`refs/gitroot/tag/${c.unsigned}`)}`;
  run('git', ['--git-dir', home, 'update-ref', '-d', `refs/gitroot/tag/${c.unsigned}`]);
  const untrusted = await decideBoot({ dir: m.dir, cmdline: '', signers });
  t.match(untrusted, { revision: null, health: { [c.unsigned]: 'untrusted' } }, 'without the tag ref the commit alone is untrusted at boot');
  t.match(untrusted.notes.join('\n'), /is untrusted: it is not signed/);
  // A tag ref naming a tag of another commit does not vouch: the peel is checked.
  // A tag ref naming an object that is not there vouches for nothing, and does not make the revision unreadable.
  fs.mkdirSync(path.join(home, 'refs', 'gitroot', 'tag'), { recursive: true });
  fs.writeFileSync(path.join(home, 'refs', 'gitroot', 'tag', c.unsigned), `${'0'.repeat(39)}1\n`);
  const gone = await decideBoot({ dir: m.dir, cmdline: '', signers });
  t.match(gone, { health: { [c.unsigned]: 'untrusted' } }, 'a tag ref to a missing object: untrusted, not broken');
  t.match(gone.notes.join('\n'), /is untrusted: it cannot be read .*, and its commit \S{12} is not signed/);
  run('git', ['--git-dir', home, 'update-ref', `refs/gitroot/tag/${c.unsigned}`, moved]);
  t.match(await decideBoot({ dir: m.dir, cmdline: '', signers }), { health: { [c.unsigned]: 'ok' } }, 'restored, trusted again');

  // update-revision=<id of a signed tag of an unsigned tag>: peeled through both.
  const n = machine(tempDir(t, 'trust-tag-pin'), { remote: url, settings: [`gitroot.allowed-signers=${signersFile}`] });
  fs.writeFileSync(n.cmdline, `BOOT_IMAGE=/vmlinuz quiet update-revision=${tags['v-nested']}\n`);
  const pinned = await fetch(n);
  t.equal(pinned.status, 0, `update-revision=<tag id> (${pinned.stderr.trim()})`);
  t.match(JSON.parse(pinned.stdout), { action: 'staged', revision: c.unsigned, trust: { signature: { object: tags['v-nested'], kind: 'tag' } } });

  // A branch and a tag of the same name: the branch is what fetch-revision follows.
  const b = machine(tempDir(t, 'trust-tag-branch'), { remote: url, settings: [`gitroot.allowed-signers=${signersFile}`, 'fetch-revision=s1'] });
  const branch = await fetch(b);
  t.equal(branch.status, 0, branch.stderr);
  t.match(
    JSON.parse(branch.stdout),
    { revision: c.s1, fetch: { tag: null }, trust: { signature: { kind: 'commit' } } },
    'refs/heads/s1 wins over refs/tags/s1',
  );
});

const tagRefusals: Array<[string, string, RegExp]> = [
  [
    'v-plain',
    'unsigned',
    /^gitroot: refusing tag \S{12} \([0-9a-f]{40}\) of commit \S{12}: it is not signed, and its commit \S{12} is not signed; sign it with 'git tag -s'/,
  ],
  [
    'v-unlisted',
    'unlisted-key',
    /^gitroot: refusing tag .*: it is signed by ssh-ed25519 key SHA256:\S+, which .*allowed-signers does not list, and its commit \S{12} is not signed/,
  ],
  ['v-tampered', 'bad-signature', /^gitroot: refusing tag .*does not verify .*altered after signing/],
  ['v-light', 'unsigned', /^gitroot: refusing commit \S{12} \([0-9a-f]{40}\): it is not signed/],
];

for (const [name, why, message] of tagRefusals) {
  t.test(`refused: tag ${name} (${why}); nothing staged`, async (t) => {
    const m = machine(tempDir(t, `trust-${name}`), { remote: url, settings: [`gitroot.allowed-signers=${signersFile}`, 'fetch-revision=s1'] });
    const first = await fetch(m);
    t.equal(first.status, 0, `the signed s1 is staged first (${first.stderr.trim()})`);
    const before = snapshot(m);
    configure(m, [`fetch-revision=${name}`]);
    const r = await fetch(m);
    t.equal(r.status, 8, 'exit 8 (ETRUST)');
    const lines = r.stderr.trim().split('\n');
    t.equal(lines.length, 1, `one line: ${r.stderr.trim()}`);
    t.match(lines[0], message);
    if (tags[name] !== undefined)
      t.match(
        lines[0],
        new RegExp(`refusing tag ${tags[name].slice(0, 12)} \\(${tags[name]}\\) of commit ${c.unsigned.slice(0, 12)}`),
        'names the tag and its commit',
      );
    t.equal(snapshot(m), before, 'state.json, D/boot and the entries are unchanged');
    t.match(lastFetch(m), { result: 'refused', revision: c.unsigned, error: { code: 'ETRUST' } });
    if (tags[name] !== undefined) t.equal(gitVerifies(repo, tags[name], signersFile, 'tag'), false, 'git verify-tag refuses it too');
  });
}

t.test('tags nested deeper than 8 are refused in one line; 8 deep is peeled', async (t) => {
  let inner = c.s1;
  const chain: string[] = [];
  for (let i = 1; i <= 9; i++) {
    inner = tagObject(repo, `deep-${i}`, inner, `level ${i}`, null);
    chain.push(inner);
  }
  const ok = machine(tempDir(t, 'trust-tag-deep8'), { remote: url, settings: ['fetch-revision=deep-8'] });
  const r8 = await fetch(ok);
  t.equal(r8.status, 0, `8 deep (${r8.stderr.trim()})`);
  t.match(JSON.parse(r8.stdout), { action: 'staged', revision: c.s1, fetch: { tag: chain[7] } });
  const m = machine(tempDir(t, 'trust-tag-deep9'), { remote: url, settings: ['fetch-revision=deep-9'] });
  const r = await fetch(m);
  t.not(r.status, 0, 'refused');
  t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`);
  t.match(r.stderr, new RegExp(`tag ${chain[8]} is nested more than 8 deep .*: tag the commit itself`));
  t.notOk(fs.existsSync(path.join(m.dir, 'state.json')), 'nothing staged');
});

t.test('a tag of a tree is refused before any trust check: one line naming it', async (t) => {
  const tree = run('git', ['--git-dir', repo, 'rev-parse', `${c.s1}^{tree}`])
    .toString()
    .trim();
  const treeTag = tagObject(repo, 'v-tree', tree, 'a tag of a tree', keys.release);
  const m = machine(tempDir(t, 'trust-tag-tree'), { remote: url, settings: ['fetch-revision=v-tree'] });
  const r = await fetch(m);
  t.not(r.status, 0, 'refused');
  t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`);
  t.match(r.stderr, new RegExp(`tag ${treeTag} points at a tree on .*, not a commit: give a commit SHA or an annotated tag of one`));
  t.notOk(fs.existsSync(path.join(m.dir, 'state.json')), 'nothing staged');
});
