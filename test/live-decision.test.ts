/**
 * The live-update rules (lib/live/live-decision.ts), pure: which paths need a reboot (kernel,
 * initrd, modules, the boot entries' command line), which a userspace restart (PID 1, the D-Bus
 * broker, entries of / itself) and which nothing; the strongest need wins; mounted top-level
 * entries are not seen; the one-line reasons name what changed; the state change of a live
 * update (the running revision is `booted`, its pending trial ends, other pending entries stay)
 * and the refusal of a revision that failed before.
 */
// needs: none
import t from 'tap';
import { classifyPath, decideLive, liveStateRefusal, planLiveState } from '../lib/live/live-decision.js';
import type { LiveChange } from '../lib/live/live-diff.js';
import { emptyState } from '../lib/home/home-state.js';

const change = (path: string, c: LiveChange['change'] = 'modified'): LiveChange => ({
  path,
  change: c,
  before: c === 'added' ? null : 'file',
  after: c === 'removed' ? null : 'file',
  nested: false,
});

t.test('classifyPath: every rule, and its neighbours that are not', async (t) => {
  const cases: Array<[string, ReturnType<typeof classifyPath>]> = [
    ['', null],
    ['boot', 'kernel'],
    ['boot/vmlinuz-6.12.0-1-amd64', 'kernel'],
    ['boot/initrd.img-6.12.0-1-amd64', 'kernel'],
    ['boot/grub/grub.cfg', 'kernel'],
    ['vmlinuz', 'kernel'],
    ['vmlinuz.old', 'kernel'],
    ['initrd.img', 'kernel'],
    ['initrd.img.old', 'kernel'],
    ['vmlinux', 'kernel'],
    ['bootstrap', 'root'],
    ['usr/share/boot/x', null],
    ['etc/boot', null],
    ['lib/modules', 'modules'],
    ['lib/modules/6.12.0-1-amd64/kernel/fs/fuse/fuse.ko.xz', 'modules'],
    ['usr/lib/modules', 'modules'],
    ['usr/lib/modules/6.1.0-9-amd64/modules.dep', 'modules'],
    ['usr/lib/modules-load.d/x.conf', null],
    ['usr/lib/modulesx', null],
    ['usr/share/modules/x', null],
    ['usr/lib/systemd/systemd', 'init'],
    ['lib/systemd/systemd', 'init'],
    ['usr/sbin/init', 'init'],
    ['sbin/init', 'init'],
    ['usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-257.so', 'init'],
    ['usr/lib/systemd/libsystemd-core-257.so', 'init'],
    ['usr/lib/systemd/systemd-journald', null],
    ['usr/bin/systemctl', null],
    ['usr/lib/x86_64-linux-gnu/libsystemd.so.0', null],
    ['usr/bin/dbus-daemon', 'bus'],
    ['usr/bin/dbus-broker', 'bus'],
    ['usr/bin/dbus-broker-launch', 'bus'],
    ['usr/lib/systemd/system/dbus.service', 'bus'],
    ['usr/lib/systemd/system/dbus.socket', 'bus'],
    ['lib/systemd/system/dbus-broker.service', 'bus'],
    ['etc/systemd/system/dbus.service.d/override.conf', 'bus'],
    ['usr/bin/dbus-send', null],
    ['usr/lib/systemd/system/dbus-org.x.service', null],
    ['etc', 'root'],
    ['usr', 'root'],
    ['README', 'root'],
    ['etc/hostname', null],
    ['usr/bin/kiosk', null],
    ['usr/lib/systemd/system/kiosk.service', null],
  ];
  for (const [p, want] of cases) t.equal(classifyPath(p), want, `/${p} -> ${want}`);
});

