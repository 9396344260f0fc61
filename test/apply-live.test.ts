/**
 * `gitroot apply-live` end to end on the host (lib/live/): a real gitroot home, a real boot
 * (`gitroot boot`: git-fs daemon, tmpfs, the overlay on top as at boot), then live updates
 * of that root. Checked through the root, as its programs see it: an fd opened before reads
 * the old bytes and one opened after the new; a directory replaced by a file and the reverse;
 * a hardlink group that splits; what was written to the root stays; an unchanged file keeps
 * its inode and its page cache; the changed service is restarted (systemctl is a recording
 * program: the restart step is injectable only at that boundary, which decides nothing);
 * state.json, RUN/live.json and `gitroot status` say "booted A, running B live"; the next boot
 * picks A until B is marked good, B after; `--revision A` goes back. Readers during repeated
 * live updates get no error and only whole files of one revision. Refusals (a kernel change,
 * a PID 1 change without --soft-reboot, an unknown, failed or untrusted revision, a system
 * gitroot did not boot) exit non-zero with one line and change nothing. --soft-reboot
 * prepares the new root at the next-root directory and asks systemctl for the soft-reboot.
 */
// needs: root fuse git
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, gitroot, isMounted, sh, waitExit } from './helpers/cli.js';
import { keygen } from './helpers/trust-fixtures.js';

interface Machine {
  dir: string;
  src: string;
  home: string;
  run: string;
  target: string;
  cmdline: string;
  log: string;
  env: NodeJS.ProcessEnv;
}

const BIG = 3 * 1024 * 1024 + 5;

/** A pattern that says which revision and path its bytes belong to, `size` bytes long. */
function pattern(tag: string, size: number): Buffer {
  const unit = Buffer.from(`${tag}|`);
  const b = Buffer.alloc(size);
  for (let o = 0; o < size; o += unit.length) unit.copy(b, o);
  return b;
}

function put(m: Machine, p: string, content: string | Buffer, mode = 0o644): void {
  const f = path.join(m.src, p);
  if (fs.existsSync(path.dirname(f)) && !fs.statSync(path.dirname(f)).isDirectory()) fs.rmSync(path.dirname(f));
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.rmSync(f, { recursive: true, force: true });
  fs.writeFileSync(f, content);
  fs.chmodSync(f, mode);
}

function commit(m: Machine, message: string): string {
  const c = gitroot(['commit', m.src, '--repo', path.join(m.home, 'repo.git'), '-m', message]);
  if (c.status !== 0) throw new Error(`commit failed: ${c.stderr}`);
  return c.stdout.trim();
}

/** Revision A's tree: a service and its program, a directory and a file that swap types in B, a hardlink pair, big and unchanged files. */
function treeA(m: Machine): void {
  put(m, 'etc/marker', 'A\n');
  fs.mkdirSync(path.join(m.src, 'tmp'), { recursive: true });
  fs.chmodSync(path.join(m.src, 'tmp'), 0o1777);
  put(m, 'usr/bin/svc', '#!/bin/sh\necho svc A\n', 0o755);
  put(m, 'usr/bin/other', '#!/bin/sh\necho other\n', 0o755);
  put(m, 'usr/lib/systemd/system/svc.service', '[Service]\nExecStart=/usr/bin/svc --serve\n');
  put(m, 'usr/lib/systemd/system/other.service', '[Service]\nExecStart=/usr/bin/other\n');
  put(m, 'usr/share/d/inside', 'a file in a directory\n');
  put(m, 'usr/share/f', 'a file\n');
  put(m, 'usr/share/h1', 'linked\n');
  fs.linkSync(path.join(m.src, 'usr/share/h1'), path.join(m.src, 'usr/share/h2'));
  put(m, 'usr/share/big', pattern('A-big', BIG));
  put(m, 'usr/share/keep', pattern('keep', 1024 * 1024));
  put(m, 'boot/vmlinuz-1', 'kernel 1\n');
  put(m, 'usr/lib/modules/6.1.0-test/kernel/fuse.ko', 'module 1\n');
}

