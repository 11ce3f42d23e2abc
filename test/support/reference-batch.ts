// Events built byte by byte (so that they can also be malformed, repeat fields, or carry bytes that are
// not UTF-8), the StreamEvents requests that carry them, and what the reference way makes of a request:
// protobufjs decoding, validateEvent, the rules, formatRecord, one event at a time. The plain byte path
// is compared with it (test/record/plain-record.test.ts, and the property test of
// test/pipeline/evaluate-batch.test.ts).
import * as protobuf from 'protobufjs';
import { contract } from '../../src/contract';
import type { AuditEvent } from '../../src/events/event';
import { type EventLimits, validateEvent } from '../../src/events/validate-event';
import type { EvaluatedBatch } from '../../src/pipeline/evaluate-batch';
import type { RecordDateFormatter } from '../../src/record/dates';
import { formatRecord } from '../../src/record/format-record';
import type { CompiledRules } from '../../src/rules';
import { formatWithin } from '../../src/validators';
import { inexactFields } from '../../src/wire/exact-fields';
import { eachEvent } from '../../src/wire/stream-request';

/** A field of an encoded message: number, then a string, raw bytes, a nested message, or a varint. */
export type Part = [number, string | Uint8Array | Part[] | { varint: number }];

export function encode(parts: Part[]): Uint8Array {
  const w = protobuf.Writer.create();
  for (const [field, value] of parts) {
    if (typeof value === 'string') w.uint32((field << 3) | 2).string(value);
    else if (value instanceof Uint8Array) w.uint32((field << 3) | 2).bytes(value);
    else if (Array.isArray(value)) w.uint32((field << 3) | 2).bytes(encode(value));
    else w.uint32(field << 3).uint64(value.varint);
  }
  return w.finish();
}

/** A StreamEventsRequest holding `events`, each already encoded. */
export function request(events: Uint8Array[]): Buffer {
  const w = protobuf.Writer.create();
  w.uint32((2 << 3) | 0).uint64(1);
  for (const e of events) w.uint32((3 << 3) | 2).bytes(e);
  return Buffer.from(w.finish());
}

/** What the reference way gives for a request received at `receivedMs`: records, counts, rejections. */
export function referenceBatch(
  bytes: Buffer,
  rules: CompiledRules,
  receivedMs: number,
  dates: RecordDateFormatter,
  limits: EventLimits,
): EvaluatedBatch {
  const out: EvaluatedBatch = { data: Buffer.alloc(0), recorded: 0, skipped: 0, rejected: [] };
  let lines = '';
  eachEvent(bytes, 0, (index, start, end) => {
    let event: AuditEvent;
    try {
      // proto3: every string is UTF-8; the reference refuses one that is not, naming it.
      const inexact = inexactFields(contract().messages.Event, bytes.subarray(start, end));
      if (inexact.length > 0) {
        out.rejected.push({ index, reason: inexact.map(formatWithin).join('; ') });
        return;
      }
      event = contract().messages.Event.decode(bytes.subarray(start, end)) as unknown as AuditEvent;
    } catch (err) {
      out.rejected.push({ index, reason: `event: not a valid protobuf Event message (${(err as Error).message})` });
      return;
    }
    const check = validateEvent(event, receivedMs, limits);
    if (!check.ok) out.rejected.push({ index, reason: formatWithin(check) });
    else if (rules.covers(check.event)) {
      lines += formatRecord(check.event, dates);
      out.recorded++;
    } else out.skipped++;
  });
  out.data = Buffer.from(lines);
  return out;
}
