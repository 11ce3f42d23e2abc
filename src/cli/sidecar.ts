// The composition root: config -> sinks + checkpoint (recovery) -> writer -> evaluator -> sequencer and
// single records -> services -> gRPC server.
import * as path from 'node:path';
import type { Config } from '../config/types';
import { diffConfig, LiveLimits } from '../config/reload';
import { ConfigError } from '../config';
import { FileSink, FinalAfterCommit } from '../backends/file';
import type { Doomed, FileSinkEvent } from '../backends/file';
import type { Sink, SinkPosition } from '../backends/sink';
import { DataDirLock } from '../store/data-dir-lock';
import { Checkpoint } from '../store/checkpoint';
import { AccessAuditStore, namesChanged } from '../store/access-audit-store';
import type { PreparedChange, RuleStore, StoreOptions } from '../store/access-audit-store';
import { PostgresAccessAuditStore } from '../store/postgres-store';
import { IntegrityTrail, type TrailEvent } from '../integrity/trail';
import { loadSigningKey, type SigningKey } from '../integrity/key-pair';
import { AuditWriter, type WriterOptions } from '../pipeline/writer';
import { BatchEvaluator } from '../pipeline/evaluate-batch';
import { Sequencer } from '../pipeline/sequencer';
import { SingleRecords } from '../pipeline/single-records';
import { RecordDateFormatter } from '../record/dates';
import { compileRules, type TypeRegistry, typeRegistry } from '../rules';
import type { ValidAccessAudit } from '../rules';
import { type Logger, RateLimitedWarning } from '../log';
import { Metrics } from '../metrics';
import { version } from './version';
import { formatViolation } from '../validators';
import { Authenticator } from '../server/authn';
import { AuditServiceImpl } from '../server/audit-service';
import { bindGrpcServer, serveGrpc } from '../server/grpc-server';
import type { BoundGrpcServer } from '../server/grpc-server';
import { RuleServiceImpl } from '../server/rule-service';
import { ReadServiceImpl } from '../server/read-service';
import { CommittedTrail, rotationTimeMs } from '../backends/file/trail-reader';
import { ServingState } from '../server/serving-state';
import { Statuses } from '../server/status';
import { AdminServer } from '../admin/admin-server';
import { NatsForwarder } from '../forward/nats-forwarder';

export interface SidecarOptions {
  config: Config;
  /**
   * The AccessAudits of the --rules files (validated): they seed the store (see
   * src/store/access-audit-store.ts). Undefined when no --rules file was given: the store is then
   * left as it is, so starting without --rules never deletes what earlier files put there.
   */
  audits: readonly ValidAccessAudit[] | undefined;
  log: Logger;
  now?: () => Date;
  /** A fixed UTC offset for record dates, in minutes (tests); undefined: the machine's local time zone. */
  utcOffsetMinutes?: number;
  /** The metrics to count into; a new registry by default (the admin serves it). */
  metrics?: Metrics;
  /**
   * process_* and nodejs_* metrics too (the process: main.ts). Off by default: each registry that has
   * them keeps a GC observer for the life of the process, and tests start hundreds of sidecars.
   */
  processMetrics?: boolean;
  /** Replaces the configured file backends (tests that need a sink they control). */
  sinks?: Sink[];
  /** The writer's bounds and retry delays (tests that need a small high-water mark); its defaults otherwise. */
  writer?: Omit<WriterOptions, 'onError'>;
  /**
   * Called when the sidecar must stop at once, writing nothing more (another process took its data
   * directory over): the process exits (main.ts). Without it (tests), commits keep failing instead.
   */
  onFatal?: (message: string) => void;
}

