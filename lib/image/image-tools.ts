/**
 * The system tools a disk image is made with, run without root, loop devices or mounts:
 * sfdisk (the GPT), mformat and mcopy (the FAT boot partition), mkfs.ext4 and debugfs (the
 * data partition), syslinux (the BIOS boot code, installed through mtools). A missing tool
 * is one line naming the Debian package; a failing one names itself and its first error line.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { ToolError, UsageError } from '../errors/errors.js';

/** The Debian package of each tool, for the message when it is missing. */
export const TOOL_PACKAGES: Record<string, string> = {
  sfdisk: 'fdisk',
  mformat: 'mtools',
  mcopy: 'mtools',
  'mkfs.ext4': 'e2fsprogs',
  debugfs: 'e2fsprogs',
  syslinux: 'syslinux',
  git: 'git',
  blockdev: 'util-linux',
  partx: 'util-linux',
  resize2fs: 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  truncate: 'coreutils',
};

/** Runs `cmd` with `args` (and `input` on stdin); resolves to stdout; throws one-line errors. */
export function runTool(cmd: string, args: readonly string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code;
      reject(
        code === 'ENOENT'
          ? new UsageError(`making a disk image needs ${cmd}: install it (apt-get install ${TOOL_PACKAGES[cmd] ?? cmd})`, { data: { tool: cmd } })
          : new ToolError(`cannot run ${cmd} (${code ?? e})`, { cause: e }),
      );
    });
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(stdout);
      const line =
        stderr
          .split('\n')
          .map((l) => l.trim())
          .find((l) => l !== '') ??
        stdout.trim().split('\n')[0] ??
        '';
      reject(new ToolError(`${cmd} failed (${code ?? signal}): ${line || 'no error output'}`, { data: { tool: cmd, args: [...args], stderr } }));
    });
    child.stdin.on('error', () => {
      /* it exited before reading: its status tells */
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs `a | b` (a's stdin given); resolves when both succeeded; one-line error naming the one that failed. */
export function pipeTools(a: [string, readonly string[], string], b: [string, readonly string[]], env: NodeJS.ProcessEnv): Promise<void> {
  const start = (cmd: string, args: readonly string[], stdin: 'pipe') => spawn(cmd, args, { env, stdio: [stdin, 'pipe', 'pipe'] });
  const first = start(a[0], a[1], 'pipe');
  const second = start(b[0], b[1], 'pipe');
  first.stdout.pipe(second.stdin);
  second.stdin.on('error', () => {
    /* the reader exited: its status tells */
  });
  first.stdin.on('error', () => {
    /* likewise */
  });
  first.stdin.end(a[2]);
  second.stdout.resume();
  const wait = (child: ReturnType<typeof start>, cmd: string, args: readonly string[]) =>
    new Promise<void>((resolve, reject) => {
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      child.on('error', (e) =>
        reject(
          (e as NodeJS.ErrnoException).code === 'ENOENT'
            ? new UsageError(`making a disk image needs ${cmd}: install it (apt-get install ${TOOL_PACKAGES[cmd] ?? cmd})`)
            : e,
        ),
      );
      child.on('close', (code, signal) =>
        code === 0
          ? resolve()
          : reject(
              new ToolError(
                `${cmd} ${args.find((x) => !x.startsWith('-') && !x.includes('/')) ?? ''} failed (${code ?? signal}): ${stderr.trim().split('\n')[0] || 'no error output'}`,
                { data: { tool: cmd, args: [...args], stderr } },
              ),
            ),
      );
    });
  return Promise.all([wait(first, a[0], a[1]), wait(second, b[0], b[1])]).then(() => undefined);
}

/** Whether `cmd` can be started (on PATH). */
export async function haveTool(cmd: string): Promise<boolean> {
  try {
    await runTool('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Copies the file `src` into `dst` at byte `offset`, writing only the 1 MiB blocks that are not
 * all zero (`dst` is a sparse file made by truncate, so the holes stay holes).
 */
export function copyInto(src: string, dst: string, offset: number): void {
  const BLOCK = 1024 * 1024;
  const buf = Buffer.alloc(BLOCK);
  const zero = Buffer.alloc(BLOCK);
  const inFd = openSync(src, 'r');
  const outFd = openSync(dst, 'r+');
  try {
    for (let pos = 0; ; pos += BLOCK) {
      let n = 0;
      while (n < BLOCK) {
        const r = readSync(inFd, buf, n, BLOCK - n, pos + n);
        if (r === 0) break;
        n += r;
      }
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      if (!chunk.equals(zero.subarray(0, n))) {
        for (let w = 0; w < n;) w += writeSync(outFd, chunk, w, n - w, offset + pos + w);
      }
      if (n < BLOCK) break;
    }
  } finally {
    closeSync(inFd);
    closeSync(outFd);
  }
}
