// The load generator: a separate process, so that its CPU is not the sidecar's and can be shown to
// never be the limit. Everything it sends is encoded before the clock starts (protobufjs, cached on
// disk between scenarios). Streams go through grpc-js with identity serializers, acks decoded by hand
// (a few varints); Record calls go through a bare HTTP/2 gRPC client (see UnaryOverHttp2 for why).
// It behaves like a control plane: identify, resume from the acked sequence, keep `window` batches
// unacknowledged in flight.
//
// Protocol with bench/run.ts: argv[2] is a JSON LoadSpec. The generator connects, identifies, sends
// its warm-up, then prints one JSON line {"ready": ...} and waits for "go" on stdin. It then runs the
// measured phase and prints {"result": LoadResult} and exits. Stdin closing means the orchestrator is
// gone: it exits at once.
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import {
  cachedStream,
  type DateMode,
  encodeIdentify,
  encodeRecord,
  loadCodec,
  RECORD_PATH,
  STREAM_EVENTS_PATH,
} from './events';

interface Common {
  address: string;
  /** Folder where encoded streams are cached across scenarios. */
  cacheDir: string;
  /** The measured phase stops sending after this long; what is in flight is still awaited. */
  maxSeconds: number;
  /** How the events are dated (events.ts): per event, or whole seconds shared by 1,000 events. */
  dates: DateMode;
  /** Streams over TLS, trusting this certificate (the sidecar's, self-signed); absent, plaintext. */
  caFile?: string;
}

/** Closed loop: `streams` control planes (one connection and identifier each) sending as fast as acks allow. */
export interface StreamSpec extends Common {
  mode: 'stream';
  streams: number;
  /** Events per stream in the measured phase, after the warm-up. */
  eventsPerStream: number;
  warmupEvents: number;
  batchSize: number;
  window: number;
}

/** Open loop: one stream offered `eventsPerSecond` for `seconds`, batches on a fixed schedule. */
export interface RateSpec extends Common {
  mode: 'rate';
  eventsPerSecond: number;
  seconds: number;
  warmupEvents: number;
  batchSize: number;
  window: number;
}

/** `Record` unary calls, `concurrency` outstanding at all times. */
export interface UnarySpec extends Common {
  mode: 'unary';
  calls: number;
  warmupCalls: number;
  concurrency: number;
}

export type LoadSpec = StreamSpec | RateSpec | UnarySpec;

