/**
 * Receiving a pack: demultiplexes the side-band packets of an upload-pack answer (band 1 pack
 * data, band 2 progress text, band 3 a fatal error from the server) and streams band 1 into
 * native `git index-pack --stdin --fix-thin --keep` as it arrives, with backpressure, so memory
 * stays bounded whatever the pack size. index-pack checks the pack's trailing checksum,
 * inflates and SHA-1s every object, resolves deltas (completing a thin pack with bases from
 * the repository) and writes pack + index.
 *
 * It runs in a quarantine: GIT_OBJECT_DIRECTORY is a temporary objects directory and the
 * repository's own objects are only an alternate, so nothing half-received or unverified
 * ever lands in the repository. Moving the result in is the caller's job (repo-fetch.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants as fsConstants, openSync, promises as fsp, statfsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { GitrootError, NetworkError, NoSpaceError, ObjectCorruptError, RemoteError } from '../errors/errors.js';
import { firstErrorLine, gitSpawnFailure } from '../git/git-exec.js';
import { type SidebandPiece, previewBytes } from './pkt-line.js';

export interface PackProgress {
  phase: 'download' | 'index';
  /** Pack bytes received so far. */
  bytes: number;
  /** Average download rate since the first byte. */
  bytesPerSecond: number;
  /** Objects index-pack has received so far (from its progress output). */
  objects?: number;
  /** Objects in the pack (from its header). */
  totalObjects?: number;
}

export interface PackReceiveOptions {
  /** The repository index-pack runs for (its config applies). */
  gitdir: string;
  /** The quarantine objects directory; the pack is written to `<quarantine>/pack/`. */
  quarantine: string;
  /** Objects directories index-pack may take thin-pack bases from (the repository's own). */
  alternates: readonly string[];
  /** Text of the .keep file index-pack writes beside the pack. */
  keepMessage: string;
  /** Where the pack comes from, for messages. */
  source: string;
  onProgress?: (p: PackProgress) => void;
  signal?: AbortSignal;
}

export interface ReceivedPack {
  /** The pack's name (hex checksum): files are `<quarantine>/pack/pack-<name>.*`. */
  name: string;
  /** Absolute paths of every file of the pack (.pack, .idx, .keep, .rev if any). */
  files: string[];
  /** Pack bytes received (band 1 only). */
  packBytes: number;
  /** Objects the server sent (pack header count; --fix-thin may add local bases). */
  objects: number;
}

const PROGRESS_INTERVAL_MS = 250;

/**
 * A pack may use the free space its filesystem had when the download started, less this:
 * a server that streams forever is cut off before the disk is full, so state writes on the
 * same filesystem still work.
 */
const KEEP_FREE_BYTES = 16 * 1024 * 1024;

/**
 * Most objects a pack may claim. index-pack keeps ~150 bytes per object in memory, so this
 * bounds its memory (~1.2 GB at the limit); a Debian root is ~6,000 objects, a desktop with
 * years of history a few million.
 */
export const MAX_PACK_OBJECTS = 8_000_000;

/** Free bytes for an unprivileged writer on the filesystem of `dir`, or Infinity when unknown. */
function freeBytes(dir: string): number {
  try {
    const st = statfsSync(dir);
    return st.bavail * st.bsize;
  } catch {
    return Infinity;
  }
}
const STDERR_KEEP = 64 * 1024;

/**
 * index-pack's standard input. index-pack reads its input 4 KiB at a time; from the UNIX
 * socket Node gives a child as 'pipe' that costs it up to twice the time of reading a real
 * pipe (measured on the 61 MB Debian pack under load: 3.8-6.5 s vs 2.8-3.9 s). So the pack
 * goes through a FIFO in the quarantine: index-pack gets the read end (non-blocking, which
 * git's xread handles by polling), Node writes the other end as a pipe stream with the usual
 * backpressure. Without mkfifo it falls back to Node's socket pipe.
 */
