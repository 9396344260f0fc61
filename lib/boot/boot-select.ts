/**
 * Which revision a boot serves, and the transitions a person or a unit makes after a boot:
 * pure decisions over the deployment state (lib/home/home-state.ts), with no I/O. The
 * caller persists the state a decision returns: `gitroot boot` before it mounts anything (so
 * a power cut during the boot of a pending revision still counts as a try), `mark-good`,
 * `mark-bad` and `rollback` (lib/boot/transitions.ts) after rewriting the boot entries.
 * docs/rollback.md states the rules and walks through a failed and a successful update.
 *
 * The rules of selectRevision, in order:
 *   0. A pending entry naming the good revision is finished (nothing left to try).
 *   1. `git-revision=` names a failed revision (not pending, not good): passed over. A stale
 *      boot entry (extlinux keeps its DEFAULT until the entries are rewritten) must not boot
 *      a revision the state already gave up on; `update-revision=` stages it again.
 *   2. `git-revision=` names another revision (typed at the prompt, or a fallback entry of a
 *      machine with nothing good yet): boots it when healthy; pending and good untouched.
 *   3. `git-revision=` names the good revision: boots it when healthy; pending untouched,
 *      except that a pending revision with no tries left is recorded as failed (the boot
 *      loader fell back because they were used up).
 *   4. Otherwise, or when the revision asked for cannot be read: the pending revision, which
 *      uses one try (a missing or broken one too: the boot was attempted); with no tries left
 *      it is recorded as failed instead. Then the good revision, then earlier good ones
 *      (newest first), then the revision the last boot ran, then none.
 * A revision listed in `failed` is never chosen, and one that is missing or broken never.
 * One that `gitroot fsck` found damaged (its commit and root tree read, but some file does
 * not) is passed over like a broken one, unless nothing else can boot: then the first damaged
 * revision in the order above boots (some files fail with EIO, which beats no boot at all).
 */
import { GitrootError, StateError } from '../errors/errors.js';
import { type DeployState, withFailed, withGood, withPrunedStaged } from '../home/home-state.js';
import { isSha } from '../store/object-id.js';

/**
 * What the repository says about a revision: `ok` (commit and root tree readable), `missing`,
 * `broken`, or `damaged` (readable, but the last `gitroot fsck` found objects of its tree broken
 * or missing; see lib/fsck/fsck-verdict.ts), or `untrusted` (readable, but the initramfs
 * carries an allowed-signers file and the commit has no valid signature from a key it lists;
 * lib/trust). Every rule treats `untrusted` exactly like `broken`: never chosen, not even as
 * the last resort a damaged revision is.
 */
export type RevisionHealth = 'ok' | 'missing' | 'broken' | 'damaged' | 'untrusted';

/**
 * The role of the chosen revision: `pending` (a try of the staged revision), `good` (the
 * known-good one), `cmdline` (another revision `git-revision=` named), `fallback` (an earlier
 * good revision or the last booted one, because nothing before it could boot), `none`.
 */
export type SelectionKind = 'pending' | 'good' | 'cmdline' | 'fallback' | 'none';

/** What selectRevision decides from. */
export interface SelectInput {
  /** `D/state.json` as read (not modified). */
  state: DeployState;
  /** The value of `git-revision=` on the kernel command line, or null when absent. */
  cmdlineRevision: string | null;
  /** Health of a revision in `D/repo.git` (see readHealth in revision-health.ts). */
  health: (sha: string) => RevisionHealth;
}

/** What selectRevision decided. */
export interface Selection {
  /** The revision to serve, or null when none can boot. */
  revision: string | null;
  kind: SelectionKind;
  /** One line for people: why this revision. */
  reason: string;
  /** Revisions passed over and state changes, one line each (for the boot log). */
  notes: string[];
  /** The state to persist before mounting (`booted` is the chosen revision; unchanged when none). */
  state: DeployState;
}

/** Transitions after a boot. */
export type TransitionAction = 'mark-good' | 'mark-bad' | 'rollback';

