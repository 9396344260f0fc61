/**
 * The channel's formats and pure decisions (lib/channel, lib/publish/publish-plan.ts): the
 * signed manifest (signature, namespace, unlisted key, tampering, strict parsing), freshness
 * (rollback, reused version, expiry against a clock floor), the rollout bucket and ramp over
 * 1,000 machine ids (the share taking a release inside the binomial 95% band), the bundle
 * planner against an independent oracle over every machine position of every chain length
 * up to 40 under several roll-up periods, and the publisher's chain and layout rules.
 */
// needs: none
import t from 'tap';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { parseAllowedSigners } from '../lib/trust/allowed-signers.js';
import type { SigningKey } from '../lib/trust/ssh-signature.js';
import {
  type ChannelManifest,
  type ManifestBundle,
  CHANNEL_NAMESPACE,
  isChannelPath,
  makeManifest,
  parseManifestUnverified,
  signManifest,
  splitManifest,
  verifyManifest,
} from '../lib/channel/channel-manifest.js';
import { checkFreshness } from '../lib/channel/channel-freshness.js';
import { decideRollout, rampPercent, rolloutBucket } from '../lib/channel/channel-rollout.js';
import { planBundles } from '../lib/channel/bundle-plan.js';
import { parseBundleHeader, renderBundleHeader } from '../lib/channel/bundle-header.js';
import { renderBundleList } from '../lib/channel/bundle-list.js';
import { formatDuration, parseDuration, parseIsoTime } from '../lib/channel/channel-time.js';
import { layoutBundles, nextChain, reconcileBundles, type PublishedBundle } from '../lib/publish/publish-plan.js';

function sshString(b: Buffer | string): Buffer {
  const data = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

function newKey(): { key: SigningKey; line: (ns?: string) => string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const x = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(x)]);
  return {
    key: { publicKey: blob, privateKey, comment: 'test' },
    line: (ns = `git,${CHANNEL_NAMESPACE}`) => `releases@example.com namespaces="${ns}" ssh-ed25519 ${blob.toString('base64')}`,
  };
}

const sha = (n: number | string) => (typeof n === 'number' ? n.toString(16).padStart(40, '0') : n);
const T0 = Date.parse('2026-12-01T00:00:00Z');

function manifest(over: Partial<ChannelManifest> = {}): ChannelManifest {
  const bundles: ManifestBundle[] = [
    { id: 'base-1', uri: 'bundles/base-1.bundle', kind: 'base', tip: sha(1), prerequisites: [], size: 1000, sha256: 'a'.repeat(64), creationToken: 1 },
    {
      id: 'inc-2',
      uri: 'bundles/inc-2.bundle',
      kind: 'incremental',
      tip: sha(2),
      prerequisites: [sha(1)],
      size: 10,
      sha256: 'b'.repeat(64),
      creationToken: 3000000002,
    },
  ];
  return {
    ...makeManifest({ channel: 'master', version: 5, tip: sha(2), pin: false, createdMs: T0, expiresMs: T0 + 7 * 86400e3, rollout: null, bundles }),
    ...over,
  };
}

t.test('durations and times', async (t) => {
  t.equal(parseDuration('90s'), 90);
  t.equal(parseDuration('12h'), 43200);
  t.equal(parseDuration('7d'), 604800);
  for (const bad of ['', '0s', '7', 'd', '1.5h', '-1d', '7 days']) t.equal(parseDuration(bad), null, `'${bad}' refused`);
  t.equal(formatDuration(604800), '1w');
  t.equal(formatDuration(5400), '90m');
  t.equal(parseIsoTime('2026-12-03T08:00:00Z'), Date.UTC(2026, 11, 3, 8));
  t.equal(parseIsoTime('2026-12-03T09:00:00+01:00'), Date.UTC(2026, 11, 3, 8));
  t.equal(parseIsoTime('2026-12-03 08:00'), null, 'a time without a zone is refused');
});

