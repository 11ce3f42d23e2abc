// The CPU-heavy stage of a StreamEvents batch: read each event, validate it, ask the rules, format
// the record: the plain way (src/record/plain-record.ts) for the common events, the reference way
// (decoded objects, validateEvent, formatRecord) for every other.
import type { CompiledRules } from '../rules';
import { type EventLimits, validateEvent } from '../events/validate-event';
import { formatWithin } from '../validators';
import { formatRecord } from '../record/format-record';
import type { RecordDateFormatter } from '../record/dates';
import type { AuditEvent } from '../events/event';
import { contract, type Rejection } from '../contract';
import { eachEvent } from '../wire/stream-request';
import { inexactFields } from '../wire/exact-fields';
import { AsciiCache } from '../record/ascii-cache';
import {
  newPlainContext,
  RECORDED,
  RecordBuffer,
  SKIPPED,
  writePlainRecord,
  type PlainContext,
} from '../record/plain-record';

/** One batch to evaluate: the encoded StreamEvents request, and the index of its first new event. */
export interface BatchJob {
  bytes: Uint8Array;
  /** Events before this index were accepted earlier (duplicates): they are not decoded. */
  from: number;
  /** When the batch was received, epoch ms: the date of events without one. */
  receivedMs: number;
  /** How many events the batch holds (from its top-level scan). */
  eventCount: number;
}

export interface EvaluatedBatch {
  /** The record lines, UTF-8, each ending in "\n". */
  data: Buffer;
  recorded: number;
  skipped: number;
  rejected: Rejection[];
  /** Set when evaluation threw (a bug) and every new event was rejected for it: the error's message. */
  failure?: string;
}

const NO_DATA = Buffer.alloc(0);

/** Evaluates batches one after another, keeping its date caches warm across them. */
export class BatchEvaluator {
  private plain: PlainContext;
  private readonly strings = new AsciiCache();
  /** Where each batch's records are written before they are copied out: it grows to the largest batch. */
  private readonly out = new RecordBuffer(64 * 1024);

  constructor(
    private current: CompiledRules,
    private readonly dates: RecordDateFormatter,
    /** meshaudit.limits.fieldChars and listEntries: both ways check the same. */
    private eventLimits: EventLimits,
  ) {
    this.plain = newPlainContext(dates, eventLimits, this.strings);
  }

  get limits(): EventLimits {
    return this.eventLimits;
  }

  /**
   * New fieldChars and listEntries (a config reload), for the next batch: the plain way's scanner is
   * sized by them, so it is made again (between batches: evaluation runs in one turn of the loop).
   */
  setLimits(limits: EventLimits): void {
    const copy = { fieldChars: limits.fieldChars, listEntries: limits.listEntries };
    if (copy.fieldChars === this.eventLimits.fieldChars && copy.listEntries === this.eventLimits.listEntries) return;
    this.eventLimits = copy;
    this.plain = newPlainContext(this.dates, copy, this.strings);
  }

  /** The rules in force: every batch (and single record) evaluated from now on is judged by them. */
  get rules(): CompiledRules {
    return this.current;
  }

  setRules(rules: CompiledRules): void {
    this.current = rules;
  }

  /**
   * evaluate(), except that a throw (a bug: nothing in it throws on bad input) rejects every new event
   * of the batch, naming the error, instead of leaving the batch unanswered: the queue to the writer
   * waits for every batch's answer, and the sequences must stay contiguous.
   */
  evaluateOrReject(job: BatchJob): EvaluatedBatch {
    try {
      return this.evaluate(job);
    } catch (err) {
      const failure = err instanceof Error ? err.message : String(err);
      const reason = `event: could not be evaluated (${failure})`;
      const rejected: Rejection[] = [];
      for (let index = job.from; index < job.eventCount; index++) rejected.push({ index, reason });
      return { data: NO_DATA, recorded: 0, skipped: 0, rejected, failure };
    }
  }

  evaluate(job: BatchJob): EvaluatedBatch {
    const result: EvaluatedBatch = { data: NO_DATA, recorded: 0, skipped: 0, rejected: [] };
    // protobufjs decodes strings of a Buffer with Node's native UTF-8 decoder, of a bare Uint8Array with
    // its own JavaScript one, several times slower.
    const src = Buffer.isBuffer(job.bytes)
      ? job.bytes
      : Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength);
    const out = this.out;
    out.reset();
    eachEvent(src, job.from, (index, start, end) => {
      const outcome = writePlainRecord(src, start, end, job.receivedMs, this.current, this.plain, out);
      if (outcome === RECORDED) result.recorded++;
      else if (outcome === SKIPPED) result.skipped++;
      else this.evaluateDecoded(src, index, start, end, job.receivedMs, out, result);
    });
    if (out.pos > 0) result.data = out.copy();
    return result;
  }

  /** The reference way, for events the plain way leaves: decoded objects, validateEvent, formatRecord. */
  private evaluateDecoded(
    src: Buffer,
    index: number,
    start: number,
    end: number,
    receivedMs: number,
    out: RecordBuffer,
    result: EvaluatedBatch,
  ): void {
    let event: AuditEvent;
    try {
      const bytes = src.subarray(start, end);
      // protobufjs would take strings that are not UTF-8 with U+FFFD in their place: refused, named.
      const inexact = inexactFields(contract().messages.Event, bytes);
      if (inexact.length > 0) {
        result.rejected.push({ index, reason: inexact.map(formatWithin).join('; ') });
        return;
      }
      event = contract().messages.Event.decode(bytes) as unknown as AuditEvent;
    } catch (err) {
      result.rejected.push({
        index,
        reason: `event: not a valid protobuf Event message (${err instanceof Error ? err.message : String(err)})`,
      });
      return;
    }
    const check = validateEvent(event, receivedMs, this.limits);
    if (!check.ok) {
      // A stream's rejection says `field: description`, the field's path within the event.
      result.rejected.push({ index, reason: formatWithin(check) });
    } else if (this.current.covers(check.event)) {
      out.putString(formatRecord(check.event, this.dates));
      result.recorded++;
    } else {
      result.skipped++;
    }
  }
}
