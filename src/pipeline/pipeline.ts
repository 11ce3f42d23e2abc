// The audit pipeline, free of gRPC: sequence checks per control-plane identifier, validation, rule
// evaluation and record formatting, then the group-commit writer. Handlers in src/server call it.
import type { CompiledRules, RuleMatch } from '../rules';
import type { AuditEvent } from '../events/event';
import type { ValidEvent } from '../events/valid-event';
import { newEventTimeParsers, validateEvent } from '../events/validate-event';
import { formatRecord } from '../events/format-record';
import { RecordDateFormatter } from '../events/rfc3339';
import { AuditWriter, WriterClosedError } from './writer';
import { BatchEvaluator, type Rejection } from './evaluate-batch';
import { InvalidArgumentError, SequenceGapError, UnavailableError } from '../errors';

export type { Rejection } from './evaluate-batch';

export interface BatchResult {
  ackedSeq: number;
  firstSeq: number;
  recorded: number;
  skipped: number;
  duplicates: number;
  rejected: Rejection[];
}

export interface PipelineStats {
  recorded: number;
  skipped: number;
  rejected: number;
  duplicates: number;
}

/** A StreamEvents batch with its events still encoded (src/wire/stream-request.ts). */
export interface EncodedBatch {
  bytes: Uint8Array;
  eventCount: number;
}

export interface PipelineOptions {
  /** The zone this sidecar serves: streams of control planes of other zones are refused. */
  zone?: string;
  /** Epoch ms, for events without a date. */
  now?: () => number;
  /** A fixed UTC offset for record dates, in minutes; undefined: the machine's local time zone. */
  utcOffsetMinutes?: number;
}

/** `zone/instance`: zone names cannot hold "/", so the key is unambiguous. */
export function identifierKey(zone: string, instance: string): string {
  return `${zone}/${instance}`;
}

const IDENTIFIER_PART = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;

export class AuditPipeline {
  /** Last sequence accepted per identifier: committed, or queued in the writer. */
  private readonly accepted = new Map<string, number>();
  /** Last sequence committed per identifier: the resume point. */
  private readonly committed: Map<string, number>;
  private readonly dates: RecordDateFormatter;
  private readonly times = newEventTimeParsers();
  private readonly evaluator: BatchEvaluator;
  readonly stats: PipelineStats = { recorded: 0, skipped: 0, rejected: 0, duplicates: 0 };

  private readonly now: () => number;
  private readonly zone: string | undefined;

  constructor(
    private readonly writer: AuditWriter,
    private rules: CompiledRules,
    committedSeqs: ReadonlyMap<string, number>,
    opts: PipelineOptions = {},
  ) {
    this.committed = new Map(committedSeqs);
    for (const [k, v] of committedSeqs) this.accepted.set(k, v);
    this.now = opts.now ?? Date.now;
    const offset = opts.utcOffsetMinutes;
    this.dates = new RecordDateFormatter(offset === undefined ? undefined : () => offset);
    this.evaluator = new BatchEvaluator(rules, this.dates);
    this.zone = opts.zone;
  }

  /** Rules in force for every event accepted from now on. */
  setRules(rules: CompiledRules): void {
    this.rules = rules;
    this.evaluator.setRules(rules);
  }

  currentRules(): CompiledRules {
    return this.rules;
  }

  /** Checks an identifier and returns its key and resume point. */
  identify(zone: string, instance: string): { key: string; ackedSeq: number } {
    const violations = [];
    if (!IDENTIFIER_PART.test(zone)) violations.push({ field: 'identifier.zone', description: 'required: 1-253 characters of [A-Za-z0-9._:-]' });
    if (!IDENTIFIER_PART.test(instance)) violations.push({ field: 'identifier.instance', description: 'required: 1-253 characters of [A-Za-z0-9._:-]' });
    if (violations.length === 0 && this.zone !== undefined && zone !== this.zone) {
      // Rules and files are per zone: a CP of another zone writing here would mix two zones' audit trails.
      violations.push({ field: 'identifier.zone', description: `this sidecar serves zone "${this.zone}", not "${zone}"; each zone's control plane needs its own sidecar` });
    }
    if (violations.length > 0) throw new InvalidArgumentError(violations);
    const key = identifierKey(zone, instance);
    return { key, ackedSeq: this.committed.get(key) ?? 0 };
  }