/** B from A: the service's program, the marker, d becomes a file, f a directory, the pair splits, big changes. */
function treeB(m: Machine): void {
  put(m, 'etc/marker', 'B\n');
  put(m, 'usr/bin/svc', '#!/bin/sh\necho svc B\n', 0o755);
  put(m, 'usr/share/d', 'd is a file now\n');
  put(m, 'usr/share/f/inside', 'f is a directory now\n');
  put(m, 'usr/share/h2', 'linked\n');
  put(m, 'usr/share/big', pattern('B-big', BIG));
}

/** Unmounts everything under `dir` (deepest first), stops the daemon by its pid, then removes `dir` on its own filesystem only. */
async function cleanup(dir: string): Promise<void> {
  let pid: number | undefined;
  try {
    pid = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'booted.json'), 'utf8')).daemonPid;
  } catch {
    /* no boot */
  }
  const mounted = () =>
    fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((p) => p !== undefined && (p === dir || p.startsWith(`${dir}/`)));
  for (const p of mounted().sort().reverse()) spawnSync('umount', ['-l', p]);
  if (pid !== undefined && !(await waitExit(pid, 5000))) process.kill(pid, 'SIGKILL');
  if (mounted().length > 0) throw new Error(`still mounted under ${dir}: ${mounted().join(' ')}`);
  spawnSync('rm', ['-rf', '--one-file-system', dir]);
}

/** A home with A (good), booted by `gitroot boot` into `target`; B committed and, when `pending`, staged as the pending revision. */
async function bootedMachine(tt: { teardown(fn: () => unknown): void }, prefix: string): Promise<Machine & { A: string; B: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gitroot-${prefix}-`));
  tt.teardown(() => cleanup(dir));
  const m: Machine = {
    dir,
    src: path.join(dir, 'src'),
    home: path.join(dir, 'home'),
    run: path.join(dir, 'run'),
    target: path.join(dir, 'target'),
    cmdline: path.join(dir, 'cmdline'),
    log: path.join(dir, 'systemctl.log'),
    env: {},
  };
  fs.mkdirSync(m.src);
  fs.mkdirSync(m.target);
  treeA(m);
  const A = commit(m, 'A');
  treeB(m);
  const B = commit(m, 'B');
  writeState(m, { good: A });
  fs.writeFileSync(m.cmdline, 'boot=gitroot\n');
  const r = gitroot(['boot', '--dir', m.home, '--cmdline', m.cmdline, '--target', m.target, '--run-dir', m.run, '--json']);
  if (r.status !== 0) throw new Error(`boot failed: ${r.stderr}`);
  // systemctl: a program that records its arguments, one call a line.
  const fake = path.join(dir, 'systemctl');
  fs.writeFileSync(fake, `#!/bin/sh\necho "$*" >> ${m.log}\n`, { mode: 0o755 });
  m.env = { GITROOT_SYSTEMCTL: fake };
  return { ...m, A, B };
}

function writeState(m: Machine, s: { good?: string | null; pending?: string | null; booted?: string | null; failed?: string[] }): void {
  const state = fs.existsSync(path.join(m.home, 'state.json'))
    ? JSON.parse(fs.readFileSync(path.join(m.home, 'state.json'), 'utf8'))
    : { version: 1, good: null, pending: null, booted: null, failed: [], previousGood: [], staged: {} };
  if (s.good !== undefined) state.good = s.good;
  if (s.booted !== undefined) state.booted = s.booted;
  if (s.failed !== undefined) state.failed = s.failed;
  if (s.pending !== undefined)
    state.pending = s.pending === null ? null : { revision: s.pending, triesLeft: 3, tries: 3, stagedAt: '2026-12-01T00:00:00.000Z' };
  fs.writeFileSync(path.join(m.home, 'state.json'), JSON.stringify(state));
}

/** The parts of apply-live's --json the tests read. */
interface LiveJson {
  action: string;
  to: string;
  units: { restart: string[] };
}

function applyLive(m: Machine, args: string[]): { status: number; stdout: string; stderr: string; json: LiveJson | null } {
  const r = gitroot(['apply-live', '--dir', m.home, '--run-dir', m.run, '--root', m.target, ...args], { env: m.env });
  let json = null;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    /* not --json, or refused */
  }
  return { ...r, json };
}

