/**
 * Refs and revisions: reading loose and packed refs (symbolic refs, `^` peeled lines), listing
 * them, and resolving what a user types (HEAD, a branch or tag, a full or abbreviated id) to a
 * commit id, following git's own lookup order and peeling annotated tags.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ObjectCorruptError, ObjectMissingError, RevisionNotFoundError } from '../errors/errors.js';
import { type GitDirs, resolveGitDir } from './git-dir.js';
import { parseCommit } from './git-objects.js';
import { isHexPrefix, isOidHex } from './object-id.js';
import { ObjectStore } from './object-store.js';
import { isValidRefName } from './ref-names.js';
import { MAX_TAG_DEPTH, peelTag } from './tag-peel.js';

export interface RefEntry {
  /** Full name, e.g. "refs/heads/main". */
  name: string;
  /** Id the ref points to (a commit, or an annotated tag object), 40 hex. */
  oid: string;
  /** For annotated tags in packed-refs: the id the tag peels to. */
  peeled?: string;
  /** For symbolic refs: the ref they point to. */
  symref?: string;
}

/** git's `ref_rev_parse_rules`: the order in which a short name is tried. */
const DWIM_RULES = ['%s', 'refs/%s', 'refs/tags/%s', 'refs/heads/%s', 'refs/remotes/%s', 'refs/remotes/%s/HEAD'];
/** git's limit on symbolic ref chains. */
const MAX_SYMREF_DEPTH = 5;
/** git's shortest accepted abbreviation. */
const MIN_ABBREV = 4;

const PSEUDOREF = /^[A-Z][A-Z0-9_]*$/;

type RefValue = { oid: string; symref?: undefined } | { symref: string; oid?: undefined };

interface PackedRef {
  oid: string;
  peeled?: string;
}

/** Reads refs of one repository; packed-refs is parsed once per instance. */
class RefReader {
  private packed: Map<string, PackedRef> | null = null;

  constructor(readonly dirs: GitDirs) {}

  /** Raw value of a ref (loose file first, then packed-refs), or null if it does not exist. */
  read(name: string): RefValue | null {
    // HEAD and other pseudorefs are per worktree; refs/ are shared.
    const base = name.startsWith('refs/') ? this.dirs.commonDir : this.dirs.gitDir;
    const file = path.join(base, name);
    let text: string | null = null;
    try {
      if (fs.statSync(file).isFile()) text = fs.readFileSync(file, 'utf8');
    } catch {
      text = null;
    }
    if (text !== null) return parseRefFile(file, text);
    const p = this.packedRefs().get(name);
    return p === undefined ? null : { oid: p.oid };
  }

  /** Follows symbolic refs to an id; null if the name (or its target) does not exist. */
  resolve(name: string): { oid: string; symref?: string } | null {
    let current = name;
    let symref: string | undefined;
    for (let depth = 0; depth <= MAX_SYMREF_DEPTH; depth++) {
      const v = this.read(current);
      if (v === null) return null;
      if (v.oid !== undefined) return symref === undefined ? { oid: v.oid } : { oid: v.oid, symref };
      if (!isValidRefName(v.symref)) {
        throw new RevisionNotFoundError(
          `ref ${current} in ${this.dirs.gitDir} points to an invalid name ` +
            `'${v.symref}': repair it with 'git -C ${this.dirs.gitDir} symbolic-ref ${current} refs/heads/BRANCH'`,
        );
      }
      symref ??= v.symref;
      current = v.symref;
    }
    throw new RevisionNotFoundError(
      `ref ${name} in ${this.dirs.gitDir} is a loop of symbolic refs: ` + `repair it with 'git -C ${this.dirs.gitDir} symbolic-ref ${name} refs/heads/BRANCH'`,
    );
  }

  packedRefs(): Map<string, PackedRef> {
    if (this.packed !== null) return this.packed;
    const map = new Map<string, PackedRef>();
    const file = path.join(this.dirs.commonDir, 'packed-refs');
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      text = '';
    }
    let last: PackedRef | undefined;
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      if (line.startsWith('^')) {
        const peeled = line.slice(1).trim();
        if (last !== undefined && isOidHex(peeled)) last.peeled = peeled.toLowerCase();
        continue;
      }
      const sp = line.indexOf(' ');
      const oid = line.slice(0, sp);
      const name = line.slice(sp + 1).trim();
      if (sp !== 40 || !isOidHex(oid) || !isValidRefName(name)) {
        throw new RevisionNotFoundError(`malformed line in ${file}: '${line.slice(0, 80)}': ` + `repair it or run 'git -C ${this.dirs.gitDir} pack-refs'`);
      }
      last = { oid: oid.toLowerCase() };
      map.set(name, last);
    }
    this.packed = map;
    return map;
  }
}

