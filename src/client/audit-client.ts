// What a control plane embeds to stream its events in: identify, resume from the sidecar's acked
// sequence, keep a window of batches in flight, and on a failure that can pass reconnect and resend from
// the new resume point. The sidecar makes resending safe (already-acked sequences are not written twice).
// A failure that cannot pass (another zone, a malformed identifier, a missing or refused credential) is
// never retried: every caller learns it at once.
import * as grpc from '@grpc/grpc-js';
import type { BatchAck } from '../contract';
import type { AuditEvent } from '../events/event';
import { meshauditClients } from './services';

export interface Identifier {
  zone: string;
  instance: string;
}

type AuditStub = grpc.Client & {
  StreamEvents(metadata?: grpc.Metadata): grpc.ClientDuplexStream<unknown, BatchAck>;
};

function auditStub(address: string, credentials = grpc.credentials.createInsecure()): AuditStub {
  return new (meshauditClients().AuditService)(address, credentials) as unknown as AuditStub;
}

/**
 * The statuses the same stream gets again however often it is retried: INVALID_ARGUMENT (another zone, a
 * malformed identifier, a malformed or oversized batch), UNAUTHENTICATED (no or an unknown credential),
 * PERMISSION_DENIED (the credential does not cover the identifier), RESOURCE_EXHAUSTED (a request past
 * the sidecar's message size) and UNIMPLEMENTED (not a meshaudit). Everything else (UNAVAILABLE, a
 * dropped connection, ABORTED by a newer stream, a FAILED_PRECONDITION gap) passes on a new stream.
 */
const PERMANENT: ReadonlySet<number> = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.UNIMPLEMENTED,
]);

/** Whether `err` (a stream's failure) would fail again on a new stream, so that retrying it is pointless. */
export function isPermanent(err: unknown): boolean {
  const code = (err as Partial<grpc.ServiceError> | null)?.code;
  return typeof code === 'number' && PERMANENT.has(code);
}

// ---------------------------------------------------------------------------------------------------
// sendAll: a whole log at once (the crash and fault tests).

export interface SendOptions {
  /** Events per batch (default 100). */
  batchSize?: number;
  /** Unacknowledged batches in flight (default 8). */
  window?: number;
  /** Give up after this long without the whole log acknowledged (default 60 s). */
  deadlineMs?: number;
  /** Called for every batch acknowledgement. */
  onAck?: (ack: BatchAck) => void;
  /** Called when a stream fails and is reopened. */
  onReconnect?: (err: Error) => void;
}

/**
 * Streams one stream session: resolves with the last acked sequence when `events` (event i has
 * sequence i + 1) are all acknowledged; rejects on the first stream error.
 */
function session(client: AuditStub, id: Identifier, events: readonly AuditEvent[], opts: SendOptions): Promise<number> {
  const batchSize = opts.batchSize ?? 100;
  const window = opts.window ?? 8;
  return new Promise((resolve, reject) => {
    const call = client.StreamEvents();
    let next = -1; // next sequence to send; -1 until the resume point arrives
    let inflight = 0;
    let settled = false;
    const finish = (err: Error | null, acked = 0): void => {
      if (settled) return;
      settled = true;
      if (err) {
        call.cancel();
        reject(err);
      } else {
        call.end();
        resolve(acked);
      }
    };
    const pump = (): void => {
      while (inflight < window && next <= events.length) {
        const batch = events.slice(next - 1, next - 1 + batchSize);
        call.write({ firstSeq: next, events: batch });
        next += batch.length;
        inflight++;
      }
    };
    call.on('data', (ack: BatchAck) => {
      if (next === -1) {
        next = ack.ackedSeq + 1;
        if (ack.ackedSeq >= events.length) return finish(null, ack.ackedSeq);
        return pump();
      }
      inflight--;
      opts.onAck?.(ack);
      if (ack.ackedSeq >= events.length) return finish(null, ack.ackedSeq);
      pump();
    });
    call.on('error', (err: Error) => finish(err));
    call.on('end', () => finish(new Error('stream ended before every event was acknowledged')));
    call.write({ identifier: id, firstSeq: 0, events: [] });
  });
}

