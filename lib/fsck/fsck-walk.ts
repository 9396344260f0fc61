/**
 * fsck's reading: every object reachable from the revisions a home keeps (each commit, the
 * tags that lead to it, its whole tree) read back through the object store with full SHA-1
 * verification, each object once; for every broken or missing object, the paths it breaks in
 * each revision; the manifest's parse health per revision; and the pack files' own checksums
 * (the .idx trailer, the .pack trailer and the .idx's record of it). No decisions here:
 * fsck-report.ts turns the findings into a verdict.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { GitrootError, ObjectTooLargeError, UsageError } from '../errors/errors.js';
import { MANIFEST_NAME, parseManifest } from '../manifest/mtree.js';
import { type DamagedCopy, type GitObject, ObjectStore, type ObjectType } from '../store/object-store.js';
import { MODE_GITLINK, MODE_TREE, parseCommit, parseTree } from '../store/git-objects.js';
import { peelTag } from '../store/tag-peel.js';
import { PackIndex } from '../store/pack-index.js';
import { loosePath } from '../store/loose-objects.js';

/** A revision to check and why the home keeps it (`good`, `pending`, `booted`, `previous-good`, `staged`, `ref:<name>`, `asked`). */
export interface FsckRoot {
  revision: string;
  roles: string[];
}

/** An object that cannot be read back as what its parent says it is. */
export interface BrokenObject {
  oid: string;
  /** `corrupt`: stored but fails decoding or verification; `missing`: in no pack and no loose file. */
  problem: 'corrupt' | 'missing';
  /** What its parent says it is. */
  expected: ObjectType;
  /** The pack or loose file holding the damaged copy (null when missing). */
  where: string | null;
  /** One line: why. */
  detail: string;
}

/** Health of a revision's `.gitroot.mtree`. */
export interface ManifestHealth {
  /** `ok` parsed; `absent` no manifest (a plain git tree); `invalid` does not parse; `unreadable` its blob is broken. */
  status: 'ok' | 'absent' | 'invalid' | 'unreadable';
  /** Entries, when it parsed. */
  entries?: number;
  detail?: string;
}

/** What the walk found for one revision. */
export interface RevisionFinding {
  revision: string;
  roles: string[];
  /** `ok` every object reads back verified; `broken` some object is corrupt or missing; `missing` the commit itself is not there. */
  status: 'ok' | 'broken' | 'missing';
  /** Broken objects and the path each breaks ('' = the revision itself: its commit, a tag or the root tree), sorted by path. */
  broken: Array<{ oid: string; path: string }>;
  manifest: ManifestHealth;
}

/** What the checksums of one pack say. */
export interface PackFinding {
  /** Path of the .pack. */
  pack: string;
  /** Path of the .idx. */
  index: string;
  /** Objects the .idx lists (0 when it cannot be read). */
  objects: number;
  bytes: number;
  /** Empty when every check passed. */
  problems: string[];
}

export interface WalkResult {
  revisions: RevisionFinding[];
  /** Every broken object, by id. */
  broken: Map<string, BrokenObject>;
  /** Ids of every object reached (broken ones included). */
  reachable: Set<string>;
  packs: PackFinding[];
  /** Stored copies that failed while another copy of the same object was good. */
  damagedCopies: DamagedCopy[];
  /** Objects read and verified, and their bytes. */
  objectsChecked: number;
  bytesChecked: number;
}

export interface WalkOptions {
  /** Called now and then with objects checked so far and an estimate of the total. */
  onProgress?: (done: number, total: number) => void;
}

const HASH_CHUNK = 4 * 1024 * 1024;
const PROGRESS_EVERY = 256;
/** The body peelTag is given for the commit that ends a chain (fsck reads that commit itself). */
const NO_DATA = Buffer.alloc(0);

/** SHA-1 of bytes [0, end) of an open file, read in chunks. */
function hashFileRange(fd: number, end: number): Buffer {
  const hash = createHash('sha1');
  const buf = Buffer.allocUnsafe(HASH_CHUNK);
  for (let pos = 0; pos < end;) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
    pos += n;
  }
  return hash.digest();
}

