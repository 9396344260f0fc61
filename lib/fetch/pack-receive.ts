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
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, constants as fsConstants, openSync, promises as fsp, unlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { GitrootError, NetworkError, NoSpaceError, ObjectCorruptError, RemoteError } from '../errors/errors.js';
import { firstErrorLine, gitSpawnFailure } from '../git/git-exec.js';
import { type SidebandPiece, previewBytes } from './pkt-line.js';
import { OID_PATTERN } from '../store/object-id.js';
import { freeBytes } from '../fsutil/free-space.js';

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

/** freeBytes of `dir`'s filesystem, or Infinity when statfs cannot say (index-pack's own ENOSPC is then the check). */
function freeOrUnknown(dir: string): number {
  try {
    return freeBytes(dir);
  } catch {
    return Infinity;
  }
}
const STDERR_KEEP = 64 * 1024;
/** index-pack's report of the pack it wrote (`pack\t<checksum>`, or `keep\t` with --keep). */
const PACK_NAME_LINE = new RegExp(`^(?:pack|keep)\t(${OID_PATTERN})$`, 'm');

/**
 * index-pack's standard input. index-pack reads its input 4 KiB at a time; from the UNIX
 * socket Node gives a child as 'pipe' that costs it up to twice the time of reading a real
 * pipe (measured on the 61 MB Debian pack under load: 3.8-6.5 s vs 2.8-3.9 s). So the pack
 * goes through a FIFO in the quarantine: index-pack gets the read end (non-blocking, which
 * git's xread handles by polling), Node writes the other end as a pipe stream with the usual
 * backpressure. Without mkfifo it falls back to Node's socket pipe.
 */
function openPackInput(fifo: string): {
  childEnd: number | 'pipe';
  writer: Writable | null;
  afterSpawn: () => void;
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
    try {
      unlinkSync(fifo);
    } catch {
      /* gone */
    }
  }
}

/** index-pack running in the quarantine: its input, what it printed, and how it ended. */
class IndexPack {
  /** Where pack data goes (the FIFO's write end, or the child's stdin). */
  readonly stdin: Writable;
  /** Resolves with index-pack's exit code once it has exited and its output is read. */
  readonly exit: Promise<number | null>;
  stdout = '';
  /** The last STDERR_KEEP characters of its standard error. */
  stderr = '';
  /** Objects received so far, from its progress output. */
  receivedObjects: number | undefined;
  spawnError: unknown = null;
  exited = false;
  stdinError: unknown = null;