const serving = (m: Machine): string => JSON.parse(gitroot(['switch', path.join(m.run, 'lower'), '--status', '--json']).stdout).commit;
const read = (m: Machine, p: string) => fs.readFileSync(path.join(m.target, p), 'utf8');
const cached = (file: string) => Number(sh(`fincore --bytes --noheadings --output RES ${JSON.stringify(file)}`).trim());
/** stderr without the step-time lines apply-live writes. */
const errorLines = (s: string) =>
  s
    .trim()
    .split('\n')
    .filter((l) => !/^gitroot: [a-z]+: \d+ ms$/.test(l));
const systemctlCalls = (m: Machine) => (fs.existsSync(m.log) ? fs.readFileSync(m.log, 'utf8').trim().split('\n').filter(Boolean) : []);
/** What a refusal must leave alone. */
const snapshot = (m: Machine) =>
  [
    JSON.stringify(JSON.parse(fs.readFileSync(path.join(m.home, 'state.json'), 'utf8'))),
    fs.existsSync(path.join(m.run, 'live.json')) ? fs.readFileSync(path.join(m.run, 'live.json'), 'utf8') : '-',
    serving(m),
    fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(m.dir))
      .map((l) => l.split(' ').slice(4, 5))
      .join(' '),
    systemctlCalls(m).join(';'),
  ].join('\n');

t.test('apply-live: the pending revision runs live through the boot overlay; status, next boot, and back', async (t) => {
  const m = await bootedMachine(t, 'live');
  const { A, B } = m;
  // What the running system holds and has cached before the update.
  fs.writeFileSync(path.join(m.target, 'usr/share/written-here'), 'local\n');
  const keep = path.join(m.target, 'usr/share/keep');
  fs.readFileSync(keep);
  const keepIno = fs.statSync(keep).ino;
  t.ok(cached(keep) >= 1024 * 1024, 'the unchanged file is in the page cache');
  for (const p of ['etc/marker', 'usr/bin/svc', 'usr/share/d/inside', 'usr/share/f', 'usr/share/h1', 'usr/share/h2']) read(m, p);
  const h1Before = fs.statSync(path.join(m.target, 'usr/share/h1'));
  t.equal(h1Before.nlink, 2, 'h1 and h2 are one hardlink group in A');
  const oldFd = fs.openSync(path.join(m.target, 'usr/share/big'), 'r');
  const head = Buffer.alloc(4096);
  fs.readSync(oldFd, head, 0, head.length, 0);
  writeState(m, { pending: B });

  const dry = applyLive(m, ['--dry-run', '--json']);
  t.equal(dry.status, 0, dry.stderr);
  t.equal(dry.json?.action, 'planned');
  t.equal(serving(m), A, '--dry-run switches nothing');

  const r = applyLive(m, ['--json']);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.json?.action, 'live');
  t.equal(r.json?.to, B, 'the pending revision is the default');
  t.same(r.json?.units.restart, ['svc.service'], 'the service whose program changed is restarted, the other is not');
  t.same(systemctlCalls(m), ['daemon-reload', 'try-restart -- svc.service'], 'systemctl: daemon-reload, then the restart');
  t.equal(serving(m), B);

  // Through the root, as its programs see it.
  const rest = Buffer.alloc(BIG);
  const n = fs.readSync(oldFd, rest, 0, BIG, 0);
  fs.closeSync(oldFd);
  t.ok(n === BIG && rest.equals(pattern('A-big', BIG)), 'the fd opened before reads the old bytes to the end');
  t.ok(fs.readFileSync(path.join(m.target, 'usr/share/big')).equals(pattern('B-big', BIG)), 'an open after reads the new bytes');
  t.equal(read(m, 'etc/marker'), 'B\n');
  t.equal(read(m, 'usr/bin/svc'), '#!/bin/sh\necho svc B\n');
  t.ok(fs.statSync(path.join(m.target, 'usr/share/d')).isFile(), 'a directory replaced by a file');
  t.equal(read(m, 'usr/share/d'), 'd is a file now\n');
  t.ok(fs.statSync(path.join(m.target, 'usr/share/f')).isDirectory(), 'a file replaced by a directory');
  t.equal(read(m, 'usr/share/f/inside'), 'f is a directory now\n');
  const [s1, s2] = ['h1', 'h2'].map((h) => fs.statSync(path.join(m.target, 'usr/share', h)));
  t.ok(s1.nlink === 1 && s2.nlink === 1 && s1.ino !== s2.ino, 'the hardlink group split: two files, one link each');
  t.equal(read(m, 'usr/share/written-here'), 'local\n', 'what was written to the root stays');
  t.equal(fs.statSync(keep).ino, keepIno, 'the unchanged file keeps its inode');
  t.ok(cached(keep) >= 1024 * 1024, 'and its page cache');
  fs.writeFileSync(path.join(m.target, 'usr/share/written-after'), 'new\n');
  t.equal(read(m, 'usr/share/written-after'), 'new\n', 'the root stays writable');

  // The records.
  const state = JSON.parse(fs.readFileSync(path.join(m.home, 'state.json'), 'utf8'));
  t.equal(state.booted, B, 'state.json: B is what runs');
  t.equal(state.pending, null, "B's pending trial is this live run");
  t.equal(state.good, A);
  const st = gitroot(['status', '--dir', m.home, '--run-dir', m.run, '--json']);
  t.equal(st.status, 0, st.stderr);
  const sj = JSON.parse(st.stdout);
  t.same([sj.booted, sj.running, sj.live?.running], [A, B, B], 'status --json: booted A, running B live');
  const text = gitroot(['status', '--dir', m.home, '--run-dir', m.run]).stdout;
  t.match(text, new RegExp(`^booted +${A}`, 'm'));
  t.match(text, new RegExp(`^running +${B}.*live since`, 'm'), 'status: running B live');

  // The next boot: A (good) until B is marked good, then B.
  const select = () => JSON.parse(gitroot(['select', '--dir', m.home, '--cmdline', m.cmdline, '--json']).stdout).revision;
  t.equal(select(), A, 'a reboot now boots A');
  const health = path.join(m.dir, 'health.d');
  fs.mkdirSync(health);
  const mg = gitroot(['mark-good', '--dir', m.home, '--run-dir', m.run, '--health-dir', health]);
  t.equal(mg.status, 0, mg.stderr);
  t.equal(select(), B, 'marked good, a reboot boots B');

  // Back to A.
  fs.writeFileSync(m.log, '');
  const back = applyLive(m, ['--revision', A, '--json']);
  t.equal(back.status, 0, back.stderr);
  t.equal(serving(m), A);
  t.equal(read(m, 'etc/marker'), 'A\n');
  t.ok(fs.statSync(path.join(m.target, 'usr/share/d')).isDirectory(), 'd is a directory again');
  t.equal(read(m, 'usr/share/f'), 'a file\n');
  t.equal(fs.statSync(path.join(m.target, 'usr/share/h1')).nlink, 2, 'the pair is one group again');
  t.equal(read(m, 'usr/share/written-after'), 'new\n', 'what was written while B ran stays');
  t.same(systemctlCalls(m), ['daemon-reload', 'try-restart -- svc.service']);
  const sj2 = JSON.parse(gitroot(['status', '--dir', m.home, '--run-dir', m.run, '--json']).stdout);
  t.same([sj2.booted, sj2.running], [A, A], 'status: A booted and running');
  const again = applyLive(m, ['--revision', A, '--json']);
  t.equal(again.status, 0, again.stderr);
  t.equal(again.json?.action, 'none', 'applying what runs does nothing');
});

