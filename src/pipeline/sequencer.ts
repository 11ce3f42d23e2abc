// Sequencing per control-plane identifier: every StreamEvents batch carries the sequence of its first
// event; each identifier's events are written once, in sequence order, and acknowledged once committed.
// The checkpoint keeps the last committed sequence of each identifier, so a control plane that
// reconnects (to this sidecar or to the one restarted after a crash) resumes right after it.
import type { BatchAck } from '../contract';
import { SequenceGapError, UnavailableError } from '../errors';
import { InvalidArgumentError, IS_REQUIRED, mustBe, Violations } from '../validators';
import type { ScannedStreamRequest } from '../wire/stream-request';
import type { Metrics } from '../metrics';
import type { BatchEvaluator } from './evaluate-batch';
import type { AuditWriter } from './writer';

export interface SequencerOptions {
  /** The zone this sidecar serves: streams of control planes of other zones are refused. */
  readonly zone?: string;
  /** Epoch ms, for events without a date. */
  readonly now: () => number;
  /**
   * What becomes of the events, counted once per batch when it is committed (a type: the pipeline
   * never loads prom-client itself; the sidecar passes its Metrics).
   */
  readonly metrics: Pick<Metrics, 'eventsRecorded' | 'eventsSkipped' | 'eventsDuplicate' | 'eventsRejected'>;
  /**
   * Told when a batch's evaluation threw (a bug in the sidecar) and its new events were rejected for
   * it: they are not written, and the CP does not resend them, so this must be loud.
   */
  readonly onEvaluationError?: (failure: string, key: string, firstSeq: number) => void;
}

/** `zone/instance`: zone names cannot hold "/", so the key is unambiguous. */
function identifierKey(zone: string, instance: string): string {
  return `${zone}/${instance}`;
}

/** Most characters of a zone or an instance: a Kubernetes name's (RFC 1123 subdomain). */
export const MAX_IDENTIFIER_CHARS = 253;
const IDENTIFIER_PART = new RegExp(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,${MAX_IDENTIFIER_CHARS - 1}}$`);

/** A valid identifier of another zone than the one this sidecar serves: the stream is refused for its zone. */
export class WrongZoneError extends InvalidArgumentError {}

export class Sequencer {
  /** Last sequence accepted per identifier: committed, or on its way to the writer. */
  private readonly accepted = new Map<string, number>();
  /** Last sequence committed per identifier: the resume point. */
  private readonly committed: Map<string, number>;
  // Bound once: a batch adds its totals to label children, never looks a label up per event.
  private readonly rejectedInvalid;
  private readonly rejectedUnevaluated;

  constructor(
    private readonly writer: AuditWriter,
    private readonly evaluator: BatchEvaluator,
    committedSeqs: ReadonlyMap<string, number>,
    private readonly opts: SequencerOptions,
  ) {
    this.committed = new Map(committedSeqs);
    for (const [k, v] of committedSeqs) this.accepted.set(k, v);
    this.rejectedInvalid = opts.metrics.eventsRejected.labels('invalid');
    this.rejectedUnevaluated = opts.metrics.eventsRejected.labels('evaluation_failed');
  }

  /** Every identifier seen, with its last accepted and last committed (acknowledged) sequence. */
  positions(): Array<{ identifier: string; accepted: number; committed: number }> {
    return [...this.accepted].map(([identifier, accepted]) => ({
      identifier,
      accepted,
      committed: this.committed.get(identifier) ?? 0,
    }));
  }

  /** Checks an identifier and returns its key and resume point. */
  identify(zone: string, instance: string): { key: string; ackedSeq: number } {
    const violations = new Violations();
    const check = (field: string, value: string): void => {
      if (value === '') violations.add(field, IS_REQUIRED);
      else if (!IDENTIFIER_PART.test(value))
        violations.add(field, mustBe(`1-${MAX_IDENTIFIER_CHARS} characters of [A-Za-z0-9._:-]`, value));
    };
    check('identifier.zone', zone);
    check('identifier.instance', instance);
    violations.throwIfAny();
    const served = this.opts.zone;
    if (served !== undefined && zone !== served) {
      // Rules and files are per zone: a CP of another zone writing here would mix two zones' audit trails.
      throw new WrongZoneError([
        {
          field: 'identifier.zone',
          description: `this sidecar serves zone "${served}", not "${zone}"; each zone's control plane needs its own sidecar`,
        },
      ]);
    }
    const key = identifierKey(zone, instance);
    return { key, ackedSeq: this.committed.get(key) ?? 0 };
  }

  /**
   * Accepts a batch of `key`: events at sequences firstSeq..firstSeq+n-1, evaluated and queued for the
   * writer at once, in the order batches arrive. Those accepted earlier are counted as duplicates and
   * not written again. A batch it refuses (a gap, a bad firstSeq, a closed writer) throws at once,
   * before anything is accepted; the promise settles once the batch is committed.
   */
  submit(key: string, batch: ScannedStreamRequest): Promise<BatchAck> {
    const { firstSeq, eventCount } = batch;
    if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) {
      throw new InvalidArgumentError([
        { field: 'firstSeq', description: mustBe('at least 1 when events are sent', firstSeq) },
      ]);
    }
    const accepted = this.accepted.get(key) ?? 0;
    if (firstSeq > accepted + 1) throw new SequenceGapError(key, accepted + 1, firstSeq);
    if (this.writer.isClosed) throw new UnavailableError('the sidecar is shutting down');
    const lastSeq = firstSeq + eventCount - 1;
    const from = Math.min(eventCount, accepted + 1 - firstSeq);
    const out = this.evaluator.evaluateOrReject({ bytes: batch.bytes, from, receivedMs: this.opts.now(), eventCount });
    if (out.failure !== undefined) this.opts.onEvaluationError?.(out.failure, key, firstSeq);
    if (lastSeq > accepted) this.accepted.set(key, lastSeq);
    return this.writer.submit(out.data, { key, seq: Math.max(lastSeq, accepted) }).then(() => {
      if (lastSeq > (this.committed.get(key) ?? 0)) this.committed.set(key, lastSeq);
      const m = this.opts.metrics;
      if (out.recorded > 0) m.eventsRecorded.inc(out.recorded);
      if (out.skipped > 0) m.eventsSkipped.inc(out.skipped);
      if (from > 0) m.eventsDuplicate.inc(from);
      if (out.rejected.length > 0) {
        (out.failure === undefined ? this.rejectedInvalid : this.rejectedUnevaluated).inc(out.rejected.length);
      }
      return {
        ackedSeq: this.committed.get(key) ?? 0,
        firstSeq,
        recorded: out.recorded,
        skipped: out.skipped,
        duplicates: from,
        rejected: out.rejected,
      };
    });
  }
}
