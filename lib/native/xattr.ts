/**
 * Extended attributes of a path, without following symlinks (lgetxattr semantics).
 * Node has no xattr API, so this goes through the native addon.
 */
import { native } from './addon.js';

/** All extended attributes of `path` (a symlink's own, not its target's); empty when the filesystem has none. */
export function readXattrs(path: string): Map<string, Buffer> {
  return new Map(native().readXattrs(path));
}
