// The one place where errors become gRPC statuses. Domain errors carry what the client needs; anything
// unexpected becomes INTERNAL with a generic message (the details go to the log, never to the client).
import * as grpc from '@grpc/grpc-js';
import { contract } from '../contract';
import { type ErrorKind, MeshauditError } from '../errors';
import type { Logger } from '../log';
import { formatWithin, InvalidArgumentError, type Violation } from '../validators';

/** The status code of each kind of domain error. */
const CODES: Readonly<Record<ErrorKind, grpc.status>> = {
  'invalid-argument': grpc.status.INVALID_ARGUMENT,
  'failed-precondition': grpc.status.FAILED_PRECONDITION,
  'not-found': grpc.status.NOT_FOUND,
  'already-exists': grpc.status.ALREADY_EXISTS,
  aborted: grpc.status.ABORTED,
  unavailable: grpc.status.UNAVAILABLE,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  'permission-denied': grpc.status.PERMISSION_DENIED,
  'out-of-range': grpc.status.OUT_OF_RANGE,
  'resource-exhausted': grpc.status.RESOURCE_EXHAUSTED,
};

/** The longest description a field violation carries; a longer one is cut (a pasted blob names nothing more). */
const MAX_DESCRIPTION_CHARS = 512;
/** What a BadRequest field violation costs beyond its two strings, in bytes (tags and lengths). */
const VIOLATION_OVERHEAD_BYTES = 8;

/**
 * Maps errors to gRPC statuses: the one place that does. Everything a status carries (its message, and
 * the BadRequest details of INVALID_ARGUMENT) is bounded by `maxStatusBytes`
 * (meshaudit.limits.statusBytes): a status travels in HTTP/2 trailers, and one too large for the
 * peer's header limit is never answered and stalls the whole connection. What is cut is said.
 */
export class Statuses {
  constructor(
    private readonly log: Logger,
    private maxStatusBytes: number,
  ) {}

  /** A new meshaudit.limits.statusBytes (a config reload), for the next status. */
  setMaxStatusBytes(bytes: number): void {
    this.maxStatusBytes = bytes;
  }

  /**
   * The status of any error, by its kind. Anything that is not a domain error is a bug: the client gets
   * INTERNAL with a generic message, the log gets the error with its stack and `context` (the rpc, the
   * identifier).
   */
  of(err: unknown, context: Record<string, unknown>): grpc.StatusObject {
    if (err instanceof InvalidArgumentError) return this.withViolations(CODES[err.kind], err.violations);
    if (err instanceof MeshauditError) return plain(CODES[err.kind], this.message(err.message));
    this.log.error('internal error', {
      ...context,
      err: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
    return plain(grpc.status.INTERNAL, 'internal error; see the sidecar log');
  }

  /**
   * A status a library made (health's NOT_FOUND quotes the service name the client sent, which may be
   * megabytes long): its message cut as a domain error's is.
   */
  ofLibrary(status: { code: grpc.status; details?: string }): grpc.StatusObject {
    return plain(status.code, this.message(status.details ?? ''));
  }

  /** A message as a status carries it: within half of the budget (reflection's error replies too). */
  message(text: string): string {
    return cut(text, this.maxStatusBytes / 2);
  }

  /**
   * `code` (INVALID_ARGUMENT, or FAILED_PRECONDITION for a limit of the store) with one BadRequest field
   * violation per violation, as many as fit. The message
   * travels twice (grpc-message, and google.rpc.Status.message in the details): it takes at most an
   * eighth of the budget, the field violations what is left; a last violation counts those left out.
   */
  private withViolations(code: grpc.status, violations: readonly Violation[]): grpc.StatusObject {
    const all = violations.map(formatWithin).join('; ');
    const messageChars = Math.floor(this.maxStatusBytes / 8);
    const message = all.length > messageChars ? `${cut(all, messageChars - 24)} (${violations.length} in all)` : all;
    // Bytes left for the violations: the budget less the message twice and the envelopes' tags.
    const room = this.maxStatusBytes - 2 * Buffer.byteLength(message) - 128;
    const shown: Array<{ field: string; description: string }> = [];
    let used = 0;
    for (const v of violations) {
      const one = {
        field: cut(v.field, MAX_DESCRIPTION_CHARS),
        description: cut(v.description, MAX_DESCRIPTION_CHARS),
      };
      const bytes = Buffer.byteLength(one.field) + Buffer.byteLength(one.description) + VIOLATION_OVERHEAD_BYTES;
      if (used + bytes > room - 64) break;
      shown.push(one);
      used += bytes;
    }
    const left = violations.length - shown.length;
    if (left > 0) shown.push({ field: '', description: `${left} more violation(s) not shown` });
    // google.rpc.Status carrying a google.rpc.BadRequest, as grpcurl and every gRPC client library decode
    // from the `grpc-status-details-bin` trailer (the richer error model): the types reflection serves.
    const badRequest = contract().type('google.rpc.BadRequest').encode({ field_violations: shown }).finish();
    const status = contract()
      .type('google.rpc.Status')
      .encode({
        code,
        message,
        details: [{ type_url: 'type.googleapis.com/google.rpc.BadRequest', value: badRequest }],
      })
      .finish();
    const metadata = new grpc.Metadata();
    metadata.set('grpc-status-details-bin', Buffer.from(status));
    return { code, details: message, metadata };
  }
}

function plain(code: grpc.status, details: string): grpc.StatusObject {
  return { code, details, metadata: new grpc.Metadata() };
}

/** `text` cut to at most `maxChars` characters, with `...` when it was longer. */
function cut(text: string, maxChars: number): string {
  const max = Math.floor(maxChars);
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`;
}
