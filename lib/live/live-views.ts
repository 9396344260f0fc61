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
 * planViews (pure, test/live-views.test.ts) picks the points. Between the switch and the
 * views, a lookup of a changed path through an old view fails with ESTALE; so the views are
 * mounted aside before the switch (stageViews: a private tmpfs in the update's layer, so the
 * mounts can be moved out of it) and moved over the root's directories just after it
 * (placeViews: mount(2) MS_MOVE back to back, microseconds for all of them).
 */
import { execFile } from 'node:child_process';
import { chownSync, lstatSync, mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MountError } from '../errors/errors.js';
import { readXattrs } from '../native/xattr.js';
import { moveMounts } from '../native/mount-move.js';
import { constants as osConstants } from 'node:os';
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

export type ViewsPlan = { ok: true; points: string[]; dropped: Array<{ path: string; why: string }> } | { ok: false; reason: string };

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
    } catch {
      /* nothing written there */
    }
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
  /** Where it is mounted before the switch (moved to `target` after). */
  stage: string;
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
export function prepareViews(o: {
  root: string;
  points: string[];
  layer: string;
  uppers: string[];
  lower: string;
  attrs: (path: string) => DirAttrs;
}): ViewMount[] {
  const out: ViewMount[] = [];
  if (o.points.length > 0) mkdirSync(join(o.layer, 'upper'), { recursive: true, mode: 0o755 });
  o.points.forEach((point, i) => {
    const target = join(o.root, point);
    let real: string;
    try {
      real = realpathSync(target);
    } catch {
      throw new MountError(`/${point} does not exist in the running system: it cannot get a fresh view (a soft-reboot can apply this update)`);
    }
    if (real !== target || !lstatSync(target).isDirectory()) {
      throw new MountError(
        `/${point} is not a plain directory in the running system (${real}): it cannot get a fresh view (a soft-reboot can apply this update)`,
      );
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
    out.push({
      point,
      target,
      lowerdirs: viewLayers(point, o.uppers, o.lower),
      upperdir: join(o.layer, 'upper', point),
      workdir,
      stage: join(stageDir(o.layer), String(i)),
    });
  });
  return out;
}

/** Where an update's views are mounted before the switch: a private tmpfs in its layer. */
export function stageDir(layer: string): string {
  return join(layer, 'stage');
}

/** The mount(8) arguments of a view, mounted at `at` (its stage). */
export function viewMountArgs(v: ViewMount, at = v.stage): string[] {
  const opts = `index=off,lowerdir=${v.lowerdirs.map(escapeLayer).join(':')},upperdir=${escapeLayer(v.upperdir)},workdir=${escapeLayer(v.workdir)}`;
  return ['-t', 'overlay', '-o', opts, 'gitroot-live', at];
}

function firstLine(e: unknown): string {
  const x = e as { stderr?: string; message?: string };
  return String(x.stderr || x.message)
    .trim()
    .split('\n')[0];
}

/**
 * Mounts the views at their stages (before the switch; nothing visible changes): a private
 * tmpfs at the layer's stage directory (a mount under a shared one cannot be moved), then
 * each view, in parallel. A failure unmounts what this call mounted and names the view.
 */
export async function stageViews(layer: string, views: ViewMount[]): Promise<void> {
  if (views.length === 0) return;
  const stage = stageDir(layer);
  mkdirSync(stage, { recursive: true, mode: 0o700 });
  try {
    await execFileAsync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=700', 'gitroot-live-stage', stage]);
    await execFileAsync('mount', ['--make-private', stage]);
  } catch (e) {
    await execFileAsync('umount', [stage]).catch(() => undefined);
    throw new MountError(`stage the fresh views at ${stage}: ${firstLine(e)}`, { cause: e });
  }
  for (const v of views) mkdirSync(v.stage, { mode: 0o700 });
  const results = await Promise.allSettled(views.map((v) => execFileAsync('mount', viewMountArgs(v))));
  const failed = results.findIndex((r) => r.status === 'rejected');
  if (failed < 0) return;
  await unstageViews(layer);
  throw new MountError(`fresh view of /${views[failed].point}: ${firstLine((results[failed] as PromiseRejectedResult).reason)}`);
}

/** Unmounts whatever is left at the stage (views not placed, and the stage's tmpfs). */
export async function unstageViews(layer: string): Promise<void> {
  await execFileAsync('umount', ['-R', '-l', stageDir(layer)]).catch(() => undefined);
}

/**
 * Moves the staged views over the root's directories, back to back (just after the switch),
 * then unmounts the empty stage. If one cannot be moved, the ones moved are unmounted again
 * and the error names the view.
 */
export async function placeViews(layer: string, views: ViewMount[]): Promise<void> {
  if (views.length === 0) return;
  const { moved, errno } = moveMounts(views.map((v) => ({ from: v.stage, to: v.target })));
  if (moved < views.length) {
    for (const v of views.slice(0, moved).reverse()) await execFileAsync('umount', ['-l', v.target]).catch(() => undefined);
    await unstageViews(layer);
    throw new MountError(`fresh view of /${views[moved].point}: cannot move it from ${views[moved].stage} (errno ${errno}: ${osErrorName(errno)})`);
  }
  await unstageViews(layer);
}

function osErrorName(errno: number): string {
  const names = osConstants.errno as Record<string, number>;
  return Object.keys(names).find((k) => names[k] === errno) ?? 'unknown';
}
