// AuditService handlers: gRPC in and out, everything else in the pipeline.
import type * as grpc from '@grpc/grpc-js';
import type { ScannedStreamRequest } from '../wire/stream-request';
import type { AuditPipeline, BatchResult } from '../pipeline/pipeline';
import { InvalidArgumentError, SupersededError, UnavailableError } from '../errors';
import type { Logger } from '../log';
import { toStatus } from './status';

type StreamRequest = ScannedStreamRequest;

type StreamResponse = Omit<BatchResult, 'rejected'> & { rejected: Array<{ index: number; reason: string }> };

/**
 * Unacknowledged batches one stream may have in the writer before it stops reading. The CP's own
 * window (issue: 8 batches in flight) stays below it, so a well-behaved CP never feels it.
 */
export const MAX_INFLIGHT_BATCHES_PER_STREAM = 32;

/** One open StreamEvents call. */
class EventStream {
  key: string | undefined;
  private inflight = 0;
  private ended = false;
  private draining = false;

  constructor(
    private readonly call: grpc.ServerDuplexStream<StreamRequest, StreamResponse>,
    private readonly service: AuditServiceImpl,
  ) {}

  start(): void {
    this.call.on('data', (req: StreamRequest) => this.onRequest(req));
    this.call.on('end', () => this.finishIfIdle());
    this.call.on('error', () => this.close());
    this.call.on('cancelled', () => this.close());
  }

  private onRequest(req: StreamRequest): void {
    if (this.ended) return;
    const { pipeline, log } = this.service;
    try {
      if (req.malformed !== undefined) {
        throw new InvalidArgumentError([
          { field: 'request', description: `not a valid StreamEventsRequest: ${req.malformed}` },
        ]);
      }
      if (this.key === undefined) {
        if (req.identifier === null) {
          throw new InvalidArgumentError([
            { field: 'identifier', description: 'required on the first request of a stream' },
          ]);
        }
        // A stream that identifies itself after the drain began would escape it.
        if (this.service.isDraining) throw new UnavailableError('the sidecar is shutting down');
        const { key, ackedSeq } = pipeline.identify(req.identifier.zone, req.identifier.instance);
        this.key = key;
        this.service.attach(this);
        log.info('control plane stream opened', {
          identifier: key,
          resumeFrom: ackedSeq + 1,
          peer: this.call.getPeer(),
        });
        this.call.write({ ackedSeq, firstSeq: 0, recorded: 0, skipped: 0, duplicates: 0, rejected: [] });
      }
      if (req.eventCount === 0) return;
      this.inflight++;
      pipeline.submitBatch(this.key, req.firstSeq, req, (err, res) => this.onCommitted(err, res));
      this.applyBackpressure();
    } catch (err) {
      this.fail(err);
    }
  }

  private onCommitted(err: Error | null, res: BatchResult | undefined): void {
    this.inflight--;
    if (this.ended) return;
    if (err) return this.fail(err);
    this.call.write(res!);
    if (this.draining) return this.finishIfIdle();
    this.applyBackpressure();
    this.finishIfIdle();
  }

  /** Stops reading while this stream or the writer is full; resumes when both have room. */
  applyBackpressure(): void {
    if (this.ended || this.draining) return;
    const full = this.inflight >= MAX_INFLIGHT_BATCHES_PER_STREAM || this.service.pipeline.isFull();
    if (full && !this.call.isPaused()) this.call.pause();
    else if (!full && this.call.isPaused()) this.call.resume();
  }

  /** Graceful stop: read nothing more, acknowledge what is in flight, then end with UNAVAILABLE. */
  drain(): void {
    this.draining = true;
    this.call.pause();
    this.finishIfIdle();
  }

  supersede(): void {
    this.fail(new SupersededError(`identifier ${this.key} was opened by a newer stream`));
  }

  private finishIfIdle(): void {
    if (this.ended || this.inflight > 0) return;
    if (this.draining) {
      this.fail(new UnavailableError('the sidecar is shutting down; reconnect and resume from the acked sequence'));
    } else if (this.call.readableEnded) {
      this.close();
      this.call.end();
    }
  }

  private fail(err: unknown): void {
    if (this.ended) return;
    this.close();
    this.call.emit(
      'error',
      toStatus(err, (msg, e) => this.service.log.error(msg, { err: e, identifier: this.key })),
    );
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
  private draining = false;

  constructor(
    readonly pipeline: AuditPipeline,
    readonly log: Logger,
  ) {
    pipeline.onDrain(() => {
      for (const s of this.open) s.applyBackpressure();
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

  get isDraining(): boolean {
    return this.draining;
  }

  /** Number of open control-plane streams. */
  get streamCount(): number {
    return this.open.size;
  }

  drain(): void {
    this.draining = true;
    for (const s of [...this.open]) s.drain();
  }

  handlers(): grpc.UntypedServiceImplementation {
    return {
      StreamEvents: (call: grpc.ServerDuplexStream<StreamRequest, StreamResponse>) => {
        if (this.draining) {
          call.emit(
            'error',
            toStatus(new UnavailableError('the sidecar is shutting down'), () => {}),
          );
          return;
        }
        new EventStream(call, this).start();
      },
      Record: (
        call: grpc.ServerUnaryCall<Buffer, { audited: boolean }>,
        callback: grpc.sendUnaryData<{ audited: boolean }>,
      ) => {
        const logError = (msg: string, e: unknown): void => this.log.error(msg, { err: e, rpc: 'Record' });
        try {
          if (this.draining) throw new UnavailableError('the sidecar is shutting down');
          this.pipeline.recordEncoded(call.request, (err, audited) => {
            if (err) callback(toStatus(err, logError));
            else callback(null, { audited: audited === true });
          });
        } catch (err) {
          callback(toStatus(err, logError));
        }
      },
    };
  }
}
