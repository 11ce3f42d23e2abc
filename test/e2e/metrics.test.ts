// The metrics and the log lines of what happens to control-plane streams and Record calls, read from
// the real process: GET /stats/prometheus on its admin address, and its stderr.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { SIDECAR_NODE_FLAGS } from '../../src/cli/node-flags';
import { logLines, type SpawnedSidecar, spawnSidecar, writeSidecarConfig } from '../support/process';
import {
  clients,
  failure,
  openStream,
  readRecords,
  resourceEvent,
  samples,
  tempDir,
  unary,
  waitFor,
} from '../support/helpers';

const RULES = `type: AccessAudit
name: routes
rules:
- types: [TrafficRoute]
  accessAll: true
`;

const skippedEvent = (seq: number): Record<string, unknown> => ({
  ...resourceEvent(seq),
  resource: { type: 'TrafficPermission', name: `tp-${seq}`, mesh: 'default' },
});
const invalidEvent = (seq: number): Record<string, unknown> => ({ ...resourceEvent(seq), action: 'CREAT' });

async function scrape(sidecar: SpawnedSidecar): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${await sidecar.adminPort}/stats/prometheus`);
  expect(res.status).to.equal(200);
  expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
  return samples(await res.text());
}

/** Scrapes until `ok` holds of the samples (a state the process reaches through I/O, such as a retry), or fails naming `what`. */
async function scrapeUntil(
  sidecar: SpawnedSidecar,
  ok: (m: Map<string, number>) => boolean,
  what: string,
): Promise<Map<string, number>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const m = await scrape(sidecar);
    if (ok(m)) return m;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${[...m].join('\n')}`);
  }
}

/** The log lines with message `msg` so far. */
function lines(sidecar: SpawnedSidecar, msg: string): Array<Record<string, unknown>> {
  return logLines(sidecar.stderr()).filter((l) => l.msg === msg);
}

async function stop(sidecar: SpawnedSidecar): Promise<void> {
  sidecar.proc.kill('SIGTERM');
  expect(await sidecar.exited).to.equal(0);
}

