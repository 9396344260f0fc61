/**
 * Fetching from a channel through the real CLI against a real nginx on 127.0.0.1 (HTTPS with
 * a private CA made by openssl here, client-certificate authentication, nginx's own Range,
 * ETag and If-Range handling): the first fetch and a 304 poll; the access log showing the
 * machine's id and booted revision; a dry run sized from the manifest; a connection cut
 * mid-bundle by the project's cutting proxy (resumed in the same process with Range); a
 * power cut (kill -9 of the fetching process) mid-bundle, resumed by the next fetch; a Range
 * request answered with 200 restarting the file; a rollout at 0% and past its end; a halt
 * (a pinned manifest) taking machines back; `gitroot fetch --from DIR` in a fresh network
 * namespace (no network at all). Every refusal (a replayed manifest, an expired one, one
 * signed by an unlisted key, a bundle whose bytes differ from the manifest, no client
 * certificate, a server certificate of another CA) is one line with its exit status, and
 * leaves state.json, D/boot and the boot entries byte-for-byte as they were.
 */
// needs: git server
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type NginxServer, makePki, startCuttingProxy, startNginx } from '../fixtures/nginx-server.js';
import { CLI, gitrootAsync as gitroot } from './helpers/cli.js';
import { debianRoot, noise, writeTree } from './helpers/deploy-fixtures.js';
import { type Machine, configure, machine } from './helpers/machine.js';
import { keygen, type TestKey } from './helpers/trust-fixtures.js';
import { fleetIdOf } from '../lib/http/delivery-identity.js';

const haveNginx = spawnSync('nginx', ['-v']).status === 0;
if (!haveNginx && process.env.CI === 'true') throw new Error('nginx is missing: bash scripts/setup.sh installs it');

let work: string;
let repo: string;
let channel: string;
let pki: ReturnType<typeof makePki>;
let server: NginxServer;
let key: TestKey;
let other: TestKey;
let signers: string;
const rel: string[] = [];

function commitRelease(n: number, bigBytes = 0): string {
  const root = fs.mkdtempSync(path.join(work, 'tree-'));
  writeTree(
    root,
    debianRoot(`6.1.0-${n}`, `r${n}`, { 'etc/motd': `release ${n}\n`, ...(bigBytes ? { [`usr/share/big-${n}.bin`]: noise(`big${n}`, bigBytes) } : {}) }),
  );
  const r = spawnSync(process.execPath, [CLI, 'commit', root, '--repo', repo, '-m', `release ${n}`, '--sign-key', key.path], { encoding: 'utf8' });
  fs.rmSync(root, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`gitroot commit failed: ${r.stderr}`);
  rel[n] = r.stdout.trim();
  return rel[n]!;
}