t.test('apply-live refusals: one line, non-zero, nothing changed', async (t) => {
  const m = await bootedMachine(t, 'live-refuse');
  const { A, B } = m;
  // K: B with another kernel; M: B with the running kernel's modules changed; P: B with a new PID 1.
  put(m, 'boot/vmlinuz-1', 'kernel 2\n');
  const K = commit(m, 'K');
  put(m, 'boot/vmlinuz-1', 'kernel 1\n');
  put(m, 'usr/lib/modules/6.1.0-test/kernel/fuse.ko', 'module 2\n');
  const M = commit(m, 'M');
  put(m, 'usr/lib/modules/6.1.0-test/kernel/fuse.ko', 'module 1\n');
  put(m, 'usr/lib/systemd/systemd', 'pid 1 v2\n', 0o755);
  const P = commit(m, 'P');
  const before = snapshot(m);
  const refused = (args: string[], why: RegExp, name: string) => {
    const r = applyLive(m, args);
    t.not(r.status, 0, `${name}: exit ${r.status}`);
    const lines = errorLines(r.stderr);
    t.equal(lines.length, 1, `${name}: one line: ${lines.join(' | ')}`);
    t.match(lines[0] ?? '', why, name);
    t.notMatch(r.stderr, /\n\s+at /, `${name}: no stack trace`);
    t.equal(snapshot(m), before, `${name}: nothing changed`);
  };
  refused(['--revision', K], /needs a reboot: the kernel or its initrd changes \(\/boot\/vmlinuz-1\)/, 'a kernel change');
  refused(['--revision', M], /needs a reboot: kernel modules change \(\/usr\/lib\/modules\/6.1.0-test\/kernel\/fuse.ko\)/, 'a kernel modules change');
  refused(['--revision', K, '--soft-reboot'], /needs a reboot/, 'a kernel change, even with --soft-reboot');
  refused(['--revision', P], /PID 1 \(systemd\) changes.*--soft-reboot/, 'a PID 1 change without --soft-reboot');
  refused(['--revision', '0123456789abcdef0123456789abcdef01234567'], /0123456789abcdef/, 'an unknown revision');
  refused([], /nothing is pending/, 'nothing pending');
  writeState(m, { failed: [B] });
  const failedBefore = snapshot(m);
  const f = applyLive(m, ['--revision', B]);
  t.not(f.status, 0);
  t.match(errorLines(f.stderr).join('\n'), /failed before/);
  t.equal(snapshot(m), failedBefore, 'a failed revision: nothing changed');
  writeState(m, { failed: [] });
  // Untrusted: a trust root that signed nothing here.
  const keys = keygen(m.dir, 'fleet');
  const signers = path.join(m.dir, 'allowed_signers');
  fs.writeFileSync(signers, `release@example.com namespaces="git" ${keys.pub}\n`);
  const conf = path.join(m.dir, 'gitroot.conf');
  fs.writeFileSync(conf, `gitroot.allowed-signers=${signers}\n`);
  const u = applyLive(m, ['--revision', B, '--config', conf]);
  t.not(u.status, 0, 'an unsigned revision under a trust root');
  t.equal(errorLines(u.stderr).length, 1, errorLines(u.stderr).join(' | '));
  t.equal(snapshot(m), before, 'untrusted: nothing changed');
  // Not booted by gitroot.
  const nowhere = path.join(m.dir, 'not-booted');
  fs.mkdirSync(nowhere);
  const nb = gitroot(['apply-live', '--dir', m.home, '--run-dir', nowhere, '--root', m.target, '--revision', B], { env: m.env });
  t.not(nb.status, 0);
  t.match(errorLines(nb.stderr).join('\n'), /not booted by gitroot/);
  t.equal(errorLines(nb.stderr).length, 1);
  t.equal(snapshot(m), before, 'not booted: nothing changed');
  t.equal(serving(m), A);
});

