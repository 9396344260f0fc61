/**
 * The trust root at boot. Pure: over every combination of a small state space and every
 * health map with ok/broken/damaged/untrusted, selectRevision treats `untrusted` exactly as
 * `broken` (same revision, kind and persisted state; never chosen, not even as the last
 * resort a damaged revision is). Then on real homes whose revisions were recorded by
 * `gitroot commit`, signed with `--sign-key` or not: decideBoot with the signers falls back
 * from an unsigned pending revision to the signed good one (using the try, noting why), and
 * `gitroot boot --allowed-signers` refuses, before mounting anything, a home where nothing is
 * signed; `gitroot commit --sign-key` commits verify with `git verify-commit`.
 */
// needs: git
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { type RevisionHealth, type Selection, selectRevision } from '../lib/boot/boot-select.js';
import { decideBoot } from '../lib/boot/boot-decide.js';
import { type DeployState, emptyState, readState, writeState } from '../lib/home/home-state.js';
import { withLock } from '../lib/home/home-lock.js';
import { readAllowedSigners } from '../lib/trust/allowed-signers.js';
import { CLI, gitroot } from './helpers/cli.js';
import { writeTree } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';
import { gitVerifies, keygen } from './helpers/trust-fixtures.js';

const [G, P, Q, O] = ['1', '2', '3', '4'].map((c) => c.repeat(40));
const T0 = '2026-05-06T07:08:09.000Z';

function* states(): Generator<DeployState> {
  for (const good of [null, G]) {
    for (const pending of [null, 0, 1, 2, 'good'] as const) {
      for (const previousGood of [[], [Q]]) {
        for (const failed of [[], [P], [Q]]) {
          for (const booted of [null, G, O]) {
            const p =
              pending === null
                ? null
                : pending === 'good'
                  ? good === null
                    ? null
                    : { revision: good, triesLeft: 1, tries: 3, stagedAt: T0 }
                  : { revision: P, triesLeft: pending, tries: 3, stagedAt: T0 };
            yield { ...emptyState(), good, pending: p, previousGood, failed, booted };
          }
        }
      }
    }
  }
}

t.test("selectRevision: 'untrusted' is exactly 'broken', exhaustively", async (t) => {
  const HEALTHS: RevisionHealth[] = ['ok', 'broken', 'damaged', 'untrusted'];
  const revs = [G, P, Q, O];
  let cases = 0;
  let mismatches = 0;
  let untrustedChosen = 0;
  let fellBack = 0;
  let first = '';
  const text = (s: Selection) =>
    JSON.stringify({
      ...s,
      reason: s.reason.replace(/untrusted \(no valid signature[^)]*\)/g, 'X'),
      notes: s.notes.map((n) => n.replace(/untrusted \(no valid signature[^)]*\)/g, 'X')),
    });
  const asBroken = (s: Selection) =>
    JSON.stringify({
      ...s,
      reason: s.reason.replace(/unreadable \(its objects fail verification\)/g, 'X'),
      notes: s.notes.map((n) => n.replace(/unreadable \(its objects fail verification\)/g, 'X')),
    });
  for (const state of states()) {
    for (const cmdline of [null, G, P, O, 'junk']) {
      for (let code = 0; code < HEALTHS.length ** revs.length; code++) {
        const h: Record<string, RevisionHealth> = {};
        let c = code;
        for (const r of revs) {
          h[r] = HEALTHS[c % HEALTHS.length];
          c = Math.floor(c / HEALTHS.length);
        }
        if (!Object.values(h).includes('untrusted')) continue;
        const b: Record<string, RevisionHealth> = Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v === 'untrusted' ? 'broken' : v]));
        // Only maps where `broken` appears solely in place of `untrusted` keep the reason texts comparable.
        if (Object.values(h).includes('broken')) continue;
        cases++;
        const got = selectRevision({ state, cmdlineRevision: cmdline, health: (s) => h[s] ?? 'missing' });
        const ref = selectRevision({ state, cmdlineRevision: cmdline, health: (s) => b[s] ?? 'missing' });
        if (got.revision !== null && h[got.revision] === 'untrusted') untrustedChosen++;
        if (got.revision !== null && Object.entries(h).some(([r, v]) => v === 'untrusted' && r !== got.revision)) fellBack++;
        if (text(got) !== asBroken(ref)) {
          mismatches++;
          first ||= JSON.stringify({ state, cmdline, h, got, ref });
        }
      }
    }
  }
  t.ok(cases > 10000, `${cases} cases`);
  t.equal(mismatches, 0, `same decisions as with broken${first ? `; first: ${first}` : ''}`);
  t.equal(untrustedChosen, 0, 'an untrusted revision is never chosen');
  t.ok(fellBack > 0, `and something else boots instead in ${fellBack} cases`);
});

