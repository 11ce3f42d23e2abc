// The one place where errors become gRPC statuses. Domain errors carry what the client needs; anything
// unexpected becomes INTERNAL with a generic message (the details go to the log, never to the client).
import * as grpc from '@grpc/grpc-js';
import { contract } from '../contract';
import { InvalidArgumentError, SequenceGapError, SupersededError, UnavailableError } from '../errors';
import type { Logger } from '../log';
import { AlreadyExistsError, NotFoundError, StaleVersionError } from '../store/errors';

export interface FieldViolation {
  field: string;
  description: string;
}

/** INVALID_ARGUMENT with one BadRequest field violation per problem. */
export function invalidArgument(violations: readonly FieldViolation[]): grpc.StatusObject {
  const message = violations.map((v) => `${v.field}: ${v.description}`).join('; ');
  // google.rpc.Status carrying a google.rpc.BadRequest, as grpcurl and every gRPC client library decode
  // from the `grpc-status-details-bin` trailer (the richer error model): the types reflection serves.
  const badRequest = contract()
    .type('google.rpc.BadRequest')
    .encode({
      field_violations: violations.map((v) => ({ field: v.field, description: v.description })),
    })
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

function plain(code: grpc.status, details: string): grpc.StatusObject {
  return { code, details, metadata: new grpc.Metadata() };
}

/**
 * Maps any error to a status. Anything that is not a domain error is a bug: the client gets INTERNAL with
 * a generic message, and the log gets the error with its stack and `context` (the rpc, the identifier).
 */
export function toStatus(err: unknown, log: Logger, context: Record<string, unknown>): grpc.StatusObject {
  if (err instanceof InvalidArgumentError) return invalidArgument(err.violations);
  if (err instanceof SequenceGapError) return plain(grpc.status.FAILED_PRECONDITION, err.message);
  if (err instanceof UnavailableError) return plain(grpc.status.UNAVAILABLE, err.message);
  if (err instanceof SupersededError) return plain(grpc.status.ABORTED, err.message);
  if (err instanceof NotFoundError) return plain(grpc.status.NOT_FOUND, err.message);
  if (err instanceof AlreadyExistsError) return plain(grpc.status.ALREADY_EXISTS, err.message);
  if (err instanceof StaleVersionError) return plain(grpc.status.ABORTED, err.message);
  log.error('internal error', { ...context, err: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  return plain(grpc.status.INTERNAL, 'internal error; see the sidecar log');
}
