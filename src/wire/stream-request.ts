// The StreamEvents request on the wire, scanned in two passes. gRPC's deserializer only scans the top
// level (identifier, first_seq, how many events): enough to check sequences. The events are read where
// they are evaluated, one by one from their own bytes (src/pipeline/evaluate-batch.ts): most need no
// decoding into objects at all (src/record/plain-record.ts), and a malformed event is one rejected
// event rather than a failed stream.
import * as protobuf from 'protobufjs';
import { contract } from '../contract';
import { pastExact, type Violation } from '../validators';

type Long = { toNumber(): number; toString(): string };

const IDENTIFIER_FIELD = contract().fieldNumber('StreamEventsRequest', 'identifier');
const FIRST_SEQ_FIELD = contract().fieldNumber('StreamEventsRequest', 'first_seq');
const EVENTS_FIELD = contract().fieldNumber('StreamEventsRequest', 'events');
const RECORD_EVENT_FIELD = contract().fieldNumber('RecordRequest', 'event');
const VARINT = 0;
const LENGTH_DELIMITED = 2;

function toNumber(v: number | Long): number {
  return typeof v === 'number' ? v : v.toNumber();
}

/** A StreamEvents request with its events still encoded. */
export interface ScannedStreamRequest {
  identifier: { zone: string; instance: string } | null;
  firstSeq: number;
  /** How many events the request carries. */
  eventCount: number;
  /** The whole request as received: the events are read from it later (eachEvent). */
  bytes: Uint8Array;
  /** Why the request could not be read whole and exact, when it could not: the handler refuses it with this. */
  invalid?: Violation;
}

/**
 * Reads the top level of a StreamEventsRequest: the identifier in full, first_seq, and the number of
 * events, whose bytes are skipped. A request that is not valid protobuf at that level comes back with
 * `invalid` set rather than thrown: grpc-js would answer a throw with a bare INTERNAL.
 */
export function scanStreamRequest(bytes: Uint8Array): ScannedStreamRequest {
  try {
    return scan(bytes);
  } catch (err) {
    return {
      identifier: null,
      firstSeq: 0,
      eventCount: 0,
      bytes,
      invalid: {
        field: 'request',
        description: `not a valid StreamEventsRequest: ${err instanceof Error ? err.message : String(err)}`,
      },
    };
  }
}

function scan(bytes: Uint8Array): ScannedStreamRequest {
  const r = protobuf.Reader.create(bytes);
  let identifier: { zone: string; instance: string } | null = null;
  let firstSeq = 0;
  let eventCount = 0;
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    // The wire types are checked, not assumed as protobufjs's decoders do: eachEvent() walks the same
    // bytes again later, skipping by the wire type it finds, and both passes must see the same events.
    if (field === IDENTIFIER_FIELD) {
      expectWireType('identifier', tag, LENGTH_DELIMITED);
      identifier = contract().messages.Identifier.decode(r, r.uint32()) as unknown as {
        zone: string;
        instance: string;
      };
    } else if (field === FIRST_SEQ_FIELD) {
      expectWireType('first_seq', tag, VARINT);
      const seq = r.uint64() as unknown as number | Long;
      firstSeq = toNumber(seq);
      // Past 2^53 the number is rounded: refused quoting the value as sent, not the rounded one.
      if (!Number.isSafeInteger(firstSeq)) {
        return {
          identifier,
          firstSeq: 0,
          eventCount: 0,
          bytes,
          invalid: { field: 'firstSeq', description: pastExact(BigInt(String(seq))) },
        };
      }
    } else if (field === EVENTS_FIELD) {
      expectWireType('events', tag, LENGTH_DELIMITED);
      r.skip(r.uint32());
      eventCount++;
    } else {
      r.skipType(tag & 7);
    }
  }
  return { identifier, firstSeq, eventCount, bytes };
}

function expectWireType(field: string, tag: number, want: number): void {
  if ((tag & 7) !== want) throw new Error(`${field}: wire type ${tag & 7}, want ${want}`);
}

/**
 * A RecordRequest's event as a StreamEventsRequest holding it alone, so that a `Record` call takes the
 * same way as a batch (src/pipeline/evaluate-batch.ts). Null when the request is not that simple (not
 * valid protobuf at its top level, no event, or the event given twice): the caller decodes such a
 * request the reference way (protobufjs), which also says what is wrong with it.
 */
export function recordRequestAsBatch(bytes: Uint8Array): Buffer | null {
  try {
    const r = protobuf.Reader.create(bytes);
    let start = -1;
    let end = -1;
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag >>> 3 === RECORD_EVENT_FIELD) {
        if ((tag & 7) !== LENGTH_DELIMITED || start >= 0) return null;
        const length = r.uint32();
        start = r.pos;
        end = start + length;
        r.skip(length);
      } else {
        r.skipType(tag & 7);
      }
    }
    if (start < 0) return null;
    // The events field's tag and length, then the event's bytes: one copy.
    const head = protobuf.Writer.create()
      .uint32((EVENTS_FIELD << 3) | LENGTH_DELIMITED)
      .uint32(end - start)
      .finish();
    return Buffer.concat([head, bytes.subarray(start, end)]);
  } catch {
    return null;
  }
}

/**
 * Calls `each` with the offsets of the events of a StreamEventsRequest (already scanned), from index
 * `from` on.
 */
export function eachEvent(
  bytes: Uint8Array,
  from: number,
  each: (index: number, start: number, end: number) => void,
): void {
  const r = protobuf.Reader.create(bytes);
  let index = 0;
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 !== EVENTS_FIELD || (tag & 7) !== LENGTH_DELIMITED) {
      r.skipType(tag & 7);
      continue;
    }
    const length = r.uint32();
    if (index >= from) each(index, r.pos, r.pos + length);
    r.pos += length;
    index++;
  }
}