function parseRefFile(file: string, text: string): RefValue {
  const line = text.split('\n', 1)[0].trim();
  if (line.startsWith('ref:')) return { symref: line.slice(4).trim() };
  // FETCH_HEAD lines carry more after the id; plain refs hold exactly the id.
  const id = line.slice(0, 40);
  if (isOidHex(id) && (line.length === 40 || /\s/.test(line[40]))) return { oid: id.toLowerCase() };
  throw new RevisionNotFoundError(`ref file ${file} is malformed: '${line.slice(0, 60)}': ` + 'point it at a commit again (git update-ref) or delete it');
}

function unknownRevision(rev: string, repo: string, detail = ''): RevisionNotFoundError {
  return new RevisionNotFoundError(
    `unknown revision '${rev}' in ${repo}${detail}: give a commit SHA, branch or tag that exists ` + `(git -C ${repo} log --oneline)`,
    { data: { rev, repo } },
  );
}

/**
 * Resolves a revision to a commit id (40 hex): HEAD or another pseudoref, a full or
 * abbreviated (>= 4 digits) id, a full ref name, or a short name tried as git does
 * (refs/<x>, refs/tags/<x>, refs/heads/<x>, refs/remotes/<x>, refs/remotes/<x>/HEAD), each
 * optionally followed by ~N, ^N or ^{commit}. Annotated tags are peeled. Throws RevisionNotFoundError for unknown or ambiguous input.
 */
export function resolveRevision(gitdir: string, rev: string, store?: ObjectStore): string {
  const dirs = resolveGitDir(gitdir);
  const repo = path.resolve(gitdir);
  const own = store === undefined ? ObjectStore.open(gitdir) : null;
  const objects = store ?? (own as ObjectStore);
  try {
    // "<base>" then optional ~N, ^N, ^{commit}, ^{} steps (never valid in ref names).
    const cut = rev.search(/[~^]/);
    const base = cut < 0 ? rev : rev.slice(0, cut);
    if (base === '') throw unknownRevision(rev, repo);
    const target = findTarget(new RefReader(dirs), objects, base, repo);
    return navigate(objects, peelToCommit(objects, target, rev, repo), cut < 0 ? '' : rev.slice(cut), rev, repo);
  } finally {
    own?.close();
  }
}

/** The object a revision names, before peeling. */
function findTarget(refs: RefReader, store: ObjectStore, rev: string, repo: string): string {
  if (isOidHex(rev)) {
    const oid = rev.toLowerCase();
    if (!store.has(oid)) throw unknownRevision(rev, repo, ' (no such object)');
    return oid;
  }
  if (isValidRefName(rev)) {
    for (const rule of DWIM_RULES) {
      const name = rule.replace('%s', rev);
      if (rule === '%s' && !PSEUDOREF.test(name) && !name.startsWith('refs/')) continue;
      const r = refs.resolve(name);
      if (r !== null) return r.oid;
      if (name === 'HEAD') {
        const head = refs.read('HEAD');
        if (head?.symref !== undefined) {
          throw new RevisionNotFoundError(
            `HEAD of ${repo} points to ${head.symref}, which has no commits yet: ` + 'commit something first or give a branch or tag that exists',
            { data: { rev, repo } },
          );
        }
      }
    }
  }
  // `git describe` output ends in -g<abbreviated id>.
  const described = /-g([0-9a-fA-F]{4,40})$/.exec(rev);
  const hex = described?.[1] ?? rev;
  if (hex.length >= MIN_ABBREV && isHexPrefix(hex)) return findAbbreviated(store, hex, rev, repo);
  throw unknownRevision(rev, repo);
}

/** A unique object for an abbreviated id; among several, the only commit-ish one (as git does). */
function findAbbreviated(store: ObjectStore, hex: string, rev: string, repo: string): string {
  const found = store.findByPrefix(hex, 16);
  if (found.length === 1) return found[0];
  if (found.length === 0) throw unknownRevision(rev, repo);
  const commitish = found.filter((oid) => {
    try {
      peelToCommit(store, oid, rev, repo);
      return true;
    } catch {
      return false;
    }
  });
  if (commitish.length === 1) return commitish[0];
  const list = found
    .slice(0, 5)
    .map((oid) => `${oid.slice(0, 12)} (${store.readHeader(oid).type})`)
    .join(', ');
  throw new RevisionNotFoundError(
    `revision '${rev}' is ambiguous in ${repo}: ${found.length === 16 ? 'many' : found.length} objects match ` +
      `(${list}${found.length > 5 ? ', ...' : ''}): give more hex digits`,
    { data: { rev, repo, candidates: found } },
  );
}

