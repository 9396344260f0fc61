/**
 * A child process for the lock and crash tests (run compiled, from dist/): holds the lock of a
 * gitroot home until told to release it, increments a counter under the lock, or stages
 * revisions in a loop until it is killed. Prints one line per milestone on stdout.
 *
 *   hold DIR COMMAND            take the lock, print `locked`, release on a stdin line or EOF
 *   count DIR N FILE            N times: under the lock, read FILE, pause, write FILE + 1
 *   stage-loop DIR LOADER BOOT SHA...   print `ready`, then stage the SHAs round-robin forever
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { withLock } from '../../lib/home/home-lock.js';
import { stageRevision } from '../../lib/deploy/deploy-stage.js';
import type { BootloaderName } from '../../lib/bootloader/bootloader.js';

async function main(argv: string[]): Promise<void> {
  const [mode, dir, ...rest] = argv;
  if (mode === 'hold') {
    await withLock(dir, { command: rest[0] ?? 'gitroot test' }, async () => {
      process.stdout.write('locked\n');
      await new Promise<void>((resolve) => {
        process.stdin.on('data', () => resolve());
        process.stdin.on('end', () => resolve());
      });
    });
    process.stdout.write('released\n');
    process.stdin.destroy();
    return;
  }
  if (mode === 'count') {
    const n = Number(rest[0]);
    const file = rest[1];
    for (let i = 0; i < n; i++) {
      await withLock(dir, { waitMs: 120_000, command: 'gitroot count' }, async () => {
        const v = Number(fs.readFileSync(file, 'utf8'));
        await sleep(1);
        fs.writeFileSync(file, String(v + 1));
      });
    }
    process.stdout.write('done\n');
    return;
  }
  if (mode === 'stage-loop') {
    const [loader, boot, ...shas] = rest;
    process.stdout.write('ready\n');
    for (let i = 0; ; i++) {
      const r = await stageRevision({
        dir,
        sha: shas[i % shas.length],
        bootloader: loader as BootloaderName,
        bootDir: boot,
        tries: 1 + (i % 3),
        waitMs: 120_000,
        command: 'gitroot stage-loop',
        kernelCmdline: `boot=gitroot quiet loop=${i % 5}`,
      });
      process.stdout.write(`${r.action} ${i}\n`);
    }
  }
  throw new Error(`unknown mode ${mode}`);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`deploy-child: ${(e as Error)?.stack ?? e}\n`);
    process.exit(1);
  },
);
