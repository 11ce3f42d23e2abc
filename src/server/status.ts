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
};

/** INVALID_ARGUMENT with one BadRequest field violation per violation. */
function invalidArgument(violations: readonly Violation[]): grpc.StatusObject {
  const message = violations.map(formatWithin).join('; ');
  // google.rpc.Status carrying a google.rpc.BadRequest, as grpcurl and every gRPC client library decode
  // from the `grpc-status-details-bin` trailer (the richer error model): the types reflection serves.
  const badRequest = contract()
    .type('google.rpc.BadRequest')
    .encode({ field_violations: violations.map((v) => ({ field: v.field, description: v.description })) })
    .finish();
  const status = contract()
    .type('google.rpc.Status')
    .encode({
      code: grpc.status.INVALID_ARGUMENT,
      message,
      details: [{ type_url: 'type.googleapis.com/google.rpc.BadRequest', value: badRequest }],
    })
    .finish();
  const metadata = new grpc.Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from(status));
  return { code: grpc.status.INVALID_ARGUMENT, details: message, metadata };
}

/**
 * Maps any error to a status by its kind. Anything that is not a domain error is a bug: the client gets
 * INTERNAL with a generic message, and the log gets the error with its stack and `context` (the rpc,
 * the identifier).
 */
export function toStatus(err: unknown, log: Logger, context: Record<string, unknown>): grpc.StatusObject {
  if (err instanceof InvalidArgumentError) return invalidArgument(err.violations);
  if (err instanceof MeshauditError)
    return { code: CODES[err.kind], details: err.message, metadata: new grpc.Metadata() };
  log.error('internal error', { ...context, err: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  return { code: grpc.status.INTERNAL, details: 'internal error; see the sidecar log', metadata: new grpc.Metadata() };
}
