/**
 * Which units a live update reloads and restarts (lib/live/live-units.ts), pure: Exec lines
 * parsed as systemd reads them (prefixes, quotes, continuations, several commands, bare names
 * skipped); paths in unit directories (unit files, drop-ins, enablement links); the plan:
 * a service whose unit file, drop-in or any Exec program changed is restarted with try-restart,
 * a template restarts its instances, other unit types and links are only reloaded, a removed
 * service is left running, the D-Bus broker is never restarted; nothing in a unit directory
 * changed and no program changed: no daemon-reload.
 */
// needs: none
import t from 'tap';
import { parseUnitExecs, planRestarts, unitOfPath } from '../lib/live/live-units.js';
import type { LiveChange } from '../lib/live/live-diff.js';

const ch = (path: string, change: LiveChange['change'] = 'modified'): LiveChange => ({ path, change, before: 'file', after: 'file', nested: false });

t.test('parseUnitExecs', async (t) => {
  const text = [
    '[Unit]',
    'Description=ExecStart=/not/this',
    '# ExecStart=/commented',
    '; ExecStart=/also/commented',
    '[Service]',
    'ExecStartPre=-/usr/bin/pre --x',
    'ExecStart=@/usr/bin/kiosk kiosk-argv0 --url http://x',
    'ExecStart=+!/usr/lib/kiosk/helper',
    'ExecStartPost="/opt/with space/run" a',
    'ExecReload=/bin/kill -HUP $MAINPID',
    'ExecStop=/usr/bin/a ; /usr/bin/b',
    'ExecStopPost=sleep 1',
    'ExecCondition=/usr/bin/check \\',
    '  --long',
    'ExecStart=/usr/bin/kiosk',
    'Environment=X=/usr/bin/no',
  ].join('\n');
  t.same(parseUnitExecs(text), [
    'usr/bin/pre',
    'usr/bin/kiosk',
    'usr/lib/kiosk/helper',
    'opt/with space/run',
    'bin/kill',
    'usr/bin/a',
    'usr/bin/b',
    'usr/bin/check',
  ]);
  t.same(parseUnitExecs(''), []);
});

t.test('unitOfPath', async (t) => {
  t.same(unitOfPath('usr/lib/systemd/system/kiosk.service'), { unit: 'kiosk.service', role: 'file' });
  t.same(unitOfPath('etc/systemd/system/kiosk.service.d/x.conf'), { unit: 'kiosk.service', role: 'dropin' });
  t.same(unitOfPath('etc/systemd/system/kiosk.service.d'), { unit: 'kiosk.service', role: 'dropin' });
  t.same(unitOfPath('etc/systemd/system/multi-user.target.wants/kiosk.service'), { unit: 'kiosk.service', role: 'link' });
  t.same(unitOfPath('lib/systemd/system/getty@.service'), { unit: 'getty@.service', role: 'file' });
  t.same(unitOfPath('usr/local/lib/systemd/system/a.timer'), { unit: 'a.timer', role: 'file' });
  t.equal(unitOfPath('usr/lib/systemd/user/a.service'), null, "user units are not the system manager's");
  t.equal(unitOfPath('usr/bin/kiosk'), null);
});

t.test('planRestarts', async (t) => {
  const execs = new Map<string, string[]>([
    ['kiosk.service', ['usr/bin/kiosk']],
    ['other.service', ['usr/bin/other', 'usr/bin/link-to-other']],
    ['web@.service', ['usr/bin/web']],
    ['dbus.service', ['usr/bin/dbus-daemon']],
  ]);
  const nothing = planRestarts([ch('usr/share/doc/x')], execs);
  t.same([nothing.daemonReload, nothing.restart], [false, []], 'content elsewhere: nothing reloaded or restarted');
  const prog = planRestarts([ch('usr/bin/kiosk')], execs);
  t.same(
    [prog.daemonReload, prog.restart, prog.why],
    [false, ['kiosk.service'], { 'kiosk.service': 'its program /usr/bin/kiosk modified' }],
    'a program changed: its service restarts',
  );
  t.same(planRestarts([ch('usr/bin/link-to-other', 'modified')], execs).restart, ['other.service'], 'a symlink on the way to a program counts');
  t.same(planRestarts([ch('usr/bin/kiosk', 'removed')], execs).restart, [], 'a removed program restarts nothing (the unit fails by itself)');
  const unit = planRestarts([ch('usr/lib/systemd/system/kiosk.service'), ch('etc/systemd/system/other.service.d/x.conf', 'added')], execs);
  t.same([unit.daemonReload, unit.restart], [true, ['kiosk.service', 'other.service']], 'a unit file or drop-in changed: reload and restart');
  const tpl = planRestarts([ch('usr/bin/web')], execs);
  t.same(tpl.restart, ['web@*.service'], 'a template restarts its instances');
  const other = planRestarts([ch('usr/lib/systemd/system/a.timer'), ch('etc/systemd/system/multi-user.target.wants/kiosk.service', 'added')], execs);
  t.same([other.daemonReload, other.restart, other.reloaded], [true, [], ['a.timer', 'kiosk.service']], 'other unit types and links: reloaded only');
  const removed = planRestarts([ch('usr/lib/systemd/system/gone.service', 'removed')], execs);
  t.same([removed.daemonReload, removed.removed, removed.restart], [true, ['gone.service'], []], 'a removed service is left running');
  const bus = planRestarts([ch('usr/bin/dbus-daemon'), ch('usr/lib/systemd/system/dbus.service')], execs);
  t.same([bus.restart, bus.skipped], [[], ['dbus.service']], 'the D-Bus broker is never restarted live');
  const both = planRestarts([ch('usr/lib/systemd/system/kiosk.service'), ch('usr/bin/kiosk')], execs);
  t.same([both.restart, both.reloaded], [['kiosk.service'], []], 'one restart for several reasons');
});
