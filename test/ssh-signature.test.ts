/**
 * gitroot's SSH signature verifier against git's and ssh-keygen's own, on the same objects:
 * commits and annotated tags signed by real `git` (gpg.format=ssh) with ssh-keygen keys of
 * each supported type, and the ways a revision must be refused (unsigned, tampered, unlisted
 * key, another namespace, a namespace the file does not allow, expired, not yet valid). Every
 * case asserts gitroot's verdict and that `git verify-commit`/`verify-tag` agrees.
 */
// needs: git
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllowedSigners } from '../lib/trust/allowed-signers.js';
import { judgeCommit, judgeTag } from '../lib/trust/revision-trust.js';
import { parseOpenSshPrivateKey, parseSshSignature, signSsh, verifySshSignature } from '../lib/trust/ssh-signature.js';
import { tempDir } from './helpers/temp-dir.js';
import {
  type TestKey,
  catFile,
  commitTree,
  gitEnv,
  hashObject,
  keygen,
  run,
  sshKeygenSign,
  status,
  tamper,
  withGpgsig,
  gitVerifies,
} from './helpers/trust-fixtures.js';

const dir = tempDir(t, 'trust-sig');
const repo = path.join(dir, 'r.git');
run('git', ['init', '-q', '--bare', repo]);
const tree = run('git', ['--git-dir', repo, 'hash-object', '-t', 'tree', '-w', '--stdin'], { input: Buffer.alloc(0) })
  .toString()
  .trim();

const ed = keygen(dir, 'ed');
const rsa = keygen(dir, 'rsa', 'rsa');
const ec = keygen(dir, 'ec', 'ecdsa');
const other = keygen(dir, 'other');
const old = keygen(dir, 'old');
const future = keygen(dir, 'future');
const fileOnly = keygen(dir, 'fileonly');

const signersText = [
  '# release keys',
  `release@example.com namespaces="git" ${ed.pub}`,
  `"Release Bot,ci@example.com" ${rsa.pub}`,
  `*@example.com namespaces="file,git" ${ec.pub}`,
  `old@example.com valid-before="20200101" ${old.pub}`,
  `future@example.com valid-after="20990101Z" ${future.pub}`,
  `files@example.com namespaces="file" ${fileOnly.pub}`,
  '',
].join('\n');
const signersFile = path.join(dir, 'allowed_signers');
fs.writeFileSync(signersFile, signersText);
const signers = parseAllowedSigners(signersText, signersFile);

function judge(sha: string) {
  return judgeCommit(signers, catFile(repo, 'commit', sha));
}

const signed = (key: TestKey, msg: string) => commitTree(repo, tree, null, msg, key);

t.test('commits signed by git with ed25519, RSA and ECDSA keys: trusted by gitroot and by git', async (t) => {
  for (const [name, key] of [
    ['ed25519', ed],
    ['rsa', rsa],
    ['ecdsa', ec],
  ] as const) {
    const sha = signed(key, `signed with ${name}`);
    const v = judge(sha);
    t.ok(v.trusted, `${name}: gitroot trusts it (${JSON.stringify(v)})`);
    if (v.trusted) t.equal(v.keyFingerprint, key.fingerprint, `${name}: the fingerprint ssh-keygen -l prints`);
    t.ok(gitVerifies(repo, sha, signersFile), `${name}: git verify-commit agrees`);
  }
});

t.test('refusals, each agreeing with git verify-commit', async (t) => {
  const unsignedSha = commitTree(repo, tree, null, 'not signed', null);
  const good = signed(ed, 'Release 7');
  const tampered = hashObject(repo, 'commit', tamper(catFile(repo, 'commit', good)));
  const base = catFile(repo, 'commit', unsignedSha);
  const fileNs = hashObject(repo, 'commit', withGpgsig(base, sshKeygenSign(ed, 'file', base)));
  const cases: Array<[string, string, string]> = [
    ['unsigned', unsignedSha, 'unsigned'],
    ['one byte of the signed body flipped', tampered, 'bad-signature'],
    ['signed by a key the file does not list', signed(other, 'by other'), 'unlisted-key'],
    ['signed in namespace "file"', fileNs, 'wrong-namespace'],
    ['key listed only for namespace "file"', signed(fileOnly, 'by file-only key'), 'namespace-not-allowed'],
    ['key expired (valid-before 2020) before the commit date', signed(old, 'by old key'), 'expired'],
    ['key valid only from 2099', signed(future, 'by future key'), 'not-yet-valid'],
  ];
  for (const [what, sha, why] of cases) {
    const v = judge(sha);
    t.equal(v.trusted, false, `${what}: refused`);
    if (!v.trusted) t.equal(v.why, why, `${what}: why=${why} (${v.detail})`);
    t.equal(gitVerifies(repo, sha, signersFile), false, `${what}: git verify-commit refuses it too`);
  }
  t.ok(gitVerifies(repo, good, signersFile) && judge(good).trusted, 'the untampered original is trusted by both');
});

