/**
 * Which systemd units a live update restarts, from the paths it changes (pure; the unit
 * files' Exec lines are read from the new revision by readUnitExecs). Tested in
 * test/live-units.test.ts.
 *
 *   - any change in a unit directory: `systemctl daemon-reload`;
 *   - a service whose unit file or drop-in (`X.service.d/*.conf`) changed or appeared is
 *     restarted (`systemctl try-restart`: only if it runs); a template (`foo@.service`) restarts
 *     its running instances (`foo@*.service`);
 *   - a service any of whose Exec*= programs (or a symlink on the way to one) changed;
 *   - other unit types (sockets, timers, targets, mounts...) and enablement links
 *     (`*.wants/`) are only reloaded; a removed service is left running (reported);
 *   - the D-Bus broker is never restarted (live-decision.ts asks for a soft-reboot instead).
 */
import type { ObjectReader } from '../gitfs/tree-view.js';
import type { CommitTreeView, ChildDesc } from '../gitfs/tree-view.js';
import type { LiveChange } from './live-diff.js';

/** The unit directories of a system (in the tree; /run/systemd/system is never in a revision). */
export const UNIT_DIRS = ['etc', 'usr/local/lib', 'usr/lib', 'lib'].map((d) => `${d}/systemd/system`);

/** Exec settings whose programs a service runs. */
const EXEC_KEYS = new Set(['ExecStart', 'ExecStartPre', 'ExecStartPost', 'ExecCondition', 'ExecReload', 'ExecStop', 'ExecStopPost']);

/** Services never restarted live. */
const NEVER_RESTART = new Set(['dbus.service', 'dbus-broker.service']);

/**
 * The absolute programs of a unit file's Exec*= lines, without the leading slash (tree paths),
 * in order, duplicates removed. Handles `\` line continuations, comments, the prefixes
 * `@-:+!` and quoted program names; programs named without a path are skipped (systemd
 * looks them up in its own fixed path, which is rarely what changes).
 */