function publish(...more: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [CLI, 'publish', '--repo', repo, '--out', channel, '--sign-key', key.path, '--json', ...more], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`publish failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

function newMachine(name: string, extra: string[] = [], remote = `${server.url}/channel/`): Machine {
  return machine(path.join(work, name), {
    remote,
    settings: [
      `gitroot.allowed-signers=${signers}`,
      `gitroot.ca=${pki.caCert}`,
      `gitroot.client-cert=${pki.clientCert}`,
      `gitroot.client-key=${pki.clientKey}`,
      ...extra,
    ],
  });
}

const fetchArgs = (m: Machine, ...more: string[]) => ['fetch', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline, '--json', ...more];
const fetch = (m: Machine, ...more: string[]) => gitroot(fetchArgs(m, ...more));
const state = (m: Machine) => JSON.parse(fs.readFileSync(path.join(m.dir, 'state.json'), 'utf8'));

/** Everything a refused attempt must leave alone: state.json, D/boot, the boot entries. */
function snapshot(m: Machine): string {
  const out: string[] = [];
  const walk = (root: string, rel = '') => {
    if (!fs.existsSync(path.join(root, rel))) return;
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const p = path.join(rel, name);
      const st = fs.lstatSync(path.join(root, p));
      if (st.isDirectory()) walk(root, p);
      else out.push(`${root}/${p} ${fs.readFileSync(path.join(root, p)).toString('base64')}`);
    }
  };
  out.push(fs.existsSync(path.join(m.dir, 'state.json')) ? fs.readFileSync(path.join(m.dir, 'state.json'), 'utf8') : 'no state');
  walk(path.join(m.dir, 'boot'));
  walk(m.boot);
  return out.join('\n');
}

async function refused(t: Test, m: Machine, code: number, re: RegExp, what: string, ...more: string[]): Promise<void> {
  const before = snapshot(m);
  const r = await fetch(m, ...more);
  t.equal(r.status, code, `${what}: exit ${code} (${r.stderr.trim()})`);
  t.match(r.stderr, re, `${what}: names the cause`);
  t.equal(
    r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('gitroot: warning')).length,
    1,
    `${what}: one line`,
  );
  t.equal(snapshot(m), before, `${what}: state, kernels and entries unchanged`);
}

t.before(async () => {
  if (!haveNginx) return;
  work = fs.mkdtempSync('/tmp/gitroot-channel-fetch-');
  repo = path.join(work, 'os.git');
  channel = path.join(work, 'www', 'channel');
  fs.mkdirSync(channel, { recursive: true });
  pki = makePki(path.join(work, 'pki'));
  key = keygen(work, 'release');
  other = keygen(work, 'other');
  signers = path.join(work, 'allowed-signers');
  fs.writeFileSync(signers, `releases@example.com namespaces="git,gitroot-channel" ${key.pub}\n`);
  commitRelease(1);
  publish();
  server = await startNginx({ root: path.join(work, 'www'), pki });
});
t.teardown(async () => {
  await server?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

t.test('a channel over HTTPS with client certificates', { skip: haveNginx ? false : 'nginx is not installed' }, async (t) => {
  const m = newMachine('m1');
  const first = await fetch(m);
  t.equal(first.status, 0, first.stderr);
  const out = JSON.parse(first.stdout);
  t.match(out, { action: 'staged', revision: rel[1], transport: 'channel', channel: { manifest: { version: 1 }, rollout: { take: true } } });
  t.match(out.trust, { signature: { object: rel[1] } }, 'the commit signature gate ran too');
  const log1 = server.log();
  const machineId = fs.readFileSync(path.join(m.dir, 'machine-id'), 'utf8').trim();
  t.ok(
    log1.every((l) => l.machine === fleetIdOf(machineId)),
    'every request names the machine (an app-specific id)',
  );
  t.ok(
    log1.every((l) => /^gitroot\/\d/.test(l.userAgent)),
    'User-Agent gitroot/VERSION',
  );
  t.ok(
    log1.every((l) => l.status === 200),
    'all 200',
  );
  t.equal(log1.length, 2, 'two requests: the manifest and one (full) bundle');

  // Boot it (as the boot would record), then poll: nothing new, a 304 under 1 KB.
  const st = state(m);
  st.booted = rel[1];
  st.good = rel[1];
  st.pending = null;
  fs.writeFileSync(path.join(m.dir, 'state.json'), JSON.stringify(st, null, 2));
  const n = server.log().length;
  const poll = await fetch(m);
  t.equal(poll.status, 0, poll.stderr);
  t.match(JSON.parse(poll.stdout), { action: 'up-to-date', channel: { manifest: { notModified: true } } });
  const polled = server.log().slice(n);
  t.equal(polled.length, 1, 'one request');
  t.equal(polled[0]!.status, 304);
  t.ok(polled[0]!.bytes + polled[0]!.requestBytes < 1024, `a no-update poll costs ${polled[0]!.bytes} + ${polled[0]!.requestBytes} bytes of HTTP`);
  t.equal(polled[0]!.revision, rel[1], 'the access log shows the booted revision');

  // A big release; a dry run sizes it from the manifest and downloads no bundle.
  commitRelease(2, 6 << 20);
  publish();
  const n2 = server.log().length;
  const dry = await fetch(m, '--dry-run');
  t.equal(dry.status, 0, dry.stderr);
  const d = JSON.parse(dry.stdout);
  t.match(d, { action: 'dry-run', revision: rel[2], wouldStage: 'stage' });
  t.equal(d.channel.download.bundles.length, 1, 'one incremental bundle');
  t.ok(d.channel.download.bytes > 6 << 20, `the update is ${d.channel.download.bytes} bytes`);
  t.same(
    server
      .log()
      .slice(n2)
      .map((l) => l.path),
    ['/channel/channel.manifest'],
    'only the manifest was asked for',
  );

  // Through a proxy that cuts the connection after 2 MB of the answer, twice: resumed with Range in the same process.
  const proxy = await startCuttingProxy(server.port, { cutAfterBytes: 2 << 20, cuts: 2 });
  configure(m, [`gitroot.remote=${proxy.url}/channel/`]);
  const n3 = server.log().length;
  const cut = await fetch(m);
  await proxy.close();
  t.equal(cut.status, 0, cut.stderr);
  const c = JSON.parse(cut.stdout);
  t.match(c, { action: 'staged', revision: rel[2] });
  t.equal(proxy.cutsDone(), 2, 'the proxy cut twice');
  t.ok(c.channel.download.interruptions >= 2, `${c.channel.download.interruptions} interruptions resumed`);
  const bundleReqs = server
    .log()
    .slice(n3)
    .filter((l) => l.path.endsWith('.bundle'));
  t.ok(
    bundleReqs.some((l) => l.status === 206 && l.range.startsWith('bytes=')),
    'resumed with a Range request, answered 206',
  );
  const size = d.channel.download.bytes as number;
  // What crossed the link twice: the proxy's delivered bytes beyond the bundle (headers and the manifest's 304 included).
  const twice = proxy.delivered() - size;
  t.ok(twice <= 1 << 20, `bytes delivered twice over 2 interruptions: ${twice} (<= 1 MiB)`);
  t.equal(c.channel.download.received, size, 'the client itself received every byte of the bundle once');
  t.comment(
    `cut twice: ${twice} bytes crossed the link twice (nginx wrote ${bundleReqs.reduce((a, l) => a + l.bodyBytes, 0) - size} more into socket buffers)`,
  );
  configure(m, []);
  t.equal(fs.readdirSync(path.join(m.dir, 'channel-downloads')).length, 0, 'downloads removed once in the repository');
});

t.test('a power cut mid-bundle, then the next fetch resumes', { skip: haveNginx ? false : 'nginx is not installed' }, async (t) => {
  const m = newMachine('m2');
  const first = await fetch(m);
  t.equal(first.status, 0, first.stderr);
  commitRelease(3, 5 << 20);
  publish();
  const n = server.log().length;
  // A 2 MB/s link, so the kill lands mid-bundle; the proxy counts what crosses it.
  const link = await startCuttingProxy(server.port, { bytesPerSecond: 2 << 20 });
  configure(m, [`gitroot.remote=${link.url}/channel/`]);
  const child = spawn(process.execPath, [CLI, ...fetchArgs(m)], { stdio: 'ignore' });
  const downloads = path.join(m.dir, 'channel-downloads');
  let partial = 0;
  for (let i = 0; i < 600 && partial < 2 << 20; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const f = fs.existsSync(downloads) ? fs.readdirSync(downloads).find((x) => x.endsWith('.bundle')) : undefined;
    partial = f === undefined ? 0 : fs.statSync(path.join(downloads, f)).size;
  }
  process.kill(child.pid!, 'SIGKILL');
  await new Promise((r) => child.once('exit', r));
  t.ok(partial >= 2 << 20, `killed with ${partial} bytes on the medium`);
  const kept = fs.readdirSync(downloads);
  t.ok(
    kept.some((f) => f.endsWith('.bundle.json')),
    'the partial keeps its sidecar (ETag)',
  );
  const again = await fetch(m);
  t.equal(again.status, 0, again.stderr);
  const r = JSON.parse(again.stdout);
  t.match(r, { action: 'staged', revision: rel[3] });
  t.ok(
    r.channel.download.bundles.some((b: { report: { resumedFrom: number } }) => b.report.resumedFrom > 0),
    'resumed where the killed process stopped',
  );
  const reqs = server
    .log()
    .slice(n)
    .filter((l) => l.path.endsWith('.bundle'));
  t.ok(
    reqs.some((l) => l.status === 206),
    'with a 206',
  );
  const size = r.channel.download.bytes as number;
  await link.close();
  const twice = link.delivered() - size;
  t.ok(twice <= 1 << 20, `bytes delivered twice after the power cut: ${twice} (<= 1 MiB)`);
  t.comment(`power cut: ${twice} bytes crossed the link twice (the killed process's socket buffers and in-flight TLS records, plus headers)`);
});

