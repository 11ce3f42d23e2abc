// `make bench`: the real sidecar under a separate load generator on loopback, scenario by scenario
// (issue 4), beside the floor (no gRPC) and the naive grpc-js baselines, all in the same run.
//
//   BENCH_QUICK=1     smaller counts and a 5 s scenario 6: about 30 s in all
//   BENCH_ONLY=s1,naive-stream   run only these scenarios (ids: floor naive-stream s1 s1t s1f s1fu s1i s1n s1p s1w s2 s4 s5 naive-unary s3 s6;
//                     s1p uses PostgreSQL: the PG* variables, else 127.0.0.1:5432 database test user postgres)
//   BENCH_PROFILE=1   run each server with `node --cpu-prof` (profiles under /tmp) and summarise its
//                     measured phase: self time by area and by function
//   BENCH_NODE_FLAGS="--require /tmp/gc-watch.js"   more node flags for every server process
//   BENCH_SIDECAR=/other/worktree/dist/src/cli/main.js   the sidecar build every sidecar scenario runs
//                     (default: this checkout's), for an A/B of two builds on the same inputs
//   BENCH_ROUNDS=3    rounds of the compared scenarios (naive-stream s1 s1t s1f s1fu s1i s1n s1p s2 s4 naive-unary s3), 1 to 9:
//                     3 by default, 1 in quick runs; profile runs always have 1 (see rounds.ts)
//
// Every child process is killed and every temp folder removed on any exit; every wait has a time
// limit, and a watchdog ends the whole run if it ever overruns. Targets print PASS or MISS and never
// fail the run; a broken exactly-once check or a scenario that errored makes it exit 1.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { backendFiles, checkExactlyOnce } from './check';
import { baseRulesYaml, type DateMode, manyRulesFiles } from './events';
import type { FloorResult, FloorSpec } from './floor';
import type { LoadResult, LoadSpec } from './loadgen';
import { cpuMs, machineBusyMs, othersBetween, peakRssMb, processCpuSnapshot, type ProcessCpu } from './proc';
import { formatProfile, monotonicUs, summariseProfile, type ProfileWindow } from './profile';
import {
  emptyResult,
  markdown,
  notesText,
  targetsText,
  textTable,
  type Machine,
  type ScenarioResult,
  type Target,
} from './report';
import { SIDECAR_NODE_FLAGS } from '../src/cli/node-flags';
import { NatsNode } from './nats-server';
import { startedPort, writeSidecarConfig } from './sidecar';
import { certificateIn, selfSignedCertificate } from './tls';
import { combineRounds, cpuRatio, parseRounds, roundFailed, roundRatio } from './rounds';

const QUICK = process.env.BENCH_QUICK === '1';
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined;
const PROFILE = process.env.BENCH_PROFILE === '1';
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
/** Rounds of the scenarios marked `repeated` (rounds.ts). A profiled run has one: its profiles are per scenario. */
const ROUNDS = ((): number => {
  try {
    return PROFILE ? 1 : parseRounds(process.env.BENCH_ROUNDS, QUICK ? 1 : 3);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(2);
  }
})();

/**
 * The sidecar every sidecar scenario runs: this checkout's build, or the one BENCH_SIDECAR names
 * (another worktree's dist/src/cli/main.js, such as the code before a refactor) for an A/B on the same
 * inputs. Each runs with its own build's node flags (dist/src/cli/node-flags.js beside it, as its
 * launchers pass them; this checkout's if it has none). The floor, the naive servers and the load
 * generator are always this checkout's.
 */
const SIDECAR = ((): { main: string; nodeFlags: readonly string[]; other: boolean } => {
  const given = process.env.BENCH_SIDECAR?.trim();
  if (!given)
    return { main: path.resolve(__dirname, '../src/cli/main.js'), nodeFlags: SIDECAR_NODE_FLAGS, other: false };
  const main = path.resolve(given);
  if (!fs.existsSync(main) || !fs.statSync(main).isFile()) {
    process.stderr.write(
      `bench: BENCH_SIDECAR must name a built sidecar's entry point, a file such as ` +
        `/path/to/other-worktree/dist/src/cli/main.js (run \`npx tsc -p .\` there first); there is no file ${main}\n`,
    );
    process.exit(2);
  }
  const flagsModule = path.join(path.dirname(main), 'node-flags.js');
  const theirs: unknown = fs.existsSync(flagsModule) ? require(flagsModule).SIDECAR_NODE_FLAGS : undefined;
  const nodeFlags = Array.isArray(theirs) && theirs.every((f) => typeof f === 'string') ? theirs : SIDECAR_NODE_FLAGS;
  return { main, nodeFlags, other: true };
})();

/**
 * Sized for this 2-core machine: the full run takes about 5.5 minutes, the quick one about 30 s. Each
 * closed-loop scenario also stops sending after maxSeconds, so a slow build cannot stretch the run.
 */
const SIZES = QUICK
  ? {
      streamEvents: 100_000,
      warmupEvents: 10_000,
      unaryCalls: 3_000,
      unaryWarmup: 500,
      rateSeconds: 5,
      maxSeconds: 5,
      maxSizeMb: 4,
      watchdogS: 240,
    }
  : {
      streamEvents: 2_000_000,
      warmupEvents: 100_000,
      unaryCalls: 20_000,
      unaryWarmup: 2_000,
      rateSeconds: 30,
      maxSeconds: 30,
      maxSizeMb: 64,
      watchdogS: 1200,
    };
const BATCH_SIZE = 100;
const WINDOW = 8;
const STREAMS = 8;
const UNARY_CONCURRENCY = 32;
const OFFERED_EVENTS_PER_SEC = 20_000;
const MANY_AUDITS = 10_000;

