/**
 * Ref and branch names: git's check-ref-format rules in one place, for the refs the store
 * reads, the branch a setting names (fetch-revision), the branch a fetch asks the server for
 * and the branch `gitroot commit` writes. Pure, no git subprocess.
 */

// eslint-disable-next-line no-control-regex
const FORBIDDEN_CHARS = /[\x00-\x20\x7f~^:?*[\\]/;

/** Why `name` is not a valid full ref name (`git check-ref-format` rules), or null. */
function refNameProblem(name: string): string | null {
  if (name === '') return 'is empty';
  if (name === '@') return 'cannot be "@"';
  if (FORBIDDEN_CHARS.test(name)) return 'cannot contain spaces, control characters or any of ~ ^ : ? * [ \\';
  if (name.includes('..')) return 'cannot contain ".."';
  if (name.includes('@{')) return 'cannot contain "@{"';
  if (name.startsWith('/') || name.endsWith('/') || name.includes('//')) return 'cannot start or end with "/" or contain "//"';
  if (name.endsWith('.')) return 'cannot end with "."';
  for (const part of name.split('/')) {
    if (part.startsWith('.')) return 'has a component starting with "."';
    if (part.endsWith('.lock')) return 'has a component ending with ".lock"';
  }
  return null;
}

/** A full ref name (`refs/heads/main`, `HEAD`) that is valid by git's rules and safe to use as a path. */
export function isValidRefName(name: string): boolean {
  return refNameProblem(name) === null;
}

/**
 * Why `name` is not a valid branch name, or null: `git check-ref-format --branch` rules (a
 * valid ref name, not starting with "-", not "HEAD"), and not "@", which git revision syntax
 * reads as HEAD. The phrase completes "'NAME' ...".
 */
export function branchProblem(name: string): string | null {
  if (name.startsWith('-')) return 'cannot start with "-"';
  if (name === 'HEAD') return 'cannot be "HEAD"';
  return refNameProblem(name);
}

/** True if `name` is a valid branch name (see {@link branchProblem}). */
export function isValidBranchName(name: string): boolean {
  return branchProblem(name) === null;
}
