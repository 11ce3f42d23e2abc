// AuditService handlers: gRPC in and out; sequencing, evaluation and writing happen in src/pipeline.
import type * as grpc from '@grpc/grpc-js';
import { SupersededError, UnavailableError } from '../errors';
import { InvalidArgumentError, IS_REQUIRED, tooMany } from '../validators';
import type { Logger } from '../log';
import type { Backlog } from '../pipeline/backlog';
import type { BatchAck } from '../contract';
import type { Sequencer } from '../pipeline/sequencer';
import type { SingleRecords } from '../pipeline/single-records';
import type { ScannedStreamRequest } from '../wire/stream-request';
import { unary } from './handlers';
import type { ServingState } from './serving-state';
import type { Statuses } from './status';

/**
 * Unacknowledged batches one stream may have in the writer before it stops reading. The CP's own
 * window (8 batches in flight) stays below it, so a well-behaved CP never feels it.
 */
export const MAX_INFLIGHT_BATCHES_PER_STREAM = 32;

export interface AuditServiceOptions {
  readonly sequencer: Sequencer;
  readonly singles: SingleRecords;
  /** The writer's queued bytes: every stream stops reading while it is full. */
  readonly queued: Backlog;
  readonly serving: ServingState;
  readonly statuses: Statuses;
  readonly log: Logger;
  /** meshaudit.limits.eventsPerBatch: a request with more events ends the stream with INVALID_ARGUMENT. */
  readonly eventsPerBatch: number;
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
  ) {}

  start(): void {
    this.call.on('data', (req: ScannedStreamRequest) => this.onRequest(req));
    this.call.on('end', () => this.finishIfIdle());
    this.call.on('error', () => this.close());
    this.call.on('cancelled', () => this.close());
  }

  private onRequest(req: ScannedStreamRequest): void {
    if (this.ended) return;
    const { sequencer, log, serving } = this.service.opts;
    try {
      if (req.invalid !== undefined) throw new InvalidArgumentError([req.invalid]);
      const { eventsPerBatch } = this.service.opts;
      // Refused before anything of it is sequenced: the batches before it stand, acknowledged or in flight.
      if (req.eventCount > eventsPerBatch) {
        throw new InvalidArgumentError([
          {
            field: 'events',
            description: `${tooMany(eventsPerBatch, req.eventCount)} (meshaudit.limits.eventsPerBatch)`,
          },
        ]);
      }
      if (this.key === undefined) {
        if (req.identifier === null) {
          throw new InvalidArgumentError([
            { field: 'identifier', description: `${IS_REQUIRED} on the first request of a stream` },
          ]);
        }
        // A stream that identifies itself after the drain began would escape it.
        if (serving.draining) throw new UnavailableError('the sidecar is shutting down');
        const { key, ackedSeq } = sequencer.identify(req.identifier.zone, req.identifier.instance);
        this.key = key;
        this.service.attach(this);
        log.info('control plane stream opened', {
          identifier: key,
          resumeFrom: ackedSeq + 1,
          peer: this.call.getPeer(),
        });
        this.reply({ ackedSeq, firstSeq: 0, recorded: 0, skipped: 0, duplicates: 0, rejected: [] });
        // A stream opened while the writer is full waits for it to drain before its first batch is read.
        this.applyBackpressure();
      }
      if (req.eventCount === 0) return;
      const committed = sequencer.submit(this.key, req);
      this.inflight++;
      committed.then(
        (ack) => this.onCommitted(ack),
        (err: unknown) => this.onFailed(err),
      );
      this.applyBackpressure();
    } catch (err) {
      this.fail(err);
    }
  }

  private onCommitted(ack: BatchAck): void {
    this.inflight--;
    if (this.ended) return;
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
    this.fail(err);
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
    this.fail(new SupersededError(`identifier ${this.key} was opened by a newer stream`));
  }

  private finishIfIdle(): void {
    if (this.ended || this.inflight > 0) return;
    if (this.service.opts.serving.draining) {
      this.fail(new UnavailableError('the sidecar is shutting down; reconnect and resume from the acked sequence'));
    } else if (this.call.readableEnded) {
      this.close();
      this.call.end();
    }
  }

  private fail(err: unknown): void {
    if (this.ended) return;
    this.close();
    const context = { rpc: 'StreamEvents', identifier: this.key };
    this.call.emit('error', this.service.opts.statuses.of(err, context));
  }

  private close(): void {
    if (this.ended) return;
    this.ended = true;
    this.service.detach(this);
  }
}

export class AuditServiceImpl {
  private readonly byKey = new Map<string, EventStream>();
  private readonly open = new Set<EventStream>();

  constructor(readonly opts: AuditServiceOptions) {
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
    previous?.supersede();
  }

  detach(stream: EventStream): void {
    this.open.delete(stream);
    if (stream.key !== undefined && this.byKey.get(stream.key) === stream) this.byKey.delete(stream.key);
  }

  /** Number of open control-plane streams. */
  get streamCount(): number {
    return this.open.size;
  }

  handlers(): grpc.UntypedServiceImplementation {
    const { serving, singles, statuses } = this.opts;
    return {
      StreamEvents: (call: StreamCall) => {
        if (serving.draining) {
          call.emit('error', statuses.of(new UnavailableError('the sidecar is shutting down'), {}));
          return;
        }
        new EventStream(call, this).start();
      },
      Record: unary('Record', statuses, async (request: Buffer) => {
        if (serving.draining) throw new UnavailableError('the sidecar is shutting down');
        return { audited: await singles.record(request) };
      }),
    };
  }
}
