// The group-commit writer: everything accepted is queued here, written to every sink in one write per
// group, then committed to the checkpoint, and only then acknowledged. Records are never dropped to
// keep up: when the queue is full the gRPC handlers stop reading (HTTP/2 flow control pushes back on
// the CP), and a failing sink is retried until it works or the process stops.
//
// A closing writer answers the group being committed from its commit's outcome (within CLOSE_GRACE_MS):
// a record that is in the checkpoint is acknowledged, never reported as lost.
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
// holds it, and recovery could then no longer cut what followed it.
import { performance } from 'node:perf_hooks';
import { type Sink, SinkNewFileError, type SinkPosition } from '../backends/sink';
import type { Checkpoint, CheckpointDelta } from '../store/checkpoint';
import type { Metrics } from '../metrics';
import { UnavailableError } from '../errors';
import { Backlog } from './backlog';

/** What completes a stream's sequence: the identifier key and the last sequence a request completes. */
export interface Completes {
  readonly key: string;
  readonly seq: number;
}

export interface WriterOptions {
  /**
   * One group is at most this many bytes: 1 MiB is ~3,000 records, enough to amortise the syscalls
   * and the checkpoint line, small enough that an ack never waits on a huge write.
   */
  maxGroupBytes?: number;
  /** Queued bytes at and above which `queued.isFull` tells producers to stop reading. */
  highWaterBytes?: number;
  /** First retry delay after a failed write; doubles up to maxRetryDelayMs. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  onError?: (err: Error, attempt: number) => void;
  /**
   * What cannot be written now (sink keys, and `checkpoint`), each time that changes: a part is
   * failing from its first failed write or commit until one succeeds. Empty: everything writes.
   */
  onFailing?: (parts: readonly string[]) => void;
  /** How long closing waits for a write or commit already under way; CLOSE_GRACE_MS by default. */
  closeGraceMs?: number;
  /**
   * Called before committing, and before acknowledging, a group whose write (and commit) took longer than PAUSE_CHECK_MS: the
   * process may have been frozen meanwhile (SIGSTOP, a stalled VM) and another sidecar may have taken
   * its data directory over and cut what this one wrote. A throw fails the commit (nothing is
   * acknowledged). Cheap groups never wait on it.
   */
  confirmAfterPause?: () => void | Promise<void>;
  /**
   * Told after every commit lands, with what it committed: each sink's position and the last sequence of
   * each identifier (the integrity trail signs only what is acknowledged). Must not throw.
   */
  onCommitted?: (delta: CheckpointDelta) => void;
  /** PAUSE_CHECK_MS by default; 0 in tests, to confirm every group. */
  pauseCheckMs?: number;
  /**
   * What the writer counts, once per group (a type: the pipeline never loads prom-client itself; the
   * sidecar passes its Metrics). Sinks go by their key in the `backend` label, a failed commit by
   * CHECKPOINT_PART. None: nothing is counted (the benchmark's floor).
   */
  metrics?: Pick<
    Metrics,
    'writeSeconds' | 'writtenBytes' | 'writeFailures' | 'commitSeconds' | 'pendingBytes' | 'checkpointBytes'
  >;
}

/**
 * Shorter than the data directory lock's watch (30 s, src/store/data-dir-lock.ts): a takeover needs a
 * pause that long, so every group it could have cut spans at least this much.
 */
export const PAUSE_CHECK_MS = 5_000;

const DEFAULT_MAX_GROUP_BYTES = 1024 * 1024;
/** 16 MiB queued: bounds memory when the disk is slow while keeping several groups ready to write. */
const DEFAULT_HIGH_WATER_BYTES = 16 * 1024 * 1024;
const DEFAULT_RETRY_DELAY_MS = 100;
const DEFAULT_MAX_RETRY_DELAY_MS = 5000;
/** The checkpoint's name among the failing parts (onFailing); sinks go by their key (their file's path). */
export const CHECKPOINT_PART = 'checkpoint';
/** After the drain timeout, how long closing waits for a write or commit already under way. */
const CLOSE_GRACE_MS = 1000;