export interface Percentiles {
  count: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/** A stall: when its first slow ack arrived (ms after the measured phase started), the worst latency, how many acks it delayed. */
export interface SlowAck {
  atMs: number;
  latencyMs: number;
  acks: number;
}

export interface LoadResult {
  /** Events (calls for unary) acknowledged in the measured phase. */
  measured: number;
  elapsedMs: number;
  /** Ack latency in ms: from sending a batch (from its scheduled time in rate mode) to its ack. */
  latencyMs: Percentiles;
  /** The worst stalls of the measured phase, to line them up with what the server did then (rotations). */
  slowest: SlowAck[];
  /** This process's CPU (user + system, all threads) during the measured phase. */
  cpuMs: number;
  /** Per stream: the last sequence sent and the last sequence acknowledged (cumulative). Unary: calls started and answered. */
  sent: number[];
  acked: number[];
  /** Unary only: 1-based sequences of calls that failed (their record may or may not exist). */
  failedSeqs: number[];
  recorded: number;
  skipped: number;
  duplicates: number;
  rejected: number;
  errors: string[];
  /** Time spent encoding or loading the batches before anything was sent. */
  prepareMs: number;
  rssMb: number;
  /** Rate mode: batches that had to wait for the window (the sidecar fell behind the offered load). */
  lateBatches: number;
}

const ZONE = 'bench';

function credentialsOf(spec: Common): grpc.ChannelCredentials {
  return spec.caFile === undefined
    ? grpc.credentials.createInsecure()
    : grpc.credentials.createSsl(fs.readFileSync(spec.caFile));
}
/** After the measured phase stops sending, in-flight acks get this long before the run is declared stuck. */
const DRAIN_GRACE_MS = 20_000;
const identity = (b: Buffer): Buffer => b;
/**
 * A control plane would not pay for retry buffering or channelz bookkeeping on a loopback channel
 * to its sidecar, and the generator must stay cheap.
 */
export const CLIENT_OPTIONS: grpc.ChannelOptions = { 'grpc.enable_retries': 0, 'grpc.enable_channelz': 0 };

// ---- acks: StreamEventsResponse, decoded field by field (no objects beyond the result) ----

interface Ack {
  ackedSeq: number;
  firstSeq: number;
  recorded: number;
  skipped: number;
  duplicates: number;
  rejected: number;
}

function decodeAck(b: Buffer): Ack {
  const ack: Ack = { ackedSeq: 0, firstSeq: 0, recorded: 0, skipped: 0, duplicates: 0, rejected: 0 };
  let at = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = b[at++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  };
  while (at < b.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 2) {
      const len = varint();
      at += len;
      if (field === 5) ack.rejected++;
      continue;
    }
    if (wire !== 0) throw new Error(`unexpected wire type ${wire} in an ack`);
    const v = varint();
    if (field === 1) ack.ackedSeq = v;
    else if (field === 2) ack.firstSeq = v;
    else if (field === 3) ack.recorded = v;
    else if (field === 4) ack.skipped = v;
    else if (field === 6) ack.duplicates = v;
  }
  return ack;
}

export function percentiles(samples: Float64Array | readonly number[]): Percentiles {
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  const at = (q: number): number => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]);
  return { count: n, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: n === 0 ? 0 : sorted[n - 1] };
}

/**
 * The worst stalls of the measured phase: acks at or above the p99, grouped into episodes (acks less
 * than 100 ms apart belong to one stall, which delays every batch in flight at once), the `n` longest
 * episodes in time order.
 */
function slowest(latencies: readonly number[], times: readonly number[], start: number, n = 8): SlowAck[] {
  const p99 = percentiles(latencies).p99;
  const slow = latencies
    .map((_, i) => i)
    .filter((i) => latencies[i] >= p99)
    .sort((a, b) => times[a] - times[b]);
  const episodes: Array<SlowAck & { lastMs: number }> = [];
  for (const i of slow) {
    const atMs = times[i] - start;
    const last = episodes[episodes.length - 1];
    if (last !== undefined && atMs - last.lastMs < 100) {
      last.latencyMs = Math.max(last.latencyMs, latencies[i]);
      last.acks++;
      last.lastMs = atMs;
    } else {
      episodes.push({ atMs, latencyMs: latencies[i], acks: 1, lastMs: atMs });
    }
  }
  return episodes
    .sort((a, b) => b.latencyMs - a.latencyMs)
    .slice(0, n)
    .sort((a, b) => a.atMs - b.atMs)
    .map(({ atMs, latencyMs, acks }) => ({ atMs, latencyMs, acks }));
}

// ---- the control plane's stream ----

interface Totals {
  recorded: number;
  skipped: number;
  duplicates: number;
  rejected: number;
}

/**
 * A stream's batches: batch k (0-based, k < count) holds sequences k*batchSize+1... The benchmark's
 * are encoded before the clock starts; the soak's, too many to hold, are encoded as they are sent.
 */
export interface BatchSource {
  readonly count: number;
  get(batch: number): Buffer;
}

export function batchesOf(batches: Buffer[]): BatchSource {
  return { count: batches.length, get: (k) => batches[k] };
}

/**
 * One control plane's stream over its batches (batch k holds sequences k*batchSize+1...).
 * `limit` is how many batches may be sent so far: the warm-up's, then all of them, then (time is up)
 * whatever was sent. `schedule`, in rate mode, is when batch k may be sent at the earliest.
 */
