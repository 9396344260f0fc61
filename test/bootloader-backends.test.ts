/**
 * The boot loader backends on real directories: BLS entries and loader.conf, extlinux.conf,
 * and `none`, each written from a plan and parsed back; kernel copies under `$BOOT/gitroot/`
 * identical to `D/boot/`; a counter systemd-boot already decremented survives a rewrite; a
 * replaced pending revision's entry and copies go; other entries and loader.conf settings
 * stay; an empty plan changes nothing; backends chosen by name only; template rendering.
 */
// needs: none
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../lib/errors/errors.js';
import type { DeployState } from '../lib/home/home-state.js';
import { planBootEntries } from '../lib/bootloader/boot-plan.js';
import { createBootloader } from '../lib/bootloader/create-bootloader.js';
import { BlsBootloader, parseBlsFileName, parseBlsKeys, updateLoaderConf } from '../lib/bootloader/bootloader-bls.js';
import { ExtlinuxBootloader, parseExtlinuxConf } from '../lib/bootloader/bootloader-extlinux.js';
import { kernelLocation } from '../lib/bootloader/bootloader.js';
import { findTemplateDir, renderTemplate } from '../lib/bootloader/boot-templates.js';
import { PROJECT_ROOT, fakeKernel, makeInitrd } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';

const sha = (c: string): string => c.repeat(40);
const A = sha('a');
const B = sha('b');
const C = sha('c');
const T0 = '2026-01-02T03:04:05.000Z';

/** A home with staged kernel dirs for `revs`, and a separate $BOOT. */
function setup(t: { teardown(fn: () => unknown): void }, revs: string[]): { home: string; boot: string } {
  const work = tempDir(t, 'bootloader');
  const home = path.join(work, 'home');
  const boot = path.join(work, 'esp');
  fs.mkdirSync(boot, { recursive: true });
  for (const r of revs) {
    fs.mkdirSync(path.join(home, 'boot', r), { recursive: true });
    fs.writeFileSync(path.join(home, 'boot', r, 'vmlinuz'), fakeKernel(r));
    fs.writeFileSync(path.join(home, 'boot', r, 'initrd.img'), makeInitrd(r));
  }
  return { home, boot };
}

function state(pending: string | null, good: string | null, triesLeft = 3): DeployState {
  const staged: DeployState['staged'] = {};
  for (const r of [pending, good]) {
    if (r !== null) {
      staged[r] = {
        kernelDir: r,
        kernel: 'vmlinuz',
        initrd: 'initrd.img',
        kernelVersion: `6.1.0-${r.charCodeAt(0) - 90}-amd64`,
        kernelSource: null,
        options: 'boot=gitroot console=ttyS0',
        stagedAt: T0,
      };
    }
  }
  return {
    version: 1,
    good,
    booted: good,
    failed: [],
    previousGood: [],
    staged,
    pending: pending === null ? null : { revision: pending, triesLeft, tries: 3, stagedAt: T0 },
  };
}

const same = (a: string, b: string): boolean => fs.readFileSync(a).equals(fs.readFileSync(b));

t.test('BLS: entries, counters, loader.conf and kernel copies, parsed back', async (t) => {
  const { home, boot } = setup(t, [A, B]);
  const bl = createBootloader('bls', { homeDir: home, bootDir: boot });
  t.type(bl, BlsBootloader);
  t.same(bl.location, { kernelRoot: '/gitroot', copy: true }, 'home outside $BOOT: copies');
  bl.writeEntries(planBootEntries(state(A, B), bl.location));

  const dir = path.join(boot, 'loader', 'entries');
  t.same(fs.readdirSync(dir).sort(), [`gitroot-${'a'.repeat(12)}+3.conf`, `gitroot-${'b'.repeat(12)}.conf`]);
  const pend = parseBlsKeys(fs.readFileSync(path.join(dir, `gitroot-${'a'.repeat(12)}+3.conf`), 'utf8'));
  t.same(Object.fromEntries(pend), {
    title: `gitroot ${'a'.repeat(12)} (next, kernel 6.1.0-7-amd64)`,
    version: '6.1.0-7-amd64',
    'sort-key': 'gitroot-0',
    linux: `/gitroot/${A}/vmlinuz`,
    initrd: `/gitroot/${A}/initrd.img`,
    options: `boot=gitroot console=ttyS0 git-revision=${A}`,
  });
  const good = parseBlsKeys(fs.readFileSync(path.join(dir, `gitroot-${'b'.repeat(12)}.conf`), 'utf8'));
  t.equal(good.get('sort-key'), 'gitroot-1');
  t.equal(good.get('options'), `boot=gitroot console=ttyS0 git-revision=${B}`);
  t.match(fs.readFileSync(path.join(boot, 'loader', 'loader.conf'), 'utf8'), /^default gitroot-\*$/m);

  for (const r of [A, B]) {
    for (const f of ['vmlinuz', 'initrd.img']) t.ok(same(path.join(home, 'boot', r, f), path.join(boot, 'gitroot', r, f)), `copy of ${r.slice(0, 1)}/${f}`);
  }
  const read = bl.readEntries();
  t.equal(read.defaultId, 'gitroot-*');
  t.same(
    read.entries.map((e) => [e.id, e.revision, e.tries]),
    [
      [`gitroot-${'a'.repeat(12)}`, A, { left: 3, done: 0 }],
      [`gitroot-${'b'.repeat(12)}`, B, null],
    ],
  );
  for (const e of read.entries) {
    t.ok(fs.existsSync(path.join(boot, e.linux as string)), `${e.id}: kernel exists under $BOOT`);
    t.ok(fs.existsSync(path.join(boot, e.initrd as string)), `${e.id}: initrd exists under $BOOT`);
  }
});

