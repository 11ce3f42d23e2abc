// Request decoding for the AuditService hot path. proto-loader decodes with protobufjs and then
// converts every message into a plain object (toObject: defaults, arrays, Long -> number), which for
// a batch of 100 events allocates a second copy of everything. StreamEvents requests are only scanned
// here (identifier, first_seq, how many events): the events are read where they are evaluated
// (src/wire/stream-request.ts). A Record request is kept as received: the pipeline reads its event
// the way it reads a batch's, and decodes it only to word a rejection (SingleRecords.record).
// Acks go the other way: encoded straight from the handler's objects.
import type * as grpc from '@grpc/grpc-js';
import { contract } from '../contract';
import { scanStreamRequest } from '../wire/stream-request';

/** The AuditService definition with StreamEvents and Record requests read without proto-loader's copy. */
export function fastAuditService(base: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const streamResponse = contract().messages.StreamEventsResponse;
  return {
    ...base,
    StreamEvents: {
      ...base.StreamEvents,
      requestDeserialize: scanStreamRequest,
      // The acks are built by the handler with every field of the right JS type: encode them as they
      // are, without proto-loader's fromObject copy.
      responseSerialize: (ack: object) => streamResponse.encode(ack).finish() as Buffer,
    },
    // Kept as received: the pipeline reads the event the way it reads a batch's (recordEncoded).
    Record: { ...base.Record, requestDeserialize: (buf: Buffer) => buf },
  };
}