export interface Sidecar {
  readonly port: number;
  /** `host:port` the admin listens on (meshaudit.admin.address, the port bound); undefined: off. */
  readonly adminAddress: string | undefined;
  /** `host:port` of the probe listener (meshaudit.admin.probeAddress); undefined: off. */
  readonly probeAddress: string | undefined;
  /** Everything the sidecar counts (what was done with the events since start among it). */
  readonly metrics: Metrics;
  /** Each control plane's identifier with its last accepted and last acknowledged sequence. */
  identifiers(): ReturnType<Sequencer['positions']>;
  /** Bytes accepted and not yet written, and open control-plane streams. */
  load(): { pendingBytes: number; streams: number };
  /**
   * Reopens every backend's active file at its path (POST /reopen_logs, SIGUSR2), after what was
   * written is committed: a file an operator moved away is made again. Logs a line.
   */
  reopenFiles(): Promise<Array<{ file: string; ino: number; size: number }>>;
  /** Reads the TLS files again (SIGHUP); a set that cannot be used keeps the one in force. */
  reloadTls(): void;
  /** The config in force: the last one reloaded, with the start-up value of every key that needs a restart. */
  readonly config: Config;
  /**
   * Puts a new config in force (SIGHUP, the config or rules files changed), with the --rules files' AccessAudits
   * (undefined: no --rules files). What src/config/reload.ts calls live changes now; a key that needs a
   * restart keeps its value, with one warning line naming it. What can fail (a tokens file, TLS files,
   * the rules under the new limits) is done first: on failure it throws, and the config in force stays whole.
   */
  reload(next: Config, audits: readonly ValidAccessAudit[] | undefined): Promise<ReloadSummary>;
  /** Graceful stop: in-flight batches are acknowledged, then everything is closed. */
  stop(): Promise<void>;
}

/** What a reload changed: keys of src/config/reload.ts, and the rules. */
export interface ReloadSummary {
  readonly changed: readonly string[];
  readonly restartNeeded: readonly string[];
  /** What the --rules files changed; undefined: no --rules files; a string: why they were not put in force. */
  readonly rules: SeedSummary | string | undefined;
}

/** What a seed from the --rules files changed, by resource name. */
export interface SeedSummary {
  created: string[];
  updated: string[];
  deleted: string[];
  unchanged: string[];
}

function summarise(change: PreparedChange): SeedSummary {
  const [created, updated, deleted] = (['CREATE', 'UPDATE', 'DELETE'] as const).map((action) =>
    namesChanged(change, action),
  );
  return { created, updated, deleted, unchanged: [...change.unchanged] };
}

/** Every resource type a rule may name, with its scope: the registry plus the configured extra types. */
export function knownTypesOf(config: Config): TypeRegistry {
  return typeRegistry(config.extraResourceTypes);
}

function logSinkEvent(log: Logger, e: FileSinkEvent): void {
  const { type, ...fields } = e;
  // Recovery that had to keep data it could not place may mean a duplicate after the CP resends.
  const level =
    type === 'retention-failed' || type === 'compression-failed'
      ? 'error'
      : type.startsWith('recovery-committed')
        ? 'warn'
        : 'info';
  log[level](`audit file: ${type}`, fields);
}

/** The signing key in use, at start-up: its id, and where its public key is for `meshaudit verify`. */
function logSigningKey(log: Logger, signing: SigningKey): void {
  const fields = {
    keyId: signing.keyId,
    ...(signing.publicKeyFile === undefined ? {} : { publicKeyFile: signing.publicKeyFile }),
  };
  if (signing.generated) {
    log.warn(
      'integrity: generated a signing key in the data directory; its owner could re-sign an edited trail: use meshaudit.integrity.keyFile from a secret in production',
      { ...fields, publicKey: signing.publicKeyPem },
    );
  } else log.info('integrity: signing digests and seals', fields);
}

function logTrailEvent(log: Logger, failures: RateLimitedWarning, e: TrailEvent): void {
  switch (e.type) {
    case 'digest-written':
      log.debug('integrity: digest written', { file: e.file, records: e.records });
      return;
    case 'marker-written':
      log.info('integrity: retention marker written', { file: e.file, reason: e.reason });
      return;
    case 'seal-mismatch':
      log.error(
        'integrity: the active file no longer holds what its last seal sealed (changed while the sidecar was stopped); that seal is kept as evidence',
        { file: e.file, evidence: e.evidence },
      );
      return;
    case 'active-file-shorter':
      failures.warn(
        `shorter:${e.file}`,
        "integrity: the active file is shorter than what was acknowledged (cut behind the sidecar's back): it is not sealed again, the last seal stays as evidence",
        { file: e.file, committed: e.committed, found: e.found },
      );
      return;
    case 'failed':
      failures.warn(e.what, `integrity: ${e.what} failed; writing and acknowledging go on`, { err: e.error });
  }
}

/** Said at start-up and by --check-config while no caller needs a credential. */
export const UNAUTHENTICATED_WARNING =
  'callers are not authenticated: every local process is the admin (meshaudit.auth.localhostIsAdmin) and can ' +
  'stream under any identifier; configure tokens or client certificates and turn localhostIsAdmin off to require credentials';

