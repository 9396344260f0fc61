/**
 * Walk a directory that is to become a root filesystem commit and gather lstat facts about
 * every path (symlinks are never followed), then let scan-plan.ts decide what git stores
 * and what the manifest records. Names are read as bytes so non-UTF-8 names are caught.
 */

import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import { resolve } from 'node:path';
import { SourceTreeError } from '../errors/errors.js';
import { pathToken } from '../manifest/mtree.js';
import { readXattrs } from '../native/xattr.js';
import { checkLinkTarget, checkName, fileTypeOf, planScan, type NodeFacts, type ScanResult } from './scan-plan.js';

export type { ScanResult, ScannedFile } from './scan-plan.js';

/** Directories read concurrently; each one lstats its entries concurrently too. */
const DIR_CONCURRENCY = 4;

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? 'EIO';
}

function sourceError(path: string, what: string, err: unknown): SourceTreeError {
  return new SourceTreeError(`cannot ${what} ${pathToken(path)} (${errnoOf(err)}): make it readable by this user, or remove it from the tree`, {
    data: { path },
    cause: err,
  });
}

/** lstat facts, symlink target and xattrs of one path. */
async function gather(path: string, source: string): Promise<NodeFacts> {
  let st;
  try {
    st = await fs.lstat(source, { bigint: true });
  } catch (err) {
    throw sourceError(path, 'stat', err);
  }
  const mode = Number(st.mode);
  const n: NodeFacts = {
    path,
    source,
    mode,
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: st.rdev,
    dev: st.dev,
    ino: st.ino,
    nlink: Number(st.nlink),
    size: Number(st.size),
  };
  const type = fileTypeOf(mode);
  if (type === 'socket') return n;
  if (type === 'link') {
    let target: Buffer;
    try {
      target = await fs.readlink(source, { encoding: 'buffer' });
    } catch (err) {
      throw sourceError(path, 'read symlink', err);
    }
    n.linkTarget = checkLinkTarget(target, path);
  } else if (type === 'file') {
    try {
      await fs.access(source, constants.R_OK);
    } catch (err) {
      throw sourceError(path, 'read', err);
    }
  }
  try {
    const x = readXattrs(source);
    if (x.size > 0) n.xattrs = x;
  } catch (err) {
    // Errors with an errno are about this path; anything else (addon not built) is not.
    if (typeof (err as NodeJS.ErrnoException).errno !== 'number') throw err;
    throw sourceError(path, 'read extended attributes of', err);
  }
  return n;
}

/**
 * Scan `rootdir` (a directory, or a symlink to one; symlinks below it are not followed): the files and symlinks
 * git stores, the manifest entries for what git cannot store, and warnings for skipped
 * sockets. Throws SourceTreeError for a missing or unreadable path, `.git` anywhere, a
 * top-level `.gitroot.mtree`, or a name that is not UTF-8.
 */
export async function scanTree(rootdir: string): Promise<ScanResult> {
  const given = resolve(rootdir);
  let root: string;
  try {
    // The root itself may be reached through a symlink (e.g. /srv/current); nothing below it is.
    root = await fs.realpath(given);
    if (!(await fs.stat(root)).isDirectory()) {
      throw new SourceTreeError(`${given} is not a directory: give the root directory to commit`, { data: { path: given } });
    }
  } catch (err) {
    if (err instanceof SourceTreeError) throw err;
    if (errnoOf(err) === 'ENOENT') {
      throw new SourceTreeError(`${given} does not exist: give the root directory to commit`, { data: { path: given }, cause: err });
    }
    throw new SourceTreeError(`cannot read ${given} (${errnoOf(err)}): check the path and its permissions`, { data: { path: given }, cause: err });
  }

  const nodes: NodeFacts[] = [await gather('', root)];
  const pending: string[] = [''];

  const readDir = async (dir: string): Promise<void> => {
    const abs = dir === '' ? root : `${root}/${dir}`;
    let names: Buffer[];
    try {
      names = await fs.readdir(abs, { encoding: 'buffer' });
    } catch (err) {
      throw sourceError(dir, 'read directory', err);
    }
    const children = await Promise.all(
      names.map((raw) => {
        const name = checkName(raw, dir);
        const path = dir === '' ? name : `${dir}/${name}`;
        return gather(path, `${abs}/${name}`);
      }),
    );
    for (const c of children) {
      nodes.push(c);
      if (fileTypeOf(c.mode) === 'dir') pending.push(c.path);
    }
  };

  // A few directories in flight at once; each worker takes the next pending directory.
  let failure: unknown;
  let active = 0;
  await new Promise<void>((done) => {
    const pump = (): void => {
      while (failure === undefined && active < DIR_CONCURRENCY && pending.length > 0) {
        active++;
        readDir(pending.pop()!).then(
          () => {
            active--;
            pump();
          },
          (err: unknown) => {
            active--;
            failure ??= err;
            pump();
          },
        );
      }
      if (active === 0 && (failure !== undefined || pending.length === 0)) done();
    };
    pump();
  });
  if (failure !== undefined) throw failure;
  return planScan(nodes);
}