/** The writer closed before the request was committed: the caller may retry against the restarted sidecar. */
export class WriterClosedError extends UnavailableError {
  constructor() {
    super('the audit writer is shutting down');
  }
}

/** The label children of one sink (or of the checkpoint, whose only use is `failures`). */
interface PartMetrics {
  readonly writeSeconds: { observe(seconds: number): void };
  readonly writtenBytes: { inc(bytes: number): void };
  readonly failures: { inc(): void };
}

/** One submitted request: record lines, UTF-8, each ending in "\n" (empty: nothing to write). */
interface Request {
  readonly data: Buffer;
  readonly completes: Completes | undefined;
  /** A reopen of the sinks (see reopen()), not data: filled with each sink's new position. */
  readonly reopen?: Map<string, SinkPosition>;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** A written group on its way to the checkpoint. */
interface CommitJob {
  readonly group: Request[];
  /** When its data began to reach the first sink (performance.now()). */
  readonly writtenFromMs: number;
  /** Its write rotated a file: the next write waits for its commit. */
  readonly rotated: boolean;
  readonly seqs: Map<string, number>;
  readonly positions: Map<string, SinkPosition>;
}

export class AuditWriter {
  /**
   * Bytes submitted and not yet taken into a write: full at the high-water mark, when producers stop
   * reading ('drain' when they may go on).
   */
  readonly queued: Backlog;
  /** Requests not answered yet: idle once everything submitted is committed (or failed by close). */
  private readonly unanswered = new Backlog();
  /** Sink writes and checkpoint commits under way: close waits for them before closing the files. */
  private readonly ops = new Backlog();
  private queue: Request[] = [];
  private closed = false;
  /**
   * The group being written (or its write retried), the written one waiting for the commit stage, and
   * the one being committed (or its commit retried).
   */
  private writing: Request[] | null = null;
  /** A call of next() is scheduled for the end of this turn of the event loop (nextSoon). */
  private nextDue = false;
  private written: CommitJob | null = null;
  private committing: CommitJob | null = null;
  /** The commit stage's run for `committing`, which answers its group (close waits for it). */
  private commitRun: Promise<void> | undefined;
  /** Retry waits under way, cut short by close(). */
  private readonly waits = new Set<{ timer: NodeJS.Timeout; done: () => void }>();
  /** Each sink's file (inode) where the last write ended, by sink key. */
  private readonly fileOf = new Map<string, number>();
  private readonly maxGroupBytes: number;
  /** Each sink's label children (by key), and the failures of CHECKPOINT_PART: bound once. */
  private readonly perPart = new Map<string, PartMetrics>();
  /** The parts whose last write or commit failed (see WriterOptions.onFailing). */
  private readonly failing = new Set<string>();

