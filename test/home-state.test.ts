/**
 * The deployment state (lib/home/home-state.ts): a missing file is a fresh machine, a
 * round trip keeps every field, every kind of damage is a StateError naming the file (never a
 * crash, never a silent default), writes need the lock and refuse inconsistent state, the
 * pure helpers keep their bounds, and the last-fetch record is separate and tolerant.
 */
// needs: none
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { LockedError, StateError } from '../lib/errors/errors.js';
import {
  type DeployState,
  FAILED_LIMIT,
  PREVIOUS_GOOD_LIMIT,
  emptyState,
  parseState,
  planRetention,
  readState,
  withFailed,
  withGood,
  withPrunedStaged,
  writeState,
} from '../lib/home/home-state.js';
import { lastFetchPath, statePath, lockPath } from '../lib/home/home-layout.js';
import { readLastFetch, writeLastFetch } from '../lib/home/last-fetch.js';
import { acquireLock, releaseLock, withLock } from '../lib/home/home-lock.js';
import { tempDir } from './helpers/temp-dir.js';

const sha = (n: number): string => n.toString(16).padStart(40, '0');
const T0 = '2026-01-02T03:04:05.000Z';
const staged = (kernelDir: string | null) => ({
  kernelDir,
  kernel: kernelDir === null ? null : 'vmlinuz',
  initrd: kernelDir === null ? null : 'initrd.img',
  kernelVersion: kernelDir === null ? null : '6.1.0-10-amd64',
  kernelSource: kernelDir === null ? null : 'boot/vmlinuz-6.1.0-10-amd64',
  options: 'boot=gitroot quiet',
  stagedAt: T0,
});

function sample(): DeployState {
  return {
    version: 1,
    good: sha(1),
    pending: { revision: sha(2), triesLeft: 2, tries: 3, stagedAt: T0 },
    booted: sha(1),
    failed: [sha(3)],
    previousGood: [sha(4), sha(5)],
    staged: { [sha(1)]: staged(sha(1)), [sha(2)]: staged(sha(2)), [sha(4)]: staged(sha(4)), [sha(6)]: staged(null) },
  };
}

t.test('a missing state file is a fresh machine', async (t) => {
  const home = tempDir(t, 'state');
  t.same(readState(home), emptyState());
  t.same(readState(path.join(home, 'does-not-exist-yet')), emptyState());
});

