/**
 * Fixtures for the trust tests: real ssh-keygen keys, commits and tags signed by real git
 * (gpg.format=ssh), and hand-made variants git itself would write (a signature in another
 * namespace, a tampered body via hash-object --literally), plus git's and ssh-keygen's own
 * verdicts to cross-check gitroot's verifier against.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** Runs a program; returns stdout as a Buffer; throws with stderr when it fails. */
export function run(cmd: string, args: string[], opts: { input?: Buffer | string; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Buffer {
  const r = spawnSync(cmd, args, { input: opts.input, cwd: opts.cwd, env: opts.env ?? gitEnv(), maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr?.toString()}`);
  return r.stdout;
}

/** Exit status of a program (no throw). */
export function status(cmd: string, args: string[], opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv } = {}): number {
  const r = spawnSync(cmd, args, { input: opts.input, env: opts.env ?? gitEnv(), maxBuffer: 64 << 20 });
  return r.status ?? 128;
}

/** git's environment for the tests: fixed identity, no user or system config. */
export function gitEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_AUTHOR_NAME: 'Release Bot',
    GIT_AUTHOR_EMAIL: 'release@example.com',
    GIT_COMMITTER_NAME: 'Release Bot',
    GIT_COMMITTER_EMAIL: 'release@example.com',
  };
}

export interface TestKey {
  /** Private key file. */
  path: string;
  /** `TYPE BASE64 COMMENT` (the .pub file). */
  pub: string;
  /** ssh-keygen -l's SHA256:... fingerprint. */
  fingerprint: string;
}

/** A new unencrypted key made by ssh-keygen (`type` ed25519, rsa, ecdsa). */
export function keygen(dir: string, name: string, type: 'ed25519' | 'rsa' | 'ecdsa' = 'ed25519'): TestKey {
  const p = path.join(dir, name);
  const bits = type === 'rsa' ? ['-b', '2048'] : type === 'ecdsa' ? ['-b', '256'] : [];
  run('ssh-keygen', ['-q', '-t', type, ...bits, '-N', '', '-C', name, '-f', p]);
  const pub = fs.readFileSync(`${p}.pub`, 'utf8').trim();
  const fingerprint = run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${p}.pub`])
    .toString()
    .split(' ')[1];
  return { path: p, pub, fingerprint };
}

/** A commit of `tree` made by `git commit-tree`, signed with `key` (gpg.format=ssh) unless null. */
export function commitTree(repo: string, tree: string, parent: string | null, message: string, key: TestKey | null): string {
  const sign = key === null ? [] : ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${key.path}`];
  const args = ['--git-dir', repo, ...sign, 'commit-tree', ...(key === null ? [] : ['-S']), ...(parent ? ['-p', parent] : []), '-m', message, tree];
  return run('git', args).toString().trim();
}

/**
 * An annotated tag `name` of `target` made by `git tag` (signed with `key`, gpg.format=ssh,
 * unless null); returns the tag object's id.
 */
export function tagObject(repo: string, name: string, target: string, message: string, key: TestKey | null): string {
  const sign = key === null ? [] : ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${key.path}`];
  run('git', ['--git-dir', repo, ...sign, 'tag', key === null ? '-a' : '-s', '-m', message, name, target]);
  return run('git', ['--git-dir', repo, 'rev-parse', `refs/tags/${name}`])
    .toString()
    .trim();
}

/** Points `refs/tags/<name>` at `oid` (a lightweight tag, or a hand-made tag object). */
export function setTag(repo: string, name: string, oid: string): void {
  run('git', ['--git-dir', repo, 'update-ref', `refs/tags/${name}`, oid]);
}

/** The raw body of an object. */
export function catFile(repo: string, type: string, sha: string): Buffer {
  return run('git', ['--git-dir', repo, 'cat-file', type, sha]);
}

/** Writes `body` as an object of `type` exactly as given (--literally: no checks), returns its id. */
export function hashObject(repo: string, type: string, body: Buffer): string {
  return run('git', ['--git-dir', repo, 'hash-object', '-t', type, '-w', '--literally', '--stdin'], { input: body }).toString().trim();
}

/** An armored SSHSIG of `payload` made by ssh-keygen -Y sign in `namespace`. */
export function sshKeygenSign(key: TestKey, namespace: string, payload: Buffer): string {
  return run('ssh-keygen', ['-q', '-Y', 'sign', '-n', namespace, '-f', key.path], { input: payload }).toString();
}

/** `body` (an unsigned commit) with a gpgsig header holding `armored`, where git puts it. */
export function withGpgsig(body: Buffer, armored: string): Buffer {
  const end = body.indexOf('\n\n');
  const header = `gpgsig ${armored.trim().split('\n').join('\n ')}\n`;
  return Buffer.concat([body.subarray(0, end + 1), Buffer.from(header), body.subarray(end + 1)]);
}

/** `body` with the first byte of its message flipped (the signature no longer matches). */
export function tamper(body: Buffer): Buffer {
  const out = Buffer.from(body);
  const at = out.lastIndexOf('\n\n') + 2;
  out[at] = out[at] === 0x41 ? 0x42 : 0x41;
  return out;
}

/** Points `refs/heads/<branch>` at `sha` (a force-push on the server's bare repository). */
export function setBranch(repo: string, branch: string, sha: string): void {
  run('git', ['--git-dir', repo, 'update-ref', `refs/heads/${branch}`, sha]);
}

/** git verify-commit's (or verify-tag's) verdict with `signers` as gpg.ssh.allowedSignersFile. */
export function gitVerifies(repo: string, sha: string, signers: string, kind: 'commit' | 'tag' = 'commit'): boolean {
  return status('git', ['--git-dir', repo, '-c', `gpg.ssh.allowedSignersFile=${signers}`, `verify-${kind}`, sha]) === 0;
}