export class StreamRun {
  private readonly call: grpc.ClientDuplexStream<Buffer, Buffer>;
  private next = -1;
  private inflight = 0;
  private limit = 0;
  ackedSeq = 0;
  sentSeq = 0;
  /** Batches at or after this index are measured (set at "go"). */
  measuredFrom = Infinity;
  readonly sendTimes: Float64Array;
  readonly latencies: number[] = [];
  /** When each of `latencies` was taken (performance.now()). */
  readonly ackTimes: number[] = [];
  lastAckAt = 0;
  lateBatches = 0;
  /** Rate mode: the batch that was due when the window was full. */
  private heldBack = -1;
  error: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private waiters: Array<() => void> = [];
  schedule: ((batch: number) => number) | undefined;

  constructor(
    client: grpc.Client,
    readonly index: number,
    private readonly batches: BatchSource,
    /** Events in the whole stream: sequences 1..total. */
    private readonly total: number,
    private readonly batchSize: number,
    private readonly window: number,
    private readonly totals: Totals,
    identify: Buffer,
  ) {
    this.sendTimes = new Float64Array(batches.count);
    this.call = client.makeBidiStreamRequest<Buffer, Buffer>(STREAM_EVENTS_PATH, identity, identity);
    this.call.on('data', (b: Buffer) => this.onAck(decodeAck(b)));
    this.call.on('error', (err: Error) => this.fail(`stream ${index}: ${err.message}`));
    this.call.on('end', () => {
      if (!this.idle())
        this.fail(`stream ${index}: ended by the server with ${this.sentSeq - this.ackedSeq} events unacknowledged`);
    });
    this.call.write(identify);
  }

  /** Resolves once everything allowed by `limit` is sent and acknowledged (or the stream failed). */
  settled(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  setLimit(limit: number): void {
    this.limit = Math.min(limit, this.batches.count);
    this.pump();
    this.wake();
  }

  /** Stops sending: what is in flight is still awaited. */
  stopSending(): void {
    if (this.next >= 0) this.limit = Math.min(this.limit, this.next);
    clearTimeout(this.timer);
    this.wake();
  }

  end(): void {
    clearTimeout(this.timer);
    if (this.error === undefined) this.call.end();
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.call.cancel();
  }

  private idle(): boolean {
    return this.error !== undefined || (this.next >= 0 && this.next >= this.limit && this.inflight === 0);
  }

  private wake(): void {
    if (!this.idle()) return;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private fail(message: string): void {
    if (this.error !== undefined) return;
    this.error = message;
    clearTimeout(this.timer);
    this.wake();
  }

  private pump(): void {
    if (this.next < 0 || this.error !== undefined) return;
    const now = performance.now();
    while (this.next < this.limit && this.inflight < this.window) {
      const due = this.schedule?.(this.next) ?? now;
      if (due > now) {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.pump(), due - now);
        return;
      }
      if (this.next === this.heldBack && this.next >= this.measuredFrom) this.lateBatches++;
      this.sendTimes[this.next] = this.schedule === undefined ? now : due;
      this.call.write(this.batches.get(this.next));
      this.sentSeq = Math.min(this.total, (this.next + 1) * this.batchSize);
      this.next++;
      this.inflight++;
    }
    // Due, but the window is full: the server is behind the offered load (timer jitter does not count).
    if (this.schedule !== undefined && this.next < this.limit && this.schedule(this.next) <= now)
      this.heldBack = this.next;
  }

  private onAck(ack: Ack): void {
    if (this.next === -1) {
      // The resume point: batches are aligned on batchSize, so resend from the batch holding ackedSeq + 1
      // (its already-acked events come back as duplicates, never written twice).
      this.ackedSeq = ack.ackedSeq;
      this.next = Math.floor(ack.ackedSeq / this.batchSize);
      this.pump();
      this.wake();
      return;
    }
    const now = performance.now();
    this.inflight--;
    this.ackedSeq = ack.ackedSeq;
    this.lastAckAt = now;
    const batch = Math.floor((ack.firstSeq - 1) / this.batchSize);
    if (batch >= this.measuredFrom) {
      this.latencies.push(now - this.sendTimes[batch]);
      this.ackTimes.push(now);
    }
    this.totals.recorded += ack.recorded;
    this.totals.skipped += ack.skipped;
    this.totals.duplicates += ack.duplicates;
    this.totals.rejected += ack.rejected;
    this.pump();
    this.wake();
  }

  /** Resolves once the resume point has arrived. */
  async identified(): Promise<void> {
    while (this.next < 0 && this.error === undefined) await new Promise((r) => setTimeout(r, 5));
  }

  get nextBatch(): number {
    return this.next;
  }
}

function waitForGo(): Promise<void> {
  return new Promise((resolve) => {
    let buf = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => {
      buf += d;
      if (buf.includes('go\n')) resolve();
    });
    // The orchestrator is gone (killed, or its time limit): nothing is waiting for a result.
    process.stdin.on('end', () => process.exit(3));
  });
}