t.test('an OpenPGP-signed commit is refused as such', async (t) => {
  const base = catFile(repo, 'commit', commitTree(repo, tree, null, 'pgp', null));
  const fake = '-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n-----END PGP SIGNATURE-----';
  const v = judgeCommit(signers, withGpgsig(base, fake));
  t.match(v, { trusted: false, why: 'openpgp' });
});

t.test('signed annotated tags: trusted, tampered and unsigned, agreeing with git verify-tag', async (t) => {
  const target = signed(ed, 'tagged');
  const sign = ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${ed.path}`];
  run('git', ['--git-dir', repo, ...sign, 'tag', '-s', '-m', 'release v1', 'v1', target]);
  run('git', ['--git-dir', repo, 'tag', '-a', '-m', 'unsigned tag', 'v1-unsigned', target]);
  const tagSha = run('git', ['--git-dir', repo, 'rev-parse', 'refs/tags/v1']).toString().trim();
  const body = catFile(repo, 'tag', tagSha);
  const v = judgeTag(signers, body);
  t.ok(v.trusted, `signed tag trusted (${JSON.stringify(v)})`);
  t.ok(gitVerifies(repo, tagSha, signersFile, 'tag'), 'git verify-tag agrees');
  // Flip one byte of the tag message (before the signature block).
  const flipped = Buffer.from(body);
  flipped[flipped.indexOf('release v1')] = 0x52; // 'r' -> 'R'
  const bad = hashObject(repo, 'tag', flipped);
  const vb = judgeTag(signers, catFile(repo, 'tag', bad));
  t.match(vb, { trusted: false, why: 'bad-signature' }, 'tampered tag message refused');
  t.equal(gitVerifies(repo, bad, signersFile, 'tag'), false, 'git verify-tag refuses it too');
  const unsignedTag = run('git', ['--git-dir', repo, 'rev-parse', 'refs/tags/v1-unsigned']).toString().trim();
  t.match(judgeTag(signers, catFile(repo, 'tag', unsignedTag)), { trusted: false, why: 'unsigned' });
});

t.test('raw SSHSIG: ssh-keygen -Y sign verified by gitroot, gitroot signSsh verified by ssh-keygen -Y verify', async (t) => {
  const msg = Buffer.from('a message\nwith two lines\n');
  for (const key of [ed, rsa, ec]) {
    const armored = sshKeygenSign(key, 'git', msg);
    const sig = parseSshSignature(armored);
    t.equal(verifySshSignature(sig, msg), null, `${path.basename(key.path)}: ssh-keygen's signature verifies`);
    t.not(verifySshSignature(sig, Buffer.concat([msg, Buffer.from('x')])), null, `${path.basename(key.path)}: not over another message`);
  }
  const sk = parseOpenSshPrivateKey(fs.readFileSync(ed.path, 'utf8'));
  const ours = signSsh(sk, 'git', msg);
  const sigFile = path.join(dir, 'ours.sig');
  fs.writeFileSync(sigFile, ours);
  const verify = (m: Buffer, principal: string) =>
    status('ssh-keygen', ['-Y', 'verify', '-f', signersFile, '-I', principal, '-n', 'git', '-s', sigFile], { input: m, env: gitEnv() });
  t.equal(verify(msg, 'release@example.com'), 0, "ssh-keygen -Y verify accepts gitroot's signature");
  t.not(verify(Buffer.from('another'), 'release@example.com'), 0, 'and refuses it over another message');
  t.equal(verifySshSignature(parseSshSignature(ours), msg), null, 'gitroot verifies its own');
});

t.test('private keys: encrypted, RSA and non-OpenSSH keys are refused with a reason', async (t) => {
  const enc = path.join(dir, 'enc');
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', enc]);
  t.throws(() => parseOpenSshPrivateKey(fs.readFileSync(enc, 'utf8')), /encrypted/);
  t.throws(() => parseOpenSshPrivateKey(fs.readFileSync(rsa.path, 'utf8')), /ssh-rsa key/);
  t.throws(() => parseOpenSshPrivateKey(fs.readFileSync(`${ed.path}.pub`, 'utf8')), /not an OpenSSH private key/);
  const pem = path.join(dir, 'pem');
  run('ssh-keygen', ['-q', '-t', 'ecdsa', '-m', 'PEM', '-N', '', '-f', pem]);
  t.throws(() => parseOpenSshPrivateKey(fs.readFileSync(pem, 'utf8')), /not an OpenSSH private key: convert/);
  const k = parseOpenSshPrivateKey(fs.readFileSync(ed.path, 'utf8'));
  t.equal(k.publicKey.toString('base64'), ed.pub.split(' ')[1], 'the public half matches the .pub file');
});
