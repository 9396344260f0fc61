/**
 * The smart-HTTP client on its own: proxy selection from the environment (pure), discovery
 * against real http-backend (v2 and v0), extra headers on every request, a redirected
 * discovery moving the later requests to the new base, and the pack request going through
 * an explicit HTTP CONNECT proxy.
 */
// needs: git server
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { SmartHttpRemote, proxyForUrl } from '../lib/fetch/smart-http.js';
import { USER_AGENT } from '../lib/http/gitroot-version.js';
import { redactUrl } from '../lib/http/url-redact.js';
import { fetchCommit } from '../lib/fetch/repo-fetch.js';
import { type ServerRepo, makeServerRepo } from './helpers/fetch-repos.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'gitroot-smarthttp-'));
const projectRoot = path.join(base, 'srv');
let server: GitHttpServer;
let repo: ServerRepo;

t.before(async () => {
  repo = makeServerRepo(base, projectRoot, 'os.git', { 'etc/hostname': 'kiosk\n', 'usr/bin/tool': 'x'.repeat(5000) });
  server = await startGitHttpServer({ projectRoot });
});
t.teardown(async () => {
  await server?.close();
  rmSync(base, { recursive: true, force: true });
});

async function listen(s: http.Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return (s.address() as AddressInfo).port;
}

t.test('proxyForUrl follows the curl conventions', async (t) => {
  const env = { https_proxy: 'http://px:3128', http_proxy: 'px2:8080', no_proxy: '.internal.example,fleet.example:8443' };
  t.equal(proxyForUrl('https://updates.example/os.git', env), 'http://px:3128');
  t.equal(proxyForUrl('http://updates.example/os.git', env), 'http://px2:8080', 'scheme added');
  t.equal(proxyForUrl('https://a.internal.example/x', env), null, 'suffix match');
  t.equal(proxyForUrl('https://internal.example/x', env), null, 'the domain itself');
  t.equal(proxyForUrl('https://notinternal.example/x', env), 'http://px:3128', 'no partial-label match');
  t.equal(proxyForUrl('https://fleet.example:8443/x', env), null, 'port-specific entry');
  t.equal(proxyForUrl('https://fleet.example/x', env), 'http://px:3128', 'other port proxied');
  t.equal(proxyForUrl('http://127.0.0.1:8080/x', env), null, 'loopback is direct');
  t.equal(proxyForUrl('http://[::1]:8080/x', env), null);
  t.equal(proxyForUrl('http://localhost/x', env), null);
  t.equal(proxyForUrl('http://h/x', { HTTP_PROXY: 'http://evil:1' }), null, 'upper-case HTTP_PROXY ignored for http');
  t.equal(proxyForUrl('https://h/x', { HTTPS_PROXY: 'http://p:1' }), 'http://p:1');
  t.equal(proxyForUrl('https://h/x', { ALL_PROXY: 'http://all:1' }), 'http://all:1');
  t.equal(proxyForUrl('https://h/x', { https_proxy: 'http://p:1', no_proxy: '*' }), null);
  t.equal(proxyForUrl('https://h/x', {}), null);
});

t.test('redactUrl hides credentials', async (t) => {
  t.equal(redactUrl('https://user:secret@h.example/os.git'), 'https://user:***@h.example/os.git');
  t.equal(redactUrl('not a url'), 'not a url');
});

t.test('discovery: v2 capabilities and ls-refs; v0 advertisement', async (t) => {
  const r = await SmartHttpRemote.discover(server.url('os.git'));
  t.equal(r.protocol, 2);
  t.ok(r.capabilities.has('fetch'));
  t.equal(r.baseUrl, server.url('os.git'));
  const refs = await r.listRefs(['refs/heads/']);
  t.same(
    refs.map((x) => [x.name, x.oid]),
    [['refs/heads/main', repo.commits[0]]],
  );
  r.close();

  const v0 = await startGitHttpServer({ projectRoot, protocolV2: false });
  t.teardown(() => v0.close());
  const r0 = await SmartHttpRemote.discover(v0.url('os.git/'));
  t.equal(r0.protocol, 0);
  t.ok(r0.capabilities.has('side-band-64k'));
  t.same(
    (await r0.listRefs(['refs/heads/main'])).map((x) => x.oid),
    [repo.commits[0]],
  );
});

t.test('extra headers and the user agent go with every request', async (t) => {
  server.resetStats();
  const gitdir = path.join(base, 'hdr', 'repo.git');
  await fetchCommit({ gitdir, remote: server.url('os.git'), branch: 'main', headers: { Authorization: 'Bearer fleet-token' } });
  t.equal(server.log.length, 3, 'discovery, ls-refs, fetch');
  for (const l of server.log) {
    t.equal(l.headers.authorization, 'Bearer fleet-token', `${l.method} ${l.command ?? l.url}`);
    t.equal(l.headers['user-agent'], USER_AGENT);
    t.equal(l.headers['git-protocol'], 'version=2');
  }
});

t.test('a redirected discovery moves later requests to the new base', async (t) => {
  let redirects = 0;
  const redirector = http.createServer((req, res) => {
    redirects++;
    res.writeHead(301, { Location: server.url('os.git') + (req.url ?? '').replace(/^\/old\.git/, '') });
    res.end();
  });
  const port = await listen(redirector);
  t.teardown(
    () =>
      new Promise<void>((r) => {
        redirector.closeAllConnections();
        redirector.close(() => r());
      }),
  );
  server.resetStats();
  const r = await fetchCommit({ gitdir: path.join(base, 'redir', 'repo.git'), remote: `http://127.0.0.1:${port}/old.git`, branch: 'main' });
  t.equal(r.commit, repo.commits[0]);
  t.equal(redirects, 1, 'only the discovery GET hit the old URL');
  t.same(
    server.log.map((l) => l.command ?? 'discovery'),
    ['discovery', 'ls-refs', 'fetch'],
  );
});

t.test('through an HTTP CONNECT proxy', async (t) => {
  const tunnels: string[] = [];
  const proxy = http.createServer((_req, res) => {
    res.writeHead(405);
    res.end();
  });
  proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    tunnels.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const upstream = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  const port = await listen(proxy);
  t.teardown(
    () =>
      new Promise<void>((r) => {
        proxy.closeAllConnections();
        proxy.close(() => r());
      }),
  );
  const r = await fetchCommit({
    gitdir: path.join(base, 'proxied', 'repo.git'),
    remote: server.url('os.git'),
    branch: 'main',
    proxy: `http://127.0.0.1:${port}`,
  });
  t.equal(r.commit, repo.commits[0]);
  t.ok(tunnels.length >= 1, `tunnels: ${tunnels.join(', ')}`);
  t.ok(tunnels.every((x) => x === `127.0.0.1:${server.port}`));
});
