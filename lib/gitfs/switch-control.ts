/**
 * The control channel of a running git-fs daemon: a unix socket beside its mount
 * (`<dir>/.<name>.gitroot.sock`, e.g. /run/gitroot/.lower.gitroot.sock for the root's lower
 * layer), one JSON line asked, one JSON line answered, then the connection closes.
 *
 * Why a socket beside the mount: the boot daemon runs in the initramfs with its working
 * directory in the home and survives the switch to the real root. Its mountpoint is under the
 * initramfs's /run, which both initramfs flavours move into the new root, and a socket bound
 * there moves with it (a unix socket is found by its inode; the daemon's listening descriptor
 * never needed the path again). So `gitroot switch /run/gitroot/lower` finds it at the same
 * path after the switch-root, and every `gitroot mount` daemon has one the same way. Only
 * root may ask: the socket is created mode 0600 by a root daemon, and connecting needs write
 * permission on it.
 *
 * Requests: {"v":1,"op":"switch","rev":"<rev>","allowedSigners":{"text","source"}?} and
 * {"v":1,"op":"status"}. Answers: {"ok":true,"result":...} or {"ok":false,"code","message"}.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { lstatSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { EXIT_CODES, GitrootError, MountError, UsageError, type ErrorCode } from '../errors/errors.js';

/** Version of the protocol; an answer to another is refused. */
export const CONTROL_VERSION = 1;
/** Largest request read (an allowed-signers file fits many times). */
const MAX_REQUEST = 1024 * 1024;
/** A client that sends nothing for this long is dropped. */
const IDLE_MS = 10_000;
/** Linux's limit for a unix socket path (sun_path, with its NUL). */
const SUN_PATH_MAX = 107;

/** Where the control socket of the mount at `mountpoint` (an absolute, resolved path) is. */
export function controlSocketPath(mountpoint: string): string {
  return join(dirname(mountpoint), `.${basename(mountpoint)}.gitroot.sock`);
}

export interface SwitchRequest {
  v: number;
  op: 'switch';
  rev: string;
  /** An allowed-signers file's text: the revision must be signed by a key it lists. */
  allowedSigners?: { text: string; source: string };
}
export interface StatusRequest {
  v: number;
  op: 'status';
}
export type ControlRequest = SwitchRequest | StatusRequest;

/** What the daemon does for each request (lib/cli/commands/mount.ts wires it to the mount). */
export interface ControlHandlers {
  switchTo(req: SwitchRequest): Promise<unknown>;
  status(): unknown;
}

/** A listening control socket. */
export interface ControlServer {
  path: string;
  close(): void;
}

/** Reads one line from `sock` (at most MAX_REQUEST bytes). */
function readLine(sock: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      text += chunk;
      const nl = text.indexOf('\n');
      if (nl >= 0) resolve(text.slice(0, nl));
      else if (text.length > MAX_REQUEST) reject(new UsageError('control request too long'));
    });
    sock.on('end', () => resolve(text));
    sock.on('error', reject);
  });
}

function parseRequest(line: string): ControlRequest {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    throw new UsageError('control request is not JSON');
  }
  const r = req as Record<string, unknown>;
  if (typeof r !== 'object' || r === null || r.v !== CONTROL_VERSION) {
    throw new UsageError(`control request of another version (${String(r?.v)}; this daemon speaks ${CONTROL_VERSION}): use the gitroot that started it`);
  }
  if (r.op === 'status') return { v: CONTROL_VERSION, op: 'status' };
  if (r.op === 'switch' && typeof r.rev === 'string' && r.rev !== '') {
    const s = r.allowedSigners as { text?: unknown; source?: unknown } | undefined;
    if (s !== undefined && (typeof s.text !== 'string' || typeof s.source !== 'string'))
      throw new UsageError('control request: allowedSigners needs text and source');
    return { v: CONTROL_VERSION, op: 'switch', rev: r.rev, ...(s ? { allowedSigners: { text: s.text as string, source: s.source as string } } : {}) };
  }
  throw new UsageError(`control request: unknown op '${String(r.op)}'`);
}

/** Whether something answers on the socket at `path` now. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    const done = (v: boolean) => {
      c.destroy();
      resolve(v);
    };
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
    c.setTimeout(500, () => done(false));
  });
}

/**
 * Starts the control socket of the mount at `mountpoint` (absolute). A leftover socket of a
 * daemon that died is replaced; when another daemon answers on it, or the socket cannot be
 * made (read-only directory, a path too long), the mount is served without one: `log` says
 * why and null is returned (switching that mount is then unavailable, nothing else).
 */
