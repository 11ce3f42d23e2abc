// The soak (`make soak`, issue 12): the real built sidecar for SOAK_SECONDS (default 600) under a
// steady, moderate load of every kind at once: control-plane streams, `Record` calls and AccessAudit
// changes through RuleService, with two rotating backends (one keeps every file, one has tight
// retention), SIGKILLed and restarted a few times. Then: every acknowledged event and every answered
// change exactly once in the full backend, the tight backend exactly the end of the full one with the
// files retention must keep, and the RSS of the last (longest) process flat between its first and
// last minute. Prints the figures; exits 1 when a check fails. docs/soak.md says more.
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { meshauditClients } from '../src/client/services';
import { checkExactlyOnce, checkRetainedTail } from './check';
import { baseRulesYaml, encodeBatch, encodeIdentify, encodeRecord, loadCodec, RECORD_PATH } from './events';
import { CLIENT_OPTIONS, percentiles, StreamRun } from './loadgen';
import { freePort, type SpawnedSidecar, spawnSidecar, writeSidecarConfig } from './sidecar';
import { judgeMemory, killTimesS, type MemoryJudgement, median, type RssSample } from './soak-plan';

const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
/** Control planes, one connection and identifier each, each offered EVENTS_PER_SECOND_PER_STREAM. */
const STREAMS = 4;
/** 4 x 2,000 = 8,000 events/s: a busy zone, well below what the sidecar sustains (a soak, not a benchmark). */
const EVENTS_PER_SECOND_PER_STREAM = 2000;
const BATCH_SIZE = 100;
/** Unacknowledged batches in flight per stream, as in the benchmark. */
const WINDOW = 8;
/** `Record` calls per second, at most RECORD_CONCURRENCY outstanding; their events are stream STREAMS's. */
const RECORD_CALLS_PER_SECOND = 20;
const RECORD_CONCURRENCY = 4;
/** One AccessAudit change (create, update, delete, in turn) every this many ms. */
const RULE_CHANGE_EVERY_MS = 3000;
/** The backend that keeps every file (the exactly-once count reads it) and the one with tight retention. */
const FULL = { folder: 'audit-all', rotation: { maxSizeMb: 4, maxRetainedFiles: 0, maxAgeDays: 0 } };
const TIGHT = { folder: 'audit-kept', rotation: { maxSizeMb: 1, maxRetainedFiles: 4, maxAgeDays: 0 } };
const RSS_EVERY_MS = 2000;
/** After the load's end, in-flight batches and calls get this long. */
const DRAIN_S = 60;
const CALL_DEADLINE_MS = 10_000;
const ZONE = 'soak';
const identity = (b: Buffer): Buffer => b;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function log(msg: string): void {
  process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** A sidecar process's life: its RSS samples and what its log says it did. */
interface Life {
  sidecar: SpawnedSidecar;
  startedAt: number;
  /** When it logged that it started (serving). */
  readyAt: number;
  endedAt: number;
  rss: RssSample[];
}

function vmRssMb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * One control plane: streams its events at a fixed rate (batch k is due at start + k x interval) and,
 * when the stream breaks (the sidecar was killed), reconnects, identifies and resends from the resume
 * point it is given, as src/client/audit-client.ts does.
 */
class ControlPlane {
  ackedSeq = 0;
  sentSeq = 0;
  /** Streams resumed after the first one, and attempts that failed before a resume point (the sidecar was down). */
  reconnects = 0;
  failedAttempts = 0;
  /** Resume points below what was already acknowledged: acknowledged events the sidecar forgot. */
  resumeRegressions = 0;
  readonly latencies: number[] = [];
  readonly errors: string[] = [];
  private run: StreamRun | undefined;
  private stopping = false;
  readonly totals = { recorded: 0, skipped: 0, duplicates: 0, rejected: 0 };

  constructor(
    private readonly client: grpc.Client,
    readonly index: number,
    private readonly total: number,
    private readonly schedule: (batch: number) => number,
  ) {}

  async go(): Promise<void> {
    const codec = loadCodec();
    const source = {
      count: Math.ceil(this.total / BATCH_SIZE),
      get: (k: number) =>
        encodeBatch(codec, this.index, k * BATCH_SIZE + 1, Math.min(BATCH_SIZE, this.total - k * BATCH_SIZE)),
    };
    const identify = encodeIdentify(codec, ZONE, `cp-${this.index}`);
    let resumes = 0;
    for (;;) {
      const run = new StreamRun(this.client, this.index, source, this.total, BATCH_SIZE, WINDOW, this.totals, identify);
      this.run = run;
      run.schedule = this.schedule;
      run.measuredFrom = 0;
      await run.identified();
      const resumed = run.error === undefined;
      if (resumed) {
        if (resumes++ > 0) this.reconnects++;
        if (run.ackedSeq < this.ackedSeq) this.resumeRegressions++;
        run.setLimit(this.stopping ? 0 : Infinity);
        await run.settled();
      } else this.failedAttempts++;
      this.ackedSeq = Math.max(this.ackedSeq, run.ackedSeq);
      this.sentSeq = Math.max(this.sentSeq, run.sentSeq);
      for (const l of run.latencies) this.latencies.push(l);
      if (run.error === undefined) {
        run.end();
        return;
      }
      if (this.stopping) return;
      if (resumed && this.errors.length < 3) this.errors.push(run.error);
      await sleep(100);
    }
  }

  /** Stops sending (time is up): what is in flight is still awaited. */
  stop(): void {
    this.stopping = true;
    this.run?.stopSending();
  }
}

/** `Record` calls at a fixed rate, as raw bytes through grpc-js; a failed call's record may or may not exist. */
class RecordLoad {
  started = 0;
  answered = 0;
  audited = 0;
  readonly failed: number[] = [];
  readonly latencies: number[] = [];
  readonly errors = new Map<string, number>();
  private outstanding = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly codec = loadCodec();

  constructor(
    private readonly client: grpc.Client,
    private readonly stream: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.call(), 1000 / RECORD_CALLS_PER_SECOND);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get idle(): boolean {
    return this.outstanding === 0;
  }

  private call(): void {
    if (this.outstanding >= RECORD_CONCURRENCY) return;
    const seq = ++this.started;
    const sentAt = performance.now();
    this.outstanding++;
    this.client.makeUnaryRequest<Buffer, Buffer>(
      RECORD_PATH,
      identity,
      identity,
      encodeRecord(this.codec, seq, 'per-event', this.stream),
      { deadline: Date.now() + CALL_DEADLINE_MS },
      (err, reply) => {
        this.outstanding--;
        if (err) {
          this.failed.push(seq);
          const key = err.message.split(':').slice(0, 2).join(':');
          this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
          return;
        }
        this.answered++;
        this.latencies.push(performance.now() - sentAt);
        // RecordResponse { audited = true } is the two bytes 08 01.
        if (reply !== undefined && reply.length >= 2 && reply[0] === 0x08 && reply[1] === 1) this.audited++;
      },
    );
  }
}

/**
 * AccessAudit changes through RuleService: soak-rule-N is created, updated, deleted, then N + 1. A
 * failed call (the sidecar was killed) leaves its change unsure and moves on to the next name.
 */
class RuleChanges {
  readonly answered: string[] = [];
  readonly failed: string[] = [];
  private n = 1;
  private step: 'CREATE' | 'UPDATE' | 'DELETE' = 'CREATE';
  private version = 0;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(private readonly client: grpc.Client & Record<string, grpc.requestCallback<unknown> | unknown>) {}

  start(): void {
    this.timer = setInterval(() => void this.change(), RULE_CHANGE_EVERY_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get idle(): boolean {
    return !this.busy;
  }

  private async change(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    const name = `soak-rule-${this.n}`;
    const key = `${this.step} ${name}`;
    const audit = (access: string[]) => ({
      name,
      rules: [{ types: ['Secret'], mesh: `tenant-${this.n}`, access, accessAll: false }],
    });
    try {
      let reply: { version?: number | string } | undefined;
      if (this.step === 'CREATE') reply = await this.unary('CreateAccessAudit', { accessAudit: audit(['CREATE']) });
      else if (this.step === 'UPDATE')
        reply = await this.unary('UpdateAccessAudit', {
          accessAudit: { ...audit(['CREATE', 'DELETE']), version: this.version },
        });
      else await this.unary('DeleteAccessAudit', { name, version: this.version });
      this.answered.push(key);
      this.version = Number(reply?.version ?? 0);
      this.step = this.step === 'CREATE' ? 'UPDATE' : this.step === 'UPDATE' ? 'DELETE' : 'CREATE';
      if (this.step === 'CREATE') this.n++;
    } catch {
      this.failed.push(key);
      this.n++;
      this.step = 'CREATE';
    } finally {
      this.busy = false;
    }
  }

  private unary(method: string, request: unknown): Promise<{ version?: number | string }> {
    return new Promise((resolve, reject) => {
      const fn = this.client[method] as (
        req: unknown,
        opts: grpc.CallOptions,
        cb: (err: grpc.ServiceError | null, reply: { version?: number | string }) => void,
      ) => void;
      fn.call(this.client, request, { deadline: Date.now() + CALL_DEADLINE_MS }, (err, reply) =>
        err ? reject(err) : resolve(reply),
      );
    });
  }
}

/**
 * What the sidecars' logs say about the backend in `folder`: its lines with message `msg`, and the
 * number of entries in their `field` list (`deleted` of retention). A line torn by a SIGKILL still
 * counts; its list then counts what it holds.
 */
function fromLogs(lives: readonly Life[], msg: string, folder?: string, field?: string): number {
  let n = 0;
  for (const l of lives)
    for (const line of l.sidecar.stderr().split('\n')) {
      if (!line.includes(`"msg":"${msg}"`) || (folder !== undefined && !line.includes(`/${folder}/`))) continue;
      if (field === undefined) n++;
      else {
        const list = new RegExp(`"${field}":\\[([^\\]]*)`).exec(line)?.[1] ?? '';
        n += list.match(/"[^"]*"/g)?.length ?? 0;
      }
    }
  return n;
}

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits }) : '-';
}

