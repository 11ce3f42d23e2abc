// The base of every domain error: what kind of failure it is, which one module maps to a gRPC status
// (src/server/status.ts), and what stopping start-up on it means for the process's exit code. Domain
// errors know nothing of gRPC. This module imports nothing, so every layer may use it.

export type ErrorKind =
  /** The input is wrong: the same input fails again (INVALID_ARGUMENT). */
  | 'invalid-argument'
  /** The caller must do something else first, e.g. resend from the resume point (FAILED_PRECONDITION). */
  | 'failed-precondition'
  | 'not-found'
  | 'already-exists'
  /** A concurrent change won: read again and retry (ABORTED). */
  | 'aborted'
  /** Not now: the sidecar is stopping, or the disk or a file failed; retrying later may work (UNAVAILABLE). */
  | 'unavailable'
  /** No valid identity: no credential where one is needed, or one that is not valid (UNAUTHENTICATED). */
  | 'unauthenticated'
  /** A known caller whose groups do not hold the permission (PERMISSION_DENIED). */
  | 'permission-denied'
  /** A position past what is held, e.g. a read cursor into a file retention deleted (OUT_OF_RANGE). */
  | 'out-of-range'
  /** A bound of the sidecar is reached, e.g. concurrent queries: retry later (RESOURCE_EXHAUSTED). */
  | 'resource-exhausted';

/**
 * The exit code of a start-up stopped by the error: 2, what is configured or stored must change first
 * (restarting will not help; nothing was written); 1, the environment (a port in use, a file system
 * error): a supervisor may retry.
 */
export type StartupExitCode = 1 | 2;

export abstract class MeshauditError extends Error {
  abstract readonly kind: ErrorKind;
  readonly exitCode: StartupExitCode = 1;
}

/** A batch skips sequences: the CP must resend from the resume point. */
export class SequenceGapError extends MeshauditError {
  readonly kind = 'failed-precondition';

  constructor(
    readonly key: string,
    readonly expectedSeq: number,
    readonly gotSeq: number,
  ) {
    super(`sequence gap for ${key}: expected firstSeq <= ${expectedSeq}, got ${gotSeq}; resend from ${expectedSeq}`);
  }
}

/** The sidecar is stopping, or cannot reach what it needs; the caller may retry later. */
export class UnavailableError extends MeshauditError {
  readonly kind = 'unavailable';
}

/** The same identifier is now served by a newer stream. */
export class SupersededError extends MeshauditError {
  readonly kind = 'aborted';
}

/** The caller could not be identified: its credential is missing, unknown or invalid. */
export class UnauthenticatedError extends MeshauditError {
  readonly kind = 'unauthenticated';
}

/** The caller is known, and may not do this: the message names the permission, never whether a resource exists. */
export class PermissionDeniedError extends MeshauditError {
  readonly kind = 'permission-denied';
}
