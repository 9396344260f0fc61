/**
 * `gitroot select` end to end on a real home (repository made with `gitroot commit`,
 * state.json written through the lock): the decision and its reason, plain and as JSON, with
 * git-revision= naming the pending, the good, another and a failed revision; the state it
 * would write shown but never written; nothing bootable is exit 3 with the JSON still on
 * stdout; bad arguments and a damaged state are one-line errors.
 */
// needs: git
import t from 'tap';
import type { Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { type DeployState, emptyState, writeState } from '../lib/home/home-state.js';
import { statePath } from '../lib/home/home-layout.js';
import { withLock } from '../lib/home/home-lock.js';
import { gitroot } from './helpers/cli.js';
import { commitSpec } from './helpers/deploy-fixtures.js';
import { tempDir } from './helpers/temp-dir.js';

const T0 = '2026-05-06T07:08:09.000Z';

interface Home {
  work: string;
  dir: string;
  repo: string;
  cmdline: (text: string) => string;
}

function home(t: Test): Home {
  const work = tempDir(t, 'select');
  const dir = path.join(work, 'gitroot');
  fs.mkdirSync(dir);
  let n = 0;
  return {
    work,
    dir,
    repo: path.join(dir, 'repo.git'),
    cmdline: (text) => {
      const f = path.join(work, `cmdline-${n++}`);
      fs.writeFileSync(f, `${text}\n`);
      return f;
    },
  };
}

async function setState(dir: string, s: DeployState): Promise<void> {
  await withLock(dir, {}, (lock) => writeState(lock, s));
}

t.test('the decision, plain and JSON, without writing anything', async (t) => {
  const h = home(t);
  const G = commitSpec(h.work, h.repo, { 'etc/os-release': 'BUILD=good\n' }, 'good');
  const P = commitSpec(h.work, h.repo, { 'etc/os-release': 'BUILD=next\n' }, 'next');
  const O = commitSpec(h.work, h.repo, { 'etc/os-release': 'BUILD=old\n' }, 'old');
  const F = commitSpec(h.work, h.repo, { 'etc/os-release': 'BUILD=bad\n' }, 'bad');
  await setState(h.dir, { ...emptyState(), good: G, booted: G, failed: [F], pending: { revision: P, triesLeft: 3, tries: 3, stagedAt: T0 } });
  const file = statePath(h.dir);
  const bytes = fs.readFileSync(file, 'utf8');
  const mtime = fs.statSync(file).mtimeMs;

  const plain = gitroot(['select', '--dir', h.dir, '--cmdline', h.cmdline(`BOOT_IMAGE=/gitroot/x/vmlinuz boot=gitroot quiet git-revision=${P}`)]);
  t.equal(plain.status, 0, plain.stderr);
  t.equal(plain.stderr, '');
  t.same(plain.stdout.split('\n'), [
    `pending ${P}`,
    `pending revision ${P}: try 1 of 3 (2 left after this boot, unless it is marked good)`,
    `would write: booted ${P}, pending ${P} (2 of 3 tries left), failed ${F}`,
    '',
  ]);

  const json = gitroot(['select', '--dir', h.dir, '--cmdline', h.cmdline(`git-revision=${G}`), '--json']);
  t.equal(json.status, 0, json.stderr);
  const d = JSON.parse(json.stdout);
  t.same(Object.keys(d), ['revision', 'kind', 'reason', 'notes', 'cmdlineRevision', 'health', 'state']);
  t.match(d, { revision: G, kind: 'good', cmdlineRevision: G, health: { [G]: 'ok' }, state: { booted: G, pending: { triesLeft: 3 } } });

  const other = JSON.parse(gitroot(['select', '--dir', h.dir, '--cmdline', h.cmdline(`quiet git-revision=${O}`), '--json']).stdout);
  t.match(other, { revision: O, kind: 'cmdline', state: { booted: O, good: G, pending: { triesLeft: 3 } } });

  const failed = JSON.parse(gitroot(['select', '--dir', h.dir, '--cmdline', h.cmdline(`git-revision=${F}`), '--json']).stdout);
  t.match(
    failed,
    { revision: P, kind: 'pending', notes: [new RegExp(`git-revision=${F} is a failed revision`)] },
    'a failed revision named by git-revision= is passed over',
  );

  const missing = JSON.parse(gitroot(['select', '--dir', h.dir, '--cmdline', h.cmdline(`git-revision=${'0'.repeat(40)}`), '--json']).stdout);
  t.match(missing, { revision: P, health: { ['0'.repeat(40)]: 'missing', [P]: 'ok' } });

  t.equal(fs.readFileSync(file, 'utf8'), bytes, 'state.json unchanged');
  t.equal(fs.statSync(file).mtimeMs, mtime, 'not even rewritten');
  t.notOk(fs.existsSync(path.join(h.dir, 'lock')), 'no lock taken');
});

t.test('used-up tries: what the boot would record', async (t) => {
  const h = home(t);
  const G = commitSpec(h.work, h.repo, { a: 'good\n' }, 'good');
  const P = commitSpec(h.work, h.repo, { a: 'next\n' }, 'next');
  await setState(h.dir, { ...emptyState(), good: G, booted: P, pending: { revision: P, triesLeft: 0, tries: 2, stagedAt: T0 } });
  const r = gitroot(['select', '--dir', h.dir, '--cmdline', h.cmdline(`git-revision=${P}`)]);
  t.equal(r.status, 0);
  t.match(r.stdout, new RegExp(`^good ${G}\n`));
  t.match(r.stdout, new RegExp(`\nnote: pending revision ${P} used up its 2 tries without being marked good: recorded as failed\n`));
  t.match(r.stdout, new RegExp(`would write: booted ${G}, pending -, failed ${P}\n$`));
});

t.test('nothing bootable: exit 3, the decision still printed', async (t) => {
  const h = home(t);
  const G = commitSpec(h.work, h.repo, { a: 'good\n' }, 'good');
  await setState(h.dir, { ...emptyState(), good: G, booted: G });
  fs.rmSync(h.repo, { recursive: true });
  const r = gitroot(['select', '--dir', h.dir, '--cmdline', h.cmdline('quiet'), '--json']);
  t.equal(r.status, 3);
  t.match(JSON.parse(r.stdout), { revision: null, kind: 'none', health: { [G]: 'missing' } });
  t.equal(r.stderr.split('\n').length, 2, 'one line on stderr');
  t.match(r.stderr, /^gitroot: no bootable revision \(good revision [0-9a-f]{12} is not in the repository\): stage one with 'gitroot fetch'/);
});

t.test('one-line errors', async (t) => {
  const h = home(t);
  const cases: Array<[string, string[], number, RegExp]> = [
    ['no such home', ['select', '--dir', path.join(h.work, 'nope'), '--cmdline', h.cmdline('')], 2, /^gitroot: gitroot home .*nope is not a directory/],
    [
      'no command line file',
      ['select', '--dir', h.dir, '--cmdline', path.join(h.work, 'nope')],
      2,
      /^gitroot: cannot read the kernel command line file .*nope \(ENOENT\)/,
    ],
    ['no --dir', ['select'], 2, /^gitroot: gitroot select needs --dir: this machine was not booted by gitroot/],
  ];
  for (const [name, args, status, msg] of cases) {
    const r = gitroot(args);
    t.equal(r.status, status, name);
    t.match(r.stderr, msg, name);
    t.equal(r.stderr.trimEnd().split('\n').length, 1, `${name}: one line`);
    t.equal(r.stdout, '', `${name}: nothing on stdout`);
  }
  fs.writeFileSync(statePath(h.dir), '{"version": 1, "good": "nope"');
  const r = gitroot(['select', '--dir', h.dir, '--cmdline', h.cmdline(''), '--json']);
  t.equal(r.status, 4);
  t.match(r.stderr, /^gitroot: read state: .*state.json is not valid gitroot state: it is not JSON/);
  t.equal(r.stdout, '');
});
