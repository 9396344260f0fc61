/**
 * `gitroot commit --from-tar`: records a tar archive (a file or standard input; plain,
 * gzip, xz or zstd) as a commit, exactly as `gitroot commit DIR` records the tree that
 * root would get by extracting it, without extracting anything: no root privileges and no
 * disk space for the tree are needed.
 *
 * Each member's content goes into git fast-import as the member arrives (archives come in
 * any order and may be pipes: nothing is buffered but one chunk); the facts of every member
 * are kept (a few hundred bytes each) and, at the end of the archive, planScan decides the
 * tree and the manifest from them, as it does for a directory scan. The steps around it
 * (branch, idents, repository, signing) are commitSource's: a damaged archive fails before
 * the commit is written, and the branch stays as it was.
 */

import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { openTarInput, type TarInput } from '../tar/tar-decompress.js';
import { TarReader, type TarMember } from '../tar/tar-read.js';
import { commitSource, type CommitResult, type CommitTargetOptions, type TreeSource } from './commit-tree.js';
import { planScan } from './scan-plan.js';
import { TarTreeFacts } from './tar-facts.js';

/** Options of commitTar. */
export interface TarCommitOptions extends CommitTargetOptions {
  /** The archive: a file path, or a stream such as standard input. */
  input: string | Readable;
  /** Called after each member: (members read, bytes of file content so far). */
  onProgress?: (members: number, bytes: number) => void;
}

/** An archive as a TreeSource: its first header is checked in prepare(), every member read in write(). */
function tarSource(input: string | Readable, onProgress?: (members: number, bytes: number) => void): TreeSource {
  let tar: TarInput | null = null;
  let reader: TarReader | null = null;
  let first: TarMember | null = null;
  return {
    describe: typeof input === 'string' ? resolve(input) : 'a tar archive from standard input',
    async prepare() {
      tar = await openTarInput(input);
      reader = new TarReader(tar.chunks, tar.label);
      // Not a tar at all (or empty) is found out before a repository is created.
      first = await reader.next();
    },
    async write(blobs) {
      const r = reader!;
      const facts = new TarTreeFacts(tar!.label);
      let members = 0;
      let bytes = 0;
      for (let m = first; m !== null; m = await r.next()) {
        const n = facts.admit(m);
        if (m.type === 'file') {
          const mark = await blobs.begin(m.size);
          await r.readBody((chunk) => blobs.data(chunk));
          n.source = { mark };
          bytes += m.size;
        }
        onProgress?.(++members, bytes);
      }
      const scan = planScan(facts.finish());
      return {
        files: scan.files.map((f) => ({ path: f.path, gitMode: f.gitMode, mark: f.source?.mark, linkTarget: f.linkTarget })),
        manifest: scan.manifest,
        warnings: [...r.warnings, ...scan.warnings],
      };
    },
    close() {
      tar?.close();
    },
  };
}

/**
 * Commit the tree a tar archive holds onto `branch` of `gitdir` (created as a bare
 * repository if missing), with the guarantees of commitDirectory. Throws SourceTreeError
 * for an archive that is not a tar, is damaged or truncated, or holds what the tree cannot
 * (see tar-facts.ts); the branch is then unchanged.
 */
export async function commitTar(opts: TarCommitOptions): Promise<CommitResult> {
  return commitSource(opts, tarSource(opts.input, opts.onProgress));
}
