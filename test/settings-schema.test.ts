/**
 * The settings schema: every type's good and bad values, every key's default and example
 * valid by its own rules, who reads each key (real commands), where keys may be set, typo
 * suggestions, URL redaction.
 */
// needs: none
import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './helpers/cli.js';
import { tokenizeCmdline } from '../lib/params/settings-grammar.js';
import {
  allowedIn,
  defaultSettings,
  formatSettingValue,
  isSettingKey,
  parseSettingValue,
  parseValueForSpec,
  SETTING_KEYS,
  SETTINGS_SCHEMA,
  settingSpec,
  suggestKey,
  type SettingKey,
  type SettingSpec,
  type SettingValue,
} from '../lib/params/settings-schema.js';
import { redactUrl } from '../lib/http/url-redact.js';
import { branchProblem } from '../lib/store/ref-names.js';

const SHA = '0123456789abcdef0123456789abcdef01234567';

function good(t: Test, key: SettingKey, raw: string | null, want: SettingValue): void {
  const r = parseSettingValue(key, raw);
  t.same(r, { ok: true, value: want }, `${key} ${JSON.stringify(raw)} -> ${JSON.stringify(want)}`);
}

function bad(t: Test, key: SettingKey, raw: string | null, re: RegExp): void {
  const r = parseSettingValue(key, raw);
  t.equal(r.ok, false, `${key} ${JSON.stringify(raw)} is refused`);
  if (!r.ok) {
    t.match(r.problem, re, `${key} ${JSON.stringify(raw)}: ${r.problem}`);
    t.notOk(r.problem.includes('\n'));
  }
}

t.test('exactly the documented keys, and no others', async (t) => {
  t.same(SETTING_KEYS, [
    'fetch-revision',
    'update-revision',
    'noupgrade',
    'git-revision',
    'gitroot.remote',
    'gitroot.config',
    'noconfig',
    'gitroot.tries',
    'gitroot.bootloader',
    'gitroot.boot',
    'gitroot.boot-medium',
    'gitroot.dir',
    'gitroot.medium',
    'gitroot.overlay-size',
    'gitroot.cache-mb',
    'gitroot.reboot-after-update',
    'gitroot.allowed-signers',
    'gitroot.gpg-keyring',
    'gitroot.allow-downgrade',
    'gitroot.timeout',
    'gitroot.retries',
    'gitroot.ca',
    'gitroot.client-cert',
    'gitroot.client-key',
    'gitroot.rate-limit',
    'gitroot.keep',
    'gitroot.min-free',
    'gitroot.auto-prune',
  ]);
  const d = defaultSettings();
  t.same(d, {
    'fetch-revision': 'master',
    'update-revision': null,
    noupgrade: false,
    'git-revision': null,
    'gitroot.remote': null,
    'gitroot.config': null,
    noconfig: false,
    'gitroot.tries': 3,
    'gitroot.bootloader': 'none',
    'gitroot.boot': '/boot',
    'gitroot.boot-medium': null,
    'gitroot.dir': '/gitroot',
    'gitroot.medium': null,
    'gitroot.overlay-size': null,
    'gitroot.cache-mb': null,
    'gitroot.reboot-after-update': false,
    'gitroot.allowed-signers': null,
    'gitroot.gpg-keyring': null,
    'gitroot.allow-downgrade': false,
    'gitroot.timeout': 30,
    'gitroot.retries': 3,
    'gitroot.ca': null,
    'gitroot.client-cert': null,
    'gitroot.client-key': null,
    'gitroot.rate-limit': null,
    'gitroot.keep': 1,
    'gitroot.min-free': 128,
    'gitroot.auto-prune': true,
  });
  t.not(defaultSettings(), d, 'a fresh object each time');
});

t.test('every key: documented, its default valid, its example parses to a value', async (t) => {
  for (const key of SETTING_KEYS) {
    const spec: SettingSpec = SETTINGS_SCHEMA[key];
    t.ok(spec.meaning.length > 20 && spec.usedBy.length > 0, `${key} documented`);
    if (spec.default !== null) {
      const raw = spec.type === 'flag' ? String(spec.default) : formatSettingValue(spec.default);
      t.same(parseSettingValue(key, raw), { ok: true, value: spec.default }, `${key} default ${raw} round-trips`);
    }
    const [tok, ...rest] = tokenizeCmdline(spec.example);
    t.equal(rest.length, 0, `${key} example is one token`);
    t.equal(tok!.key, key, `${key} example names its key`);
    const r = parseSettingValue(key, tok!.value);
    t.ok(r.ok, `${key} example ${spec.example} is valid`);
    if (r.ok) t.not(r.value, null);
  }
});