  private constructor(
    private readonly child: ChildProcess,
    stdin: Writable,
  ) {
    this.stdin = stdin;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => this.onStderr(d));
    this.exit = new Promise<number | null>((resolve) => {
      child.on('error', (err) => {
        this.spawnError = err;
      });
      child.on('close', (code) => {
        this.exited = true;
        resolve(code);
      });
    });
    stdin.on('error', (err) => {
      this.stdinError = err;
    });
  }

  /** Starts `git index-pack --stdin --fix-thin --keep` with the quarantine as object directory. */
  static spawn(opts: PackReceiveOptions): IndexPack {
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
    return new IndexPack(child, input.writer ?? child.stdin!);
  }

  /** Keeps the tail of stderr and the latest "Receiving objects" count. */
  private onStderr(d: string): void {
    this.stderr = (this.stderr + d).slice(-STDERR_KEEP);
    const all = [...d.matchAll(/Receiving objects:\s+\d+% \((\d+)\/\d+\)/g)];
    if (all.length > 0) this.receivedObjects = Number(all[all.length - 1][1]);
  }

  /**
   * True once index-pack takes no more input: it exited or its input failed. index-pack stops
   * reading at the pack's trailer and may exit (0) before the last packets of the response are
   * read (seen under load): that is a finished pack, not a failure.
   */
  get stopped(): boolean {
    return this.exited || this.stdinError !== null;
  }

  /** Resolves when its input has drained, closed, or index-pack has exited. */
  drained(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.stdin.off('drain', done);
        this.stdin.off('close', done);
        this.child.off('close', done);
        resolve();
      };
      this.stdin.on('drain', done);
      this.stdin.on('close', done);
      this.child.on('close', done);
      if (this.exited) done();
    });
  }

  /** Ends its input and waits for it to finish indexing; resolves with its exit code. */
  finish(): Promise<number | null> {
    this.stdin.end();
    return this.exit;
  }

  /** Kills it (unless it has exited) and waits until it has. */
  async abort(): Promise<void> {
    if (!this.exited) this.child.kill('SIGKILL');
    this.stdin.destroy();
    await this.exit;
  }

  /** The error for an index-pack that failed with `code` (no space, or a damaged pack). */
  failure(code: number | null, stream: PackStream, opts: PackReceiveOptions): GitrootError {
    if (this.spawnError !== null) return gitSpawnFailure(this.spawnError);
    const stderr = this.stderr;
    const line = firstErrorLine(stderr.replace(/\r/g, '\n'));
    if (/No space left on device|ENOSPC/i.test(stderr)) {
      // The quarantine is removed by the caller: nothing of this attempt stays (docs/prune.md).
      return new NoSpaceError(
        `no space left in ${opts.quarantine} while storing the pack (the disk filled up after ` +
          `${stream.packBytes} bytes of it; nothing was kept): free space on that filesystem (e.g. 'gitroot prune') and fetch again`,
        { data: { stderr, exitCode: code, packBytes: stream.packBytes } },
      );
    }
    return new NetworkError(
      `${opts.source} sent a damaged or incomplete pack (git index-pack: ${line}): try again later; if it persists, repack the server repository`,
      { data: { stderr, exitCode: code, url: opts.source, serverMessages: stream.serverText } },
    );
  }

  /** The pack's name (hex checksum) from index-pack's output. */
  packName(): string {
    const m = PACK_NAME_LINE.exec(this.stdout);
    if (m === null) {
      throw new ObjectCorruptError(`git index-pack gave no pack name (output "${this.stdout.trim().slice(0, 80)}"): report this`, {
        data: { stdout: this.stdout, stderr: this.stderr },
      });
    }
    return m[1];
  }
}

/**
 * The side-band stream as it is received: pack bytes so far (bounded by the free space), the
 * pack header (bounded object count), the server's progress text and a fatal error (band 3).
 */
class PackStream {
  packBytes = 0;
  /** Objects the pack header claims, once its 12 bytes are in. */
  totalObjects: number | undefined;
  /** The last 4 KiB of band 2 (progress text), for error reports. */
  serverText = '';
  private header = Buffer.alloc(0);
  private errorText = '';
  private lastReport = 0;
  private readonly started = Date.now();
  /** Pack bytes the quarantine's filesystem may take. */
  private readonly room: number;

  constructor(private readonly opts: PackReceiveOptions) {
    this.room = freeOrUnknown(opts.quarantine) - KEEP_FREE_BYTES;
  }

  /** Takes one side-band piece: returns band 1's pack data, null for other bands; throws on band 3 or a bad band. */
  take(piece: SidebandPiece): Buffer | null {
    const { band, data } = piece;
    if (band === 1) {
      this.countPackData(data);
      return data;
    }
    if (band === 2) {
      this.serverText = (this.serverText + data.toString('utf8')).slice(-4096);
    } else if (band === 3) {
      this.errorText += data.toString('utf8');
      if (piece.packetEnd) {
        const text = this.errorText.trim();
        throw new RemoteError(`${this.opts.source} aborted sending the pack: ${text || 'no reason given'}`, {
          data: { url: this.opts.source, serverMessage: text },
        });
      }
    } else {
      throw new NetworkError(`${this.opts.source} sent an invalid side-band packet (band ${band}): the server is broken`, {
        data: { url: this.opts.source, preview: previewBytes(data) },
      });
    }
    return null;
  }

  /** Checks the header while it arrives and counts the bytes against the room left. */
  private countPackData(data: Buffer): void {
    if (this.totalObjects === undefined) this.readHeader(data);
    this.packBytes += data.length;
    if (this.packBytes > this.room) {
      throw new NoSpaceError(
        `${this.opts.source} sent more pack data (${this.packBytes} bytes so far) than the ${Math.max(0, this.room)} bytes ` +
          `free in ${this.opts.quarantine} allow (keeping ${KEEP_FREE_BYTES >> 20} MiB free); nothing was kept: free space (e.g. ` +
          "'gitroot prune') and fetch again, or check the server if it sends a pack that never ends",
        { data: { url: this.opts.source, packBytes: this.packBytes } },
      );
    }
  }