/** What a dropped checkpoint tail means, for the log and --check-config. */
export function droppedTailMeaning(tail: 'torn line' | 'lost pages'): string {
  return tail === 'torn line'
    ? 'a torn last line (a crash during a commit; that group was never acknowledged)'
    : 'a tail of NUL bytes (a crash of the machine with meshaudit.fsync off: groups acknowledged just before ' +
        'it may be lost; the audit files are cut back to match, and the control plane resends from there)';
}

/** A write that keeps failing the same way is logged at most once in this long. */
const WRITE_FAILURE_LOG_INTERVAL_MS = 60_000;

/** What start-up makes before it takes the data directory: the admin answers from then on. */
interface Early {
  readonly bound: BoundGrpcServer;
  readonly admin: AdminServer;
  readonly auth: Authenticator;
  readonly serving: ServingState;
  readonly metrics: Metrics;
  /** The config in force: the one started with, then each reload's (/config_dump shows it). */
  readonly inForce: { config: Config };
}

export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const { config, log } = opts;
  const inForce = { config };
  const metrics =
    opts.metrics ??
    new Metrics({
      zone: config.zone,
      version: version(),
      processMetrics: opts.processMetrics ?? false,
      filesystems: () => [
        { name: 'data', path: config.dataDir },
        ...config.backends.map((b) => ({ name: `backend:${b.path}`, path: path.dirname(b.path) })),
      ],
    });
  // /ready, gRPC health and meshaudit_ready read one state: starting until the services are added.
  const serving = new ServingState({ starting: true });
  const ready = (): void => metrics.ready.set(serving.healthy ? 1 : 0);
  serving.on('change', ready);
  ready();
  // The port first, then the store: a port in use or a corrupt store stops start-up before any
  // state or audit file is opened or written.
  const bound = await bindGrpcServer(config.grpcAddress, config.limits, log, config.tls, config.unixSocket);
  let auth: Authenticator | undefined;
  let admin: AdminServer | undefined;
  try {
    auth = new Authenticator(config.auth, log, config.unixSocket, { metrics });
    if (!auth.authenticates(config)) log.warn(UNAUTHENTICATED_WARNING);
    // Right after gRPC's port: a kubelet's probe is answered (503 starting) while the store and the
    // files are read, and a port in use stops start-up before they are.
    admin = await AdminServer.listen(config.admin, {
      config: () => inForce.config,
      version: version(),
      serving,
      metrics,
      auth,
      log,
      tls: bound.tls,
      now: opts.now === undefined ? undefined : () => (opts.now as () => Date)().getTime(),
    });
    return await startOnBoundServer(opts, { bound, admin, auth, serving, metrics, inForce });
  } catch (err) {
    admin?.close();
    auth?.close();
    bound.forceClose();
    throw err;
  }
}

async function startOnBoundServer(opts: SidecarOptions, early: Early): Promise<Sidecar> {
  const { config, log } = opts;
  const lock = await DataDirLock.take(config.dataDir, {
    modes: config.files,
    onWatch: (holder, file, ms) =>
      log.warn(
        `${file} is held from another host or pid namespace: waiting ${ms / 1000} s for its heartbeat before taking it over`,
        { holder },
      ),
    onLost: (reason) => log.error('the data directory lock is gone: the next commit takes it again', { reason }),
    // Fail-stop: a sidecar that goes on beside another on one directory would cut the other's files.
    // Unacknowledged batches are resent by the control plane to whichever sidecar holds the directory.
    onTakenOver: (reason) => {
      const message = 'another meshaudit took the data directory over: stopping at once, writing nothing more';
      log.error(message, { dataDir: config.dataDir, reason });
      (opts.onFatal ?? (() => {}))(`${message} (${reason})`);
    },
    onHeartbeatError: (err) =>
      log.warn("can't touch the data directory lock; trying again at the next heartbeat", { err }),
  });
  // What start-up opened that a failure later in it must close (the store's connections).
  const toClose: Array<() => Promise<void>> = [];
  try {
    return await startLocked(opts, early, lock, toClose);
  } catch (err) {
    await Promise.allSettled(toClose.map((close) => close()));
    lock.release();
    throw err;
  }
}

/** A store that cannot be reached is said once per this long at most (a database that flaps). */
const STORE_DEGRADED_LOG_INTERVAL_MS = 60_000;

/**
 * Follows the zone's PostgreSQL store: a change another replica made is put in force at once; while the
 * database cannot be reached the sidecar is degraded (/ready, /server_info, meshaudit_store_degraded, a log
 * line); when it answers again, the zone is read again (what changed meanwhile is logged) and --rules files
 * that could not be put in force meanwhile are.
 */