/** What a transition plan decided. */
export interface TransitionPlan {
  action: TransitionAction;
  /** The revision acted on: the booted one (mark-good, mark-bad) or the new good one (rollback). */
  revision: string;
  /** False when the state already says so (nothing to write but the entries). */
  changed: boolean;
  /** One line for people. */
  reason: string;
  /** What the next boot will choose (with nothing typed at the prompt and every revision healthy). */
  nextBoot: string | null;
  /** The state after the transition (staged records no longer needed pruned). */
  state: DeployState;
}

/** Why a transition was refused (`data.why`). */
export type RefusalReason = 'nothing-booted' | 'no-previous-good' | 'last-good' | 'no-boot-entry' | 'unhealthy' | 'booted-mismatch';

/** A transition the state does not allow; nothing was changed. */
export class TransitionRefusedError extends StateError {
  constructor(action: TransitionAction, why: RefusalReason, message: string, data: Record<string, unknown> = {}) {
    super(message, { data: { action, why, ...data } });
  }
}

/** True when `e` is a TransitionRefusedError for reason `why` (any reason when omitted). */
export function isRefusal(e: unknown, why?: RefusalReason): e is TransitionRefusedError {
  return e instanceof TransitionRefusedError && (why === undefined || (e as GitrootError).data.why === why);
}

const short = (sha: string): string => sha.slice(0, 12);

function healthText(h: RevisionHealth): string {
  if (h === 'untrusted') return 'untrusted (no valid signature from a key in the allowed-signers file)';
  if (h === 'damaged') return "damaged (gitroot fsck found some of its files broken; 'gitroot fsck --repair' fetches them again)";
  return h === 'missing' ? 'not in the repository' : 'unreadable (its objects fail verification)';
}

/**
 * The value of the last `git-revision=` on a kernel command line (the kernel's own rule: the
 * last one wins), or null when there is none. A bare `git-revision` gives ''. Quotes around
 * the value are removed; the value is not checked here (selectRevision passes over anything
 * that is not a 40-hex id).
 */