t.test('BLS: a decremented counter survives a rewrite; a replaced pending entry and its copies go; others stay', async (t) => {
  const { home, boot } = setup(t, [A, B, C]);
  const bl = createBootloader('bls', { homeDir: home, bootDir: boot });
  const dir = path.join(boot, 'loader', 'entries');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'debian-6.1.0-10-amd64.conf'), 'title Debian\nlinux /vmlinuz\n');
  fs.writeFileSync(path.join(boot, 'loader', 'loader.conf'), 'timeout 10\ndefault debian-*\nconsole-mode max\ndefault other\n');

  bl.writeEntries(planBootEntries(state(A, B), bl.location));
  // systemd-boot tried the pending entry once: it renamed +3 to +2-1.
  fs.renameSync(path.join(dir, `gitroot-${'a'.repeat(12)}+3.conf`), path.join(dir, `gitroot-${'a'.repeat(12)}+2-1.conf`));
  const s2 = state(A, B, 2);
  s2.staged[A].options = 'boot=gitroot console=ttyS1';
  bl.writeEntries(planBootEntries(s2, bl.location));
  t.ok(fs.existsSync(path.join(dir, `gitroot-${'a'.repeat(12)}+2-1.conf`)), 'the counter systemd-boot keeps is not reset');
  t.match(fs.readFileSync(path.join(dir, `gitroot-${'a'.repeat(12)}+2-1.conf`), 'utf8'), /console=ttyS1/, 'content updated in place');

  bl.writeEntries(planBootEntries(state(C, B), bl.location));
  t.same(fs.readdirSync(dir).sort(), ['debian-6.1.0-10-amd64.conf', `gitroot-${'b'.repeat(12)}.conf`, `gitroot-${'c'.repeat(12)}+3.conf`]);
  t.same(fs.readdirSync(path.join(boot, 'gitroot')).sort(), [B, C], "the replaced revision's kernel copy is gone");
  t.equal(
    fs.readFileSync(path.join(boot, 'loader', 'loader.conf'), 'utf8'),
    'timeout 10\ndefault gitroot-*\nconsole-mode max\n',
    'only the default line changes; a second default line goes',
  );

  // The good entry carrying a counter (written as pending earlier) becomes plain.
  fs.renameSync(path.join(dir, `gitroot-${'b'.repeat(12)}.conf`), path.join(dir, `gitroot-${'b'.repeat(12)}+0-3.conf`));
  bl.writeEntries(planBootEntries(state(C, B), bl.location));
  t.ok(fs.existsSync(path.join(dir, `gitroot-${'b'.repeat(12)}.conf`)));
  t.notOk(fs.existsSync(path.join(dir, `gitroot-${'b'.repeat(12)}+0-3.conf`)), 'a fallback never keeps a counter that sorts it away');

  // An empty plan (no kernel anywhere) leaves everything as it is.
  const before = fs.readdirSync(dir).sort();
  bl.writeEntries(planBootEntries(state(null, null), bl.location));
  t.same(fs.readdirSync(dir).sort(), before);
});