const RESULTS_DIR = path.resolve(__dirname, '../../bench/results');
const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshaudit-bench-'));
const cacheDir = path.join(runDir, 'cache');
fs.mkdirSync(cacheDir);
const profileDir = PROFILE ? fs.mkdtempSync(path.join(os.tmpdir(), 'meshaudit-prof-')) : '';
const startedAt = performance.now();

// ---- child processes: every one is tracked, and killed whatever way this process ends ----

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
  fs.rmSync(runDir, { recursive: true, force: true });
});
// The backup for a SIGKILLed orchestrator, which runs no exit handler (see reaper.ts). Its stdin is
// the only link: it stays open as long as this process lives.
const reaper = spawn(process.execPath, [path.join(__dirname, 'reaper.js')], { stdio: ['pipe', 'ignore', 'inherit'] });
reaper.stdin!.on('error', () => {});
reaper.stdin!.write(`dir ${runDir}\n`);
reaper.unref();
(reaper.stdin as unknown as { unref?: () => void }).unref?.();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping every child process\n`);
    process.exit(130);
  });
}
/** The watchdog's limit: the sizes' for three rounds, and a third of it more for each round beyond. */
const WATCHDOG_S = Math.round(SIZES.watchdogS * (1 + Math.max(0, ROUNDS - 3) / 3));
setTimeout(() => {
  process.stderr.write(`\nbench: watchdog: the run passed ${WATCHDOG_S} s; stopping\n`);
  process.exit(1);
}, WATCHDOG_S * 1000).unref();

/** Lines from a child's stdout and stderr, waited for with a time limit. */
class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  private readonly history: string[] = [];
  private readonly waiters = new Set<(line: string) => void>();
  private readonly collectors: Array<{ match: RegExp; into: string[] }> = [];
  private exit: { code: number | null; signal: string | null } | undefined;

  constructor(
    readonly name: string,
    args: string[],
    cwd: string,
  ) {
    this.proc = spawn(process.execPath, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(this.proc);
    reaper.stdin!.write(`pid ${this.proc.pid}\n`);
    this.exited = new Promise((resolve) =>
      // 'close', not 'exit': a child's last lines (its result) may still be in the pipe when it exits.
      this.proc.on('close', (code, signal) => {
        live.delete(this.proc);
        this.exit = { code, signal };
        resolve(this.exit);
        for (const w of [...this.waiters]) w('');
      }),
    );
    this.proc.stdin!.on('error', () => {}); // a child that exits early closes its stdin under us
    for (const stream of [this.proc.stdout!, this.proc.stderr!]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => {
        const parts = (partial + d).split('\n');
        partial = parts.pop()!;
        for (const line of parts) this.onLine(line);
      });
    }
  }

  get pid(): number {
    return this.proc.pid!;
  }

  private onLine(line: string): void {
    this.history.push(line);
    // Enough for an error message; the sidecar logs every rotation and would grow this without bound.
    if (this.history.length > 200) this.history.shift();
    for (const c of this.collectors) if (c.match.test(line)) c.into.push(line);
    for (const w of [...this.waiters]) w(line);
  }

  /** Every line matching `match` from now on. */
  collect(match: RegExp): string[] {
    const into: string[] = [];
    this.collectors.push({ match, into });
    return into;
  }

  /** The last lines the child printed, for error messages. */
  tail(n = 15): string {
    return this.history.slice(-n).join('\n');
  }

  /** Resolves with the first line (already printed or to come) for which `match` returns a value. */
  waitFor<T>(what: string, match: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
    for (const line of this.history) {
      const v = match(line);
      if (v !== undefined) return Promise.resolve(v);
    }
    return new Promise<T>((resolve, reject) => {
      const done = (err: Error | null, v?: T): void => {
        clearTimeout(timer);
        this.waiters.delete(onLine);
        if (err) reject(err);
        else resolve(v as T);
      };
      const onLine = (line: string): void => {
        if (this.exit !== undefined) {
          done(
            new Error(
              `${this.name} exited (${this.exit.code ?? this.exit.signal}) while waiting for ${what}:\n${this.tail()}`,
            ),
          );
          return;
        }
        const v = match(line);
        if (v !== undefined) done(null, v);
      };
      const timer = setTimeout(
        () => done(new Error(`${this.name}: no ${what} after ${timeoutMs / 1000} s:\n${this.tail()}`)),
        timeoutMs,
      );
      this.waiters.add(onLine);
      if (this.exit !== undefined) onLine('');
    });
  }

  /** A JSON line of the child with key `key` (children report {"ready": ...}, {"result": ...} or {"fatal": ...}). */
  waitJson<T>(key: string, timeoutMs: number): Promise<T> {
    return this.waitFor(
      `"${key}"`,
      (line) => {
        if (!line.startsWith('{')) return undefined;
        let obj: Record<string, unknown>;
        try {
          obj = JSON.parse(line);
        } catch {
          return undefined;
        }
        if ('fatal' in obj) throw new Error(`${this.name} failed: ${String(obj.fatal)}`);
        return key in obj ? (obj[key] as T) : undefined;
      },
      timeoutMs,
    );
  }

  send(text: string): void {
    this.proc.stdin!.write(text);
  }

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs: number): Promise<{ code: number | null; signal: string | null; killed: boolean }> {
    if (this.exit !== undefined) return { ...this.exit, killed: false };
    this.proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs))),
    ]);
    clearTimeout(timer);
    if (killed) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
    return { ...this.exit!, killed };
  }

  kill(): void {
    if (this.exit === undefined) this.proc.kill('SIGKILL');
  }
}

function log(msg: string): void {
  process.stdout.write(`[${((performance.now() - startedAt) / 1000).toFixed(1).padStart(5)} s] ${msg}\n`);
}

// ---- the sidecar's production-like configuration ----

/**
 * `<dir>/meshaudit.yaml`: production defaults but for rotation, which is on and small enough to
 * happen several times per scenario, keeping every file (`maxRetainedFiles: 0`): the exactly-once
 * check reads them all. The same helper writes the crash test's config.
 */
function sidecarConfig(dir: string, s: ServerScenario, natsUrl: string | undefined): string {
  return writeSidecarConfig(dir, {
    ...(natsUrl === undefined
      ? {}
      : { forwarders: [{ kind: 'nats', servers: [natsUrl], instance: 'bench', stream: { create: true } }] }),
    zone: 'bench',
    fsync: s.fsync ?? false,
    integrity: s.integrity ?? true,
    ...(s.tls ? { tls: selfSignedCertificate(dir) } : {}),
    ...(s.follower === 'unix' ? { unixSocket: unixSocketIn(dir) } : {}),
    ...(s.postgres ? { postgres: { ...BENCH_POSTGRES, schema: pgSchemaOf(s) } } : {}),
    // Scenario 4's 10k AccessAudits pass meshaudit.limits.accessAudits (1,000 by default): raised for it alone.
    ...(s.rulesFiles === undefined ? {} : { limits: { accessAudits: 20_000 } }),
    drainTimeoutSeconds: 10,
    backends: [{ folder: 'audit', rotation: { maxSizeMb: SIZES.maxSizeMb, maxRetainedFiles: 0, maxAgeDays: 0 } }],
  });
}

/** The sidecar's Unix socket in a scenario's folder (a follower over it: s1fu). */
function unixSocketIn(dir: string): string {
  return path.join(dir, 'meshaudit.sock');
}

const rulesDir = path.join(runDir, 'rules');
fs.mkdirSync(rulesDir);
const BASE_RULES = path.join(rulesDir, 'rules.yaml');
fs.writeFileSync(BASE_RULES, baseRulesYaml());
let manyRules: string[] | undefined;
function manyRulesFilesOnDisk(): string[] {
  manyRules ??= manyRulesFiles(MANY_AUDITS).map((text, i) => {
    const file = path.join(rulesDir, `tenants-${i}.yaml`);
    fs.writeFileSync(file, text);
    return file;
  });
  return manyRules;
}

// ---- scenarios ----

type ServerKind = 'meshaudit' | 'naive-stream' | 'naive-unary';

/** What the load generator does, without where it goes (Omit applied to each member of the union). */
type Load = LoadSpec extends infer T
  ? T extends LoadSpec
    ? Omit<T, 'address' | 'cacheDir' | 'maxSeconds'> & { maxSeconds?: number }
    : never
  : never;

interface ServerScenario {
  id: string;
  title: string;
  server: ServerKind;
  fsync?: boolean;
  rulesFiles?: () => string[];
  load: Load;
  /** Ids of the results this one is divided by. */
  compareTo: { floor: boolean; naive: 'naive-stream' | 'naive-unary' | null };
  /** Runs in every round: a target compares it with another scenario (rounds.ts). */
  repeated?: boolean;
  /** The AccessAudit store on PostgreSQL (a schema of the scenario's own), not the file store. */
  postgres?: boolean;
  /** meshaudit.integrity (digests and seals): on, as in production, but where a scenario turns it off. */
  integrity?: boolean;
  /** gRPC over TLS (a self-signed certificate the load generator trusts: tls.ts); plaintext otherwise. */
  tls?: boolean;
  /**
   * One `ReadService.Query {follow: true}` reads every record while the load runs (bench/follower.ts),
   * over TCP on loopback, or over the sidecar's Unix socket (meshaudit.grpc.unixSocket).
   */
  follower?: 'tcp' | 'unix';
  /** A NATS JetStream forwarder (meshaudit.forwarders) to a throwaway nats-server the scenario starts. */
  forwarder?: boolean;
}

/**
 * The PostgreSQL of the store scenario: PG* variables, else the server every developer's machine runs
 * (127.0.0.1:5432, database test, user postgres, trust auth).
 */
const BENCH_POSTGRES = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  database: process.env.PGDATABASE ?? 'test',
  user: process.env.PGUSER ?? 'postgres',
};

/** Runs one statement on the benchmark's PostgreSQL; rejects when it cannot be reached. */
async function pgQuery(sql: string): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ ...BENCH_POSTGRES, connectionTimeoutMillis: 2_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** The schema of a PostgreSQL scenario: one per run and scenario, dropped when it ends. */
function pgSchemaOf(s: ServerScenario): string {
  return `meshaudit_bench_${process.pid}_${s.id}`;
}

/** Starts the scenario's server on a free port; resolves with it and the port it listens on. */
async function startServer(
  s: ServerScenario,
  dir: string,
  natsUrl?: string,
): Promise<{ server: Child; port: number; adminPort: number | undefined }> {
  const auditDir = path.join(dir, 'audit');
  fs.mkdirSync(auditDir, { recursive: true });
  const flags = [...(PROFILE ? ['--cpu-prof', '--cpu-prof-dir', path.join(profileDir, s.id)] : []), ...NODE_FLAGS];
  if (s.server === 'meshaudit') {
    const rules = [BASE_RULES, ...(s.rulesFiles?.() ?? [])];
    const config = sidecarConfig(dir, s, natsUrl);
    // As every launcher runs it (src/cli/node-flags.ts); BENCH_NODE_FLAGS come after and win.
    const child = new Child(
      `sidecar (${s.id})`,
      [...SIDECAR.nodeFlags, ...flags, SIDECAR.main, '--config', config, '--rules', ...rules],
      dir,
    );
    // Ten thousand AccessAudits are parsed, validated and stored before it listens.
    let adminPort: number | undefined;
    const port = await child.waitFor(
      '"meshaudit started"',
      (line) => {
        const grpc = startedPort(line);
        if (grpc !== undefined) adminPort = Number(/"admin":"[^"]*:(\d+)"/.exec(line)?.[1]);
        return grpc;
      },
      120_000,
    );
    return { server: child, port, adminPort };
  }
  const script = path.join(__dirname, s.server === 'naive-stream' ? 'naive-server.js' : 'naive-unary-server.js');
  const child = new Child(
    s.server,
    [...flags, script, '--port', '0', '--dir', auditDir, '--max-size-mb', String(SIZES.maxSizeMb)],
    dir,
  );
  return { server: child, port: await child.waitJson<number>('ready', 30_000), adminPort: undefined };
}

/**
 * Other processes on the machine (a test run, a build) take cores from the sidecar and the load
 * generator: above a quarter of a core, the scenario's numbers say so. (Below it is noise: loopback
 * networking in softirq and the kernel's own threads are not charged to any process.)
 */
const FOREIGN_CPU_NOTE_PCT = 25;

interface MachineUse {
  /** CPU of the machine beyond the benchmark's own processes. */
  foreignMs: number;
  wallMs: number;
  /** The biggest other processes still running at the end, and the CPU of all of them. */
  top: ProcessCpu[];
  visibleMs: number;
}

function noteForeignCpu(result: ScenarioResult, use: MachineUse): void {
  const pct = (ms: number): string => `${((100 * ms) / use.wallMs).toFixed(0)}%`;
  if (!Number.isFinite(use.foreignMs) || (100 * use.foreignMs) / use.wallMs <= FOREIGN_CPU_NOTE_PCT) return;
  const who = use.top.map((p) => `${p.name} ${pct(p.cpuMs)}`);
  // The rest ran in processes that came and went during the measurement (a test suite's children).
  const gone = use.foreignMs - use.visibleMs;
  if (gone > 0) who.push(`short-lived processes ${pct(gone)}`);
  result.notes.push(
    `other processes used ${pct(use.foreignMs)} of a core during the measurement (${who.join(', ')}): the numbers are disturbed`,
  );
}

/** Watches the machine's CPU during a measurement, to tell what else ran beside `ours`. */
function watchMachine(): (ours: number[], oursCpuMs: number) => MachineUse {
  const busy0 = machineBusyMs();
  const snap0 = processCpuSnapshot();
  const clock0 = performance.now();
  const self0 = process.cpuUsage();
  return (ours, oursCpuMs) => {
    const others = othersBetween(snap0, processCpuSnapshot(), new Set([process.pid, ...ours]));
    const self = process.cpuUsage(self0);
    const foreignMs = machineBusyMs() - busy0 - oursCpuMs - (self.user + self.system) / 1000;
    return { foreignMs, wallMs: performance.now() - clock0, top: others.top, visibleMs: others.totalMs };
  };
}

/**
 * The worst stalls beside the rotations of the same phase (from the sidecar's log), both in seconds
 * since the measured phase started: do latency spikes line up with rotations?
 */
function slowAckNote(slow: LoadResult['slowest'], rotationLines: string[], goAtMs: number): string {
  const at = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
  const rotations = rotationLines
    .map((l) => {
      try {
        return Date.parse((JSON.parse(l) as { time: string }).time) - goAtMs;
      } catch {
        return NaN;
      }
    })
    .filter((ms) => Number.isFinite(ms) && ms >= 0);
  const acks = slow.map((s) => `${at(s.atMs)} (${s.latencyMs.toFixed(1)} ms, ${s.acks} acks)`).join(', ');
  const rot = rotations.length > 0 ? rotations.map(at).join(', ') : 'none logged';
  return `acks >= p99 came in stalls at ${acks}; rotations at ${rot}`;
}

/** Records how long each step of a scenario took (in `timings`), to see where the run's minutes go. */
function phases(result: ScenarioResult): (name: string) => void {
  let last = performance.now();
  return (name) => {
    const now = performance.now();
    result.timings.push(`${name} ${((now - last) / 1000).toFixed(1)} s`);
    last = now;
  };
}

function rotatedFiles(auditDir: string): number {
  return Math.max(0, backendFiles(auditDir, 'audit.log').length - 1);
}

async function runServerScenario(s: ServerScenario): Promise<ScenarioResult> {
  const result = emptyResult(s.id, s.title);
  const dir = fs.mkdtempSync(path.join(runDir, `${s.id}-`));
  const auditDir = path.join(dir, 'audit');
  let server: Child | undefined;
  let loadgen: Child | undefined;
  let follower: Child | undefined;
  let nats: NatsNode | undefined;
  try {
    const phase = phases(result);
    if (s.forwarder) {
      nats = await NatsNode.create(dir, 'nats');
      nats.spawn();
      await nats.ready();
    }
    const started = await startServer(s, dir, nats?.url);
    server = started.server;
    const port = started.port;
    phase('server up');
    const maxSeconds = s.load.maxSeconds ?? SIZES.maxSeconds;
    const caFile = s.tls ? { caFile: certificateIn(dir).certFile } : {};
    const spec = { ...s.load, address: `127.0.0.1:${port}`, cacheDir, maxSeconds, ...caFile } as LoadSpec;
    loadgen = new Child(`load generator (${s.id})`, [path.join(__dirname, 'loadgen.js'), JSON.stringify(spec)], dir);
    if (s.follower !== undefined) {
      const at = s.follower === 'unix' ? `unix://${unixSocketIn(dir)}` : `127.0.0.1:${port}`;
      follower = new Child(`follower (${s.id})`, [path.join(__dirname, 'follower.js'), at], dir);
      await follower.waitJson<boolean>('ready', 30_000);
    }
    const ready = await loadgen.waitJson<{ errors: string[] }>('ready', 240_000);
    phase('prepared and warmed up');
    if (ready.errors.length > 0) throw new Error(`warm-up failed: ${ready.errors.join('; ')}`);
    const serverCpu0 = cpuMs(server.pid);
    const natsCpu0 = nats?.pid === undefined ? 0 : cpuMs(nats.pid);
    const machine = watchMachine();
    const window: ProfileWindow = { fromUs: monotonicUs(), toUs: 0 };
    const rotations = server.collect(/audit file: rotated/);
    const goAtMs = Date.now();
    loadgen.send('go\n');
    const load = await loadgen.waitJson<LoadResult>('result', (maxSeconds + 60) * 1000);
    window.toUs = monotonicUs();
    const serverCpuMs = cpuMs(server.pid) - serverCpu0;
    // The scenario's nats-server is no foreign load: its CPU is the center's, not the sidecar's.
    const natsPid = nats?.pid;
    const natsCpuMs = natsPid === undefined ? 0 : cpuMs(natsPid) - natsCpu0;
    const ours = natsPid === undefined ? [server.pid, loadgen.pid] : [server.pid, loadgen.pid, natsPid];
    // The generator reports its own CPU: it may already be gone by now.
    noteForeignCpu(result, machine(ours, serverCpuMs + load.cpuMs + natsCpuMs));
    result.peakRssMb = peakRssMb(server.pid);
    await loadgen.exited;
    if (nats !== undefined) {
      result.notes.push(await forwarderLag(started.adminPort as number));
      result.notes.push(`nats-server used ${((100 * natsCpuMs) / load.elapsedMs).toFixed(0)}% of a core (not counted)`);
    }
    if (follower !== undefined) {
      follower.send('stop\n');
      const f = await follower.waitJson<{ records: number; responses: number; failed: string | null }>(
        'result',
        30_000,
      );
      if (f.failed !== null) result.errors.push(`the follower failed: ${f.failed}`);
      result.notes.push(
        `the follower read ${f.records.toLocaleString('en-US')} records in ${f.responses.toLocaleString('en-US')} responses`,
      );
    }
    phase('measured');
    const stopped = await server.stop(30_000);
    phase('stopped');
    if (stopped.killed) result.errors.push('the server did not stop within 30 s of SIGTERM (killed)');
    else if (stopped.code !== 0)
      result.errors.push(`the server exited with ${stopped.code ?? stopped.signal} after SIGTERM:\n${server.tail(5)}`);
    result.errors.push(...load.errors);

    result.measured = load.measured;
    result.elapsedMs = load.elapsedMs;
    result.eventsPerSec = load.elapsedMs > 0 ? load.measured / (load.elapsedMs / 1000) : null;
    result.latencyMs = load.latencyMs;
    const per100k = (ms: number): number | null => (load.measured > 0 ? ms / 1000 / (load.measured / 100_000) : null);
    result.serverCpuPer100k = per100k(serverCpuMs);
    result.serverCorePct = (100 * serverCpuMs) / load.elapsedMs;
    result.clientCpuPer100k = per100k(load.cpuMs);
    result.clientCorePct = (100 * load.cpuMs) / load.elapsedMs;
    result.rotatedFiles = rotatedFiles(auditDir);
    if (load.rejected > 0) result.errors.push(`${load.rejected} events rejected: the workload should be all valid`);
    if (load.skipped > 0 && s.server === 'meshaudit')
      result.notes.push(`${load.skipped} events not covered by the rules`);
    if (load.slowest.length > 0 && s.load.mode !== 'unary')
      result.notes.push(slowAckNote(load.slowest, rotations, goAtMs));
    if (load.lateBatches > 0)
      result.notes.push(`${load.lateBatches} batches waited for the window (the server fell behind the offered load)`);
    if (s.load.mode !== 'rate' && load.elapsedMs >= maxSeconds * 1000) {
      result.notes.push(`stopped at the ${maxSeconds} s limit after ${load.measured.toLocaleString('en-US')} events`);
    }
    result.notes.push(
      `${result.rotatedFiles} rotated files; load generator prepared its batches in ${(load.prepareMs / 1000).toFixed(1)} s`,
    );
    result.check = checkExactlyOnce(auditDir, { acked: load.acked, sent: load.sent, unsure: [load.failedSeqs] });
    phase('checked');
    if (PROFILE) {
      const profDir = path.join(profileDir, s.id);
      const files = fs.existsSync(profDir) ? fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')) : [];
      if (files.length > 0) result.profile = summariseProfile(path.join(profDir, files[0]), 25, window);
      else result.notes.push(`no CPU profile in ${profDir}`);
    }
  } catch (err) {
    result.errors.push((err as Error).message);
  } finally {
    loadgen?.kill();
    follower?.kill();
    server?.kill();
    if (loadgen) await loadgen.exited;
    if (follower) await follower.exited;
    if (server) await server.exited;
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

/**
 * The forwarder's lag when the load ends (meshaudit_forward_lag_records and _seconds), and how long it
 * then takes to have every record acknowledged by JetStream.
 */
async function forwarderLag(adminPort: number): Promise<string> {
  const lag = async (): Promise<{ records: number; seconds: number }> => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`)).text();
    const value = (name: string): number => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1]);
    return { records: value('meshaudit_forward_lag_records'), seconds: value('meshaudit_forward_lag_seconds') };
  };
  const atEnd = await lag();
  const from = performance.now();
  let now = atEnd;
  while (now.records > 0 && performance.now() - from < 60_000) {
    await new Promise((r) => setTimeout(r, 50));
    now = await lag();
  }
  const caughtUp =
    now.records === 0
      ? `caught up ${((performance.now() - from) / 1000).toFixed(2)} s later`
      : `${now.records} still behind after 60 s`;
  return `forwarder lag at the end of the load: ${atEnd.records.toLocaleString('en-US')} records, ${atEnd.seconds.toFixed(2)} s; ${caughtUp}`;
}

async function runFloor(): Promise<ScenarioResult> {
  const result = emptyResult('floor', 'floor (no gRPC)');
  const dir = fs.mkdtempSync(path.join(runDir, 'floor-'));
  const auditDir = path.join(dir, 'audit');
  const spec: FloorSpec = {
    cacheDir,
    events: SIZES.streamEvents,
    warmupEvents: SIZES.warmupEvents,
    batchSize: BATCH_SIZE,
    auditFile: path.join(auditDir, 'audit.log'),
    maxSizeMb: SIZES.maxSizeMb,
    rulesFiles: [BASE_RULES],
    inFlight: WINDOW,
    maxSeconds: SIZES.maxSeconds,
    dates: 'per-event',
  };
  // The floor is the sidecar's own code minus gRPC: it runs with the sidecar's node flags.
  const child = new Child(
    'floor',
    [...SIDECAR_NODE_FLAGS, path.join(__dirname, 'floor.js'), JSON.stringify(spec)],
    dir,
  );
  try {
    const phase = phases(result);
    const machine = watchMachine();
    const r = await child.waitJson<FloorResult>('result', (SIZES.maxSeconds + 240) * 1000);
    phase('prepared and measured');
    noteForeignCpu(result, machine([child.pid], r.totalCpuMs));
    result.measured = r.measured;
    result.elapsedMs = r.elapsedMs;
    result.eventsPerSec = r.measured / (r.elapsedMs / 1000);
    result.peakRssMb = r.peakRssMb;
    result.serverCpuPer100k = r.cpuMs / 1000 / (r.measured / 100_000);
    result.serverCorePct = (100 * r.cpuMs) / r.elapsedMs;
    result.rotatedFiles = rotatedFiles(auditDir);
    result.notes.push(
      `${result.rotatedFiles} rotated files; prepared (encode or load, rules, open) in ${(r.prepareMs / 1000).toFixed(1)} s; ` +
        `its peak RSS includes the ${r.inputMb.toFixed(0)} MB of encoded batches it holds`,
    );
    if (r.rejected > 0 || r.skipped > 0)
      result.errors.push(`${r.rejected} rejected and ${r.skipped} skipped: the workload should be all recorded`);
    result.check = checkExactlyOnce(auditDir, { acked: [r.lastSeq], sent: [r.lastSeq] });
    phase('checked');
  } catch (err) {
    result.errors.push((err as Error).message);
  } finally {
    child.kill();
    await child.exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

const streamLoad = (streams: number, dates: DateMode = 'per-event'): Load => ({
  mode: 'stream',
  dates,
  streams,
  eventsPerStream: Math.round(SIZES.streamEvents / streams),
  warmupEvents: Math.round(SIZES.warmupEvents / streams),
  batchSize: BATCH_SIZE,
  window: WINDOW,
});
const unaryLoad: Load = {
  mode: 'unary',
  dates: 'per-event',
  calls: SIZES.unaryCalls,
  warmupCalls: SIZES.unaryWarmup,
  concurrency: UNARY_CONCURRENCY,
};
const vsStream = { floor: true, naive: 'naive-stream' as const };

const SCENARIOS: Array<ServerScenario | 'floor'> = [
  'floor',
  {
    id: 'naive-stream',
    title: 'naive grpc-js stream',
    server: 'naive-stream',
    load: streamLoad(1),
    compareTo: { floor: true, naive: null },
    repeated: true,
  },
  { id: 's1', title: '1 one stream', server: 'meshaudit', load: streamLoad(1), compareTo: vsStream, repeated: true },
  // Scenario 1 over TLS (issue 20: at least the naive server's rate over plaintext).
  {
    id: 's1t',
    title: '1t over TLS',
    server: 'meshaudit',
    tls: true,
    load: streamLoad(1),
    compareTo: vsStream,
    repeated: true,
  },
  // Scenario 1 without the tamper-evident trail (meshaudit.integrity, on in production and in every other
  // scenario): what the digests at each rotation and a seal every 60 s cost; alternated with s1, round
  // by round, for the CPU per event.
  {
    id: 's1i',
    title: '1i integrity off',
    server: 'meshaudit',
    integrity: false,
    load: streamLoad(1),
    compareTo: vsStream,
    repeated: true,
  },
  // Scenario 1 with one follower (ReadService.Query, follow: true) reading every record as it is committed.
  {
    id: 's1f',
    title: '1f one follower',
    server: 'meshaudit',
    follower: 'tcp',
    load: streamLoad(1),
    compareTo: vsStream,
    repeated: true,
  },
  // The same follower over the sidecar's Unix socket, as one on the zone's host may read: no TCP on loopback,
  // which costs ~2.2 ms of CPU per MB sent on this kind of machine (docs/performance.md).
  {
    id: 's1fu',
    title: '1fu follower, unix sock',
    server: 'meshaudit',
    follower: 'unix',
    load: streamLoad(1),
    compareTo: vsStream,
    repeated: true,
  },
  // Scenario 1 with a forwarder publishing every record to a throwaway nats-server's JetStream (issue 19: at most
  // 10% more server CPU per event); alternated with s1, round by round. The nats-server's own CPU is not counted.
  {
    id: 's1n',
    title: '1n NATS forwarder',
    server: 'meshaudit',
    forwarder: true,
    // A quarter of the events: the forwarder then catches up with the backlog, at a fraction of the
    // writer's rate, before the next scenario starts; CPU per 100k events compares all the same.
    load: { ...streamLoad(1), eventsPerStream: SIZES.streamEvents / 4 } as Load,
    compareTo: vsStream,
    repeated: true,
  },
  // Scenario 1 with the AccessAudit store on PostgreSQL: rules are in memory, so the event path should not see it.
  {
    id: 's1p',
    title: '1p PostgreSQL store',
    server: 'meshaudit',
    postgres: true,
    load: streamLoad(1),
    compareTo: vsStream,
    repeated: true,
  },
  // Informational: scenario 1 on the old workload, whole-second dates shared by 1,000 events, beside
  // the per-event one (compared with the per-event floor and naive stream, as scenario 1 is).
  {
    id: 's1w',
    title: '1w whole-second dates',
    server: 'meshaudit',
    load: streamLoad(1, 'whole-second'),
    compareTo: vsStream,
  },
  {
    id: 's2',
    title: '2 eight streams',
    server: 'meshaudit',
    load: streamLoad(STREAMS),
    compareTo: vsStream,
    repeated: true,
  },
  {
    id: 's4',
    title: '4 10k AccessAudits',
    server: 'meshaudit',
    rulesFiles: manyRulesFilesOnDisk,
    load: streamLoad(1),
    compareTo: vsStream,
    repeated: true,
  },
  { id: 's5', title: '5 fsync per batch', server: 'meshaudit', fsync: true, load: streamLoad(1), compareTo: vsStream },
  {
    id: 'naive-unary',
    title: 'naive grpc-js Record',
    server: 'naive-unary',
    load: unaryLoad,
    compareTo: { floor: true, naive: null },
    repeated: true,
  },
  {
    id: 's3',
    title: '3 Record x32',
    server: 'meshaudit',
    load: unaryLoad,
    compareTo: { floor: true, naive: 'naive-unary' },
    repeated: true,
  },
  {
    id: 's6',
    title: '6 20k/s offered',
    server: 'meshaudit',
    load: {
      mode: 'rate',
      dates: 'per-event',
      eventsPerSecond: OFFERED_EVENTS_PER_SEC,
      seconds: SIZES.rateSeconds,
      warmupEvents: SIZES.warmupEvents,
      batchSize: BATCH_SIZE,
      window: WINDOW,
      maxSeconds: SIZES.rateSeconds + 10,
    },
    compareTo: { floor: false, naive: null },
  },
];

// ---- targets (issues 4 and 20, the follower's of 18), as ratios measured in this run ----

function targets(rounds: Map<string, ScenarioResult[]>, by: Map<string, ScenarioResult>): Target[] {
  const ratio = (a: string, b: string): { ratio: number | null; perRound: number[] } =>
    roundRatio(rounds.get(a), rounds.get(b));
  const atLeast = (name: string, r: { ratio: number | null; perRound: number[] }, min: number): Target => ({
    name,
    want: `>= ${min}x`,
    got:
      r.ratio === null
        ? 'not measured'
        : `${r.ratio.toFixed(2)}x${r.perRound.length > 1 ? ` (median of rounds: ${r.perRound.map((v) => v.toFixed(2)).join(', ')})` : ''}`,
    pass: r.ratio === null ? null : r.ratio >= min,
  });
  const atMost = (name: string, r: { ratio: number | null; perRound: number[] }, max: number): Target => ({
    name,
    want: `<= ${max}x`,
    got:
      r.ratio === null
        ? 'not measured'
        : `${r.ratio.toFixed(3)}x${r.perRound.length > 1 ? ` (median of rounds: ${r.perRound.map((v) => v.toFixed(3)).join(', ')})` : ''}`,
    pass: r.ratio === null ? null : r.ratio <= max,
  });
  const p99 = by.get('s6')?.latencyMs?.p99 ?? null;
  const s3p99 = by.get('s3')?.latencyMs?.p99 ?? null;
  const rss = by.get('s1')?.peakRssMb ?? null;
  return [
    atLeast('scenario 1 vs the naive baseline', ratio('s1', 'naive-stream'), 1.25),
    atLeast('scenario 1 vs the floor', ratio('s1', 'floor'), 0.6),
    atLeast('scenario 2 vs scenario 1', ratio('s2', 's1'), 1.0),
    atLeast('scenario 1, PostgreSQL store vs file store (within 10%)', ratio('s1p', 's1'), 0.9),
    atMost(
      'scenario 1 with a follower vs without: server CPU per 100k events',
      cpuRatio(rounds.get('s1f'), rounds.get('s1')),
      1.1,
    ),
    atMost(
      'scenario 1 with a follower over the Unix socket vs without: server CPU per 100k events',
      cpuRatio(rounds.get('s1fu'), rounds.get('s1')),
      1.1,
    ),
    atMost(
      'scenario 1 with a NATS forwarder vs without: server CPU per 100k events',
      cpuRatio(rounds.get('s1n'), rounds.get('s1')),
      1.1,
    ),
    atMost(
      'scenario 1, integrity on vs off: server CPU per 100k events',
      cpuRatio(rounds.get('s1'), rounds.get('s1i')),
      1.05,
    ),
    atLeast('scenario 1 over TLS vs the naive baseline over plaintext', ratio('s1t', 'naive-stream'), 1.0),
    atLeast('scenario 3 vs the naive unary server', ratio('s3', 'naive-unary'), 1.5),
    {
      name: 'scenario 3 ack p99',
      want: '<= 15 ms',
      got: s3p99 === null ? 'not measured' : `${s3p99.toFixed(2)} ms`,
      pass: s3p99 === null ? null : s3p99 <= 15,
    },
    atLeast('scenario 4 vs scenario 1 (within 10%)', ratio('s4', 's1'), 0.9),
    {
      name: 'scenario 6 ack p99',
      want: '<= 10 ms',
      got: p99 === null ? 'not measured' : `${p99.toFixed(2)} ms`,
      pass: p99 === null ? null : p99 <= 10,
    },
    {
      name: 'scenario 1 peak RSS',
      want: '<= 150 MB',
      got: rss === null ? 'not measured' : `${rss.toFixed(0)} MB`,
      pass: rss === null ? null : rss <= 150,
    },
  ];
}

function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    date: new Date().toISOString(),
    mode: QUICK ? 'quick' : 'full',
    sidecar: SIDECAR.other ? SIDECAR.main : `${SIDECAR.main} (this checkout)`,
    sidecarNodeFlags: SIDECAR.nodeFlags.join(' '),
    serverNodeFlags: NODE_FLAGS.join(' '),
  };
}

function summaryLine(r: ScenarioResult): string {
  if (r.eventsPerSec === null) return `${r.id}: ERROR ${r.errors[0] ?? ''}`.split('\n')[0];
  const lat = r.latencyMs ? `, ack p99 ${r.latencyMs.p99.toFixed(2)} ms` : '';
  const check = r.check ? (r.check.ok ? ', exactly once OK' : ', exactly once FAILED') : '';
  const timings = r.timings.length > 0 ? ` (${r.timings.join(', ')})` : '';
  return `${r.id}: ${Math.round(r.eventsPerSec).toLocaleString('en-US')}/s${lat}${check}${r.errors.length > 0 ? `, ERROR ${r.errors[0].split('\n')[0]}` : ''}${timings}`;
}

async function main(): Promise<void> {
  const ids = SCENARIOS.map((s) => (s === 'floor' ? 'floor' : s.id));
  const unknown = [...(ONLY ?? [])].filter((id) => !ids.includes(id));
  if (unknown.length > 0) {
    process.stderr.write(
      `bench: unknown scenario ${unknown.join(', ')} in BENCH_ONLY; the scenarios are ${ids.join(' ')}\n`,
    );
    process.exit(2);
  }
  const m = machine();
  log(`meshaudit benchmark (${m.mode}): ${m.cpuModel} x${m.cores}, Node ${m.node}; temp ${runDir}`);
  log(`sidecar: node ${m.sidecarNodeFlags} ${m.sidecar}`);
  const rounds = new Map<string, ScenarioResult[]>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const s of SCENARIOS) {
      const id = s === 'floor' ? 'floor' : s.id;
      if (ONLY && !ONLY.has(id)) continue;
      const repeated = s !== 'floor' && s.repeated === true;
      if (round > 1 && !repeated) continue;
      log(`${id}: running${ROUNDS > 1 && repeated ? ` (round ${round} of ${ROUNDS})` : ''}`);
      if (s !== 'floor' && s.postgres) {
        const reachable = await pgQuery('SELECT 1').then(
          () => true,
          (err: Error) => {
            log(
              `${id}: skipped: PostgreSQL at ${BENCH_POSTGRES.host}:${BENCH_POSTGRES.port} (PG* variables) cannot be reached: ${err.message}`,
            );
            return false;
          },
        );
        if (!reachable) continue;
      }
      const r = s === 'floor' ? await runFloor() : await runServerScenario(s);
      if (s !== 'floor' && s.postgres) await pgQuery(`DROP SCHEMA IF EXISTS ${pgSchemaOf(s)} CASCADE`).catch(() => {});
      rounds.set(id, [...(rounds.get(id) ?? []), r]);
      log(summaryLine(r));
    }
  }
  // One row per scenario, in the order of SCENARIOS (see rounds.ts).
  const results: ScenarioResult[] = [...rounds.values()].map(combineRounds);
  const by = new Map(results.map((r) => [r.id, r]));
  for (const s of SCENARIOS) {
    if (s === 'floor') continue;
    const r = by.get(s.id);
    if (!r || r.eventsPerSec === null) continue;
    r.ratioFloor = s.compareTo.floor ? roundRatio(rounds.get(s.id), rounds.get('floor')).ratio : null;
    r.ratioNaive =
      s.compareTo.naive === null ? null : roundRatio(rounds.get(s.id), rounds.get(s.compareTo.naive)).ratio;
  }
  const t = targets(rounds, by);
  const elapsedS = (performance.now() - startedAt) / 1000;
  const notes = notesText(results);
  const out = [
    '',
    `meshaudit benchmark (${m.mode}), ${m.date}: ${m.cpuModel}, ${m.cores} cores, Node ${m.node}; ${elapsedS.toFixed(0)} s`,
    ...(SIDECAR.other ? [`sidecar (BENCH_SIDECAR): ${m.sidecar}`] : []),
    '',
    textTable(results),
    '',
    'Targets (issues 4, 18 and 20; a MISS never fails the run; a pass is every target in two of three full runs):',
    targetsText(t),
    ...(notes ? ['', 'Notes:', notes] : []),
    ...results.flatMap((r) => (r.profile ? ['', `${r.id}: ${formatProfile(r.profile)}`] : [])),
    '',
  ];
  process.stdout.write(out.join('\n'));
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(
    path.join(RESULTS_DIR, 'latest.json'),
    `${JSON.stringify({ machine: m, elapsedS, results, targets: t }, null, 2)}\n`,
  );
  fs.writeFileSync(path.join(RESULTS_DIR, 'latest.md'), markdown(m, results, t));
  process.stdout.write(
    `wrote ${path.relative(process.cwd(), RESULTS_DIR)}/latest.json and latest.md${PROFILE ? `; CPU profiles in ${profileDir}` : ''}\n`,
  );
  const broken = results.filter(roundFailed);
  if (broken.length > 0) {
    process.stdout.write(
      `bench: ${broken.map((r) => r.id).join(', ')} failed (errors or the exactly-once check): see above\n`,
    );
    process.exit(1);
  }
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
