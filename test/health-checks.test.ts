/**
 * The health checks of mark-good (runHealthChecks in lib/boot/health-checks.ts) with real
 * scripts: run sorted, every one even after a failure, output captured (both streams, the
 * end of a long one), the environment they get; what is skipped (not executable, hidden,
 * backups, directories); a missing directory means no checks; a check that hangs is ended
 * with its whole process group at the timeout; the veto message names the script and its
 * last line.
 */
// needs: none
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { checkNewGood } from '../lib/boot/transitions.js';
import { healthVeto, runHealthChecks } from '../lib/boot/health-checks.js';
import { planMarkGood, TransitionRefusedError, type RevisionHealth } from '../lib/boot/boot-select.js';
import { emptyState } from '../lib/home/home-state.js';
import { tempDir } from './helpers/temp-dir.js';

function script(dir: string, name: string, body: string, mode = 0o755): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode });
  fs.chmodSync(p, mode);
  return p;
}

t.test('checks run sorted; all pass', async (t) => {
  const dir = tempDir(t, 'health');
  const order = path.join(dir, '..', `${path.basename(dir)}.order`);
  t.teardown(() => fs.rmSync(order, { force: true }));
  script(dir, '20-disk', `echo disk >> ${order}; echo "disk fine"`);
  script(dir, '10-net', `echo net >> ${order}; echo "rev $GITROOT_REVISION in $GITROOT_DIR from $(pwd)"; echo warn >&2`);
  const r = await runHealthChecks({ healthDir: dir, env: { GITROOT_REVISION: 'abc', GITROOT_DIR: '/gitroot' } });
  t.equal(r.ok, true);
  t.same(
    r.checks.map((c) => c.name),
    ['10-net', '20-disk'],
  );
  t.equal(fs.readFileSync(order, 'utf8'), 'net\ndisk\n', 'one after the other, in name order');
  t.match(r.checks[0], { ok: true, exitCode: 0, signal: null, timedOut: false, lastLine: 'warn' });
  t.match(r.checks[0].output, /rev abc in \/gitroot from \/\n/, 'environment and cwd /');
  t.ok(r.checks.every((c) => c.durationMs >= 0));
});

t.test('a failing check vetoes; every check still runs; the veto names the first and its last line', async (t) => {
  const dir = tempDir(t, 'health');
  script(dir, '10-ok', 'exit 0');
  script(dir, '20-net', 'echo "pinging gateway"\necho "gateway 10.0.0.1 unreachable" >&2\necho\nexit 3');
  script(dir, '30-silent', 'exit 1');
  script(dir, '40-ok', 'exit 0');
  const r = await runHealthChecks({ healthDir: dir });
  t.equal(r.ok, false);
  t.same(
    r.checks.map((c) => [c.name, c.ok, c.exitCode]),
    [
      ['10-ok', true, 0],
      ['20-net', false, 3],
      ['30-silent', false, 1],
      ['40-ok', true, 0],
    ],
  );
  const e = healthVeto(r);
  t.equal(e.code, 'ESTATE');
  t.equal(
    e.message,
    `mark-good: health check ${path.join(dir, '20-net')} failed (exit 3): gateway 10.0.0.1 unreachable (and 1 more: 30-silent); ` +
      'the revision is not marked good and the state is unchanged',
  );
  t.match(e.data, { script: path.join(dir, '20-net'), failed: ['20-net', '30-silent'], lastLine: 'gateway 10.0.0.1 unreachable', exitCode: 3 });
  const silent = healthVeto({ ...r, checks: [r.checks[2]] });
  t.match(silent.message, /30-silent failed \(exit 1\), printing nothing; /);
});

t.test('killed by a signal; output longer than the limit keeps its end', async (t) => {
  const dir = tempDir(t, 'health');
  script(dir, 'segv', 'echo before; kill -SEGV $$');
  script(dir, 'loud', 'i=0; while [ $i -lt 20000 ]; do echo "line $i of noise"; i=$((i+1)); done; echo "the end"; exit 2');
  const r = await runHealthChecks({ healthDir: dir });
  const [loud, segv] = r.checks;
  t.match(segv, { ok: false, exitCode: null, signal: 'SIGSEGV', lastLine: 'before' });
  t.match(healthVeto({ ...r, checks: [segv] }).message, /failed \(killed by SIGSEGV\): before/);
  t.ok(loud.output.length <= 64 * 1024, 'bounded output');
  t.equal(loud.lastLine, 'the end');
  t.match(loud.output, /line 19999 of noise\nthe end\n$/);
});

