/**
 * Named steps for the `apply` side of every crash-ordered operation: an error met in a step
 * becomes a typed error whose message starts with the step's name (`write state: ...`), and a
 * full disk becomes NoSpaceError, so the one line a user sees says where it failed.
 */
import { GitrootError, NoSpaceError, StateError } from '../errors/errors.js';

/** Turns an error met in step `name` into a typed error whose message starts with the step. */
export function stepError(name: string, e: unknown): GitrootError {
  if (e instanceof GitrootError) {
    if (e.data.step === undefined) {
      e.message = `${name}: ${e.message}`;
      e.data.step = name;
    }
    return e;
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOSPC' || err?.code === 'EDQUOT') {
    return new NoSpaceError(`${name}: ${err.message}: free space on that filesystem and run the command again`, { data: { step: name }, cause: e });
  }
  return new StateError(`${name}: ${err?.message ?? String(e)}: check that the gitroot home and boot directory are writable`, {
    data: { step: name },
    cause: e,
  });
}

/** Runs `fn` as step `name`; any error it throws is re-thrown typed and prefixed with the step. */
export function step<T>(name: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw stepError(name, e);
  }
}

/** Async step(). */
export async function stepAsync<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw stepError(name, e);
  }
}