/** Applies ~N (N-th first-parent ancestor), ^N (N-th parent) and ^{commit}/^{} steps. */
function navigate(store: ObjectStore, commit: string, steps: string, rev: string, repo: string): string {
  const step = /~(\d*)|\^\{(?:commit)?\}|\^(\d*)/y;
  let current = commit;
  let pos = 0;
  while (pos < steps.length) {
    step.lastIndex = pos;
    const m = step.exec(steps);
    if (m === null) throw unknownRevision(rev, repo, ` (cannot parse '${steps.slice(pos)}')`);
    pos = step.lastIndex;
    if (m[1] !== undefined) {
      for (let n = m[1] === '' ? 1 : Number(m[1]); n > 0; n--) current = parentOf(store, current, 1, rev, repo);
    } else if (m[2] !== undefined) {
      const n = m[2] === '' ? 1 : Number(m[2]);
      if (n > 0) current = parentOf(store, current, n, rev, repo);
    }
  }
  return current;
}

function parentOf(store: ObjectStore, commit: string, n: number, rev: string, repo: string): string {
  const parent = parseCommit(store.readObject(commit).data).parents[n - 1];
  if (parent === undefined) throw unknownRevision(rev, repo, ` (${commit.slice(0, 12)} has no parent ${n})`);
  return parent;
}

/** Follows annotated tags to a commit (tag-peel.ts); anything else is RevisionNotFoundError. */
function peelToCommit(store: ObjectStore, oid: string, rev: string, repo: string): string {
  const r = peelTag(oid, (id) => store.readObject(id));
  if (r.ok) return r.commit;
  if (r.problem === 'not-a-commit') {
    throw new RevisionNotFoundError(`revision '${rev}' in ${repo} names a ${r.type} (${r.at}), ` + 'not a commit: give a commit SHA, branch or tag', {
      data: { rev, repo, oid: r.at },
    });
  }
  if (r.problem === 'too-deep') {
    throw new ObjectCorruptError(`tag ${oid} in ${repo} nests more than ${MAX_TAG_DEPTH} tags deep: ` + 'give the commit id instead', { data: { oid } });
  }
  if (r.problem === 'malformed') throw r.cause; // parseTag's ObjectCorruptError
  // Not reached: the store's reader throws ObjectMissingError rather than return null.
  throw new ObjectMissingError(`object ${r.at} in ${repo} is missing`, { data: { oid: r.at } });
}

/** The id one full ref name points to (loose, else packed; symbolic refs followed), or null when absent or invalid. */
export function readRef(gitdir: string, name: string): string | null {
  if (!name.startsWith('refs/') || !isValidRefName(name)) return null;
  try {
    return new RefReader(resolveGitDir(gitdir)).resolve(name)?.oid ?? null;
  } catch {
    return null;
  }
}

/**
 * Lists the refs under refs/ (loose files override packed-refs), sorted by name, with their
 * ids, peeled ids from packed-refs and symbolic targets. Broken loose refs are skipped, as git
 * does. HEAD is not listed: resolve it with resolveRevision.
 */
export function listRefs(gitdir: string): RefEntry[] {
  const reader = new RefReader(resolveGitDir(gitdir));
  const names = new Set<string>(reader.packedRefs().keys());
  const walk = (rel: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(path.join(reader.dirs.commonDir, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const name = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(name);
      else if (e.isFile() && isValidRefName(name)) names.add(name);
    }
  };
  walk('refs');
  const out: RefEntry[] = [];
  for (const name of [...names].sort()) {
    let r: { oid: string; symref?: string } | null;
    try {
      r = reader.resolve(name);
    } catch {
      continue;
    }
    if (r === null) continue;
    const entry: RefEntry = { name, oid: r.oid };
    if (r.symref !== undefined) entry.symref = r.symref;
    const packed = reader.packedRefs().get(name);
    if (packed?.peeled !== undefined && packed.oid === r.oid) entry.peeled = packed.peeled;
    out.push(entry);
  }
  return out;
}
