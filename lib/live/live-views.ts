/**
 * Fresh overlay views of what a live update changed. `/` is an overlay whose lower layer is
 * the git-fs mount; overlayfs keeps the lower dentries it has looked up and does not allow
 * the lower layer to change under it: after a switch, a path it had cached and that changed
 * fails with ESTALE, and a name it had found missing stays missing (docs/live.md). So after
 * the switch a new overlay is mounted on each directory whose entries changed (the "view
 * points"): new path walks cross into it and look everything up afresh, while processes that
 * hold something of the old view keep it. Nothing is copied:
 *
 *   ROOT/P = overlay(lowerdir = U_k/P : ... : U_0/P : RUN/lower/P, upperdir = U_n/P)
 *
 * where U_0 is the boot's writable layer (RUN/rw/upper), U_1.. those of earlier live updates
 * (RUN/rw/live-<i>/upper), newest first: what was written under P stays visible (whiteouts
 * and opaque directories keep their meaning in lower layers) and new writes go to U_n. Each
 * U_i holds full paths, so a later update can stack at an ancestor or a descendant of an
 * earlier point and still take every earlier layer.
 *
 * planViews (pure, test/live-views.test.ts) picks the points; applyViews mounts them.
 */
import { execFile } from 'node:child_process';
import { chownSync, lstatSync, mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MountError } from '../errors/errors.js';
import { readXattrs } from '../native/xattr.js';
import type { LiveChange } from './live-diff.js';

const execFileAsync = promisify(execFile);

/** More view points than this: each is lifted to its top-level directory. */
export const VIEW_POINT_LIMIT = 32;

export interface ViewsInput {
  changes: LiveChange[];
  /** Tree paths (no leading slash) the running system has other filesystems mounted on, under the root. */
  mountPoints: string[];
  /** True when a writable layer hides the lower layer at `path` (a whiteout, opaque or non-directory there or above). */
  hiddenByUpper: (path: string) => boolean;
  limit?: number;
}

export type ViewsPlan =
  | { ok: true; points: string[]; dropped: Array<{ path: string; why: string }> }
  | { ok: false; reason: string };

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

function under(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}

/** Keeps only the topmost of `paths` (sorted). */
function topmost(paths: Iterable<string>): string[] {
  const sorted = [...new Set(paths)].sort();
  const out: string[] = [];
  for (const p of sorted) if (!out.some((q) => under(p, q))) out.push(p);
  return out;
}

/**
 * The directories to give fresh views: the parent of every change (its entry changed),
 * except those another filesystem is mounted on or over (not seen), or that a writable layer
 * hides; only the topmost of nested ones; lifted to their top-level directories when there
 * are more than `limit`. Refused when the root itself would need one, or when a view would
 * hide a mount below it.
 */
export function planViews(input: ViewsInput): ViewsPlan {
  const limit = input.limit ?? VIEW_POINT_LIMIT;
  const dropped: Array<{ path: string; why: string }> = [];
  const candidates = new Set<string>();
  for (const c of input.changes) {
    if (c.path === '') continue; // the root's own attributes: overlayfs shows its upper's
    candidates.add(parentOf(c.path));
  }
  const kept: string[] = [];
  for (const p of topmost(candidates)) {
    const m = input.mountPoints.find((mp) => p !== '' && under(p, mp));
    if (m !== undefined) {
      dropped.push({ path: p, why: `another filesystem is mounted on /${m}` });
      continue;
    }
    if (p !== '' && input.hiddenByUpper(p)) {
      dropped.push({ path: p, why: 'the writable layer hides it (removed or replaced on this machine)' });
      continue;
    }
    kept.push(p);
  }
  let points = topmost(kept);
  if (points.includes('')) return { ok: false, reason: 'entries of / change: a running system cannot get a fresh view of /' };
  if (points.length > limit) points = topmost(points.map((p) => p.split('/')[0]));
  for (const p of points) {
    const hidden = input.mountPoints.find((mp) => mp !== p && under(mp, p));
    if (hidden !== undefined) return { ok: false, reason: `a fresh view of /${p} would hide the mount at /${hidden}` };
  }
  return { ok: true, points, dropped };
}

/** Escapes a path for overlayfs's lowerdir/upperdir options (`\`, `,` and `:` are separators). */
export function escapeLayer(path: string): string {
  return path.replace(/[\\,:]/g, (c) => `\\${c}`);
}

