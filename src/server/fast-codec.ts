// Request decoding for the AuditService hot path. proto-loader decodes with protobufjs and then
// converts every message into a plain object (toObject: defaults, arrays, Long -> number), which for
// a batch of 100 events allocates a second copy of everything. The handlers only read fields, and a
// decoded protobufjs message already reads like the AuditEvent shape: absent strings are "" and absent
// messages null (prototype defaults), repeated fields and maps are empty. Only uint64 needs converting.
// Acks go the other way the same: encoded straight from the handler's objects.
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { AUDIT_PROTO, protoDir } from './proto';

type Long = { toNumber(): number };

function toNumber(v: number | Long): number {
  return typeof v === 'number' ? v : v.toNumber();
}

/** The AuditService definition with StreamEvents and Record requests decoded straight from protobufjs. */
export function fastAuditService(base: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const root = protobuf.loadSync(path.join(protoDir(), AUDIT_PROTO));
  const streamRequest = root.lookupType('meshaudit.v1.StreamEventsRequest');
  const recordRequest = root.lookupType('meshaudit.v1.RecordRequest');
  const streamResponse = root.lookupType('meshaudit.v1.StreamEventsResponse');
  return {
    ...base,
    StreamEvents: {
      ...base.StreamEvents,
      requestDeserialize: (buf: Buffer) => {
        const m = streamRequest.decode(buf) as unknown as { firstSeq: number | Long };
        m.firstSeq = toNumber(m.firstSeq);
        return m;
      },
      // The acks are built by the handler with every field of the right JS type: encode them as they
      // are, without proto-loader's fromObject copy.
      responseSerialize: (ack: object) => streamResponse.encode(ack).finish() as Buffer,
    },
    Record: { ...base.Record, requestDeserialize: (buf: Buffer) => recordRequest.decode(buf) },
  };
}
