/**
 * gitroot's version, generated from package.json by scripts/sync-version.mjs (run by setup,
 * `npm run build` and the bundle build): edit package.json, not this file.
 */

/** The version of gitroot, as `gitroot --version` prints it. */
export const GITROOT_VERSION = '0.1.0';
/** How gitroot names itself to servers: HTTP User-Agent and the git protocol's agent=. */
export const USER_AGENT = `gitroot/${GITROOT_VERSION}`;