  constructor(
    private readonly sinks: readonly Sink[],
    private readonly checkpoint: Checkpoint,
    private readonly opts: WriterOptions = {},
  ) {
    this.maxGroupBytes = opts.maxGroupBytes ?? DEFAULT_MAX_GROUP_BYTES;
    this.queued = new Backlog(opts.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES);
    const m = opts.metrics;
    if (m !== undefined) {
      for (const key of [...sinks.map((s) => s.key), CHECKPOINT_PART]) {
        this.perPart.set(key, {
          writeSeconds: m.writeSeconds.labels(key),
          writtenBytes: m.writtenBytes.labels(key),
          failures: m.writeFailures.labels(key),
        });
      }
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Queues record lines (and the sequence they complete). Resolves once they are written and committed;
   * rejects with WriterClosedError when the writer closes without committing them.
   */
  submit(data: Buffer, completes?: Completes): Promise<void> {
    if (this.closed) return Promise.reject(new WriterClosedError());
    return new Promise((resolve, reject) => {
      this.queue.push({ data, completes, resolve, reject });
      this.queued.add(data.length);
      this.opts.metrics?.pendingBytes.set(this.queued.size);
      this.unanswered.add();
      this.nextSoon();
    });
  }

  /**
   * Reopens every sink's active file (SinkPosition: the admin's /reopen_logs, SIGUSR2) between two
   * groups: after everything submitted before it is committed, and before anything submitted after it
   * is written. The new positions are committed first, so that recovery after a crash finds the new
   * file by its inode and cuts what was written to it and never acknowledged. Resolves with each
   * sink's new position; rejects with the first sink's error (the others are reopened all the same).
   */
  reopen(): Promise<ReadonlyMap<string, SinkPosition>> {
    if (this.closed) return Promise.reject(new WriterClosedError());
    const positions = new Map<string, SinkPosition>();
    return new Promise((resolve, reject) => {
      this.queue.push({
        data: Buffer.alloc(0),
        completes: undefined,
        reopen: positions,
        resolve: () => resolve(positions),
        reject,
      });
      this.unanswered.add();
      this.next();
    });
  }

  /** Resolves when everything submitted so far is answered: committed, or failed because the writer closed. */
  idle(): Promise<void> {
    return this.unanswered.idle();
  }

  /**
   * Stops: waits up to `timeoutMs` for queued requests to commit; then gives up on what is left (none
   * of it is acknowledged, and nothing after it is ever committed, so the CP resends it all after the
   * restart), except a group whose commit is under way: it is answered by that commit, if it lands
   * within the grace (closeGraceMs). Then closes the sinks and the checkpoint.
   */
  async close(timeoutMs: number): Promise<void> {
    await withTimeout(this.idle(), timeoutMs);
    this.closed = true;
    for (const w of this.waits) {
      clearTimeout(w.timer);
      w.done();
    }
    this.waits.clear();
    // The group being committed is answered first, as its commit goes: a stream must get that ack
    // before the failures of the groups after it end the stream. A write or commit stuck in the kernel
    // (a hung NFS mount) must not hold the process forever: the grace bounds the wait.
    const graceMs = this.opts.closeGraceMs ?? CLOSE_GRACE_MS;
    await withTimeout(this.ops.idle(), graceMs);
    // With no operation left, the commit stage settles at once: its group answered as its commit went.
    if (this.ops.size === 0) await this.commitRun;
    if (this.committing !== null) this.finishCommit(this.committing, new WriterClosedError());
    const abandoned = [...(this.written?.group ?? []), ...(this.writing ?? []), ...this.queue];
    this.written = null;
    this.writing = null;
    this.queue = [];
    this.queued.remove(this.queued.size);
    this.opts.metrics?.pendingBytes.set(0);
    this.answer(abandoned, new WriterClosedError());
    await withTimeout(Promise.all(this.sinks.map((s) => s.close())), graceMs);
    // A commit still queued behind a hung disk keeps its descriptor: closing it now could let that
    // write land in whatever file reuses the number. The process is about to exit anyway.
    if (this.ops.size === 0) this.checkpoint.close();
  }

  /** Settles `requests`: resolved (err undefined) or rejected. */
  private answer(requests: readonly Request[], err?: Error): void {
    for (const req of requests) {
      if (err === undefined) req.resolve();
      else req.reject(err);
    }
    this.unanswered.remove(requests.length);
  }

  /** Commits to the checkpoint, then tells onCommitted what is acknowledged now. */
  private async commitToCheckpoint(delta: CheckpointDelta): Promise<void> {
    await this.checkpoint.commit(delta);
    this.opts.onCommitted?.(delta);
  }

  /** Runs one sink or checkpoint operation, counted so that close() can wait for it. */
  private async op<T>(run: () => Promise<T>): Promise<T> {
    this.ops.add();
    try {
      return await run();
    } finally {
      this.ops.remove();
    }
  }

  /** Whether `part` (a sink key or `checkpoint`) is failing; reports a change through onFailing. */
  private setFailing(part: string, failing: boolean): void {
    if (this.failing.has(part) === failing) return;
    if (failing) this.failing.add(part);
    else this.failing.delete(part);
    this.opts.onFailing?.([...this.failing]);
  }

  /** Counts a failure of `part` and waits before retry `attempt + 1` (a growing delay); close() cuts the wait short. */
  private retryAfter(part: string, err: Error, attempt: number): Promise<void> {
    this.perPart.get(part)?.failures.inc();
    this.setFailing(part, true);
    this.opts.onError?.(err, attempt + 1);
    const base = this.opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    const ms = Math.min(base * 2 ** attempt, this.opts.maxRetryDelayMs ?? DEFAULT_MAX_RETRY_DELAY_MS);
    return new Promise((resolve) => {
      const wait = {
        timer: setTimeout(() => {
          this.waits.delete(wait);
          resolve();
        }, ms),
        done: resolve,
      };
      this.waits.add(wait);
    });
  }

  /**
   * Starts the next group at the end of this turn of the event loop (setImmediate) when the write stage
   * is free: every request that the turn's reads bring (a burst of `Record` calls, several streams'
   * batches) goes into one group, instead of the first alone. Writes of small groups are synchronous
   * once the disk is quick (src/backends/quick-writes.ts): started at once, each call would be a
   * group of its own, written and committed before the next call is even read.
   */
  private nextSoon(): void {
    if (this.nextDue || this.writing !== null || this.written !== null) return;
    this.nextDue = true;
    setImmediate(() => {
      this.nextDue = false;
      this.next();
    });
  }

  /** Starts writing the next group when the write stage is free and nothing written waits for a commit. */
  private next(): void {
    if (this.closed || this.writing !== null || this.written !== null || this.committing?.rotated === true) return;
    if (this.queue.length === 0) return;
    if (this.queue[0].reopen !== undefined) {
      // A commit still under way carries the old positions: the new ones are committed after it.
      if (this.committing !== null) return;
      const req = this.queue.shift() as Request;
      this.writing = [req];
      void this.reopenSinks(req);
      return;
    }
    // Take whole requests up to maxGroupBytes (always at least one), up to a reopen: a batch is never split.
    let take = 0;
    let bytes = 0;
    while (
      take < this.queue.length &&
      this.queue[take].reopen === undefined &&
      (take === 0 || bytes + this.queue[take].data.length <= this.maxGroupBytes)
    ) {
      bytes += this.queue[take].data.length;
      take++;
    }
    const group = this.queue.splice(0, take);
    this.writing = group;
    this.queued.remove(bytes);
    this.opts.metrics?.pendingBytes.set(this.queued.size);
    const parts: Buffer[] = [];
    const seqs = new Map<string, number>();
    for (const req of group) {
      if (req.data.length > 0) parts.push(req.data);
      if (req.completes !== undefined) seqs.set(req.completes.key, req.completes.seq);
    }
    const chunk = parts.length === 0 ? null : parts.length === 1 ? parts[0] : Buffer.concat(parts);
    void this.write(group, chunk, seqs);
  }

  /**
   * Writes the group to every sink, then hands it to the commit stage. A failure retries the same sink
   * (earlier ones already hold the data), with a growing delay, until it works or the writer closes:
   * the queue waits behind it, so nothing after a failed group is written before it.
   */
  private async write(group: Request[], chunk: Buffer | null, seqs: Map<string, number>): Promise<void> {
    const positions = new Map<string, SinkPosition>();
    let attempt = 0;
    let writtenFromMs: number | undefined;
    for (let i = 0; chunk !== null && i < this.sinks.length; ) {
      const sink = this.sinks[i];
      try {
        const began = performance.now();
        positions.set(sink.key, await this.op(() => sink.write(chunk)));
        const part = this.perPart.get(sink.key);
        part?.writeSeconds.observe((performance.now() - began) / 1000);
        part?.writtenBytes.inc(chunk.length);
        writtenFromMs ??= began;
        this.setFailing(sink.key, false);
        i++;
      } catch (err) {
        if (this.closed) return; // close() has already failed this group
        if (err instanceof SinkNewFileError) {
          await this.commitNewFile(sink.key, err.position);
          if (this.closed) return;
          continue;
        }
        await this.retryAfter(sink.key, err as Error, attempt++);
      }
      if (this.closed) return;
    }
    this.writing = null;
    // A sink whose file is not the one the last write ended in has rotated (the first write after a
    // start counts as one: which file the committed position is in is not known here).
    let rotated = false;
    for (const [key, pos] of positions) {
      if (this.fileOf.get(key) !== pos.ino) rotated = true;
      this.fileOf.set(key, pos.ino);
    }
    this.written = { group, writtenFromMs: writtenFromMs ?? performance.now(), seqs, positions, rotated };
    this.startCommit();
  }

  /**
   * Commits where a sink's new active file starts (SinkNewFileError), after the commit under way (which
   * names the old file, and must not land after it); retried as a commit is.
   */
  private async commitNewFile(key: string, position: SinkPosition): Promise<void> {
    while (this.committing !== null && !this.closed) await this.commitRun;
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this.op(() => this.commitToCheckpoint({ seqs: new Map(), positions: new Map([[key, position]]) }));
        this.setFailing(CHECKPOINT_PART, false);
        this.fileOf.set(key, position.ino);
        return;
      } catch (err) {
        if (!this.closed) await this.retryAfter(CHECKPOINT_PART, err as Error, attempt);
      }
    }
  }