export async function startControlServer(mountpoint: string, handlers: ControlHandlers, log: (line: string) => void): Promise<ControlServer | null> {
  const path = controlSocketPath(mountpoint);
  if (Buffer.byteLength(path) > SUN_PATH_MAX) {
    log(`no control socket: ${path} is longer than a unix socket path may be; 'gitroot switch' cannot reach this mount`);
    return null;
  }
  try {
    if (lstatSync(path).isSocket()) {
      if (await answers(path)) {
        log(`no control socket: another daemon answers on ${path}; 'gitroot switch' reaches that one`);
        return null;
      }
      unlinkSync(path);
    } else {
      log(`no control socket: ${path} exists and is not a socket; remove it to allow 'gitroot switch'`);
      return null;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      log(`no control socket: cannot replace ${path} (${(e as Error).message})`);
      return null;
    }
  }
  let busy: Promise<unknown> = Promise.resolve();
  const serve = async (sock: Socket): Promise<void> => {
    sock.setTimeout(IDLE_MS, () => sock.destroy());
    let answer: unknown;
    try {
      const req = parseRequest(await readLine(sock));
      sock.setTimeout(0);
      if (req.op === 'status') answer = { ok: true, result: handlers.status() };
      else {
        // One switch at a time, in the order asked.
        const run = busy.then(() => handlers.switchTo(req));
        busy = run.catch(() => undefined);
        answer = { ok: true, result: await run };
      }
    } catch (e) {
      const err = e instanceof GitrootError ? e : new MountError(`switch failed: ${(e as Error)?.message ?? e}`);
      answer = { ok: false, code: err.code, message: err.message };
    }
    if (!sock.destroyed) sock.end(JSON.stringify(answer) + '\n');
  };
  const server: Server = createServer((sock) => {
    void serve(sock);
  });
  const old = process.umask(0o177); // the socket is created 0600: only root may connect
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } catch (e) {
    log(`no control socket: cannot listen on ${path} (${(e as Error).message}); 'gitroot switch' cannot reach this mount`);
    return null;
  } finally {
    process.umask(old);
  }
  const made = lstatSync(path);
  server.unref(); // the mount, not the socket, keeps the daemon alive
  return {
    path,
    close: () => {
      server.close();
      try {
        // Only our own socket (after the switch to the real root the path may not even resolve).
        const now = lstatSync(path);
        if (now.ino === made.ino && now.dev === made.dev) unlinkSync(path);
      } catch {
        /* gone, or not reachable from here */
      }
    },
  };
}

/**
 * Asks the daemon serving `mountpoint` (absolute, resolved) and returns its result; a refusal
 * comes back as the daemon's own typed error. Errors reaching it are one line naming why.
 */
export async function askDaemon(mountpoint: string, req: ControlRequest, timeoutMs = 300_000): Promise<unknown> {
  const path = controlSocketPath(mountpoint);
  const line = await new Promise<string>((resolve, reject) => {
    const sock = createConnection(path);
    let text = '';
    sock.setEncoding('utf8');
    sock.setTimeout(timeoutMs, () => {
      sock.destroy();
      reject(new MountError(`the daemon serving ${mountpoint} did not answer within ${Math.round(timeoutMs / 1000)} s: see its log`));
    });
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d: string) => (text += d));
    sock.on('end', () => resolve(text));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(new MountError(`${mountpoint} has no control socket (${path}): its daemon cannot switch (started by an older gitroot?); remount it to switch`));
      } else if (e.code === 'EACCES' || e.code === 'EPERM') {
        reject(new MountError(`only root may switch ${mountpoint}: ${path} refused this user (${e.code})`));
      } else if (e.code === 'ECONNREFUSED') {
        reject(new MountError(`the daemon serving ${mountpoint} is gone (${path} refuses connections): remount it`));
      } else {
        reject(new MountError(`cannot reach the daemon serving ${mountpoint} at ${path}: ${e.message}`));
      }
    });
  });
  let answer: { ok?: boolean; result?: unknown; code?: ErrorCode; message?: string };
  try {
    answer = JSON.parse(line);
  } catch {
    throw new MountError(`the daemon serving ${mountpoint} answered something that is not JSON: see its log`);
  }
  if (answer.ok === true) return answer.result;
  const code: ErrorCode = answer.code !== undefined && answer.code in EXIT_CODES ? answer.code : 'EMOUNT';
  throw new GitrootError(code, answer.message ?? `the daemon serving ${mountpoint} refused without a reason`);
}