async function main(): Promise<void> {
  if (!(SOAK_SECONDS >= 30))
    throw new Error(`SOAK_SECONDS must be a number of seconds, at least 30: got ${process.env.SOAK_SECONDS}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshaudit-soak-'));
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  fs.writeFileSync(path.join(dir, 'rules.yaml'), baseRulesYaml());
  const config = writeSidecarConfig(dir, { zone: ZONE, address, backends: [FULL, TIGHT] });
  const args = ['--config', config, '--rules', path.join(dir, 'rules.yaml')];
  const kills = killTimesS(SOAK_SECONDS);
  log(`${SOAK_SECONDS} s, in ${dir}; SIGKILL at ${kills.join(', ')} s`);
  const watchdog = setTimeout(
    () => {
      log(`watchdog: still running ${SOAK_SECONDS + DRAIN_S + 120} s after the start; giving up`);
      process.exit(1);
    },
    (SOAK_SECONDS + DRAIN_S + 120) * 1000,
  );
  watchdog.unref();

  const lives: Life[] = [];
  const startSidecar = async (): Promise<Life> => {
    const sidecar = spawnSidecar(args);
    const life: Life = { sidecar, startedAt: performance.now(), readyAt: NaN, endedAt: NaN, rss: [] };
    lives.push(life);
    await sidecar.ready;
    life.readyAt = performance.now();
    return life;
  };
  let life = await startSidecar();
  const sampler = setInterval(() => {
    const mb = vmRssMb(life.sidecar.proc.pid ?? -1);
    if (Number.isFinite(mb)) life.rss.push({ atS: (performance.now() - life.startedAt) / 1000, rssMb: mb });
  }, RSS_EVERY_MS);

  // Fast reconnects: a control plane's channel to its local sidecar should not back off for seconds.
  const channel: grpc.ChannelOptions = {
    ...CLIENT_OPTIONS,
    'grpc.use_local_subchannel_pool': 1,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 500,
  };
  const insecure = grpc.credentials.createInsecure();
  const start = performance.now();
  const intervalMs = (BATCH_SIZE / EVENTS_PER_SECOND_PER_STREAM) * 1000;
  const perStream = EVENTS_PER_SECOND_PER_STREAM * SOAK_SECONDS;
  const cps = Array.from(
    { length: STREAMS },
    (_, s) =>
      new ControlPlane(new grpc.Client(address, insecure, channel), s, perStream, (k) => start + k * intervalMs),
  );
  const records = new RecordLoad(new grpc.Client(address, insecure, channel), STREAMS);
  const { RuleService } = meshauditClients();
  const rules = new RuleChanges(new RuleService(address, insecure, channel) as never);
  const streaming = Promise.all(cps.map((cp) => cp.go()));
  records.start();
  rules.start();

  for (const atS of kills) {
    await sleep(Math.max(0, start + atS * 1000 - performance.now()));
    log(`SIGKILL (pid ${life.sidecar.proc.pid}) at ${fmt((performance.now() - start) / 1000)} s`);
    life.sidecar.proc.kill('SIGKILL');
    await life.sidecar.exited;
    life.endedAt = performance.now();
    life = await startSidecar();
    log(
      `restarted (pid ${life.sidecar.proc.pid}): serving ${fmt(life.readyAt - lives[lives.length - 2].endedAt)} ms after the kill`,
    );
  }
  await sleep(Math.max(0, start + SOAK_SECONDS * 1000 - performance.now()));
  records.stop();
  rules.stop();
  log('load done; waiting for the last acks');
  const stopAt = setTimeout(() => {
    for (const cp of cps) cp.stop();
  }, DRAIN_S * 1000);
  await streaming;
  clearTimeout(stopAt);
  while (!records.idle || !rules.idle) await sleep(50);
  const loadEndS = (performance.now() - start) / 1000;
  clearInterval(sampler);
  life.endedAt = performance.now();
  life.sidecar.proc.kill('SIGTERM');
  const exit = await life.sidecar.exited;
  log(`sidecar stopped (${exit}); checking the files`);

  const lifeS = (l: Life): number => (l.endedAt - l.startedAt) / 1000;
  const memory = lives.map((l) => judgeMemory(l.rss, lifeS(l)));
  const lastMemory = memory[memory.length - 1];
  const check = checkExactlyOnce(path.join(dir, FULL.folder), {
    acked: [...cps.map((cp) => cp.ackedSeq), records.started],
    sent: [...cps.map((cp) => cp.sentSeq), records.started],
    unsure: [...cps.map(() => undefined), records.failed],
    apiChanges: { answered: rules.answered, failed: rules.failed },
  });
  const tail = checkRetainedTail(
    path.join(dir, FULL.folder),
    path.join(dir, TIGHT.folder),
    TIGHT.rotation.maxRetainedFiles,
  );
  const streamLatency = percentiles(cps.flatMap((cp) => cp.latencies));
  const recordLatency = percentiles(records.latencies);
  const regressions = cps.reduce((s, cp) => s + cp.resumeRegressions, 0);
  const acked = cps.reduce((s, cp) => s + cp.ackedSeq, 0);
  const sent = cps.reduce((s, cp) => s + cp.sentSeq, 0);
  const offered = perStream * STREAMS;
  const cleanExit = exit === 0;

  const rows: Array<[string, string]> = [
    ['duration', `${fmt(loadEndS)} s (SOAK_SECONDS=${SOAK_SECONDS}, then the last acks)`],
    ['streams', `${STREAMS} control planes x ${fmt(EVENTS_PER_SECOND_PER_STREAM)} events/s, batches of ${BATCH_SIZE}`],
    ['events offered / sent / acked', `${fmt(offered)} / ${fmt(sent)} / ${fmt(acked)}`],
    [
      'streams resumed after a kill',
      `${cps.reduce((s, cp) => s + cp.reconnects, 0)} (${cps.reduce((s, cp) => s + cp.failedAttempts, 0)} attempts refused while the sidecar was down; resume point below an ack: ${regressions})`,
    ],
    [
      'restarts: serving after the kill (ms)',
      lives
        .slice(1)
        .map((l, i) => fmt(l.readyAt - lives[i].endedAt))
        .join(', '),
    ],
    [
      'acks: duplicates / rejected',
      `${fmt(cps.reduce((s, cp) => s + cp.totals.duplicates, 0))} / ${fmt(cps.reduce((s, cp) => s + cp.totals.rejected, 0))}`,
    ],
    [
      'Record calls: made / answered / failed',
      `${fmt(records.started)} / ${fmt(records.answered)} / ${fmt(records.failed.length)}`,
    ],
    ['AccessAudit changes: answered / failed', `${rules.answered.length} / ${rules.failed.length}`],
    ['SIGKILLs (restarts)', `${kills.length} at ${kills.join(', ')} s`],
    [
      'records in the full backend',
      `${fmt(check.lines)} in ${check.files} files (${check.apiChanges} API change records, ${check.ruleChanges} rules-files change records)`,
    ],
    [
      'missing / duplicated / unexpected / torn files',
      `${check.missing} / ${check.duplicated} / ${check.unexpected} / ${check.tornFiles}`,
    ],
    [
      'rotations / files deleted by retention',
      `${FULL.folder}: ${fromLogs(lives, 'audit file: rotated', FULL.folder)}, ${TIGHT.folder}: ${fromLogs(lives, 'audit file: rotated', TIGHT.folder)} / ${fromLogs(lives, 'audit file: retention-deleted', TIGHT.folder, 'deleted')}`,
    ],
    [
      'tight backend (maxSizeMb 1, maxRetainedFiles 4)',
      `${tail.rotatedKept} rotated files kept (${tail.emptyRotated} empty), ${fmt(tail.bytes / 2 ** 20, 1)} MiB = the end of the full backend: ${tail.ok ? 'yes' : 'NO'}`,
    ],
    ['recovery cuts at restart', `${fromLogs(lives, 'audit file: recovery-cut')}`],
    [
      'ack latency p50 / p99 / max (ms, from the scheduled send; restarts included)',
      `${fmt(streamLatency.p50, 1)} / ${fmt(streamLatency.p99, 1)} / ${fmt(streamLatency.max)}`,
    ],
    ['Record latency p50 / p99 (ms)', `${fmt(recordLatency.p50, 1)} / ${fmt(recordLatency.p99, 1)}`],
    ...lives.map((l, i): [string, string] => {
      const m = memory[i];
      return [
        `RSS, process ${i + 1} (${fmt(lifeS(l))} s)`,
        `${
          m.firstWindowS[1] > m.firstWindowS[0]
            ? `${fmt(m.firstMb, 1)} MiB in s ${fmt(m.firstWindowS[0])}-${fmt(m.firstWindowS[1])}, ${fmt(m.lastMb, 1)} MiB in s ${fmt(m.lastWindowS[0])}-${fmt(m.lastWindowS[1])}`
            : 'too short for two windows'
        }; peak ${fmt(Math.max(...l.rss.map((r) => r.rssMb)), 1)} MiB`,
      ];
    }),
    ['RSS of the last process, median per 30 s (MiB)', curve(lives[lives.length - 1].rss, 30)],
    ['memory growth of the last process', verdict(lastMemory)],
    ['final SIGTERM', cleanExit ? 'exit 0' : `exit ${exit}`],
  ];
  const failures = [
    ...(check.ok ? [] : [`exactly-once: ${check.examples.join('; ')}`]),
    ...(tail.ok ? [] : [`retention: ${tail.examples.join('; ')}`]),
    ...(lastMemory.ok ? [] : ['memory grew beyond the tolerance']),
    ...(regressions === 0 ? [] : [`${regressions} resume points below an acknowledged sequence`]),
    ...(cleanExit ? [] : [`the last sidecar exited ${exit} on SIGTERM`]),
    ...(acked === offered ? [] : [`${fmt(offered - acked)} offered events never acknowledged`]),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const out = [
    `meshaudit soak, ${new Date().toISOString().slice(0, 16)}Z, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}`,
    '',
    ...rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`),
    '',
    failures.length === 0 ? 'PASS' : `FAIL\n${failures.map((f) => `- ${f}`).join('\n')}`,
  ];
  const streamErrors = cps.flatMap((cp) => cp.errors).slice(0, 3);
  if (streamErrors.length > 0) out.push('', `stream errors (reconnected), e.g.: ${streamErrors.join(' | ')}`);
  if (records.errors.size > 0)
    out.push(`Record failures: ${[...records.errors].map(([k, n]) => `${n} x ${k}`).join('; ')}`);
  process.stdout.write(`${out.join('\n')}\n`);
  if (failures.length === 0 && process.env.SOAK_KEEP === undefined) fs.rmSync(dir, { recursive: true, force: true });
  else log(`files kept in ${dir}`);
  process.exit(failures.length === 0 ? 0 : 1);
}

/** The median RSS of each `bucketS` of a process's life: the shape of its memory over time. */
function curve(rss: readonly RssSample[], bucketS: number): string {
  const buckets: number[][] = [];
  for (const r of rss) {
    const i = Math.floor(r.atS / bucketS);
    buckets[i] = [...(buckets[i] ?? []), r.rssMb];
  }
  return Array.from(buckets, (b) => fmt(median(b ?? []))).join(' ');
}

function verdict(m: MemoryJudgement): string {
  const growth = `${m.growthMb >= 0 ? '+' : ''}${fmt(m.growthMb, 1)} MiB (tolerance ${fmt(m.toleranceMb, 1)} MiB)`;
  return `${growth}: ${m.ok ? 'flat' : 'GREW'}`;
}

process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));
main().catch((err) => {
  log(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
