/**
 * `status` data and rendering (lib/deploy/deploy-status.ts): a fresh machine, a machine with
 * good, pending, failed and a last fetch, the JSON shape scripts read, a damaged
 * a revision running live (booted A, running B), a damaged
 * last-fetch record as a warning (it never affects booting), a damaged state as an error.
 */
// needs: none
import t from 'tap';
import fs from 'node:fs';
import { StateError } from '../lib/errors/errors.js';
import { type DeployState, writeState } from '../lib/home/home-state.js';
import { lastFetchPath, statePath } from '../lib/home/home-layout.js';
import { writeLastFetch } from '../lib/home/last-fetch.js';
import { withLock } from '../lib/home/home-lock.js';
import { formatStatus, readStatus } from '../lib/deploy/deploy-status.js';
import { tempDir } from './helpers/temp-dir.js';

const G = '1'.repeat(40);
const P = '2'.repeat(40);
const F = '3'.repeat(40);
const T0 = '2026-05-06T07:08:09.000Z';
const opts = { remote: 'https://updates.example.org/kiosk.git', fetchRevision: 'master' };

t.test('a fresh machine', async (t) => {
  const home = tempDir(t, 'status');
  const s = readStatus(home, { remote: null, fetchRevision: 'master' });
  t.same(s, {
    booted: null,
    running: null,
    live: null,
    good: null,
    pending: null,
    failed: [],
    remote: null,
    fetchRevision: 'master',
    lastFetch: null,
    previousGood: [],
    kernels: {},
    tags: {},
    warnings: [],
  });
  const text = formatStatus(s);
  t.match(text, /^booted +-$/m);
  t.match(text, /^last fetch +never$/m);
  t.ok(text.endsWith('\n'));
});

t.test('good, pending, failed and the last fetch; JSON shape and table', async (t) => {
  const home = tempDir(t, 'status');
  const state: DeployState = {
    version: 1,
    good: G,
    booted: G,
    failed: [F],
    previousGood: ['4'.repeat(40)],
    pending: { revision: P, triesLeft: 2, tries: 3, stagedAt: T0 },
    staged: {
      [G]: { kernelDir: G, kernel: 'vmlinuz', initrd: 'initrd.img', kernelVersion: '6.1.0-9-amd64', kernelSource: null, options: '', stagedAt: T0 },
      [P]: { kernelDir: P, kernel: 'vmlinuz', initrd: 'initrd.img', kernelVersion: '6.1.0-10-amd64', kernelSource: null, options: '', stagedAt: T0 },
    },
  };
  await withLock(home, {}, (lock) => writeState(lock, state));
  writeLastFetch(home, { at: T0, result: 'staged', revision: P, bytes: 123456, error: null });
  const s = readStatus(home, opts);
  const json = JSON.parse(JSON.stringify(s));
  t.match(
    json,
    {
      booted: G,
      good: G,
      pending: { revision: P, triesLeft: 2 },
      failed: [F],
      remote: opts.remote,
      fetchRevision: 'master',
      lastFetch: { at: T0, result: 'staged', revision: P, bytes: 123456, error: null },
    },
    'the JSON shape of gitroot status --json',
  );
  t.same(s.kernels, { [G]: { version: '6.1.0-9-amd64', kernelDir: G }, [P]: { version: '6.1.0-10-amd64', kernelDir: P } });
  const text = formatStatus(s);
  t.match(text, new RegExp(`^booted +${G} {2}\\(good\\) {2}kernel 6.1.0-9-amd64$`, 'm'));
  t.match(text, new RegExp(`^pending +${P} {2}\\(2 of 3 tries left, staged ${T0}\\) {2}kernel 6.1.0-10-amd64$`, 'm'));
  t.match(text, new RegExp(`^failed +${F}$`, 'm'));
  t.match(text, /^remote +https:\/\/updates.example.org\/kiosk.git$/m);
  t.match(text, new RegExp(`^last fetch +2026-05-06 07:08:09Z {2}staged ${P}, 123456 bytes$`, 'm'));
  t.notMatch(text, /^running/m, 'nothing runs live: no running line');

  // P applied live (gitroot apply-live: state.json's booted is P, RUN/live.json says G booted).
  await withLock(home, {}, (lock) => writeState(lock, { ...state, booted: P, pending: null }));
  const live = readStatus(home, { ...opts, live: { booted: G, running: P, since: T0, rounds: 1 } });
  t.same([live.booted, live.running, live.live?.rounds], [G, P, 1], 'JSON: booted G, running P live');
  const liveText = formatStatus(live);
  t.match(liveText, new RegExp(`^booted +${G} {2}\\(good\\) {2}kernel 6.1.0-9-amd64$`, 'm'));
  t.match(liveText, new RegExp(`^running +${P} {2}kernel 6.1.0-10-amd64 {2}live since ${T0}$`, 'm'));
  const back = formatStatus(readStatus(home, { ...opts, live: { booted: G, running: G, since: T0, rounds: 2 } }));
  t.notMatch(back, /^running/m, 'back on the booted revision: no running line');
  const widths = new Set(
    text
      .trimEnd()
      .split('\n')
      .map((l) => l.search(/ {2}\S/)),
  );
  t.equal(widths.size, 1, 'one column width');

  writeLastFetch(home, { at: T0, result: 'failed', revision: null, bytes: null, error: { code: 'ENETWORK', message: 'connection timed out' } });
  t.match(formatStatus(readStatus(home, opts)), /^last fetch +2026-05-06 07:08:09Z {2}failed: connection timed out$/m);
});

t.test('a damaged last-fetch record is a warning; a damaged state an error', async (t) => {
  const home = tempDir(t, 'status');
  fs.writeFileSync(lastFetchPath(home), '{ nope');
  const s = readStatus(home, opts);
  t.equal(s.lastFetch, null);
  t.match(s.warnings[0], /last-fetch.json is not a valid fetch record/);
  t.match(formatStatus(s), /^warning +.*last-fetch.json/m);
  fs.writeFileSync(statePath(home), '{ nope');
  t.throws(() => readStatus(home, opts), StateError);
});