/**
 * Sends the whole log of `events` (sequence = index + 1), surviving sidecar restarts: on a failure that
 * can pass it waits a little, reconnects, and resumes from the acked sequence the sidecar reports; a
 * permanent one (`isPermanent`) rejects at once.
 */
export async function sendAll(
  address: string,
  id: Identifier,
  events: readonly AuditEvent[],
  opts: SendOptions = {},
): Promise<void> {
  const deadline = Date.now() + (opts.deadlineMs ?? 60_000);
  let delayMs = 20;
  for (;;) {
    // A fresh channel per attempt, so that a restarted sidecar is reached at once, without grpc-js's
    // reconnect backoff.
    const client = auditStub(address);
    try {
      await session(client, id, events, opts);
      return;
    } catch (err) {
      if (isPermanent(err) || Date.now() > deadline) throw err;
      opts.onReconnect?.(err as Error);
      await new Promise((r) => setTimeout(r, delayMs));
      delayMs = Math.min(delayMs * 2, 500);
    } finally {
      client.close();
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// AuditClient: one event at a time, as a control plane acts.

/** 100 events of about 160 bytes make a 16 KB batch: far below the sidecar's 4 MiB message limit. */
export const DEFAULT_BATCH_SIZE = 100;
/** A partial batch waits this long for more events: an action's record is late by at most this much. */
export const DEFAULT_BATCH_DELAY_MS = 10;
/** Events accepted by send() and not yet acknowledged: about 1.6 MB of events at 160 bytes each. */
export const DEFAULT_MAX_QUEUED = 10_000;
/** Batches in flight; below the sidecar's 32 per stream, so its per-stream pause is never met. */
export const DEFAULT_WINDOW = 8;
export const DEFAULT_BACKOFF_INITIAL_MS = 50;
export const DEFAULT_BACKOFF_MAX_MS = 5_000;
export const DEFAULT_CLOSE_TIMEOUT_MS = 30_000;

export interface AuditClientOptions {
  /** The sidecar's `meshaudit.grpc.address` (`host:port`, or `unix:///path`). */
  address: string;
  /** Who streams: `zone` must be the sidecar's `meshaudit.zone`. */
  identifier: Identifier;
  /** TLS (grpc.credentials.createSsl(...)); plaintext when absent. */
  credentials?: grpc.ChannelCredentials;
  /** A bearer token (meshaudit token add), sent as `authorization: Bearer <token>`. */
  token?: string;
  /** Events per batch (default 100). */
  batchSize?: number;
  /** How long a partial batch waits for more events, in ms (default 10; 0: sent at the next turn). */
  batchDelayMs?: number;
  /** Events sent and not yet acknowledged, at most (default 10,000): past it, send() waits for room. */
  maxQueued?: number;
  /** Batches sent and not yet acknowledged on one stream, at most (default 8). */
  window?: number;
  /** The reconnect delay: a random time up to initialMs * 2^attempt, capped at maxMs (defaults 50, 5,000). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** How long close() waits for the queue's acknowledgements, in ms (default 30,000). */
  closeTimeoutMs?: number;
  /** Called when a stream fails with what can pass, before the jittered wait for the next one. */
  onReconnect?: (err: Error, delayMs: number) => void;
  /** Called for every batch acknowledgement, after its events are settled (for a CP's own metrics). */
  onAck?: (ack: BatchAck) => void;
}

/**
 * How an event ended: `recorded` (written to the audit files), `skipped` (valid, no AccessAudit rule
 * covers it), `duplicate` (its sequence had been accepted before: resent after its ack was lost), or
 * `handled` (recorded or skipped, the acknowledgement does not say which: its batch had both, or it was
 * acknowledged by a resume point). The sidecar acknowledges counts per batch, not per event.
 */
export interface SendResult {
  seq: number;
  outcome: 'recorded' | 'skipped' | 'duplicate' | 'handled';
}

/** An event the sidecar refused as invalid: it is not written, and resending it would fail again. */
export class RejectedEventError extends Error {
  constructor(
    readonly seq: number,
    readonly reason: string,
  ) {
    super(`event ${seq} rejected: ${reason}`);
    this.name = 'RejectedEventError';
  }
}

interface Entry {
  event: AuditEvent;
  resolve: (r: SendResult) => void;
  reject: (e: Error) => void;
}

interface Stream {
  stub: AuditStub;
  call: grpc.ClientDuplexStream<unknown, BatchAck>;
  /** Whether the resume point has come: batches may be sent. */
  resumed: boolean;
  /** Sent and unacknowledged batches: firstSeq -> events in the batch. */
  inflight: Map<number, number>;
}

/**
 * Streams a control plane's events to its zone's sidecar, one `send` per action.
 *
 * Sequences: the client numbers events once, in send order, continuing after the resume point the
 * sidecar gives on the first stream. Use one AuditClient per identifier at a time: a second one (or a
 * restarted CP whose last batches are still being written) would number events the sidecar already has,
 * and they come back as `duplicate`.
 *
 * Backpressure: an event enters the queue when fewer than `maxQueued` events are queued (sent or not,
 * unacknowledged) and no earlier send is waiting; otherwise its send waits, in call order, holding only
 * the event, and enters as acknowledgements make room. Await send() (or watch `queued`) to be paced.
 */
export class AuditClient {
  private readonly opts: Required<
    Omit<AuditClientOptions, 'credentials' | 'token' | 'onReconnect' | 'onAck' | 'backoff'>
  >;
  private readonly metadata = new grpc.Metadata();
  private readonly backoff: { initialMs: number; maxMs: number };
  /** Unacknowledged events in sequence order: entry i has sequence headSeq + i. */
  private queue: Entry[] = [];
  /** Sends waiting for room in the queue. */
  private waiting: Entry[] = [];
  /** The sequence of queue[0]; undefined until the first resume point numbers the events. */
  private headSeq: number | undefined;
  /** Events of the queue already sent on the current stream (queue[0..sent) are in flight). */
  private sent = 0;
  private stream: Stream | null = null;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private batchTimer: NodeJS.Timeout | null = null;
  private failure: Error | null = null;
  private closing = false;
  private drained: (() => void) | null = null;

  constructor(private readonly options: AuditClientOptions) {
    this.opts = {
      address: options.address,
      identifier: { zone: options.identifier.zone, instance: options.identifier.instance },
      batchSize: positive(options.batchSize ?? DEFAULT_BATCH_SIZE, 'batchSize'),
      batchDelayMs: nonNegative(options.batchDelayMs ?? DEFAULT_BATCH_DELAY_MS, 'batchDelayMs'),
      maxQueued: positive(options.maxQueued ?? DEFAULT_MAX_QUEUED, 'maxQueued'),
      window: positive(options.window ?? DEFAULT_WINDOW, 'window'),
      closeTimeoutMs: nonNegative(options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS, 'closeTimeoutMs'),
    };
    this.backoff = {
      initialMs: positive(options.backoff?.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS, 'backoff.initialMs'),
      maxMs: positive(options.backoff?.maxMs ?? DEFAULT_BACKOFF_MAX_MS, 'backoff.maxMs'),
    };
    if (options.token !== undefined) this.metadata.set('authorization', `Bearer ${options.token}`);
  }

  /** Events queued and not yet acknowledged (at most maxQueued). */
  get queued(): number {
    return this.queue.length;
  }

  /** Sends waiting for room in the queue. */
  get blocked(): number {
    return this.waiting.length;
  }

  /**
   * Queues `event` (or waits for room) and resolves once the sidecar acknowledges it; rejects with a
   * RejectedEventError for an invalid event, with the stream's error for a permanent failure, and with
   * an error once close() was called.
   */
  send(event: AuditEvent): Promise<SendResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new Error('the AuditClient is closed'));
    return new Promise((resolve, reject) => {
      const entry = { event, resolve, reject };
      if (this.waiting.length > 0 || this.queue.length >= this.opts.maxQueued) this.waiting.push(entry);
      else this.enqueue(entry);
    });
  }

  /**
   * Stops taking events, waits until every queued and waiting event is acknowledged (or closeTimeoutMs
   * passes: those left are rejected), then ends the stream. Rejects with the permanent failure, if any.
   */
  async close(): Promise<void> {
    this.closing = true;
    if (this.queue.length > 0 || this.waiting.length > 0) {
      this.flush();
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.drained = resolve;
        timer = setTimeout(() => {
          this.fail(new Error(`close: events unacknowledged after ${this.opts.closeTimeoutMs} ms`));
        }, this.opts.closeTimeoutMs);
      });
      clearTimeout(timer);
    }
    this.shutdown(this.failure !== null);
    if (this.failure) throw this.failure;
  }

  private enqueue(entry: Entry): void {
    this.queue.push(entry);
    if (this.stream === null && this.retryTimer === null) this.connect();
    if (this.queue.length - this.sent >= this.opts.batchSize || this.closing) this.flush();
    else if (this.batchTimer === null) this.batchTimer = setTimeout(() => this.flush(), this.opts.batchDelayMs);
  }

  /** Sends what the window allows, partial batches included. */
  private flush(): void {
    if (this.batchTimer) clearTimeout(this.batchTimer);
    this.batchTimer = null;
    const s = this.stream;
    if (s === null || !s.resumed || this.headSeq === undefined) return;
    while (s.inflight.size < this.opts.window && this.sent < this.queue.length) {
      const batch = this.queue.slice(this.sent, this.sent + this.opts.batchSize);
      const firstSeq = this.headSeq + this.sent;
      s.call.write({ firstSeq, events: batch.map((e) => e.event) });
      s.inflight.set(firstSeq, batch.length);
      this.sent += batch.length;
    }
    // A partial batch left behind the window goes with the next ack's flush.
  }

  private connect(): void {
    this.retryTimer = null;
    const stub = auditStub(this.opts.address, this.options.credentials);
    const call = stub.StreamEvents(this.metadata);
    const s: Stream = { stub, call, resumed: false, inflight: new Map() };
    this.stream = s;
    this.sent = 0;
    call.on('data', (ack: BatchAck) => this.onAck(s, ack));
    call.on('error', (err: Error) => this.onStreamEnd(s, err));
    call.on('end', () => this.onStreamEnd(s, new Error('the sidecar ended the stream')));
    call.write({ identifier: this.opts.identifier, firstSeq: 0, events: [] });
  }

  private onAck(s: Stream, ack: BatchAck): void {
    if (s !== this.stream) return;
    if (!s.resumed) {
      this.onResume(s, ack.ackedSeq);
      return;
    }
    const head = this.headSeq as number;
    const size = s.inflight.get(ack.firstSeq);
    s.inflight.delete(ack.firstSeq);
    if (size !== undefined) this.settleBatch(ack, size, head);
    this.ackThrough(ack.ackedSeq, 'handled');
    this.options.onAck?.(ack);
    this.flush();
  }

  /** The resume point: number the queue on the first stream, settle what it covers on later ones. */
  private onResume(s: Stream, ackedSeq: number): void {
    if (this.headSeq === undefined) this.headSeq = ackedSeq + 1;
    else if (ackedSeq + 1 < this.headSeq) {
      // The sidecar forgot sequences it had acknowledged (its data directory was replaced): resending
      // from its resume point would need events this client no longer holds.
      this.fail(
        new Error(`the sidecar's resume point ${ackedSeq} is before acknowledged sequence ${this.headSeq - 1}`),
      );
      return;
    }
    s.resumed = true;
    this.attempt = 0;
    this.ackThrough(ackedSeq, 'handled');
    this.flush();
  }

  /** Settles the events of one acknowledged batch (those still queued: a resend may cover fewer). */
  private settleBatch(ack: BatchAck, size: number, head: number): void {
    const rejected = new Map(ack.rejected.map((r) => [r.index, r.reason]));
    const outcome: SendResult['outcome'] =
      ack.duplicates === size - rejected.size
        ? 'duplicate'
        : ack.skipped === 0 && ack.duplicates === 0
          ? 'recorded'
          : ack.recorded === 0 && ack.duplicates === 0
            ? 'skipped'
            : 'handled';
    for (let i = 0; i < size; i++) {
      const seq = ack.firstSeq + i;
      const entry = this.queue[seq - head];
      if (entry === undefined || seq < head) continue;
      const reason = rejected.get(i);
      if (reason !== undefined) entry.reject(new RejectedEventError(seq, reason));
      // ackThrough resolves it again right after: a no-op on a settled promise.
      else entry.resolve({ seq, outcome });
    }
  }

  /** Drops every queued event up to `ackedSeq` (settled `outcome` unless settled already) and admits waiting sends. */
  private ackThrough(ackedSeq: number, outcome: SendResult['outcome']): void {
    const head = this.headSeq as number;
    const n = Math.min(Math.max(0, ackedSeq - head + 1), this.queue.length);
    if (n === 0) return;
    const done = this.queue.splice(0, n);
    for (let i = 0; i < done.length; i++) done[i].resolve({ seq: head + i, outcome });
    this.headSeq = head + n;
    this.sent = Math.max(0, this.sent - n);
    while (this.waiting.length > 0 && this.queue.length < this.opts.maxQueued) {
      this.enqueue(this.waiting.shift() as Entry);
    }
    if (this.queue.length === 0 && this.waiting.length === 0) this.drained?.();
  }

  private onStreamEnd(s: Stream, err: Error): void {
    if (s !== this.stream) return;
    this.stream = null;
    s.call.cancel();
    s.stub.close();
    if (isPermanent(err)) {
      this.fail(err);
      return;
    }
    if (this.failure) return;
    if (this.queue.length === 0 && this.waiting.length === 0) return; // reconnects at the next send
    const capMs = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** this.attempt);
    // Full jitter: CPs that lost the same sidecar do not all come back at the same moment.
    const delayMs = Math.floor(Math.random() * capMs);
    this.attempt = Math.min(this.attempt + 1, 30);
    this.options.onReconnect?.(err, delayMs);
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  /** A failure that cannot pass: every queued, waiting and later send rejects with it. */
  private fail(err: Error): void {
    if (this.failure === null) this.failure = err;
    const entries = [...this.queue, ...this.waiting];
    this.queue = [];
    this.waiting = [];
    for (const e of entries) e.reject(err);
    this.shutdown(true);
    this.drained?.();
  }

  /** Stops the timers and the stream: a half-close when everything is acknowledged, else a cancel. */
  private shutdown(cancel: boolean): void {
    if (this.batchTimer) clearTimeout(this.batchTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.batchTimer = null;
    this.retryTimer = null;
    const s = this.stream;
    this.stream = null;
    if (s) {
      // A half-close lets the sidecar end the stream OK; its 'end' goes to onStreamEnd, which ignores
      // a stream no longer current.
      if (cancel) s.call.cancel();
      else s.call.end();
      s.stub.close();
    }
  }
}

function positive(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`AuditClient: ${name} must be a positive integer, got ${n}`);
  return n;
}

function nonNegative(n: number, name: string): number {
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`AuditClient: ${name} must be 0 or more, got ${n}`);
  return n;
}
