/**
 * The settings grammar: the kernel command line split as lib/cmdline.c next_arg() splits it
 * (quotes, flags, `--`, odd corners), config files (comments, blank lines, CRLF, BOM, line
 * numbers, every error), origins, and value quoting round trips.
 */
// needs: none
import t from 'tap';
import { ConfigError } from '../lib/errors/errors.js';
import { formatOrigin, parseConfigText, quoteValue, tokenizeCmdline, type SettingToken } from '../lib/params/settings-grammar.js';

/** [key, value] pairs of a token list. */
function kv(tokens: SettingToken[]): [string, string | null][] {
  return tokens.map((tok) => [tok.key, tok.value]);
}

t.test('command line: the kernel splitting rules', async (t) => {
  const cases: [string, [string, string | null][]][] = [
    ['', []],
    ['   \t\n', []],
    ['quiet', [['quiet', null]]],
    [
      'quiet root=/dev/sda1 console=ttyS0,115200n8\n',
      [
        ['quiet', null],
        ['root', '/dev/sda1'],
        ['console', 'ttyS0,115200n8'],
      ],
    ],
    [
      'a=1\tb=2\nc=3\r\vd\fe',
      [
        ['a', '1'],
        ['b', '2'],
        ['c', '3'],
        ['d', null],
        ['e', null],
      ],
    ],
    [
      '  lead   trail  ',
      [
        ['lead', null],
        ['trail', null],
      ],
    ],
    ['key="a b"', [['key', 'a b']]],
    ['"key=a b"', [['key', 'a b']]],
    ['"flag word"', [['flag word', null]]],
    ['key=a"b c"d', [['key', 'a"b c"d']]],
    ['key=', [['key', '']]],
    ['key=""', [['key', '']]],
    ['key="', [['key', '']]],
    ['a=b=c', [['a', 'b=c']]],
    ['gitroot.medium=LABEL=GITROOT', [['gitroot.medium', 'LABEL=GITROOT']]],
    // The kernel does not split at an '=' in the first position.
    ['=foo', [['=foo', null]]],
    ['=a=b', [['=a', 'b']]],
    // An unterminated quote runs to the end of the line, as in the kernel.
    ['key="abc def', [['key', 'abc def']]],
    [
      'x key="abc def ghi=1',
      [
        ['x', null],
        ['key', 'abc def ghi=1'],
      ],
    ],
    // '--' ends the kernel's parameters; the rest is init's.
    ['quiet -- noupgrade', [['quiet', null]]],
    ['quiet "--" noupgrade', [['quiet', null]]],
    [
      '--foo --=x',
      [
        ['--foo', null],
        ['--', 'x'],
      ],
    ],
    [
      '# not a comment',
      [
        ['#', null],
        ['not', null],
        ['a', null],
        ['comment', null],
      ],
    ],
    [
      'BOOT_IMAGE=/vmlinuz-6.1 ro noupgrade update-revision=0123456789abcdef0123456789abcdef01234567',
      [
        ['BOOT_IMAGE', '/vmlinuz-6.1'],
        ['ro', null],
        ['noupgrade', null],
        ['update-revision', '0123456789abcdef0123456789abcdef01234567'],
      ],
    ],
  ];
  for (const [line, want] of cases) t.same(kv(tokenizeCmdline(line)), want, JSON.stringify(line));
});

t.test('command line: token text and origin', async (t) => {
  const toks = tokenizeCmdline('quiet  key="a b"\n', '/tmp/cmdline');
  t.same(
    toks.map((x) => x.text),
    ['quiet', 'key="a b"'],
  );
  t.same(
    toks.map((x) => x.origin),
    [{ source: '/tmp/cmdline' }, { source: '/tmp/cmdline' }],
  );
  t.same(tokenizeCmdline('x')[0]!.origin, { source: '/proc/cmdline' }, 'default source');
});