t.test('a signed manifest verifies; every other kind is refused with its reason', async (t) => {
  const k = newKey();
  const signers = parseAllowedSigners(`${k.line()}\n`, 'allowed-signers');
  const text = Buffer.from(signManifest(manifest(), k.key));
  const v = verifyManifest(text, signers, 'URL');
  t.equal(v.manifest.tip, sha(2));
  t.equal(v.createdMs, T0);
  t.same(v.principals, ['releases@example.com']);
  t.equal(splitManifest(text).payload.toString().endsWith('}\n'), true, 'the signed part is the JSON');

  const refuse = (buf: Buffer, s = signers) => {
    try {
      verifyManifest(buf, s, 'URL');
      return 'accepted';
    } catch (e) {
      const err = e as { code: string; data: { why: string }; message: string };
      t.equal(err.code, 'ETRUST');
      t.notMatch(err.message, /\n/, 'one line');
      return err.data.why;
    }
  };
  t.equal(refuse(Buffer.from(text.toString().replace('"version": 5', '"version": 6'))), 'bad-signature', 'one changed field');
  t.equal(refuse(splitManifest(text).payload), 'unsigned');
  const other = newKey();
  t.equal(refuse(Buffer.from(signManifest(manifest(), other.key))), 'unlisted-key', 'a key the file does not list');
  t.equal(refuse(text, parseAllowedSigners(`${k.line('git')}\n`, 'f')), 'namespace-not-allowed', 'a key listed for git commits only');
  t.equal(
    refuse(Buffer.from(splitManifest(text).payload.toString() + splitManifest(Buffer.from(signManifest(manifest({ version: 9 }), k.key))).signature)),
    'bad-signature',
    'a signature of another manifest',
  );
  t.equal(refuse(Buffer.from(signManifest({ ...manifest(), tip: sha(7) }, k.key))), 'malformed-manifest', 'a tip no bundle brings');
  t.equal(
    refuse(Buffer.from(signManifest({ ...manifest(), format: 'gitroot-channel 2' as 'gitroot-channel 1' }, k.key))),
    'malformed-manifest',
    'a newer format',
  );
  const evil = manifest();
  evil.bundles[1] = { ...evil.bundles[1]!, uri: '../../etc/shadow' };
  t.equal(refuse(Buffer.from(signManifest(evil, k.key))), 'malformed-manifest', 'a bundle path outside the channel');
  t.equal(parseManifestUnverified(text, 'f').version, 5);
});

t.test('bundle paths must stay inside the channel', async (t) => {
  for (const ok of ['bundles/a.bundle', 'a.bundle', 'x/y/z.bundle']) t.ok(isChannelPath(ok), ok);
  for (const bad of ['', '/etc/passwd', '../x', 'a/../b', 'https://evil/x', 'file:///x', 'a//b', 'a\\b', 'a?x', 'a b', './a']) t.notOk(isChannelPath(bad), bad);
});

t.test('freshness: channel, rollback, reused version, expiry against the clock floor', async (t) => {
  const base = { channel: 'master', version: 5, payloadSha256: 'p5', createdMs: T0, expiresMs: T0 + 86400e3, follows: 'master', seen: null, nowMs: T0 + 1000 };
  t.match(checkFreshness(base), { ok: true, newer: true, floorMs: T0 });
  t.match(checkFreshness({ ...base, follows: 'stable' }), { ok: false, why: 'wrong-channel' });
  const seen = { version: 7, payloadSha256: 'p7', floorMs: T0 + 3600e3 };
  t.match(checkFreshness({ ...base, seen }), { ok: false, why: 'rollback', reason: /older than version 7.*rollback attack/ });
  t.match(checkFreshness({ ...base, version: 7, payloadSha256: 'p7', seen }), { ok: true, newer: false }, 'the same manifest again');
  t.match(checkFreshness({ ...base, version: 7, payloadSha256: 'other', seen }), { ok: false, why: 'version-reused' });
  t.match(checkFreshness({ ...base, version: 8, seen, nowMs: T0 + 2 * 86400e3 }), { ok: false, why: 'expired', reason: /freeze attack/ });
  // A clock reset to 1970 does not revive an expired manifest: the floor holds.
  const floorSeen = { version: 7, payloadSha256: 'p7', floorMs: T0 + 86400e3 + 1 };
  t.match(checkFreshness({ ...base, version: 8, seen: floorSeen, nowMs: 0 }), { ok: false, why: 'expired' });
  t.match(checkFreshness({ ...base, version: 8, seen: { ...floorSeen, floorMs: T0 }, nowMs: 0 }), { ok: true, effectiveNowMs: T0 });
  // The floor only grows.
  const r = checkFreshness({ ...base, version: 8, createdMs: T0 - 5000, seen: { ...floorSeen, floorMs: T0 } });
  t.match(r, { ok: true, floorMs: T0 });
});

