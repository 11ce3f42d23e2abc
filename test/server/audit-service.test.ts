import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as protobuf from 'protobufjs';
import { contract } from '../../src/contract';
import type { Sidecar } from '../../src/cli/sidecar';
import { fieldViolationsOf } from '../../src/client/status-details';
import type { AccessAudit } from '../../src/rules';
import {
  clients,
  openStream,
  readRecords,
  resourceEvent,
  samples,
  startTestSidecar,
  tempDir,
  testConfig,
  unary,
  AUDIT_ALL,
  MemorySink,
  waitFor,
} from '../support/helpers';
import { MAX_INFLIGHT_BATCHES_PER_STREAM } from '../../src/server/audit-service';

const ID = { zone: 'zone-1', instance: 'cp-0' };

function batch(firstSeq: number, n: number): { firstSeq: number; events: unknown[] } {
  return { firstSeq, events: Array.from({ length: n }, (_, i) => resourceEvent(firstSeq + i)) };
}

describe('AuditService over a real gRPC server', () => {
  let dir: string;
  let sidecar: Sidecar;
  let c: ReturnType<typeof clients>;
  let logPath: string;

  async function start(audits: readonly AccessAudit[] = [AUDIT_ALL]): Promise<void> {
    const config = testConfig(dir);
    logPath = config.backends[0].path;
    sidecar = await startTestSidecar(config, audits);
    c = clients(sidecar.port);
  }

  async function restart(): Promise<void> {
    c.close();
    await sidecar.stop();
    await start();
  }

  beforeEach(async () => {
    dir = tempDir();
    await start();
  });
  afterEach(async () => {
    c.close();
    await sidecar.stop();
  });

  it('answers the identifier with resume point 0, then acks a batch once written', async () => {
    const s = openStream(c.audit);
    s.call.write({ identifier: ID });
    expect((await s.next()).ackedSeq).to.equal(0);
    s.call.write(batch(1, 3));
    const ack = await s.next();
    expect(ack).to.include({ ackedSeq: 3, firstSeq: 1, recorded: 3, skipped: 0, duplicates: 0 });
    expect(readRecords(logPath).map((l) => JSON.parse(l).resource.name)).to.deep.equal([
      'route-1',
      'route-2',
      'route-3',
    ]);
    s.call.end();
    expect(await s.status).to.equal(null);
  });

  it('rejects invalid events by index, writes the valid ones and keeps the stream open', async () => {
    const s = openStream(c.audit);
    s.call.write({ identifier: ID });
    await s.next();
    const events = [
      resourceEvent(1),
      { ...resourceEvent(2), action: 'CREAT' },
      { ...resourceEvent(3), token: { id: 't' } },
      resourceEvent(4),
    ];
    s.call.write({ firstSeq: 1, events });
    const ack = await s.next();
    expect(ack).to.include({ ackedSeq: 4, recorded: 2 });
    expect(ack.rejected).to.deep.equal([
      { index: 1, reason: 'action: unknown action "CREAT", did you mean "CREATE"?' },
      { index: 2, reason: 'token: not allowed with resource: set exactly one of them' },
    ]);
    s.call.write(batch(5, 1));
    expect((await s.next()).ackedSeq).to.equal(5);
    expect(readRecords(logPath)).to.have.length(3);
    s.call.end();
  });

  it('rejects an event that is not valid protobuf by index, and writes the others of its batch', async () => {
    // A raw client: proto-loader's could not send a malformed event.
    const { Event: event, StreamEventsResponse: streamResponse } = contract().messages;
    const raw = new grpc.Client(`127.0.0.1:${sidecar.port}`, grpc.credentials.createInsecure());
    const call = raw.makeBidiStreamRequest(
      '/meshaudit.v1.AuditService/StreamEvents',
      (b: Buffer) => b,
      (b: Buffer) => streamResponse.toObject(streamResponse.decode(b), { longs: Number }),
    );
    const acks: Array<Record<string, unknown>> = [];
    const twoAcks = new Promise<void>((resolve) => call.on('data', (m) => acks.push(m) === 2 && resolve()));
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {}); // the status says it
    const w = protobuf.Writer.create();
    w.uint32((1 << 3) | 2)
      .fork()
      .uint32((1 << 3) | 2)
      .string(ID.zone)
      .uint32((2 << 3) | 2)
      .string(ID.instance)
      .ldelim();
    w.uint32((2 << 3) | 0).uint64(1);
    w.uint32((3 << 3) | 2).bytes(event.encode(resourceEvent(1)).finish());
    w.uint32((3 << 3) | 2).bytes(Uint8Array.of(0x1a, 0x02, 0x43, 0x52, 0x4f)); // action "CR", then field 9 of wire type 7
    w.uint32((3 << 3) | 2).bytes(event.encode(resourceEvent(3)).finish());
    try {
      call.write(Buffer.from(w.finish()));
      await twoAcks;
      expect(acks[1]).to.include({ ackedSeq: 3, recorded: 2 });
      expect(acks[1].rejected).to.deep.equal([
        { index: 1, reason: 'event: not a valid protobuf Event message (invalid wire type 7 at offset 5)' },
      ]);
      expect(readRecords(logPath).map((l) => JSON.parse(l).resource.name)).to.deep.equal(['route-1', 'route-3']);
      call.end();
      expect((await status).code).to.equal(grpc.status.OK);
    } finally {
      raw.close();
    }
  });

  it('ends a stream whose request is not valid protobuf with INVALID_ARGUMENT naming the problem', async () => {
    const raw = new grpc.Client(`127.0.0.1:${sidecar.port}`, grpc.credentials.createInsecure());
    const call = raw.makeBidiStreamRequest(
      '/meshaudit.v1.AuditService/StreamEvents',
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    const failed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    try {
      call.write(Buffer.of(0x1a, 0x7f, 0x00)); // events: 127 bytes announced, 1 sent
      const err = await failed;
      expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(fieldViolationsOf(err.metadata)).to.deep.equal([
        { field: 'request', description: 'not a valid StreamEventsRequest: index out of range: 2 + 127 > 3' },
      ]);
      // first_seq sent as bytes: read as a number it would hide an event from the count.
      const second = raw.makeBidiStreamRequest(
        '/meshaudit.v1.AuditService/StreamEvents',
        (b: Buffer) => b,
        (b: Buffer) => b,
      );
      const secondFailed = new Promise<grpc.ServiceError>((resolve) => second.on('error', resolve));
      second.write(Buffer.of(0x12, 0x02, 0x1a, 0x00));
      expect(fieldViolationsOf((await secondFailed).metadata)).to.deep.equal([
        { field: 'request', description: 'not a valid StreamEventsRequest: first_seq: wire type 2, want 0' },
      ]);
    } finally {
      raw.close();
    }
  });

  it('acknowledges repeated sequences without writing them twice', async () => {
    const s = openStream(c.audit);
    s.call.write({ identifier: ID });
    await s.next();
    s.call.write(batch(1, 3));
    await s.next();
    s.call.write(batch(1, 3));
    expect(await s.next()).to.include({ ackedSeq: 3, duplicates: 3, recorded: 0 });
    s.call.write(batch(2, 4));
    expect(await s.next()).to.include({ ackedSeq: 5, duplicates: 2, recorded: 2 });
    expect(readRecords(logPath).map((l) => JSON.parse(l).resource.name)).to.deep.equal([
      'route-1',
      'route-2',
      'route-3',
      'route-4',
      'route-5',
    ]);
    s.call.end();
  });

  it('refuses a gap with FAILED_PRECONDITION naming the sequence to resend from', async () => {
    const s = openStream(c.audit);
    s.call.write({ identifier: ID });
    await s.next();
    s.call.write(batch(1, 2));
    await s.next();
    s.call.write(batch(10, 2));
    const err = await s.status;
    expect(err?.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(err?.details).to.equal('sequence gap for zone-1/cp-0: expected firstSeq <= 3, got 10; resend from 3');
    expect(readRecords(logPath)).to.have.length(2);
  });

  it('requires the identifier on the first request, as a field violation', async () => {
    const s = openStream(c.audit);
    s.call.write(batch(1, 1));
    const err = await s.status;
    expect(err?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(fieldViolationsOf(err?.metadata)).to.deep.equal([
      { field: 'identifier', description: 'is required on the first request of a stream' },
    ]);
  });

  it('refuses a malformed identifier naming both fields', async () => {
    const s = openStream(c.audit);
    s.call.write({ identifier: { zone: '', instance: 'a/b' } });
    const err = await s.status;
    expect(fieldViolationsOf(err?.metadata).map((v) => v.field)).to.deep.equal([
      'identifier.zone',
      'identifier.instance',
    ]);
  });

  it('refuses a control plane of another zone, naming the zone it serves', async () => {
    const s = openStream(c.audit);
    s.call.write({ identifier: { zone: 'zone-2', instance: 'cp-0' } });
    const err = await s.status;
    expect(err?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(fieldViolationsOf(err?.metadata)).to.deep.equal([
      {
        field: 'identifier.zone',
        description:
          'this sidecar serves zone "zone-1", not "zone-2"; each zone\'s control plane needs its own sidecar',
      },
    ]);
  });

  it('keeps the acked sequence across a restart of the sidecar', async () => {
    let s = openStream(c.audit);
    s.call.write({ identifier: ID });
    await s.next();
    s.call.write(batch(1, 7));
    await s.next();
    s.call.end();
    await s.status;
    await restart();
    s = openStream(c.audit);
    s.call.write({ identifier: ID });
    expect((await s.next()).ackedSeq).to.equal(7);
    s.call.write({ identifier: { zone: 'zone-1', instance: 'cp-1' } });
    s.call.end();
    const other = openStream(c.audit);
    other.call.write({ identifier: { zone: 'zone-1', instance: 'cp-1' } });
    expect((await other.next()).ackedSeq).to.equal(0);
    other.call.end();
  });

  it('counts events no rule covers as skipped and writes nothing for them', async () => {
    c.close();
    await sidecar.stop();
    await start([
      { name: 'tokens-only', rules: [{ types: [], mesh: '', access: ['GENERATE_USER_TOKEN'], accessAll: false }] },
    ]);
    const s = openStream(c.audit);
    s.call.write({ identifier: ID });
    await s.next();
    s.call.write(batch(1, 4));
    expect(await s.next()).to.include({ ackedSeq: 4, recorded: 0, skipped: 4 });
    expect(readRecords(logPath)).to.deep.equal([]);
    s.call.end();
  });

  it('ends the older stream when a newer one opens for the same identifier', async () => {
    const first = openStream(c.audit);
    first.call.write({ identifier: ID });
    await first.next();
    const second = openStream(c.audit);
    second.call.write({ identifier: ID });
    await second.next();
    const err = await first.status;
    expect(err?.code).to.equal(grpc.status.ABORTED);
    second.call.end();
  });

  it('Record answers audited after the record is written, or audited false when no rule covers it', async () => {
    expect(await unary(c.audit, 'Record', { event: resourceEvent(1) })).to.deep.equal({ audited: true });
    expect(readRecords(logPath)).to.have.length(1);
    c.close();
    await sidecar.stop();
    await start([]);
    expect(await unary(c.audit, 'Record', { event: resourceEvent(2) })).to.deep.equal({ audited: false });
    expect(readRecords(logPath)).to.have.length(1);
  });

  it('counts a batch at its arrival and at its ack, the streams open, and each stream it ends by why', async () => {
    const read = async (): Promise<Map<string, number>> => samples(await sidecar.metrics.prometheus());
    const s = openStream(c.audit);
    s.call.write({ identifier: ID });
    await s.next();
    s.call.write(batch(1, 3));
    await s.next();
    let m = await read();
    expect([
      m.get('meshaudit_events_received_total{source="stream"}'),
      m.get('meshaudit_batches_received_total'),
      m.get('meshaudit_batches_acked_total'),
      m.get('meshaudit_ack_latency_seconds_count'),
      m.get('meshaudit_streams_open'),
    ]).to.deep.equal([3, 1, 1, 1, 1]);
    // An unreadable request (events without a firstSeq) ends another stream; the drain ends the first.
    const other = openStream(c.audit);
    other.call.write({ identifier: { ...ID, instance: 'cp-1' }, events: [resourceEvent(1)] });
    expect((await other.status)?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    const stopped = sidecar.stop();
    expect((await s.status)?.code).to.equal(grpc.status.UNAVAILABLE);
    await stopped;
    m = await read();
    expect([
      m.get('meshaudit_streams_refused_total{reason="invalid_request"}'),
      m.get('meshaudit_streams_refused_total{reason="draining"}'),
      m.get('meshaudit_streams_open'),
      m.get('meshaudit_batches_received_total'),
      m.get('meshaudit_events_received_total{source="stream"}'),
    ]).to.deep.equal([1, 1, 0, 2, 4]);
  });

  it('Record refuses an invalid event with INVALID_ARGUMENT and a field violation', async () => {
    const err: grpc.ServiceError = await unary(c.audit, 'Record', {
      event: { ...resourceEvent(1), action: 'DELET' },
    }).then(
      () => {
        throw new Error('accepted');
      },
      (e: grpc.ServiceError) => e,
    );
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(fieldViolationsOf(err.metadata)).to.deep.equal([
      { field: 'event.action', description: 'unknown action "DELET", did you mean "DELETE"?' },
    ]);
    expect(
      samples(await sidecar.metrics.prometheus()).get('meshaudit_events_rejected_total{reason="invalid"}'),
    ).to.equal(1);
    expect(fs.existsSync(logPath) ? readRecords(logPath) : []).to.deep.equal([]);
  });

  it('Record reads requests as protobufjs does: an unreadable one is INVALID_ARGUMENT on `request`, of an event given twice the last counts', async () => {
    const raw = new grpc.Client(`127.0.0.1:${sidecar.port}`, grpc.credentials.createInsecure());
    const call = (bytes: Buffer): Promise<Buffer> =>
      new Promise((resolve, reject) =>
        raw.makeUnaryRequest(
          '/meshaudit.v1.AuditService/Record',
          (b: Buffer) => b,
          (b: Buffer) => b,
          bytes,
          (err, out) => (err ? reject(err) : resolve(out!)),
        ),
      );
    try {
      // Field 1 says 200 bytes follow; 2 do.
      const err: grpc.ServiceError = await call(Buffer.from([0x0a, 0xc8, 0x01, 0x01, 0x02])).then(
        () => {
          throw new Error('accepted');
        },
        (e: grpc.ServiceError) => e,
      );
      expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(fieldViolationsOf(err.metadata).map((v) => v.field)).to.deep.equal(['request']);
      // The event given twice takes the reference way, which reads it as protobufjs does: the last one.
      const part = (e: object): Buffer => Buffer.from(contract().messages.RecordRequest.encode({ event: e }).finish());
      const merged = await call(Buffer.concat([part(resourceEvent(8)), part(resourceEvent(7))]));
      expect([...merged]).to.deep.equal([0x08, 0x01]); // RecordResponse{audited: true}
      expect(readRecords(logPath).map((l) => JSON.parse(l).resource.name)).to.deep.equal(['route-7']);
    } finally {
      raw.close();
    }
  });

  it('on a graceful stop acknowledges what is in flight, then ends streams with UNAVAILABLE', async () => {
    c.close();
    await sidecar.stop();
    const sink = new MemorySink({ held: true });
    sidecar = await startTestSidecar(testConfig(dir), [AUDIT_ALL], { sinks: [sink] });
    c = clients(sidecar.port);
    const s = openStream(c.audit);
    s.call.write({ identifier: ID });
    await s.next();
    for (let i = 0; i < 5; i++) s.call.write(batch(1 + i * 100, 100));
    const acks: number[] = [];
    s.call.on('data', (m) => acks.push(m.ackedSeq));
    // All five batches accepted, none written yet (the disk is held): the stop begins with them in flight.
    await waitFor(() => sidecar.identifiers()[0]?.accepted === 500, 'the five batches accepted');
    const stopped = sidecar.stop();
    sink.release();
    await stopped;
    const err = await s.status;
    expect(err?.code).to.equal(grpc.status.UNAVAILABLE);
    // Every batch received before the stop was written and acknowledged before the stream ended.
    expect(acks[acks.length - 1]).to.equal(500);
    expect(sink.lines).to.have.length(500);
    await start();
  });
});

describe('AuditService backpressure', () => {
  it('stops reading every stream while the writer is full, and goes on when it drains', async () => {
    const sink = new MemorySink({ held: true });
    // One byte queued is full: the first batch is taken into a write (held), the next one fills it.
    const sidecar = await startTestSidecar(testConfig(tempDir()), [AUDIT_ALL], {
      sinks: [sink],
      writer: { highWaterBytes: 1 },
    });
    const c = clients(sidecar.port);
    const accepted = (instance: string): number =>
      sidecar.identifiers().find((i) => i.identifier === `zone-1/${instance}`)?.accepted ?? 0;
    try {
      const a = openStream(c.audit);
      a.call.write({ identifier: ID });
      await a.next();
      a.call.write(batch(1, 100));
      a.call.write(batch(101, 100));
      await waitFor(() => accepted('cp-0') === 200 && sidecar.load().pendingBytes > 0, 'the writer full');
      // A second control plane's stream opens, but is not read while the writer is full.
      const b = openStream(c.audit);
      b.call.write({ identifier: { zone: 'zone-1', instance: 'cp-1' } });
      expect(await b.next()).to.deep.equal({
        ackedSeq: 0,
        firstSeq: 0,
        recorded: 0,
        skipped: 0,
        duplicates: 0,
        rejected: [],
      });
      b.call.write(batch(1, 100));
      // A call on the same connection, answered without the writer: by its answer, the sidecar has
      // had the batch's bytes, and would have read them were the stream not paused.
      await unary(c.rules, 'Evaluate', { event: resourceEvent(1) });
      expect(accepted('cp-1')).to.equal(0);
      // The disk answers: the writer drains, and the waiting stream is read and acknowledged.
      sink.release();
      expect(await b.next()).to.include({ ackedSeq: 100, recorded: 100 });
      a.call.end();
      b.call.end();
    } finally {
      c.close();
      await sidecar.stop();
    }
  });

  it('stops reading a stream while writes are pending, so memory stays bounded on a slow disk', async () => {
    const dir = tempDir();
    const sink = new MemorySink({ held: true });
    const sidecar = await startTestSidecar(testConfig(dir), [AUDIT_ALL], { sinks: [sink] });
    const c = clients(sidecar.port);
    const s = openStream(c.audit);
    s.call.write({ identifier: ID });
    await s.next();
    // Push 2,000 batches (200k events, ~40 MB of records) without waiting for any ack.
    let refused = 0;
    const total = 2000;
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        const ok = s.call.write(batch(1 + sent * 100, 100));
        sent++;
        if (!ok) {
          refused++;
          s.call.once('drain', pump);
          return;
        }
      }
    };
    pump();
    // The stream stops being read at its window of unacknowledged batches (nothing commits: the disk is
    // held), and HTTP/2 flow control then stops the client.
    const window = MAX_INFLIGHT_BATCHES_PER_STREAM * 100;
    await waitFor(() => sidecar.identifiers()[0]?.accepted === window && refused > 0, 'the client blocked');
    const { pendingBytes } = sidecar.load();
    expect(sidecar.identifiers()[0]?.accepted).to.equal(window);
    // The writer holds at most MAX_INFLIGHT_BATCHES_PER_STREAM batches (~32 x 20 KB): far below what was pushed.
    expect(pendingBytes).to.be.below(2 * 1024 * 1024);
    expect(sent).to.be.below(total);
    expect(refused).to.be.greaterThan(0);
    sink.release();
    s.call.end();
    c.close();
    await sidecar.stop();
  });
});

describe('AuditService batching', () => {
  it('writes a batch of 100 records with one write, not one per record', async () => {
    const sink = new MemorySink();
    const sidecar = await startTestSidecar(testConfig(tempDir()), [AUDIT_ALL], { sinks: [sink] });
    const c = clients(sidecar.port);
    try {
      const s = openStream(c.audit);
      s.call.write({ identifier: ID });
      await s.next();
      s.call.write(batch(1, 100));
      expect(await s.next()).to.include({ ackedSeq: 100, recorded: 100 });
      expect(sink.writes).to.have.length(1);
      expect(sink.writes[0].split('\n').filter(Boolean)).to.have.length(100);
      s.call.end();
    } finally {
      c.close();
      await sidecar.stop();
    }
  });
});
