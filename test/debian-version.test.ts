/**
 * Debian version ordering (lib/deploy/debian-version.ts) checked against the real
 * `dpkg --compare-versions` on kernel version strings and dpkg's own corner cases.
 */
// needs: none
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { compareDebianVersions } from '../lib/deploy/debian-version.js';

const VERSIONS = [
  '6.1.0-9-amd64',
  '6.1.0-10-amd64',
  '6.1.0-10-cloud-amd64',
  '6.1.0-18-amd64',
  '6.1.0-2-amd64',
  '5.10.0-28-amd64',
  '6.12.9+bpo-amd64',
  '6.12.9-amd64',
  '6.1.0-rc1-amd64',
  '6.1.0~rc1-amd64',
  '6.1.0',
  '6.1',
  '6.1.0-0',
  '6.1.0-10',
  '1:6.1.0-1',
  '0:6.1.0-1',
  '6.1.0a-1',
  '6.1.0+b1-1',
  '6.1.0.1-1',
  '6.10-1',
  '6.9-1',
  '6.01-1',
  '6.1-1~bpo12+1',
  '6.1-1',
  '6.1-1+deb12u1',
  '1.0~~',
  '1.0~~a',
  '1.0~',
  '1.0',
  '1.0a',
  '1.0+',
  '1.0.',
  '1.0-1',
  '1.0-1~',
];

/** dpkg's verdict (-1, 0, 1) on every pair, from one shell running dpkg --compare-versions. */
function dpkgCmpAll(pairs: [string, string][]): number[] {
  const q = (v: string): string => `'${v}'`;
  const script = pairs
    .map(
      ([a, b]) => `if dpkg --compare-versions ${q(a)} lt ${q(b)}; then echo -1; elif dpkg --compare-versions ${q(a)} eq ${q(b)}; then echo 0; else echo 1; fi`,
    )
    .join('\n');
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return r.stdout.trim().split('\n').map(Number);
}

t.test('ordering matches dpkg --compare-versions on every pair', { skip: spawnSync('dpkg', ['--version']).status !== 0 ? 'no dpkg' : false }, async (t) => {
  const pairs: [string, string][] = [];
  for (let i = 0; i < VERSIONS.length; i++) for (let j = i; j < VERSIONS.length; j++) pairs.push([VERSIONS[i], VERSIONS[j]]);
  const verdicts = dpkgCmpAll(pairs);
  t.equal(verdicts.length, pairs.length, 'dpkg answered for every pair');
  let checked = 0;
  pairs.forEach(([a, b], k) => {
    const want = verdicts[k];
    const got = Math.sign(compareDebianVersions(a, b));
    if (got !== want) t.fail(`${a} vs ${b}: dpkg says ${want}, we say ${got}`);
    if (Math.sign(compareDebianVersions(b, a)) !== -want) t.fail(`${b} vs ${a}: not antisymmetric`);
    checked++;
  });
  t.pass(`${checked} pairs agree with dpkg`);
});

t.test('kernel versions sort numerically, not as text', async (t) => {
  t.ok(compareDebianVersions('6.1.0-9-amd64', '6.1.0-10-amd64') < 0);
  t.ok(compareDebianVersions('6.1.0-10-amd64', '6.1.0-9-amd64') > 0);
  t.ok(compareDebianVersions('5.10.0-28-amd64', '6.1.0-2-amd64') < 0);
  t.equal(compareDebianVersions('6.1.0-10-amd64', '6.1.0-10-amd64'), 0);
  const sorted = ['6.1.0-10-amd64', '6.1.0-9-amd64', '6.1.0-18-amd64', '6.1.0-2-amd64'].sort(compareDebianVersions);
  t.same(sorted, ['6.1.0-2-amd64', '6.1.0-9-amd64', '6.1.0-10-amd64', '6.1.0-18-amd64']);
});