t.test('rollout: buckets are uniform and stable; 0%, 50%, 100% over 1,000 machine ids', async (t) => {
  const ids = Array.from({ length: 1000 }, () => randomBytes(16).toString('hex'));
  const ramp = { start: '2026-12-01T00:00:00Z', durationSeconds: 100 * 3600, fromPercent: 0 };
  const takes = (atMs: number) =>
    ids.filter((id) => decideRollout({ ramp, pin: false, tip: sha(9), held: false, signedMs: atMs, fleetId: id, channel: 'master' }).take).length;
  t.equal(takes(T0 - 1), 0, 'before the start: none');
  t.equal(takes(T0), 0, 'at the start with fromPercent 0: none');
  const half = takes(T0 + 50 * 3600e3);
  // Binomial(1000, 0.5): 95% of outcomes within 500 +- 1.96 * sqrt(250) = 500 +- 31.
  t.ok(half >= 469 && half <= 531, `50%: ${half} of 1000 inside the binomial 95% band [469, 531]`);
  const fifth = takes(T0 + 20 * 3600e3);
  t.ok(fifth >= 175 && fifth <= 225, `20%: ${fifth} of 1000 inside [175, 225]`);
  t.equal(takes(T0 + 100 * 3600e3), 1000, 'at the end: all');
  t.equal(takes(T0 + 1e12), 1000, 'long after: all');
  t.equal(rolloutBucket(ids[0]!, 'master'), rolloutBucket(ids[0]!, 'master'), 'stable');
  t.not(rolloutBucket(ids[0]!, 'master'), rolloutBucket(ids[0]!, 'beta'), 'another channel, another bucket');
  t.equal(rampPercent({ ...ramp, fromPercent: 10 }, T0), 10);
  t.equal(rampPercent({ ...ramp, fromPercent: 10 }, T0 + 50 * 3600e3), 55);
  const v = decideRollout({ ramp, pin: false, tip: sha(9), held: false, signedMs: T0, fleetId: ids[0]!, channel: 'master' });
  t.match(v, { take: false, reason: /^release 000000000000 waits for the rollout: this machine at \d+%, the ramp at 0%$/ });
  t.match(
    decideRollout({ ramp, pin: true, tip: sha(9), held: false, signedMs: T0, fleetId: ids[0]!, channel: 'master' }),
    { take: true },
    'a pin goes to everyone',
  );
  t.match(
    decideRollout({ ramp, pin: false, tip: sha(9), held: true, signedMs: T0, fleetId: ids[0]!, channel: 'master' }),
    { take: true },
    'a machine that has it keeps it',
  );
});

/** An independent oracle: on a linear chain, the cheapest (bytes, files) way from position `from` to `to`. */
function oracle(bundles: ManifestBundle[], pos: Map<string, number>, from: number, to: number): { bytes: number; files: number } | null {
  const best = new Map<number, { bytes: number; files: number }>([[from, { bytes: 0, files: 0 }]]);
  const open = [from];
  const cmp = (a: { bytes: number; files: number }, b: { bytes: number; files: number }) => a.bytes - b.bytes || a.files - b.files;
  let answer: { bytes: number; files: number } | null = null;
  while (open.length > 0) {
    open.sort((a, b) => cmp(best.get(a)!, best.get(b)!));
    const p = open.shift()!;
    const cost = best.get(p)!;
    if (p >= to) {
      if (answer === null || cmp(cost, answer) < 0) answer = cost;
      continue;
    }
    for (const b of bundles) {
      const need = b.prerequisites.length === 0 ? 0 : Math.max(...b.prerequisites.map((q) => pos.get(q)!));
      const tip = pos.get(b.tip)!;
      if (need > p || tip <= p) continue;
      const next = { bytes: cost.bytes + b.size, files: cost.files + 1 };
      const seen = best.get(tip);
      if (seen === undefined || cmp(next, seen) < 0) {
        best.set(tip, next);
        open.push(tip);
      }
    }
  }
  return answer;
}

