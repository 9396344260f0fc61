/**
 * Settings precedence, exhaustively: every subset of sources (two files, the fleet config,
 * the command line) for keys of every type, flags switched on and off by later sources,
 * noconfig from each place, where each key may be set, and every error naming its origin.
 */
// needs: none
import t, { type Test } from 'tap';
import { ConfigError } from '../lib/errors/errors.js';
import { parseConfigText, tokenizeCmdline } from '../lib/params/settings-grammar.js';
import { checkToken, planConfigDownload, resolveSettings, type SettingsInputs, type SettingsSource } from '../lib/params/settings-resolve.js';
import { defaultSettings, SETTING_KEYS, type SettingKey } from '../lib/params/settings-schema.js';

const SHA_A = 'a'.repeat(40);

function file(name: string, text: string): SettingsSource {
  return { kind: 'file', name, tokens: parseConfigText(text, name) };
}
function fleet(text: string, url = 'https://fleet.example/k.conf'): SettingsSource {
  return { kind: 'download', name: url, tokens: parseConfigText(text, url) };
}
function cmdline(text: string, name = '/proc/cmdline'): SettingsSource {
  return { kind: 'cmdline', name, tokens: tokenizeCmdline(text, name) };
}
function source(kind: 'file1' | 'file2' | 'download' | 'cmdline', line: string): SettingsSource {
  if (kind === 'cmdline') return cmdline(`quiet ${line} root=/dev/sda1`);
  if (kind === 'download') return fleet(`# fleet\n${line}\n`);
  return file(`/etc/gitroot/${kind}.conf`, `\n${line}\n`);
}

t.test('defaults when there are no sources', async (t) => {
  const r = resolveSettings({ files: [] });
  t.same(r.settings, defaultSettings());
  t.same(r.warnings, []);
  for (const key of SETTING_KEYS) t.same(r.origins[key], { kind: 'default', source: 'default' });
});

t.test('every subset of sources: the highest one present wins, and is the origin', async (t) => {
  const order = ['file1', 'file2', 'download', 'cmdline'] as const;
  // One key of each kind, with a distinct valid value per source.
  const keys: [SettingKey, Record<(typeof order)[number], string>, (raw: string) => unknown][] = [
    ['fetch-revision', { file1: 'one', file2: 'two', download: 'three', cmdline: 'four' }, (s) => s],
    ['gitroot.tries', { file1: '11', file2: '12', download: '13', cmdline: '14' }, Number],
    ['gitroot.bootloader', { file1: 'bls', file2: 'extlinux', download: 'none', cmdline: 'bls' }, (s) => s],
    ['update-revision', { file1: '1'.repeat(40), file2: '2'.repeat(40), download: '3'.repeat(40), cmdline: '4'.repeat(40) }, (s) => s],
    ['gitroot.remote', { file1: 'http://a/r', file2: 'https://b/r', download: 'file:///c/r', cmdline: 'http://d/r' }, (s) => s],
    ['gitroot.boot', { file1: '/b1', file2: '/b2', download: '/b3', cmdline: '/b4' }, (s) => s],
    ['noupgrade', { file1: '1', file2: '0', download: 'yes', cmdline: 'no' }, (s) => ['1', 'yes'].includes(s)],
    ['gitroot.reboot-after-update', { file1: 'true', file2: 'false', download: '1', cmdline: '0' }, (s) => ['1', 'true'].includes(s)],
  ];
  let cases = 0;
  for (const [key, values, typed] of keys) {
    for (let mask = 0; mask < 1 << order.length; mask++) {
      const present = order.filter((_, i) => mask & (1 << i));
      const src = Object.fromEntries(present.map((k) => [k, source(k, `${key}=${values[k]}`)])) as Record<string, SettingsSource>;
      const inputs: SettingsInputs = {
        files: [src.file1, src.file2].filter((x): x is SettingsSource => x !== undefined),
        download: src.download ?? null,
        cmdline: src.cmdline ?? null,
      };
      const r = resolveSettings(inputs);
      const top = present[present.length - 1];
      const label = `${key} from {${present.join(',')}}`;
      if (top === undefined) {
        t.same(r.settings[key], defaultSettings()[key], label);
        t.equal(r.origins[key].kind, 'default', label);
      } else {
        t.same(r.settings[key], typed(values[top]), label);
        const kind = top.startsWith('file') ? 'file' : top;
        t.equal(r.origins[key].kind, kind, `${label}: origin kind`);
        t.equal(r.origins[key].source, src[top]!.name, `${label}: origin source`);
        t.equal(r.origins[key].line, top === 'cmdline' ? undefined : 2, `${label}: origin line`);
      }
      // Keys nobody set keep their defaults.
      for (const other of SETTING_KEYS) if (other !== key) t.same(r.settings[other], defaultSettings()[other]);
      cases++;
    }
  }
  t.equal(cases, keys.length * 16);
});

