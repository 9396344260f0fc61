/**
 * Which HTTP proxy a request goes through, by the environment conventions of curl (which git
 * follows), and the got agents for it. The one proxy rule of gitroot: the fetcher's smart-HTTP
 * client and the fleet config download both use it.
 */
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent';

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * The proxy to use for `url` by the usual environment conventions (curl's, which git
 * follows): `https_proxy`/`HTTPS_PROXY` for https, `http_proxy` for http (the upper-case form
 * is ignored for http, as curl does), `all_proxy` otherwise; `no_proxy` lists hosts (suffix
 * match, optional :port, `*` for all) reached directly. Loopback is always direct: a proxy
 * cannot reach this machine's own 127.0.0.1.
 */
export function proxyForUrl(url: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (isLoopback(host)) return null;
  const pick = (...names: string[]) => names.map((n) => env[n]).find((v) => v !== undefined && v.trim() !== '');
  const proxy = u.protocol === 'https:' ? pick('https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY') : pick('http_proxy', 'all_proxy', 'ALL_PROXY');
  if (proxy === undefined) return null;
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  for (const raw of (pick('no_proxy', 'NO_PROXY') ?? '').split(/[,\s]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return null;
    let entryPort: string | null = null;
    const m = /^(.*?):(\d+)$/.exec(entry);
    if (m && !entry.includes(']') && entry.split(':').length === 2) {
      entry = m[1];
      entryPort = m[2];
    }
    entry = entry.replace(/^\[|\]$/g, '').replace(/^\*?\./, '.');
    if (entryPort !== null && entryPort !== port) continue;
    const bare = entry.replace(/^\./, '');
    if (host === bare || host.endsWith(`.${bare}`)) return null;
  }
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`;
}

/** got agents that tunnel through `proxy` (both schemes: a redirect may change it). */
export function proxyAgents(proxy: string, keepAlive = false): { http: HttpAgent; https: HttpsAgent } {
  return { http: new HttpProxyAgent({ proxy, keepAlive }), https: new HttpsProxyAgent({ proxy, keepAlive }) };
}