t.test('the bundle planner: valid, cheapest and bounded, for every position of chains up to 40', async (t) => {
  let cases = 0;
  for (const [R, K] of [
    [2, 2],
    [3, 2],
    [3, 3],
    [5, 4],
    [10, 10],
  ] as const) {
    for (let n = 1; n <= 40; n++) {
      const chain = Array.from({ length: n }, (_, i) => sha(i + 1));
      const pos = new Map(chain.map((c, i) => [c, i + 1]));
      const bundles: (ManifestBundle & { release: number })[] = layoutBundles(chain, { rollupEvery: R, rollupsKept: K }).map((s, i) => ({
        ...s,
        id: `b${i}`,
        uri: `b${i}.bundle`,
        sha256: '0'.repeat(64),
        creationToken: i,
        // A release adds 100 bytes; a bundle costs what it covers plus a header.
        size: 50 + 100 * (s.prerequisites.length === 0 ? s.release : s.release - pos.get(s.prerequisites[0]!)!),
      }));
      for (let h = 0; h <= n; h++) {
        const has = new Set(chain.filter((_, i) => i + 1 <= h && bundles.some((b) => b.tip === chain[i] || b.prerequisites.includes(chain[i]!))));
        const plan = planBundles(bundles, has, chain[n - 1]!);
        cases++;
        if (h === n) {
          if (plan.action !== 'up-to-date') t.fail(`R=${R} K=${K} n=${n} h=${h}: not up to date`);
          continue;
        }
        // What the machine really has: everything up to h (its history), listed or not.
        const realFrom = h;
        const want = oracle(bundles, pos, realFrom, n);
        if (plan.action !== 'download') {
          // Only when the commits it has are all unlisted is it allowed to know less than the oracle.
          t.fail(`R=${R} K=${K} n=${n} h=${h}: ${plan.action}`);
          continue;
        }
        // Valid: each bundle applies to what the machine has by then.
        let at = h;
        for (const b of plan.bundles) {
          const need = b.prerequisites.length === 0 ? 0 : Math.max(...b.prerequisites.map((q) => pos.get(q)!));
          if (need > at) t.fail(`R=${R} K=${K} n=${n} h=${h}: ${b.id} applied without its prerequisite`);
          at = Math.max(at, pos.get(b.tip)!);
        }
        if (at !== n) t.fail(`R=${R} K=${K} n=${n} h=${h}: the plan ends at ${at}`);
        // Cheapest, unless the machine's own position is not a listed commit (then no worse than from the nearest listed one below).
        const listedBelow = Math.max(0, ...[...has].map((c) => pos.get(c)!));
        const fromListed = oracle(bundles, pos, listedBelow, n)!;
        if (plan.bytes > fromListed.bytes || (want !== null && plan.bytes < want.bytes))
          t.fail(`R=${R} K=${K} n=${n} h=${h}: ${plan.bytes} bytes vs oracle ${want?.bytes}`);
        if (plan.bundles.length > K + 2 * R + 1) t.fail(`R=${R} K=${K} n=${n} h=${h}: ${plan.bundles.length} files`);
        if (h === n - 1 && h >= 1 && (plan.bundles.length !== 1 || plan.bundles[0]!.kind !== 'incremental'))
          t.fail(`R=${R} K=${K} n=${n}: one behind is not one incremental`);
        if (h >= 1 && plan.bundles.some((b) => b.kind === 'base') && bundles.find((b) => b.kind === 'base')!.release <= h) {
          t.fail(`R=${R} K=${K} n=${n} h=${h}: a machine newer than the base downloads the base`);
        }
      }
    }
  }
  t.ok(cases > 1000, `${cases} cases`);
  const none = planBundles(
    [{ id: 'x', uri: 'x', kind: 'incremental', tip: sha(2), prerequisites: [sha(1)], size: 1, sha256: '0'.repeat(64), creationToken: 1 }],
    new Set(),
    sha(2),
  );
  t.match(none, { action: 'unreachable', reason: /full bundle/ });
});

