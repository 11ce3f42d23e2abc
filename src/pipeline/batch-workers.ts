// Worker threads for the CPU-heavy stage of StreamEvents batches (read, validate, match, format:
// src/pipeline/evaluate-batch.ts). With one busy control plane the event loop is at 100%, that stage
// more than half of it, while the second core waits; in a worker it runs beside gRPC, the writes and
// the acks.
//
// Each worker answers its jobs in the order it got them. A worker that dies (it should not: the stage
// never throws on bad input) is replaced and sent its unanswered jobs again, each with the rules it was
// first sent with; a job that has killed two workers is evaluated on the event loop instead. A worker
// that cannot be replaced, or dies more than MAX_DEATHS times a minute, is given up: its jobs are
// evaluated on the event loop and the pool says it is not available. So every job is answered, exactly
// as the event loop would have answered it.
//
// Threads start the first time they are needed (start(), or the first run()), not with the process: a
// sidecar under light load never needs them, and an idle thread holds ~17 MB. A started thread warms
// up and compiles the rules it was sent first, then says it is `warm`; until then callers that can
// evaluate elsewhere should (see `warm`).
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { EventLoopUtilization } from 'node:perf_hooks';
import type { AccessAudit, CompiledRules } from '../rules';
import { RecordDateFormatter } from '../events/rfc3339';
import { BatchEvaluator, type BatchJob, type EvaluatedBatch, type Rejection } from './evaluate-batch';

export interface WorkerSettings {
  /** A fixed UTC offset for record dates, in minutes; undefined: the machine's local time zone. */
  utcOffsetMinutes?: number;
}

export type ToWorker =
  | { type: 'rules'; audits: readonly AccessAudit[]; skipDefaultTypes: readonly string[] }
  | { type: 'batch'; id: number; job: BatchJob };

/** A job's answer, or `warm`: the thread has warmed up and compiled the first rules it was sent. */
export type FromWorker = JobAnswer | { type: 'warm' };

export interface JobAnswer {
  type: 'answer';
  id: number;
  data: Uint8Array;
  recorded: number;
  skipped: number;
  rejected: Rejection[];
  failure?: string;
}

export interface BatchWorkersOptions extends WorkerSettings {
  /** Called when a worker dies and is replaced. */
  onWorkerExit?: (err: Error) => void;
}

/** Attempts of one job in workers before it is evaluated on the event loop. */
const MAX_WORKER_ATTEMPTS = 2;
/** Deaths of one worker within DEATH_WINDOW_MS after which it is not replaced again. */
const MAX_DEATHS = 5;
const DEATH_WINDOW_MS = 60_000;

interface PendingJob {
  id: number;
  job: BatchJob;
  rules: CompiledRules;
  attempts: number;
  done: (out: EvaluatedBatch) => void;
}

class BatchWorker {
  private worker: Worker;
  /** The current thread has said it is warm (see FromWorker). */
  warm = false;
  /** The thread's event loop utilisation at the last utilization() call. */
  private lastUse: EventLoopUtilization | undefined;
  private readonly pending: PendingJob[] = [];
  /** The rules the current thread was last sent. */
  private sentRules: CompiledRules | undefined;
  private closing = false;
  /** When it died recently, for MAX_DEATHS. */
  private deaths: number[] = [];
  /** Given up on: everything is evaluated on the event loop. */
  failed = false;

  constructor(
    private readonly settings: WorkerSettings,
    private readonly onExit: (err: Error) => void,
    private readonly fallback: (p: PendingJob) => void,
    rules: CompiledRules,
  ) {
    this.worker = this.spawn();
    this.sendRules(rules);
  }

  /** Jobs sent and not answered yet. */
  get load(): number {
    return this.pending.length;
  }

  run(p: PendingJob): void {
    if (this.failed) return this.fallback(p);
    this.pending.push(p);
    this.post(p);
  }

  /** Share of the time the thread was busy since the last call (0 at the first call after a start). */
  utilization(): number {
    const now = this.worker.performance.eventLoopUtilization();
    const used =
      this.lastUse === undefined ? 0 : this.worker.performance.eventLoopUtilization(now, this.lastUse).utilization;
    this.lastUse = now;
    return used;
  }

  /** For tests: the thread, to stop it as a crash would. */
  get thread(): Worker {
    return this.worker;
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }

  private spawn(): Worker {
    const worker = new Worker(path.join(__dirname, 'batch-worker.js'), { workerData: this.settings });
    // Set when a reply could not be read: its job is still first in `pending`, so the thread's later
    // replies would not match; they are dropped, and the jobs are sent again to the replacement.
    let dead = false;
    worker.on('message', (msg: FromWorker) => {
      if (dead) return;
      if (msg.type === 'warm') {
        if (worker === this.worker) this.warm = true;
        return;
      }
      const p = this.pending.shift();
      // Replies come in the order of the jobs: anything else is a bug worth stopping on.
      if (p === undefined || p.id !== msg.id) throw new Error(`batch worker answered job ${msg.id}, expected ${p?.id}`);
      const data = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
      const out: EvaluatedBatch = { data, recorded: msg.recorded, skipped: msg.skipped, rejected: msg.rejected };
      if (msg.failure !== undefined) out.failure = msg.failure;
      p.done(out);
    });
    let failure: Error | undefined;
    worker.on('error', (err) => (failure = err));
    // A reply that cannot be read leaves its job unanswered: end the thread, and the job is sent again.
    worker.on('messageerror', (err) => {
      failure = err;
      dead = true;
      void worker.terminate();
    });
    worker.on('exit', (code) => {
      if (this.closing || worker !== this.worker) return;
      this.onExit(failure ?? new Error(`batch worker exited with code ${code}`));
      this.restart();
    });
    return worker;
  }

