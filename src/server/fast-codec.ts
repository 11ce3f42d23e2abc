// Request decoding for the AuditService hot path. proto-loader decodes with protobufjs and then
// converts every message into a plain object (toObject: defaults, arrays, Long -> number), which for
// a batch of 100 events allocates a second copy of everything. StreamEvents requests are only scanned
// here (identifier, first_seq, how many events): the events are read where they are evaluated
// (src/wire/stream-request.ts). A Record request is decoded straight with
// protobufjs: a decoded message already reads like the AuditEvent shape (absent strings are "",
// absent messages null). Acks go the other way the same: encoded straight from the handler's objects.
import type * as grpc from '@grpc/grpc-js';
import { scanStreamRequest, wireTypes } from '../wire/stream-request';

/** The AuditService definition with StreamEvents and Record requests decoded without proto-loader's copy. */
export function fastAuditService(base: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const { recordRequest, streamResponse } = wireTypes();
  return {
    ...base,
    StreamEvents: {
      ...base.StreamEvents,
      requestDeserialize: scanStreamRequest,
      // The acks are built by the handler with every field of the right JS type: encode them as they
      // are, without proto-loader's fromObject copy.
      responseSerialize: (ack: object) => streamResponse.encode(ack).finish() as Buffer,
    },
    Record: { ...base.Record, requestDeserialize: (buf: Buffer) => recordRequest.decode(buf) },
  };
}
