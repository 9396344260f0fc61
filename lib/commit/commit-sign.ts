/**
 * Signing what `gitroot commit --sign-key KEY` records: git fast-import cannot sign, so the
 * commit is imported onto a temporary branch, its object is rewritten with a `gpgsig` header
 * holding an SSH signature (namespace "git", over the commit without that header: exactly
 * what `git commit -S` with gpg.format=ssh writes and `git verify-commit` checks), and the
 * real branch is moved to the signed commit with one compare-and-swap `git update-ref`. The
 * branch never names the unsigned commit; a failure leaves it as it was.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors/errors.js';
import { type SigningKey, SignatureFormatError, fingerprint, parseOpenSshPrivateKey, signSsh } from '../trust/ssh-signature.js';
import { GIT_NAMESPACE } from '../trust/revision-trust.js';
import { gitFailure, gitSpawnFailure } from '../git/git-exec.js';

/** Reads an unencrypted OpenSSH ed25519 private key; UsageError naming the file and the fix otherwise. */
export function loadSigningKey(path: string): SigningKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--sign-key ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? e}): give the private key file (e.g. ~/.ssh/id_ed25519)`, {
      cause: e,
    });
  }
  try {
    return parseOpenSshPrivateKey(text);
  } catch (e) {
    if (e instanceof SignatureFormatError) throw new UsageError(`--sign-key ${path}: ${e.message}`, { cause: e });
    throw e;
  }
}

/** The commit body with a gpgsig header signing it, inserted at the end of the headers (git's place). Pure. */
export function signCommitBody(body: Buffer, key: SigningKey): Buffer {
  const end = body.indexOf('\n\n');
  if (end < 0) throw new UsageError('the commit to sign has no message separator');
  if (/^gpgsig /m.test(body.subarray(0, end + 1).toString('latin1'))) throw new UsageError('the commit is signed already');
  const armored = signSsh(key, GIT_NAMESPACE, body).replace(/\n$/, '');
  const header = Buffer.from(`gpgsig ${armored.split('\n').join('\n ')}\n`, 'latin1');
  return Buffer.concat([body.subarray(0, end + 1), header, body.subarray(end + 1)]);
}

/** Runs git with binary stdin and stdout; GitCommandError when it fails. */
function gitBytes(args: string[], env: NodeJS.ProcessEnv, input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', (e) => reject(gitSpawnFailure(e)));
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(gitFailure(args, { code, stderr }))));
    child.stdin.on('error', () => {
      /* exit status tells */
    });
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** A temporary branch name for the unsigned commit (never a real release branch). */
export function unsignedBranchName(): string {
  return `gitroot-unsigned-${process.pid}-${Date.now().toString(36)}`;
}

/**
 * Signs `unsigned` (on temporary branch `tmpBranch`) and moves `branch` from `parent` (null:
 * the branch must not exist) to the signed commit atomically; removes the temporary branch
 * either way. Returns the signed commit id and the key's fingerprint.
 */
export async function signAndMove(o: {
  gitdir: string;
  env: NodeJS.ProcessEnv;
  key: SigningKey;
  unsigned: string;
  tmpBranch: string;
  branch: string;
  parent: string | null;
}): Promise<{ commit: string; keyFingerprint: string }> {
  const g = `--git-dir=${o.gitdir}`;
  try {
    const body = await gitBytes([g, 'cat-file', 'commit', o.unsigned], o.env);
    const signed = signCommitBody(body, o.key);
    const commit = (await gitBytes([g, 'hash-object', '-t', 'commit', '-w', '--stdin'], o.env, signed)).toString('latin1').trim();
    await gitBytes([g, 'update-ref', '-m', 'gitroot commit --sign-key', `refs/heads/${o.branch}`, commit, o.parent ?? '0'.repeat(40)], o.env);
    return { commit, keyFingerprint: fingerprint(o.key.publicKey) };
  } finally {
    await gitBytes([g, 'update-ref', '-d', `refs/heads/${o.tmpBranch}`, o.unsigned], o.env).catch(() => undefined);
  }
}
