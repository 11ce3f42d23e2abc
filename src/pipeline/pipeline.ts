// The audit pipeline, free of gRPC: sequence checks per control-plane identifier, validation, rule
// evaluation and record formatting, then the group-commit writer. Handlers in src/server call it.
//
// Batches are evaluated in worker threads when there are any (src/pipeline/batch-workers.ts), so their
// results come back later than they were accepted. Everything bound for the writer therefore waits in
// one queue in acceptance order: the writer sees exactly the order the event loop accepted things in,
// which keeps sequences contiguous in the checkpoint and a rule change's record between the batches
// evaluated before and after it.
import type { Worker } from 'node:worker_threads';
import type { CompiledRules, RuleMatch } from '../rules';
import type { AuditEvent } from '../events/event';
import type { ValidEvent } from '../events/valid-event';
import { newEventTimeParsers, validateEvent } from '../events/validate-event';
import { formatRecord } from '../events/format-record';
import { RecordDateFormatter } from '../events/rfc3339';
import { type AuditWriter, WriterClosedError, withTimeout, type WriteRequest } from './writer';
import { BatchEvaluator, type BatchJob, type EvaluatedBatch, type Rejection } from './evaluate-batch';
import { BatchWorkers } from './batch-workers';
import { LoopLoad } from './loop-load';
import { decodeRecordRequest, recordRequestAsBatch } from '../wire/stream-request';
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
  /** StreamEvents batches evaluated in a worker thread (the others were evaluated on the event loop). */
  workerBatches: number;
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
  /** Worker threads that evaluate StreamEvents batches; 0 (the default here) evaluates them on the event loop. The sidecar passes meshaudit.workerThreads (default 0). */
  workerThreads?: number;
  /** Called when a worker thread dies and is replaced. */
  onWorkerExit?: (err: Error) => void;
  /** When batches go to the workers: 'busy' (the default), or 'always' (tests of the workers themselves). */
  offload?: 'busy' | 'always';
  /**
   * Called when a batch's evaluation threw (a bug in the sidecar) and its new events were rejected for
   * it: they are not written, and the CP does not resend them, so this must be loud.
   */
  onEvaluationError?: (failure: string, key: string, firstSeq: number) => void;
  /** Bytes of batches being evaluated in workers above which isFull() is true; MAX_STAGED_BYTES by default. */
  maxStagedBytes?: number;
}

/**
 * Bytes of accepted batches still being evaluated above which isFull() says stop reading: the
 * writer's own mark bounds what waits for the disk, this what waits for the workers.
 */
export const MAX_STAGED_BYTES = 16 * 1024 * 1024;

/** One place in the queue to the writer: filled at once, or when its batch's evaluation comes back. */
interface Slot {
  request: WriteRequest | null;
  /** Request bytes still being evaluated, counted by isFull(). */
  stagedBytes: number;
  /** Fails the batch of a slot whose evaluation never came back (the pipeline closed first). */
  abandon?: (err: Error) => void;
}

/** `zone/instance`: zone names cannot hold "/", so the key is unambiguous. */
export function identifierKey(zone: string, instance: string): string {
  return `${zone}/${instance}`;
}

const IDENTIFIER_PART = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;

export class AuditPipeline {
  /** Last sequence accepted per identifier: committed, or on its way to the writer. */
  private readonly accepted = new Map<string, number>();
  /** Last sequence committed per identifier: the resume point. */
  private readonly committed: Map<string, number>;
  private readonly dates: RecordDateFormatter;
  private readonly times = newEventTimeParsers();
  /** Evaluates batches on the event loop when there are no workers. */
  private readonly evaluator: BatchEvaluator;
  private readonly workers: BatchWorkers | undefined;
  /** What goes to the writer, in acceptance order; the head is submitted as soon as it is filled. */
  private readonly slots: Slot[] = [];
  private stagedBytes = 0;
  private drainListeners: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  private closed = false;
  /** Whether batches go to the workers now; undefined without workers. */
  private readonly load: LoopLoad | undefined;
  readonly stats: PipelineStats = { recorded: 0, skipped: 0, rejected: 0, duplicates: 0, workerBatches: 0 };