t.test('write then read keeps every field; the file is pretty JSON written atomically', async (t) => {
  const home = tempDir(t, 'state');
  await withLock(home, {}, (lock) => writeState(lock, sample()));
  t.same(readState(home), sample());
  const text = fs.readFileSync(statePath(home), 'utf8');
  t.match(text, /^\{\n {2}"version": 1,/);
  t.same(
    fs.readdirSync(home).filter((n) => n.includes('.tmp-')),
    [],
    'no temp file left',
  );
});

t.test('every kind of damage is a StateError naming the file and the fix', async (t) => {
  const home = tempDir(t, 'state');
  const good = JSON.stringify(sample());
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- mutations write fields of any shape on purpose
  const mutate = (f: (s: Record<string, any>) => void): string => {
    const s = JSON.parse(good);
    f(s);
    return JSON.stringify(s);
  };
  const cases: [string, string][] = [
    ['empty file', ''],
    ['truncated JSON', good.slice(0, good.length / 2)],
    ['not an object', '[1,2]'],
    ['null', 'null'],
    [
      'newer version',
      mutate((s) => {
        s.version = 2;
      }),
    ],
    [
      'missing version',
      mutate((s) => {
        delete s.version;
      }),
    ],
    [
      'good not a sha',
      mutate((s) => {
        s.good = 'master';
      }),
    ],
    [
      'good upper case',
      mutate((s) => {
        s.good = sha(1).toUpperCase().replace(/^0/, 'A');
      }),
    ],
    [
      'booted a number',
      mutate((s) => {
        s.booted = 7;
      }),
    ],
    [
      'pending without revision',
      mutate((s) => {
        delete s.pending.revision;
      }),
    ],
    [
      'pending triesLeft negative',
      mutate((s) => {
        s.pending.triesLeft = -1;
      }),
    ],
    [
      'pending triesLeft above tries',
      mutate((s) => {
        s.pending.triesLeft = 4;
      }),
    ],
    [
      'pending tries zero',
      mutate((s) => {
        s.pending.tries = 0;
        s.pending.triesLeft = 0;
      }),
    ],
    [
      'pending tries fractional',
      mutate((s) => {
        s.pending.tries = 2.5;
      }),
    ],
    [
      'pending stagedAt not a date',
      mutate((s) => {
        s.pending.stagedAt = 'yesterday';
      }),
    ],
    [
      'failed not a list',
      mutate((s) => {
        s.failed = sha(3);
      }),
    ],
    [
      'failed with a duplicate',
      mutate((s) => {
        s.failed = [sha(3), sha(3)];
      }),
    ],
    [
      'failed too long',
      mutate((s) => {
        s.failed = Array.from({ length: FAILED_LIMIT + 1 }, (_, i) => sha(100 + i));
      }),
    ],
    [
      'previousGood too long',
      mutate((s) => {
        s.previousGood = Array.from({ length: PREVIOUS_GOOD_LIMIT + 1 }, (_, i) => sha(100 + i));
      }),
    ],
    [
      'previousGood contains good',
      mutate((s) => {
        s.previousGood = [sha(1)];
      }),
    ],
    [
      'staged key not a sha',
      mutate((s) => {
        s.staged.abc = s.staged[sha(1)];
      }),
    ],
    [
      'staged kernel path escapes',
      mutate((s) => {
        s.staged[sha(1)].kernel = '../../etc/passwd';
      }),
    ],
    [
      'staged kernel without kernelDir',
      mutate((s) => {
        s.staged[sha(1)].kernelDir = null;
      }),
    ],
    [
      'staged kernelDir without kernel',
      mutate((s) => {
        s.staged[sha(1)].kernel = null;
      }),
    ],
    [
      'staged options with a newline',
      mutate((s) => {
        s.staged[sha(1)].options = 'a\nb';
      }),
    ],
    [
      'staged missing stagedAt',
      mutate((s) => {
        delete s.staged[sha(1)].stagedAt;
      }),
    ],
    [
      'staged not an object',
      mutate((s) => {
        s.staged = [];
      }),
    ],
  ];
  for (const [name, text] of cases) {
    fs.writeFileSync(statePath(home), text);
    const err = (() => {
      try {
        readState(home);
        return null;
      } catch (e) {
        return e;
      }
    })();
    t.type(err, StateError, name);
    t.equal((err as StateError).code, 'ESTATE', `${name}: code`);
    t.match((err as Error).message, statePath(home), `${name}: names the file`);
    t.match((err as Error).message, /repair it, or move it away/, `${name}: says the fix`);
    t.notMatch((err as Error).message, /\n/, `${name}: one line`);
  }
  t.throws(() => parseState('{', 'X'), StateError);
});

t.test('writeState needs the lock, checks it is still ours, refuses inconsistent state', async (t) => {
  const home = tempDir(t, 'state');
  const lock = await acquireLock(home, {});
  t.throws(() => writeState(lock, { ...sample(), good: 'nope' } as DeployState), StateError);
  t.equal(fs.existsSync(statePath(home)), false, 'nothing written');
  fs.rmSync(lockPath(home));
  t.throws(() => writeState(lock, sample()), LockedError, 'lock gone: refused');
  t.equal(fs.existsSync(statePath(home)), false, 'nothing written');
  releaseLock(lock);
});

t.test('withGood and withFailed keep history newest first and bounded', async (t) => {
  let s = emptyState();
  s = withGood(s, sha(1));
  t.equal(s.good, sha(1));
  t.same(s.previousGood, []);
  for (let i = 2; i <= PREVIOUS_GOOD_LIMIT + 5; i++) s = withGood(s, sha(i));
  t.equal(s.good, sha(PREVIOUS_GOOD_LIMIT + 5));
  t.equal(s.previousGood.length, PREVIOUS_GOOD_LIMIT);
  t.equal(s.previousGood[0], sha(PREVIOUS_GOOD_LIMIT + 4));
  t.notOk(s.previousGood.includes(s.good as string));
  const back = withGood(s, sha(PREVIOUS_GOOD_LIMIT + 2));
  t.equal(back.good, sha(PREVIOUS_GOOD_LIMIT + 2));
  t.notOk(back.previousGood.includes(sha(PREVIOUS_GOOD_LIMIT + 2)), 'a revision is never both good and previous good');
  t.equal(back.previousGood[0], sha(PREVIOUS_GOOD_LIMIT + 5));

  const p = { ...sample(), failed: [] as string[] };
  const marked = withGood(p, sha(2));
  t.equal(marked.pending, null, 'marking the pending revision good ends its trial');
  t.equal(withGood(p, sha(1)), p, 'marking the good revision good is a no-op');

  let f = withFailed(sample(), sha(2));
  t.same(f.failed, [sha(2), sha(3)]);
  t.equal(f.pending, null, 'a failed pending revision is no longer pending');
  for (let i = 0; i < FAILED_LIMIT + 3; i++) f = withFailed(f, sha(200 + i));
  t.equal(f.failed.length, FAILED_LIMIT);
  t.equal(f.failed[0], sha(200 + FAILED_LIMIT + 2));
  t.same(withGood(withFailed(emptyState(), sha(9)), sha(9)).failed, [], 'a revision marked good leaves failed');
});

t.test('retention keeps pending, good, booted and the newest previous good, and their kernel dirs', async (t) => {
  const s = sample();
  const r = planRetention(s);
  t.same([...r.revisions].sort(), [sha(1), sha(2), sha(4)]);
  t.same([...r.kernelDirs].sort(), [sha(1), sha(2), sha(4)]);
  t.same(Object.keys(withPrunedStaged(s).staged).sort(), [sha(1), sha(2), sha(4)]);
  const inherit = { ...s, staged: { ...s.staged, [sha(2)]: { ...staged(sha(1)) } } };
  t.same([...planRetention(inherit).kernelDirs].sort(), [sha(1), sha(4)], 'a revision keeping another kernel shares its dir');
  t.same(planRetention(emptyState()).kernelDirs.size, 0);
});

t.test('last-fetch record: separate file, round trip, damage is a StateError, never touches state', async (t) => {
  const home = tempDir(t, 'state');
  t.equal(readLastFetch(home), null);
  writeLastFetch(home, { at: T0, result: 'failed', revision: null, bytes: 1234, error: { code: 'ENETWORK', message: 'timed out' } });
  t.same(readLastFetch(home), {
    version: 1,
    at: T0,
    result: 'failed',
    revision: null,
    bytes: 1234,
    error: { code: 'ENETWORK', message: 'timed out' },
  });
  t.equal(fs.existsSync(statePath(home)), false, 'state.json untouched');
  fs.writeFileSync(lastFetchPath(home), '{"version":1,"result":"exploded"}');
  t.throws(() => readLastFetch(home), StateError);
  t.throws(() => writeLastFetch(home, { at: 'never', result: 'staged', revision: null, bytes: null, error: null }), StateError);
});