t.test('flags: a later source switches off what an earlier one switched on, and back', async (t) => {
  const seqs: [string[], boolean][] = [
    [['noupgrade'], true],
    [['noupgrade', 'noupgrade=0'], false],
    [['noupgrade=0', 'noupgrade'], true],
    [['noupgrade', 'noupgrade=no', 'noupgrade=yes'], true],
    [['noupgrade', 'noupgrade=false', 'noupgrade=true', 'noupgrade=0'], false],
  ];
  const kinds = ['file1', 'file2', 'download', 'cmdline'] as const;
  for (const [seq, want] of seqs) {
    const srcs = seq.map((line, i) => source(kinds[i + (4 - seq.length)]!, line));
    const r = resolveSettings({
      files: srcs.filter((s) => s.kind === 'file'),
      download: srcs.find((s) => s.kind === 'download') ?? null,
      cmdline: srcs.find((s) => s.kind === 'cmdline') ?? null,
    });
    t.equal(r.settings.noupgrade, want, seq.join(' < '));
  }
});

t.test('within one source the last occurrence wins', async (t) => {
  const r = resolveSettings({ files: [file('/f.conf', 'gitroot.tries=4\ngitroot.tries=6\n')], cmdline: cmdline('gitroot.retries=1 gitroot.retries=2') });
  t.equal(r.settings['gitroot.tries'], 6);
  t.equal(r.origins['gitroot.tries'].line, 2);
  t.equal(r.settings['gitroot.retries'], 2);
});

t.test('values are normalised (SHA lower case, paths without trailing /)', async (t) => {
  const r = resolveSettings({ files: [file('/f.conf', `update-revision=${'A'.repeat(40)}\ngitroot.boot=/efi/\n`)] });
  t.equal(r.settings['update-revision'], SHA_A);
  t.equal(r.settings['gitroot.boot'], '/efi');
});

t.test('noconfig and gitroot.config from each place decide the download', async (t) => {
  const URL_F = 'https://files.example/f.conf';
  const URL_C = 'https://cmd.example/c.conf';
  let n = 0;
  for (const urlFrom of ['none', 'file', 'cmdline', 'both'] as const) {
    for (const nf of ['absent', 'on', 'off'] as const) {
      for (const nc of ['absent', 'on', 'off'] as const) {
        const fileLines: string[] = [];
        const cmdWords: string[] = ['quiet'];
        if (urlFrom === 'file' || urlFrom === 'both') fileLines.push(`gitroot.config=${URL_F}`);
        if (urlFrom === 'cmdline' || urlFrom === 'both') cmdWords.push(`gitroot.config=${URL_C}`);
        if (nf !== 'absent') fileLines.push(nf === 'on' ? 'noconfig' : 'noconfig=0');
        if (nc !== 'absent') cmdWords.push(nc === 'on' ? 'noconfig' : 'noconfig=no');
        const plan = planConfigDownload({ files: [file('/etc/gitroot/gitroot.conf', fileLines.join('\n'))], cmdline: cmdline(cmdWords.join(' ')) });
        const noconfig = nc !== 'absent' ? nc === 'on' : nf === 'on';
        const label = `url from ${urlFrom}, noconfig file=${nf} cmdline=${nc}`;
        if (urlFrom === 'none') {
          t.same(plan, { action: 'skip', reason: 'unset', origin: { kind: 'default', source: 'default' } }, label);
        } else if (noconfig) {
          t.equal(plan.action, 'skip', label);
          if (plan.action === 'skip') {
            t.equal(plan.reason, 'noconfig', label);
            t.equal(plan.origin.kind, nc === 'on' ? 'cmdline' : 'file', label);
          }
        } else {
          t.equal(plan.action, 'download', label);
          if (plan.action === 'download') {
            t.equal(plan.url, urlFrom === 'file' ? URL_F : URL_C, `${label}: the command line's URL wins`);
            t.equal(plan.origin.kind, urlFrom === 'file' ? 'file' : 'cmdline', label);
            t.equal(plan.offline, false);
          }
        }
        n++;
      }
    }
  }
  t.equal(n, 36);
});

