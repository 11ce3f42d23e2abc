// AuditService handlers: gRPC in and out; sequencing, evaluation and writing happen in src/pipeline.
import { performance } from 'node:perf_hooks';
import type * as grpc from '@grpc/grpc-js';
import {
  PermissionDeniedError,
  SequenceGapError,
  SupersededError,
  UnauthenticatedError,
  UnavailableError,
} from '../errors';
import { formatViolation, InvalidArgumentError, IS_REQUIRED, tooMany } from '../validators';
import { type Logger, RateLimitedWarning } from '../log';
import type { Metrics, StreamRefusal } from '../metrics';
import type { Backlog } from '../pipeline/backlog';
import type { BatchAck } from '../contract';
import { type Sequencer, WrongZoneError } from '../pipeline/sequencer';
import type { SingleRecords } from '../pipeline/single-records';
import type { ScannedStreamRequest } from '../wire/stream-request';
import type { Principal } from '../auth/principal';
import type { Authenticator } from './authn';
import { unary } from './handlers';
import type { ServingState } from './serving-state';
import type { Statuses } from './status';

/**
 * Unacknowledged batches one stream may have in the writer before it stops reading. The CP's own
 * window (8 batches in flight) stays below it, so a well-behaved CP never feels it.
 */
export const MAX_INFLIGHT_BATCHES_PER_STREAM = 32;

/**
 * A line of the same kind (by identifier, or by caller) at most once in this long; the next one says how
 * many were left out. The metrics count every one.
 */
const STREAM_LOG_INTERVAL_MS = 10_000;
/** How much of a refused identifier's zone or instance a line quotes (they may be megabytes long). */
const MAX_LOGGED_IDENTIFIER_CHARS = 64;

export interface AuditServiceOptions {
  readonly sequencer: Sequencer;
  readonly singles: SingleRecords;
  /** The writer's queued bytes: every stream stops reading while it is full. */
  readonly queued: Backlog;
  readonly serving: ServingState;
  readonly statuses: Statuses;
  /** Who may stream (meshaudit.auth): the caller, and the identifiers its credential covers. */
  readonly auth: Authenticator;
  readonly log: Logger;
  /** meshaudit.limits.eventsPerBatch: a request with more events ends the stream with INVALID_ARGUMENT. */
  readonly eventsPerBatch: number;
  /** Arrivals, acks and streams are counted here; what becomes of the events, in the pipeline. */
  readonly metrics: Metrics;
}

/** What a refusal ends a stream for, when the error alone says it. */
function refusalOf(err: unknown): StreamRefusal {
  if (err instanceof SupersededError) return 'taken_over';
  if (err instanceof SequenceGapError) return 'sequence_gap';
  if (err instanceof UnauthenticatedError) return 'unauthenticated';
  if (err instanceof PermissionDeniedError) return 'permission_denied';
  // The only ones: the drain began, or the writer closed with the batch unwritten.
  if (err instanceof UnavailableError) return 'draining';
  if (err instanceof InvalidArgumentError) return 'invalid_request';
  return 'internal';
}

/** A zone or instance as a line quotes it: cut, since a refused one can be as long as a request. */
function cut(part: string): string {
  return part.length > MAX_LOGGED_IDENTIFIER_CHARS ? `${part.slice(0, MAX_LOGGED_IDENTIFIER_CHARS)}...` : part;
}

type StreamCall = grpc.ServerDuplexStream<ScannedStreamRequest, BatchAck>;

/** One open StreamEvents call. */
class EventStream {
  key: string | undefined;
  private inflight = 0;
  private ended = false;
  /**
   * The client is not reading its acks: grpc-js holds every further one in memory, so the stream is
   * not read either until they flow again ('drain').
   */
  private repliesBlocked = false;

  constructor(
    private readonly call: StreamCall,
    private readonly service: AuditServiceImpl,
    private readonly caller: Principal,
  ) {}

