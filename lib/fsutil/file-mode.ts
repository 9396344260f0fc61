/**
 * The file-type bits of a POSIX mode (st_mode, a tar header's mode, a manifest's mode), named
 * once. git's tree modes (lib/store/git-objects.ts MODE_*) are a different, smaller set.
 */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** The file-type bits of `mode`. */
export function fileTypeBits(mode: number): number {
  return mode & S_IFMT;
}