t.test('the download plan ignores the fleet config and carries the network settings', async (t) => {
  const inputs: SettingsInputs = {
    files: [file('/f.conf', 'gitroot.config=http://h/c\ngitroot.timeout=7\ngitroot.retries=0\n')],
    download: fleet('gitroot.timeout=99\n'),
    cmdline: cmdline('gitroot.retries=5'),
  };
  t.same(planConfigDownload(inputs), {
    action: 'download',
    url: 'http://h/c',
    origin: { kind: 'file', source: '/f.conf', line: 1 },
    timeoutSeconds: 7,
    retries: 5,
    offline: false,
  });
  const plain = planConfigDownload({ files: [file('/f.conf', 'gitroot.config=http://h/c\n')] });
  t.match(plain, { action: 'download', timeoutSeconds: 30, retries: 3 });
});

t.test('noupgrade before the download means no network (the cached copy is still read)', async (t) => {
  for (const [f, c, offline] of [
    ['noupgrade', '', true],
    ['', 'noupgrade', true],
    ['noupgrade', 'noupgrade=0', false],
    ['', '', false],
  ] as const) {
    const plan = planConfigDownload({ files: [file('/f.conf', `gitroot.config=http://h/c\n${f}\n`)], cmdline: cmdline(c) });
    t.match(plan, { action: 'download', offline }, `file '${f}' cmdline '${c}'`);
  }
});

t.test("the command line ignores other programs' parameters", async (t) => {
  const line =
    'BOOT_IMAGE=/vmlinuz-6.1.0-18-amd64 root=UUID=1234 ro quiet splash console=ttyS0,115200 init=/sbin/init rd.break systemd.unit=rescue.target ip=dhcp boot=live "weird param" =x gitroot';
  const r = resolveSettings({ files: [], cmdline: cmdline(line) });
  t.same(r.settings, defaultSettings());
  t.same(r.warnings, []);
});

t.test('command line near misses are ignored with a warning', async (t) => {
  const r = resolveSettings({ files: [], cmdline: cmdline(`quiet fetch_revision=stable update-revison=${SHA_A} NOUPGRADE`) });
  t.same(r.settings, defaultSettings());
  t.same(r.warnings, [
    "/proc/cmdline: 'fetch_revision=stable': not a gitroot setting, ignored (did you mean fetch-revision?)",
    `/proc/cmdline: 'update-revison=${SHA_A}': not a gitroot setting, ignored (did you mean update-revision?)`,
    "/proc/cmdline: 'NOUPGRADE': not a gitroot setting, ignored (did you mean noupgrade?)",
  ]);
});

/** The ConfigError `fn` throws. */
function configError(t: Test, fn: () => unknown, label: string): ConfigError {
  try {
    fn();
  } catch (e) {
    t.type(e, ConfigError, label);
    t.equal((e as ConfigError).code, 'ECONFIG');
    t.notOk((e as Error).message.includes('\n'), `${label}: one line`);
    return e as ConfigError;
  }
  t.fail(`${label}: no error`);
  return new ConfigError('none');
}

