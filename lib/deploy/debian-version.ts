/**
 * Debian version ordering (dpkg's algorithm: epoch, then upstream version, then revision, each
 * compared as alternating non-digit and digit runs, letters before other characters and `~`
 * before everything, even the end of the string). Used to pick the newest of several kernels
 * in a tree: `6.1.0-9-amd64` < `6.1.0-10-amd64`.
 */

/** dpkg's weight of one character (undefined = end of string). */
function order(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c >= '0' && c <= '9') return 0;
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) return c.charCodeAt(0);
  if (c === '~') return -1;
  return c.charCodeAt(0) + 256;
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

/** Compares two version fragments (upstream or revision) as dpkg does; <0, 0 or >0. */
export function compareVersionPart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = order(a[i]);
      const bc = order(b[j]);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    let firstDiff = 0;
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a[i])) return 1;
    if (isDigit(b[j])) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

/** Splits `[epoch:]upstream[-revision]`. */
function split(v: string): { epoch: number; upstream: string; revision: string } {
  const colon = v.indexOf(':');
  const epoch = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? Number(v.slice(0, colon)) : 0;
  const rest = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf('-');
  return dash < 0 ? { epoch, upstream: rest, revision: '' } : { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) };
}

/** Compares two Debian version strings like `dpkg --compare-versions`; <0, 0 or >0. */
export function compareDebianVersions(a: string, b: string): number {
  const x = split(a);
  const y = split(b);
  if (x.epoch !== y.epoch) return x.epoch - y.epoch;
  return compareVersionPart(x.upstream, y.upstream) || compareVersionPart(x.revision, y.revision);
}