t.test('BLS: no tries left puts the good entry first; loader.conf from the template when absent', async (t) => {
  const { home, boot } = setup(t, [A, B]);
  const bl = new BlsBootloader({ homeDir: home, bootDir: boot });
  const plan = planBootEntries(state(A, B, 0), bl.location);
  t.equal(plan.defaultId, `gitroot-${'b'.repeat(12)}`);
  bl.writeEntries(plan);
  t.ok(fs.existsSync(path.join(boot, 'loader', 'entries', `gitroot-${'a'.repeat(12)}+0.conf`)), 'an out-of-tries entry sorts last in systemd-boot');
  const conf = fs.readFileSync(path.join(boot, 'loader', 'loader.conf'), 'utf8');
  t.match(conf, /^# /m, 'template comment');
  t.match(conf, /^default gitroot-\*$/m);
  t.match(conf, /^timeout 3$/m);
});

t.test('BLS file names and loader.conf updates (pure)', async (t) => {
  t.same(parseBlsFileName('gitroot-0123456789ab.conf'), { id: 'gitroot-0123456789ab', tries: null });
  t.same(parseBlsFileName('gitroot-0123456789ab+3.conf'), { id: 'gitroot-0123456789ab', tries: { left: 3, done: 0 } });
  t.same(parseBlsFileName('gitroot-0123456789ab+0-3.conf'), { id: 'gitroot-0123456789ab', tries: { left: 0, done: 3 } });
  for (const bad of ['gitroot-0123456789a.conf', 'gitroot-0123456789ab+x.conf', 'debian.conf', 'gitroot-0123456789ab.conf~']) {
    t.equal(parseBlsFileName(bad), null, bad);
  }
  t.equal(updateLoaderConf('timeout 5\n', 'default @DEFAULT@\n', 'gitroot-*'), 'timeout 5\ndefault gitroot-*\n');
  t.equal(updateLoaderConf('timeout 5', 'x', 'gitroot-*'), 'timeout 5\ndefault gitroot-*');
  t.equal(updateLoaderConf('  default   old\n', 'x', 'gitroot-*'), 'default gitroot-*\n');
  t.equal(updateLoaderConf(null, '# c\ndefault @DEFAULT@\n', 'gitroot-*'), '# c\ndefault gitroot-*\n');
});

t.test('BLS in place: a home inside $BOOT needs no copies', async (t) => {
  const work = tempDir(t, 'bootloader');
  const boot = path.join(work, 'part');
  const home = path.join(boot, 'gitroot-home');
  fs.mkdirSync(path.join(home, 'boot', A), { recursive: true });
  fs.writeFileSync(path.join(home, 'boot', A, 'vmlinuz'), fakeKernel('a'));
  fs.writeFileSync(path.join(home, 'boot', A, 'initrd.img'), makeInitrd('a'));
  const bl = createBootloader('bls', { homeDir: home, bootDir: boot });
  t.same(bl.location, { kernelRoot: '/gitroot-home/boot', copy: false });
  bl.writeEntries(planBootEntries(state(A, null), bl.location));
  t.notOk(fs.existsSync(path.join(boot, 'gitroot')), 'no copies');
  const e = bl.readEntries().entries[0];
  t.equal(e.linux, `/gitroot-home/boot/${A}/vmlinuz`);
  t.ok(fs.existsSync(path.join(boot, e.linux as string)));
  t.same(kernelLocation(home, boot, '/boot/'), { kernelRoot: '/boot/gitroot-home/boot', copy: false }, 'path prefix');
  t.same(kernelLocation(path.join(work, 'elsewhere'), boot), { kernelRoot: '/gitroot', copy: true });
  t.same(kernelLocation(path.join(work, 'part-2'), boot), { kernelRoot: '/gitroot', copy: true }, 'a sibling with a common prefix is outside');
});

t.test('extlinux: DEFAULT is the pending entry, the good one a second LABEL; parsed back', async (t) => {
  const { home, boot } = setup(t, [A, B, C]);
  const bl = createBootloader('extlinux', { homeDir: home, bootDir: boot });
  t.type(bl, ExtlinuxBootloader);
  bl.writeEntries(planBootEntries(state(A, B), bl.location));
  const file = path.join(boot, 'extlinux', 'extlinux.conf');
  const text = fs.readFileSync(file, 'utf8');
  t.match(text, /initramfs counts/, 'says who counts tries');
  const conf = parseExtlinuxConf(text, file);
  t.equal(conf.defaultId, `gitroot-${'a'.repeat(12)}`);
  t.same(
    conf.entries.map((e) => ({ id: e.id, title: e.title, linux: e.linux, initrd: e.initrd, options: e.options, revision: e.revision })),
    [
      {
        id: `gitroot-${'a'.repeat(12)}`,
        title: `gitroot ${'a'.repeat(12)} (next, kernel 6.1.0-7-amd64)`,
        linux: `/gitroot/${A}/vmlinuz`,
        initrd: `/gitroot/${A}/initrd.img`,
        options: `boot=gitroot console=ttyS0 git-revision=${A}`,
        revision: A,
      },
      {
        id: `gitroot-${'b'.repeat(12)}`,
        title: `gitroot ${'b'.repeat(12)} (known good, kernel 6.1.0-8-amd64)`,
        linux: `/gitroot/${B}/vmlinuz`,
        initrd: `/gitroot/${B}/initrd.img`,
        options: `boot=gitroot console=ttyS0 git-revision=${B}`,
        revision: B,
      },
    ],
  );
  for (const e of conf.entries) t.ok(same(path.join(boot, e.linux as string), path.join(home, 'boot', e.revision as string, 'vmlinuz')));

  bl.writeEntries(planBootEntries(state(C, B), bl.location));
  const next = bl.readEntries();
  t.equal(next.defaultId, `gitroot-${'c'.repeat(12)}`);
  t.same(
    next.entries.map((e) => e.revision),
    [C, B],
  );
  t.same(fs.readdirSync(path.join(boot, 'gitroot')).sort(), [B, C]);
  t.same(fs.readdirSync(path.join(boot, 'extlinux')), ['extlinux.conf'], 'no temp file left');

  bl.writeEntries(planBootEntries(state(C, B, 0), bl.location));
  t.equal(bl.readEntries().defaultId, `gitroot-${'b'.repeat(12)}`, 'out of tries: the good one is DEFAULT');
  const keep = fs.readFileSync(file, 'utf8');
  bl.writeEntries(planBootEntries(state(null, null), bl.location));
  t.equal(fs.readFileSync(file, 'utf8'), keep, 'an empty plan leaves extlinux.conf alone');
  t.same(
    parseExtlinuxConf('default x\nlabel x\n  kernel /k\n  append a=1\n', 'f').entries[0],
    {
      id: 'x',
      file: 'f',
      revision: null,
      title: null,
      linux: '/k',
      initrd: null,
      options: 'a=1',
      tries: null,
    },
    'keywords in any case, KERNEL as LINUX',
  );
});

t.test('none writes nothing; backends are chosen by name only', async (t) => {
  const { home, boot } = setup(t, [A]);
  const none = createBootloader('none', { homeDir: home });
  none.writeEntries(planBootEntries(state(A, null), none.location));
  t.same(fs.readdirSync(boot), []);
  t.same(none.readEntries(), { entries: [], defaultId: null });
  t.throws(() => createBootloader('grub', { homeDir: home, bootDir: boot }), ConfigError);
  t.throws(() => createBootloader('BLS', { homeDir: home, bootDir: boot }), ConfigError, 'no guessing on case');
  t.throws(() => createBootloader('bls', { homeDir: home }), { name: 'ConfigError', message: /needs gitroot.boot=DIR/ });
  t.throws(() => createBootloader('extlinux', { homeDir: home, bootDir: path.join(boot, 'missing') }), { name: 'ConfigError', message: /does not exist/ });
});

t.test('templates: found in the project boot/, null lines dropped, unknown placeholders refused', async (t) => {
  t.equal(findTemplateDir(), path.join(PROJECT_ROOT, 'boot'));
  t.throws(() => findTemplateDir('/nonexistent'), ConfigError);
  t.equal(renderTemplate('a @X@\ninitrd @Y@\nb', { X: '1', Y: null }, 'n'), 'a 1\nb');
  t.equal(renderTemplate('top\n@E@\nend', { E: 'l1\nl2' }, 'n'), 'top\nl1\nl2\nend');
  t.throws(() => renderTemplate('x @NOPE@', {}, 'n'), { name: 'ConfigError', message: /n line 1 uses unknown placeholder @NOPE@/ });
  t.throws(() => renderTemplate('x @E@', { E: 'a\nb' }, 'n'), ConfigError);
  for (const f of ['bls-entry.conf.in', 'loader.conf.in', 'extlinux.conf.in', 'extlinux-entry.conf.in']) {
    t.ok(fs.existsSync(path.join(PROJECT_ROOT, 'boot', f)), f);
  }
});