t.test('errors name source:line (files, fleet) or the token (command line)', async (t) => {
  const cases: [SettingsInputs, RegExp, Record<string, unknown>][] = [
    [
      { files: [file('/etc/gitroot/gitroot.conf', 'noupgrade\n\ngitroot.tires=5\n')] },
      /^\/etc\/gitroot\/gitroot\.conf:3: unknown setting 'gitroot\.tires' \(did you mean gitroot\.tries\?\); fix or remove the line/,
      { source: '/etc/gitroot/gitroot.conf', line: 3, key: 'gitroot.tires' },
    ],
    [{ files: [file('/f.conf', 'quiet\n')] }, /^\/f\.conf:1: unknown setting 'quiet'; fix or remove the line/, { line: 1 }],
    [{ files: [file('/f.conf', 'fetch_revision=x\n')] }, /unknown setting 'fetch_revision' \(did you mean fetch-revision\?\)/, { line: 1 }],
    [{ files: [file('/f.conf', 'gitroot.tries=0\n')] }, /^\/f\.conf:1: gitroot\.tries needs a whole number from 1 to 100, not '0'$/, { line: 1 }],
    [{ files: [file('/f.conf', 'update-revision=abc1234\n')] }, /^\/f\.conf:1: update-revision needs a full 40-hex commit SHA, not 7 hex digits/, { line: 1 }],
    [{ files: [file('/f.conf', 'gitroot.remote\n')] }, /^\/f\.conf:1: gitroot\.remote needs a value: write gitroot\.remote=https:/, { line: 1 }],
    [
      { files: [file('/f.conf', `git-revision=${SHA_A}\n`)] },
      /^\/f\.conf:1: git-revision cannot be set by a local config file, only by the kernel command line; remove it here$/,
      { line: 1 },
    ],
    [
      { files: [], download: fleet('gitroot.config=https://other/x\n') },
      /^https:\/\/fleet\.example\/k\.conf:1: gitroot\.config cannot be set by the downloaded config, only by a local config file or the kernel command line/,
      { line: 1 },
    ],
    [{ files: [], download: fleet('\nnoconfig\n') }, /^https:\/\/fleet\.example\/k\.conf:2: noconfig cannot be set by the downloaded config/, { line: 2 }],
    [{ files: [], download: fleet('gitroot.allowed-signers=/tmp/mine\n') }, /gitroot\.allowed-signers cannot be set by the downloaded config/, {}],
    [{ files: [], download: fleet('gitroot.gpg-keyring=/tmp/mine\n') }, /gitroot\.gpg-keyring cannot be set by the downloaded config/, {}],
    [{ files: [], download: fleet('gitroot.dir=/x\n') }, /gitroot\.dir cannot be set by the downloaded config/, {}],
    [{ files: [], download: fleet('gitroot.medium=LABEL=X\n') }, /gitroot\.medium cannot be set by the downloaded config/, {}],
    [{ files: [], download: fleet('<html>\n') }, /^https:\/\/fleet\.example\/k\.conf:1: unknown setting '<html>'/, { line: 1 }],
    [
      { files: [], cmdline: cmdline('quiet gitroot.tires=5') },
      /^\/proc\/cmdline: 'gitroot\.tires=5': unknown setting 'gitroot\.tires' \(did you mean gitroot\.tries\?\); fix or remove it from the boot entry/,
      { source: '/proc/cmdline', line: undefined, token: 'gitroot.tires=5' },
    ],
    [{ files: [], cmdline: cmdline('gitroot.frobnicate') }, /^\/proc\/cmdline: 'gitroot\.frobnicate': unknown setting 'gitroot\.frobnicate'; fix/, {}],
    [
      { files: [], cmdline: cmdline('update-revision=HEAD~1') },
      /^\/proc\/cmdline: 'update-revision=HEAD~1': update-revision needs a full 40-hex commit SHA/,
      {},
    ],
    [
      { files: [], cmdline: cmdline('gitroot.bootloader="grub 2"') },
      /^\/proc\/cmdline: 'gitroot\.bootloader="grub 2"': gitroot\.bootloader must be one of bls, extlinux, none, not 'grub 2'$/,
      {},
    ],
    [{ files: [], cmdline: cmdline('noupgrade=maybe') }, /noupgrade is a flag/, {}],
    [{ files: [], cmdline: cmdline('gitroot.timeout=', '/tmp/c') }, /^\/tmp\/c: 'gitroot\.timeout=': gitroot\.timeout needs a value/, { source: '/tmp/c' }],
  ];
  for (const [inputs, re, data] of cases) {
    const e = configError(t, () => resolveSettings(inputs), re.source);
    t.match(e.message, re);
    t.match(e.data, data);
  }
});

t.test('the first bad source in precedence order is reported', async (t) => {
  const e = configError(
    t,
    () =>
      resolveSettings({
        files: [file('/a.conf', 'gitroot.tries=1\n'), file('/b.conf', 'oops\n')],
        download: fleet('also-bad\n'),
        cmdline: cmdline('gitroot.bad'),
      }),
    'first error',
  );
  t.match(e.message, /^\/b\.conf:1:/);
});

t.test('planConfigDownload validates the local sources too', async (t) => {
  configError(t, () => planConfigDownload({ files: [file('/f.conf', 'typo\n')] }), 'bad file');
  configError(t, () => planConfigDownload({ files: [], cmdline: cmdline('gitroot.typo=1') }), 'bad cmdline');
});

t.test('checkToken', async (t) => {
  const w: string[] = [];
  t.same(checkToken(tokenizeCmdline('noupgrade')[0]!, 'cmdline', w), { key: 'noupgrade', value: true });
  t.equal(checkToken(tokenizeCmdline('quiet')[0]!, 'cmdline', w), null);
  t.same(w, []);
  t.same(checkToken(parseConfigText('gitroot.tries=9', 'f')[0]!, 'download', w), { key: 'gitroot.tries', value: 9 });
});