function emit(obj: unknown): Promise<void> {
  return new Promise((resolve) => process.stdout.write(`${JSON.stringify(obj)}\n`, () => resolve()));
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

function withDeadline(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
  ]).finally(() => clearTimeout(timer));
}

async function runStreams(spec: StreamSpec | RateSpec): Promise<LoadResult> {
  const codec = loadCodec();
  const streams = spec.mode === 'stream' ? spec.streams : 1;
  const measuredPerStream =
    spec.mode === 'stream' ? spec.eventsPerStream : Math.round(spec.eventsPerSecond * spec.seconds);
  const total = spec.warmupEvents + measuredPerStream;
  const t0 = performance.now();
  const encoded = Array.from({ length: streams }, (_, s) =>
    cachedStream(spec.cacheDir, codec, s, total, spec.batchSize, spec.dates),
  );
  const prepareMs = performance.now() - t0;
  const totals: Totals = { recorded: 0, skipped: 0, duplicates: 0, rejected: 0 };
  // One connection per control plane, as eight CP instances would have (grpc-js would otherwise share one).
  const clients = Array.from(
    { length: streams },
    () =>
      new grpc.Client(spec.address, credentialsOf(spec), {
        ...CLIENT_OPTIONS,
        'grpc.use_local_subchannel_pool': 1,
      }),
  );
  const runs = encoded.map((batches, s) => {
    return new StreamRun(
      clients[s],
      s,
      batchesOf(batches),
      total,
      spec.batchSize,
      spec.window,
      totals,
      encodeIdentify(codec, ZONE, `cp-${s}`),
    );
  });
  const setupErrors: string[] = [];
  const errors = (): string[] => [...setupErrors, ...runs.flatMap((r) => (r.error ? [r.error] : []))];
  const finish = (): void => {
    for (const r of runs) r.end();
    for (const c of clients) c.close();
  };

  if (
    !(await withDeadline(
      Promise.all(runs.map((r) => r.identified())).then(() => undefined),
      30_000,
    ))
  ) {
    setupErrors.push('no resume point from the server in 30 s');
  }
  const warmupBatches = Math.ceil(spec.warmupEvents / spec.batchSize);
  for (const r of runs) r.setLimit(warmupBatches);
  const warmed = await withDeadline(
    Promise.all(runs.map((r) => r.settled())).then(() => undefined),
    60_000,
  );
  if (!warmed) setupErrors.push('warm-up did not finish in 60 s');
  const warmAcked = runs.map((r) => r.ackedSeq);
  await emit({ ready: { prepareMs, warmAcked, errors: errors() } });
  await waitForGo();

  // Counts from here on are the measured phase's.
  Object.assign(totals, { recorded: 0, skipped: 0, duplicates: 0, rejected: 0 });
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  for (const r of runs) {
    r.measuredFrom = r.nextBatch;
    if (spec.mode === 'rate') {
      const intervalMs = (spec.batchSize / spec.eventsPerSecond) * 1000;
      const first = r.nextBatch;
      r.schedule = (k) => start + (k - first) * intervalMs;
    }
    r.setLimit(Infinity);
  }
  const stopAt = setTimeout(() => {
    for (const r of runs) r.stopSending();
  }, spec.maxSeconds * 1000);
  const allDone = Promise.all(runs.map((r) => r.settled())).then(() => undefined);
  const inTime = await withDeadline(allDone, spec.maxSeconds * 1000 + DRAIN_GRACE_MS);
  clearTimeout(stopAt);
  const end = Math.max(...runs.map((r) => r.lastAckAt), start);
  const cpuMs = cpuMsSince(cpu0);
  const extraErrors = inTime ? [] : [`acks still missing ${DRAIN_GRACE_MS / 1000} s after sending stopped`];
  if (inTime) finish();
  else for (const r of runs) r.cancel();
  const latencies = runs.flatMap((r) => r.latencies);
  const ackTimes = runs.flatMap((r) => r.ackTimes);
  return {
    measured: runs.reduce((sum, r, s) => sum + r.ackedSeq - warmAcked[s], 0),
    elapsedMs: end - start,
    latencyMs: percentiles(latencies),
    slowest: slowest(latencies, ackTimes, start),
    cpuMs,
    sent: runs.map((r) => r.sentSeq),
    acked: runs.map((r) => r.ackedSeq),
    failedSeqs: [],
    ...totals,
    errors: [...errors(), ...extraErrors],
    prepareMs,
    rssMb: process.memoryUsage().rss / 2 ** 20,
    lateBatches: runs.reduce((sum, r) => sum + r.lateBatches, 0),
  };
}