  start(): void {
    this.call.on('data', (req: ScannedStreamRequest) => this.onRequest(req));
    this.call.on('end', () => this.finishIfIdle());
    this.call.on('error', () => this.close('the connection failed'));
    this.call.on('cancelled', () => this.close('the control plane cancelled it'));
  }

  get peer(): string {
    return this.call.getPeer();
  }

  private onRequest(req: ScannedStreamRequest): void {
    if (this.ended) return;
    try {
      this.take(req);
    } catch (err) {
      this.fail(err, refusalOf(err));
    }
  }

  private take(req: ScannedStreamRequest): void {
    const { sequencer, metrics, eventsPerBatch } = this.service.opts;
    const arrivedMs = performance.now();
    if (req.eventCount > 0) {
      this.service.receivedFromStreams.inc(req.eventCount);
      metrics.batchesReceived.inc();
    }
    if (req.invalid !== undefined) {
      this.fail(new InvalidArgumentError([req.invalid]), 'invalid_request');
      return;
    }
    // Refused before anything of it is sequenced: the batches before it stand, acknowledged or in flight.
    if (req.eventCount > eventsPerBatch) {
      this.service.rejectedTooMany.inc(req.eventCount);
      this.service.warnings.warn(
        `too_many:${this.key}`,
        'batch refused: more events than meshaudit.limits.eventsPerBatch',
        {
          identifier: this.key,
          firstSeq: req.firstSeq,
          events: req.eventCount,
          eventsPerBatch,
        },
      );
      const description = `${tooMany(eventsPerBatch, req.eventCount)} (meshaudit.limits.eventsPerBatch)`;
      this.fail(new InvalidArgumentError([{ field: 'events', description }]), 'limit');
      return;
    }
    if (this.key === undefined && !this.identify(req)) return;
    if (req.eventCount === 0) return;
    let committed: Promise<BatchAck>;
    try {
      committed = sequencer.submit(this.key!, req);
    } catch (err) {
      if (err instanceof SequenceGapError) {
        metrics.sequenceGaps.inc();
        this.service.warnings.warn(`gap:${this.key}`, 'sequence gap: stream ended, the control plane must resend', {
          identifier: this.key,
          expectedSeq: err.expectedSeq,
          firstSeq: err.gotSeq,
          missing: err.gotSeq - err.expectedSeq,
        });
      }
      this.fail(err, refusalOf(err));
      return;
    }
    this.inflight++;
    committed.then(
      (ack) => this.onCommitted(ack, arrivedMs),
      (err: unknown) => this.onFailed(err),
    );
    this.applyBackpressure();
  }

  /** The first request's identifier: attached and answered with its resume point, or the stream refused. */
  private identify(req: ScannedStreamRequest): boolean {
    const { sequencer, log, serving, auth } = this.service.opts;
    const id = req.identifier;
    if (id === null) {
      const missing = new InvalidArgumentError([
        { field: 'identifier', description: `${IS_REQUIRED} on the first request of a stream` },
      ]);
      this.refuseIdentifier('', '', missing.message);
      this.fail(missing, 'invalid_identifier');
      return false;
    }
    // A stream that identifies itself after the drain began would escape it.
    if (serving.draining) {
      this.fail(new UnavailableError('the sidecar is shutting down'), 'draining');
      return false;
    }
    let identified: { key: string; ackedSeq: number };
    try {
      // Before identify(): a stream its credential does not cover must never take over the real one.
      auth.authorizeIdentifier(this.caller, id.zone, id.instance);
      identified = sequencer.identify(id.zone, id.instance);
    } catch (err) {
      if (err instanceof WrongZoneError) {
        const identifier = `${id.zone}/${id.instance}`;
        this.service.warnings.warn(`zone:${id.zone}`, 'control plane stream refused: another zone', {
          identifier,
          reason: formatViolation(err.violations[0]),
          caller: this.caller.name,
        });
        this.fail(err, 'zone');
      } else if (err instanceof InvalidArgumentError) {
        this.refuseIdentifier(id.zone, id.instance, err.violations.map((v) => formatViolation(v)).join('; '));
        this.fail(err, 'invalid_identifier');
      } else {
        this.fail(err, refusalOf(err));
      }
      return false;
    }
    this.key = identified.key;
    this.service.attach(this);
    log.info('control plane stream opened', {
      identifier: identified.key,
      resumeFrom: identified.ackedSeq + 1,
      peer: this.call.getPeer(),
      caller: this.caller.name,
    });
    this.reply({ ackedSeq: identified.ackedSeq, firstSeq: 0, recorded: 0, skipped: 0, duplicates: 0, rejected: [] });
    // A stream opened while the writer is full waits for it to drain before its first batch is read.
    this.applyBackpressure();
    return true;
  }