t.test('size', async (t) => {
  for (const v of ['512m', '2g', '2G', '1048576', '64k', '25%', '100%', '1%']) good(t, 'gitroot.overlay-size', v, v);
  for (const v of ['0', '0m', '101%', '0%', '1g,exec', '1 g', 'lots', '-1g', '1t', '$(reboot)']) bad(t, 'gitroot.overlay-size', v, /needs a size like 512m/);
  bad(t, 'gitroot.overlay-size', '', /needs a value/);
});

t.test('flag', async (t) => {
  for (const key of ['noupgrade', 'noconfig', 'gitroot.reboot-after-update', 'gitroot.allow-downgrade'] as const) {
    good(t, key, null, true);
    for (const [w, b] of [
      ['1', true],
      ['yes', true],
      ['true', true],
      ['0', false],
      ['no', false],
      ['false', false],
      ['YES', true],
      ['False', false],
      ['No', false],
    ] as const) {
      good(t, key, w, b);
    }
    for (const w of ['', 'on', 'off', '2', 'y', 'n', 'enable', ' 1']) bad(t, key, w, /is a flag: write it bare, or as .*=1\|0\|yes\|no\|true\|false/);
  }
});

t.test('branch', async (t) => {
  for (const b of ['master', 'stable', 'release/stable', 'v1.0', 'feature-1_x', 'a.b', 'x@y', 'UPPER', 'é']) good(t, 'fetch-revision', b, b);
  bad(t, 'fetch-revision', null, /needs a value: write fetch-revision=stable/);
  bad(t, 'fetch-revision', '', /needs a value/);
  const refused = [
    '-x',
    '@',
    'a..b',
    'a b',
    'a\tb',
    'a~1',
    'a^',
    'a^{}',
    'a:b',
    'a?',
    'a*',
    'a[1]',
    'a\\b',
    'x@{1}',
    '/a',
    'a/',
    'a//b',
    'a.',
    '.a',
    'a/.b',
    'a.lock',
    'a/b.lock/c',
    'a\x7f',
    'a\x01',
  ];
  for (const b of refused) {
    bad(t, 'fetch-revision', b, /needs a branch name like master or release\/stable/);
    t.not(branchProblem(b), null, `branchProblem(${JSON.stringify(b)})`);
  }
  t.equal(branchProblem('release/2024.1'), null);
});