function watchZoneStore(
  store: PostgresAccessAuditStore,
  ctx: {
    ruleService: RuleServiceImpl;
    serving: ServingState;
    metrics: Metrics;
    log: Logger;
    seedPending: () => readonly ValidAccessAudit[] | undefined;
    seed: (audits: readonly ValidAccessAudit[]) => Promise<SeedSummary>;
  },
): void {
  const { ruleService, serving, metrics, log } = ctx;
  const lines = new RateLimitedWarning(log, STORE_DEGRADED_LOG_INTERVAL_MS, Date.now, 'warn');
  const failed = (what: string) => (err: unknown) =>
    log.warn(`${what} failed: the rules in force stay; the store is read again when it answers`, { err });
  const degraded = (reason: string): void => {
    serving.setDegraded(
      `AccessAudit store unreachable (${reason}); recording with the last rules read, rule changes refused`,
    );
    metrics.storeDegraded.set(1);
    lines.warn(
      'store-degraded',
      'the AccessAudit store cannot be reached: recording goes on with the last rules read; rule changes are refused until it answers',
      { store: store.location, reason },
    );
  };
  if (store.degraded !== undefined) degraded(store.degraded);
  store.on('degraded', degraded);
  store.on('notified', () => ruleService.refresh('changed by another replica').catch(failed('reading the zone')));
  store.on('restored', () => {
    serving.setDegraded(undefined);
    metrics.storeDegraded.set(0);
    ruleService
      .refresh('read again after the database answered')
      .then(async (diff) => {
        log.info('the AccessAudit store answers again: rule changes are taken', {
          store: store.location,
          changedMeanwhile: diff ?? 'nothing',
        });
        const pending = ctx.seedPending();
        if (pending !== undefined)
          log.info('AccessAudits seeded from the rules files', { ...(await ctx.seed(pending)) });
      })
      .catch(failed('reading the zone again'));
  });
}

/**
 * Opens the store meshaudit.store names, and logs the warnings of what it holds. PostgreSQL: one that
 * cannot be reached starts on its cache (and says so), or throws without one.
 */
async function openStore(config: Config, options: StoreOptions, log: Logger): Promise<RuleStore> {
  if (config.store.postgres === undefined) {
    const store = new AccessAuditStore(config.dataDir, options);
    for (const w of store.load()) log.warn(`AccessAudit store ${store.file}: ${formatViolation(w)}`);
    return store;
  }
  const { store, warnings, startedOnCache, cacheReplaced } = await PostgresAccessAuditStore.open({
    cache: options,
    zone: config.zone,
    dataDir: config.dataDir,
    config: { ...config.store, postgres: config.store.postgres },
    onCacheError: (err) =>
      log.error(
        "the AccessAudit store's cache cannot be written: the rules in force follow the database, but a start while it is down would start on older ones",
        { err },
      ),
  });
  for (const w of warnings) log.warn(`AccessAudit store ${store.location}: ${formatViolation(w)}`);
  if (cacheReplaced !== undefined) {
    log.warn("the AccessAudit store's cache could not be read: written again from the database", {
      store: store.location,
      cache: store.cacheFile,
      reason: cacheReplaced,
    });
  }
  if (startedOnCache !== undefined) {
    log.warn('the AccessAudit store cannot be reached: starting on the rules cached when it was last read', {
      store: store.location,
      cache: store.cacheFile,
      reason: startedOnCache,
    });
  }
  return store;
}