function commitTree(work: string, repo: string, name: string, key?: string): string {
  const root = fs.mkdtempSync(path.join(work, 'tree-'));
  writeTree(root, { [`etc/${name}`]: `${name}\n` });
  const args = [CLI, 'commit', root, '--repo', repo, '-m', name, ...(key ? ['--sign-key', key] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gitroot commit: ${r.stderr}`);
  return r.stdout.trim();
}

t.test('on a real home: an unsigned pending revision is passed over for the signed good one', async (t) => {
  const work = tempDir(t, 'trust-boot');
  const dir = path.join(work, 'home');
  const repo = path.join(dir, 'repo.git');
  fs.mkdirSync(dir);
  const key = keygen(work, 'release');
  const signersFile = path.join(work, 'allowed-signers');
  fs.writeFileSync(signersFile, `release@example.com namespaces="git" ${key.pub}\n`);
  const good = commitTree(work, repo, 'good', key.path);
  const pending = commitTree(work, repo, 'pending');
  t.ok(gitVerifies(repo, good, signersFile), 'gitroot commit --sign-key: git verify-commit accepts it');
  t.notOk(gitVerifies(repo, pending, signersFile), 'the unsigned one git refuses');
  const branches = spawnSync('git', ['--git-dir', repo, 'for-each-ref', '--format=%(refname)'], { encoding: 'utf8' }).stdout.trim();
  t.equal(branches, 'refs/heads/master', 'no temporary branch is left behind');

  const start: DeployState = { ...emptyState(), good, booted: good, pending: { revision: pending, triesLeft: 2, tries: 3, stagedAt: T0 } };
  await withLock(dir, {}, (lock) => writeState(lock, start));
  const signers = readAllowedSigners(signersFile);

  const plain = await decideBoot({ dir, cmdline: '', persist: false });
  t.match(plain, { revision: pending, kind: 'pending' }, 'without a trust root the pending revision boots');
  const d = await decideBoot({ dir, cmdline: '', persist: true, signers });
  t.match(d, { revision: good, kind: 'good', health: { [pending]: 'untrusted', [good]: 'ok' } });
  t.match(d.notes.join('\n'), new RegExp(`revision ${pending} is untrusted: it is not signed`));
  t.match(readState(dir), { booted: good, pending: { revision: pending, triesLeft: 1 } }, 'the attempt used a try, like an unreadable revision');
});

t.test('gitroot boot --allowed-signers refuses a home with nothing signed, before mounting', async (t) => {
  const work = tempDir(t, 'trust-boot-none');
  const dir = path.join(work, 'home');
  const repo = path.join(dir, 'repo.git');
  const target = path.join(work, 'newroot');
  fs.mkdirSync(dir);
  fs.mkdirSync(target);
  const key = keygen(work, 'release');
  const signersFile = path.join(work, 'allowed-signers');
  fs.writeFileSync(signersFile, `release@example.com ${key.pub}\n`);
  const good = commitTree(work, repo, 'unsigned-good');
  await withLock(dir, {}, (lock) => writeState(lock, { ...emptyState(), good, booted: good }));
  const cmdline = path.join(work, 'cmdline');
  fs.writeFileSync(cmdline, 'boot=gitroot quiet\n');
  const before = fs.readFileSync(path.join(dir, 'state.json'), 'utf8');
  const r = gitroot([
    'boot',
    '--dir',
    dir,
    '--cmdline',
    cmdline,
    '--target',
    target,
    '--run-dir',
    path.join(work, 'run'),
    '--allowed-signers',
    signersFile,
    '--no-persist',
  ]);
  t.equal(r.status, 3, `exit 3 (${r.stderr.trim()})`);
  t.match(r.stderr, new RegExp(`no bootable revision.*good revision ${good.slice(0, 12)} is untrusted`));
  t.equal(
    r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('gitroot: boot: ')).length,
    1,
    'one error line',
  );
  t.equal(fs.readdirSync(target).length, 0, 'nothing mounted at the target');
  t.equal(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'), before);

  const bad = path.join(work, 'bad-signers');
  fs.writeFileSync(bad, 'release@example.com cert-authority ssh-ed25519 AAAA\n');
  const r2 = gitroot([
    'boot',
    '--dir',
    dir,
    '--cmdline',
    cmdline,
    '--target',
    target,
    '--run-dir',
    path.join(work, 'run'),
    '--allowed-signers',
    bad,
    '--no-persist',
  ]);
  t.equal(r2.status, 2, 'a malformed trust root fails the boot (exit 2)');
  t.match(r2.stderr, /cert-authority, which gitroot does not support/);
});
