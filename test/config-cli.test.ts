/**
 * `gitroot config` end to end through the compiled CLI: pure JSON on stdout with --json,
 * the human listing (which reads back as a config file), --show-origin, warnings on
 * stderr, exit 2 with one line naming file:line for a typo, and a fleet config server on
 * 127.0.0.1 that fails.
 */
// needs: server
import t, { type Test } from 'tap';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText } from '../lib/params/settings-grammar.js';
import { resolveSettings } from '../lib/params/settings-resolve.js';
import { SETTING_KEYS } from '../lib/params/settings-schema.js';
import { spawn } from 'node:child_process';
import { CLI, gitroot, type CliResult } from './helpers/cli.js';

const SHA = 'c0ffee0000000000000000000000000000000000';

interface Setup {
  dir: string;
  etc: string;
  conf: string;
  cmdline: string;
  args: string[];
}

function setup(t: Test, conf: string, cmdline: string): Setup {
  const root = mkdtempSync(join(tmpdir(), 'gitroot-config-cli-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'home');
  const etc = join(root, 'etc');
  mkdirSync(dir);
  mkdirSync(join(etc, 'conf.d'), { recursive: true });
  writeFileSync(join(etc, 'gitroot.conf'), conf);
  writeFileSync(join(root, 'cmdline'), cmdline);
  return {
    dir,
    etc,
    conf: join(etc, 'gitroot.conf'),
    cmdline: join(root, 'cmdline'),
    args: ['config', '--dir', dir, '--config', etc, '--cmdline', join(root, 'cmdline')],
  };
}

/** A server on 127.0.0.1 answering every request with `status`, closed in teardown. */
async function failingServer(t: Test, status: number): Promise<{ base: string; hits: () => number }> {
  let hits = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((_req, res) => {
    hits++;
    res.writeHead(status).end('no');
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits };
}

/** `gitroot ARGS` without blocking the event loop (for tests whose server runs in this process). */
async function gitrootAsync(args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'close')) as [number | null];
  return { status: code ?? 128, stdout, stderr };
}

const CONF = '# site\ngitroot.tries=4\ngitroot.bootloader=bls\ngitroot.boot="/boot/my efi"\n';
const CMDLINE = `BOOT_IMAGE=/vmlinuz quiet root=/dev/sda1 noupgrade git-revision=${SHA} fetch_revision=oops\n`;

t.test('--json: one JSON object on stdout, nothing else anywhere', async (t) => {
  const s = setup(t, CONF, CMDLINE);
  const r = gitroot([...s.args, '--json']);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, '', 'warnings go into the JSON, not stderr');
  const doc = JSON.parse(r.stdout) as Record<string, unknown> & { settings: Record<string, unknown>; origins: Record<string, unknown>; warnings: string[] };
  t.same(Object.keys(doc), ['settings', 'origins', 'warnings', 'sources']);
  t.same(Object.keys(doc.settings), SETTING_KEYS);
  t.same(Object.keys(doc.origins), SETTING_KEYS);
  t.match(doc.settings, {
    'gitroot.tries': 4,
    'gitroot.bootloader': 'bls',
    'gitroot.boot': '/boot/my efi',
    noupgrade: true,
    'git-revision': SHA,
    'gitroot.remote': null,
    'fetch-revision': 'master',
  });
  t.same(doc.origins['gitroot.tries'], { kind: 'file', source: s.conf, line: 2 });
  t.same(doc.origins.noupgrade, { kind: 'cmdline', source: s.cmdline });
  t.same(doc.origins['fetch-revision'], { kind: 'default', source: 'default' });
  t.same(doc.warnings, [`${s.cmdline}: 'fetch_revision=oops': not a gitroot setting, ignored (did you mean fetch-revision?)`]);
  t.same(doc.sources, [
    { kind: 'file', source: s.conf, status: 'read' },
    { kind: 'cmdline', source: s.cmdline, status: 'read' },
  ]);
});

t.test('human listing: key=value per key, warnings on stderr, reads back as config', async (t) => {
  const s = setup(t, CONF, CMDLINE);
  const r = gitroot(s.args);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, `gitroot: warning: ${s.cmdline}: 'fetch_revision=oops': not a gitroot setting, ignored (did you mean fetch-revision?)\n`);
  const lines = r.stdout.trimEnd().split('\n');
  t.equal(lines.length, SETTING_KEYS.length);
  t.same(lines.slice(0, 5), ['fetch-revision=master', '# update-revision is not set', 'noupgrade=true', `git-revision=${SHA}`, '# gitroot.remote is not set']);
  t.ok(lines.includes('gitroot.boot="/boot/my efi"'));
  t.ok(lines.includes('gitroot.tries=4'));
  // What it prints is what it means: parsed back, it resolves to the same settings.
  const json = JSON.parse(gitroot([...s.args, '--json']).stdout) as { settings: unknown };
  const back = resolveSettings({ files: [], cmdline: { kind: 'cmdline', name: 'out', tokens: parseConfigText(r.stdout, 'out') } });
  t.same(back.settings, json.settings);
});

