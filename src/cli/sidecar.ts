// The composition root: config -> sinks + checkpoint (recovery) -> writer -> pipeline -> gRPC server.
import type { Config } from '../config/types';
import { FileSink } from '../backends/file';
import type { FileSinkEvent } from '../backends/file';
import type { Sink } from '../backends/sink';
import { Checkpoint } from '../store/checkpoint';
import { AuditWriter } from '../pipeline/writer';
import { AuditPipeline } from '../pipeline/pipeline';
import { compileRules } from '../rules';
import type { AccessAudit } from '../rules';
import type { Logger } from '../log';
import { AuditServiceImpl } from '../server/audit-service';
import { startGrpcServer } from '../server/grpc-server';
import type { RecordDateFormatter } from '../events/rfc3339';

export interface SidecarOptions {
  config: Config;
  audits: readonly AccessAudit[];
  log: Logger;
  now?: () => Date;
  dates?: RecordDateFormatter;
  /** Replaces the configured file backends (tests that need a sink they control). */
  sinks?: Sink[];
}

export interface Sidecar {
  readonly port: number;
  readonly pipeline: AuditPipeline;
  /** Bytes accepted and not yet written, and open control-plane streams. */
  load(): { pendingBytes: number; streams: number };
  /** Replaces the rules in force (no record is written: loading rules is configuration). */
  setAudits(audits: readonly AccessAudit[]): void;
  /** Graceful stop: in-flight batches are acknowledged, then everything is closed. */
  stop(): Promise<void>;
}

function logSinkEvent(log: Logger, e: FileSinkEvent): void {
  const { type, ...fields } = e;
  // Recovery that had to keep data it could not place may mean a duplicate after the CP resends.
  const level = type === 'retention-failed' ? 'error' : type.startsWith('recovery-committed') ? 'warn' : 'info';
  log[level](`audit file: ${type}`, fields);
}

export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const { config, log } = opts;
  const now = opts.now ?? (() => new Date());
  const checkpoint = new Checkpoint(config.dataDir, { fsync: config.fsync });
  const { state, droppedTail } = checkpoint.load();
  if (droppedTail) log.warn('checkpoint: dropped a torn last line (a crash during a commit; that batch was never acknowledged)');

  const sinks = opts.sinks ?? config.backends.map(
    (b) => new FileSink({ path: b.path, rotation: b.rotation, fsync: config.fsync, now, onEvent: (e) => logSinkEvent(log, e) }),
  );
  for (const sink of sinks) {
    const pos = await sink.open(state.positions.get(sink.key));
    state.positions.set(sink.key, pos);
  }
  const writer = new AuditWriter(sinks, checkpoint, {
    onError: (err, attempt) => log.error('audit write failed; retrying (nothing is acknowledged until it succeeds)', { err, attempt }),
  });
  let rules = compileRules(opts.audits, config.skipDefaultTypes);
  const pipeline = new AuditPipeline(writer, rules, state.seqs, () => now().getTime(), opts.dates);
  const audit = new AuditServiceImpl(pipeline, writer, log);
  const grpcServer = await startGrpcServer({
    address: config.grpcAddress,
    maxMessageBytes: config.grpcMaxMessageBytes,
    audit,
    listAccessAudits: () => rules.audits.map((a) => a.name).sort(),
    log,
  });
  log.info('meshaudit started', {
    zone: config.zone,
    grpc: `${config.grpcAddress.replace(/:\d+$/, '')}:${grpcServer.port}`,
    files: config.backends.map((b) => b.path),
    dataDir: config.dataDir,
    accessAudits: opts.audits.map((a) => a.name),
    identifiers: state.seqs.size,
  });

  let stopping: Promise<void> | undefined;
  return {
    port: grpcServer.port,
    pipeline,
    load: () => ({ pendingBytes: writer.pendingBytes, streams: audit.streamCount }),
    setAudits(audits) {
      rules = compileRules(audits, config.skipDefaultTypes);
      pipeline.setRules(rules);
    },
    stop() {
      stopping ??= (async () => {
        log.info('meshaudit stopping: acknowledging in-flight batches');
        grpcServer.beginDrain();
        await writer.close(config.drainTimeoutMs);
        await grpcServer.shutdown(1000);
        log.info('meshaudit stopped', { ...pipeline.stats, writeFailures: writer.failures });
      })();
      return stopping;
    },
  };
}