describe('metrics and log lines of the real process', function () {
  this.timeout(60_000);

  it('counts each outcome of streams and Record calls exactly, and logs each refusal once per kind', async () => {
    const dir = tempDir();
    const rules = path.join(dir, 'rules.yaml');
    fs.writeFileSync(rules, RULES);
    const config = writeSidecarConfig(dir, {
      limits: { eventsPerBatch: 10 },
      // A second backend that rotates before every record (each is larger than ~100 bytes) and keeps one rotated file.
      backends: [{ folder: 'audit' }, { folder: 'small', rotation: { maxSizeMb: 0.0001, maxRetainedFiles: 1 } }],
    });
    const sidecar = spawnSidecar(['--config', config, '--rules', rules]);
    const c = clients(await sidecar.ready);
    try {
      // Stream A: one recorded, one skipped (no rule covers it), one rejected.
      const a = openStream(c.audit);
      a.call.write({ identifier: { zone: 'default', instance: 'cp-0' } });
      expect((await a.next()).ackedSeq).to.equal(0);
      a.call.write({ firstSeq: 1, events: [resourceEvent(1), skippedEvent(2), invalidEvent(3)] });
      const ackA = await a.next();
      expect([ackA.recorded, ackA.skipped, ackA.rejected.length]).to.deep.equal([1, 1, 1]);

      // Stream B takes the identifier over and resends from 1: three duplicates, two new records.
      const b = openStream(c.audit);
      b.call.write({ identifier: { zone: 'default', instance: 'cp-0' } });
      expect((await b.next()).ackedSeq).to.equal(3);
      expect((await a.status)?.code).to.equal(grpc.status.ABORTED);
      b.call.write({
        firstSeq: 1,
        events: [resourceEvent(1), skippedEvent(2), invalidEvent(3), resourceEvent(4), resourceEvent(5)],
      });
      const ackB = await b.next();
      expect([ackB.recorded, ackB.duplicates]).to.deep.equal([2, 3]);
      // A gap ends B.
      b.call.write({ firstSeq: 10, events: [resourceEvent(10)] });
      expect((await b.status)?.code).to.equal(grpc.status.FAILED_PRECONDITION);

      // Refused: another zone; an invalid identifier, twice (one line).
      const other = openStream(c.audit);
      other.call.write({ identifier: { zone: 'other', instance: 'cp-0' } });
      expect((await other.status)?.code).to.equal(grpc.status.INVALID_ARGUMENT);
      for (let i = 0; i < 2; i++) {
        const bad = openStream(c.audit);
        bad.call.write({ identifier: { zone: 'default', instance: 'bad name!' } });
        expect((await bad.status)?.code).to.equal(grpc.status.INVALID_ARGUMENT);
      }
      // More events than meshaudit.limits.eventsPerBatch: all eleven rejected, the stream ended.
      const e = openStream(c.audit);
      e.call.write({ identifier: { zone: 'default', instance: 'cp-1' } });
      await e.next();
      e.call.write({ firstSeq: 1, events: Array.from({ length: 11 }, (_, i) => resourceEvent(i + 1)) });
      expect((await e.status)?.code).to.equal(grpc.status.INVALID_ARGUMENT);

      // Record: audited, skipped, rejected.
      expect(await unary(c.audit, 'Record', { event: resourceEvent(100) })).to.deep.equal({ audited: true });
      expect(await unary(c.audit, 'Record', { event: skippedEvent(101) })).to.deep.equal({ audited: false });
      expect((await failure(unary(c.audit, 'Record', { event: invalidEvent(102) }))).code).to.equal(
        grpc.status.INVALID_ARGUMENT,
      );
      // A rule change through the API, covered by the new AccessAudit: recorded.
      await unary(c.rules, 'CreateAccessAudit', { accessAudit: { name: 'all', rules: [{ accessAll: true }] } });

      // One stream stays open.
      const open = openStream(c.audit);
      open.call.write({ identifier: { zone: 'default', instance: 'cp-2' } });
      await open.next();

      const activeSmall = path.join(dir, 'small', 'audit.log');
      // Retention runs after its rotation's write has been acknowledged: waited for.
      const backend = (name: string, file: string): string => `${name}{backend="${file}"}`;
      const active = path.join(dir, 'audit', 'audit.log');
      const recordsWritten = readRecords(active).length;
      expect(recordsWritten).to.equal(5); // 1 (A) + 2 (B) + 1 (Record) + 1 (the API change)
      const m = await scrapeUntil(
        sidecar,
        (m) => m.get(backend('meshaudit_retention_deleted_files_total', activeSmall)) === recordsWritten - 2,
        'retention to delete all but the last rotated file',
      );
      expect({
        receivedStream: m.get('meshaudit_events_received_total{source="stream"}'),
        receivedRecord: m.get('meshaudit_events_received_total{source="record"}'),
        recorded: m.get('meshaudit_events_recorded_total'),
        skipped: m.get('meshaudit_events_skipped_total'),
        invalid: m.get('meshaudit_events_rejected_total{reason="invalid"}'),
        tooMany: m.get('meshaudit_events_rejected_total{reason="too_many"}'),
        evaluationFailed: m.get('meshaudit_events_rejected_total{reason="evaluation_failed"}'),
        duplicates: m.get('meshaudit_events_duplicate_total'),
        batchesReceived: m.get('meshaudit_batches_received_total'),
        batchesAcked: m.get('meshaudit_batches_acked_total'),
        acks: m.get('meshaudit_ack_latency_seconds_count'),
        open: m.get('meshaudit_streams_open'),
        takenOver: m.get('meshaudit_streams_refused_total{reason="taken_over"}'),
        gap: m.get('meshaudit_streams_refused_total{reason="sequence_gap"}'),
        zone: m.get('meshaudit_streams_refused_total{reason="zone"}'),
        invalidIdentifier: m.get('meshaudit_streams_refused_total{reason="invalid_identifier"}'),
        limit: m.get('meshaudit_streams_refused_total{reason="limit"}'),
        gaps: m.get('meshaudit_sequence_gaps_total'),
        apiChanges: m.get('meshaudit_rule_changes_total{source="api"}'),
        fileChanges: m.get('meshaudit_rule_changes_total{source="rules_files"}'),
        accessAudits: m.get('meshaudit_access_audits'),
        ready: m.get('meshaudit_ready'),
        pending: m.get('meshaudit_pending_bytes'),
        rotations: m.get(backend('meshaudit_rotations_total', activeSmall)),
        rotationsBig: m.get(backend('meshaudit_rotations_total', active)),
        failures: m.get(backend('meshaudit_write_failures_total', active)),
        checkpointFailures: m.get(backend('meshaudit_write_failures_total', 'checkpoint')),
      }).to.deep.equal({
        receivedStream: 20, // 3 (A) + 5 (B) + 1 (the gap) + 11 (too many)
        receivedRecord: 3,
        recorded: 5,
        skipped: 2,
        invalid: 2,
        tooMany: 11,
        evaluationFailed: 0,
        duplicates: 3,
        batchesReceived: 4,
        batchesAcked: 2,
        acks: 4, // two batches, two Record calls answered
        open: 1,
        takenOver: 1,
        gap: 1,
        zone: 1,
        invalidIdentifier: 2,
        limit: 1,
        gaps: 1,
        apiChanges: 1,
        fileChanges: 1, // the --rules file created "routes" at start-up
        accessAudits: 2,
        ready: 1,
        pending: 0,
        rotations: recordsWritten - 1, // before every record but the first
        rotationsBig: 0,
        failures: 0,
        checkpointFailures: 0,
      });
      // Every byte of the active file (nothing rotated) was counted; each group went to both backends, then one commit.
      expect(m.get(backend('meshaudit_written_bytes_total', active))).to.equal(fs.statSync(active).size);
      const groups = m.get(backend('meshaudit_write_duration_seconds_count', active));
      expect(groups).to.be.greaterThan(0);
      expect(m.get(backend('meshaudit_write_duration_seconds_count', activeSmall))).to.equal(groups);
      expect(m.get('meshaudit_checkpoint_commit_duration_seconds_count')).to.equal(groups);
      expect(m.get('meshaudit_checkpoint_size_bytes')).to.equal(
        fs.statSync(path.join(dir, 'data', 'checkpoint.jsonl')).size,
      );

      // One line each, with the identifier, the reason and the counts; the second invalid identifier left out.
      const line = async (msg: string): Promise<Record<string, unknown>> => {
        await waitFor(() => lines(sidecar, msg).length > 0, `the line "${msg}"`);
        expect(lines(sidecar, msg)).to.have.length(1);
        const [l] = lines(sidecar, msg);
        expect(l.level).to.equal('warn');
        return l;
      };
      expect(await line('events rejected: never written, never resent')).to.include({
        identifier: 'default/cp-0',
        firstSeq: 1,
        rejected: 1,
        events: 3,
        index: 2,
        reason: 'action: unknown action "CREAT", did you mean "CREATE"?',
      });
      expect(await line('control plane stream taken over by a newer stream')).to.include({
        identifier: 'default/cp-0',
      });
      expect(await line('sequence gap: stream ended, the control plane must resend')).to.include({
        identifier: 'default/cp-0',
        expectedSeq: 6,
        firstSeq: 10,
        missing: 4,
      });
      expect(await line('control plane stream refused: another zone')).to.include({
        identifier: 'other/cp-0',
        reason:
          'identifier.zone: this sidecar serves zone "default", not "other"; each zone\'s control plane needs its own sidecar',
      });
      expect(await line('control plane stream refused: invalid identifier')).to.include({
        identifier: 'default/bad name!',
        reason: 'identifier.instance: must be 1-253 characters of [A-Za-z0-9._:-], got "bad name!"',
      });
      expect(await line('batch refused: more events than meshaudit.limits.eventsPerBatch')).to.include({
        identifier: 'default/cp-1',
        events: 11,
        eventsPerBatch: 10,
      });
      expect(await line('Record call rejected: invalid event, never written')).to.include({
        caller: 'mesh-system:admin',
        reason: 'event.action: unknown action "CREAT", did you mean "CREATE"?',
      });
      open.call.end();
      await open.status;
    } finally {
      c.close();
    }
    await stop(sidecar);
    // The stop line reads the same counters.
    expect(lines(sidecar, 'meshaudit stopped')[0]).to.include({
      received: 23,
      recorded: 5,
      skipped: 2,
      rejected: 13,
      duplicates: 3,
      writeFailures: 0,
      refusedCalls: 0,
    });
  });

  it('logs each stream closed with why, and at debug level a line per acknowledged batch (never per event)', async () => {
    const dir = tempDir();
    const config = writeSidecarConfig(dir);
    fs.writeFileSync(
      config,
      fs.readFileSync(config, 'utf8').replace('meshaudit:\n', 'meshaudit:\n  log: {level: debug}\n'),
    );
    const rules = path.join(dir, 'rules.yaml');
    fs.writeFileSync(rules, RULES);
    const sidecar = spawnSidecar(['--config', config, '--rules', rules]);
    const c = clients(await sidecar.ready);
    try {
      const s = openStream(c.audit);
      s.call.write({ identifier: { zone: 'default', instance: 'cp-7' } });
      await s.next();
      s.call.write({ firstSeq: 1, events: [resourceEvent(1), skippedEvent(2), resourceEvent(3)] });
      expect((await s.next()).ackedSeq).to.equal(3);
      s.call.end();
      await s.status;
      await waitFor(() => lines(sidecar, 'control plane stream closed').length > 0, 'the closed line');
    } finally {
      c.close();
    }
    expect(lines(sidecar, 'batch acknowledged')).to.have.length(1);
    expect(lines(sidecar, 'batch acknowledged')[0]).to.include({
      identifier: 'default/cp-7',
      firstSeq: 1,
      ackedSeq: 3,
      recorded: 2,
      skipped: 1,
      rejected: 0,
      level: 'debug',
    });
    expect(lines(sidecar, 'control plane stream closed')[0]).to.include({
      identifier: 'default/cp-7',
      why: 'the control plane ended it',
      level: 'info',
    });
    await stop(sidecar);
  });

  it('exports its version and zone, the free space of every folder it writes, and the process metrics', async () => {
    const dir = tempDir();
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { zone: 'zone-1' })]);
    await sidecar.ready;
    const m = await scrape(sidecar);
    const version = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')).version;
    expect(m.get(`meshaudit_info{version="${version}",zone="zone-1"}`)).to.equal(1);
    const { bavail, bsize, blocks } = fs.statfsSync(dir);
    for (const name of ['data', `backend:${path.join(dir, 'audit', 'audit.log')}`]) {
      const avail = m.get(`meshaudit_filesystem_avail_bytes{name="${name}"}`);
      const size = m.get(`meshaudit_filesystem_size_bytes{name="${name}"}`);
      expect(size, name).to.equal(blocks * bsize);
      // Within 64 MiB of what statfs said a moment ago: the machine's other writers move it.
      expect(Math.abs(avail! - bavail * bsize), name).to.be.lessThan(64 * 1024 * 1024);
    }
    // The process's own, as every Node.js service exports them (the launcher's registry only).
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds']) {
      expect(m.has(name), name).to.equal(true);
    }
    await stop(sidecar);
  });

  it('counts failed writes by backend and says not ready until the disk takes them again', async () => {
    const dir = tempDir();
    const audit = path.join(dir, 'audit');
    const faultFile = path.join(dir, 'disk-full');
    const rules = path.join(dir, 'rules.yaml');
    fs.writeFileSync(rules, RULES);
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir), '--rules', rules], {
      nodeFlags: [...SIDECAR_NODE_FLAGS, '--require', path.resolve(__dirname, '../support/fs-faults.js')],
      env: { FAULT_FILE: faultFile, FAULT_DIR: audit },
    });
    const c = clients(await sidecar.ready);
    try {
      const s = openStream(c.audit);
      s.call.write({ identifier: { zone: 'default', instance: 'cp-0' } });
      await s.next();
      fs.writeFileSync(faultFile, ''); // the disk is full from now on
      s.call.write({ firstSeq: 1, events: [resourceEvent(1)] });
      const failing = `meshaudit_write_failures_total{backend="${path.join(audit, 'audit.log')}"}`;
      await scrapeUntil(
        sidecar,
        (m) => (m.get(failing) ?? 0) >= 4 && m.get('meshaudit_ready') === 0,
        'four failed writes counted, and not ready',
      );
      // Four failures of one kind, one line: the next one within a minute says how many it left out.
      expect(lines(sidecar, 'audit write failed; retrying (nothing is acknowledged until it succeeds)')).to.have.length(
        1,
      );
      fs.rmSync(faultFile);
      expect((await s.next()).ackedSeq).to.equal(1);
      const m = await scrape(sidecar);
      expect(m.get('meshaudit_ready')).to.equal(1);
      expect(m.get('meshaudit_events_recorded_total')).to.equal(1);
      expect(m.get(failing)).to.be.at.least(4);
      expect(m.get('meshaudit_write_failures_total{backend="checkpoint"}')).to.equal(0);
      s.call.end();
      await s.status;
    } finally {
      c.close();
    }
    await stop(sidecar);
    const stopped = lines(sidecar, 'meshaudit stopped')[0];
    expect(stopped).to.include({ recorded: 1 });
    expect(stopped.writeFailures).to.be.at.least(4);
  });
});
