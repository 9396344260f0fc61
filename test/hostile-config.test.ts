/**
 * Hostile input, settings: values holding shell metacharacters ($(...), backticks,
 * `;`, `|`, `&&`, quotes, `${IFS}`, newlines as `\n` text) in the config file (/etc/gitroot),
 * in the downloaded fleet config (gitroot.config=URL, served from 127.0.0.1) and on the
 * kernel command line, for the settings that name a URL, a path or a revision. Each is run
 * through `gitroot config --json` and `gitroot fetch --json` (and git-revision=
 * through `gitroot select --json`);
 * every value would `touch` a canary file if anything ever handed it to a shell. The canary
 * must never appear; each run either takes the value literally (exit 0, `config --json`
 * shows the exact bytes) or refuses it in one line with a typed exit status.
 *
 * The initramfs-tools boot script's gitroot_parse_cmdline runs under `sh` (dash) with
 * hostile gitroot.medium= / gitroot.dir= values, with the same canary.
 */
// needs: git server
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startGitHttpServer, type GitHttpServer } from '../fixtures/git-http-server.js';
import { PROJECT_ROOT, gitrootAsync } from './helpers/cli.js';
import { commitSpec, debianRoot } from './helpers/deploy-fixtures.js';
import { Campaign } from './helpers/hostile-campaign.js';

const campaign = new Campaign('5-config', 'test/hostile-config.test.ts');
t.teardown(() => campaign.save());

const work = fs.mkdtempSync('/tmp/gitroot-hostile-config-');
const canary = path.join(work, 'CANARY');
let server: GitHttpServer;
let fleet: http.Server;
let fleetText = '';
let fleetUrl = '';

/** Values that create the canary if a shell ever evaluates them. */
const VALUES = [
  `$(touch ${canary})`,
  `\`touch ${canary}\``,
  `x;touch ${canary}`,
  `x|touch ${canary}`,
  `'$(touch ${canary})'`,
  `"$(touch ${canary})"`,
  `x\${IFS}$(touch\${IFS}${canary})`,
];
/** More, for the boot script (cheap to run). */
const MORE_VALUES = [`x&&touch ${canary}`, `x\\ntouch ${canary}`, `$((0))$(touch ${canary})`];

/** Settings tried with each value (paths, URLs, revisions, words). */
const KEYS = ['gitroot.remote', 'fetch-revision', 'update-revision', 'gitroot.boot', 'gitroot.allowed-signers'];

t.before(async () => {
  const projectRoot = path.join(work, 'srv');
  fs.mkdirSync(projectRoot);
  commitSpec(work, path.join(projectRoot, 'os.git'), debianRoot('6.1.0-1-amd64', 'c1'), 'release 1');
  server = await startGitHttpServer({ projectRoot });
  fleet = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(fleetText);
  });
  await new Promise<void>((r) => fleet.listen(0, '127.0.0.1', () => r()));
  fleetUrl = `http://127.0.0.1:${(fleet.address() as AddressInfo).port}/fleet.conf`;
});
t.teardown(async () => {
  await server?.close();
  await new Promise<void>((r) => (fleet ? fleet.close(() => r()) : r()));
  fs.rmSync(work, { recursive: true, force: true });
});

let n = 0;
type Place = 'config file' | 'fleet config' | 'kernel command line';

for (const place of ['config file', 'fleet config', 'kernel command line'] as Place[]) {
  t.test(`hostile values in the ${place}`, async (t) => {
    for (const key of KEYS) {
      for (const value of VALUES) {
        const base = path.join(work, `m${++n}`);
        fs.mkdirSync(path.join(base, 'boot'), { recursive: true });
        const conf = [
          `gitroot.remote=${server.url('os.git')}`,
          'gitroot.bootloader=bls',
          `gitroot.boot=${path.join(base, 'boot')}`,
          'gitroot.retries=0',
          'gitroot.timeout=5',
        ];
        let cmdline = 'BOOT_IMAGE=/vmlinuz quiet';
        if (place === 'config file') conf.push(`${key}=${value}`);
        if (place === 'fleet config') {
          conf.push(`gitroot.config=${fleetUrl}`);
          fleetText = `${key}=${value}\n`;
        }
        if (place === 'kernel command line') cmdline += ` ${key}=${value}`;
        fs.writeFileSync(path.join(base, 'gitroot.conf'), conf.join('\n') + '\n');
        fs.writeFileSync(path.join(base, 'cmdline'), cmdline + '\n');
        const common = ['--dir', path.join(base, 'home'), '--config', path.join(base, 'gitroot.conf'), '--cmdline', path.join(base, 'cmdline')];
        campaign.input();
        const label = `${place}: ${key}=${value.replace(canary, 'CANARY')}`;

        // config and fetch side by side: both only read the settings; fetch alone writes.
        const [cfg, fetch] = await Promise.all([gitrootAsync(['config', ...common, '--json']), gitrootAsync(['fetch', ...common, '--json'])]);
        const errLines = cfg.stderr.trim().split('\n');
        if (cfg.status === 0) {
          const shown = JSON.parse(cfg.stdout).settings?.[key];
          // A value the command line's word splitting cut at a space is still literal text.
          const literal = typeof shown === 'string' && value.startsWith(shown.split(' ')[0]);
          campaign.check(
            t,
            literal || shown === undefined || String(shown) === value,
            `${label}: config takes it literally (${JSON.stringify(shown)?.slice(0, 80)})`,
          );
        } else {
          campaign.check(
            t,
            cfg.status >= 2 && errLines.length === 1 && errLines[0].startsWith('gitroot: '),
            `${label}: config refuses in one line (${cfg.status}: ${errLines[0].replace(canary, 'CANARY').slice(0, 160)})`,
          );
        }
        const fLines = fetch.stderr
          .trim()
          .split('\n')
          .filter((l) => !l.startsWith('gitroot: warning'));
        campaign.check(
          t,
          fetch.status === 0 || (fetch.status >= 2 && fLines.length === 1 && !/\n\s+at /.test(fetch.stderr)),
          `${label}: fetch ends cleanly (${fetch.status}: ${fLines[0]?.replace(canary, 'CANARY').slice(0, 160)})`,
        );
        campaign.check(t, !fs.existsSync(canary), `${label}: never executed (no canary)`);
        fs.rmSync(canary, { force: true });
        fs.rmSync(base, { recursive: true, force: true });
      }
    }
  });
}