  /**
   * Accepts a batch of `key`: events at sequences firstSeq..firstSeq+n-1. Those already accepted are
   * counted as duplicates and not written again; a gap throws SequenceGapError before anything is
   * accepted. `done` runs once the batch is committed (in submission order across the pipeline).
   */
  submitBatch(key: string, firstSeq: number, batch: EncodedBatch, done: (err: Error | null, res?: BatchResult) => void): void {
    if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) {
      throw new InvalidArgumentError([{ field: 'firstSeq', description: `must be at least 1 when events are sent, got ${firstSeq}` }]);
    }
    const accepted = this.accepted.get(key) ?? 0;
    if (firstSeq > accepted + 1) throw new SequenceGapError(key, accepted + 1, firstSeq);
    const lastSeq = firstSeq + batch.eventCount - 1;
    const from = Math.min(batch.eventCount, accepted + 1 - firstSeq);
    const out = this.evaluator.evaluate({ bytes: batch.bytes, from, receivedMs: this.now() });
    if (lastSeq > accepted) this.accepted.set(key, lastSeq);
    this.writer.submit({
      data: out.data,
      seqKey: key,
      seq: Math.max(lastSeq, accepted),
      done: (err) => {
        if (err) return done(err instanceof WriterClosedError ? new UnavailableError(err.message) : err);
        if (lastSeq > (this.committed.get(key) ?? 0)) this.committed.set(key, lastSeq);
        const res: BatchResult = {
          ackedSeq: this.committed.get(key) ?? 0,
          firstSeq,
          recorded: out.recorded,
          skipped: out.skipped,
          duplicates: from,
          rejected: out.rejected,
        };
        this.stats.recorded += res.recorded;
        this.stats.skipped += res.skipped;
        this.stats.duplicates += res.duplicates;
        this.stats.rejected += res.rejected.length;
        done(null, res);
      },
    });
  }

  /** Audits one event outside any stream; `done` runs after its record is committed. */
  record(event: AuditEvent, done: (err: Error | null, audited?: boolean) => void): void {
    let valid: ValidEvent;
    try {
      valid = this.validOrThrow(event);
    } catch (err) {
      this.stats.rejected++;
      throw err;
    }
    if (!this.rules.covers(valid)) {
      this.stats.skipped++;
      done(null, false);
      return;
    }
    this.commitLines(formatRecord(valid, this.dates), 1, (err) => (err ? done(err) : done(null, true)));
  }

  /**
   * The dry run of one event against the rules in force: every rule that covers it, and the exact
   * record line it would produce (without the "\n"; empty when no rule covers it). Writes nothing.
   */
  evaluate(event: AuditEvent): { matches: RuleMatch[]; record: string } {
    const valid = this.validOrThrow(event);
    const matches = this.rules.explain(valid);
    return { matches, record: matches.length > 0 ? formatRecord(valid, this.dates).slice(0, -1) : '' };
  }

  /**
   * Records a change to the rules themselves (an AccessAudit changed through the API), through the same
   * writer as every other record: each event is written when the rules `before` or `after` the change
   * cover it, so that neither creating the first audit rule nor deleting the last goes unrecorded.
   * `done` runs once they are committed, with how many were written (0: none was covered).
   */
  recordChange(
    events: readonly AuditEvent[],
    before: CompiledRules,
    after: CompiledRules,
    done: (err: Error | null, recorded?: number) => void,
  ): void {
    let lines = '';
    let count = 0;
    for (const event of events) {
      const valid = this.validOrThrow(event);
      if (!before.covers(valid) && !after.covers(valid)) continue;
      lines += formatRecord(valid, this.dates);
      count++;
    }
    if (count === 0) return done(null, 0);
    this.commitLines(lines, count, (err) => (err ? done(err) : done(null, count)));
  }

  /** The validated event, or InvalidArgumentError naming the field as `event.<field>`. */
  private validOrThrow(event: AuditEvent): ValidEvent {
    const check = validateEvent(event, this.now(), this.times);
    if (check.ok) return check.event;
    throw new InvalidArgumentError([{ field: `event.${check.field}`, description: check.description }]);
  }

  private commitLines(lines: string, count: number, done: (err: Error | null) => void): void {
    this.writer.submit({
      data: Buffer.from(lines),
      done: (err) => {
        if (err) return done(err instanceof WriterClosedError ? new UnavailableError(err.message) : err);
        this.stats.recorded += count;
        done(null);
      },
    });
  }
}