  /** Collects the 12-byte pack header: the PACK signature and an object count gitroot accepts. */
  private readHeader(data: Buffer): void {
    const source = this.opts.source;
    this.header = Buffer.concat([this.header, data.subarray(0, 12 - this.header.length)]);
    if (this.header.length < 12) return;
    if (this.header.toString('latin1', 0, 4) !== 'PACK') {
      throw new NetworkError(`${source} sent data that is not a git pack ("${previewBytes(this.header)}"): the server is broken`, { data: { url: source } });
    }
    const totalObjects = this.header.readUInt32BE(8);
    this.totalObjects = totalObjects;
    if (totalObjects > MAX_PACK_OBJECTS) {
      throw new NetworkError(
        `${source} sent a pack claiming ${totalObjects} objects, more than the ${MAX_PACK_OBJECTS} ` +
          'gitroot accepts: the server is broken or hostile; check it',
        { data: { url: source, objects: totalObjects } },
      );
    }
  }

  /** Calls onProgress, at most every PROGRESS_INTERVAL_MS unless `force`. */
  report(phase: PackProgress['phase'], receivedObjects: number | undefined, force = false): void {
    if (this.opts.onProgress === undefined) return;
    const now = Date.now();
    if (!force && now - this.lastReport < PROGRESS_INTERVAL_MS) return;
    this.lastReport = now;
    const secs = Math.max(0.001, (now - this.started) / 1000);
    this.opts.onProgress({
      phase,
      bytes: this.packBytes,
      bytesPerSecond: Math.round(this.packBytes / secs),
      objects: phase === 'index' ? this.totalObjects : receivedObjects,
      totalObjects: this.totalObjects,
    });
  }
}

/**
 * Feeds band 1 of `packets` into index-pack until the response ends or index-pack stops
 * reading; stops reading the network while index-pack catches up (backpressure).
 */
async function feedPack(packets: AsyncIterable<SidebandPiece[]>, stream: PackStream, indexPack: IndexPack, signal: AbortSignal | undefined): Promise<void> {
  for await (const pieces of packets) {
    if (signal?.aborted) throw signal.reason ?? new Error('aborted');
    let backlog = false;
    for (const piece of pieces) {
      const data = stream.take(piece);
      if (data === null) continue;
      if (indexPack.stopped) break;
      if (data.length > 0 && !indexPack.stdin.write(data)) backlog = true;
    }
    if (indexPack.stopped) return;
    if (backlog) await indexPack.drained();
    stream.report('download', indexPack.receivedObjects);
  }
}

/** Lets index-pack finish (unless it already has) and checks that it succeeded. */
async function finishIndexing(stream: PackStream, indexPack: IndexPack, opts: PackReceiveOptions): Promise<void> {
  let code: number | null;
  if (indexPack.stopped) {
    code = await indexPack.exit;
  } else {
    stream.report('download', indexPack.receivedObjects, true);
    const exit = indexPack.finish();
    stream.report('index', indexPack.receivedObjects, true);
    code = await exit;
  }
  if (code !== 0 || indexPack.spawnError !== null) throw indexPack.failure(code, stream, opts);
}

/** Streams a side-banded pack into index-pack in the quarantine; resolves when it is indexed. */
export async function receivePack(packets: AsyncIterable<SidebandPiece[]>, opts: PackReceiveOptions): Promise<ReceivedPack> {
  const packDir = path.join(opts.quarantine, 'pack');
  await fsp.mkdir(packDir, { recursive: true });
  const indexPack = IndexPack.spawn(opts);
  const stream = new PackStream(opts);
  try {
    await feedPack(packets, stream, indexPack, opts.signal);
    await finishIndexing(stream, indexPack, opts);
  } catch (err) {
    await indexPack.abort();
    throw err;
  }
  const name = indexPack.packName();
  const files = (await fsp.readdir(packDir)).filter((f) => f.startsWith(`pack-${name}.`)).map((f) => path.join(packDir, f));
  return { name, files, packBytes: stream.packBytes, objects: stream.totalObjects ?? 0 };
}