export function parseUnitExecs(text: string): string[] {
  const out: string[] = [];
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    if (eq < 0 || !EXEC_KEYS.has(line.slice(0, eq).trim())) continue;
    // Several commands may be separated by " ; " (systemd: a lone semicolon).
    for (const cmd of line.slice(eq + 1).split(/\s;\s/)) {
      let word = cmd.trim().replace(/^[@\-:+!]+/, '');
      const quoted = /^(["'])(.*?)\1/.exec(word);
      word = quoted ? quoted[2] : (word.split(/\s+/)[0] ?? '');
      if (word.startsWith('/')) {
        const p = word.replace(/^\/+/, '').replace(/\/+$/, '');
        if (p !== '' && !out.includes(p)) out.push(p);
      }
    }
  }
  return out;
}

/** The unit a path in a unit directory belongs to, and how. */
export interface UnitPath {
  /** The unit file name (`foo.service`, `foo@.service`). */
  unit: string;
  /** `file` the unit file itself, `dropin` a file or directory of `X.d/`, `link` an enablement link in `*.wants/` and the like. */
  role: 'file' | 'dropin' | 'link';
}

/** What `path` is in a unit directory, or null when it is not in one. */
export function unitOfPath(path: string): UnitPath | null {
  const dir = UNIT_DIRS.find((d) => path.startsWith(`${d}/`));
  if (!dir) return null;
  const rest = path.slice(dir.length + 1).split('/');
  const first = rest[0];
  if (rest.length === 1) return first.endsWith('.d') ? { unit: first.slice(0, -2), role: 'dropin' } : { unit: first, role: 'file' };
  if (first.endsWith('.d')) return { unit: first.slice(0, -2), role: 'dropin' };
  if (/\.(wants|requires|upholds)$/.test(first)) return { unit: rest[rest.length - 1], role: 'link' };
  return { unit: first, role: 'link' };
}

/** The services to restart for a unit file name: itself, or a template's running instances. */
function restartName(unit: string): string {
  return unit.endsWith('@.service') ? `${unit.slice(0, -'@.service'.length)}@*.service` : unit;
}

export interface RestartPlan {
  /** Whether `systemctl daemon-reload` runs (a unit directory changed). */
  daemonReload: boolean;
  /** Services for `systemctl try-restart`, sorted. */
  restart: string[];
  /** Why each is restarted (the first changed path found). */
  why: Record<string, string>;
  /** Units reloaded but not restarted (other unit types), sorted. */
  reloaded: string[];
  /** Services whose unit file the update removes: left running, sorted. */
  removed: string[];
  /** Services that would be restarted but never are live (the D-Bus broker). */
  skipped: string[];
}

/**
 * Plans the reload and restarts for `changes`. `execs` maps each service of the new revision
 * (unit file name) to the tree paths its Exec*= programs resolve through (symlinks on the
 * way included: see readUnitExecs).
 */
export function planRestarts(changes: LiveChange[], execs: Map<string, string[]>): RestartPlan {
  const restart = new Map<string, string>();
  const reloaded = new Set<string>();
  const removed = new Set<string>();
  const skipped = new Set<string>();
  let daemonReload = false;
  const want = (unit: string, why: string): void => {
    const name = restartName(unit);
    if (NEVER_RESTART.has(unit)) skipped.add(unit);
    else if (!restart.has(name)) restart.set(name, why);
  };
  const changed = new Map<string, LiveChange>();
  for (const c of changes) {
    changed.set(c.path, c);
    const u = unitOfPath(c.path);
    if (u === null) continue;
    daemonReload = true;
    const service = u.unit.endsWith('.service');
    if (u.role === 'link' || !service) {
      reloaded.add(u.unit);
      continue;
    }
    if (u.role === 'file' && c.change === 'removed') removed.add(u.unit);
    else want(u.unit, `/${c.path} ${c.change}`);
  }
  for (const [unit, paths] of execs) {
    if (!unit.endsWith('.service')) continue;
    for (const p of paths) {
      const c = changed.get(p);
      if (c && c.change !== 'removed') {
        want(unit, `its program /${p} ${c.change}`);
        break;
      }
    }
  }
  for (const name of restart.keys()) reloaded.delete(name);
  const sorted = (s: Iterable<string>) => [...s].sort();
  return {
    daemonReload,
    restart: sorted(restart.keys()),
    why: Object.fromEntries(sorted(restart.keys()).map((k) => [k, restart.get(k)!])),
    reloaded: sorted(reloaded),
    removed: sorted([...removed].filter((u) => !restart.has(restartName(u)))),
    skipped: sorted(skipped),
  };
}

/** Largest unit file read (a unit file is a few hundred bytes). */
const UNIT_MAX = 256 * 1024;
/** Symlink hops followed when resolving a path in the tree. */
const MAX_HOPS = 40;

/**
 * The tree paths `path` (absolute in the booted system, given without its leading slash)
 * goes through in `view`: every symlink met on the way, and where it ends (which may not
 * exist). Never touches the host: absolute targets are paths in the tree.
 */
export function resolveInTree(view: CommitTreeView, store: ObjectReader, path: string): string[] {
  const seen: string[] = [];
  let parts = path.split('/').filter((p) => p !== '' && p !== '.');
  let done: string[] = [];
  for (let hops = 0; parts.length > 0 && hops <= MAX_HOPS;) {
    const name = parts.shift()!;
    if (name === '..') {
      done.pop();
      continue;
    }
    const here = [...done, name].join('/');
    const d = view.describePath(here);
    if (d?.kind === 'link') {
      hops++;
      seen.push(here);
      const target = store.readObject(d.oid!).data.toString('utf8');
      const tparts = target.split('/').filter((p) => p !== '' && p !== '.');
      done = target.startsWith('/') ? [] : done;
      parts = [...tparts, ...parts];
      continue;
    }
    done.push(name);
  }
  seen.push(done.join('/'));
  return seen;
}

/**
 * The services of `view` and the tree paths of their programs (resolveInTree of each Exec*=
 * program of the unit file and its drop-ins). Unit files that are symlinks are followed
 * (an alias or a link into /usr/lib); masked units (links to /dev/null) have none.
 */
export function readUnitExecs(view: CommitTreeView, store: ObjectReader): Map<string, string[]> {
  const texts = new Map<string, string[]>();
  const read = (d: ChildDesc): string | null => {
    if (d.kind !== 'file' || d.oid === null) return null;
    const h = store.readHeader(d.oid);
    if (h.type !== 'blob' || h.size > UNIT_MAX) return null;
    return store.readObject(d.oid).data.toString('utf8');
  };
  const add = (unit: string, text: string | null) => {
    if (text === null) return;
    let list = texts.get(unit);
    if (!list) texts.set(unit, (list = []));
    list.push(text);
  };
  for (const dir of UNIT_DIRS) {
    const dd = view.describePath(dir);
    if (!dd || dd.kind !== 'dir') continue;
    for (const d of view.describe(dd.path, dd.tree)) {
      if (d.name.endsWith('.service.d') && d.kind === 'dir') {
        for (const f of view.describe(d.path, d.tree)) if (f.name.endsWith('.conf')) add(d.name.slice(0, -2), read(f));
      } else if (d.name.endsWith('.service')) {
        if (d.kind === 'link') {
          const end = resolveInTree(view, store, d.path).pop()!;
          const target = view.describePath(end);
          if (target) add(d.name, read(target));
        } else {
          add(d.name, read(d));
        }
      }
    }
  }
  const out = new Map<string, string[]>();
  for (const [unit, list] of texts) {
    const paths: string[] = [];
    for (const text of list) for (const p of parseUnitExecs(text)) for (const q of resolveInTree(view, store, p)) if (!paths.includes(q)) paths.push(q);
    out.set(unit, paths);
  }
  return out;
}