t.test('what is not run: not executable, hidden, backups, directories; a missing directory is no checks', async (t) => {
  const dir = tempDir(t, 'health');
  script(dir, '10-plain', 'exit 1', 0o644);
  script(dir, '.hidden', 'exit 1');
  script(dir, '20-net~', 'exit 1');
  script(dir, '20-net.dpkg-old', 'exit 1');
  fs.mkdirSync(path.join(dir, '30-dir'));
  script(dir, '40-real', 'exit 0');
  fs.symlinkSync(path.join(dir, '40-real'), path.join(dir, '50-link'));
  fs.symlinkSync(path.join(dir, 'nowhere'), path.join(dir, '60-dangling'));
  const r = await runHealthChecks({ healthDir: dir });
  t.equal(r.ok, true);
  t.same(
    r.checks.map((c) => c.name),
    ['40-real', '50-link'],
    'a symlink to an executable runs',
  );
  t.same(Object.fromEntries(r.skipped.map((s) => [s.name, s.why])), {
    '.hidden': 'hidden',
    '10-plain': 'not executable',
    '20-net.dpkg-old': 'a backup or package-manager leftover',
    '20-net~': 'a backup or package-manager leftover',
    '30-dir': 'not a regular file',
    '60-dangling': 'cannot be read (ENOENT)',
  });
  const none = await runHealthChecks({ healthDir: path.join(dir, 'absent') });
  t.same(none, { healthDir: path.join(dir, 'absent'), checks: [], skipped: [], ok: true });
});

t.test('a hanging check is ended with its process group at the timeout', async (t) => {
  const dir = tempDir(t, 'health');
  const pidFile = path.join(dir, '..', `${path.basename(dir)}.pid`);
  t.teardown(() => fs.rmSync(pidFile, { force: true }));
  // The check starts a background sleeper in its group, reports its pid, then hangs itself.
  script(dir, 'hang', `sleep 300 & echo $! > ${pidFile}; echo "waiting for the network"; trap '' TERM; while :; do sleep 1; done`);
  const start = Date.now();
  const r = await runHealthChecks({ healthDir: dir, timeoutMs: 500 });
  const took = Date.now() - start;
  t.match(r.checks[0], { ok: false, timedOut: true, lastLine: 'waiting for the network' });
  t.ok(took < 5000, `ended after the grace period (${took} ms)`);
  t.match(healthVeto(r, 500).message, /hang failed \(timed out after 1 s\): waiting for the network/);
  const sleeper = Number(fs.readFileSync(pidFile, 'utf8'));
  let alive = true;
  for (let i = 0; i < 50 && alive; i++) {
    try {
      process.kill(sleeper, 0);
      await new Promise((res) => setTimeout(res, 20));
    } catch {
      alive = false;
    }
  }
  t.notOk(alive, 'the background process of the check was ended too');
});

t.test('a check that leaves a background process holding its output does not hold mark-good up', async (t) => {
  const dir = tempDir(t, 'health');
  const pidFile = path.join(dir, '..', `${path.basename(dir)}.pid`);
  t.teardown(() => {
    try {
      process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL');
    } catch {
      // gone already
    }
    fs.rmSync(pidFile, { force: true });
  });
  script(dir, 'daemon', `sleep 30 & echo $! > ${pidFile}; echo started; exit 0`);
  const start = Date.now();
  const r = await runHealthChecks({ healthDir: dir, timeoutMs: 20_000 });
  t.match(r.checks[0], { ok: true, lastLine: 'started' });
  t.ok(Date.now() - start < 3000, 'returned when the check exited');
});

t.test('checkNewGood: each unhealthy state refuses with its own cause and fix', async (t) => {
  const A = 'a'.repeat(40);
  const plan = planMarkGood({ ...emptyState(), booted: A });
  const want: Record<string, RegExp> = {
    missing: /is not in \/h\/repo\.git, so it could not boot: fetch it again \(update-revision=\)/,
    broken: /is unreadable in .*fetch it again/,
    damaged: /has objects 'gitroot fsck' found damaged in .*repair it \('gitroot fsck --repair'\)/,
    untrusted: /has no valid signature from the boot trust root in .*stage a revision signed by a listed key/,
  };
  for (const [h, re] of Object.entries(want)) {
    const err = (() => {
      try {
        checkNewGood(plan, { dir: '/h', health: () => h as RevisionHealth });
        return null;
      } catch (e) {
        return e as Error;
      }
    })();
    t.type(err, TransitionRefusedError, `${h}: refused`);
    t.match(err?.message ?? '', new RegExp(`^mark-good: revision ${A} `), `${h}: names the revision`);
    t.match(err?.message ?? '', re, `${h}: cause and fix`);
  }
  t.doesNotThrow(() => checkNewGood(plan, { dir: '/h', health: () => 'ok' }), 'ok passes');
});
