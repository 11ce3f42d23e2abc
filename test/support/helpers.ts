// Shared test fixtures: real temp directories, a real sidecar on 127.0.0.1:0, real gRPC clients.
import { spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { type PeerCertificate, TLSSocket } from 'node:tls';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';
import type { Sink, SinkPosition } from '../../src/backends/sink';
import { defaultConfig } from '../../src/config';
import type { Config, RotationConfig } from '../../src/config/types';
import { type AccessAudit, typeRegistry, type ValidAccessAudit, validateAccessAudit } from '../../src/rules';
import { knownTypesOf, startSidecar, type Sidecar, type SidecarOptions } from '../../src/cli/sidecar';
import { AccessAuditStore } from '../../src/store/access-audit-store';
import { silentLogger } from '../../src/log';
import { meshauditClients } from '../../src/client/services';
import { backendFiles, readAuditFile } from '../../bench/check';

/** Every directory tempDir() made in this run: the root hook removes them all when the run ends. */
const madeDirs: string[] = [];

const healthDefinition = protoLoader.loadSync(protoPath, { enums: String });

/** A client of grpc.health.v1.Health (the library's own .proto, as a load balancer's would be). */
export function healthClient(port: number): grpc.Client & { Check: (...args: unknown[]) => void } {
  const def = grpc.loadPackageDefinition(healthDefinition) as any;
  return new def.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** A new directory under the run's temp directory (`make test` gives each run one of its own). */
export function tempDir(prefix = 'meshaudit-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

/** Removes every directory tempDir() made (the root hook calls it after the last test). */
export function removeTempDirs(): void {
  for (const dir of madeDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

export const NO_ROTATION: RotationConfig = { enabled: false, maxRetainedFiles: 0, maxSizeBytes: 1, maxAgeDays: 0 };

/**
 * The built-in defaults (what production runs), with what a test needs of its own: a free port, its
 * own folders under `dir`, and the zone the tests' control plane names (zone-1); `over` replaces keys.
 */
export function testConfig(dir: string, over: Partial<Config> = {}): Config {
  const defaults = defaultConfig(dir);
  return {
    ...defaults,
    zone: 'zone-1',
    grpcAddress: '127.0.0.1:0',
    // Never the default port (5691): tests run many sidecars at once.
    admin: { address: '127.0.0.1:0', probeAddress: undefined },
    dataDir: path.join(dir, 'data'),
    backends: [{ ...defaults.backends[0], path: path.join(dir, 'audit', 'audit.log') }],
    ...over,
  };
}

export const AUDIT_ALL: AccessAudit = { name: 'all', rules: [{ types: [], mesh: '', access: [], accessAll: true }] };

/** `audit` validated, as the rules files and the API would (it must be valid: the test says so). */
export function valid(audit: AccessAudit): ValidAccessAudit {
  const res = validateAccessAudit(audit, { knownTypes: typeRegistry() });
  if (res.audit === undefined) throw new Error(`a test's AccessAudit is invalid: ${JSON.stringify(res.violations)}`);
  return res.audit;
}

/**
 * Starts a sidecar on `config` with `audits` in its store, as earlier changes left them: the sidecar
 * starts without --rules files, so their seeding records (tested where it is the subject, by passing
 * `extra.audits`) do not mix with what a test counts.
 */
export async function startTestSidecar(
  config: Config,
  audits: readonly AccessAudit[] = [AUDIT_ALL],
  extra: Partial<SidecarOptions> = {},
): Promise<Sidecar> {
  if (!('audits' in extra)) storeAudits(config, audits);
  return startSidecar({ config, audits: undefined, log: silentLogger, utcOffsetMinutes: 0, ...extra });
}

/** Puts `audits` in the store of `config` as a seed would (file-defined; others of earlier seeds go). */
function storeAudits(config: Config, audits: readonly AccessAudit[]): void {
  fs.mkdirSync(config.dataDir, { recursive: true });
  const store = new AccessAuditStore(config.dataDir, { knownTypes: knownTypesOf(config) });
  store.load();
  store.commit(store.prepareSeed(audits.map(valid)));
}

/** Every record line of a backend, oldest file first (rotated files by name, then the active file). */
export function readRecords(activePath: string): string[] {
  const lines: string[] = [];
  // Rotated files oldest first, compressed ones (rotation.compress) gunzipped, then the active file.
  for (const file of backendFiles(path.dirname(activePath), path.basename(activePath))) {
    const text = readAuditFile(file).toString('utf8');
    if (text.length > 0 && !text.endsWith('\n')) throw new Error(`${path.basename(file)} ends with a torn line`);
    for (const l of text.split('\n')) if (l !== '') lines.push(l);
  }
  return lines;
}

export type AnyClient = grpc.Client & Record<string, (...args: any[]) => any>;

/**
 * An AuditService and a RuleService client to 127.0.0.1:port (or a target such as `unix:///path`), in
 * plaintext unless `credentials` say otherwise.
 */
export function clients(
  port: number | string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): { audit: AnyClient; rules: AnyClient; close(): void } {
  const { AuditService, RuleService } = meshauditClients();
  const address = typeof port === 'string' ? port : `127.0.0.1:${port}`;
  const audit = new AuditService(address, credentials) as unknown as AnyClient;
  const rules = new RuleService(address, credentials) as unknown as AnyClient;
  return {
    audit,
    rules,
    close: () => {
      audit.close();
      rules.close();
    },
  };
}

/** Calls a unary method (with `metadata`, if any); resolves with the reply or rejects with the ServiceError. */
export function unary<T>(client: AnyClient, method: string, request: unknown, metadata?: grpc.Metadata): Promise<T> {
  const done =
    (resolve: (r: T) => void, reject: (e: Error) => void) =>
    (err: grpc.ServiceError | null, reply: T): void =>
      err ? reject(err) : resolve(reply);
  return new Promise((resolve, reject) =>
    metadata
      ? client[method](request, metadata, done(resolve, reject))
      : client[method](request, done(resolve, reject)),
  );
}

/** `authorization: Bearer <token>`, as a client sends a token. */
export function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** A resource event whose name carries its sequence, so files can be counted. */
export function resourceEvent(seq: number, action = 'CREATE'): Record<string, unknown> {
  return {
    id: `e-${seq}`,
    date: '2022-09-21T09:31:42Z',
    action,
    resource: { type: 'TrafficRoute', name: `route-${seq}`, mesh: 'default' },
    user: { name: 'cp', groups: ['mesh-system:control-plane'] },
  };
}

/** Opens a stream and returns helpers to drive it message by message. */
export function openStream(
  client: AnyClient,
  metadata?: grpc.Metadata,
): {
  call: grpc.ClientDuplexStream<unknown, any>;
  next(): Promise<any>;
  status: Promise<grpc.ServiceError | null>;
} {
  const call = (metadata ? client.StreamEvents(metadata) : client.StreamEvents()) as grpc.ClientDuplexStream<
    unknown,
    any
  >;
  const queue: any[] = [];
  const waiters: Array<(v: any) => void> = [];
  call.on('data', (m) => (waiters.length ? waiters.shift()!(m) : queue.push(m)));
  const status = new Promise<grpc.ServiceError | null>((resolve) => {
    call.on('error', (e) => resolve(e as grpc.ServiceError));
    call.on('status', (s) => s.code === grpc.status.OK && resolve(null));
  });
  return {
    call,
    next: () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r))),
    status,
  };
}

/**
 * Resolves once `condition()` holds, checking it after every turn of the event loop: for a state the
 * code under test reaches through I/O (a request read, a batch accepted). Not a sleep: it waits for the
 * state, and fails naming it after `timeoutMs`.
 */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The ServiceError a call fails with; rejects when the call succeeds. */
export function failure(call: Promise<unknown>): Promise<grpc.ServiceError> {
  return call.then(
    (reply) => {
      throw new Error(`expected the call to fail, it answered ${JSON.stringify(reply)}`);
    },
    (err: grpc.ServiceError) => err,
  );
}

/** Options of a TestZone start: sidecar options (sinks) and config keys to replace. */
export type TestZoneOptions = Omit<Partial<SidecarOptions>, 'config'> & { config?: Partial<Config> };

/** A sidecar in its own temp directory with its clients, that a test restarts on the same data. */
export class TestZone {
  readonly dir = tempDir();
  sidecar!: Sidecar;
  clients!: ReturnType<typeof clients>;
  /** The active file of the first backend. */
  logPath = '';

  /** `audits` are in the store at start (see startTestSidecar); `extra` replaces options (sinks) or config keys. */
  async start(audits: readonly AccessAudit[] = [AUDIT_ALL], extra: TestZoneOptions = {}): Promise<void> {
    const { config: over, ...options } = extra;
    const config = testConfig(this.dir, over);
    this.logPath = config.backends[0].path;
    this.sidecar = await startTestSidecar(config, audits, options);
    this.clients = clients(this.sidecar.port);
  }

  async stop(): Promise<void> {
    this.clients.close();
    await this.sidecar.stop();
  }

  async restart(audits?: readonly AccessAudit[], extra?: TestZoneOptions): Promise<void> {
    await this.stop();
    await this.start(audits, extra);
  }

  /** The record lines written so far (none when the file does not exist yet). */
  records(): string[] {
    return fs.existsSync(this.logPath) ? readRecords(this.logPath) : [];
  }
}

/**
 * A sink in memory, for tests that need to see or hold the writer's writes. Held (from the start with
 * `{ held: true }`, or after hold()), every write waits until release(): a slow disk, on demand.
 */
export class MemorySink extends EventEmitter implements Sink {
  readonly key = 'memory';
  /** Each write's chunk, in order. */
  readonly writes: string[] = [];
  /** Writes asked for so far (held ones included): each one is also an 'attempt' event. */
  attempts = 0;
  private gate: Promise<void> = Promise.resolve();
  private open_ = (): void => {};

  constructor(opts: { held?: boolean } = {}) {
    super();
    if (opts.held) this.hold();
  }

  /** Every record line written so far. */
  get lines(): string[] {
    return this.writes.join('').split('\n').filter(Boolean);
  }

  hold(): void {
    this.gate = new Promise((resolve) => (this.open_ = resolve));
  }

  release(): void {
    this.open_();
  }

  open(): Promise<SinkPosition> {
    return Promise.resolve({ ino: 1, size: 0 });
  }

  async write(chunk: Buffer): Promise<SinkPosition> {
    this.attempts++;
    this.emit('attempt');
    await this.gate;
    this.writes.push(chunk.toString());
    return { ino: 1, size: this.writes.join('').length };
  }

  reopen(): Promise<SinkPosition> {
    return Promise.resolve({ ino: 1, size: this.writes.join('').length });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The executable `name` on PATH, or null. */
export function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** The real grpcurl, or the test skips; in CI (which puts ../shared/tools/bin on PATH) a missing one fails. */
export function grpcurlOrSkip(test: Mocha.Context): string {
  const grpcurl = onPath('grpcurl');
  if (grpcurl) return grpcurl;
  if (process.env.CI === 'true')
    throw new Error('CI=true and no grpcurl on PATH: .ci/run puts ../shared/tools/bin on it');
  test.skip();
}

/** The error a call (or any promise) is refused with; fails the test if it is not refused. */
export async function refusal(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error('the call was not refused');
}

/**
 * The samples of a Prometheus text exposition (GET /stats/prometheus, Metrics.prometheus()), by series as
 * the text writes it: `meshaudit_events_rejected_total{reason="invalid"}`, `meshaudit_ack_latency_seconds_count`.
 */
export function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** A figure of /proc/<pid>/status in MiB: VmRSS (resident now) or VmHWM (the most it ever was). */
export function memoryMiB(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no ${key} in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/**
 * A gRPC message frame as it travels in HTTP/2 DATA: the compressed flag (0: none), the length (the
 * message's, unless a test says otherwise, whatever follows), the message.
 */
export function grpcFrame(message: Uint8Array, flag = 0, length = message.length): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(length, 1);
  return Buffer.concat([head, message]);
}

/** A pid that is certainly not running: a child that has already exited. */
export function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

/** An answer of the admin HTTP listener. */
export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The server's certificate, over HTTPS. */
  certificate?: PeerCertificate;
}

/**
 * One request to the admin (or probe) listener on 127.0.0.1:port, on a connection of its own: `token`
 * as `Authorization: Bearer`, `ca` for HTTPS (the server's certificate is checked against it), with
 * `cert` and `key` a client certificate (files).
 */
export function adminRequest(
  port: number,
  method: string,
  urlPath: string,
  opts: { token?: string; ca?: string; cert?: string; key?: string; headers?: Record<string, string> } = {},
): Promise<HttpAnswer> {
  const headers = { ...opts.headers, ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }) };
  const options = { host: '127.0.0.1', port, method, path: urlPath, headers, agent: false };
  return new Promise((resolve, reject) => {
    const done = (res: http.IncomingMessage): void => {
      let body = '';
      const socket = res.socket;
      const certificate = socket instanceof TLSSocket ? socket.getPeerCertificate() : undefined;
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, certificate }));
    };
    const req =
      opts.ca === undefined
        ? http.request(options, done)
        : https.request(
            {
              ...options,
              ca: fs.readFileSync(opts.ca),
              ...(opts.cert === undefined ? {} : { cert: fs.readFileSync(opts.cert) }),
              ...(opts.key === undefined ? {} : { key: fs.readFileSync(opts.key) }),
            },
            done,
          );
    req.on('error', reject);
    req.end();
  });
}