export function cmdlineRevision(cmdline: string): string | null {
  let found: string | null = null;
  for (const m of cmdline.matchAll(/(?:^|\s)git-revision(?:=("[^"]*"|\S*))?(?=\s|$)/g)) {
    found = (m[1] ?? '').replace(/^"(.*)"$/, '$1');
  }
  return found;
}

/** Decides which revision boots and the state to persist before mounting it (pure; see the module comment). */
export function selectRevision(input: SelectInput): Selection {
  const strict = select(input, false);
  if (strict.revision !== null) return strict;
  const damaged = new Set<string>();
  const probe = (sha: string): RevisionHealth => {
    const h = input.health(sha);
    if (h === 'damaged') damaged.add(sha);
    return h;
  };
  const again = select({ ...input, health: probe }, true);
  if (again.revision === null || !damaged.has(again.revision)) return strict;
  const why =
    `nothing undamaged can boot (${strict.reason.replace(/^no bootable revision \((.*)\): stage one.*$/, '$1')}), ` +
    "so a revision gitroot fsck found damaged boots: its broken files fail with EIO; run 'gitroot fsck --repair'";
  return { ...again, reason: `${again.reason}; ${why}`, notes: [...again.notes, `${again.revision} boots although damaged: ${why}`] };
}

/** Where the command line's `git-revision=` points, relative to the state. */
type AskedKind = 'pending' | 'good' | 'other' | null;

/**
 * One run of the rules of selectRevision over one input: the state as the rules change it,
 * the notes, what was passed over (for the reason of a fallback) and what was tried.
 */
class SelectionRun {
  readonly notes: string[] = [];
  /** What was passed over and why, for the reason of a fallback. */
  readonly passed: string[] = [];
  readonly tried = new Set<string>();
  readonly failed: Set<string>;
  state: DeployState;
  private readonly healthMemo = new Map<string, RevisionHealth>();

  constructor(
    private readonly input: SelectInput,
    private readonly acceptDamaged: boolean,
  ) {
    this.state = input.state;
    // 0. A pending entry for the good revision is a finished trial (staging never writes one).
    if (this.state.pending !== null && this.state.pending.revision === this.state.good) {
      this.notes.push(`pending revision ${this.state.good} is already the known-good one: its trial is over`);
      this.state = withGood(this.state, this.state.good);
    }
    this.failed = new Set(this.state.failed);
  }

  /** The health of `sha`, asked once (damaged counts as ok when damaged revisions are accepted). */
  health(sha: string): RevisionHealth {
    let h = this.healthMemo.get(sha);
    if (h === undefined) {
      h = this.input.health(sha);
      if (h === 'damaged' && this.acceptDamaged) h = 'ok';
      this.healthMemo.set(sha, h);
    }
    return h;
  }

  /** The selection of `revision`, with `booted` set to it. */
  choose(revision: string, kind: SelectionKind, reason: string): Selection {
    const state = this.state;
    return { revision, kind, reason, notes: this.notes, state: state.booted === revision ? state : { ...state, booted: revision } };
  }

  /** Records that `sha` (`what`, e.g. 'good revision') was passed over, and why. */
  pass(what: string, sha: string, why: string): void {
    const sep = what.endsWith('=') ? '' : ' ';
    this.notes.push(`${what}${sep}${sha} is ${why}: passed over`);
    this.passed.push(`${what}${sep}${short(sha)} is ${why}`);
  }

  /** Tries `sha`: true if healthy; otherwise records why it was passed over. */
  usable(what: string, sha: string): boolean {
    this.tried.add(sha);
    const h = this.health(sha);
    if (h === 'ok') return true;
    this.pass(what, sha, healthText(h));
    return false;
  }

  /** A pending revision whose tries are used up becomes failed. */
  failUsedUp(): void {
    const p = this.state.pending;
    if (p === null || p.triesLeft > 0) return;
    this.notes.push(`pending revision ${p.revision} used up its ${p.tries} ${p.tries === 1 ? 'try' : 'tries'} without being marked good: recorded as failed`);
    this.passed.push(`pending ${short(p.revision)} used up its tries and is recorded as failed`);
    this.state = withFailed(this.state, p.revision);
    this.failed.add(p.revision);
    this.tried.add(p.revision);
  }

  /** ': ' and what was passed over, or '' (the end of a fallback's reason). */
  because(): string {
    return this.passed.length > 0 ? `: ${this.passed.join('; ')}` : '';
  }
}

/** Rules 1-3, classifying: what `git-revision=` names (a failed or malformed one is passed over here). */
function classifyAsked(run: SelectionRun, raw: string | null, asked: string | null): AskedKind {
  if (asked === null) return null;
  if (!isSha(asked)) {
    run.notes.push(`git-revision=${raw} is not a full commit id (40 hex digits): ignored`);
    run.passed.push(`git-revision=${raw} is not a full commit id`);
    return null;
  }
  if (asked === run.state.pending?.revision) return 'pending';
  if (asked === run.state.good) return 'good';
  if (run.failed.has(asked)) {
    run.tried.add(asked);
    run.pass('git-revision=', asked, `a failed revision (stage it again with update-revision=${asked} to retry it)`);
    return null;
  }
  return 'other';
}

/** Rules 2-3: the revision `git-revision=` names, when it is another one or the good one and healthy. */
function chooseAsked(run: SelectionRun, asked: string | null, kind: AskedKind): Selection | null {
  if (kind === 'other' && asked !== null && run.usable('git-revision=', asked)) {
    return run.choose(asked, 'cmdline', `git-revision=${asked} names it: it boots without changing the pending or good revision`);
  }
  const good = run.state.good;
  if (kind === 'good' && good !== null) {
    run.failUsedUp();
    if (run.usable('good revision', good)) {
      const after = run.passed.length > 0 ? `; ${run.passed.join('; ')}` : '';
      return run.choose(good, 'good', `known-good revision ${good}: git-revision= names it (the boot loader fell back, or it was chosen at the menu)${after}`);
    }
  }
  return null;
}

/** Rule 4, first: the pending revision, using one of its tries (with none left it is recorded as failed). */
function choosePending(run: SelectionRun): Selection | null {
  run.failUsedUp();
  const p = run.state.pending;
  if (p === null) return null;
  const triesLeft = p.triesLeft - 1;
  run.state = { ...run.state, pending: { ...p, triesLeft } };
  run.tried.add(p.revision);
  if (run.health(p.revision) === 'ok') {
    const n = p.tries - triesLeft;
    return run.choose(
      p.revision,
      'pending',
      `pending revision ${p.revision}: try ${n} of ${p.tries} (${triesLeft} left after this boot, unless it is marked good)`,
    );
  }
  run.pass('pending revision', p.revision, `${healthText(run.health(p.revision))}; this boot used one of its tries (${triesLeft} left)`);
  return null;
}

/** Rule 4, then: the good revision, earlier good ones (newest first), the last booted one, or none. */
function chooseFallback(run: SelectionRun, good: string | null): Selection {
  const state = run.state;
  if (good !== null && !run.tried.has(good) && run.usable('good revision', good)) {
    return run.choose(good, 'good', `known-good revision ${good}${run.because()}`);
  }
  for (const q of state.previousGood) {
    if (run.tried.has(q)) continue;
    if (run.failed.has(q)) {
      run.notes.push(`earlier good revision ${q} failed since: passed over`);
      continue;
    }
    if (run.usable('earlier good revision', q)) return run.choose(q, 'fallback', `earlier good revision ${q}${run.because()}`);
  }
  const last = state.booted;
  if (last !== null && !run.tried.has(last) && !run.failed.has(last) && run.usable('last booted revision', last)) {
    return run.choose(last, 'fallback', `last booted revision ${last}${run.because()}`);
  }
  const what = run.passed.length > 0 ? run.passed.join('; ') : 'the state names no revision';
  return {
    revision: null,
    kind: 'none',
    notes: run.notes,
    state: run.state,
    reason: `no bootable revision (${what}): stage one with 'gitroot fetch', or boot with git-revision=SHA naming a commit of the repository`,
  };
}

/** The rules of selectRevision in order (see the module comment), damaged revisions accepted or not. */
function select(input: SelectInput, acceptDamaged: boolean): Selection {
  const run = new SelectionRun(input, acceptDamaged);
  const good = run.state.good;
  const raw = input.cmdlineRevision;
  const asked = raw === null ? null : raw.toLowerCase();
  const kind = classifyAsked(run, raw, asked);
  return chooseAsked(run, asked, kind) ?? choosePending(run) ?? chooseFallback(run, good);
}

/** The revision the next boot chooses with nothing typed at the prompt and every revision healthy (pure). */
export function nextBootRevision(state: DeployState): string | null {
  return selectRevision({ state, cmdlineRevision: null, health: () => 'ok' }).revision;
}

/**
 * The plan for `after`: unchanged (and not pruned) when the transition changes nothing; else
 * with the staged records planRetention does not keep pruned, except that of the revision that
 * boots next (an earlier good one can boot next when nothing is good).
 */
function transition(action: TransitionAction, revision: string, before: DeployState, after: DeployState, reason: string): TransitionPlan {
  if (JSON.stringify(after) === JSON.stringify(before)) {
    return { action, revision, changed: false, reason, nextBoot: nextBootRevision(before), state: before };
  }
  let state = withPrunedStaged(after);
  const nextBoot = nextBootRevision(state);
  if (nextBoot !== null && state.staged[nextBoot] === undefined && after.staged[nextBoot] !== undefined) {
    state = { ...state, staged: Object.fromEntries(Object.entries({ ...state.staged, [nextBoot]: after.staged[nextBoot] }).sort()) };
  }
  return { action, revision, changed: true, reason, nextBoot, state };
}

function requireBooted(action: TransitionAction, state: DeployState): string {
  if (state.booted === null) {
    throw new TransitionRefusedError(
      action,
      'nothing-booted',
      `${action}: state.json records no booted revision (this machine was not booted by gitroot yet): nothing to ${action === 'mark-good' ? 'mark good' : 'mark bad'}`,
    );
  }
  return state.booted;
}

/**
 * mark-good (pure): the booted revision becomes the known-good one; the old good revision goes
 * to the front of `previousGood`; a pending trial of the booted revision is over (pending
 * cleared); the booted revision leaves `failed`. A pending revision other than the booted one
 * is kept. Refused (TransitionRefusedError) when nothing is booted.
 */
export function planMarkGood(state: DeployState): TransitionPlan {
  const booted = requireBooted('mark-good', state);
  const next = withGood(state, booted);
  const was =
    state.good === booted
      ? 'is already the known-good revision'
      : state.pending?.revision === booted
        ? `passed its trial (try ${state.pending.tries - state.pending.triesLeft} of ${state.pending.tries})`
        : 'booted completely';
  const reason =
    state.good === booted
      ? `${booted} ${was}`
      : `${booted} ${was}: it is the known-good revision now${state.good === null ? '' : ` (${state.good} is the previous one)`}`;
  return transition('mark-good', booted, state, next, reason);
}

/**
 * mark-bad (pure): the booted revision is abandoned at once: it goes to the front of `failed`
 * and leaves `previousGood`; a pending trial of it ends; if it was the good revision, the newest
 * earlier good revision that did not fail becomes good. Refused when nothing is booted, and
 * when the booted revision is the good one with no earlier good revision to take its place (a
 * machine always keeps a revision to fall back to).
 */
export function planMarkBad(state: DeployState): TransitionPlan {
  const booted = requireBooted('mark-bad', state);
  let next: DeployState = { ...state, previousGood: state.previousGood.filter((s) => s !== booted) };
  let reason: string;
  if (state.good === booted) {
    const replacement = state.previousGood.find((s) => s !== booted && !state.failed.includes(s));
    if (replacement === undefined) {
      throw new TransitionRefusedError(
        'mark-bad',
        'last-good',
        `mark-bad: ${booted} is the known-good revision and no earlier good revision can replace it: ` + 'stage another revision and mark that one good first',
        { revision: booted },
      );
    }
    next = { ...next, good: replacement, previousGood: next.previousGood.filter((s) => s !== replacement) };
    reason = `${booted} is recorded as failed; the earlier good revision ${replacement} is the known-good one again`;
  } else if (state.pending?.revision === booted) {
    reason = `${booted} is recorded as failed and its trial ends`;
  } else {
    reason = `${booted} is recorded as failed`;
  }
  next = withFailed(next, booted);
  const plan = transition('mark-bad', booted, state, next, reason);
  return { ...plan, reason: `${plan.reason}; the next boot runs ${plan.nextBoot ?? 'nothing'}` };
}

/**
 * rollback (pure): the newest earlier good revision becomes good and boots next; the current
 * good revision becomes the newest earlier one (a second rollback undoes the first); a pending
 * revision is withdrawn (not recorded as failed). Refused when there is no earlier good revision.
 */
export function planRollback(state: DeployState): TransitionPlan {
  const target = state.previousGood[0];
  if (target === undefined) {
    throw new TransitionRefusedError(
      'rollback',
      'no-previous-good',
      'rollback: there is no earlier good revision to go back to (previousGood in state.json is empty)',
    );
  }
  const next: DeployState = { ...withGood(state, target), pending: null };
  const withdrawn = state.pending === null || state.pending.revision === target ? '' : `; the pending ${state.pending.revision} is withdrawn`;
  return transition(
    'rollback',
    target,
    state,
    next,
    `${target} is the known-good revision again and boots next${state.good === null ? '' : ` (${state.good} is the previous one)`}${withdrawn}`,
  );
}
