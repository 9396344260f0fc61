/**
 * How healthy a revision is in a home's repository, as the boot decision and the transitions
 * need to know: `ok` (commit and root tree there and verified), `missing`, `broken`
 * (unreadable), `damaged` (the last full fsck found broken objects that still fail) or
 * `untrusted` (no valid signature from the boot's trust root). openHealthProbe opens the
 * repository once for many questions and remembers the answers for `--json`.
 */
import { GitrootError } from '../errors/errors.js';
import { packSetKey, readVerdict, verdictHealth } from '../fsck/fsck-verdict.js';
import { repoPath } from '../home/home-layout.js';
import { parseCommit } from '../store/git-objects.js';
import { tagRefName } from '../store/gitroot-refs.js';
import { isSha } from '../store/object-id.js';
import { ObjectStore } from '../store/object-store.js';
import { readRef } from '../store/refs.js';
import type { AllowedSigners } from '../trust/allowed-signers.js';
import { judgeTaggedCommit } from '../trust/revision-trust.js';
import type { RevisionHealth } from './boot-select.js';

/**
 * How healthy revision `sha` is in `dir/repo.git`: `ok` when the commit and its root tree are
 * there and read back verified; `missing` when the commit (or its root tree) is not in the
 * repository, or `sha` names no commit; `broken` when they are there but reading them fails
 * (ObjectCorruptError, a missing delta base, an I/O error). Pass `store` to reuse an open one.
 */
export function readHealth(dir: string, sha: string, store?: ObjectStore): RevisionHealth {
  if (!isSha(sha)) return 'missing';
  let s = store;
  if (s === undefined) {
    try {
      s = ObjectStore.open(repoPath(dir));
    } catch (e) {
      return (e as GitrootError).code === 'ENOREPO' ? 'missing' : 'broken';
    }
  }
  try {
    if (!s.has(sha)) return 'missing';
    const commit = s.readObject(sha);
    if (commit.type !== 'commit') return 'missing';
    const tree = parseCommit(commit.data).tree;
    if (!s.has(tree)) return 'missing';
    return s.readObject(tree).type === 'tree' ? 'ok' : 'broken';
  } catch {
    return 'broken';
  } finally {
    if (store === undefined) s.close();
  }
}

/** A health function over one open repository, remembering what it answered (for --json). */
export interface HealthProbe {
  health: (sha: string) => RevisionHealth;
  /** Every revision asked about, with its answer. */
  checked: Record<string, RevisionHealth>;
  /** Why each `untrusted` revision is (with signers). */
  distrust: Record<string, string>;
  close(): void;
}

/**
 * Opens `dir/repo.git` once for many readHealth calls; with no repository every revision is
 * missing. A revision readHealth finds `ok` is `damaged` when the last full `gitroot fsck`
 * (`D/fsck.json`) found it broken and, if packs came or went since, one of the broken objects
 * it lists still fails to read. With `signers` (the
 * initramfs's allowed-signers, lib/trust), a readable revision with no valid signature from a
 * listed key (on its commit, or on the annotated tag it was fetched through) is `untrusted`.
 */
export function openHealthProbe(dir: string, signers: AllowedSigners | null = null): HealthProbe {
  const verdict = readVerdict(dir);
  const packSet = verdict === null ? '' : packSetKey(repoPath(dir));
  let store: ObjectStore | null = null;
  let openError: RevisionHealth | null = null;
  try {
    store = ObjectStore.open(repoPath(dir));
  } catch (e) {
    openError = (e as GitrootError).code === 'ENOREPO' ? 'missing' : 'broken';
  }
  const checked: Record<string, RevisionHealth> = {};
  const distrust: Record<string, string> = {};
  /** An object fsck found broken still fails to read (verified) now. */
  const stillBroken = (oid: string): boolean => {
    try {
      store?.readObject(oid);
      return store === null;
    } catch {
      return true;
    }
  };
  /**
   * The trust check of a readable revision: a signature from a listed key on its commit, or on
   * the annotated tag it was fetched through (refs/gitroot/tag/<sha>, re-verified here).
   */
  const trust = (sha: string): RevisionHealth => {
    if (signers === null || store === null) return 'ok';
    try {
      const tag = readRef(repoPath(dir), tagRefName(sha));
      const v = judgeTaggedCommit(store, signers, sha, tag).verdict;
      if (v.trusted) return 'ok';
      distrust[sha] = `${v.detail}; ${v.fix}`;
      return 'untrusted';
    } catch {
      return 'broken';
    }
  };
  return {
    checked,
    distrust,
    health: (sha) => {
      if (checked[sha] === undefined) {
        let h = store === null ? (isSha(sha) ? (openError as RevisionHealth) : 'missing') : readHealth(dir, sha, store);
        if (h === 'ok') h = trust(sha);
        checked[sha] = h === 'ok' ? (verdictHealth(verdict, packSet, sha, stillBroken) ?? 'ok') : h;
      }
      return checked[sha];
    },
    close: () => store?.close(),
  };
}