t.test('a Range request answered with 200 restarts the file, never appends', { skip: haveNginx ? false : 'nginx is not installed' }, async (t) => {
  const m = newMachine('m3');
  t.equal((await fetch(m)).status, 0);
  commitRelease(4, 3 << 20);
  publish();
  // A partial download whose ETag no longer matches: If-Range fails and nginx sends the whole file.
  const man = JSON.parse(fs.readFileSync(path.join(channel, 'channel.manifest'), 'utf8').split('-----BEGIN SSH SIGNATURE-----')[0]!);
  const b = man.bundles.find((x: { kind: string; tip: string }) => x.kind === 'incremental' && x.tip === rel[4]);
  const downloads = path.join(m.dir, 'channel-downloads');
  fs.mkdirSync(downloads, { recursive: true });
  const file = path.join(downloads, `${b.id}.bundle`);
  fs.writeFileSync(file, fs.readFileSync(path.join(channel, b.uri)).subarray(0, 1 << 20));
  fs.writeFileSync(
    `${file}.json`,
    JSON.stringify({ url: `${server.url}/channel/${b.uri}`, etag: '"stale-etag"', lastModified: null, size: b.size, sha256: b.sha256 }),
  );
  const n = server.log().length;
  const r = await fetch(m);
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.match(out, { action: 'staged', revision: rel[4] });
  t.equal(out.channel.download.discarded, 1 << 20, 'the partial was thrown away');
  const reqs = server
    .log()
    .slice(n)
    .filter((l) => l.path.endsWith('.bundle'));
  t.equal(reqs[0]!.status, 200, 'nginx answered the stale If-Range with the whole file');
});