function openPackInput(fifo: string): {
  childEnd: number | 'pipe'; writer: Writable | null; afterSpawn: () => void;
} {
  const fallback = { childEnd: 'pipe' as const, writer: null, afterSpawn: () => {} };
  if (spawnSync('mkfifo', ['-m', '600', fifo], { stdio: 'ignore' }).status !== 0) return fallback;
  let readFd = -1;
  try {
    readFd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    const writeFd = openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    const writer = new net.Socket({ fd: writeFd, readable: false, writable: true });
    const childEnd = readFd;
    return { childEnd, writer, afterSpawn: () => closeSync(childEnd) };
  } catch {
    if (readFd >= 0) closeSync(readFd);
    return fallback;
  } finally {
    // Both ends are open (or given up): the name is not needed any more.
    try { unlinkSync(fifo); } catch { /* gone */ }
  }
}

/** Streams a side-banded pack into index-pack in the quarantine; resolves when it is indexed. */
export async function receivePack(packets: AsyncIterable<SidebandPiece[]>, opts: PackReceiveOptions): Promise<ReceivedPack> {
  const packDir = path.join(opts.quarantine, 'pack');
  await fsp.mkdir(packDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GIT_OBJECT_DIRECTORY: opts.quarantine,
    GIT_ALTERNATE_OBJECT_DIRECTORIES: opts.alternates.join(':'),
    GIT_TERMINAL_PROMPT: '0',
    LC_ALL: 'C',
  };
  delete env.GIT_DIR;
  delete env.GIT_INDEX_FILE;
  const args = ['--git-dir', opts.gitdir, 'index-pack', '--stdin', '--fix-thin', `--keep=${opts.keepMessage}`, '-v'];
  const input = openPackInput(path.join(opts.quarantine, 'incoming.fifo'));
  const child = spawn('git', args, { env, stdio: [input.childEnd, 'pipe', 'pipe'] });
  input.afterSpawn();
  const stdin = input.writer ?? child.stdin!;

  let stdout = '';
  let stderr = '';
  let receivedObjects: number | undefined;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-STDERR_KEEP);
    const all = [...d.matchAll(/Receiving objects:\s+\d+% \((\d+)\/\d+\)/g)];
    if (all.length > 0) receivedObjects = Number(all[all.length - 1][1]);
  });
  let spawnError: unknown = null;
  let exited = false;
  const exit = new Promise<number | null>((resolve) => {
    child.on('error', (err) => { spawnError = err; });
    child.on('close', (code) => { exited = true; resolve(code); });
  });
  let stdinError: unknown = null;
  stdin.on('error', (err) => { stdinError = err; });

  const started = Date.now();
  const room = freeBytes(opts.quarantine) - KEEP_FREE_BYTES;
  let packBytes = 0;
  let header = Buffer.alloc(0);
  let totalObjects: number | undefined;
  let lastReport = 0;
  let serverText = '';
  const report = (phase: PackProgress['phase'], force = false) => {
    if (opts.onProgress === undefined) return;
    const now = Date.now();
    if (!force && now - lastReport < PROGRESS_INTERVAL_MS) return;
    lastReport = now;
    const secs = Math.max(0.001, (now - started) / 1000);
    opts.onProgress({ phase, bytes: packBytes, bytesPerSecond: Math.round(packBytes / secs),
      objects: phase === 'index' ? totalObjects : receivedObjects, totalObjects });
  };
  const indexPackFailure = (code: number | null): GitrootError => {
    if (spawnError !== null) return gitSpawnFailure(spawnError);
    const line = firstErrorLine(stderr.replace(/\r/g, '\n'));
    if (/No space left on device|ENOSPC/i.test(stderr)) {
      // The quarantine is removed by the caller: nothing of this attempt stays (docs/prune.md).
      return new NoSpaceError(`no space left in ${opts.quarantine} while storing the pack (the disk filled up after ` +
        `${packBytes} bytes of it; nothing was kept): free space on that filesystem (e.g. 'gitroot prune') and fetch again`,
        { data: { stderr, exitCode: code, packBytes } });
    }
    return new NetworkError(`${opts.source} sent a damaged or incomplete pack (git index-pack: ${line}): try again later; if it persists, repack the server repository`,
      { data: { stderr, exitCode: code, url: opts.source, serverMessages: serverText } });
  };

  try {
    let errorText = '';
    for await (const pieces of packets) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
      let backlog = false;
      for (const { band, data, packetEnd } of pieces) {
        if (band === 1) {
          if (totalObjects === undefined) {
            header = Buffer.concat([header, data.subarray(0, 12 - header.length)]);
            if (header.length >= 12) {
              if (header.toString('latin1', 0, 4) !== 'PACK') {
                throw new NetworkError(`${opts.source} sent data that is not a git pack ("${previewBytes(header)}"): the server is broken`,
                  { data: { url: opts.source } });
              }
              totalObjects = header.readUInt32BE(8);
              if (totalObjects > MAX_PACK_OBJECTS) {
                throw new NetworkError(`${opts.source} sent a pack claiming ${totalObjects} objects, more than the ${MAX_PACK_OBJECTS} ` +
                  'gitroot accepts: the server is broken or hostile; check it', { data: { url: opts.source, objects: totalObjects } });
              }
            }
          }
          packBytes += data.length;
          if (packBytes > room) {
            throw new NoSpaceError(`${opts.source} sent more pack data (${packBytes} bytes so far) than the ${Math.max(0, room)} bytes ` +
              `free in ${opts.quarantine} allow (keeping ${KEEP_FREE_BYTES >> 20} MiB free); nothing was kept: free space (e.g. ` +
              "'gitroot prune') and fetch again, or check the server if it sends a pack that never ends", { data: { url: opts.source, packBytes } });
          }
          if (exited || stdinError !== null) break;
          if (data.length > 0 && !stdin.write(data)) backlog = true;
        } else if (band === 2) {
          serverText = (serverText + data.toString('utf8')).slice(-4096);
        } else if (band === 3) {
          errorText += data.toString('utf8');
          if (packetEnd) {
            const text = errorText.trim();
            throw new RemoteError(`${opts.source} aborted sending the pack: ${text || 'no reason given'}`,
              { data: { url: opts.source, serverMessage: text } });
          }
        } else {
          throw new NetworkError(`${opts.source} sent an invalid side-band packet (band ${band}): the server is broken`,
            { data: { url: opts.source, preview: previewBytes(data) } });
        }
      }
      if (exited || stdinError !== null) break;
      // Backpressure: stop reading the network until index-pack has caught up.
      if (backlog) {
        await new Promise<void>((resolve) => {
          const done = () => { stdin.off('drain', done); stdin.off('close', done); child.off('close', done); resolve(); };
          stdin.on('drain', done);
          stdin.on('close', done);
          child.on('close', done);
          if (exited) done();
        });
      }
      report('download');
    }
    let code: number | null;
    if (exited || stdinError !== null) {
      // index-pack stops reading at the pack's trailer and may exit (0) before the last packets
      // of the response are read (seen under load): that is a finished pack, not a failure.
      code = await exit;
    } else {
      report('download', true);
      stdin.end();
      report('index', true);
      code = await exit;
    }
    if (code !== 0 || spawnError !== null) throw indexPackFailure(code);
  } catch (err) {
    if (!exited) child.kill('SIGKILL');
    stdin.destroy();
    await exit;
    throw err;
  }

  const m = /^(?:pack|keep)\t([0-9a-f]{40})$/m.exec(stdout);
  if (m === null) {
    throw new ObjectCorruptError(`git index-pack gave no pack name (output "${stdout.trim().slice(0, 80)}"): report this`,
      { data: { stdout, stderr } });
  }
  const name = m[1];
  const files = (await fsp.readdir(packDir)).filter((f) => f.startsWith(`pack-${name}.`)).map((f) => path.join(packDir, f));
  return { name, files, packBytes, objects: totalObjects ?? 0 };
}