t.test('decideLive: the strongest need wins; reasons name the first path and count the rest', async (t) => {
  const none = decideLive({ changes: [], optionsBefore: null, optionsAfter: null });
  t.same([none.action, none.reason], ['live', 'nothing changes']);
  const live = decideLive({ changes: [change('usr/bin/kiosk'), change('etc/kiosk.conf', 'added')], optionsBefore: 'quiet', optionsAfter: 'quiet' });
  t.same([live.action, live.blockers], ['live', []]);
  t.match(live.reason, /^2 paths change/);
  const nested = decideLive({
    changes: [change('usr/share/x', 'added'), { ...change('usr/share/x/y', 'added'), nested: true }],
    optionsBefore: null,
    optionsAfter: null,
  });
  t.match(nested.reason, /^1 path change/, 'paths inside an added directory are not counted again');

  const soft = decideLive({ changes: [change('usr/bin/kiosk'), change('usr/lib/systemd/systemd')], optionsBefore: null, optionsAfter: null });
  t.equal(soft.action, 'soft-reboot');
  t.equal(soft.reason, 'needs a userspace restart: PID 1 (systemd) changes (/usr/lib/systemd/systemd)');
  const bus = decideLive({
    changes: [change('usr/bin/dbus-broker'), change('usr/bin/dbus-broker-launch'), change('usr/lib/systemd/systemd')],
    optionsBefore: null,
    optionsAfter: null,
  });
  t.equal(
    bus.reason,
    "needs a userspace restart: PID 1 (systemd) changes (/usr/lib/systemd/systemd); the D-Bus broker changes (restarting it cuts every service's connection) (/usr/bin/dbus-broker and 1 more)",
  );
  t.same(
    bus.blockers.map((b) => b.path),
    ['usr/bin/dbus-broker', 'usr/bin/dbus-broker-launch', 'usr/lib/systemd/systemd'],
    'blockers sorted by path',
  );

  const reboot = decideLive({
    changes: [change('usr/lib/systemd/systemd'), change('boot/vmlinuz-2', 'added'), change('usr/lib/modules/2/x.ko', 'added')],
    optionsBefore: null,
    optionsAfter: null,
  });
  t.equal(reboot.action, 'reboot', 'a reboot beats a userspace restart');
  t.equal(reboot.reason, 'needs a reboot: the kernel or its initrd changes (/boot/vmlinuz-2); kernel modules change (/usr/lib/modules/2/x.ko)');

  const opts = decideLive({ changes: [change('usr/bin/kiosk')], optionsBefore: 'quiet', optionsAfter: 'quiet splash' });
  t.equal(opts.action, 'reboot', 'other kernel options: a reboot');
  t.equal(opts.reason, "needs a reboot: the boot entries' kernel command line changes ('quiet' -> 'quiet splash')");
  for (const [b, a] of [
    [null, 'quiet'],
    ['quiet', null],
    [null, null],
  ] as const) {
    t.equal(decideLive({ changes: [], optionsBefore: b, optionsAfter: a }).action, 'live', `options unknown on one side (${b}, ${a}): not a reason`);
  }

  const mounted = decideLive({
    changes: [change('run', 'added'), change('dev', 'attrs'), change('tmp', 'attrs')],
    optionsBefore: null,
    optionsAfter: null,
    mountPoints: ['dev', 'run'],
  });
  t.same(
    [mounted.action, mounted.blockers],
    ['soft-reboot', [{ path: 'tmp', need: 'root' }]],
    'top-level entries with a mount on them are not seen; others are',
  );
  t.equal(decideLive({ changes: [change('', 'attrs')], optionsBefore: null, optionsAfter: null }).action, 'live', "the root's own attributes do not matter");
});

t.test('planLiveState and liveStateRefusal', async (t) => {
  const A = 'a'.repeat(40);
  const B = 'b'.repeat(40);
  const C = 'c'.repeat(40);
  const pending = (r: string) => ({ revision: r, triesLeft: 2, tries: 3, stagedAt: '2026-12-01T00:00:00.000Z' });
  const s0 = { ...emptyState(), good: A, booted: A, pending: pending(B) };
  const p1 = planLiveState(s0, B);
  t.same(p1.state, { ...s0, booted: B, pending: null }, 'B runs: booted B, its trial is this run');
  t.same(p1.withdrawn, pending(B));
  const p2 = planLiveState({ ...s0, pending: pending(C) }, B);
  t.same([p2.state.booted, p2.state.pending, p2.withdrawn], [B, pending(C), null], 'another pending revision stays pending');
  const back = planLiveState(p1.state, A);
  t.same(back.state, { ...s0, pending: null }, 'going back: booted A again');
  t.equal(planLiveState(s0, A).state.good, A, 'good is never changed by a live update');
  t.equal(liveStateRefusal(s0, B), null);
  t.match(liveStateRefusal({ ...s0, failed: [B] }, B), /failed before.*update-revision=/);
});