t.test('apply-live --soft-reboot: the new root is prepared at the next-root directory, then systemctl soft-reboot', async (t) => {
  const m = await bootedMachine(t, 'live-soft');
  put(m, 'usr/lib/systemd/systemd', 'pid 1 v2\n', 0o755);
  const P = commit(m, 'P');
  const next = path.join(m.dir, 'nextroot');
  const r = applyLive(m, ['--revision', P, '--soft-reboot', '--next-root', next, '--json']);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.json?.action, 'soft-reboot');
  t.ok(isMounted(next), 'the new root is mounted');
  t.equal(fs.readFileSync(path.join(next, 'usr/lib/systemd/systemd'), 'utf8'), 'pid 1 v2\n', 'it is the new revision');
  t.same(systemctlCalls(m), ['soft-reboot']);
  t.equal(serving(m), P);
  const again = applyLive(m, ['--revision', m.A]);
  t.not(again.status, 0, 'another update while a soft-reboot is prepared is refused');
  t.match(errorLines(again.stderr).join('\n'), /soft-reboot into .* is prepared/);
});

t.test('apply-live under concurrent readers: every read is all of one revision; the only error is ESTALE, during an update', async (t) => {
  const m = await bootedMachine(t, 'live-readers');
  const { A, B } = m;
  const reader = `
    const fs = require('fs');
    const [root, stop] = [process.argv[1], process.argv[2]];
    const pattern = (tag, size) => { const u = Buffer.from(tag + '|'); const b = Buffer.alloc(size); for (let o = 0; o < size; o += u.length) u.copy(b, o); return b; };
    const want = { A: pattern('A-big', ${BIG}), B: pattern('B-big', ${BIG}) };
    const res = { reads: 0, A: 0, B: 0, errors: [], wrong: [] };
    const end = Date.now() + 300000;
    for (let n = 0; Date.now() < end && !(n % 8 === 0 && fs.existsSync(stop)); n++) {
      try {
        const which = n % 3;
        if (which === 0) {
          const b = fs.readFileSync(root + '/usr/share/big');
          res.reads++;
          if (b.equals(want.A)) res.A++; else if (b.equals(want.B)) res.B++; else res.wrong.push('big ' + b.length);
        } else if (which === 1) {
          const s = fs.readFileSync(root + '/etc/marker', 'utf8');
          res.reads++;
          if (s === 'A\\n') res.A++; else if (s === 'B\\n') res.B++; else res.wrong.push('marker ' + JSON.stringify(s));
        } else {
          const st = fs.statSync(root + '/usr/share/d');
          res.reads++;
          if (st.isDirectory()) fs.readFileSync(root + '/usr/share/d/inside'); else fs.readFileSync(root + '/usr/share/d');
        }
      } catch (e) { res.errors.push({ code: String(e.code || e.errno || e.message), path: e.path, at: Date.now() }); }
    }
    process.stdout.write(JSON.stringify(res));
  `;
  const stop = path.join(m.dir, 'stop');
  type ReadError = { code: string; path: string; at: number };
  const readers = [1, 2].map(
    () =>
      new Promise<{ reads: number; A: number; B: number; errors: ReadError[]; wrong: string[] }>((resolve, reject) => {
        const c = spawn(process.execPath, ['-e', reader, m.target, stop], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.on('exit', () => {
          try {
            resolve(JSON.parse(out));
          } catch (e) {
            reject(e);
          }
        });
      }),
  );
  const ROUNDS = 6;
  const failures: string[] = [];
  const windows: Array<{ from: number; to: number }> = [];
  await new Promise((res) => setTimeout(res, 300));
  for (let i = 0; i < ROUNDS; i++) {
    const from = Date.now();
    const rr = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [CLI, 'apply-live', '--dir', m.home, '--run-dir', m.run, '--root', m.target, '--revision', i % 2 === 0 ? B : A], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, ...m.env },
      });
      let err = '';
      c.stderr.on('data', (d) => (err += d));
      c.on('exit', (code) => resolve({ status: code, stderr: err }));
    });
    windows.push({ from, to: Date.now() });
    if (rr.status !== 0) failures.push(rr.stderr.trim());
    await new Promise((res) => setTimeout(res, 200));
  }
  fs.writeFileSync(stop, '');
  const results = await Promise.all(readers);
  t.same(failures, [], `${ROUNDS} live updates, all succeeded`);
  const total = results.reduce((a, x) => ({ reads: a.reads + x.reads, A: a.A + x.A, B: a.B + x.B }), { reads: 0, A: 0, B: 0 });
  // The one known failure (docs/live.md): between the switch and the fresh views, a lookup of a
  // changed path through the old view fails with ESTALE. Nothing else, never outside an update,
  // and never after one (a view that cached a stale entry would keep failing).
  const errors = results.flatMap((x) => x.errors);
  t.same(
    errors.filter((e) => !/ESTALE|-116/.test(e.code)),
    [],
    `no read failed but for ESTALE (${total.reads} reads, ${errors.length} ESTALE)`,
  );
  t.same(
    errors.filter((e) => !windows.some((w) => e.at >= w.from && e.at <= w.to)),
    [],
    'every ESTALE came during an apply-live',
  );
  const spans = windows
    .map((w) => errors.filter((e) => e.at >= w.from && e.at <= w.to).map((e) => e.at))
    .filter((a) => a.length > 0)
    .map((a) => Math.max(...a) - Math.min(...a));
  t.comment(`ESTALE in ${spans.length} of ${ROUNDS} updates, each within ${Math.max(0, ...spans)} ms`);
  for (const p of ['usr/share/big', 'etc/marker', 'usr/share/d/inside'])
    t.doesNotThrow(() => fs.readFileSync(path.join(m.target, p)), `after the updates, /${p} reads`);
  t.same(
    results.flatMap((x) => x.wrong),
    [],
    'every read was all of one revision',
  );
  t.ok(total.A > 0 && total.B > 0, `both revisions were read (A ${total.A}, B ${total.B})`);
});