t.test('sha40', async (t) => {
  for (const key of ['update-revision', 'git-revision'] as const) {
    good(t, key, SHA, SHA);
    good(t, key, SHA.toUpperCase(), SHA);
    bad(t, key, null, /needs a value/);
    bad(t, key, '', /needs a value/);
    bad(t, key, SHA.slice(0, 7), /needs a full 40-hex commit SHA, not 7 hex digits .*abbreviations are refused/);
    bad(t, key, SHA.slice(0, 39), /not 39 hex digits/);
    bad(t, key, SHA + 'a', /not 41 hex digits/);
    bad(t, key, SHA + SHA.slice(0, 24), /not 64 hex digits/);
    for (const w of ['HEAD', 'master', 'HEAD~1', SHA.slice(0, 39) + 'g', ` ${SHA}`, `${SHA}^`])
      bad(t, key, w, /needs a full 40-hex commit SHA, not '.*' \(branch names and other revision syntax are refused/);
  }
});

t.test('url', async (t) => {
  for (const key of ['gitroot.remote', 'gitroot.config'] as const) {
    for (const u of [
      'http://h/x',
      'https://updates.example.com:8443/kiosk.git',
      'http://127.0.0.1:8080/c.conf',
      'file:///srv/mirror.git',
      'file://localhost/srv/x',
      'https://user:pw@h/x',
      'http://[::1]:80/x',
    ]) {
      good(t, key, u, u);
    }
    bad(t, key, null, /needs a value/);
    bad(t, key, 'h/x', /needs an absolute URL \(http:\/\/, https:\/\/, file:\/\/\), not 'h\/x'/);
    bad(t, key, '/srv/x.git', /needs an absolute URL/);
    bad(t, key, 'http://', /needs an absolute URL/);
    for (const u of ['ftp://h/x', 'git://h/x', 'ssh://h/x', 'data:text/plain,x']) bad(t, key, u, /needs a http, https, file URL, not [a-z]+:/);
    bad(t, key, 'file://server/share/x', /needs a local file URL \(file:\/\/\/path\), not one naming host 'server'/);
    bad(t, key, 'file:///x?y', /without \? or #/);
    bad(t, key, 'file:///x#y', /without \? or #/);
  }
});

t.test('int', async (t) => {
  good(t, 'gitroot.tries', '1', 1);
  good(t, 'gitroot.tries', '100', 100);
  good(t, 'gitroot.tries', '03', 3);
  for (const w of ['0', '101', '-1', '+3', '3.0', '3s', '0x3', '1e2', ' 3', '３', '9999999999'])
    bad(t, 'gitroot.tries', w, /needs a whole number from 1 to 100, not '/);
  bad(t, 'gitroot.tries', null, /needs a value: write gitroot.tries=5/);
  good(t, 'gitroot.timeout', '1', 1);
  good(t, 'gitroot.timeout', '3600', 3600);
  bad(t, 'gitroot.timeout', '0', /from 1 to 3600/);
  bad(t, 'gitroot.timeout', '3601', /from 1 to 3600/);
  good(t, 'gitroot.retries', '0', 0);
  good(t, 'gitroot.retries', '20', 20);
  bad(t, 'gitroot.retries', '21', /from 0 to 20/);
});

t.test('enum', async (t) => {
  for (const v of ['bls', 'extlinux', 'none']) good(t, 'gitroot.bootloader', v, v);
  for (const v of ['BLS', 'grub', 'systemd-boot', ' bls']) bad(t, 'gitroot.bootloader', v, /must be one of bls, extlinux, none, not '/);
  bad(t, 'gitroot.bootloader', null, /needs a value/);
});

t.test('path', async (t) => {
  for (const key of ['gitroot.boot', 'gitroot.dir', 'gitroot.allowed-signers', 'gitroot.gpg-keyring'] as const) {
    good(t, key, '/boot', '/boot');
    good(t, key, '/boot/', '/boot');
    good(t, key, '/a//b/../c/./d', '/a/c/d');
    good(t, key, '/', '/');
    good(t, key, '/mnt/with space', '/mnt/with space');
    for (const p of ['boot', './x', '../x', '~/x']) bad(t, key, p, /needs an absolute path \(starting with \/\), not '/);
    bad(t, key, null, /needs a value/);
    bad(t, key, '', /needs a value/);
  }
});

t.test('device', async (t) => {
  for (const d of [
    'LABEL=GITROOT',
    'UUID=2f0b7c6e-1d2a-4c8b-9a1e-5f3d2c1b0a99',
    'PARTUUID=abcd-01',
    'PARTLABEL=gitroot',
    '/dev/sda1',
    '/dev/disk/by-label/GITROOT',
    'LABEL=with=equals',
  ]) {
    good(t, 'gitroot.medium', d, d);
  }
  for (const d of ['sda1', 'LABEL=', 'label=x', 'ID=x', '/dev/', '/devx/sda', 'dev/sda'])
    bad(t, 'gitroot.medium', d, /needs LABEL=\.\.\., UUID=\.\.\., PARTLABEL=\.\.\., PARTUUID=\.\.\. or a \/dev\/ path/);
});

t.test('every key names who reads it: gitroot commands that exist, or the initramfs boot script', async (t) => {
  // The names lib/cli/commands/ registers (reading the sources: loading every command module
  // would cost seconds).
  const commandDir = path.join(PROJECT_ROOT, 'lib', 'cli', 'commands');
  const commands = new Set(
    fs.readdirSync(commandDir).flatMap((f) => [...fs.readFileSync(path.join(commandDir, f), 'utf8').matchAll(/\.command\('([a-z-]+)'\)/g)].map((m) => m[1])),
  );
  t.ok(commands.has('fetch') && commands.has('mark-good'), `commands found: ${[...commands].join(' ')}`);
  const bootScript = fs.readFileSync(path.join(PROJECT_ROOT, 'initramfs-hooks', 'initramfs-tools', 'scripts', 'gitroot'), 'utf8');
  for (const key of SETTING_KEYS) {
    const users = SETTINGS_SCHEMA[key].usedBy.split(', ');
    t.equal(new Set(users).size, users.length, `${key}: no reader named twice`);
    for (const user of users) {
      const m = /^(?:gitroot ([a-z-]+)|(initramfs boot script))(?: \([^()]+\))?$/.exec(user);
      if (!m) {
        t.fail(`${key}: '${user}' is neither 'gitroot COMMAND' nor 'initramfs boot script' (each may end with a note in parentheses)`);
        continue;
      }
      if (m[1] !== undefined) t.ok(commands.has(m[1]), `${key}: 'gitroot ${m[1]}' is a command`);
      if (m[2] !== undefined) t.ok(bootScript.includes(`${key}=*)`), `${key}: the initramfs boot script reads it from the command line`);
    }
  }
});

t.test('string (no key uses it yet; checked through a spec)', async (t) => {
  const spec: SettingSpec = { type: 'string', default: null, meaning: 'm', example: 'x.y=z', usedBy: 'gitroot fetch' };
  t.same(parseValueForSpec(spec, 'x.y', 'any thing=#'), { ok: true, value: 'any thing=#' });
  t.same(parseValueForSpec(spec, 'x.y', ''), { ok: false, problem: 'needs a value: write x.y=z' });
  t.same(parseValueForSpec(spec, 'x.y', null), { ok: false, problem: 'needs a value: write x.y=z' });
});

t.test('no value may contain a double quote (the grammar cannot write it back)', async (t) => {
  for (const key of SETTING_KEYS) {
    if (SETTINGS_SCHEMA[key].type === 'flag') continue;
    bad(t, key, '/a"b', /cannot contain a double quote \(there is no way to escape one\)/);
  }
  t.same(
    tokenizeCmdline('gitroot.boot=/a"b').map((x) => x.value),
    ['/a"b'],
    'the kernel passes it on',
  );
});

t.test('where each key may be set', async (t) => {
  const cmdlineOnly = ['git-revision', 'gitroot.overlay-size', 'gitroot.cache-mb', 'gitroot.boot-medium'];
  const localOnly = [
    'gitroot.config',
    'noconfig',
    'gitroot.dir',
    'gitroot.medium',
    'gitroot.allowed-signers',
    'gitroot.gpg-keyring',
    'gitroot.ca',
    'gitroot.client-cert',
    'gitroot.client-key',
  ];
  for (const key of SETTING_KEYS) {
    t.equal(allowedIn(key, 'cmdline'), true, `${key} on the command line`);
    t.equal(allowedIn(key, 'file'), !cmdlineOnly.includes(key), `${key} in files`);
    t.equal(allowedIn(key, 'download'), !cmdlineOnly.includes(key) && !localOnly.includes(key), `${key} in the fleet config`);
  }
});

t.test('isSettingKey and settingSpec', async (t) => {
  t.ok(isSettingKey('noupgrade'));
  t.notOk(isSettingKey('quiet'));
  t.notOk(isSettingKey('toString'), 'no prototype keys');
  t.notOk(isSettingKey('__proto__'));
  t.equal(settingSpec('constructor'), undefined);
  t.equal(settingSpec('gitroot.tries')?.type, 'int');
});

t.test('suggestKey', async (t) => {
  const hits: [string, SettingKey][] = [
    ['fetch_revision', 'fetch-revision'],
    ['FETCH-REVISION', 'fetch-revision'],
    ['update-revison', 'update-revision'],
    ['updaterevision', 'update-revision'],
    ['gitroot.tires', 'gitroot.tries'],
    ['gitroot_remote', 'gitroot.remote'],
    ['noupgrad', 'noupgrade'],
    ['no-upgrade', 'noupgrade'],
    ['gitroot.bootlaoder', 'gitroot.bootloader'],
  ];
  for (const [typo, key] of hits) t.equal(suggestKey(typo), key, typo);
  // Common kernel parameters are not mistaken for gitroot's.
  const kernel = [
    'quiet',
    'splash',
    'ro',
    'rw',
    'root',
    'console',
    'BOOT_IMAGE',
    'init',
    'nomodeset',
    'noapic',
    'acpi',
    'loglevel',
    'systemd.unit',
    'rd.break',
    'ip',
    'net.ifnames',
    'mitigations',
    'boot',
    'toram',
    'noresume',
    'nosplash',
    'resume',
    'rootwait',
    'rootfstype',
    'initrd',
    'panic',
    'debug',
    'single',
    'emergency',
    'fsck.mode',
    'apparmor',
    'security',
    'nosmt',
    'noefi',
    'nohz',
    'isolcpus',
    'hugepages',
    'cgroup_enable',
    'swapaccount',
    'crashkernel',
    'video',
    'fbcon',
    'vga',
    'consoleblank',
  ];
  for (const k of kernel) t.equal(suggestKey(k), null, k);
  t.equal(suggestKey('gitroot.unheard-of'), null);
});

t.test('redactUrl', async (t) => {
  t.equal(redactUrl('https://user:secret@h/x.conf'), 'https://user:***@h/x.conf');
  t.equal(redactUrl('https://h/x.conf'), 'https://h/x.conf');
  t.equal(redactUrl('https://user@h/x.conf'), 'https://user@h/x.conf');
  t.equal(redactUrl('not a url'), 'not a url');
});