t.test(
  'rollout: 0% waits (status says so), past the ramp takes it; a halt takes machines back',
  { skip: haveNginx ? false : 'nginx is not installed' },
  async (t) => {
    const m = newMachine('m4');
    t.equal((await fetch(m)).status, 0);
    const before = state(m).pending.revision;
    commitRelease(5);
    publish('--rollout-start', new Date(Date.now() + 86400e3).toISOString().replace(/\.\d+Z$/, 'Z'), '--rollout-duration', '1d');
    const w = await fetch(m);
    t.equal(w.status, 0, w.stderr);
    t.match(JSON.parse(w.stdout), {
      action: 'waiting',
      revision: rel[5],
      reason: /^release [0-9a-f]{12} waits for the rollout: this machine at \d+%, the ramp at 0%$/,
    });
    t.equal(state(m).pending.revision, before, 'nothing staged');
    const st = await gitroot(['status', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline]);
    t.match(st.stdout, /rollout\s+release [0-9a-f]{12} waits for the rollout: this machine at \d+%, the ramp at 0%/);
    publish('--rollout-start', '2026-01-01T00:00:00Z', '--rollout-duration', '1h');
    const go = await fetch(m);
    t.equal(go.status, 0, go.stderr);
    t.match(JSON.parse(go.stdout), { action: 'staged', revision: rel[5], channel: { rollout: { take: true, rampPercent: 100 } } });
    // Halt: the publisher pins release 4; this machine took 5 and goes back (update-revision semantics).
    publish('--pin', rel[4]!);
    const halt = await fetch(m);
    t.equal(halt.status, 0, halt.stderr);
    const h = JSON.parse(halt.stdout);
    t.equal(h.revision, rel[4], 'the pinned tip');
    t.match(h, { channel: { pin: true }, trust: { downgrade: { why: 'pinned' } } });
    t.not(state(m).pending?.revision, rel[5], 'release 5 is no longer what boots next');
    publish('--unpin');
  },
);