t.test('--show-origin: origin, a tab, then the setting', async (t) => {
  const s = setup(t, CONF, CMDLINE);
  const r = gitroot([...s.args, '--show-origin']);
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.equal(lines.length, SETTING_KEYS.length);
  t.ok(
    lines.every((l) => l.split('\t').length === 2),
    'two columns',
  );
  t.ok(lines.includes('default\tfetch-revision=master'));
  t.ok(lines.includes('default\t# gitroot.remote is not set'));
  t.ok(lines.includes(`${s.conf}:2\tgitroot.tries=4`));
  t.ok(lines.includes(`${s.conf}:4\tgitroot.boot="/boot/my efi"`));
  t.ok(lines.includes(`${s.cmdline}\tnoupgrade=true`));
  t.ok(lines.includes(`${s.cmdline}\tgit-revision=${SHA}`));
});

t.test('a typo in a config file: exit 2, one line naming file:line, nothing on stdout', async (t) => {
  const s = setup(t, CONF, CMDLINE);
  writeFileSync(join(s.etc, 'conf.d/10-fleet.conf'), '# fleet\n\ngitroot.bootlaoder=bls\n');
  for (const extra of [[], ['--json'], ['--show-origin']]) {
    const r = gitroot([...s.args, ...extra]);
    t.equal(r.status, 2);
    t.equal(r.stdout, '');
    t.equal(r.stderr.split('\n').length, 2, 'exactly one line');
    t.equal(
      r.stderr,
      `gitroot: ${join(s.etc, 'conf.d/10-fleet.conf')}:3: unknown setting 'gitroot.bootlaoder' (did you mean gitroot.bootloader?); fix or remove the line (docs/config.md lists them all)\n`,
    );
  }
});

t.test('a bad value on the command line: exit 2 naming the file and the token', async (t) => {
  const s = setup(t, '', 'quiet update-revision=c0ffee\n');
  const r = gitroot(s.args);
  t.equal(r.status, 2);
  t.equal(r.stdout, '');
  t.match(
    r.stderr,
    new RegExp(`^gitroot: ${s.cmdline}: 'update-revision=c0ffee': update-revision needs a full 40-hex commit SHA, not 6 hex digits[^\\n]*\\n$`),
  );
});

t.test('usage errors: no --dir, a --dir that is not a directory, a missing --config', async (t) => {
  const s = setup(t, '', 'quiet\n');
  let r = gitroot(['config', '--cmdline', s.cmdline]);
  t.equal(r.status, 2);
  t.match(r.stderr, /^gitroot: gitroot config needs --dir: this machine was not booted by gitroot[^\n]*\n$/);
  r = gitroot(['config', '--dir', s.cmdline, '--cmdline', s.cmdline, '--config', s.etc]);
  t.equal(r.status, 2);
  t.match(r.stderr, /^gitroot: gitroot home .* is not a directory; pass the right --dir[^\n]*\n$/);
  r = gitroot(['config', '--dir', s.dir, '--cmdline', s.cmdline, '--config', join(s.etc, 'nope')]);
  t.equal(r.status, 2);
  t.match(r.stderr, /^gitroot: config path .*nope does not exist; fix --config[^\n]*\n$/);
});

t.test('an unreachable fleet config is a warning, not a failure; --offline makes no request', async (t) => {
  const srv = await failingServer(t, 500);
  const s = setup(t, `gitroot.config=http://fleet:pw@${srv.base.slice(7)}/k.conf\ngitroot.retries=0\n`, 'quiet\n');
  let r = await gitrootAsync([...s.args, '--show-origin']);
  t.equal(r.status, 0);
  t.equal(srv.hits(), 1);
  t.match(
    r.stderr,
    /^gitroot: warning: could not download http:\/\/fleet:\*\*\*@127\.0\.0\.1:\d+\/k\.conf: HTTP 500 Internal Server Error; no cached copy either, continuing without the fleet config\n$/,
  );
  t.ok(r.stdout.includes(`${s.conf}:1\tgitroot.config=http://fleet:***@${srv.base.slice(7)}/k.conf`), 'password not shown');
  t.notMatch(r.stdout + r.stderr, /:pw@/);
  r = await gitrootAsync([...s.args, '--offline', '--json']);
  t.equal(r.status, 0);
  t.equal(srv.hits(), 1, 'no request');
  const doc = JSON.parse(r.stdout) as { warnings: string[] };
  t.match(doc.warnings, [/^offline: not downloading .*; no cached copy either/]);
});