// ---- unary calls ----

/**
 * gRPC unary calls straight on node:http2 (gRPC's length-prefixed framing, status in the trailers)
 * rather than through grpc-js. Measured here, grpc-js's client spends ~0.5 ms of CPU per unary call
 * (resolver, picker, filters, interceptors, metadata): at concurrency 32 the generator saturated its
 * own core near 1,500 calls/s, against both servers alike. This client costs ~0.2 ms a call. Streams
 * keep grpc-js: spread over a batch of 100 events its cost is small.
 */
class UnaryOverHttp2 {
  private readonly session: http2.ClientHttp2Session;
  private sessionError: Error | undefined;

  constructor(address: string) {
    this.session = http2.connect(`http://${address}`);
    this.session.on('error', (err) => (this.sessionError = err));
  }

  /** A request message in gRPC's framing: a 0 (uncompressed) byte, the length (uint32 BE), the message. */
  static frame(message: Buffer): Buffer {
    const framed = Buffer.allocUnsafe(5 + message.length);
    framed[0] = 0;
    framed.writeUInt32BE(message.length, 1);
    message.copy(framed, 5);
    return framed;
  }

  /** Calls `path` with a framed request; `done` gets the reply message, or an error naming the gRPC status. */
  call(path: string, framed: Buffer, done: (err: Error | null, reply?: Buffer) => void): void {
    if (this.sessionError !== undefined) {
      done(this.sessionError);
      return;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
    } catch (err) {
      done(err as Error);
      return;
    }
    const chunks: Buffer[] = [];
    let status: string | undefined;
    let message = '';
    // A failed call may answer "trailers-only": the status then comes with the response headers.
    const onHeaders = (h: http2.IncomingHttpHeaders): void => {
      if (h['grpc-status'] === undefined) return;
      status = String(h['grpc-status']);
      message = decodeURIComponent(String(h['grpc-message'] ?? ''));
    };
    stream.on('response', onHeaders);
    stream.on('trailers', onHeaders);
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('error', (err: Error) => {
      status ??= 'stream error';
      message = err.message;
    });
    stream.on('close', () => {
      if (status === '0') return done(null, Buffer.concat(chunks).subarray(5));
      done(new Error(`grpc-status ${status ?? 'missing'}${message ? `: ${message}` : ''}`));
    });
    stream.end(framed);
  }

