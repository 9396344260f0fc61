/**
 * Opens the input of `gitroot commit --from-tar`: a file or a stream (standard input),
 * plain or compressed, recognised by its first bytes (never by its name, since `-` has
 * none and names lie). gzip is inflated in-process by node:zlib (on the libuv thread pool,
 * beside the parser). xz, zstd and bzip2 go through the system's `xz -dc`, `zstd -dc` and
 * `bzip2 -dc`: Node 20's zlib has no xz or zstd, the npm decoders are pure JS and several
 * times slower, and a separate process decompresses on the second core while this one
 * parses and feeds git (the same way `tar -J` runs xz).
 */

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import zlib from 'node:zlib';
import { SourceTreeError } from '../errors/errors.js';

/** How the archive was compressed. */
export type Compression = 'none' | 'gzip' | 'xz' | 'zstd' | 'bzip2';

/** The decompressed archive bytes, and how to stop producing them. */
export interface TarInput {
  chunks: AsyncIterable<Buffer>;
  compression: Compression;
  /** Names the archive in messages. */
  label: string;
  /** Stops reading and ends any decompressor process (idempotent). */
  close(): void;
}

/** Bytes read at once from a file. */
const READ_CHUNK = 256 << 10;

const TOOLS: Record<'xz' | 'zstd' | 'bzip2', { cmd: string; args: string[]; pkg: string }> = {
  xz: { cmd: 'xz', args: ['-dc'], pkg: 'xz-utils' },
  zstd: { cmd: 'zstd', args: ['-dcq'], pkg: 'zstd' },
  bzip2: { cmd: 'bzip2', args: ['-dc'], pkg: 'bzip2' },
};

/** The compression a stream starting with `head` uses (magic numbers of each format). */
export function sniffCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 4 && head.toString('latin1', 0, 3) === 'BZh' && head[3]! >= 0x31 && head[3]! <= 0x39) return 'bzip2';
  return 'none';
}

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? 'EIO';
}

/** First non-empty line of a tool's stderr. */
function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? 'no error output'
  );
}

/**
 * Opens `input` (a path, or a readable stream such as standard input) and starts
 * decompressing it if its first bytes say it is compressed. Throws SourceTreeError for a
 * missing or unreadable file, a directory, or a missing decompressor.
 */
export async function openTarInput(input: string | Readable): Promise<TarInput> {
  const { raw, label } = typeof input === 'string' ? await openArchiveFile(input) : { raw: input, label: 'the archive on standard input' };
  const { compression, chunks } = await sniffStream(raw, label);
  if (compression === 'none') return { chunks, compression, label, close: () => raw.destroy() };
  if (compression === 'gzip') return gunzipInput(raw, chunks, label);
  return toolInput(raw, chunks, compression, label);
}

/** A tar archive file as a stream; refuses a directory and names a missing or unreadable file. */
async function openArchiveFile(path: string): Promise<{ raw: Readable; label: string }> {
  const label = resolve(path);
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(label, 'r');
    if ((await fh.stat()).isDirectory()) {
      await fh.close();
      throw new SourceTreeError(`${label} is a directory, not a tar archive: to commit a directory, give it without --from-tar`, {
        data: { archive: label },
      });
    }
  } catch (err) {
    if (err instanceof SourceTreeError) throw err;
    const code = errnoOf(err);
    throw new SourceTreeError(
      code === 'ENOENT'
        ? `${label} does not exist: give the tar archive to commit, or - for standard input`
        : `cannot read ${label} (${code}): make it readable by this user`,
      { data: { archive: label }, cause: err },
    );
  }
  return { raw: fh.createReadStream({ highWaterMark: READ_CHUNK }), label };
}

