/**
 * The file names inside an initrd, read without unpacking it: initrds are one or more cpio
 * (newc) archives, the first often uncompressed (CPU microcode), the rest compressed with
 * gzip, zstd, xz, lz4 or bzip2. gzip is inflated by node:zlib; the others by the system's
 * own decompressor (Node 20's zlib has no zstd or xz), fed the rest of the file on stdin.
 * What `gitroot image` asks of it: does this initrd boot gitroot?
 */
import { spawn } from 'node:child_process';
import { createReadStream, openSync, readSync, closeSync } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { ObjectCorruptError, UsageError } from '../errors/errors.js';

const NEWC_HEADER = 110;
const TRAILER = 'TRAILER!!!';

/** Compression of the bytes at the start of `head`, or 'cpio', or null when unknown. */
export function initrdFormat(head: Buffer): 'cpio' | 'gzip' | 'zstd' | 'xz' | 'lz4' | 'bzip2' | null {
  if (head.length >= 6 && (head.toString('latin1', 0, 6) === '070701' || head.toString('latin1', 0, 6) === '070702')) return 'cpio';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.readUInt32LE(0) === 0x184c2102 || head.readUInt32LE(0) === 0x184d2204) return 'lz4';
  if (head.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  return null;
}

/**
 * An incremental newc parser: feed() it bytes, it collects names. After an archive's trailer
 * it skips the zero padding; `afterTrailer` then tells where a following non-cpio part starts.
 */
class CpioNames {
  names: string[] = [];
  private buf: Buffer = Buffer.alloc(0);
  /** Bytes consumed so far (of the input fed). */
  consumed = 0;
  /** Set when, after a trailer and padding, the input continues with something that is not cpio. */
  stoppedAt: number | null = null;
  private skip = 0;
  private betweenArchives = false;

  feed(chunk: Buffer): void {
    if (this.stoppedAt !== null) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.buf.length);
        this.buf = this.buf.subarray(n);
        this.skip -= n;
        this.consumed += n;
        if (this.skip > 0) return;
      }
      if (this.betweenArchives) {
        let z = 0;
        while (z < this.buf.length && this.buf[z] === 0) z++;
        this.buf = this.buf.subarray(z);
        this.consumed += z;
        if (this.buf.length < 6) return;
        if (initrdFormat(this.buf) !== 'cpio') {
          this.stoppedAt = this.consumed;
          return;
        }
        this.betweenArchives = false;
      }
      if (this.buf.length < NEWC_HEADER) return;
      const magic = this.buf.toString('latin1', 0, 6);
      if (magic !== '070701' && magic !== '070702') throw new ObjectCorruptError('the initrd has a damaged cpio header: rebuild it (update-initramfs -u)');
      const fileSize = parseInt(this.buf.toString('latin1', 54, 62), 16);
      const nameSize = parseInt(this.buf.toString('latin1', 94, 102), 16);
      const nameEnd = NEWC_HEADER + nameSize;
      const dataStart = (nameEnd + 3) & ~3;
      if (this.buf.length < dataStart) return;
      const name = this.buf.toString('utf8', NEWC_HEADER, nameEnd - 1);
      this.buf = this.buf.subarray(dataStart);
      this.consumed += dataStart;
      if (name === TRAILER) {
        this.betweenArchives = true;
        continue;
      }
      this.names.push(name.replace(/^\.\//, '').replace(/^\//, ''));
      this.skip = (fileSize + 3) & ~3;
    }
  }
}

function decompressor(format: 'zstd' | 'xz' | 'lz4' | 'bzip2'): { cmd: string; pkg: string } {
  return { zstd: { cmd: 'zstd', pkg: 'zstd' }, xz: { cmd: 'xz', pkg: 'xz-utils' }, lz4: { cmd: 'lz4', pkg: 'lz4' }, bzip2: { cmd: 'bzip2', pkg: 'bzip2' } }[
    format
  ];
}

async function feedStream(parser: CpioNames, stream: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of stream) parser.feed(chunk as Buffer);
}

/** Feeds the decompressed bytes of `file` from `offset` to `parser`. */
async function feedCompressed(file: string, offset: number, format: NonNullable<ReturnType<typeof initrdFormat>>, parser: CpioNames): Promise<void> {
  const input = createReadStream(file, { start: offset });
  if (format === 'gzip') {
    await feedStream(parser, input.pipe(createGunzip()));
    return;
  }
  if (format === 'cpio') throw new Error('unreachable');
  const { cmd, pkg } = decompressor(format);
  const child = spawn(cmd, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (e) =>
      reject(
        (e as NodeJS.ErrnoException).code === 'ENOENT' ? new UsageError(`reading a ${format} initrd needs ${cmd}: install it (apt-get install ${pkg})`) : e,
      ),
    );
    child.on('close', resolve);
  });
  child.stdin.on('error', () => {
    /* the decompressor stopped reading: its exit status tells */
  });
  input.pipe(child.stdin);
  await feedStream(parser, child.stdout);
  const code = await exited;
  if (code !== 0)
    throw new ObjectCorruptError(`the initrd's ${format} data is damaged (${cmd}: ${stderr.trim().split('\n')[0] ?? `exit ${code}`}): rebuild it`);
}

/** Every file name in the initrd at `file` (paths without a leading `./` or `/`). */
export async function listInitrd(file: string): Promise<string[]> {
  const head = Buffer.alloc(8);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, 8, 0);
  } finally {
    closeSync(fd);
  }
  const parser = new CpioNames();
  let format = initrdFormat(head);
  if (format === null) throw new ObjectCorruptError('the initrd is neither a cpio archive nor compressed in a known way: rebuild it');
  if (format === 'cpio') {
    await feedStream(parser, createReadStream(file));
    if (parser.stoppedAt === null) return parser.names;
    const at = parser.stoppedAt;
    const rest = Buffer.alloc(8);
    const fd2 = openSync(file, 'r');
    try {
      readSync(fd2, rest, 0, 8, at);
    } finally {
      closeSync(fd2);
    }
    format = initrdFormat(rest);
    if (format === null || format === 'cpio')
      throw new ObjectCorruptError('the initrd continues after its first archive with data of no known format: rebuild it');
    const tail = new CpioNames();
    await feedCompressed(file, at, format, tail);
    return [...parser.names, ...tail.names];
  }
  await feedCompressed(file, 0, format, parser);
  return parser.names;
}

/** Paths whose presence shows an initrd boots gitroot: the initramfs-tools script or the dracut module, and the bundle. */
export function initrdBootsGitroot(names: readonly string[]): boolean {
  const set = new Set(names);
  const script = set.has('scripts/gitroot') || names.some((n) => /(^|\/)95gitroot\/|mount-gitroot\.sh$/.test(n));
  return script && set.has('usr/lib/gitroot/gitroot.cjs');
}