/** The layers of the view at `point`: upper layers newest first (only those holding the directory), then the lower. */
export function viewLayers(point: string, uppers: string[], lower: string): string[] {
  const out: string[] = [];
  for (const u of uppers) {
    try {
      if (lstatSync(join(u, point)).isDirectory()) out.push(join(u, point));
    } catch { /* nothing written there */ }
  }
  out.push(join(lower, point));
  return out;
}

/** Whether an upper layer hides the lower at `path`: a non-directory (a whiteout too), an opaque or redirected directory, there or above. */
export function hiddenIn(uppers: string[], path: string): boolean {
  const parts = path.split('/');
  for (const u of uppers) {
    for (let i = 1; i <= parts.length; i++) {
      const p = join(u, ...parts.slice(0, i));
      let st;
      try {
        st = lstatSync(p);
      } catch {
        break; // nothing at or below here in this layer
      }
      if (!st.isDirectory()) return true;
      let x: Map<string, Buffer>;
      try {
        x = readXattrs(p);
      } catch {
        continue;
      }
      for (const k of x.keys()) if (/^(trusted|user)\.overlay\.(opaque|redirect)$/.test(k)) return true;
    }
  }
  return false;
}

/** One fresh view to mount. */
export interface ViewMount {
  point: string;
  target: string;
  lowerdirs: string[];
  upperdir: string;
  workdir: string;
}

/** Attributes a view point's directory has in the new revision (its upper root gets them). */
export interface DirAttrs {
  mode: number;
  uid: number;
  gid: number;
}

/**
 * Prepares the views (before the switch: only directories in the new writable layer are made)
 * for `points` under `root`: the upper and work directories of this update's layer `layer`,
 * with the new revision's attributes for each point.
 */
export function prepareViews(o: { root: string; points: string[]; layer: string; uppers: string[]; lower: string; attrs: (path: string) => DirAttrs }): ViewMount[] {
  const out: ViewMount[] = [];
  o.points.forEach((point, i) => {
    const target = join(o.root, point);
    let real: string;
    try {
      real = realpathSync(target);
    } catch {
      throw new MountError(`/${point} does not exist in the running system: it cannot get a fresh view (a soft-reboot can apply this update)`);
    }
    if (real !== target || !lstatSync(target).isDirectory()) {
      throw new MountError(`/${point} is not a plain directory in the running system (${real}): it cannot get a fresh view (a soft-reboot can apply this update)`);
    }
    // Full paths in the layer: each directory on the way gets the revision's attributes.
    const parts = point.split('/');
    for (let k = 1; k <= parts.length; k++) {
      const rel = parts.slice(0, k).join('/');
      const dir = join(o.layer, 'upper', rel);
      const a = o.attrs(rel);
      try {
        mkdirSync(dir, { mode: a.mode & 0o7777 });
        chownSync(dir, a.uid, a.gid);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    const workdir = join(o.layer, 'work', String(i));
    mkdirSync(workdir, { recursive: true, mode: 0o755 });
    out.push({ point, target, lowerdirs: viewLayers(point, o.uppers, o.lower), upperdir: join(o.layer, 'upper', point), workdir });
  });
  return out;
}

/** The mount(8) arguments of a view. */
export function viewMountArgs(v: ViewMount): string[] {
  const opts = `index=off,lowerdir=${v.lowerdirs.map(escapeLayer).join(':')},upperdir=${escapeLayer(v.upperdir)},workdir=${escapeLayer(v.workdir)}`;
  return ['-t', 'overlay', '-o', opts, 'gitroot-live', v.target];
}

/**
 * Mounts the views in order; if one fails, the ones mounted by this call are unmounted again
 * and the error names the view.
 */
export async function applyViews(views: ViewMount[]): Promise<void> {
  const done: ViewMount[] = [];
  for (const v of views) {
    try {
      await execFileAsync('mount', viewMountArgs(v));
      done.push(v);
    } catch (e) {
      for (const d of done.reverse()) await execFileAsync('umount', ['-l', d.target]).catch(() => undefined);
      const msg = String((e as { stderr?: string }).stderr || (e as Error).message).trim().split('\n')[0];
      throw new MountError(`fresh view of /${v.point}: ${msg}`, { cause: e });
    }
  }
}