  /**
   * Reopens every sink, then commits their new positions (retried as a commit is: nothing is written
   * before it lands), then answers `req` and lets the next group be written.
   */
  private async reopenSinks(req: Request): Promise<void> {
    const positions = req.reopen as Map<string, SinkPosition>;
    let failure: Error | undefined;
    for (const sink of this.sinks) {
      try {
        const pos = await this.op(() => sink.reopen());
        positions.set(sink.key, pos);
        this.fileOf.set(sink.key, pos.ino);
      } catch (err) {
        failure ??= err as Error;
      }
      if (this.closed) return; // close() has already answered it
    }
    for (let attempt = 0; positions.size > 0; attempt++) {
      try {
        await this.op(() => this.commitToCheckpoint({ seqs: new Map(), positions }));
        this.setFailing(CHECKPOINT_PART, false);
        break;
      } catch (err) {
        if (!this.closed) await this.retryAfter(CHECKPOINT_PART, err as Error, attempt);
      }
      if (this.closed) return;
    }
    if (this.closed) return;
    this.writing = null;
    this.answer([req], failure);
    this.next();
  }

  /** Moves the written group into the commit stage when it is free; the write stage may then go on. */
  private startCommit(): void {
    if (this.closed || this.committing !== null || this.written === null) return;
    const job = this.written;
    this.written = null;
    this.committing = job;
    this.commitRun = this.commit(job);
    this.next();
  }

