/**
 * The header of a git bundle file (gitformat-bundle(5)): `# v2 git bundle` (or v3 with
 * capability lines `@key=value`), prerequisite lines `-<id> [comment]`, reference lines
 * `<id> <refname>`, an empty line, then the pack. Parsed from the first bytes of a
 * downloaded file, so the pack that follows can go to `git index-pack` unchanged. Pure.
 */
import { isOidHex } from '../store/object-id.js';

/** Largest header gitroot reads (a few ref lines; anything bigger is not one of ours). */
export const MAX_BUNDLE_HEADER = 64 * 1024;

export interface BundleHeader {
  version: 2 | 3;
  prerequisites: string[];
  refs: { oid: string; name: string }[];
  /** Byte offset of the pack (after the empty line). */
  packOffset: number;
}

/** Parses a bundle header from the start of a file; returns why not (a phrase) when it is not one. */
export function parseBundleHeader(head: Buffer): BundleHeader | string {
  const firstNl = head.indexOf(0x0a);
  if (firstNl < 0) return 'it does not start with a bundle signature line';
  const sig = head.toString('latin1', 0, firstNl);
  const version = sig === '# v2 git bundle' ? 2 : sig === '# v3 git bundle' ? 3 : null;
  if (version === null) return `it starts with ${JSON.stringify(sig.slice(0, 40))}, not '# v2 git bundle'`;
  const prerequisites: string[] = [];
  const refs: { oid: string; name: string }[] = [];
  let pos = firstNl + 1;
  for (;;) {
    const nl = head.indexOf(0x0a, pos);
    if (nl < 0) return `its header is not terminated within ${head.length} bytes`;
    const line = head.toString('latin1', pos, nl);
    pos = nl + 1;
    if (line === '') break;
    if (line.startsWith('@')) {
      if (version !== 3) return 'it has a capability line in a v2 bundle';
      if (line !== '@object-format=sha1') return `it needs capability ${line.slice(1)}, which gitroot does not support`;
      continue;
    }
    if (line.startsWith('-')) {
      const oid = line.slice(1, 41);
      if (!isOidHex(oid)) return `it has a malformed prerequisite line ${JSON.stringify(line.slice(0, 60))}`;
      prerequisites.push(oid.toLowerCase());
      continue;
    }
    const m = /^([0-9a-fA-F]{40}) (\S+)$/.exec(line);
    if (m === null) return `it has a malformed reference line ${JSON.stringify(line.slice(0, 60))}`;
    refs.push({ oid: m[1].toLowerCase(), name: m[2] });
  }
  if (refs.length === 0) return 'it names no reference';
  return { version, prerequisites, refs, packOffset: pos };
}

/** The header gitroot's publisher writes: v2, the prerequisites, one ref. */
export function renderBundleHeader(prerequisites: readonly string[], tip: string, ref: string): string {
  return ['# v2 git bundle', ...prerequisites.map((p) => `-${p}`), `${tip} ${ref}`, ''].join('\n') + '\n';
}