/** Peeks at the stream's first bytes (a pipe may deliver them in pieces) for its compression; `chunks` yields the whole stream, those bytes included. */
async function sniffStream(raw: Readable, label: string): Promise<{ compression: Compression; chunks: AsyncGenerator<Buffer> }> {
  const it = raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const readError = (err: unknown): SourceTreeError =>
    err instanceof SourceTreeError
      ? err
      : new SourceTreeError(`cannot read ${label} (${errnoOf(err)}): check the file or the pipe feeding it`, { data: { archive: label }, cause: err });
  const head: Buffer[] = [];
  let headLen = 0;
  let ended = false;
  try {
    while (headLen < 6) {
      const r = await it.next();
      if (r.done) {
        ended = true;
        break;
      }
      head.push(r.value);
      headLen += r.value.length;
    }
  } catch (err) {
    raw.destroy();
    throw readError(err);
  }
  async function* rest(): AsyncGenerator<Buffer> {
    yield* head;
    if (ended) return;
    try {
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    } catch (err) {
      throw readError(err);
    }
  }
  return { compression: sniffCompression(Buffer.concat(head)), chunks: rest() };
}

/** gzip, inflated in-process. */
function gunzipInput(raw: Readable, chunks: AsyncIterable<Buffer>, label: string): TarInput {
  const gunzip = zlib.createGunzip({ chunkSize: 256 << 10 });
  const fed = feed(chunks, gunzip);
  async function* inflated(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of gunzip) yield chunk as Buffer;
    } catch (err) {
      throw (
        fed.error ??
        new SourceTreeError(`${label}: its gzip data is damaged or truncated (${(err as Error).message}): create or download the archive again`, {
          data: { archive: label },
          cause: err,
        })
      );
    }
    if (fed.error) throw fed.error;
  }
  return {
    chunks: inflated(),
    compression: 'gzip',
    label,
    close: () => {
      raw.destroy();
      gunzip.destroy();
    },
  };
}

/** xz, zstd or bzip2, through the system's decompressor (TOOLS) in its own process. */
function toolInput(raw: Readable, chunks: AsyncIterable<Buffer>, compression: keyof typeof TOOLS, label: string): TarInput {
  const tool = TOOLS[compression];
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(tool.cmd, tool.args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const exited = new Promise<{ code: number | null; spawnError?: unknown }>((res) => {
    child.on('error', (err) => res({ code: null, spawnError: err }));
    child.on('close', (code) => res({ code }));
  });
  const fed = feed(chunks, child.stdin);
  async function* decompressed(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of child.stdout) yield chunk as Buffer;
    } catch {
      /* the exit status below says what happened */
    }
    const { code, spawnError } = await exited;
    if (spawnError !== undefined) {
      throw new SourceTreeError(
        errnoOf(spawnError) === 'ENOENT'
          ? `${label} is ${compression}-compressed, but ${tool.cmd} is not installed: install ${tool.pkg} (apt-get install ${tool.pkg}), or decompress the archive first`
          : `cannot run ${tool.cmd} to decompress ${label} (${errnoOf(spawnError)}): check the installation of ${tool.pkg}`,
        { data: { archive: label }, cause: spawnError },
      );
    }
    if (fed.error) throw fed.error;
    if (code !== 0) {
      throw new SourceTreeError(
        `${label}: its ${compression} data is damaged or truncated (${tool.cmd}: ${firstLine(stderr).replace(/^[^:]*: /, '')}): create or download the archive again`,
        { data: { archive: label, exitCode: code, stderr } },
      );
    }
  }
  return {
    chunks: decompressed(),
    compression,
    label,
    close: () => {
      raw.destroy();
      child.stdin.destroy();
      child.stdout.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
  };
}

/** Copies `from` into `to` with backpressure; a read error is kept for the consumer (a write error means `to` went away). */
function feed(from: AsyncIterable<Buffer>, to: Writable): { error?: unknown } {
  const state: { error?: unknown } = {};
  to.on('error', () => {
    /* the decompressor exited early: its status or output tells */
  });
  void (async () => {
    try {
      for await (const chunk of from) {
        if (to.destroyed) return;
        if (!to.write(chunk)) await once(to, 'drain');
      }
      to.end();
    } catch (err) {
      if (to.destroyed || (err as NodeJS.ErrnoException).code === 'EPIPE') return;
      state.error = err;
      to.destroy();
    }
  })();
  return state;
}