  /**
   * Commits `job`, then acknowledges its requests. A failure retries the same commit, with a growing
   * delay: nothing written after it is committed before it. A commit that lands after close() began
   * still acknowledges its group; one that fails then gives up.
   */
  private async commit(job: CommitJob): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        // Before the checkpoint line (a group another sidecar may have cut must not reach its
        // checkpoint) and again before the ack (the commit itself may have spanned the pause).
        await this.confirmIfPaused(job);
        const began = performance.now();
        await this.op(() => this.commitToCheckpoint({ seqs: job.seqs, positions: job.positions }));
        this.opts.metrics?.commitSeconds.observe((performance.now() - began) / 1000);
        this.opts.metrics?.checkpointBytes.set(this.checkpoint.sizeBytes);
        await this.confirmIfPaused(job);
        this.setFailing(CHECKPOINT_PART, false);
        break;
      } catch (err) {
        if (!this.closed) await this.retryAfter(CHECKPOINT_PART, err as Error, attempt);
        if (this.closed) return this.finishCommit(job, new WriterClosedError());
      }
    }
    this.finishCommit(job);
    this.startCommit();
    this.next();
  }

  /** confirmAfterPause, when the group's write and commit so far took PAUSE_CHECK_MS or more. */
  private async confirmIfPaused(job: CommitJob): Promise<void> {
    const confirm = this.opts.confirmAfterPause;
    if (confirm === undefined) return;
    if (performance.now() - job.writtenFromMs >= (this.opts.pauseCheckMs ?? PAUSE_CHECK_MS)) await confirm();
  }

  /** Answers the group of the commit stage, once: by its commit, or by close() giving up on it. */
  private finishCommit(job: CommitJob, err?: Error): void {
    if (this.committing !== job) return;
    this.committing = null;
    this.answer(job.group, err);
  }
}

/** Waits for `p`, at most `ms`. */
async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