  /** The line of a stream refused for its identifier (one key for all: distinct bad names must not flood the log). */
  private refuseIdentifier(zone: string, instance: string, reason: string): void {
    this.service.warnings.warn('invalid_identifier', 'control plane stream refused: invalid identifier', {
      identifier: `${cut(zone)}/${cut(instance)}`,
      reason,
      caller: this.caller.name,
    });
  }

  private onCommitted(ack: BatchAck, arrivedMs: number): void {
    this.inflight--;
    // Handled for good, whether or not this stream is still there to say so: logged either way.
    if (ack.rejected.length > 0) {
      const first = ack.rejected[0];
      this.service.warnings.warn(`rejected:${this.key}`, 'events rejected: never written, never resent', {
        identifier: this.key,
        firstSeq: ack.firstSeq,
        rejected: ack.rejected.length,
        events: ack.recorded + ack.skipped + ack.duplicates + ack.rejected.length,
        index: first.index,
        reason: first.reason,
      });
    }
    if (this.ended) return;
    const { metrics, log } = this.service.opts;
    metrics.batchesAcked.inc();
    // One line per batch, never per event, and only when asked for (meshaudit.log.level: debug).
    if (log.level === 'debug') {
      log.debug('batch acknowledged', {
        identifier: this.key,
        firstSeq: ack.firstSeq,
        ackedSeq: ack.ackedSeq,
        recorded: ack.recorded,
        skipped: ack.skipped,
        duplicates: ack.duplicates,
        rejected: ack.rejected.length,
      });
    }
    metrics.ackSeconds.observe((performance.now() - arrivedMs) / 1000);
    this.reply(ack);
    this.applyBackpressure();
    this.finishIfIdle();
  }

  private reply(ack: BatchAck): void {
    if (this.call.write(ack) || this.repliesBlocked) return;
    this.repliesBlocked = true;
    this.call.once('drain', () => {
      this.repliesBlocked = false;
      this.applyBackpressure();
    });
  }

  private onFailed(err: unknown): void {
    this.inflight--;
    this.fail(err, refusalOf(err));
  }

  /** Stops reading while this stream, its replies or the writer are full; resumes when all have room. */
  applyBackpressure(): void {
    if (this.ended || this.service.opts.serving.draining) return;
    const full =
      this.inflight >= MAX_INFLIGHT_BATCHES_PER_STREAM || this.repliesBlocked || this.service.opts.queued.isFull;
    if (full && !this.call.isPaused()) this.call.pause();
    else if (!full && this.call.isPaused()) this.call.resume();
  }

  /** Graceful stop: read nothing more, acknowledge what is in flight, then end with UNAVAILABLE. */
  drain(): void {
    this.call.pause();
    this.finishIfIdle();
  }

  supersede(): void {
    this.fail(new SupersededError(`identifier ${this.key} was opened by a newer stream`), 'taken_over');
  }

  private finishIfIdle(): void {
    if (this.ended || this.inflight > 0) return;
    if (this.service.opts.serving.draining) {
      this.fail(
        new UnavailableError('the sidecar is shutting down; reconnect and resume from the acked sequence'),
        'draining',
      );
    } else if (this.call.readableEnded) {
      this.close('the control plane ended it');
      this.call.end();
    }
  }

