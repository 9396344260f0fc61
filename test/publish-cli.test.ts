/**
 * `gitroot publish` end to end with real git: releases published one after another into a
 * channel directory; every bundle passes `git bundle verify` (in a repository holding its
 * prerequisites) and `git fetch <bundle>` brings its tip; the same commits give the same
 * bytes even after the release repository is repacked; re-running without a release signs a
 * new manifest version and makes no bundle; a pin and --unpin; retired bundles deleted only
 * after their grace period; git's own `git clone --bundle-uri` (2.39 here) takes the bundle
 * list. Refusals are one line with exit 2.
 */
// needs: git
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { gitroot } from './helpers/cli.js';
import { tempDir } from './helpers/temp-dir.js';
import { gitEnv, keygen, run, status } from './helpers/trust-fixtures.js';

interface Published {
  version: number;
  tip: string;
  pin: boolean;
  release: number;
  bundles: { id: string; kind: string; uri: string; size: number; sha256: string; made: boolean }[];
  retired: string[];
  deleted: string[];
}

t.test('publishing releases into a channel', async (t) => {
  const work = tempDir(t, 'publish');
  const repo = path.join(work, 'os.git');
  const tree = path.join(work, 'tree');
  const out = path.join(work, 'channel');
  run('git', ['init', '-q', '--bare', repo]);
  const key = keygen(work, 'release');
  const commits: string[] = [];
  const release = (n: number) => {
    fs.mkdirSync(tree, { recursive: true });
    fs.writeFileSync(path.join(tree, `file-${n}`), `release ${n}\n`.repeat(2000 + n));
    fs.writeFileSync(path.join(tree, 'version'), `${n}\n`);
    const env = { ...gitEnv(), GIT_DIR: repo, GIT_WORK_TREE: tree, GIT_INDEX_FILE: path.join(work, 'index') };
    run('git', ['add', '-A'], { env });
    const parent = commits.length ? ['-p', commits[commits.length - 1]!] : [];
    const treeId = run('git', ['write-tree'], { env }).toString().trim();
    const c = run('git', ['commit-tree', ...parent, '-m', `release ${n}`, treeId], { env })
      .toString()
      .trim();
    run('git', ['--git-dir', repo, 'update-ref', 'refs/heads/master', c]);
    commits.push(c);
    return c;
  };
  const publish = (...more: string[]) => {
    const r = gitroot(['publish', '--repo', repo, '--out', out, '--sign-key', key.path, '--rollup-every', '2', '--rollups-kept', '2', '--json', ...more]);
    if (r.status !== 0) throw new Error(`publish failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout) as Published;
  };

  release(1);
  const p1 = publish();
  t.match(p1, { version: 1, tip: commits[0], release: 1, pin: false });
  t.same(
    p1.bundles.map((b) => b.kind),
    ['base'],
  );
  // Publishes come faster than one a second here, yet each manifest's mtime (whole seconds) is
  // later than the last: web servers derive ETags from mtime and size, and a machine holding
  // the last manifest must never be answered 304 for a new one.
  const mtimes = [Math.floor(fs.statSync(path.join(out, 'channel.manifest')).mtimeMs / 1000)];
  for (let n = 2; n <= 6; n++) {
    release(n);
    publish();
    mtimes.push(Math.floor(fs.statSync(path.join(out, 'channel.manifest')).mtimeMs / 1000));
  }
  t.ok(
    mtimes.every((m, i) => i === 0 || m > mtimes[i - 1]!),
    `every manifest's mtime is a later second than the last (${mtimes.join(' ')})`,
  );
  const p6 = JSON.parse(fs.readFileSync(path.join(out, 'channel.manifest'), 'utf8').split('-----BEGIN SSH SIGNATURE-----')[0]!);
  t.equal(p6.version, 6);
  t.equal(p6.tip, commits[5]);
  t.same(
    p6.bundles.map((b: { kind: string }) => b.kind),
    ['base', 'rollup', 'rollup', 'incremental', 'incremental', 'incremental'],
  );

  // Every listed bundle: git bundle verify in a repository that has its prerequisites, then git fetch from it.
  const check = path.join(work, 'check.git');
  run('git', ['init', '-q', '--bare', check]);
  const sorted = [...p6.bundles].sort((a: { creationToken: number }, b: { creationToken: number }) => a.creationToken - b.creationToken);
  for (const b of sorted) {
    const file = path.join(out, b.uri);
    t.equal(fs.statSync(file).size, b.size, `${b.id}: size as listed`);
    t.equal(status('git', ['--git-dir', check, 'bundle', 'verify', '-q', file]), 0, `${b.id}: git bundle verify accepts it`);
    run('git', ['--git-dir', check, 'fetch', '-q', file, `+refs/heads/master:refs/bundle/${b.id}`]);
    t.equal(
      run('git', ['--git-dir', check, 'rev-parse', `refs/bundle/${b.id}`])
        .toString()
        .trim(),
      b.tip,
      `${b.id}: git fetch from it brings its tip`,
    );
  }
  t.equal(status('git', ['--git-dir', check, 'fsck', '--no-dangling', '--no-progress']), 0, 'the fetched history is complete');

  // Deterministic: the same spec again from a repacked repository gives the same bytes.
  run('git', ['--git-dir', repo, 'repack', '-adf', '-q']);
  const again = path.join(work, 'again');
  const r = gitroot(['publish', '--repo', repo, '--out', again, '--sign-key', key.path, '--json']);
  t.equal(r.status, 0, r.stderr);
  const base1 = p1.bundles[0]!;
  const r2 = gitroot(['publish', '--repo', repo, '--out', path.join(work, 'again2'), '--sign-key', key.path, '--json', '--pin', commits[0]!]);
  t.equal(r2.status, 0, r2.stderr);
  const b2 = (JSON.parse(r2.stdout) as Published).bundles[0]!;
  t.equal(b2.sha256, base1.sha256, 'the full bundle of release 1, made again after a repack, has the same SHA-256');
  t.equal(b2.uri, base1.uri, 'and so the same name');

  // Re-running without a release: a new version, no new bundle.
  const p7 = publish();
  t.match(p7, { version: 7, tip: commits[5] });
  t.equal(p7.bundles.filter((b) => b.made).length, 0, 'nothing made');

  // A halt: pin release 5; then a new release needs --unpin.
  const pin = publish('--pin', commits[4]!);
  t.match(pin, { version: 8, tip: commits[4], pin: true });
  release(7);
  const refused = gitroot(['publish', '--repo', repo, '--out', out, '--sign-key', key.path]);
  t.equal(refused.status, 2);
  t.match(refused.stderr, /^gitroot: publish: the channel is pinned to .*--unpin/);
  t.equal(refused.stderr.trim().split('\n').length, 1, 'one line');
  const un = publish('--unpin');
  t.match(un, { version: 9, tip: commits[6], pin: false });

  // Retired bundles stay for the grace period, then go.
  const retiredIds = [...pin.retired, ...un.retired];
  const logged = JSON.parse(fs.readFileSync(path.join(out, 'publish-log.json'), 'utf8')) as {
    bundles: { id: string; uri: string; retiredAt: string | null }[];
  };
  const retiredFiles = logged.bundles.filter((b) => b.retiredAt !== null).map((b) => b.uri);
  t.ok(retiredFiles.length > 0 && retiredIds.length > 0, 'some bundles were retired');
  for (const f of retiredFiles) t.ok(fs.existsSync(path.join(out, f)), `${f} is kept within the grace period`);
  const later = publish('--time', new Date(Date.now() + 8 * 86400e3).toISOString().replace(/\.\d+Z$/, 'Z'));
  t.ok(later.deleted.length >= retiredFiles.length, 'deleted after 7 days');
  for (const f of retiredFiles) t.notOk(fs.existsSync(path.join(out, f)), `${f} is gone`);

  // git's own bundle-uri client takes the bundle list (absolute URIs: 2.39 resolves relative ones against its cwd).
  const withBase = path.join(work, 'for-git');
  const g = gitroot(['publish', '--repo', repo, '--out', withBase, '--sign-key', key.path, '--bundle-uri-base', `file://${withBase}/`]);
  t.equal(g.status, 0, g.stderr);
  const clone = path.join(work, 'clone');
  const c = run('git', ['clone', '-q', '--bare', `--bundle-uri=file://${withBase}/bundle-list`, `file://${repo}`, clone]);
  t.ok(c, 'git clone --bundle-uri ran');
  const bundleRefs = run('git', ['--git-dir', clone, 'for-each-ref', '--format=%(refname)', 'refs/bundles/']).toString().trim();
  t.match(bundleRefs, /refs\/bundles\/master/, "git unbundled the channel's bundles (refs/bundles/*)");
});

t.test('publish refusals are one line with exit 2', async (t) => {
  const work = tempDir(t, 'publish-bad');
  const repo = path.join(work, 'os.git');
  run('git', ['init', '-q', '--bare', repo]);
  const key = keygen(work, 'k');
  const cases: [string[], RegExp][] = [
    [['--sign-key', key.path], /branch 'master' is not a commit/],
    [['--sign-key', path.join(work, 'nope')], /--sign-key .* cannot be used/],
    [['--sign-key', key.path, '--expires', '7 days'], /--expires needs a duration/],
    [['--sign-key', key.path, '--rollout-start', '2026-12-01T00:00:00Z'], /needs both --rollout-start/],
    [['--sign-key', key.path, '--rollout-start', 'tomorrow', '--rollout-duration', '1d'], /ISO 8601/],
  ];
  for (const [args, re] of cases) {
    const r = gitroot(['publish', '--repo', repo, '--out', path.join(work, 'out'), ...args]);
    t.not(r.status, 0, args.join(' '));
    t.match(r.stderr, re);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
});