/** Checks one pack's files: .idx structure and trailer, .pack header, trailer, and the .idx's record of it. */
export function checkPack(idxPath: string): PackFinding {
  const packPath = idxPath.replace(/\.idx$/, '.pack');
  const finding: PackFinding = { pack: packPath, index: idxPath, objects: 0, bytes: 0, problems: [] };
  let index: PackIndex | null = null;
  try {
    const raw = fs.readFileSync(idxPath);
    if (raw.length < 40) {
      finding.problems.push('the .idx is too short');
    } else if (
      !createHash('sha1')
        .update(raw.subarray(0, raw.length - 20))
        .digest()
        .equals(raw.subarray(raw.length - 20))
    ) {
      finding.problems.push('the .idx checksum does not match its content');
    }
    index = PackIndex.load(idxPath);
    finding.objects = index.count;
  } catch (e) {
    finding.problems.push(`the .idx cannot be read: ${(e as Error).message}`);
  }
  let fd: number;
  try {
    fd = fs.openSync(packPath, 'r');
  } catch (e) {
    finding.problems.push(`the .pack cannot be opened (${(e as NodeJS.ErrnoException).code ?? e})`);
    return finding;
  }
  try {
    const size = fs.fstatSync(fd).size;
    finding.bytes = size;
    if (size < 32) {
      finding.problems.push('the .pack is too short');
      return finding;
    }
    const head = Buffer.alloc(12);
    fs.readSync(fd, head, 0, 12, 0);
    if (head.toString('latin1', 0, 4) !== 'PACK') finding.problems.push('the .pack has no PACK signature');
    else if (index !== null && head.readUInt32BE(8) !== index.count) {
      finding.problems.push(`the .pack holds ${head.readUInt32BE(8)} objects, its .idx ${index.count}`);
    }
    const trailer = Buffer.alloc(20);
    fs.readSync(fd, trailer, 0, 20, size - 20);
    if (!hashFileRange(fd, size - 20).equals(trailer)) finding.problems.push('the .pack checksum does not match its content');
    if (index !== null && !index.packChecksum.equals(trailer)) finding.problems.push('the .pack checksum differs from the one its .idx records');
  } finally {
    fs.closeSync(fd);
  }
  return finding;
}

/** The .idx files of a repository's own objects/pack, sorted. */
export function packIndexes(gitdir: string): string[] {
  const dir = path.join(gitdir, 'objects', 'pack');
  try {
    return fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.idx'))
      .sort()
      .map((n) => path.join(dir, n));
  } catch {
    return [];
  }
}

/** The store's message without the parts the report has in other fields (id, file, the advice). */
function shortDetail(message: string): string {
  const m = /is corrupt \((.+)\): run '/.exec(message);
  return m === null ? message : m[1];
}

/** Loose object files of a repository (for the progress total). */
function countLoose(gitdir: string): number {
  let n = 0;
  for (let i = 0; i < 256; i++) {
    try {
      n += fs.readdirSync(path.join(gitdir, 'objects', i.toString(16).padStart(2, '0'))).length;
    } catch {
      /* no such fan-out directory */
    }
  }
  return n;
}

/** The pack or loose file named by a store error, if any. */
function whereOf(err: unknown): string | null {
  const p = err instanceof GitrootError ? err.data.path : undefined;
  return typeof p === 'string' ? p : null;
}

/** A broken object below a tree, with its path relative to that tree ('' = the tree itself). */
type BrokenPath = { oid: string; path: string };

/** Orders broken paths by path. */
function byPath(a: BrokenPath, b: BrokenPath): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/**
 * One fsck walk over a store: what it found so far (broken, reachable and good objects, the
 * broken paths below each tree, the counts), shared by its steps. Each object is read once.
 */
class RevisionWalk {
  readonly broken = new Map<string, BrokenObject>();
  readonly reachable = new Set<string>();
  objectsChecked = 0;
  bytesChecked = 0;
  /** Objects verified good. */
  private readonly good = new Set<string>();
  /** Broken objects below each tree walked, with their paths relative to it. */
  private readonly treeMemo = new Map<string, BrokenPath[]>();
  /** Where too large blobs are streamed to (opened on first use). */
  private devNull = -1;

  constructor(
    private readonly store: ObjectStore,
    private readonly total: number,
    private readonly onProgress: WalkOptions['onProgress'],
  ) {}

  /** Counts one object checked, reporting progress every PROGRESS_EVERY. */
  private tick(): void {
    this.objectsChecked++;
    if (this.onProgress !== undefined && this.objectsChecked % PROGRESS_EVERY === 0) this.onProgress(Math.min(this.objectsChecked, this.total), this.total);
  }

