// Every metric the sidecar exports, in one place: prom-client, named meshaudit_* in Prometheus'
// conventions (base units in the name, `_total` for counters). One registry per sidecar, so that tests
// can run several in one process. The hot path counts per batch, never per event, and into plain
// numbers (PlainCounter, PlainGauge, PlainHistogram below) that the registry reads at each scrape:
// prom-client's own inc() and observe() hash their labels and allocate on every call
// (docs/performance.md has the cost).
// The admin serves `registry` at /stats/prometheus and /stats; deploy/grafana and deploy/prometheus
// query these names (a test checks them against a live process).
import * as fs from 'node:fs';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

// ---------------------------------------------------------------------------------------------
// Plain families: what the hot path touches. Each is a prom-client metric as far as the registry is
// concerned (registerMetric, get()), with at most one label, its children bound once by labels().

type Sample = { value: number; labels: Record<string, string | number>; metricName?: string };

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly labelNames: readonly string[];
}

abstract class PlainFamily<C> implements Family {
  readonly aggregator = 'sum';
  abstract readonly type: Family['type'];
  protected readonly children = new Map<string, C>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  protected child(value: string): C {
    let c = this.children.get(value);
    if (c === undefined) {
      c = this.newChild();
      this.children.set(value, c);
    }
    return c;
  }

  protected labelsOf(value: string): Record<string, string> {
    return this.labelNames.length === 0 ? {} : { [this.labelNames[0]]: value };
  }

  protected abstract newChild(): C;
  protected abstract samples(): Sample[];

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples() };
  }
}

/** A counter of plain numbers. Unlabelled: inc(); labelled: labels(value).inc(), the child bound once. */
export class PlainCounter extends PlainFamily<{ value: number }> {
  readonly type = 'counter';
  private readonly own: { value: number };

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[] = []) {
    super(registry, name, help, labelNames);
    // An unlabelled counter is 0 from the start; a labelled one has the series its labels() made.
    this.own = labelNames.length === 0 ? this.child('') : { value: 0 };
  }

  inc(n = 1): void {
    this.own.value += n;
  }

  /** The sum over every series (a forwarder reads how many records were committed since start). */
  get total(): number {
    let sum = 0;
    for (const c of this.children.values()) sum += c.value;
    return sum;
  }

  labels(value: string): { inc(n?: number): void } {
    const c = this.child(value);
    return {
      inc: (n = 1) => {
        c.value += n;
      },
    };
  }

  protected newChild(): { value: number } {
    return { value: 0 };
  }

  protected samples(): Sample[] {
    return [...this.children].map(([label, c]) => ({ value: c.value, labels: this.labelsOf(label) }));
  }
}

/** A gauge of a plain number, set as often as it changes and read at a scrape. */
export class PlainGauge extends PlainFamily<{ value: number }> {
  readonly type = 'gauge';
  private readonly own = this.child('');

  set(value: number): void {
    this.own.value = value;
  }

  protected newChild(): { value: number } {
    return { value: 0 };
  }

  protected samples(): Sample[] {
    return [{ value: this.own.value, labels: {} }];
  }
}

interface HistogramChild {
  /** Per bucket (not cumulative), then the count above the last bound. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** A histogram of plain numbers over LATENCY_BUCKETS, exported as prom-client exports its own. */
export class PlainHistogram extends PlainFamily<HistogramChild> {
  readonly type = 'histogram';
  private readonly own: HistogramChild | undefined;

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[] = []) {
    super(registry, name, help, labelNames);
    this.own = labelNames.length === 0 ? this.child('') : undefined;
  }

  observe(value: number): void {
    observeInto(this.own!, value);
  }

  labels(value: string): { observe(v: number): void } {
    const c = this.child(value);
    return { observe: (v) => observeInto(c, v) };
  }

  /** The series of `labels` at 0 from now on (prom-client's zero()). */
  zero(labels: Record<string, string>): void {
    this.child(labels[this.labelNames[0]] ?? '');
  }

  protected newChild(): HistogramChild {
    return { counts: new Float64Array(LATENCY_BUCKETS.length + 1), sum: 0, count: 0 };
  }

