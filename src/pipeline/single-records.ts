// Records that come one at a time, outside any stream: a `Record` call, the dry run of `Evaluate`, and
// the records of changes to the rules themselves. They go through the same evaluator and writer as the
// streams' batches, so they land in the files in the order they were accepted.
import type { AuditEvent } from '../events/event';
import { formatRecord } from '../record/format-record';
import type { RecordDateFormatter } from '../record/dates';
import type { ValidEvent } from '../events/valid-event';
import { validateEvent } from '../events/validate-event';
import { InvalidArgumentError, type Violation } from '../validators';
import type { CompiledRules, RuleMatch } from '../rules';
import { contract } from '../contract';
import { inexactFields } from '../wire/exact-fields';
import { recordRequestAsBatch } from '../wire/stream-request';
import type { Metrics } from '../metrics';
import type { BatchEvaluator } from './evaluate-batch';
import type { AuditWriter } from './writer';

export interface SingleRecordsOptions {
  /** Epoch ms, for events without a date. */
  readonly now: () => number;
  /** What becomes of each event, counted per call (a type: the sidecar passes its Metrics). */
  readonly metrics: Pick<Metrics, 'eventsRecorded' | 'eventsSkipped' | 'eventsRejected'>;
  /** The record dates' format (the evaluator's own, so that both write the same dates). */
  readonly dates: RecordDateFormatter;
}

export class SingleRecords {
  private readonly rejected;

  constructor(
    private readonly writer: AuditWriter,
    private readonly evaluator: BatchEvaluator,
    private readonly opts: SingleRecordsOptions,
  ) {
    this.rejected = opts.metrics.eventsRejected.labels('invalid');
  }

  /**
   * Audits the event of a RecordRequest as received (`Record`): evaluated the plain way, like a batch of
   * one, so that a call costs no decoded objects; a request that way cannot read or would reject is
   * decoded, which words the problem. Resolves with whether it was audited, once its record is
   * committed; throws InvalidArgumentError for an invalid event or request.
   */
  async record(request: Uint8Array): Promise<boolean> {
    const batch = recordRequestAsBatch(request);
    if (batch !== null) {
      const out = this.evaluator.evaluateOrReject({
        bytes: batch,
        from: 0,
        receivedMs: this.opts.now(),
        eventCount: 1,
      });
      if (out.recorded === 1) {
        await this.commit(out.data, 1);
        return true;
      }
      if (out.skipped === 1) {
        this.opts.metrics.eventsSkipped.inc();
        return false;
      }
    }
    let valid: ValidEvent;
    try {
      valid = this.validOrThrow(decodeRequest(request));
    } catch (err) {
      this.rejected.inc();
      throw err;
    }
    if (!this.evaluator.rules.covers(valid)) {
      this.opts.metrics.eventsSkipped.inc();
      return false;
    }
    await this.commit(Buffer.from(formatRecord(valid, this.opts.dates)), 1);
    return true;
  }

  /**
   * The dry run of one event against the rules in force: every rule that covers it, and the exact
   * record line it would produce (without the "\n"; empty when no rule covers it). Writes nothing.
   */
  evaluate(event: AuditEvent): { matches: RuleMatch[]; record: string } {
    const valid = this.validOrThrow(event);
    const matches = this.evaluator.rules.explain(valid);
    return { matches, record: matches.length > 0 ? formatRecord(valid, this.opts.dates).slice(0, -1) : '' };
  }

  /**
   * Records a change to the rules themselves, through the same writer as every other record: each event
   * is written when the rules `before` or `after` the change cover it, so that neither creating the first
   * audit rule nor deleting the last goes unrecorded. Resolves once they are committed, with how many
   * were written (0: none was covered).
   */
  async recordChanges(events: readonly AuditEvent[], before: CompiledRules, after: CompiledRules): Promise<number> {
    let lines = '';
    let count = 0;
    for (const event of events) {
      const valid = this.validOrThrow(event);
      if (!before.covers(valid) && !after.covers(valid)) continue;
      lines += formatRecord(valid, this.opts.dates);
      count++;
    }
    if (count > 0) await this.commit(Buffer.from(lines), count);
    return count;
  }

  /** The validated event, or InvalidArgumentError naming the field as `event.<field>`. */
  private validOrThrow(event: AuditEvent): ValidEvent {
    const check = validateEvent(event, this.opts.now(), this.evaluator.limits);
    if (check.ok) return check.event;
    throw new InvalidArgumentError([{ field: `event.${check.field}`, description: check.description }]);
  }

  private async commit(data: Buffer, records: number): Promise<void> {
    await this.writer.submit(data);
    this.opts.metrics.eventsRecorded.inc(records);
  }
}

/**
 * The event of a RecordRequest decoded by protobufjs ({} when it has none: validation then names what
 * is missing), or InvalidArgumentError naming the request when it is not a RecordRequest.
 */
function decodeRequest(request: Uint8Array): AuditEvent {
  let inexact: Violation[];
  try {
    inexact = inexactFields(contract().messages.RecordRequest, request);
  } catch {
    inexact = []; // not a message at all: decoding below says why
  }
  // protobufjs would take strings that are not UTF-8 with U+FFFD in their place: refused, named.
  if (inexact.length > 0) throw new InvalidArgumentError(inexact);
  try {
    const decoded = contract().messages.RecordRequest.decode(request) as unknown as { event: AuditEvent | null };
    return decoded.event ?? {};
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new InvalidArgumentError([
      { field: 'request', description: `not a valid RecordRequest message (${reason})` },
    ]);
  }
}
