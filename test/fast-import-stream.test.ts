/**
 * The text gitroot sends to git fast-import (path quoting, blob and commit headers), the
 * identity environment (gitroot defaults, GIT_* overrides, SOURCE_DATE_EPOCH), and git's
 * error-line extraction.
 */
// needs: none
import t from 'tap';
import { UsageError } from '../lib/errors/errors.js';
import { blobHeader, commitHeader, fileLine, quotePath, symlinkLines } from '../lib/commit/fast-import-stream.js';
import { identityEnv } from '../lib/commit/commit-tree.js';
import { firstErrorLine } from '../lib/git/git-exec.js';

t.test('quotePath C-quotes every path', async (t) => {
  const cases: Array<[string, string]> = [
    ['usr/bin/su', '"usr/bin/su"'],
    ['with space', '"with space"'],
    ['dq"uote', '"dq\\"uote"'],
    ['back\\slash', '"back\\\\slash"'],
    ['new\nline', '"new\\nline"'],
    ['tab\there', '"tab\\there"'],
    ['cr\rx', '"cr\\015x"'],
    ['ctl\x01\x1f', '"ctl\\001\\037"'],
    ['del\x7f', '"del\\177"'],
    ['café/日本😀', '"café/日本😀"'],
    ['#hash=eq', '"#hash=eq"'],
  ];
  for (const [path, want] of cases) t.equal(quotePath(path), want, JSON.stringify(path));
});

t.test('blob, file and symlink lines', async (t) => {
  t.equal(blobHeader(7, 12), 'blob\nmark :7\ndata 12\n');
  t.equal(blobHeader(1, 0), 'blob\nmark :1\ndata 0\n');
  t.equal(fileLine(0o100755, 3, 'usr/bin/su'), 'M 100755 :3 "usr/bin/su"\n');
  t.equal(fileLine(0o100644, 4, 'a b'), 'M 100644 :4 "a b"\n');
  t.equal(symlinkLines('usr/bin/sh', 'dash'), 'M 120000 inline "usr/bin/sh"\ndata 4\ndash\n');
  t.equal(symlinkLines('l', 'café'), 'M 120000 inline "l"\ndata 5\ncafé\n', 'data counts bytes, not characters');
});

t.test('commitHeader with and without a parent', async (t) => {
  const base = { branch: 'master', mark: 9, author: 'A <a@x> 1 +0000', committer: 'C <c@x> 2 +0100', message: 'héllo' };
  t.equal(
    commitHeader({ ...base, parent: null }),
    'commit refs/heads/master\nmark :9\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 2 +0100\ndata 7\nhéllo\ndeleteall\n',
  );
  t.equal(
    commitHeader({ ...base, message: 'two\nlines\n', parent: 'a'.repeat(40) }),
    `commit refs/heads/master\nmark :9\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 2 +0100\ndata 10\ntwo\nlines\nfrom ${'a'.repeat(40)}\ndeleteall\n`,
  );
});

t.test('identityEnv: gitroot defaults, GIT_* wins, SOURCE_DATE_EPOCH fills dates', async (t) => {
  const d = identityEnv({ PATH: '/bin' });
  t.match(d, {
    PATH: '/bin',
    GIT_AUTHOR_NAME: 'gitroot',
    GIT_AUTHOR_EMAIL: 'gitroot@localhost',
    GIT_COMMITTER_NAME: 'gitroot',
    GIT_COMMITTER_EMAIL: 'gitroot@localhost',
  });
  t.equal(d.GIT_COMMITTER_DATE, undefined, 'no date: git uses now');
  t.equal(d.GIT_AUTHOR_DATE, undefined);

  const o = identityEnv({
    GIT_COMMITTER_NAME: 'Release Bot',
    GIT_AUTHOR_EMAIL: 'dev@example.org',
    SOURCE_DATE_EPOCH: '1700000000',
    GIT_AUTHOR_DATE: '2020-01-01T00:00:00Z',
  });
  t.equal(o.GIT_COMMITTER_NAME, 'Release Bot');
  t.equal(o.GIT_COMMITTER_EMAIL, 'gitroot@localhost');
  t.equal(o.GIT_AUTHOR_NAME, 'gitroot');
  t.equal(o.GIT_AUTHOR_EMAIL, 'dev@example.org');
  t.equal(o.GIT_COMMITTER_DATE, '@1700000000 +0000');
  t.equal(o.GIT_AUTHOR_DATE, '2020-01-01T00:00:00Z', 'an explicit date beats SOURCE_DATE_EPOCH');
  t.equal(identityEnv({ SOURCE_DATE_EPOCH: '' }).GIT_COMMITTER_DATE, undefined, 'empty SOURCE_DATE_EPOCH is unset');

  for (const bad of ['soon', '-5', '1.5', '1e9']) {
    t.throws(() => identityEnv({ SOURCE_DATE_EPOCH: bad }), UsageError, bad);
  }
});

t.test("firstErrorLine picks git's fatal/error line", async (t) => {
  t.equal(firstErrorLine('hint: x\nfatal: not a git repository: /x\nmore'), 'fatal: not a git repository: /x');
  t.equal(firstErrorLine('warning: w\nerror: e1\nfatal: f'), 'error: e1');
  t.equal(firstErrorLine('\n  something odd  \n'), 'something odd');
  t.equal(firstErrorLine(''), 'no error output');
});