  /** Reports the final count. */
  reportDone(): void {
    this.onProgress?.(Math.min(this.objectsChecked, this.total), this.total);
  }

  /** Records `oid` as broken (missing, or corrupt with `err` saying why), once. */
  private fail(oid: string, expected: ObjectType, err: unknown): void {
    if (this.broken.has(oid)) return;
    const missing = !this.store.has(oid);
    this.broken.set(oid, {
      oid,
      expected,
      problem: missing ? 'missing' : 'corrupt',
      where: missing ? null : whereOf(err),
      detail: missing ? 'in no pack and no loose file' : shortDetail((err as Error).message),
    });
  }

  /** Records an object that read back verified but does not parse as the `expected` it is. */
  private failParse(oid: string, expected: ObjectType, err: unknown): void {
    this.good.delete(oid);
    this.fail(oid, expected, err);
  }

  /** Reads an object whole and verified, or records it broken and returns null. */
  private read(oid: string, expected: ObjectType): GitObject | null {
    this.reachable.add(oid);
    if (this.broken.has(oid)) return null;
    try {
      const obj = this.store.readObject(oid);
      this.tick();
      this.bytesChecked += obj.data.length;
      if (obj.type !== expected) {
        this.fail(oid, expected, new Error(`object ${oid} is a ${obj.type} where a ${expected} was expected`));
        return null;
      }
      this.good.add(oid);
      return obj;
    } catch (e) {
      if (e instanceof UsageError) throw e;
      this.fail(oid, expected, e);
      return null;
    }
  }

  /** Verifies a blob without keeping it; true when good. */
  private async checkBlob(oid: string): Promise<boolean> {
    this.reachable.add(oid);
    if (this.good.has(oid)) return true;
    if (this.broken.has(oid)) return false;
    try {
      const obj = this.store.readObject(oid);
      this.tick();
      this.bytesChecked += obj.data.length;
      if (obj.type !== 'blob') {
        this.fail(oid, 'blob', new Error(`object ${oid} is a ${obj.type} where a blob was expected`));
        return false;
      }
    } catch (e) {
      if (!(e instanceof ObjectTooLargeError)) {
        this.fail(oid, 'blob', e);
        return false;
      }
      if (!(await this.streamBlob(oid))) return false;
    }
    this.good.add(oid);
    return true;
  }

  /** A blob too large to hold in memory, streamed through the same verification; true when good. */
  private async streamBlob(oid: string): Promise<boolean> {
    if (this.devNull < 0) this.devNull = fs.openSync('/dev/null', 'w');
    try {
      this.bytesChecked += await this.store.copyBlobToFd(oid, this.devNull);
      this.tick();
      return true;
    } catch (err) {
      this.fail(oid, 'blob', err);
      return false;
    }
  }

  /** Checks a tree and everything below it; returns the broken objects below it with their paths (memoized). */
  private async walkTree(oid: string): Promise<BrokenPath[]> {
    const memo = this.treeMemo.get(oid);
    if (memo !== undefined) return memo;
    const out: BrokenPath[] = [];
    const obj = this.read(oid, 'tree');
    let entries: ReturnType<typeof parseTree> | null = null;
    if (obj !== null) {
      try {
        entries = parseTree(obj.data);
      } catch (e) {
        this.failParse(oid, 'tree', e);
      }
    }
    if (entries === null) {
      out.push({ oid, path: '' });
    } else {
      for (const e of entries) {
        const child = e.oid.toString('hex');
        if (e.mode === MODE_GITLINK) continue;
        if (e.mode === MODE_TREE) {
          for (const b of await this.walkTree(child)) out.push({ oid: b.oid, path: b.path === '' ? e.name : `${e.name}/${b.path}` });
        } else if (!(await this.checkBlob(child))) {
          out.push({ oid: child, path: e.name });
        }
      }
    }
    this.treeMemo.set(oid, out);
    return out;
  }

  /** Health of the `.gitroot.mtree` of a root tree already walked. */
  private manifestOf(treeOid: string): ManifestHealth {
    const obj = this.good.has(treeOid) ? this.store.readObject(treeOid) : null;
    if (obj === null) return { status: 'unreadable', detail: 'the root tree is broken' };
    const entry = parseTree(obj.data).find((e) => e.name === MANIFEST_NAME);
    if (entry === undefined) return { status: 'absent' };
    const oid = entry.oid.toString('hex');
    if (this.broken.has(oid)) return { status: 'unreadable', detail: `its blob ${oid} is broken` };
    try {
      const text = this.store.readObject(oid).data.toString('utf8');
      return { status: 'ok', entries: parseManifest(text, `${treeOid}:${MANIFEST_NAME}`).size };
    } catch (e) {
      if (this.broken.has(oid) || !(e instanceof GitrootError) || e.code !== 'EMANIFEST') {
        return { status: 'unreadable', detail: (e as Error).message };
      }
      return { status: 'invalid', detail: (e as Error).message };
    }
  }

