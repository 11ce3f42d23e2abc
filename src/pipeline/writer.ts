// The group-commit writer: everything accepted is queued here, written to every sink in one write per
// group, then committed to the checkpoint, and only then acknowledged. Records are never dropped to
// keep up: when the queue is full the gRPC handlers stop reading (HTTP/2 flow control pushes back on
// the CP), and a failing sink is retried until it works or the process stops.
//
// Two stages: while one group is committed, the next is written. Commits stay in order, each with the
// positions its own write returned, so the checkpoint never covers more than was written before it;
// a crash between the stages leaves data after the committed position, which recovery cuts
// (src/backends/file/file-sink.ts), as it always did for a crash between a write and its commit. The
// overlap hides a commit's round trip to the disk thread: most of an ack's latency when groups are
// small (one stream with a few batches in flight, Record calls).
//
// Except after a write that rotated a file: nothing more is written until that group is committed.
// Recovery finds the committed position by the file's inode; one more rotation before the commit
// could let retention (maxRetainedFiles: 1, or maxAgeDays after a clock jump) delete the file that
// holds it, and recovery could then no longer cut what followed it (found in review).
import type { Sink, SinkPosition } from '../backends/sink';
import type { Checkpoint } from '../store/checkpoint';

/** One queued unit: the lines of one batch (or one Record call) and the sequence it completes. */
export interface WriteRequest {
  /**
   * Record lines, UTF-8, each ending in "\n"; empty when the batch has nothing to write. Encoded by the
   * producer as soon as the batch is formatted: the formatted strings die young (no GC promotion
   * while batches wait in the queue), and the queue's size is counted in real bytes.
   */
  data: Buffer;
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
/** After the drain timeout, how long closing waits for a write or commit already under way. */
export const CLOSE_GRACE_MS = 1000;

export class WriterClosedError extends Error {
  constructor() {
    super('the audit writer is shutting down');
  }
}

export class AuditWriter {
  private queue: WriteRequest[] = [];
  private queuedBytes = 0;
  private closed = false;
  /**
   * The group being written (or its write retried), the written one waiting for the commit stage, and
   * the one being committed (or its commit retried): all failed, none committed, if the writer closes first.
   */
  private writing: WriteRequest[] | null = null;
  private written: CommitJob | null = null;
  private committing: CommitJob | null = null;
  private writeTimer: NodeJS.Timeout | undefined;
  private commitTimer: NodeJS.Timeout | undefined;
  /** Each sink's file (inode) where the last write ended, by sink key. */
  private readonly fileOf = new Map<string, number>();
  /** Sink writes and checkpoint commits under way; close waits for them before closing the files. */
  private opsInFlight = 0;
  private opsSettled: Array<() => void> = [];
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
    this.queuedBytes += req.data.length;
    this.next();
  }

  /** Resolves when everything submitted so far is committed (or failed because the writer closed). */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops: waits for queued requests to commit; after `timeoutMs`, gives up on what is left, the group
   * being retried included (none of it is acknowledged, and nothing after it is ever committed, so the
   * CP resends it all after the restart). Then closes the sinks and the checkpoint.
   */
  async close(timeoutMs: number): Promise<void> {
    await withTimeout(this.idle(), timeoutMs);
    this.closed = true;
    clearTimeout(this.writeTimer);
    clearTimeout(this.commitTimer);
    const abandoned = [
      ...(this.committing?.group ?? []),
      ...(this.written?.group ?? []),
      ...(this.writing ?? []),
      ...this.queue,
    ];
    this.committing = null;
    this.written = null;
    this.writing = null;
    this.queue = [];
    this.queuedBytes = 0;
    for (const req of abandoned) req.done(new WriterClosedError());
    this.settleIdle(); // nothing is left to wait for
    // A write stuck in the kernel (a hung NFS mount) must not hold the process forever.
    await withTimeout(this.settled(), CLOSE_GRACE_MS);
    await withTimeout(Promise.all(this.sinks.map((s) => s.close())), CLOSE_GRACE_MS);
    // A commit still queued behind a hung disk keeps its descriptor: closing it now could let that
    // write land in whatever file reuses the number. The process is about to exit anyway.
    if (this.opsInFlight === 0) this.checkpoint.close();
  }

  private settled(): Promise<void> {
    if (this.opsInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.opsSettled.push(resolve));
  }

  /** Runs one asynchronous sink or checkpoint operation, counted so close() can wait for it. */
  private op(start: (finish: () => void) => void): void {
    this.opsInFlight++;
    start(() => {
      this.opsInFlight--;
      if (this.opsInFlight === 0) {
        const waiters = this.opsSettled;
        this.opsSettled = [];
        for (const w of waiters) w();
      }
    });
  }

