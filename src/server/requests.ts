// How the requests of a service are read, when proto-loader reads them: grpc-js answers a request its
// deserializer throws on with a bare INTERNAL ("Error deserializing request"), and proto-loader reads
// strings that are not UTF-8 and uint64s past 2^53 as something else than was sent. Here a request
// that cannot be read whole and exact comes to the handler as an UnreadableRequest, which unary()
// refuses with INVALID_ARGUMENT naming the field (or `request`, for bytes that are not the message).
import type * as grpc from '@grpc/grpc-js';
import { contract } from '../contract';
import { InvalidArgumentError } from '../validators';
import { inexactFields } from '../wire/exact-fields';

/** A request that could not be read whole and exact: the handler answers `error` instead. */
export class UnreadableRequest {
  constructor(readonly error: InvalidArgumentError) {}
}

/** `base` with every method's request read exactly, or as an UnreadableRequest. */
export function exactRequests(base: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(base)) {
    const typeName = (method as unknown as { requestType: { type: { name: string } } }).requestType.type.name;
    const type = contract().message(typeName);
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          const inexact = inexactFields(type, bytes);
          if (inexact.length > 0) return new UnreadableRequest(new InvalidArgumentError(inexact));
          return method.requestDeserialize(bytes);
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          return new UnreadableRequest(
            new InvalidArgumentError([
              { field: 'request', description: `not a valid ${typeName} message (${reason})` },
            ]),
          );
        }
      },
    };
  }
  return out;
}