  protected samples(): Sample[] {
    const out: Sample[] = [];
    for (const [label, c] of this.children) {
      const labels = this.labelsOf(label);
      let cumulative = 0;
      LATENCY_BUCKETS.forEach((le, i) => {
        cumulative += c.counts[i];
        out.push({ metricName: `${this.name}_bucket`, value: cumulative, labels: { le, ...labels } });
      });
      out.push({ metricName: `${this.name}_bucket`, value: c.count, labels: { le: '+Inf', ...labels } });
      out.push({ metricName: `${this.name}_sum`, value: c.sum, labels });
      out.push({ metricName: `${this.name}_count`, value: c.count, labels });
    }
    return out;
  }
}

function observeInto(c: HistogramChild, value: number): void {
  let i = 0;
  while (i < LATENCY_BUCKETS.length && value > LATENCY_BUCKETS[i]) i++;
  c.counts[i]++;
  c.sum += value;
  c.count++;
}

/** Why events were rejected (never written, never resent): meshaudit_events_rejected_total{reason}. */
export const REJECT_REASONS = ['invalid', 'too_many', 'evaluation_failed'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Why a control-plane stream was refused or ended by the sidecar: meshaudit_streams_refused_total{reason}. */
export const STREAM_REFUSALS = [
  'zone',
  'invalid_identifier',
  'unauthenticated',
  'permission_denied',
  'taken_over',
  'draining',
  'invalid_request',
  'limit',
  'sequence_gap',
  'internal',
] as const;
export type StreamRefusal = (typeof STREAM_REFUSALS)[number];

/**
 * What a call lacked, for meshaudit_calls_denied_total{permission}: a permission of src/auth/principal.ts
 * (PERMISSIONS; this module comes before it), or `authenticated`, a valid credential at all.
 */
export const DENIED_PERMISSIONS = ['stream', 'manageRules', 'read', 'admin', 'authenticated'] as const;

/** Where a rule change came from: meshaudit_rule_changes_total{source}. */
export const RULE_SOURCES = ['api', 'rules_files'] as const;

// Writes and commits take from tens of microseconds (page cache) to seconds (a stalled disk).
const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** What a forwarder's gauges read from it at a scrape. */
export interface ForwarderGauges {
  readonly lagRecords: number;
  readonly lagSeconds: number;
  readonly connected: boolean;
  readonly heldFiles: number;
}

export interface MetricsOptions {
  readonly zone: string;
  readonly version: string;
  /** The folders whose file system's free space is exported (each backend's folder, the data directory). */
  readonly filesystems?: () => ReadonlyArray<{ readonly name: string; readonly path: string }>;
  /** Process and Node.js metrics (process_*, nodejs_*): for the process's own registry only (see sidecar.ts). */
  readonly processMetrics?: boolean;
}

export class Metrics {
  readonly registry = new Registry();

  /** meshaudit_info{version, zone} 1: joins the zone onto any other series. */
  readonly info: Gauge<'version' | 'zone'>;
  /** 1 while /ready and gRPC health say SERVING. */
  readonly ready: Gauge;
  /** Events received, by how: a control-plane stream or a Record call. */
  readonly eventsReceived: PlainCounter;
  readonly eventsRecorded: PlainCounter;
  /** Valid events no rule covers. */
  readonly eventsSkipped: PlainCounter;
  readonly eventsRejected: PlainCounter;
  /** Stream events sent again after a reconnect, already written once: not written twice. */
  readonly eventsDuplicate: PlainCounter;
  /** StreamEvents batches received, and acknowledged once written. */
  readonly batchesReceived: PlainCounter;
  readonly batchesAcked: PlainCounter;
  /** From a batch's arrival to its ack: what the control plane waits. */
  readonly ackSeconds: PlainHistogram;
  readonly streamsOpen: Gauge;
  readonly streamsRefused: Counter<'reason'>;
  /** A batch that starts past the next expected sequence: events the control plane never sent. */
  readonly sequenceGaps: Counter;
  /** Bytes accepted and not yet written (the writer's queue). */
  readonly pendingBytes: PlainGauge;
  readonly writeSeconds: PlainHistogram;
  readonly commitSeconds: PlainHistogram;
  readonly writtenBytes: PlainCounter;
  readonly rotations: Counter<'backend'>;
  readonly retentionDeletedFiles: Counter<'backend'>;
  readonly compressions: Counter<'backend' | 'result'>;
  readonly writeFailures: Counter<'backend'>;
  readonly checkpointBytes: PlainGauge;
  readonly ruleChanges: Counter<'source'>;
  readonly accessAudits: Gauge;
  readonly storeDegraded: Gauge;
  readonly queriesOpen: Gauge;
  readonly queries: Counter<'mode'>;
  readonly callsDenied: Counter<'permission'>;
  readonly configReloads: Counter<'result'>;
  readonly filesystemAvailBytes: Gauge<'name'>;
  readonly filesystemSizeBytes: Gauge<'name'>;
  /** Records each forwarder published and JetStream acknowledged (a publish per record: plain numbers). */
  readonly forwardPublished: PlainCounter;
  /** Records a forwarder found already in the stream after a restart or reconnect, and did not publish again. */
  readonly forwardSkipped: Counter<'forwarder'>;
  /** Records retention deleted before a forwarder published them (files past maxHeldFiles). */
  readonly forwardLost: Counter<'forwarder'>;
  /** Rotated files retention deleted anyway while a forwarder had not read them (past maxHeldFiles). */
  readonly forwardUnheldFiles: Counter<'forwarder'>;
  /** Connections lost, publishes refused or not acknowledged: each time the forwarder backs off. */
  readonly forwardFailures: Counter<'forwarder'>;
  private readonly forwarders = new Map<string, () => ForwarderGauges>();

  constructor(opts: MetricsOptions) {
    const r = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Counter<L>({ name, help, labelNames, registers: r });
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Gauge<L>({ name, help, labelNames, registers: r });
    // The hot path's families: plain numbers, read at each scrape.
    const plainCounter = (name: string, help: string, labelNames: readonly string[] = []) =>
      new PlainCounter(this.registry, name, help, labelNames);
    const histogram = (name: string, help: string, labelNames: readonly string[] = []) =>
      new PlainHistogram(this.registry, name, help, labelNames);

    this.info = gauge('meshaudit_info', 'The sidecar: its version and zone (always 1).', ['version', 'zone']);
    this.info.labels(opts.version, opts.zone).set(1);
    this.ready = gauge('meshaudit_ready', '1 when the sidecar takes and writes events (as /ready and gRPC health).');
    this.eventsReceived = plainCounter(
      'meshaudit_events_received_total',
      'Events received, by source (stream, record).',
      ['source'],
    );
    this.eventsRecorded = plainCounter('meshaudit_events_recorded_total', 'Records written (events and rule changes).');
    this.eventsSkipped = plainCounter(
      'meshaudit_events_skipped_total',
      'Valid events that no AccessAudit rule covers.',
    );
    this.eventsRejected = plainCounter(
      'meshaudit_events_rejected_total',
      'Events refused and never written, by reason (invalid, too_many, evaluation_failed).',
      ['reason'],
    );
    this.eventsDuplicate = plainCounter(
      'meshaudit_events_duplicate_total',
      'Stream events sent again after a reconnect and already written (not written twice).',
    );
    this.batchesReceived = plainCounter('meshaudit_batches_received_total', 'StreamEvents batches received.');
    this.batchesAcked = plainCounter('meshaudit_batches_acked_total', 'StreamEvents batches acknowledged (written).');
    this.ackSeconds = histogram(
      'meshaudit_ack_latency_seconds',
      'From the arrival of a batch or a Record call to its acknowledgement.',
    );
    this.streamsOpen = gauge('meshaudit_streams_open', 'Control-plane streams open now.');
    this.streamsRefused = counter(
      'meshaudit_streams_refused_total',
      'Control-plane streams refused or ended by the sidecar, by reason.',
      ['reason'],
    );
    this.sequenceGaps = counter(
      'meshaudit_sequence_gaps_total',
      'Batches that started past the next expected sequence number.',
    );
    this.pendingBytes = new PlainGauge(
      this.registry,
      'meshaudit_pending_bytes',
      'Bytes of records accepted and not yet written.',
      [],
    );
    this.writeSeconds = histogram(
      'meshaudit_write_duration_seconds',
      'Time to append one group of records to a backend.',
      ['backend'],
    );
    this.commitSeconds = histogram(
      'meshaudit_checkpoint_commit_duration_seconds',
      'Time to commit the checkpoint after a write.',
    );
    this.writtenBytes = plainCounter('meshaudit_written_bytes_total', 'Bytes appended to the audit files.', [
      'backend',
    ]);
    this.rotations = counter('meshaudit_rotations_total', 'Audit file rotations.', ['backend']);
    this.retentionDeletedFiles = counter(
      'meshaudit_retention_deleted_files_total',
      'Rotated audit files deleted by retention (maxRetainedFiles, maxAgeDays).',
      ['backend'],
    );
    this.compressions = counter(
      'meshaudit_compressions_total',
      'Rotated audit files gzipped (rotation.compress), by result (ok, failed: left plain, tried again at the next start).',
      ['backend', 'result'],
    );
    this.writeFailures = counter(
      'meshaudit_write_failures_total',
      'Failed writes (retried until they succeed; nothing is acknowledged before).',
      ['backend'],
    );
    this.checkpointBytes = new PlainGauge(
      this.registry,
      'meshaudit_checkpoint_size_bytes',
      'Size of the checkpoint file.',
      [],
    );
    this.ruleChanges = counter(
      'meshaudit_rule_changes_total',
      'AccessAudit resources created, updated or deleted, by source (api, rules_files).',
      ['source'],
    );
    this.accessAudits = gauge('meshaudit_access_audits', 'AccessAudit resources in force.');
    this.storeDegraded = gauge(
      'meshaudit_store_degraded',
      '1 while the AccessAudit store (PostgreSQL) cannot be reached: rules from the cache, changes refused.',
    );
    this.queriesOpen = gauge('meshaudit_queries_open', 'ReadService.Query calls open (following or reading).');
    this.queries = counter('meshaudit_queries_total', 'ReadService.Query calls taken, by mode (read, follow).', [
      'mode',
    ]);
    for (const mode of ['read', 'follow']) this.queries.labels(mode).inc(0);
    this.callsDenied = counter(
      'meshaudit_calls_denied_total',
      'Calls refused for want of a permission (or of a credential: permission "authenticated").',
      ['permission'],
    );
    this.configReloads = counter('meshaudit_config_reloads_total', 'Config reloads, by result (applied, refused).', [
      'result',
    ]);
    const filesystems = opts.filesystems ?? (() => []);
    // Read at each scrape (statfs is cheap): what an alert on a nearly full disk needs, without
    // node_exporter. The first of the two families registered reads both, before either is printed.
    let size: Gauge<'name'> | undefined;
    this.filesystemAvailBytes = new Gauge({
      name: 'meshaudit_filesystem_avail_bytes',
      help: 'Bytes free to the sidecar on the file system of each folder it writes (data, backend:<path>).',
      labelNames: ['name'],
      registers: r,
      collect() {
        this.reset();
        size?.reset();
        for (const f of filesystems()) {
          try {
            const st = fs.statfsSync(f.path);
            this.labels(f.name).set(st.bavail * st.bsize);
            size?.labels(f.name).set(st.blocks * st.bsize);
          } catch {
            // A folder not created yet (or removed): no sample for it this scrape.
          }
        }
      },
    });
    size = gauge('meshaudit_filesystem_size_bytes', 'Size of the file system of each folder it writes.', ['name']);
    this.filesystemSizeBytes = size;
    this.forwardPublished = plainCounter(
      'meshaudit_forward_published_records_total',
      'Records a forwarder published and JetStream acknowledged.',
      ['forwarder'],
    );
    this.forwardSkipped = counter(
      'meshaudit_forward_skipped_records_total',
      'Records a forwarder found already in its stream after a restart or reconnect (not published twice).',
      ['forwarder'],
    );
    this.forwardLost = counter(
      'meshaudit_forward_lost_records_total',
      'Records retention deleted before a forwarder published them (past maxHeldFiles).',
      ['forwarder'],
    );
    this.forwardUnheldFiles = counter(
      'meshaudit_forward_unheld_deleted_files_total',
      'Rotated audit files retention deleted although a forwarder had not read them (past maxHeldFiles).',
      ['forwarder'],
    );
    this.forwardFailures = counter(
      'meshaudit_forward_failures_total',
      'Times a forwarder lost its connection or a publish failed, and backed off.',
      ['forwarder'],
    );
    const forwarders = this.forwarders;
    // Lag (records, seconds), connection and held files of each forwarder (addForwarder), read from it at
    // each scrape: lag moves with every commit and every ack. Nothing sets them: no field holds them.
    const forwarderGauge = (name: string, help: string, value: (g: ForwarderGauges) => number): Gauge<'forwarder'> =>
      new Gauge({
        name,
        help,
        labelNames: ['forwarder'],
        registers: r,
        collect() {
          for (const [forwarder, gauges] of forwarders) this.labels(forwarder).set(value(gauges()));
        },
      });
    forwarderGauge(
      'meshaudit_forward_lag_records',
      'Records committed to the audit files that a forwarder has not had acknowledged by JetStream yet.',
      (g) => g.lagRecords,
    );
    forwarderGauge(
      'meshaudit_forward_lag_seconds',
      'Seconds since a forwarder last had everything committed acknowledged (0 when it has).',
      (g) => g.lagSeconds,
    );
    forwarderGauge(
      'meshaudit_forward_connected',
      '1 while a forwarder is connected to NATS and publishing to its stream.',
      (g) => (g.connected ? 1 : 0),
    );
    forwarderGauge(
      'meshaudit_forward_held_files',
      'Rotated audit files retention keeps past its limits because a forwarder has not read them.',
      (g) => g.heldFiles,
    );
    // Every known label value has its series at 0 from the start: increase() and rate() need a sample
    // before the first event to count it, so an alert on the first rejection fires. labels() alone
    // creates no series in prom-client; inc(0) does.
    for (const reason of REJECT_REASONS) this.eventsRejected.labels(reason).inc(0);
    for (const reason of STREAM_REFUSALS) this.streamsRefused.labels(reason).inc(0);
    for (const source of RULE_SOURCES) this.ruleChanges.labels(source).inc(0);
    for (const result of ['applied', 'refused']) this.configReloads.labels(result).inc(0);
    for (const source of ['stream', 'record']) this.eventsReceived.labels(source).inc(0);
    for (const permission of DENIED_PERMISSIONS) this.callsDenied.labels(permission).inc(0);
    // The checkpoint's failed commits go with the backends' failed writes (CHECKPOINT_PART).
    this.writeFailures.labels('checkpoint').inc(0);
    if (opts.processMetrics ?? false) collectDefaultMetrics({ register: this.registry });
  }

  /**
   * What the stop line says: each family summed over its labels (events, write failures of every
   * backend and the checkpoint, calls refused for want of a credential or a permission).
   */
  async totals(): Promise<
    Record<'received' | 'recorded' | 'skipped' | 'rejected' | 'duplicates' | 'writeFailures' | 'refusedCalls', number>
  > {
    const sum = async (c: { get(): Promise<{ values: Array<{ value: number }> }> }): Promise<number> =>
      (await c.get()).values.reduce((total, v) => total + v.value, 0);
    return {
      received: await sum(this.eventsReceived),
      recorded: await sum(this.eventsRecorded),
      skipped: await sum(this.eventsSkipped),
      rejected: await sum(this.eventsRejected),
      duplicates: await sum(this.eventsDuplicate),
      writeFailures: await sum(this.writeFailures),
      refusedCalls: await sum(this.callsDenied),
    };
  }

  /** Exports the series of a backend (by its key: the active file's path) at 0 from the start. */
  addBackend(key: string): void {
    for (const c of [this.writtenBytes, this.rotations, this.retentionDeletedFiles, this.writeFailures]) {
      c.labels(key).inc(0);
    }
    for (const result of ['ok', 'failed']) this.compressions.labels(key, result).inc(0);
    this.writeSeconds.zero({ backend: key });
  }

  /** Exports a forwarder's series from the start; `gauges` is read at each scrape. */
  addForwarder(name: string, gauges: () => ForwarderGauges): void {
    this.forwarders.set(name, gauges);
    for (const c of [
      this.forwardPublished,
      this.forwardSkipped,
      this.forwardLost,
      this.forwardUnheldFiles,
      this.forwardFailures,
    ]) {
      c.labels(name).inc(0);
    }
  }

  /** The Prometheus text exposition (GET /stats/prometheus). */
  prometheus(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