async function startLocked(
  opts: SidecarOptions,
  early: Early,
  lock: DataDirLock,
  toClose: Array<() => Promise<void>>,
): Promise<Sidecar> {
  const { config, log } = opts;
  const { bound, admin, auth, serving, metrics, inForce } = early;
  const now = opts.now ?? (() => new Date());
  // Everything that can refuse to start (a corrupt store or checkpoint, a tokens file) is read before
  // anything is written.
  const knownTypes = knownTypesOf(config);
  // Read on each use by the components that take them, swapped whole by a reload.
  const limits = new LiveLimits(config.limits);
  const storeOptions: StoreOptions = {
    modes: config.files,
    knownTypes,
    onSyncError: (err) => log.error('AccessAudit store: a change may not survive a power loss', { err }),
    get maxAccessAudits() {
      return limits.accessAudits;
    },
    get maxRules() {
      return limits.rulesPerAccessAudit;
    },
  };
  const store = await openStore(config, storeOptions, log);
  toClose.push(() => store.close());
  const checkpoint = new Checkpoint(config.dataDir, {
    modes: config.files,
    fsync: config.fsync,
    // The data directory was removed (or another process replaced the checkpoint): the lock is taken
    // again and the store written again, or nothing more is acknowledged.
    onLost: async () => {
      log.error('the data directory lost its checkpoint while running: taking it back from memory', {
        dataDir: config.dataDir,
      });
      await lock.ensureHeld(true);
      store.persistAgain();
    },
    // Nothing is committed while another process holds the lock (a heartbeat found it taken over).
    beforeCommit: () => (lock.lostBecause === undefined ? undefined : lock.ensureHeld()),
  });
  const { state, droppedTail } = checkpoint.load();
  if (droppedTail) log.warn(`checkpoint: dropped ${droppedTailMeaning(droppedTail)}`);

  const fileSinks = new Map<string, FileSink>();
  // The tamper-evident trail of each file backend (meshaudit.integrity): signed digests, markers and seals.
  const signing =
    config.integrity.enabled && opts.sinks === undefined
      ? loadSigningKey(config.integrity.keyFile, config.dataDir)
      : undefined;
  if (signing !== undefined) logSigningKey(log, signing);
  const trailFailures = new RateLimitedWarning(log, WRITE_FAILURE_LOG_INTERVAL_MS, Date.now, 'error');
  const trails = new Map<string, IntegrityTrail>();
  // What ReadService reads (the first file backend, as far as it is committed): made once the sinks are
  // open; retention at open, before it, has no reader to tell.
  let readable: CommittedTrail | undefined;
  // rotation.compress, as the config in force says (a reload turns it on or off for files final after it).
  const compress = (key: string, rotatedFile: string): void => {
    if (inForce.config.backends.find((b) => b.path === key)?.rotation.compress !== true) return;
    void fileSinks.get(key)?.compressRotated(rotatedFile);
  };
  // The forwarders (meshaudit.forwarders) read the first file backend; their cursors are read now, so that
  // retention holds what they have not read from its first run (at open) on. They connect once it is open.
  const forwarded = opts.sinks === undefined ? config.backends[0]?.path : undefined;
  const forwarders =
    forwarded === undefined
      ? []
      : config.forwarders.map(
          (f) =>
            new NatsForwarder({
              config: f,
              zone: config.zone,
              activePath: forwarded,
              dataDir: config.dataDir,
              modes: config.files,
              chain: config.integrity.enabled,
              log,
              metrics,
              recordsCommitted: () => metrics.eventsRecorded.total,
            }),
        );
  const retentionHold =
    forwarders.length === 0
      ? undefined
      : async (doomed: readonly Doomed[]): Promise<ReadonlySet<string>> =>
          new Set((await Promise.all(forwarders.map((f) => f.hold(doomed)))).flatMap((held) => [...held]));
  // Without the trail, a rotated file is final for compression at the commit after its rotation (the
  // trail decides the same before it digests, and compression follows its digests).
  const finalFiles = new Map<string, FinalAfterCommit>();
  const sinks =
    opts.sinks ??
    config.backends.map((b) => {
      const trail =
        signing === undefined
          ? undefined
          : new IntegrityTrail({
              activePath: b.path,
              zone: config.zone,
              key: signing.key,
              sealIntervalMs: config.integrity.sealIntervalMs,
              copyTo: config.integrity.copyTo,
              modes: config.files,
              now,
              onEvent: (e) => {
                logTrailEvent(log, trailFailures, e);
                // The digest covers the uncompressed bytes: the file is compressed once it is written.
                if (e.type === 'digest-written') compress(b.path, path.join(path.dirname(b.path), e.file));
              },
            });
      if (trail !== undefined) trails.set(b.path, trail);
      const sink = new FileSink({
        beforeRetentionDelete: trail === undefined ? undefined : (doomed) => trail.beforeDelete(doomed),
        retentionHold: b.path === forwarded ? retentionHold : undefined,
        modes: config.files,
        path: b.path,
        rotation: b.rotation,
        fsync: config.fsync,
        now,
        onEvent: (e) => {
          logSinkEvent(log, e);
          if (e.type === 'rotated') {
            trail?.rotated(e.rotatedFile);
            finalFiles.get(b.path)?.rotated(e.rotatedFile);
            metrics.rotations.labels(e.file).inc();
          } else if (e.type === 'compressed' || e.type === 'compression-failed') {
            metrics.compressions.labels(e.file, e.type === 'compressed' ? 'ok' : 'failed').inc();
          } else if (e.type === 'retention-deleted') {
            metrics.retentionDeletedFiles.labels(e.file).inc(e.deleted.length);
            if (readable !== undefined && e.file === readable.activePath)
              readable.deleted(e.deleted.map((name) => rotationTimeMs(e.file, name)));
          }
        },
      });
      fileSinks.set(b.path, sink);
      return sink;
    });
  for (const sink of sinks) metrics.addBackend(sink.key);
  const opened = new Map<string, SinkPosition>();
  for (const sink of sinks) opened.set(sink.key, await sink.open(state.positions.get(sink.key)));
  // Commit where every file starts before the first write: otherwise a crash right after the first
  // write (or the first write to a newly added backend) leaves no position to cut back to, and the
  // control plane's resend would duplicate those records.
  await checkpoint.commit({ seqs: new Map(), positions: opened });
  metrics.checkpointBytes.set(checkpoint.sizeBytes);
  // Every file is final up to its committed position now: each trail takes its chain up and seals.
  for (const [key, trail] of trails) await trail.open(opened.get(key) as SinkPosition, state.seqs);
  // What ReadService reads: the first file backend, as far as it is committed.
  const firstFile = opts.sinks === undefined ? fileSinks.get(config.backends[0]?.path) : undefined;
  readable = firstFile === undefined ? undefined : new CommittedTrail(firstFile.key, opened.get(firstFile.key));
  for (const [key, sink] of fileSinks) {
    if (!trails.has(key)) finalFiles.set(key, new FinalAfterCommit((opened.get(key) as SinkPosition).ino));
    // Every rotated file is final now (and digested): those a stop or a crash left plain are compressed.
    for (const file of await sink.plainRotatedFiles()) compress(key, file);
  }
  // A stream that is missing (create false) stops start-up; NATS unreachable does not: the zone never waits.
  for (const f of forwarders) {
    toClose.push(() => f.stop(config.drainTimeoutMs));
    await f.start(readable as CommittedTrail);
  }
  const writeFailures = new RateLimitedWarning(log, WRITE_FAILURE_LOG_INTERVAL_MS, Date.now, 'error');
  const writer = new AuditWriter(sinks, checkpoint, {
    ...opts.writer,
    metrics,
    onCommitted: (delta) => {
      for (const [key, trail] of trails) trail.committed(delta.positions.get(key), delta.seqs);
      if (readable !== undefined) readable.commit(delta.positions.get(readable.activePath));
      for (const [key, final] of finalFiles)
        for (const file of final.committed(delta.positions.get(key))) compress(key, file);
    },
    // A group that spanned a pause long enough for a takeover: the lock is looked at before its ack.
    confirmAfterPause: () => lock.ensureHeld(true),
    // A disk that stays full fails every retry (every 5 s at most): one line a minute per kind of error,
    // each saying how many it left out; meshaudit_write_failures_total counts them all.
    onError: (err, attempt) =>
      writeFailures.warn(err.message, 'audit write failed; retrying (nothing is acknowledged until it succeeds)', {
        err,
        attempt,
      }),
    onFailing: (parts) => {
      if (parts.length > 0) log.error('cannot write: health is NOT_SERVING until it can', { failing: parts });
      else log.info('writing again: health is SERVING');
      serving.setFailing(parts);
    },
  });
  const offset = opts.utcOffsetMinutes;
  const dates = new RecordDateFormatter(offset === undefined ? undefined : () => offset);
  const evaluator = new BatchEvaluator(compileRules(store.list(), config.skipDefaultTypes), dates, config.limits);
  const clock = () => now().getTime();
  const sequencer = new Sequencer(writer, evaluator, state.seqs, {
    zone: config.zone,
    now: clock,
    metrics,
    onEvaluationError: (failure, identifier, firstSeq) =>
      log.error(
        'a batch could not be evaluated: its new events are rejected and not written (a sidecar bug; please report it)',
        { identifier, firstSeq, err: failure },
      ),
  });
  const singles = new SingleRecords(writer, evaluator, { now: clock, metrics, dates });
  const statuses = new Statuses(log, config.limits.statusBytes);
  const audit = new AuditServiceImpl({
    auth,
    sequencer,
    singles,
    queued: writer.queued,
    serving,
    statuses,
    log,
    get eventsPerBatch() {
      return limits.eventsPerBatch;
    },
    metrics,
  });
  const ruleService = new RuleServiceImpl({
    store,
    evaluator,
    singles,
    serving,
    knownTypes,
    skipDefaultTypes: config.skipDefaultTypes,
    limits,
    statuses,
    auth,
    log,
    metrics,
  });
  // The --rules files seed the store before the first call is served, through the rule service, so
  // that what they change is recorded like any other change (by the rules-files user). A store that
  // cannot be reached is seeded once it answers.
  let pendingSeed: readonly ValidAccessAudit[] | undefined;
  const seed = async (audits: readonly ValidAccessAudit[]): Promise<SeedSummary> => {
    pendingSeed = store.degraded === undefined ? undefined : audits;
    try {
      return summarise(await ruleService.seed(audits));
    } catch (err) {
      if (store.degraded !== undefined) pendingSeed = audits;
      throw err;
    }
  };
  if (opts.audits === undefined) {
    log.info('no --rules files: the AccessAudits of the store are in force as they are', { store: store.location });
  } else if (store.degraded !== undefined) {
    pendingSeed = opts.audits;
    log.warn('the --rules files are put in force once the AccessAudit store answers', { store: store.location });
  } else {
    log.info('AccessAudits seeded from the rules files', { ...(await seed(opts.audits)) });
  }
  if (store instanceof PostgresAccessAuditStore) {
    watchZoneStore(store, { ruleService, serving, metrics, log, seedPending: () => pendingSeed, seed });
    // A change another replica committed while this one started (its notification had no listener yet).
    await ruleService.refresh('read at start-up');
  }
  const reopenFiles = async (): Promise<Array<{ file: string; ino: number; size: number }>> => {
    try {
      const positions = await writer.reopen();
      const files = [...positions].map(([file, p]) => ({ file, ino: p.ino, size: p.size }));
      log.info('audit files reopened', { files });
      return files;
    } catch (err) {
      log.error('reopening the audit files failed: writing goes on, and the next write opens them', { err });
      throw err;
    }
  };
  admin.attach({
    identifiers: () => sequencer.positions(),
    accessAudits: () => store.list(),
    store: () => ({ type: store.type, location: store.location, degraded: store.degraded }),
    forwarders: () => forwarders.map((f) => f.status()),
    reopenFiles,
  });
  const read = new ReadServiceImpl({ trail: readable, knownTypes, serving, statuses, auth, log, metrics });
  serving.started();
  const grpcServer = serveGrpc(bound, { audit, rules: ruleService, read, serving, log, statuses });
  log.info('meshaudit started', {
    // Where SIGHUP (reload) and SIGUSR2 (reopen) go: under `make run` or a shell wrapper it is not the parent's.
    pid: process.pid,
    zone: config.zone,
    grpc: config.grpcAddress === 'off' ? 'off' : `${config.grpcAddress.replace(/:\d+$/, '')}:${grpcServer.port}`,
    admin: admin.address ?? 'off',
    ...(admin.probeAddress === undefined ? {} : { probe: admin.probeAddress }),
    ...(config.unixSocket === undefined ? {} : { unixSocket: config.unixSocket.path }),
    files: config.backends.map((b) => b.path),
    dataDir: config.dataDir,
    store: store.location,
    accessAudits: store.list().map((a) => a.name),
    identifiers: state.seqs.size,
    ...(forwarders.length === 0 ? {} : { forwarders: forwarders.map((f) => `${f.name} -> ${f.stream}`) }),
  });

  /** The restart keys the last reload warned about (comma-joined). */
  let warnedRestart = '';
  const reloadNow = async (next: Config, audits: readonly ValidAccessAudit[] | undefined): Promise<ReloadSummary> => {
    const { live, restart, effective } = diffConfig(inForce.config, next);
    // The new file was checked whole, but with a restart key kept (client CAs not turned on yet) its
    // callers could be left with no credential to present: refused as start-up would refuse that file.
    const credentials = effective.auth.tokensFile !== undefined || effective.tls?.clientCaFile !== undefined;
    if (!effective.auth.localhostIsAdmin && !credentials && effective.unixSocket === undefined) {
      throw new ConfigError([
        {
          field: 'meshaudit.auth.localhostIsAdmin',
          description:
            'is false, and with the keys that need a restart kept, no caller could present a credential: every call would be refused',
        },
      ]);
    }
    // A file sink cannot rotate below one byte (a maxSizeMb the config allows, as small as it may be).
    effective.backends.forEach((b, i) => {
      if (b.rotation.enabled && !(b.rotation.maxSizeBytes >= 1)) {
        throw new ConfigError([
          {
            field: `kmesh.access.audit.backends[${i}].file.rotation.maxSizeMb`,
            description: 'must be at least 1 byte',
          },
        ]);
      }
    });
    // What can fail first, changing nothing: a tokens file or TLS files that cannot be used refuse the reload.
    const commitAuth = auth.prepare(effective.auth);
    const commitTls = effective.tls === undefined ? () => {} : (bound.tls?.prepare(effective.tls) ?? (() => {}));
    // The rules files are seeded under the new limits; a seed they refuse puts the old ones back.
    // The rules files are checked under the new limits (the store's bounds); a seed they refuse puts
    // the old limits back, and nothing else was changed.
    const before = limits.current;
    limits.set(effective.limits);
    try {
      if (audits !== undefined) store.prepareSeed(audits);
    } catch (err) {
      limits.set(before);
      throw err;
    }
    // From here nothing can fail: everything is put in force in this turn of the loop but the files'
    // rotation, which waits for the writes queued before it, and the rules (below).
    commitAuth();
    if (live.some((k) => k.startsWith('meshaudit.auth.')) && !auth.authenticates(effective)) {
      log.warn(UNAUTHENTICATED_WARNING);
    }
    commitTls();
    log.setLevel(effective.logLevel);
    evaluator.setLimits(effective.limits);
    statuses.setMaxStatusBytes(effective.limits.statusBytes);
    bound.setLimits(effective.limits);
    const old = new Map(inForce.config.backends.map((b) => [b.path, b.rotation]));
    inForce.config = effective;
    const rotations = effective.backends
      .filter((b) => old.get(b.path) !== b.rotation)
      .map((b) => fileSinks.get(b.path)?.setRotation(b.rotation));
    // Said once per set of keys: a later reload with the same keys pending says it in its
    // `config reloaded` line (restartNeeded), not in another warning.
    if (restart.length > 0 && restart.join() !== warnedRestart) {
      log.warn('config reload: these keys changed and need a restart; their old values stay in force', {
        keys: restart,
      });
    }
    warnedRestart = restart.join();
    await Promise.all(rotations);
    // The rules last: their change is recorded, and a record waits for its write, which a full disk
    // can hold for long. The config above is in force meanwhile (a smaller maxRetainedFiles may be what
    // frees the disk). A seed that fails now (the sidecar is stopping) leaves the rules as they were.
    let rules: SeedSummary | string | undefined;
    if (audits !== undefined) {
      try {
        rules = await seed(audits);
      } catch (err) {
        rules = `not changed: ${(err as Error).message}`;
        log.error('config reloaded, but the rules files could not be put in force; the rules in force stay', {
          err,
        });
      }
    }
    return { changed: live, restartNeeded: restart, rules };
  };
  // One reload at a time: each diffs against the config the one before left in force.
  let reloading: Promise<unknown> = Promise.resolve();
  const reload = (next: Config, audits: readonly ValidAccessAudit[] | undefined): Promise<ReloadSummary> => {
    const run = reloading.then(() => reloadNow(next, audits));
    reloading = run.catch(() => {});
    return run;
  };

  let stopping: Promise<void> | undefined;
  return {
    get config() {
      return inForce.config;
    },
    reload,
    port: grpcServer.port,
    adminAddress: admin.address,
    probeAddress: admin.probeAddress,
    reopenFiles,
    metrics,
    identifiers: () => sequencer.positions(),
    load: () => ({ pendingBytes: writer.queued.size, streams: audit.streamCount }),
    reloadTls() {
      bound.tls?.reload('SIGHUP');
    },
    stop() {
      stopping ??= (async () => {
        log.info('meshaudit stopping: acknowledging in-flight batches');
        serving.drain();
        // The forwarders stop publishing at once and wait for their acknowledgements beside the drain, within it.
        const drainMs = inForce.config.drainTimeoutMs;
        await Promise.all([writer.close(drainMs), ...forwarders.map((f) => f.stop(drainMs))]);
        // After the last write: the final seals say `closed`.
        await Promise.all([...trails.values()].map((t) => t.close()));
        await grpcServer.shutdown(1000);
        // Last: /ready says `draining` to the probes until the process is done.
        admin.close();
        auth.close();
        await store.close();
        lock.release();
        log.info('meshaudit stopped', await metrics.totals());
      })();
      return stopping;
    },
  };
}