  private restart(): void {
    const rules = this.sentRules;
    this.sentRules = undefined;
    this.warm = false;
    this.lastUse = undefined;
    const now = Date.now();
    this.deaths = [...this.deaths.filter((t) => now - t < DEATH_WINDOW_MS), now];
    try {
      if (this.deaths.length > MAX_DEATHS)
        throw new Error(`batch worker died ${this.deaths.length} times within a minute`);
      this.worker = this.spawn();
    } catch (err) {
      this.failed = true;
      this.onExit(err instanceof Error ? err : new Error(String(err)));
      for (const p of this.pending.splice(0)) this.fallback(p);
      return;
    }
    // The replacement warms up on the rules the dead thread last had, jobs or not: a thread says it
    // is warm only after its first rules, and an idle one would otherwise never be sent any.
    if (rules !== undefined) this.sendRules(rules);
    for (const p of this.pending.splice(0)) {
      p.attempts++;
      if (p.attempts >= MAX_WORKER_ATTEMPTS) {
        this.fallback(p);
      } else {
        this.pending.push(p);
        this.post(p);
      }
    }
  }

  private sendRules(rules: CompiledRules): void {
    const msg: ToWorker = { type: 'rules', audits: rules.audits, skipDefaultTypes: rules.skipDefaultTypes };
    this.worker.postMessage(msg);
    this.sentRules = rules;
  }

  private post(p: PendingJob): void {
    if (p.rules !== this.sentRules) this.sendRules(p.rules);
    // A copy the worker can own: the request buffer may be a slice of a larger one, and a view is
    // cloned with its whole ArrayBuffer. The original stays here in case the job must be sent again.
    const bytes = new Uint8Array(p.job.bytes);
    const msg: ToWorker = { type: 'batch', id: p.id, job: { ...p.job, bytes } };
    this.worker.postMessage(msg, [bytes.buffer]);
  }
}

export class BatchWorkers {
  private readonly workers: BatchWorker[] = [];
  private nextId = 1;
  private closed = false;
  /** start() failed to make a thread: nothing goes to workers. */
  private unstartable = false;

  constructor(
    private readonly count: number,
    private readonly opts: BatchWorkersOptions = {},
  ) {}

  /** Starts the threads, each sent `rules` to compile while it warms up; a no-op once started. */
  start(rules: CompiledRules): void {
    if (this.closed || this.workers.length > 0 || this.unstartable) return;
    const offset = this.opts.utcOffsetMinutes;
    const fallback = (p: PendingJob): void => this.evaluateHere(p);
    try {
      for (let i = 0; i < this.count; i++) {
        this.workers.push(
          new BatchWorker({ utcOffsetMinutes: offset }, (err) => this.opts.onWorkerExit?.(err), fallback, rules),
        );
      }
    } catch (err) {
      // No thread could start (out of memory, a resource limit): say so once and stay on the event loop.
      this.unstartable = true;
      void Promise.all(this.workers.splice(0).map((w) => w.close()));
      this.opts.onWorkerExit?.(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /**
   * Evaluates `job` against `rules` in the least busy worker (starting the threads if need be); `done`
   * runs on the event loop with the result. Jobs of one worker are answered in order; across workers,
   * callers order results themselves. A job sent to a thread that is not warm yet waits for it.
   */
  run(job: BatchJob, rules: CompiledRules, done: (out: EvaluatedBatch) => void): void {
    if (this.closed) throw new Error('batch workers are closed');
    this.start(rules);
    const p: PendingJob = { id: this.nextId++, job, rules, attempts: 0, done };
    // The least busy warm thread; else any live one (none warm yet: tests, a first start); else a
    // given-up one, which evaluates on the event loop; with no thread at all (none could start), here.
    const live = this.workers.filter((w) => !w.failed);
    const pool = [live.filter((w) => w.warm), live, this.workers].find((ws) => ws.length > 0);
    if (pool === undefined) return this.evaluateHere(p);
    pool.reduce((best, w) => (w.load < best.load ? w : best)).run(p);
  }

  /** Evaluates a job on the event loop, exactly as a worker would have. */
  private evaluateHere(p: PendingJob): void {
    const offset = this.opts.utcOffsetMinutes;
    p.done(
      new BatchEvaluator(
        p.rules,
        new RecordDateFormatter(offset === undefined ? undefined : () => offset),
      ).evaluateOrReject(p.job),
    );
  }

  /** False once every worker has been given up on (see MAX_DEATHS): callers evaluate on the event loop. */
  get available(): boolean {
    return !this.closed && !this.unstartable && (this.workers.length === 0 || this.workers.some((w) => !w.failed));
  }

  /** The threads' busy shares since the last call, summed (0 to the thread count; 0 before they start). */
  utilization(): number {
    let sum = 0;
    for (const w of this.workers) if (!w.failed) sum += w.utilization();
    return sum;
  }

  /** Some thread is started, warm and not given up on: a job sent now is answered without a start-up wait. */
  get warm(): boolean {
    return !this.closed && this.workers.some((w) => w.warm && !w.failed);
  }

  /** For tests: the worker threads. */
  get threads(): Worker[] {
    return this.workers.map((w) => w.thread);
  }

  /** Stops the threads; jobs not answered yet are never answered. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
