/**
 * `gitroot fetch` / `status` / `diff` end to end, through the real CLI, against a real
 * `git http-backend` on 127.0.0.1 serving repos built with `gitroot commit`: settings from
 * config files and a kernel command line, the fetch, kernel staging and BLS entries, and
 * the failure paths leaving state.json, D/boot and the entries byte-for-byte as before.
 */
// needs: git server
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { commitSpec, debianRoot } from './helpers/deploy-fixtures.js';
import { type Machine, machine } from './helpers/machine.js';
import { tempDir } from './helpers/temp-dir.js';
import { gitrootAsync as gitroot } from './helpers/cli.js';

async function fetch(m: Machine, extra: string[] = [], env?: NodeJS.ProcessEnv) {
  return gitroot(['fetch', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, '--json', ...extra], { env });
}

/** Everything a failed attempt must leave alone. */
function snapshot(m: Machine): string {
  const out: string[] = [];
  const walk = (root: string, rel = '') => {
    if (!fs.existsSync(path.join(root, rel))) return;
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const p = path.join(rel, name);
      const st = fs.lstatSync(path.join(root, p));
      if (st.isDirectory()) walk(root, p);
      else out.push(`${root}/${p} ${st.size} ${fs.readFileSync(path.join(root, p)).toString('base64').slice(0, 64)}`);
    }
  };
  if (fs.existsSync(path.join(m.dir, 'state.json'))) out.push(fs.readFileSync(path.join(m.dir, 'state.json'), 'utf8'));
  walk(path.join(m.dir, 'boot'));
  walk(m.boot);
  return out.join('\n');
}

let server: GitHttpServer;
let projectRoot: string;
let work: string;
let repo: string;
let url: string;
const releases: string[] = [];