  close(): void {
    this.session.close();
  }
}

async function runUnary(spec: UnarySpec): Promise<LoadResult> {
  const codec = loadCodec();
  const t0 = performance.now();
  const total = spec.warmupCalls + spec.calls;
  const requests = Array.from({ length: total }, (_, i) =>
    UnaryOverHttp2.frame(encodeRecord(codec, i + 1, spec.dates)),
  );
  const prepareMs = performance.now() - t0;
  const client = new UnaryOverHttp2(spec.address);
  const latencies: number[] = [];
  const ackTimes: number[] = [];
  const failedSeqs: number[] = [];
  const errors: string[] = [];
  let recorded = 0;
  let skipped = 0;
  let started = 0;
  let answered = 0;
  let limit = 0;
  let measuring = false;
  let lastAnswerAt = 0;
  let outstanding = 0;
  let waiter: (() => void) | undefined;

  const launch = (): void => {
    while (outstanding < spec.concurrency && started < limit) {
      const seq = ++started;
      const sentAt = performance.now();
      const measured = measuring;
      outstanding++;
      client.call(RECORD_PATH, requests[seq - 1], (err, reply) => {
        outstanding--;
        answered++;
        lastAnswerAt = performance.now();
        if (err) {
          failedSeqs.push(seq);
          if (errors.length < 5) errors.push(`Record #${seq}: ${err.message}`);
        } else {
          // RecordResponse { audited = true } is the two bytes 08 01; false is empty.
          if (reply !== undefined && reply.length >= 2 && reply[0] === 0x08 && reply[1] === 1) recorded++;
          else skipped++;
          if (measured) {
            latencies.push(lastAnswerAt - sentAt);
            ackTimes.push(lastAnswerAt);
          }
        }
        launch();
        if (outstanding === 0 && started >= limit) waiter?.();
      });
    }
  };
  const phase = (upTo: number, ms: number): Promise<boolean> => {
    limit = Math.min(upTo, total);
    const done = new Promise<void>((resolve) => (waiter = resolve));
    launch();
    if (outstanding === 0) waiter!();
    return withDeadline(done, ms);
  };

  if (!(await phase(spec.warmupCalls, 60_000))) errors.push('warm-up did not finish in 60 s');
  const warmAnswered = answered;
  const warmFailed = failedSeqs.length;
  await emit({ ready: { prepareMs, warmAcked: [answered], errors } });
  await waitForGo();
  measuring = true;
  recorded = 0;
  skipped = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const stopAt = setTimeout(() => (limit = started), spec.maxSeconds * 1000);
  const inTime = await phase(total, spec.maxSeconds * 1000 + DRAIN_GRACE_MS);
  clearTimeout(stopAt);
  const cpuMs = cpuMsSince(cpu0);
  if (!inTime) errors.push(`calls still unanswered ${DRAIN_GRACE_MS / 1000} s after sending stopped`);
  client.close();
  return {
    measured: answered - warmAnswered - (failedSeqs.length - warmFailed),
    elapsedMs: lastAnswerAt - start,
    latencyMs: percentiles(latencies),
    slowest: slowest(latencies, ackTimes, start),
    cpuMs,
    sent: [started],
    acked: [answered],
    failedSeqs,
    recorded,
    skipped,
    duplicates: 0,
    rejected: 0,
    errors,
    prepareMs,
    rssMb: process.memoryUsage().rss / 2 ** 20,
    lateBatches: 0,
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as LoadSpec;
  const result = spec.mode === 'unary' ? await runUnary(spec) : await runStreams(spec);
  await emit({ result });
  process.exit(0);
}

if (require.main === module) {
  main().catch(async (err) => {
    await emit({ fatal: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exit(1);
  });
}
