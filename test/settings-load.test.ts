/**
 * loadSettings against real files in temp dirs and a real HTTP server on 127.0.0.1 (a tiny
 * node:http one made here, not a git server) that serves a fleet config, fails with 500 or
 * 404, hangs, refuses, serves HTML, garbage or a bad config, answers 304 to an ETag; plus a
 * CONNECT proxy to check HTTP_PROXY / NO_PROXY. The cache is checked byte for byte.
 */
// needs: server
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError, UsageError } from '../lib/errors/errors.js';
import { CONFIG_CACHE_DIR, listConfigFiles, loadSettings, type ConfigCacheMeta, type LoadSettingsOptions } from '../lib/params/settings-load.js';
import { defaultSettings } from '../lib/params/settings-schema.js';

interface Reply {
  status?: number;
  body?: string | Buffer;
  headers?: Record<string, string>;
  hang?: boolean;
}

interface TestServer {
  base: string;
  requests: { url: string; headers: IncomingHttpHeaders }[];
  reply: (path: string, headers: IncomingHttpHeaders) => Reply;
}

/** Closes a server and every connection it holds (hanging ones too). */
function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A config server on 127.0.0.1, closed in teardown. Replies as `srv.reply` says. */
async function startServer(t: Test): Promise<TestServer> {
  const srv: TestServer = { base: '', requests: [], reply: () => ({ status: 404 }) };
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    srv.requests.push({ url: req.url ?? '', headers: req.headers });
    const r = srv.reply(req.url ?? '', req.headers);
    if (r.hang) return; // never answer: the client's timeout has to fire
    res.writeHead(r.status ?? 200, { 'content-type': 'text/plain', ...r.headers });
    res.end(r.body ?? '');
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  srv.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(() => closeServer(server, sockets));
  return srv;
}

