/**
 * Which directories of the running root a live update gives fresh overlay views
 * (lib/live/live-views.ts planViews), pure: the parent of every change, only the topmost of
 * nested ones; none where another filesystem is mounted or a writable layer hides the lower;
 * lifted to top-level directories over the limit; refused when / itself would need one or a view
 * would hide a mount; overlayfs option escaping.
 */
// needs: none
import t from 'tap';
import { escapeLayer, planViews } from '../lib/live/live-views.js';
import type { LiveChange } from '../lib/live/live-diff.js';

const ch = (path: string): LiveChange => ({ path, change: 'modified', before: 'file', after: 'file', nested: false });
const plan = (paths: string[], o: { mountPoints?: string[]; hidden?: string[]; limit?: number } = {}) =>
  planViews({
    changes: paths.map(ch),
    mountPoints: o.mountPoints ?? [],
    hiddenByUpper: (p) => (o.hidden ?? []).includes(p),
    limit: o.limit,
  });

t.test('planViews', async (t) => {
  t.same(plan([]), { ok: true, points: [], dropped: [] });
  t.same(plan(['usr/bin/a', 'usr/bin/b', 'etc/x']), { ok: true, points: ['etc', 'usr/bin'], dropped: [] }, 'parents, once each');
  t.same(plan(['usr/share/doc/a/b', 'usr/share/x']), { ok: true, points: ['usr/share'], dropped: [] }, 'the topmost of nested points');
  t.same(plan(['', 'usr/bin/a']), { ok: true, points: ['usr/bin'], dropped: [] }, "the root's own attributes need no view");
  t.same(plan(['var/lib/x', 'usr/bin/a'], { mountPoints: ['var'] }), {
    ok: true,
    points: ['usr/bin'],
    dropped: [{ path: 'var/lib', why: 'another filesystem is mounted on /var' }],
  });
  t.same(plan(['opt/app/x'], { hidden: ['opt/app'] }).ok && plan(['opt/app/x'], { hidden: ['opt/app'] }), {
    ok: true,
    points: [],
    dropped: [{ path: 'opt/app', why: 'the writable layer hides it (removed or replaced on this machine)' }],
  });
  const many = Array.from({ length: 5 }, (_, i) => `usr/lib/p${i}/f`).concat(['etc/a/f']);
  t.same(plan(many, { limit: 4 }), { ok: true, points: ['etc', 'usr'], dropped: [] }, 'over the limit: lifted to top-level directories');
  const root = plan(['README']);
  t.equal(root.ok, false);
  t.match(!root.ok && root.reason, /entries of \/ change/);
  const hides = plan(['usr/bin/a', 'var/x'], { mountPoints: ['var/cache'] });
  t.equal(hides.ok, false);
  t.match(!hides.ok && hides.reason, /a fresh view of \/var would hide the mount at \/var\/cache/);
});

t.test('escapeLayer', async (t) => {
  t.equal(escapeLayer('/run/gitroot/lower/usr'), '/run/gitroot/lower/usr');
  t.equal(escapeLayer('/a,b:c\\d'), '/a\\,b\\:c\\\\d');
});
