/**
 * Typed errors for gitroot. Every error a user can cause or meet carries a stable `code`,
 * optional structured `data`, and a one-line message that names the cause and the fix.
 * Only bin/ turns them into exit statuses (see EXIT_CODES); nothing else calls process.exit.
 */

/** Stable error codes; tests assert on these, never on message text. */
export type ErrorCode =
  | 'EUSAGE' // wrong arguments or options
  | 'ENOREPO' // the git directory is missing or not a git repository
  | 'ENOREV' // a revision (SHA, branch, tag) cannot be resolved
  | 'ENOOBJECT' // an object the tree needs is missing from the store
  | 'ECORRUPT' // an object or pack failed verification
  | 'ESOURCE' // the directory to commit cannot be read or recorded
  | 'EMANIFEST' // the metadata manifest is malformed
  | 'EMOUNT' // mounting or unmounting failed
  | 'EGIT' // a git subprocess failed
  | 'ECONFIG' // a setting is unknown or malformed (names the source file/line)
  | 'ENETWORK' // the server could not be reached, timed out, or answered wrongly
  | 'EREMOTE' // the server answered, but does not have what was asked for
  | 'ELOCKED' // another gitroot process holds the lock
  | 'ENOSPACE' // not enough free space for the update
  | 'ESTATE' // the deployment state is unreadable or inconsistent
  | 'ETRUST' // a revision is refused: unsigned, badly signed, unlisted key, or a downgrade
  | 'EIMAGE' // a revision cannot become a bootable image (no kernel, no gitroot initrd, no boot loader)
  | 'ETOOL' // a system tool (sfdisk, mkfs.ext4, mtools, ...) failed
  | 'EOUTPUT' // a result (an exported archive) cannot be written to its file or pipe
  | 'EINTERNAL'; // a bug: report it

/** Exit status for each code: 2 = usage/config, 3 = not found, 4 = data/integrity, 5 = system,
 *  6 = network, 7 = busy (locked), 8 = refused by trust policy (signature, downgrade). */
export const EXIT_CODES: Record<ErrorCode, number> = {
  EUSAGE: 2,
  ENOREPO: 3,
  ENOREV: 3,
  ENOOBJECT: 4,
  ECORRUPT: 4,
  ESOURCE: 4,
  EMANIFEST: 4,
  EMOUNT: 5,
  EGIT: 5,
  ECONFIG: 2,
  ENETWORK: 6,
  EREMOTE: 3,
  ELOCKED: 7,
  ENOSPACE: 5,
  ESTATE: 4,
  ETRUST: 8,
  EIMAGE: 4,
  ETOOL: 5,
  EOUTPUT: 5,
  EINTERNAL: 70,
};

export interface ErrorOptions {
  data?: Record<string, unknown>;
  cause?: unknown;
}

/** Base class of every error gitroot raises on purpose. */
export class GitrootError extends Error {
  readonly code: ErrorCode;
  readonly data: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.data = opts.data ?? {};
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}

export class UsageError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('EUSAGE', message, opts);
  }
}
/**
 * An object or pack entry too large to hold in one Buffer: stream it (ObjectStore.copyBlobToFd)
 * instead. A UsageError (the caller asked for the wrong kind of read), with its own class so
 * callers that can stream (fsck) tell it from other usage errors by type.
 */
export class ObjectTooLargeError extends UsageError {}
export class RepoNotFoundError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ENOREPO', message, opts);
  }
}
export class RevisionNotFoundError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ENOREV', message, opts);
  }
}
export class ObjectMissingError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ENOOBJECT', message, opts);
  }
}
export class ObjectCorruptError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ECORRUPT', message, opts);
  }
}
export class SourceTreeError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ESOURCE', message, opts);
  }
}
export class ManifestError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('EMANIFEST', message, opts);
  }
}
export class MountError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('EMOUNT', message, opts);
  }
}
export class GitCommandError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('EGIT', message, opts);
  }
}
export class ConfigError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ECONFIG', message, opts);
  }
}
export class NetworkError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ENETWORK', message, opts);
  }
}
export class RemoteError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('EREMOTE', message, opts);
  }
}
export class LockedError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ELOCKED', message, opts);
  }
}
export class NoSpaceError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ENOSPACE', message, opts);
  }
}
export class StateError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ESTATE', message, opts);
  }
}
export class TrustError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ETRUST', message, opts);
  }
}

/** The revision cannot become a bootable disk image: it lacks a kernel, a gitroot initrd or the boot loader. */
export class ImageSourceError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('EIMAGE', message, opts);
  }
}

/** A system tool gitroot runs (sfdisk, mkfs.ext4, mtools, syslinux, ...) failed. */
export class ToolError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('ETOOL', message, opts);
  }
}

/** A result gitroot writes (an exported archive) cannot be written to its file or pipe. */
export class OutputError extends GitrootError {
  constructor(message: string, opts?: ErrorOptions) {
    super('EOUTPUT', message, opts);
  }
}