  /** Ends the stream with the status of `err`, counted by `reason`. */
  private fail(err: unknown, reason: StreamRefusal): void {
    if (this.ended) return;
    this.service.opts.metrics.streamsRefused.labels(reason).inc();
    this.close(reason);
    const context = { rpc: 'StreamEvents', identifier: this.key };
    this.call.emit('error', this.service.opts.statuses.of(err, context));
  }

  /** The stream is over: one line for an identified stream (its opening had one), none for a refused identify. */
  private close(why: string): void {
    if (this.ended) return;
    this.ended = true;
    this.service.detach(this);
    if (this.key !== undefined) {
      this.service.opts.log.info('control plane stream closed', { identifier: this.key, why, inflight: this.inflight });
    }
  }
}

export class AuditServiceImpl {
  private readonly byKey = new Map<string, EventStream>();
  private readonly open = new Set<EventStream>();
  /** The lines of refused streams, gaps, takeovers and rejected events: rate-limited per kind and identifier. */
  readonly warnings: RateLimitedWarning;
  // Bound once: a batch adds to label children, never looks a label up.
  readonly receivedFromStreams;
  readonly rejectedTooMany;
  private readonly receivedFromRecord;

  constructor(readonly opts: AuditServiceOptions) {
    this.warnings = new RateLimitedWarning(opts.log, STREAM_LOG_INTERVAL_MS);
    this.receivedFromStreams = opts.metrics.eventsReceived.labels('stream');
    this.receivedFromRecord = opts.metrics.eventsReceived.labels('record');
    this.rejectedTooMany = opts.metrics.eventsRejected.labels('too_many');
    opts.queued.on('drain', () => {
      for (const s of this.open) s.applyBackpressure();
    });
    opts.serving.on('draining', () => {
      for (const s of [...this.open]) s.drain();
    });
  }

  attach(stream: EventStream): void {
    const previous = this.byKey.get(stream.key!);
    this.byKey.set(stream.key!, stream);
    this.open.add(stream);
    this.opts.metrics.streamsOpen.set(this.open.size);
    if (previous === undefined) return;
    // A CP reconnecting before its old connection is seen dead, or two CPs under one instance name.
    this.warnings.warn(`takeover:${stream.key}`, 'control plane stream taken over by a newer stream', {
      identifier: stream.key,
      peer: previous.peer,
      newPeer: stream.peer,
    });
    previous.supersede();
  }

  detach(stream: EventStream): void {
    if (this.open.delete(stream)) this.opts.metrics.streamsOpen.set(this.open.size);
    if (stream.key !== undefined && this.byKey.get(stream.key) === stream) this.byKey.delete(stream.key);
  }

  /** Number of open control-plane streams. */
  get streamCount(): number {
    return this.open.size;
  }

  handlers(): grpc.UntypedServiceImplementation {
    const { serving, singles, statuses, auth, metrics } = this.opts;
    const refuse = (call: StreamCall, err: unknown): void => {
      metrics.streamsRefused.labels(refusalOf(err)).inc();
      call.emit('error', statuses.of(err, { rpc: 'StreamEvents' }));
    };
    return {
      StreamEvents: (call: StreamCall) => {
        let caller: Principal;
        try {
          if (serving.draining) throw new UnavailableError('the sidecar is shutting down');
          caller = auth.authorize(call, 'stream', 'StreamEvents');
        } catch (err) {
          refuse(call, err);
          return;
        }
        new EventStream(call, this, caller).start();
      },
      Record: unary('Record', this.opts, 'stream', async (request: Buffer, caller) => {
        if (serving.draining) throw new UnavailableError('the sidecar is shutting down');
        const arrivedMs = performance.now();
        this.receivedFromRecord.inc();
        let audited: boolean;
        try {
          audited = await singles.record(request);
        } catch (err) {
          if (err instanceof InvalidArgumentError) {
            this.warnings.warn(`record:${caller.name}`, 'Record call rejected: invalid event, never written', {
              caller: caller.name,
              reason: formatViolation(err.violations[0]),
              violations: err.violations.length,
            });
          }
          throw err;
        }
        metrics.ackSeconds.observe((performance.now() - arrivedMs) / 1000);
        return { audited };
      }),
    };
  }
}
