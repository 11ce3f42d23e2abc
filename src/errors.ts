// Domain errors shared by the pipeline, the store and the services. They know nothing of gRPC:
// src/server/status.ts maps them. This module imports nothing, so every layer may use it.

/** A field of a request is wrong; `violations` name each problem. */
export class InvalidArgumentError extends Error {
  constructor(readonly violations: ReadonlyArray<{ field: string; description: string }>) {
    super(violations.map((v) => `${v.field}: ${v.description}`).join('; '));
  }
}

/** A batch skips sequences: the CP must resend from the resume point. */
export class SequenceGapError extends Error {
  constructor(
    readonly key: string,
    readonly expectedSeq: number,
    readonly gotSeq: number,
  ) {
    super(`sequence gap for ${key}: expected firstSeq <= ${expectedSeq}, got ${gotSeq}; resend from ${expectedSeq}`);
  }
}

/** The pipeline is stopping; the caller may retry against the restarted sidecar. */
export class UnavailableError extends Error {}

/** The same identifier is now served by a newer stream. */
export class SupersededError extends Error {}