  private readonly now: () => number;
  private readonly zone: string | undefined;
  private readonly onEvaluationError: PipelineOptions['onEvaluationError'];
  private readonly maxStagedBytes: number;

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
    this.onEvaluationError = opts.onEvaluationError;
    this.maxStagedBytes = opts.maxStagedBytes ?? MAX_STAGED_BYTES;
    const threads = opts.workerThreads ?? 0;
    if (threads > 0)
      this.workers = new BatchWorkers(threads, { utcOffsetMinutes: offset, onWorkerExit: opts.onWorkerExit });
    if (this.workers !== undefined) {
      const workers = this.workers;
      this.load = new LoopLoad(opts.offload ?? 'busy', () => workers.utilization());
    }
    writer.onDrain(() => {
      if (!this.isFull()) for (const l of this.drainListeners) l();
    });
  }

  /** Rules in force for every event accepted from now on. */
  setRules(rules: CompiledRules): void {
    this.rules = rules;
    this.evaluator.setRules(rules);
  }

  currentRules(): CompiledRules {
    return this.rules;
  }

  /** True while producers should stop reading: the workers or the writer hold enough already. */
  isFull(): boolean {
    return this.stagedBytes >= this.maxStagedBytes || this.writer.isFull();
  }

  /** Calls `listener` whenever isFull() may have turned false. */
  onDrain(listener: () => void): void {
    this.drainListeners.push(listener);
  }

  /** The worker threads (tests stop one to see a replacement take over). */
  get workerThreads(): readonly Worker[] {
    return this.workers?.threads ?? [];
  }

  /** Checks an identifier and returns its key and resume point. */
  identify(zone: string, instance: string): { key: string; ackedSeq: number } {
    const violations = [];
    if (!IDENTIFIER_PART.test(zone))
      violations.push({ field: 'identifier.zone', description: 'required: 1-253 characters of [A-Za-z0-9._:-]' });
    if (!IDENTIFIER_PART.test(instance))
      violations.push({ field: 'identifier.instance', description: 'required: 1-253 characters of [A-Za-z0-9._:-]' });
    if (violations.length === 0 && this.zone !== undefined && zone !== this.zone) {
      // Rules and files are per zone: a CP of another zone writing here would mix two zones' audit trails.
      violations.push({
        field: 'identifier.zone',
        description: `this sidecar serves zone "${this.zone}", not "${zone}"; each zone's control plane needs its own sidecar`,
      });
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
  submitBatch(
    key: string,
    firstSeq: number,
    batch: EncodedBatch,
    done: (err: Error | null, res?: BatchResult) => void,
  ): void {
    if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) {
      throw new InvalidArgumentError([
        { field: 'firstSeq', description: `must be at least 1 when events are sent, got ${firstSeq}` },
      ]);
    }
    const accepted = this.accepted.get(key) ?? 0;
    if (firstSeq > accepted + 1) throw new SequenceGapError(key, accepted + 1, firstSeq);
    if (this.closed) throw new UnavailableError('the sidecar is shutting down');
    const lastSeq = firstSeq + batch.eventCount - 1;
    const from = Math.min(batch.eventCount, accepted + 1 - firstSeq);
    const job: BatchJob = { bytes: batch.bytes, from, receivedMs: this.now(), eventCount: batch.eventCount };
    const seq = Math.max(lastSeq, accepted);
    const finish = (out: EvaluatedBatch): WriteRequest => {
      if (out.failure !== undefined) this.onEvaluationError?.(out.failure, key, firstSeq);
      return {
        data: out.data,
        seqKey: key,
        seq,
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
      };
    };
    const inWorker = from < batch.eventCount && this.toWorker();
    if (!inWorker) {
      const request = finish(this.evaluator.evaluateOrReject(job));
      if (lastSeq > accepted) this.accepted.set(key, lastSeq);
      this.enqueue({ request, stagedBytes: 0 });
      return;
    }
    if (lastSeq > accepted) this.accepted.set(key, lastSeq);
    const slot: Slot = {
      request: null,
      stagedBytes: batch.bytes.length,
      abandon: (err) => done(new UnavailableError(err.message)),
    };
    this.stagedBytes += slot.stagedBytes;
    this.stats.workerBatches++;
    this.enqueue(slot);
    this.workers!.run(job, this.rules, (out) => {
      slot.request = finish(out);
      this.flush();
    });
  }

  /**
   * Whether a batch goes to a worker now: while the event loop is busy (LoopLoad), once the threads
   * are warm. The first busy moment starts them; batches stay on the event loop while they warm up,
   * rather than wait for them. ('always', for tests of the workers themselves, does not wait.)
   */
  private toWorker(): boolean {
    if (this.workers === undefined || !this.load!.offload() || !this.workers.available) return false;
    this.workers.start(this.rules);
    return this.load!.mode === 'always' || this.workers.warm;
  }

  /**
   * Audits the event of a RecordRequest as received (`Record`): evaluated the plain way, like a batch
   * of one, so that a call costs no decoded objects; a request that way cannot read or would reject is
   * decoded and handed to record(), which words the problem. Throws InvalidArgumentError for an
   * invalid event or request; `done` runs after the record is committed.
   */
  recordEncoded(request: Uint8Array, done: (err: Error | null, audited?: boolean) => void): void {
    const batch = recordRequestAsBatch(request);
    if (batch !== null) {
      const out = this.evaluator.evaluateOrReject({ bytes: batch, from: 0, receivedMs: this.now(), eventCount: 1 });
      if (out.recorded === 1) {
        this.commitData(out.data, 1, (err) => (err ? done(err) : done(null, true)));
        return;
      }
      if (out.skipped === 1) {
        this.stats.skipped++;
        done(null, false);
        return;
      }
    }
    let event: AuditEvent;
    try {
      event = decodeRecordRequest(request);
    } catch (err) {
      this.stats.rejected++;
      throw new InvalidArgumentError([
        {
          field: 'request',
          description: `not a valid RecordRequest message (${err instanceof Error ? err.message : String(err)})`,
        },
      ]);
    }
    this.record(event, done);
  }

  /** Audits one decoded event outside any stream (recordEncoded's reference way); `done` runs after its record is committed. */
  private record(event: AuditEvent, done: (err: Error | null, audited?: boolean) => void): void {
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
    this.commitData(Buffer.from(lines), count, done);
  }

  private commitData(data: Buffer, count: number, done: (err: Error | null) => void): void {
    this.enqueue({
      stagedBytes: 0,
      request: {
        data,
        done: (err) => {
          if (err) return done(err instanceof WriterClosedError ? new UnavailableError(err.message) : err);
          this.stats.recorded += count;
          done(null);
        },
      },
    });
  }

  private enqueue(slot: Slot): void {
    this.slots.push(slot);
    this.flush();
  }

  /** Hands the filled slots at the head of the queue to the writer, in order. */
  private flush(): void {
    const wasFull = this.isFull();
    while (this.slots.length > 0 && this.slots[0].request !== null) {
      const slot = this.slots.shift()!;
      this.stagedBytes -= slot.stagedBytes;
      this.writer.submit(slot.request!);
    }
    if (this.slots.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
    if (wasFull && !this.isFull()) for (const l of this.drainListeners) l();
  }

  /**
   * Stops: waits up to `timeoutMs` for batches still being evaluated to reach the writer and for the
   * writer to commit them, then closes the writer (sinks and checkpoint) and the worker threads. What
   * was not committed by then fails with UNAVAILABLE, unacknowledged: the CP sends it again.
   */
  async close(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    if (this.slots.length > 0) {
      await withTimeout(new Promise<void>((resolve) => this.idleWaiters.push(resolve)), timeoutMs);
    }
    this.closed = true;
    const stranded = this.slots.splice(0);
    this.stagedBytes = 0;
    await this.writer.close(Math.max(0, deadline - Date.now()));
    this.load?.stop();
    await this.workers?.close();
    // Answered as the writer answers what it never wrote, whether or not the evaluation came back.
    for (const slot of stranded) {
      if (slot.request !== null) slot.request.done(new WriterClosedError());
      else slot.abandon?.(new WriterClosedError());
    }
  }
}