  /** Starts writing the next group when the write stage is free and nothing written waits for a commit. */
  private next(): void {
    if (
      this.closed ||
      this.writing !== null ||
      this.written !== null ||
      this.committing?.rotated === true ||
      this.queue.length === 0
    )
      return;
    // Take whole requests up to maxGroupBytes (always at least one): a batch is never split.
    let take = 0;
    let bytes = 0;
    while (take < this.queue.length && (take === 0 || bytes + this.queue[take].data.length <= this.maxGroupBytes)) {
      bytes += this.queue[take].data.length;
      take++;
    }
    const group = this.queue.splice(0, take);
    this.writing = group;
    const wasFull = this.isFull();
    this.queuedBytes -= bytes;
    if (wasFull && !this.isFull()) for (const l of this.drainListeners) l();
    const parts: Buffer[] = [];
    const seqs = new Map<string, number>();
    for (const req of group) {
      if (req.data.length > 0) parts.push(req.data);
      if (req.seqKey !== undefined && req.seq !== undefined) seqs.set(req.seqKey, req.seq);
    }
    const chunk = parts.length === 0 ? null : parts.length === 1 ? parts[0] : Buffer.concat(parts);
    this.writeGroup(group, chunk, seqs, 0, 0);
  }

  /** Counts a failure and returns how long to wait before retry `attempt + 1`. */
  private failed(err: Error, attempt: number): number {
    this.failures++;
    this.opts.onError?.(err, attempt + 1);
    const base = this.opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    return Math.min(base * 2 ** attempt, this.opts.maxRetryDelayMs ?? DEFAULT_MAX_RETRY_DELAY_MS);
  }

  /**
   * Writes to the sinks from `fromSink` on (earlier ones already hold the data), then hands the group
   * to the commit stage. A failure retries the same group, with a growing delay, until it works or the
   * writer closes: the queue waits behind it, so nothing after a failed group is written before it.
   */
  private writeGroup(
    group: WriteRequest[],
    chunk: Buffer | null,
    seqs: Map<string, number>,
    fromSink: number,
    attempt: number,
    positions: Map<string, SinkPosition> = new Map(),
  ): void {
    if (this.closed) return; // close() has already failed this group
    if (chunk !== null && fromSink < this.sinks.length) {
      const sink = this.sinks[fromSink];
      this.op((finish) =>
        sink.write(chunk).then(
          (pos) => {
            finish();
            positions.set(sink.key, pos);
            this.writeGroup(group, chunk, seqs, fromSink + 1, attempt, positions);
          },
          (err: Error) => {
            finish();
            if (this.closed) return;
            const wait = this.failed(err, attempt);
            this.writeTimer = setTimeout(
              () => this.writeGroup(group, chunk, seqs, fromSink, attempt + 1, positions),
              wait,
            );
          },
        ),
      );
      return;
    }
    this.writing = null;
    // A sink whose file is not the one the last write ended in has rotated (the first write after a
    // start counts as one: which file the committed position is in is not known here).
    let rotated = false;
    for (const [key, pos] of positions) {
      if (this.fileOf.get(key) !== pos.ino) rotated = true;
      this.fileOf.set(key, pos.ino);
    }
    this.written = { group, seqs, positions, rotated };
    this.startCommit();
  }

  /** Moves the written group into the commit stage when it is free; the write stage may then go on. */
  private startCommit(): void {
    if (this.closed || this.committing !== null || this.written === null) return;
    const job = this.written;
    this.written = null;
    this.committing = job;
    this.commit(job, 0);
    this.next();
  }

  /**
   * Commits `job`, then acknowledges its requests. A failure retries the same commit, with a growing
   * delay: nothing written after it is committed before it.
   */
  private commit(job: CommitJob, attempt: number): void {
    if (this.closed) return;
    this.op((finish) =>
      this.checkpoint.commit({ seqs: job.seqs, positions: job.positions }, (err) => {
        finish();
        if (this.closed) return;
        if (err) {
          const wait = this.failed(err, attempt);
          this.commitTimer = setTimeout(() => this.commit(job, attempt + 1), wait);
          return;
        }
        this.committing = null;
        for (const req of job.group) req.done(null);
        this.startCommit();
        this.next();
        if (!this.busy) this.settleIdle();
      }),
    );
  }

  /** Anything queued, being written, written and waiting, or being committed. */
  private get busy(): boolean {
    return this.queue.length > 0 || this.writing !== null || this.written !== null || this.committing !== null;
  }

  private settleIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** A written group on its way to the checkpoint. */
interface CommitJob {
  readonly group: WriteRequest[];
  /** Its write rotated a file: the next write waits for its commit. */
  readonly rotated: boolean;
  readonly seqs: Map<string, number>;
  readonly positions: Map<string, SinkPosition>;
}

/** Waits for `p`, at most `ms`. */
export async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