t.before(async () => {
  work = fs.mkdtempSync('/tmp/gitroot-update-');
  projectRoot = path.join(work, 'srv');
  fs.mkdirSync(projectRoot);
  repo = path.join(projectRoot, 'os.git');
  releases.push(commitSpec(work, repo, debianRoot('6.1.0-9', 'r1'), 'release 1'));
  releases.push(commitSpec(work, repo, debianRoot('6.1.0-10', 'r2', { 'etc/motd': 'release two\n' }), 'release 2'));
  server = await startGitHttpServer({ projectRoot });
  url = server.url('os.git');
});
t.teardown(async () => {
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

t.test('fetch-revision tip is fetched and staged with kernel, initrd and a BLS entry', async (t) => {
  const m = machine(tempDir(t, 'tip'), { remote: url });
  const r = await fetch(m);
  t.equal(r.status, 0, `exit 0 (${r.stderr.trim()})`);
  const out = JSON.parse(r.stdout);
  t.equal(out.action, 'staged');
  t.equal(out.revision, releases[1], 'the tip of master');
  const state = JSON.parse(fs.readFileSync(path.join(m.dir, 'state.json'), 'utf8'));
  t.equal(state.pending.revision, releases[1], 'pending in state.json');
  t.equal(state.pending.triesLeft, 3, 'default tries');
  const kdir = path.join(m.dir, 'boot', releases[1]);
  t.equal(fs.readFileSync(path.join(kdir, 'vmlinuz')).subarray(0x202, 0x206).toString(), 'HdrS', 'kernel staged');
  const entries = fs.readdirSync(path.join(m.boot, 'loader', 'entries'));
  const pending = entries.find((e) => e.includes(releases[1].slice(0, 12)));
  t.ok(pending, `a BLS entry for the revision (${entries.join(', ')})`);
  t.match(pending!, /\+3\.conf$/, 'with boot counting');
  const entry = fs.readFileSync(path.join(m.boot, 'loader', 'entries', pending!), 'utf8');
  t.match(entry, new RegExp(`git-revision=${releases[1]}`), 'selects the revision');
  t.match(entry, /\bquiet\b/, "keeps the running kernel's options");

  const again = await fetch(m);
  t.equal(again.status, 0);
  t.equal(JSON.parse(again.stdout).action, 'up-to-date', 'a second fetch stages nothing new');

  const st = await gitroot(['status', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, '--json']);
  t.equal(st.status, 0, st.stderr);
  const status = JSON.parse(st.stdout);
  t.match(status, { pending: { revision: releases[1], triesLeft: 3 }, remote: url, fetchRevision: 'master', failed: [] });
  t.equal(status.lastFetch.result, 'up-to-date', 'last fetch recorded');
  const human = await gitroot(['status', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline]);
  t.match(human.stdout, releases[1].slice(0, 12), 'human status names the pending revision');
});

t.test('update-revision on the kernel command line pins an older commit', async (t) => {
  const m = machine(tempDir(t, 'pin'), { remote: url, cmdline: `BOOT_IMAGE=/vmlinuz quiet update-revision=${releases[0]}` });
  const r = await fetch(m);
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.equal(out.revision, releases[0], 'the pinned (older) commit');
  t.equal(out.action, 'staged');
  t.ok(fs.existsSync(path.join(m.dir, 'boot', releases[0], 'vmlinuz')), 'its kernel is staged');
});

t.test('noupgrade: nothing fetched, no request made, exit 0', async (t) => {
  const m = machine(tempDir(t, 'noup'), { remote: url, cmdline: 'BOOT_IMAGE=/vmlinuz quiet noupgrade' });
  server.resetStats();
  const r = await fetch(m);
  t.equal(r.status, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).action, 'disabled');
  t.equal(server.stats.requests, 0, 'the server saw no request');
  t.notOk(fs.existsSync(path.join(m.dir, 'state.json')), 'no state written');
});

t.test('--dry-run reports the update and changes nothing', async (t) => {
  const m = machine(tempDir(t, 'dry'), { remote: url });
  const r = await fetch(m, ['--dry-run']);
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.equal(out.action, 'dry-run');
  t.equal(out.wouldStage, 'stage');
  t.ok(out.fetch.objects > 0 && out.fetch.bytes > 0, `sizes reported (${out.fetch.objects} objects, ${out.fetch.bytes} bytes)`);
  t.notOk(fs.existsSync(path.join(m.dir, 'state.json')), 'no state');
  t.notOk(fs.existsSync(path.join(m.boot, 'loader')), 'no boot entries');
});

t.test('failures: one-line errors, non-zero exits, state and boot files untouched', async (t) => {
  const m = machine(tempDir(t, 'fail'), { remote: url, cmdline: `BOOT_IMAGE=/vmlinuz quiet update-revision=${releases[0]}` });
  t.equal((await fetch(m)).status, 0, 'a first revision is staged');
  fs.writeFileSync(m.cmdline, 'quiet\n');
  const before = snapshot(m);
  const cases: Array<[string, () => void, number, RegExp]> = [
    ['server error 500', () => server.setFault({ kind: 'status', code: 500 }), 6, /500/],
    ['HTML instead of git', () => server.setFault({ kind: 'html' }), 6, /HTML|not a git|smart/i],
    ['hang', () => server.setFault({ kind: 'hang' }), 6, /time/i],
  ];
  for (const [name, arm, code, re] of cases) {
    arm();
    const r = await fetch(m);
    server.setFault(null);
    t.equal(r.status, code, `${name}: exit ${code} (${r.stderr.trim()})`);
    t.match(r.stderr, re, `${name}: names the cause`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line`);
    t.equal(snapshot(m), before, `${name}: state, kernels and entries unchanged`);
  }
  const badBranch = machine(tempDir(t, 'branch'), { remote: url, settings: ['fetch-revision=no-such-branch'] });
  const r = await fetch(badBranch);
  t.equal(r.status, 3, `unknown branch: exit 3 (${r.stderr.trim()})`);
  t.match(r.stderr, /no-such-branch/);
  const unknownSha = 'a'.repeat(40);
  fs.writeFileSync(m.cmdline, `update-revision=${unknownSha}\n`);
  const r2 = await fetch(m);
  t.not(r2.status, 0, `unknown SHA fails (${r2.stderr.trim()})`);
  t.match(r2.stderr, new RegExp(unknownSha.slice(0, 12)));
  t.equal(snapshot(m), before, 'unchanged after the unknown SHA');
  const st = JSON.parse((await gitroot(['status', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, '--json'])).stdout);
  t.equal(st.lastFetch.result, 'failed', 'status shows the failed attempt');
  t.match(st.lastFetch.error.message, unknownSha.slice(0, 12));

  const noRemote = machine(tempDir(t, 'noremote'));
  const r3 = await fetch(noRemote);
  t.equal(r3.status, 2, 'no remote: usage error');
  t.match(r3.stderr, /gitroot\.remote/);
  const typo = machine(tempDir(t, 'typo'), { remote: url, settings: ['gitroot.trise=4'] });
  const r4 = await fetch(typo);
  t.equal(r4.status, 2, 'unknown key in a config file: exit 2');
  t.match(r4.stderr, /gitroot\.conf:\d+/, 'names the file and line');
});

t.test('gitroot.reboot-after-update reboots right after staging', async (t) => {
  const base = tempDir(t, 'reboot');
  const m = machine(base, { remote: url, settings: ['gitroot.reboot-after-update'] });
  const marker = path.join(base, 'rebooted');
  const r = await fetch(m, [], { ...process.env, GITROOT_REBOOT_COMMAND: `touch ${marker}` });
  t.equal(r.status, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).reboot, 'requested');
  t.ok(fs.existsSync(marker), 'the reboot command ran');
});

t.test('gitroot diff lists added, removed and changed files with sizes', async (t) => {
  const r = await gitroot(['diff', releases[0], releases[1], '--repo', repo, '--json']);
  t.equal(r.status, 0, r.stderr);
  const d = JSON.parse(r.stdout);
  const byPath = new Map(d.changes.map((c: { path: string }) => [c.path, c]));
  t.match(byPath.get('etc/motd'), { kind: 'added', newSize: 'release two\n'.length });
  t.match(byPath.get('boot/vmlinuz-6.1.0-9'), { kind: 'removed' });
  t.match(byPath.get('boot/vmlinuz-6.1.0-10'), { kind: 'added' });
  t.match(byPath.get('etc/os-release'), { kind: 'changed' });
  const stat = await gitroot(['diff', releases[0], releases[1], '--repo', repo, '--stat']);
  t.match(stat.stdout, /files changed: \d+ added, \d+ removed, \d+ changed/);
  const bad = await gitroot(['diff', 'nope', releases[1], '--repo', repo]);
  t.equal(bad.status, 3, 'unknown revision: exit 3');
});
