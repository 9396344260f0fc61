/**
 * The systemd units in boot/: accepted by `systemd-analyze verify` (apart from /usr/bin/gitroot
 * not being installed on the test machine), and holding the policy docs/deploy.md promises:
 * fetch after network-online.target as a oneshot, a periodic randomized persistent timer,
 * the health checks before boot-complete.target (which requires them), mark-good only after it
 * (without running the checks again) and never in rescue boots.
 */
// needs: none
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './helpers/deploy-fixtures.js';

const UNITS = [
  'gitroot-fetch.service',
  'gitroot-fetch.timer',
  'gitroot-health.service',
  'gitroot-mark-good.service',
  'gitroot-fsck.service',
  'gitroot-fsck.timer',
];
const unitPath = (u: string): string => path.join(PROJECT_ROOT, 'boot', u);

/** `key=value` settings of a unit file, by section, comments skipped. */
function parseUnit(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.startsWith('[')) {
      section = line;
      continue;
    }
    const eq = line.indexOf('=');
    const key = `${section}${line.slice(0, eq)}`;
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

const haveAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

t.test('systemd-analyze verify accepts the units', { skip: haveAnalyze ? false : 'no systemd-analyze' }, async (t) => {
  const r = spawnSync('systemd-analyze', ['verify', ...UNITS.map(unitPath)], { encoding: 'utf8' });
  const problems = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '' && !/Command \/usr\/bin\/gitroot is not executable/.test(l));
  t.same(problems, [], 'no complaint other than the binary not being installed here');
});

t.test('the units hold the promised policy', async (t) => {
  const fetch = parseUnit(fs.readFileSync(unitPath('gitroot-fetch.service'), 'utf8'));
  t.same(fetch.get('[Unit]After'), ['network-online.target']);
  t.same(fetch.get('[Unit]Wants'), ['network-online.target']);
  t.same(fetch.get('[Service]Type'), ['oneshot']);
  t.match(fetch.get('[Service]ExecStart')?.[0], /^\/usr\/bin\/gitroot fetch --dir \$\{GITROOT_DIR\}$/);
  t.notOk(fetch.has('[Service]ExecStartPost'), "the reboot after an update is the fetch command's, not the unit's");
  t.same(fetch.get('[Unit]ConditionPathIsDirectory'), ['/run/gitroot'], 'only where gitroot booted the system (the package enables the timer)');

  const timer = parseUnit(fs.readFileSync(unitPath('gitroot-fetch.timer'), 'utf8'));
  t.ok(timer.has('[Timer]OnBootSec'), 'fetch at boot');
  t.ok(timer.has('[Timer]OnCalendar'), 'periodic');
  t.same(timer.get('[Timer]Persistent'), ['true']);
  t.ok(timer.has('[Timer]RandomizedDelaySec'));
  t.same(timer.get('[Install]WantedBy'), ['timers.target']);

  const fsck = parseUnit(fs.readFileSync(unitPath('gitroot-fsck.service'), 'utf8'));
  t.same(fsck.get('[Service]Type'), ['oneshot']);
  t.match(
    fsck.get('[Service]ExecStart')?.[0],
    /^\/usr\/bin\/gitroot fsck --dir \$\{GITROOT_DIR\} --wait \d+$/,
    'checks, records the verdict; repair is opt-in',
  );
  t.same(fsck.get('[Service]IOSchedulingClass'), ['idle']);
  t.same(fsck.get('[Unit]ConditionPathExists'), ['/run/gitroot'], 'only where gitroot booted the system');
  const fsckTimer = parseUnit(fs.readFileSync(unitPath('gitroot-fsck.timer'), 'utf8'));
  t.same(fsckTimer.get('[Timer]OnCalendar'), ['weekly']);
  t.notOk(fsckTimer.has('[Timer]OnBootSec'), 'not at boot');
  t.same(fsckTimer.get('[Timer]Persistent'), ['true']);
  t.ok(fsckTimer.has('[Timer]RandomizedDelaySec'));
  t.same(fsckTimer.get('[Install]WantedBy'), ['timers.target']);

  const good = parseUnit(fs.readFileSync(unitPath('gitroot-mark-good.service'), 'utf8'));
  t.same(good.get('[Unit]Requires'), ['boot-complete.target']);
  t.same(
    good.get('[Unit]After'),
    ['boot-complete.target', 'multi-user.target systemd-bless-boot.service'],
    'after the boot is complete, the system is up and the loader blessed the entry',
  );
  t.match(good.get('[Service]ExecStart')?.[0], /^\/usr\/bin\/gitroot mark-good --dir \$\{GITROOT_DIR\} --no-health-checks$/);
  const health = parseUnit(fs.readFileSync(unitPath('gitroot-health.service'), 'utf8'));
  t.same(health.get('[Unit]Before'), ['boot-complete.target'], 'the checks judge the boot before it counts as complete');
  t.same(health.get('[Install]RequiredBy'), ['boot-complete.target'], 'and a failing check keeps it from being reached');
  t.same(health.get('[Unit]After'), ['multi-user.target'], 'on the system as it runs');
  t.match(health.get('[Service]ExecStart')?.[0], /^\/usr\/bin\/gitroot health --dir \$\{GITROOT_DIR\}$/);
  t.same(health.get('[Unit]ConditionPathIsDirectory'), ['/run/gitroot']);
  t.same(good.get('[Install]WantedBy'), ['multi-user.target'], 'not reached by rescue.target');

  for (const u of UNITS) {
    const lines = fs.readFileSync(unitPath(u), 'utf8').split('\n');
    t.ok(lines[0].startsWith('# gitroot: '), `${u}: says what it is on its first line`);
  }
});

t.test('a stick labelled GITROOT-UPDATE: the udev rule starts the unit, which mounts read-only and runs fetch --from', async (t) => {
  const rule = fs
    .readFileSync(unitPath('90-gitroot-update.rules'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'));
  t.equal(rule.length, 1, 'one rule');
  t.match(
    rule[0],
    /ACTION=="add", SUBSYSTEM=="block", ENV\{ID_FS_LABEL\}=="GITROOT-UPDATE", TAG\+="systemd", ENV\{SYSTEMD_WANTS\}\+="gitroot-update@%k\.service"/,
  );
  const unit = parseUnit(fs.readFileSync(unitPath('gitroot-update@.service'), 'utf8'));
  t.same(unit.get('[Service]Type'), ['oneshot']);
  t.same(unit.get('[Unit]BindsTo'), ['dev-%i.device']);
  const start = unit.get('[Service]ExecStart') ?? [];
  t.match(start[0], /^\/usr\/bin\/mount -o ro,nosuid,nodev,noexec \/dev\/%i /, 'mounted read-only first');
  t.match(start[1], /^\/usr\/bin\/gitroot fetch --dir \$\{GITROOT_DIR\} --from \/run\/gitroot-update\/%i$/);
  t.same(unit.get('[Service]RuntimeDirectoryPreserve'), ['yes'], 'systemd never removes the mount point (nothing deleted through a mount)');
  if (haveAnalyze) {
    const dir = fs.mkdtempSync('/tmp/gitroot-units-');
    try {
      fs.copyFileSync(unitPath('gitroot-update@.service'), path.join(dir, 'gitroot-update@sdz1.service'));
      const r = spawnSync('systemd-analyze', ['verify', path.join(dir, 'gitroot-update@sdz1.service')], { encoding: 'utf8' });
      const problems = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '' && !/is not executable|dev-sdz1\.device/.test(l));
      t.same(problems, [], 'systemd-analyze verify accepts an instance');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});