t.test('config file: comments, blank lines, line numbers', async (t) => {
  const text = [
    '# a comment',
    '',
    '   ',
    'noupgrade',
    '  gitroot.tries=5   # trailing comment',
    '\tgitroot.boot="/mnt/my boot"',
    'gitroot.remote=https://h/x#frag',
    'key="a #b"',
    '   # indented comment',
    'last=1',
  ].join('\n');
  const toks = parseConfigText(text, '/etc/gitroot/gitroot.conf');
  t.same(kv(toks), [
    ['noupgrade', null],
    ['gitroot.tries', '5'],
    ['gitroot.boot', '/mnt/my boot'],
    ['gitroot.remote', 'https://h/x#frag'],
    ['key', 'a #b'],
    ['last', '1'],
  ]);
  t.same(
    toks.map((x) => x.origin.line),
    [4, 5, 6, 7, 8, 10],
  );
  t.ok(toks.every((x) => x.origin.source === '/etc/gitroot/gitroot.conf'));
  t.same(toks.map((x) => x.text)[1], 'gitroot.tries=5');
});

t.test('config file: CRLF, BOM, missing final newline, empty file', async (t) => {
  t.same(kv(parseConfigText('\uFEFFa=1\r\nb\r\n', 'f')), [
    ['a', '1'],
    ['b', null],
  ]);
  t.same(kv(parseConfigText('a=1\nb=2', 'f')), [
    ['a', '1'],
    ['b', '2'],
  ]);
  t.same(parseConfigText('', 'f'), []);
  t.same(parseConfigText('\n\n# x\n', 'f'), []);
  t.same(parseConfigText('x\r\n', 'f')[0]!.origin, { source: 'f', line: 1 });
});

t.test('config file: errors name source:line', async (t) => {
  const bad: [string, number, RegExp][] = [
    ['ok=1\nkey="a b\n', 2, /f\.conf:2: unterminated double quote/],
    ['"key=a\n', 1, /unterminated/],
    ['a=1 b=2\n', 1, /f\.conf:1: more than one setting on a line/],
    ['\n\nnoupgrade noconfig', 3, /f\.conf:3: more than one setting/],
    ['key=a b\n', 1, /more than one setting.*quote a value/],
    ['""\n', 1, /f\.conf:1: '""' has no setting name/],
  ];
  for (const [text, line, re] of bad) {
    const err = t.throws(() => parseConfigText(text, 'f.conf'), ConfigError, JSON.stringify(text)) as unknown as ConfigError;
    t.equal(err.code, 'ECONFIG');
    t.equal(err.data.line, line);
    t.equal(err.data.source, 'f.conf');
    t.match(err.message, re);
    t.notOk(err.message.includes('\n'), 'one line');
  }
});

t.test('formatOrigin', async (t) => {
  t.equal(formatOrigin({ source: '/etc/gitroot/gitroot.conf', line: 3 }), '/etc/gitroot/gitroot.conf:3');
  t.equal(formatOrigin({ source: '/proc/cmdline' }), '/proc/cmdline');
  t.equal(formatOrigin({ source: 'https://h/c.conf', line: 1 }), 'https://h/c.conf:1');
});

t.test('quoteValue round-trips through both grammars', async (t) => {
  t.equal(quoteValue('plain'), 'plain');
  t.equal(quoteValue('a b'), '"a b"');
  t.equal(quoteValue(''), '""');
  t.equal(quoteValue('x#y'), '"x#y"');
  t.throws(() => quoteValue('a"b'), ConfigError);
  // Deterministic pseudo-random strings over the characters that matter.
  const alphabet = ['a', 'Z', '0', '=', '#', ' ', '\t', '/', ':', '.', '-', 'é', '{', '\\'];
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return (seed >>> 16) % n;
  };
  for (let i = 0; i < 500; i++) {
    const len = rnd(8);
    let v = '';
    for (let j = 0; j < len; j++) v += alphabet[rnd(alphabet.length)];
    const token = `k=${quoteValue(v)}`;
    t.same(
      kv(tokenizeCmdline(`x ${token} y`)),
      [
        ['x', null],
        ['k', v],
        ['y', null],
      ],
      `cmdline ${JSON.stringify(v)}`,
    );
    t.same(kv(parseConfigText(`${token} # c\n`, 'f')), [['k', v]], `file ${JSON.stringify(v)}`);
  }
});
