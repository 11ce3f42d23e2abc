// The group-commit writer: everything accepted is queued here, written to every sink in one write per
// group, then committed to the checkpoint, and only then acknowledged. Records are never dropped to
// keep up: when the queue is full the gRPC handlers stop reading (HTTP/2 flow control pushes back on
// the CP), and a failing sink is retried until it works or the process stops.
import type { Sink, SinkPosition } from '../backends/sink';
import type { Checkpoint } from '../store/checkpoint';

/** One queued unit: the lines of one batch (or one Record call) and the sequence it completes. */
export interface WriteRequest {
  /** Record lines, each ending in "\n"; empty when the batch has nothing to write. */
  lines: string;
  /** Identifier key and the last sequence this request completes, if it comes from a stream. */
  seqKey?: string;
  seq?: number;
  /** Called once the lines are written and committed (err null), or when the writer closes without writing them. */
  done: (err: Error | null) => void;
}

export interface WriterOptions {
  /**
   * One group is at most this many bytes: 1 MiB is ~3,000 records, enough to amortise the syscalls
   * and the checkpoint line, small enough that an ack never waits on a huge write.
   */
  maxGroupBytes?: number;
  /** Above this many queued bytes, `isFull()` tells producers to stop reading. */
  highWaterBytes?: number;
  /** First retry delay after a failed write; doubles up to maxRetryDelayMs. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  onError?: (err: Error, attempt: number) => void;
}

export const DEFAULT_MAX_GROUP_BYTES = 1024 * 1024;
/** 16 MiB queued: bounds memory when the disk is slow while keeping several groups ready to write. */
export const DEFAULT_HIGH_WATER_BYTES = 16 * 1024 * 1024;
export const DEFAULT_RETRY_DELAY_MS = 100;
export const DEFAULT_MAX_RETRY_DELAY_MS = 5000;

export class WriterClosedError extends Error {
  constructor() {
    super('the audit writer is shutting down');
  }
}

export class AuditWriter {
  private queue: WriteRequest[] = [];
  private queuedBytes = 0;
  private busy = false;
  private closing = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private drainListeners: Array<() => void> = [];
  private readonly maxGroupBytes: number;
  private readonly highWaterBytes: number;
  /** Failed writes since start, for status and logs. */
  failures = 0;

  constructor(
    private readonly sinks: readonly Sink[],
    private readonly checkpoint: Checkpoint,
    private readonly opts: WriterOptions = {},
  ) {
    this.maxGroupBytes = opts.maxGroupBytes ?? DEFAULT_MAX_GROUP_BYTES;
    this.highWaterBytes = opts.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES;
  }

  /** True while producers should stop reading more input. */
  isFull(): boolean {
    return this.queuedBytes >= this.highWaterBytes;
  }

  /** Bytes accepted but not yet written. */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  /** Calls `listener` every time the queue falls below the high-water mark. */
  onDrain(listener: () => void): () => void {
    this.drainListeners.push(listener);
    return () => {
      this.drainListeners = this.drainListeners.filter((l) => l !== listener);
    };
  }

  submit(req: WriteRequest): void {
    if (this.closed) {
      req.done(new WriterClosedError());
      return;
    }
    this.queue.push(req);
    this.queuedBytes += req.lines.length;
    if (!this.busy) this.next();
  }

  /** Resolves when everything submitted so far is committed (or failed because the writer closed). */
  idle(): Promise<void> {
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops: waits for queued requests to commit; after `timeoutMs`, gives up on what is left (it is not
   * acknowledged, so the CP resends it after the restart). Then closes the sinks and the checkpoint.
   */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.idle(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.closed = true;
    const left = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const req of left) req.done(new WriterClosedError());
    for (const sink of this.sinks) await sink.close();
    this.checkpoint.close();
  }

  private next(): void {
    if (this.queue.length === 0 || this.closed) {
      this.busy = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
      return;
    }
    this.busy = true;
    // Take whole requests up to maxGroupBytes (always at least one): a batch is never split.
    let take = 0;
    let bytes = 0;
    while (take < this.queue.length && (take === 0 || bytes + this.queue[take].lines.length <= this.maxGroupBytes)) {
      bytes += this.queue[take].lines.length;
      take++;
    }
    const group = this.queue.splice(0, take);
    const wasFull = this.isFull();
    this.queuedBytes -= bytes;
    if (wasFull && !this.isFull()) for (const l of this.drainListeners) l();
    let text = '';
    const seqs = new Map<string, number>();
    for (const req of group) {
      text += req.lines;
      if (req.seqKey !== undefined && req.seq !== undefined) seqs.set(req.seqKey, req.seq);
    }
    this.writeGroup(group, text.length > 0 ? Buffer.from(text) : null, seqs, 0, 0);
  }

  /** Writes to the sinks from `fromSink` on (earlier ones already hold the data), then commits. */
  private writeGroup(
    group: WriteRequest[],
    chunk: Buffer | null,
    seqs: Map<string, number>,
    fromSink: number,
    attempt: number,
    positions: Map<string, SinkPosition> = new Map(),
  ): void {
    const retry = (err: Error, sinkIndex: number): void => {
      this.failures++;
      this.opts.onError?.(err, attempt + 1);
      if (this.closing && attempt >= 2) {
        // Shutting down with a broken disk: leave the group unacknowledged; the CP resends it.
        for (const req of group) req.done(err);
        this.next();
        return;
      }
      const base = this.opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
      const delay = Math.min(base * 2 ** attempt, this.opts.maxRetryDelayMs ?? DEFAULT_MAX_RETRY_DELAY_MS);
      setTimeout(() => this.writeGroup(group, chunk, seqs, sinkIndex, attempt + 1, positions), delay);
    };
    if (chunk !== null && fromSink < this.sinks.length) {
      const sink = this.sinks[fromSink];
      sink.write(chunk).then(
        (pos) => {
          positions.set(sink.key, pos);
          this.writeGroup(group, chunk, seqs, fromSink + 1, attempt, positions);
        },
        (err: Error) => retry(err, fromSink),
      );
      return;
    }
    this.checkpoint.commit({ seqs, positions }, (err) => {
      if (err) return retry(err, this.sinks.length);
      for (const req of group) req.done(null);
      this.next();
    });
  }
}