  /**
   * The peel reader: only a header is read for what ends the chain (the commit itself is read
   * by peelRoot, and read() records an absent or damaged one); each tag is read whole.
   */
  private readonly peelRead = (id: string): GitObject | null => {
    let type: ObjectType = 'commit';
    try {
      if (this.store.has(id)) type = this.store.readHeader(id).type;
    } catch {
      /* read() records it */
    }
    return type === 'tag' ? this.read(id, 'tag') : { type: 'commit', data: NO_DATA };
  };

  /**
   * Annotated tags (from refs) peel to their commit (lib/store/tag-peel.ts); a tag that does
   * not parse is damaged too. Returns the commit read (null when broken) and its id, or the id
   * where the chain broke.
   */
  private peelRoot(revision: string): { oid: string; commit: GitObject | null } {
    const peeled = peelTag(revision, this.peelRead);
    if (!peeled.ok && peeled.problem === 'malformed') this.failParse(peeled.at, 'tag', peeled.cause);
    const oid = peeled.ok ? peeled.commit : peeled.at;
    return { oid, commit: peeled.ok ? this.read(oid, 'commit') : null };
  }

  /** Checks one revision: its tags, its commit, its whole tree and its manifest. */
  async checkRoot(root: FsckRoot): Promise<RevisionFinding> {
    const finding: RevisionFinding = {
      revision: root.revision,
      roles: root.roles,
      status: 'ok',
      broken: [],
      manifest: { status: 'unreadable', detail: 'the commit is broken' },
    };
    const { oid, commit } = this.peelRoot(root.revision);
    if (commit === null) {
      finding.broken.push({ oid, path: '' });
      finding.status = this.broken.get(oid)?.problem === 'missing' && oid === root.revision ? 'missing' : 'broken';
      return finding;
    }
    let tree: string;
    try {
      tree = parseCommit(commit.data).tree;
    } catch (e) {
      this.failParse(oid, 'commit', e);
      finding.broken.push({ oid, path: '' });
      finding.status = 'broken';
      return finding;
    }
    finding.broken = [...(await this.walkTree(tree))].sort(byPath);
    if (finding.broken.length > 0) finding.status = 'broken';
    finding.manifest = this.manifestOf(tree);
    // A manifest that does not parse stops the mount as surely as a broken object.
    if (finding.manifest.status !== 'ok' && finding.manifest.status !== 'absent') finding.status = 'broken';
    return finding;
  }

  /** Closes what the walk opened. */
  close(): void {
    if (this.devNull >= 0) fs.closeSync(this.devNull);
    this.devNull = -1;
  }
}

/**
 * Walks `roots` in `store` (which must verify by SHA-1, the default) and checks the packs of
 * `gitdir`. Never throws for damage: it is what the result reports.
 */
export async function walkRevisions(store: ObjectStore, gitdir: string, roots: readonly FsckRoot[], opts: WalkOptions = {}): Promise<WalkResult> {
  const packs = packIndexes(gitdir).map(checkPack);
  const total = Math.max(1, packs.reduce((n, p) => n + p.objects, 0) + countLoose(gitdir));
  const walk = new RevisionWalk(store, total, opts.onProgress);
  const revisions: RevisionFinding[] = [];
  try {
    for (const root of roots) revisions.push(await walk.checkRoot(root));
  } finally {
    walk.close();
  }
  walk.reportDone();
  const { broken, reachable, objectsChecked, bytesChecked } = walk;
  // A damaged copy shadowed by a good one is worth reporting once (its object reads fine).
  const damagedCopies = store.damaged().filter((d) => !broken.has(d.oid));
  return { revisions, broken, reachable, packs, damagedCopies, objectsChecked, bytesChecked };
}

/** Where the loose copy of `oid` would be in `gitdir`. */
export function looseObjectPath(gitdir: string, oid: string): string {
  return loosePath(path.join(gitdir, 'objects'), oid);
}