t.test('git-revision= on the command line with shell metacharacters', async (t) => {
  for (const value of VALUES) {
    const base = path.join(work, `g${++n}`);
    fs.mkdirSync(path.join(base, 'home'), { recursive: true });
    fs.writeFileSync(path.join(base, 'cmdline'), `quiet git-revision=${value}\n`);
    campaign.input();
    const sel = await gitrootAsync(['select', '--dir', path.join(base, 'home'), '--cmdline', path.join(base, 'cmdline'), '--json']);
    campaign.check(
      t,
      sel.status !== 0 && sel.status !== 1 && !/\n\s+at /.test(sel.stderr),
      `git-revision=${value.replace(canary, 'CANARY')}: select ends cleanly (${sel.status})`,
    );
    campaign.check(t, !fs.existsSync(canary), `git-revision=${value.replace(canary, 'CANARY')}: never executed`);
  }
});

t.test('the initramfs-tools boot script parses gitroot.medium= and gitroot.dir= without evaluating them', async (t) => {
  const script = fs.readFileSync(path.join(PROJECT_ROOT, 'initramfs-hooks', 'initramfs-tools', 'scripts', 'gitroot'), 'utf8');
  const fn = /gitroot_parse_cmdline\(\)\n\{[\s\S]*?\n\}\n/.exec(script)?.[0];
  if (fn === undefined) throw new Error('gitroot_parse_cmdline not found in the boot script');
  // A directory full of names a glob in the values could match.
  const cwd = path.join(work, 'cwd');
  fs.mkdirSync(path.join(cwd, 'gitroot.dir=', 'evil'), { recursive: true });
  const shells = ['sh', 'dash', 'busybox'].filter((s) => spawnSync('sh', ['-c', `command -v ${s}`]).status === 0);
  for (const shell of shells) {
    for (const value of [...VALUES, ...MORE_VALUES].filter((v) => !v.includes(' ')).concat(['*', '/gitroot*', 'x$IFS;y'])) {
      for (const key of ['gitroot.medium', 'gitroot.dir']) {
        campaign.input();
        const cmdline = `BOOT_IMAGE=/vmlinuz ${key}=${value} quiet`;
        // `cat` stands in for reading /proc/cmdline; the function is the script's own text.
        const prog = `cat() { printf '%s\\n' "$CMDLINE"; }\nROOT=/dev/sda1\n${fn}gitroot_parse_cmdline\nprintf '%s\\n%s\\n' "$gitroot_medium" "$gitroot_dir"\n`;
        const argv = shell === 'busybox' ? (['busybox', ['sh', '-c', prog]] as const) : ([shell, ['-c', prog]] as const);
        const r = spawnSync(argv[0], [...argv[1]], { cwd, env: { PATH: process.env.PATH, CMDLINE: cmdline }, encoding: 'utf8' });
        const [medium, dir] = r.stdout.split('\n');
        const got = key === 'gitroot.medium' ? medium : dir;
        // A glob value meets names that match it in the working directory: the script splits
        // the command line with pathname expansion off (set -f), so it stays literal.
        campaign.check(t, r.status === 0 && got === value, `${shell}: ${key}=${value.replace(canary, 'CANARY')} taken literally (${JSON.stringify(got)})`);
        campaign.check(t, !fs.existsSync(canary), `${shell}: ${key}=${value.replace(canary, 'CANARY')}: never executed`);
      }
    }
  }
});