/** An HTTP CONNECT proxy on 127.0.0.1 that records the targets it tunnels to. */
async function startProxy(t: Test): Promise<{ url: string; targets: string[] }> {
  const targets: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req, client: Socket, head: Buffer) => {
    targets.push(req.url ?? '');
    // Every tunnel ends at this machine: the tests name hosts that do not resolve.
    const port = (req.url ?? '').split(':').at(-1);
    const upstream = connect(Number(port), '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    sockets.add(client);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => closeServer(server, sockets));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, targets };
}

interface Home {
  dir: string;
  etc: string;
  cmdline: string;
  opts(extra?: Partial<LoadSettingsOptions>): LoadSettingsOptions;
  setCmdline(text: string): void;
  setConf(name: string, text: string): void;
  cache(): { conf: Buffer | null; meta: ConfigCacheMeta | null };
}

/** A gitroot home, a config dir and a command line file in a fresh temp dir. */
function home(t: Test): Home {
  const root = mkdtempSync(join(tmpdir(), 'gitroot-params-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'home');
  const etc = join(root, 'etc-gitroot');
  mkdirSync(dir);
  mkdirSync(join(etc, 'conf.d'), { recursive: true });
  const cmdline = join(root, 'cmdline');
  writeFileSync(cmdline, 'BOOT_IMAGE=/vmlinuz quiet root=/dev/sda1\n');
  return {
    dir,
    etc,
    cmdline,
    opts: (extra = {}) => ({ dir, configPath: etc, cmdlineFile: cmdline, env: {}, backoffMs: 10, ...extra }),
    setCmdline: (text) => writeFileSync(cmdline, text),
    setConf: (name, text) => writeFileSync(join(etc, name), text),
    cache: () => {
      const c = join(dir, CONFIG_CACHE_DIR);
      return {
        conf: existsSync(join(c, 'downloaded.conf')) ? readFileSync(join(c, 'downloaded.conf')) : null,
        meta: existsSync(join(c, 'downloaded.json')) ? (JSON.parse(readFileSync(join(c, 'downloaded.json'), 'utf8')) as ConfigCacheMeta) : null,
      };
    },
  };
}

const FLEET = '# fleet\nfetch-revision=stable\ngitroot.tries=5\n';

/** A home whose gitroot.conf names `url`, with a good copy of FLEET already cached from it. */
async function homeWithCache(t: Test, srv: TestServer, extraConf = ''): Promise<Home> {
  const h = home(t);
  h.setConf('gitroot.conf', `gitroot.config=${srv.base}/fleet.conf\ngitroot.retries=0\n${extraConf}`);
  srv.reply = () => ({ body: FLEET, headers: { etag: '"v1"' } });
  const first = await loadSettings(h.opts());
  t.equal(first.settings['fetch-revision'], 'stable', 'cache primed');
  srv.requests.length = 0;
  return h;
}

t.test('local files: order, origins, and what is skipped', async (t) => {
  const h = home(t);
  h.setConf('gitroot.conf', 'gitroot.tries=1\ngitroot.retries=1\ngitroot.timeout=1\nfetch-revision=a\n');
  h.setConf('B.conf', 'gitroot.retries=2\n'); // 'B' < 'a' in byte order
  h.setConf('a.conf', 'gitroot.retries=3\ngitroot.timeout=3\n');
  h.setConf('conf.d/20-z.conf', 'gitroot.timeout=20\n');
  h.setConf('conf.d/10-a.conf', 'gitroot.timeout=10\nfetch-revision=b\n');
  h.setConf('conf.d/.hidden.conf', 'garbage\n');
  h.setConf('conf.d/notes.txt', 'garbage\n');
  h.setConf('conf.d/30.conf.bak', 'garbage\n');
  h.setConf('README', 'garbage\n');
  t.same(listConfigFiles(h.etc, true), [
    join(h.etc, 'gitroot.conf'),
    join(h.etc, 'B.conf'),
    join(h.etc, 'a.conf'),
    join(h.etc, 'conf.d/10-a.conf'),
    join(h.etc, 'conf.d/20-z.conf'),
  ]);
  h.setCmdline('quiet fetch-revision=c\n');
  const r = await loadSettings(h.opts());
  t.equal(r.settings['gitroot.tries'], 1);
  t.equal(r.settings['gitroot.retries'], 3);
  t.equal(r.settings['gitroot.timeout'], 20);
  t.equal(r.settings['fetch-revision'], 'c');
  t.same(r.origins['gitroot.tries'], { kind: 'file', source: join(h.etc, 'gitroot.conf'), line: 1 });
  t.same(r.origins['gitroot.retries'], { kind: 'file', source: join(h.etc, 'a.conf'), line: 1 });
  t.same(r.origins['gitroot.timeout'], { kind: 'file', source: join(h.etc, 'conf.d/20-z.conf'), line: 1 });
  t.same(r.origins['fetch-revision'], { kind: 'cmdline', source: h.cmdline });
  t.same(r.origins.noupgrade, { kind: 'default', source: 'default' });
  t.same(r.warnings, []);
  t.same(
    r.sources.map((s) => [s.kind, s.status]),
    [
      ['file', 'read'],
      ['file', 'read'],
      ['file', 'read'],
      ['file', 'read'],
      ['file', 'read'],
      ['cmdline', 'read'],
    ],
  );
});

t.test('listConfigFiles: a single file, a directory without gitroot.conf, missing paths', async (t) => {
  const h = home(t);
  h.setConf('x.cfg', 'noupgrade\n');
  t.same(listConfigFiles(join(h.etc, 'x.cfg'), true), [join(h.etc, 'x.cfg')]);
  h.setConf('conf.d/b.conf', '');
  h.setConf('conf.d/a.conf', '');
  t.same(listConfigFiles(join(h.etc, 'conf.d'), true), [join(h.etc, 'conf.d/a.conf'), join(h.etc, 'conf.d/b.conf')], 'a directory of *.conf');
  t.same(listConfigFiles(join(h.etc, 'nope'), false), []);
  t.throws(() => listConfigFiles(join(h.etc, 'nope'), true), { code: 'ECONFIG', message: /config path .*nope does not exist; fix --config/ });
  const r = await loadSettings(h.opts({ configPath: join(h.etc, 'x.cfg') }));
  t.equal(r.settings.noupgrade, true);
  t.same(r.origins.noupgrade, { kind: 'file', source: join(h.etc, 'x.cfg'), line: 1 });
});

t.test('a missing default config dir is fine; a missing --config or --cmdline is not', async (t) => {
  const h = home(t);
  const r = await loadSettings({ dir: h.dir, cmdlineFile: h.cmdline, configPath: undefined, env: {} });
  t.same(r.settings, existsSync('/etc/gitroot') ? r.settings : defaultSettings());
  await t.rejects(loadSettings(h.opts({ configPath: join(h.etc, 'missing') })), ConfigError);
  await t.rejects(loadSettings(h.opts({ cmdlineFile: join(h.etc, 'no-cmdline') })), {
    code: 'ECONFIG',
    message: /cannot read the kernel command line file .*no-cmdline \(ENOENT\): pass --cmdline/,
  });
});

t.test('the gitroot home must be a directory', async (t) => {
  const h = home(t);
  await t.rejects(loadSettings(h.opts({ dir: join(h.dir, 'nope') })), UsageError);
  await t.rejects(loadSettings(h.opts({ dir: h.cmdline })), { code: 'EUSAGE', message: /gitroot home .* is not a directory; pass the right --dir/ });
});

t.test('local files that are not text, or have a typo, are ConfigErrors naming file:line', async (t) => {
  const h = home(t);
  h.setConf('gitroot.conf', '\n# ok\ngitroot.trys=3\n');
  await t.rejects(loadSettings(h.opts()), { code: 'ECONFIG', message: new RegExp(`^${join(h.etc, 'gitroot.conf')}:3: unknown setting 'gitroot.trys'`) });
  writeFileSync(join(h.etc, 'gitroot.conf'), Buffer.from([0x6e, 0x6f, 0xff, 0x0a]));
  await t.rejects(loadSettings(h.opts()), { code: 'ECONFIG', message: /gitroot\.conf: not UTF-8 text/ });
  writeFileSync(join(h.etc, 'gitroot.conf'), Buffer.from('noupgrade\n\0\0'));
  await t.rejects(loadSettings(h.opts()), { code: 'ECONFIG', message: /gitroot\.conf: not a text file/ });
  rmSync(join(h.etc, 'gitroot.conf'));
  h.setCmdline('quiet gitroot.bootloader=grub');
  await t.rejects(loadSettings(h.opts()), {
    code: 'ECONFIG',
    message: new RegExp(`^${h.cmdline}: 'gitroot.bootloader=grub': gitroot.bootloader must be one of`),
  });
});

t.test('download: applied between files and the command line, cached atomically', async (t) => {
  const srv = await startServer(t);
  const h = home(t);
  srv.reply = (path) => (path === '/fleet.conf' ? { body: FLEET + 'gitroot.bootloader=bls\n', headers: { etag: '"v1"' } } : { status: 404 });
  h.setConf('gitroot.conf', `gitroot.config=${srv.base}/fleet.conf\ngitroot.tries=2\nfetch-revision=local\ngitroot.boot=/efi\n`);
  h.setCmdline('quiet gitroot.bootloader=extlinux');
  const r = await loadSettings(h.opts());
  t.equal(srv.requests.length, 1);
  t.equal(srv.requests[0]!.headers['if-none-match'], undefined, 'nothing cached yet');
  const url = `${srv.base}/fleet.conf`;
  t.equal(r.settings['fetch-revision'], 'stable');
  t.equal(r.settings['gitroot.tries'], 5);
  t.equal(r.settings['gitroot.boot'], '/efi');
  t.equal(r.settings['gitroot.bootloader'], 'extlinux', 'the command line beats the fleet');
  t.same(r.origins['fetch-revision'], { kind: 'download', source: url, line: 2 });
  t.same(r.origins['gitroot.tries'], { kind: 'download', source: url, line: 3 });
  t.same(r.origins['gitroot.boot'], { kind: 'file', source: join(h.etc, 'gitroot.conf'), line: 4 });
  t.same(r.origins['gitroot.bootloader'], { kind: 'cmdline', source: h.cmdline });
  t.same(r.warnings, []);
  t.same(r.sources.at(-1), { kind: 'download', source: url, status: 'downloaded' });
  const c = h.cache();
  t.equal(c.conf?.toString(), FLEET + 'gitroot.bootloader=bls\n');
  t.match(c.meta, { url, etag: '"v1"', bytes: c.conf!.length, sha256: createHash('sha256').update(c.conf!).digest('hex') });
  t.ok(Date.parse(c.meta!.fetchedAt) > 0);
});

t.test('a home where the cache cannot be written: the download is used, with a warning', async (t) => {
  const srv = await startServer(t);
  const h = home(t);
  writeFileSync(join(h.dir, CONFIG_CACHE_DIR), 'a file where the cache directory should be');
  srv.reply = () => ({ body: FLEET });
  h.setCmdline(`quiet gitroot.config=${srv.base}/fleet.conf`);
  const r = await loadSettings(h.opts());
  t.equal(r.settings['fetch-revision'], 'stable');
  t.equal(r.sources.at(-1)!.status, 'downloaded');
  t.match(r.warnings, [
    new RegExp(`^could not update the cached fleet config in ${join(h.dir, CONFIG_CACHE_DIR)}: E[A-Z]+; an offline boot will not have this copy`),
  ]);
});

t.test('ETag: a 304 keeps the cached copy and records the check', async (t) => {
  const srv = await startServer(t);
  const h = await homeWithCache(t, srv);
  const before = h.cache();
  srv.reply = (_p, headers) => (headers['if-none-match'] === '"v1"' ? { status: 304, headers: { etag: '"v1"' } } : { body: 'noupgrade\n' });
  await new Promise((r) => setTimeout(r, 5)); // a later checkedAt
  const r = await loadSettings(h.opts());
  t.equal(srv.requests.length, 1);
  t.equal(srv.requests[0]!.headers['if-none-match'], '"v1"');
  t.equal(r.settings['fetch-revision'], 'stable');
  t.equal(r.settings.noupgrade, false);
  t.equal(r.sources.at(-1)!.status, 'not-modified');
  t.same(r.warnings, []);
  const after = h.cache();
  t.same(after.conf, before.conf);
  t.equal(after.meta!.fetchedAt, before.meta!.fetchedAt);
  t.not(after.meta!.checkedAt, before.meta!.checkedAt);
  // A new version replaces the cache.
  srv.reply = () => ({ body: 'fetch-revision=next\n', headers: { etag: '"v2"' } });
  const r2 = await loadSettings(h.opts());
  t.equal(r2.settings['fetch-revision'], 'next');
  t.equal(h.cache().meta!.etag, '"v2"');
  t.equal(h.cache().conf!.toString(), 'fetch-revision=next\n');
});

t.test('server errors: retried with backoff, then the cached copy with a warning', async (t) => {
  const srv = await startServer(t);
  const h = await homeWithCache(t, srv);
  const before = h.cache();
  srv.reply = () => ({ status: 500, body: 'oops' });
  h.setCmdline('quiet gitroot.retries=2');
  const r = await loadSettings(h.opts());
  t.equal(srv.requests.length, 3, 'first try and two retries');
  t.equal(r.settings['fetch-revision'], 'stable');
  t.same(r.origins['fetch-revision'], { kind: 'download', source: `${srv.base}/fleet.conf`, line: 2 });
  t.equal(r.warnings.length, 1);
  t.match(r.warnings[0], new RegExp(`^could not download ${srv.base}/fleet.conf: HTTP 500 Internal Server Error; using the copy cached at \\d{4}-`));
  t.equal(r.sources.at(-1)!.status, 'cached');
  t.same(h.cache(), before, 'cache untouched');

  srv.reply = () => ({ status: 404 });
  h.setCmdline('quiet');
  const r404 = await loadSettings(h.opts());
  t.equal(srv.requests.length, 4, '404 is not retried');
  t.match(r404.warnings[0], /HTTP 404 Not Found; using the copy cached/);
});

t.test('no network and no cache: a warning, and the fleet config is skipped', async (t) => {
  const srv = await startServer(t);
  const h = home(t);
  h.setConf('gitroot.conf', `gitroot.config=${srv.base}/fleet.conf\ngitroot.retries=0\ngitroot.tries=4\n`);
  srv.reply = () => ({ status: 503 });
  const r = await loadSettings(h.opts());
  t.equal(r.settings['gitroot.tries'], 4);
  t.equal(r.settings['fetch-revision'], 'master');
  t.same(r.warnings, [`could not download ${srv.base}/fleet.conf: HTTP 503 Service Unavailable; no cached copy either, continuing without the fleet config`]);
  t.equal(r.sources.at(-1)!.status, 'unavailable');
  t.same(h.cache(), { conf: null, meta: null });
});

t.test('a hanging server times out after gitroot.timeout, then the cache is used', async (t) => {
  const srv = await startServer(t);
  const h = await homeWithCache(t, srv, 'gitroot.timeout=1\n');
  srv.reply = () => ({ hang: true });
  const r = await loadSettings(h.opts());
  t.equal(srv.requests.length, 1);
  t.equal(r.settings['gitroot.tries'], 5);
  t.match(
    r.warnings[0],
    new RegExp(`^could not download ${srv.base}/fleet.conf: timed out after 1 s waiting for \\w+ \\(gitroot.timeout\\); using the copy cached`),
  );
});

t.test('a refused connection uses the cache', async (t) => {
  const srv = await startServer(t);
  const h = await homeWithCache(t, srv);
  // A port nothing listens on: bind one, note it, close it.
  const tmp = createServer();
  tmp.listen(0, '127.0.0.1');
  await once(tmp, 'listening');
  const port = (tmp.address() as AddressInfo).port;
  await new Promise((r) => tmp.close(r));
  h.setCmdline(`quiet gitroot.config=http://127.0.0.1:${port}/fleet.conf`);
  const r = await loadSettings(h.opts());
  t.match(r.warnings[0], /ECONNREFUSED.*no cached copy either/, 'a cached copy of another URL is not used');
  t.equal(r.settings['fetch-revision'], 'master');
  t.equal(r.sources.at(-1)!.status, 'unavailable');
});

t.test('a malformed download is a ConfigError naming URL:line and the cache is kept', async (t) => {
  const srv = await startServer(t);
  const h = await homeWithCache(t, srv);
  const before = h.cache();
  const url = `${srv.base}/fleet.conf`;
  const bad: [string | Buffer, RegExp][] = [
    ['fetch-revision=ok\ngitroot.tires=5\n', new RegExp(`^${url}:2: unknown setting 'gitroot.tires' \\(did you mean gitroot.tries\\?\\)`)],
    ['gitroot.tries=many\n', new RegExp(`^${url}:1: gitroot.tries needs a whole number`)],
    ['update-revision=abc\n', new RegExp(`^${url}:1: update-revision needs a full 40-hex commit SHA`)],
    [`gitroot.config=${srv.base}/other.conf\n`, new RegExp(`^${url}:1: gitroot.config cannot be set by the downloaded config`)],
    ['noconfig\n', new RegExp(`^${url}:1: noconfig cannot be set by the downloaded config`)],
    ['gitroot.allowed-signers=/tmp/evil\n', /gitroot.allowed-signers cannot be set by the downloaded config/],
    ['a=1 b=2\n', new RegExp(`^${url}:1: more than one setting on a line`)],
    ['{"json": true}\n', new RegExp(`^${url}:1: more than one setting on a line`)],
    [Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00]), new RegExp(`^${url}: not a text file`)],
    [Buffer.from('fetch-revision=\xe9t\xe9\n', 'latin1'), new RegExp(`^${url}: not UTF-8 text`)],
  ];
  for (const [body, re] of bad) {
    srv.reply = () => ({ body, headers: { etag: '"bad"' } });
    await t.rejects(loadSettings(h.opts()), { code: 'ECONFIG', message: re }, re.source);
    t.same(h.cache(), before, 'cache kept');
  }
  // Once the server is fixed (or offline), the kept copy still works.
  const r = await loadSettings(h.opts({ offline: true }));
  t.equal(r.settings['fetch-revision'], 'stable');
});

t.test('an HTML page (captive portal) counts as no download', async (t) => {
  const srv = await startServer(t);
  const h = await homeWithCache(t, srv);
  for (const reply of [
    { body: '<html><body>Please log in</body></html>', headers: { 'content-type': 'text/html; charset=utf-8' } },
    { body: '\n<!DOCTYPE html>\n<title>Login</title>\n', headers: { 'content-type': 'text/plain' } },
  ]) {
    srv.reply = () => reply;
    const r = await loadSettings(h.opts());
    t.match(r.warnings[0], /answered with an HTML page, not a config \(a captive portal or a wrong URL\?\); using the copy cached/);
    t.equal(r.settings['fetch-revision'], 'stable');
  }
});

t.test('an oversized download is refused', async (t) => {
  const srv = await startServer(t);
  const h = await homeWithCache(t, srv);
  srv.reply = () => ({ body: Buffer.alloc(2 << 20, '# padding\n') });
  const r = await loadSettings(h.opts());
  t.match(r.warnings[0], /is larger than 1048576 bytes; a config must be small; using the copy cached/);
});

t.test('noconfig (file or command line) skips download and cache; noconfig=0 re-enables', async (t) => {
  const srv = await startServer(t);
  const h = await homeWithCache(t, srv);
  h.setCmdline('quiet noconfig');
  let r = await loadSettings(h.opts());
  t.equal(srv.requests.length, 0, 'no request');
  t.equal(r.settings['fetch-revision'], 'master', 'cached copy not read either');
  t.equal(r.settings.noconfig, true);
  t.same(r.sources.at(-1), { kind: 'download', source: '(gitroot.config)', status: 'skipped' });
  t.same(r.warnings, []);
  h.setConf('conf.d/50-off.conf', 'noconfig\n');
  h.setCmdline('quiet');
  r = await loadSettings(h.opts());
  t.equal(srv.requests.length, 0);
  t.equal(r.settings['fetch-revision'], 'master');
  h.setCmdline('quiet noconfig=0');
  r = await loadSettings(h.opts());
  t.equal(srv.requests.length, 1);
  t.equal(r.settings['fetch-revision'], 'stable');
});

t.test('noupgrade and --offline: no request, the cached copy is read', async (t) => {
  const srv = await startServer(t);
  const h = await homeWithCache(t, srv);
  srv.reply = () => ({ body: 'fetch-revision=fresh\n' });
  h.setCmdline('quiet noupgrade');
  let r = await loadSettings(h.opts());
  t.equal(srv.requests.length, 0);
  t.equal(r.settings['fetch-revision'], 'stable');
  t.equal(r.sources.at(-1)!.status, 'cached');
  t.same(r.warnings, [], 'noupgrade is on purpose: no warning');
  h.setCmdline('quiet');
  r = await loadSettings(h.opts({ offline: true }));
  t.equal(srv.requests.length, 0);
  t.equal(r.settings['fetch-revision'], 'stable');
  t.match(r.warnings, [new RegExp(`^offline: not downloading ${srv.base}/fleet.conf; using the copy cached at`)]);
  // The fleet can stop updates too; it cannot stop its own download.
  srv.reply = () => ({ body: 'noupgrade\n' });
  r = await loadSettings(h.opts());
  t.equal(r.settings.noupgrade, true);
  r = await loadSettings(h.opts());
  t.equal(srv.requests.length, 2, 'downloaded again: noupgrade from the fleet config does not stop its download');
});

t.test('a cache that does not match its checksum, or no longer parses, is not used', async (t) => {
  const srv = await startServer(t);
  const h = await homeWithCache(t, srv);
  const cdir = join(h.dir, CONFIG_CACHE_DIR);
  srv.reply = () => ({ status: 500 });
  writeFileSync(join(cdir, 'downloaded.conf'), 'fetch-revision=tampered\n');
  let r = await loadSettings(h.opts());
  t.equal(r.settings['fetch-revision'], 'master');
  t.match(r.warnings[0], /no cached copy either/);
  // Consistent, but written by an older gitroot that knew a key this one does not.
  const old = Buffer.from('gitroot.retired-key=1\n');
  const meta = JSON.parse(readFileSync(join(cdir, 'downloaded.json'), 'utf8')) as ConfigCacheMeta;
  writeFileSync(join(cdir, 'downloaded.conf'), old);
  writeFileSync(join(cdir, 'downloaded.json'), JSON.stringify({ ...meta, sha256: createHash('sha256').update(old).digest('hex') }));
  r = await loadSettings(h.opts());
  t.match(
    r.warnings[0],
    /HTTP 500.*; the cached copy is not valid any more \(.*unknown setting 'gitroot.retired-key'.*\), continuing without the fleet config/,
  );
  t.equal(r.sources.at(-1)!.status, 'unavailable');
  // Without an ETag sent (the cache is unusable) a good answer replaces it.
  srv.reply = (_p, hd) => ({ body: `fetch-revision=${hd['if-none-match'] === undefined ? 'fresh' : 'etag-sent'}\n` });
  r = await loadSettings(h.opts());
  t.equal(r.settings['fetch-revision'], 'fresh');
});

t.test('file:// URLs', async (t) => {
  const h = home(t);
  const fleet = join(h.etc, 'fleet.txt');
  writeFileSync(fleet, 'gitroot.tries=7\n');
  const url = pathToFileURL(fleet).href;
  h.setCmdline(`quiet gitroot.config=${url}`);
  let r = await loadSettings(h.opts());
  t.equal(r.settings['gitroot.tries'], 7);
  t.same(r.origins['gitroot.tries'], { kind: 'download', source: url, line: 1 });
  t.equal(h.cache().meta!.url, url);
  rmSync(fleet);
  r = await loadSettings(h.opts());
  t.equal(r.settings['gitroot.tries'], 7);
  t.match(r.warnings[0], /could not read file:.*fleet\.txt: ENOENT; using the copy cached/);
});

t.test('passwords in the URL are sent, but never shown', async (t) => {
  const srv = await startServer(t);
  const h = home(t);
  srv.reply = (_p, hd) => (hd.authorization === `Basic ${Buffer.from('fleet:s3cret').toString('base64')}` ? { body: 'gitroot.tries=9\n' } : { status: 401 });
  const url = srv.base.replace('http://', 'http://fleet:s3cret@') + '/c.conf';
  h.setCmdline(`quiet gitroot.config=${url} gitroot.retries=0`);
  let r = await loadSettings(h.opts());
  t.equal(r.settings['gitroot.tries'], 9);
  t.equal(r.origins['gitroot.tries'].source, srv.base.replace('http://', 'http://fleet:***@') + '/c.conf');
  srv.reply = () => ({ status: 500 });
  r = await loadSettings(h.opts());
  t.notMatch(JSON.stringify(r.warnings) + JSON.stringify(r.origins) + JSON.stringify(r.sources), /s3cret/);
  t.equal(r.settings['gitroot.config'], url, 'the setting itself keeps it (the fetcher needs it)');
});

t.test('proxy from http_proxy (curl rules, shared with the fetcher), bypassed by no_proxy', async (t) => {
  const srv = await startServer(t);
  const proxy = await startProxy(t);
  const h = home(t);
  srv.reply = () => ({ body: 'gitroot.tries=8\n' });
  // A name, not 127.0.0.1: loopback never goes through a proxy. The test proxy sends every
  // tunnel to 127.0.0.1; without the proxy the name does not resolve (.invalid, RFC 2606).
  const port = new URL(srv.base).port;
  const base = `http://fleet.invalid:${port}`;
  h.setCmdline(`quiet gitroot.config=${base}/c.conf gitroot.retries=0 gitroot.timeout=5`);
  let r = await loadSettings(h.opts({ env: { http_proxy: proxy.url } }));
  t.equal(r.settings['gitroot.tries'], 8);
  t.same(proxy.targets, [`fleet.invalid:${port}`], 'tunnelled through the proxy');
  r = await loadSettings(h.opts({ env: { http_proxy: proxy.url, no_proxy: 'example.com,.invalid' } }));
  t.same(proxy.targets, [`fleet.invalid:${port}`], 'no_proxy: direct (and the name does not resolve)');
  t.match(r.warnings.join('\n'), /fleet\.invalid/, 'the direct attempt failed as it must');
  r = await loadSettings(h.opts({ env: { HTTP_PROXY: proxy.url } }));
  t.same(proxy.targets, [`fleet.invalid:${port}`], 'upper-case HTTP_PROXY is not used for http:// (curl: httpoxy)');
  r = await loadSettings(h.opts({ env: { HTTPS_PROXY: proxy.url } }));
  t.same(proxy.targets, [`fleet.invalid:${port}`], 'HTTPS_PROXY is not used for http://');
  r = await loadSettings(h.opts({ env: { ALL_PROXY: proxy.url } }));
  t.equal(r.settings['gitroot.tries'], 8);
  t.same(proxy.targets, [`fleet.invalid:${port}`, `fleet.invalid:${port}`], 'ALL_PROXY is');
  t.equal(srv.requests.length, 2, 'only the proxied attempts reached the server');
});