t.test('refusals: one line, exit status, nothing changed', { skip: haveNginx ? false : 'nginx is not installed' }, async (t) => {
  const m = newMachine('m5');
  t.equal((await fetch(m)).status, 0);
  const manifest = path.join(channel, 'channel.manifest');
  const current = fs.readFileSync(manifest);
  const old = fs.readFileSync(manifest);
  publish();
  t.equal((await fetch(m)).status, 0, 'accepts the newer manifest');
  const good = fs.readFileSync(manifest);
  // A replayed (stale) manifest: a lower version than the machine has seen, with the old
  // copy's own (earlier) mtime, as a mirror that kept it serves it (and so another ETag).
  fs.writeFileSync(manifest, old);
  const hourAgo = Date.now() / 1000 - 3600;
  fs.utimesSync(manifest, hourAgo, hourAgo);
  await refused(t, m, 8, /refusing channel manifest .* its version \d+ is older than version \d+ .*rollback attack/, 'replayed manifest');
  // Expired.
  publish('--time', '2026-01-01T00:00:00Z', '--expires', '1h');
  await refused(t, m, 8, /expired at .*freeze attack/, 'expired manifest');
  const st = await gitroot(['status', '--dir', m.dir, '--config', m.conf, '--cmdline', m.cmdline]);
  t.match(st.stdout, /last fetch .*freeze attack/, 'gitroot status shows the freeze risk');
  // Signed by an unlisted key.
  const r = spawnSync(process.execPath, [CLI, 'publish', '--repo', repo, '--out', channel, '--sign-key', other.path], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  await refused(t, m, 8, /refusing channel manifest .* signed by ssh-ed25519 key SHA256:.*does not list/, 'unlisted key');
  // A bundle whose bytes do not match the manifest.
  fs.writeFileSync(manifest, good);
  publish();
  commitRelease(6, 1 << 20);
  const p = publish() as { bundles: { uri: string; kind: string; made: boolean }[] };
  const inc = p.bundles.find((b) => b.made && b.kind === 'incremental')!;
  const file = path.join(channel, inc.uri);
  const bytes = fs.readFileSync(file);
  const flipped = Buffer.from(bytes);
  flipped[bytes.length - 100] ^= 0xff;
  fs.writeFileSync(file, flipped);
  await refused(t, m, 4, /does not match the channel manifest .*downloads it again|the next fetch starts it again/, 'bundle bytes differ');
  t.equal(fs.readdirSync(path.join(m.dir, 'channel-downloads')).length, 0, 'the bad download was removed');
  fs.writeFileSync(file, bytes);
  // No client certificate, and a server certificate of another CA.
  const noCert = newMachine('m6', [], `${server.url}/channel/`);
  configure(noCert, [`gitroot.client-cert=${path.join(work, 'none')}`]);
  await refused(t, noCert, 2, /gitroot.client-cert=.* cannot be read/, 'unreadable client certificate');
  fs.writeFileSync(
    noCert.conf,
    noCert.conf &&
      [
        `gitroot.bootloader=bls`,
        `gitroot.boot=${noCert.boot}`,
        'gitroot.timeout=5',
        'gitroot.retries=0',
        `gitroot.remote=${server.url}/channel/`,
        `gitroot.allowed-signers=${signers}`,
        `gitroot.ca=${pki.caCert}`,
      ].join('\n') + '\n',
  );
  await refused(t, noCert, 6, /HTTP 400|certificate/, 'no client certificate');
  const otherCa = makePki(path.join(work, 'pki2'), 'other');
  configure(noCert, [`gitroot.ca=${otherCa.caCert}`, `gitroot.client-cert=${pki.clientCert}`, `gitroot.client-key=${pki.clientKey}`]);
  await refused(t, noCert, 6, /TLS certificate of 127\.0\.0\.1:\d+ rejected/, 'server certificate of another CA');
  void current;
});

t.test('gitroot fetch --from DIR with no network at all', { skip: haveNginx ? false : 'nginx is not installed' }, async (t) => {
  const ok = spawnSync('unshare', ['-n', 'true']).status === 0;
  if (!ok) {
    t.comment('unshare -n is not permitted here');
    return;
  }
  // A copy as on a USB stick, with the stray files such media collect.
  const stick = path.join(work, 'stick');
  fs.cpSync(channel, stick, { recursive: true });
  fs.writeFileSync(path.join(stick, '._channel.manifest'), 'AppleDouble');
  fs.mkdirSync(path.join(stick, 'System Volume Information'));
  const m = machine(path.join(work, 'usb'), { settings: [`gitroot.allowed-signers=${signers}`] });
  const r = spawnSync('unshare', ['-n', process.execPath, CLI, ...fetchArgs(m, '--from', stick)], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.match(out, { action: 'staged', transport: 'channel' });
  t.equal(out.revision, JSON.parse(fs.readFileSync(path.join(stick, 'channel.manifest'), 'utf8').split('-----BEGIN SSH SIGNATURE-----')[0]!).tip);
  const none = spawnSync('unshare', ['-n', process.execPath, CLI, ...fetchArgs(m, '--from', path.join(work, 'pki'))], { encoding: 'utf8' });
  t.equal(none.status, 2, 'a directory without a channel');
  t.match(none.stderr, /holds no channel/);
});
