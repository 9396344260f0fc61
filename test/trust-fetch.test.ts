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
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { commitSpec, debianRoot, tempDir } from './helpers/deploy-fixtures.js';
import { gitrootAsync as gitroot } from './helpers/cli.js';
import {
  type TestKey, catFile, commitTree, gitVerifies, hashObject, keygen, run, setBranch, sshKeygenSign, tamper, withGpgsig,
} from './helpers/trust-fixtures.js';

interface Machine { dir: string; boot: string; conf: string; cmdline: string; base: string[] }

function machine(base: string, settings: string[]): Machine {
  const dir = path.join(base, 'home');
  const boot = path.join(base, 'bootmedium');
  const conf = path.join(base, 'gitroot.conf');
  const cmdline = path.join(base, 'cmdline');
  fs.mkdirSync(boot, { recursive: true });
  const lines = ['gitroot.bootloader=bls', `gitroot.boot=${boot}`, 'gitroot.timeout=5', 'gitroot.retries=0', ...settings];
  fs.writeFileSync(conf, lines.join('\n') + '\n');
  fs.writeFileSync(cmdline, 'BOOT_IMAGE=/vmlinuz quiet\n');
  return { dir, boot, conf, cmdline, base: lines };
}

/** Rewrites the machine's config file with extra settings. */
function configure(m: Machine, extra: string[]): void {
  fs.writeFileSync(m.conf, [...m.base, ...extra].join('\n') + '\n');
}

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

t.before(async () => {
  work = fs.mkdtempSync('/tmp/gitroot-trust-fetch-');
  const projectRoot = path.join(work, 'srv');
  fs.mkdirSync(projectRoot);
  repo = path.join(projectRoot, 'os.git');
  keys = { release: keygen(work, 'release'), other: keygen(work, 'other'), old: keygen(work, 'old'), rsa: keygen(work, 'rsa', 'rsa') };
  signersFile = path.join(work, 'allowed-signers');
  fs.writeFileSync(signersFile, [
    `release@example.com namespaces="git" ${keys.release.pub}`,
    `old@example.com valid-before="20200101" ${keys.old.pub}`,
    `rsa@example.com ${keys.rsa.pub}`,
  ].join('\n') + '\n');
  // Two releases with kernels, recorded by gitroot commit (unsigned); their trees are reused.
  c.r1 = commitSpec(work, repo, debianRoot('6.1.0-9', 'r1'), 'release 1');
  c.r2 = commitSpec(work, repo, debianRoot('6.1.0-10', 'r2', { 'etc/motd': 'release two\n' }), 'release 2');
  const tree = (sha: string) => run('git', ['--git-dir', repo, 'rev-parse', `${sha}^{tree}`]).toString().trim();
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
  server = await startGitHttpServer({ projectRoot });
  url = server.url('os.git');
});
t.teardown(async () => {
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

t.test('a commit signed by a listed key is staged; the fetch reports the key', async (t) => {
  const m = machine(tempDir(t, 'trust-ok'), [`gitroot.remote=${url}`, `gitroot.allowed-signers=${signersFile}`, 'fetch-revision=s1']);
  const r = await fetch(m);
  t.equal(r.status, 0, `exit 0 (${r.stderr.trim()})`);
  const out = JSON.parse(r.stdout);
  t.match(out, { action: 'staged', revision: c.s1, trust: { signature: { object: c.s1, kind: 'commit', keyFingerprint: keys.release.fingerprint, principals: ['release@example.com'] } } });
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
    const m = machine(tempDir(t, `trust-${branch}`), [`gitroot.remote=${url}`, `gitroot.allowed-signers=${signersFile}`, 'fetch-revision=s1']);
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
  const m = machine(tempDir(t, 'trust-gpg'), [`gitroot.remote=${url}`, `gitroot.gpg-keyring=${path.join(work, 'fleet.gpg')}`]);
  const requests = server.stats.requests;
  const r = await fetch(m);
  t.equal(r.status, 2, 'exit 2 (ECONFIG)');
  t.equal(r.stderr.trim(), 'gitroot: gitroot.gpg-keyring is not supported in this build: use gitroot.allowed-signers (SSH signatures; see docs/trust.md)');
  t.equal(server.stats.requests, requests, 'no request reached the server');
});

t.test('an unreadable allowed-signers file is a config error naming it', async (t) => {
  const m = machine(tempDir(t, 'trust-nofile'), [`gitroot.remote=${url}`, `gitroot.allowed-signers=${path.join(work, 'missing')}`, 'fetch-revision=s1']);
  const requests = server.stats.requests;
  const r = await fetch(m);
  t.equal(r.status, 2);
  t.match(r.stderr.trim(), /^gitroot: gitroot\.allowed-signers=\S+missing cannot be read \(ENOENT\): /);
  t.equal(server.stats.requests, requests, 'read before any request');
  t.notOk(fs.existsSync(path.join(m.dir, 'state.json')), 'nothing staged');
});

t.test('downgrade: a branch force-pushed back to an older commit is refused, unless pinned or allowed', async (t) => {
  const m = machine(tempDir(t, 'trust-down'), [`gitroot.remote=${url}`, 'fetch-revision=line']);
  setBranch(repo, 'line', c.s2);
  const first = await fetch(m);
  t.equal(first.status, 0, `s2 staged (${first.stderr.trim()})`);
  const again = await fetch(m);
  t.match(JSON.parse(again.stdout), { action: 'up-to-date', revision: c.s2, trust: { downgrade: { why: 'up-to-date' } } }, 'the same tip is up to date, not a downgrade');
  const before = snapshot(m);

  setBranch(repo, 'line', c.s1); // force-push to the parent
  const r = await fetch(m);
  t.equal(r.status, 8, 'exit 8 (ETRUST)');
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  t.match(r.stderr, new RegExp(`^gitroot: refusing commit ${c.s1.slice(0, 12)} \\(${c.s1}\\): it does not descend from the pending ${c.s2.slice(0, 12)} revision`));
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
