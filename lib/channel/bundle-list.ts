/**
 * The bundle list of git's bundle-uri design (Documentation/technical/bundle-uri.adoc),
 * written beside the manifest as `DIR/bundle-list` so git's own tools can use a published
 * channel (`git clone --bundle-uri=https://host/channel/bundle-list URL`): git-config syntax,
 * `bundle.version=1`, `bundle.mode=all`, `bundle.heuristic=creationToken`, and per bundle
 * `bundle.<id>.uri` (relative to the list) and `bundle.<id>.creationToken`.
 *
 * Tokens are ordered so that every bundle's prerequisites come from bundles with smaller
 * tokens (what the heuristic needs): the full base first, then the roll-ups by release, then
 * the incremental bundles by release; a new incremental always gets a larger token than
 * every earlier one, so `fetch.bundleCreationToken` (git >= 2.41) fetches only new ones.
 * Pure.
 */
import type { BundleKind, ManifestBundle } from './channel-manifest.js';

/** The bundle list's file name inside a published directory. */
export const BUNDLE_LIST_FILE = 'bundle-list';

const TIER: Record<BundleKind, number> = { base: 0, pin: 1, rollup: 2, incremental: 3 };
const TIER_SPAN = 1_000_000_000;

/** The creationToken of a bundle of `kind` bringing release number `release`. */
export function creationToken(kind: BundleKind, release: number): number {
  return TIER[kind] * TIER_SPAN + release;
}

/** The bundle list text for `bundles` (ids and URIs are checked by the manifest format: no quoting needed). */
export function renderBundleList(bundles: readonly Pick<ManifestBundle, 'id' | 'uri' | 'creationToken'>[]): string {
  const lines = ['[bundle]', '\tversion = 1', '\tmode = all', '\theuristic = creationToken'];
  for (const b of [...bundles].sort((a, c) => a.creationToken - c.creationToken)) {
    lines.push(`[bundle "${b.id}"]`, `\turi = ${b.uri}`, `\tcreationToken = ${b.creationToken}`);
  }
  return lines.join('\n') + '\n';
}