t.test('the publisher: chain steps and the listed layout', async (t) => {
  const anc = (pairs: Record<string, string[]>) => (a: string, b: string) => a === b || (pairs[b] ?? []).includes(a);
  // history: 1 <- 2 <- 3, and 4 on top of 2 (a fix beside the bad 3), 9 unrelated
  const isAncestor = anc({ [sha(2)]: [sha(1)], [sha(3)]: [sha(1), sha(2)], [sha(4)]: [sha(1), sha(2)] });
  const chain = [sha(1), sha(2), sha(3)];
  const step = (tip: string, o: { pin?: boolean; unpin?: boolean; pinnedNow?: boolean } = {}) =>
    nextChain({ chain, tip, pin: o.pin ?? false, unpin: o.unpin ?? false, pinnedNow: o.pinnedNow ?? false, isAncestor });
  t.match(step(sha(3)), { ok: true, newRelease: false, chain });
  t.match(step(sha(4)), { ok: false, reason: /does not descend.*--pin/ });
  t.match(step(sha(2), { pin: true }), { ok: true, pinned: true, chain: [sha(1), sha(2)], newRelease: false }, 'a halt cuts the chain back');
  t.match(step(sha(4), { pin: true }), { ok: true, pinned: true, chain: [sha(1), sha(2), sha(4)] });
  t.match(step(sha(9), { pin: true }), { ok: true, chain: [sha(9)] });
  t.match(step(sha(3), { pinnedNow: true }), { ok: true, pinned: true }, 're-signing a pinned channel keeps the pin');
  t.match(nextChain({ chain: [sha(1), sha(2)], tip: sha(3), pin: false, unpin: false, pinnedNow: true, isAncestor }), { ok: false, reason: /--unpin/ });
  t.match(nextChain({ chain: [sha(1), sha(2)], tip: sha(3), pin: false, unpin: true, pinnedNow: true, isAncestor }), {
    ok: true,
    pinned: false,
    newRelease: true,
  });

  const c = Array.from({ length: 23 }, (_, i) => sha(i + 1));
  const kinds = (n: number) => layoutBundles(c.slice(0, n), { rollupEvery: 5, rollupsKept: 2 }).map((b) => `${b.kind}:${b.release}`);
  t.same(kinds(1), ['base:1']);
  t.same(kinds(3), ['base:1', 'incremental:2', 'incremental:3']);
  t.same(kinds(6), ['base:1', 'rollup:6', ...[2, 3, 4, 5, 6].map((j) => `incremental:${j}`)]);
  t.same(kinds(12), ['base:1', 'rollup:6', 'rollup:11', ...[7, 8, 9, 10, 11, 12].map((j) => `incremental:${j}`)]);
  t.same(kinds(16), ['base:6', 'rollup:11', 'rollup:16', ...[12, 13, 14, 15, 16].map((j) => `incremental:${j}`)], 'the base moves up when a roll-up falls off');
  for (let n = 1; n <= 23; n++) {
    for (const b of layoutBundles(c.slice(0, n), { rollupEvery: 5, rollupsKept: 2 })) {
      for (const p of b.prerequisites) t.ok(c.indexOf(p) < c.indexOf(b.tip), 'prerequisites are older releases');
    }
  }
  // Reconcile: reuse what exists, retire what is not needed, delete after the grace period.
  const mk = (s: ReturnType<typeof layoutBundles>[number], id: string, retiredAt: string | null = null): PublishedBundle => ({
    ...s,
    id,
    uri: `${id}.bundle`,
    size: 1,
    sha256: '0'.repeat(64),
    creationToken: 1,
    createdAt: '2026-01-01T00:00:00Z',
    retiredAt,
  });
  const old = layoutBundles(c.slice(0, 15), { rollupEvery: 5, rollupsKept: 2 }).map((s, i) => mk(s, `o${i}`));
  const gone = mk({ kind: 'incremental', release: 1, tip: sha(99), prerequisites: [sha(98)] }, 'gone', '2026-01-01T00:00:00Z');
  const fresh = mk({ kind: 'incremental', release: 1, tip: sha(97), prerequisites: [sha(96)] }, 'fresh', '2026-12-01T00:00:00Z');
  const r = reconcileBundles([...old, gone, fresh], layoutBundles(c.slice(0, 16), { rollupEvery: 5, rollupsKept: 2 }), T0 + 3600e3, 7 * 86400e3);
  t.same(
    r.create.map((s) => `${s.kind}:${s.release}`),
    ['base:6', 'rollup:16', 'incremental:16'],
  );
  t.same(
    r.retire.map((b) => `${b.kind}:${b.release}`),
    ['base:1', 'rollup:6', ...[7, 8, 9, 10, 11].map((j) => `incremental:${j}`)],
  );
  t.same(
    r.remove.map((b) => b.id),
    ['gone'],
  );
  t.same(
    r.keepRetired.map((b) => b.id),
    ['fresh'],
  );
});

t.test('bundle headers and the bundle list', async (t) => {
  const head = Buffer.from(renderBundleHeader([sha(1)], sha(2), 'refs/heads/master') + 'PACK....');
  t.same(parseBundleHeader(head), {
    version: 2,
    prerequisites: [sha(1)],
    refs: [{ oid: sha(2), name: 'refs/heads/master' }],
    packOffset: head.indexOf('PACK'),
  });
  t.match(parseBundleHeader(Buffer.from('<html>\n')), /not '# v2 git bundle'/);
  t.match(parseBundleHeader(Buffer.from('# v2 git bundle\n' + sha(1) + ' refs/heads/x\n')), /not terminated/);
  t.match(parseBundleHeader(Buffer.from('# v3 git bundle\n@object-format=sha256\n\n')), /sha256/);
  const list = renderBundleList([
    { id: 'b', uri: 'bundles/b.bundle', creationToken: 2 },
    { id: 'a', uri: 'bundles/a.bundle', creationToken: 1 },
  ]);
  t.equal(
    list,
    '[bundle]\n\tversion = 1\n\tmode = all\n\theuristic = creationToken\n[bundle "a"]\n\turi = bundles/a.bundle\n\tcreationToken = 1\n[bundle "b"]\n\turi = bundles/b.bundle\n\tcreationToken = 2\n',
  );
});
