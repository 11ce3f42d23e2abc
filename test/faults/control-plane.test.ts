// Control planes that misbehave, against the real process: a stream cut in the middle of a batch, a
// message half sent and then closed, many streams for one identifier at once, sequences at the edges.
// Nothing half-received is written or acknowledged, the sidecar answers each with a status and stays
// up, and every event ends up in the file exactly once.
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { sendAll } from '../../src/client/audit-client';
import { fieldViolationsOf } from '../../src/client/status-details';
import { contract } from '../../src/contract';
import type { AuditEvent } from '../../src/events/event';
import { clients, grpcFrame, openStream, readRecords, resourceEvent, tempDir, unary } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig } from '../support/process';

const ZONE = 'zone-1';

const encode = (m: object): Buffer => grpcFrame(contract().messages.StreamEventsRequest.encode(m).finish());

function names(logPath: string): number[] {
  if (!fs.existsSync(logPath)) return [];
  return readRecords(logPath).map((l) => Number(/route-(\d+)/.exec(l)![1]));
}

describe('faults: control planes that misbehave', function () {
  this.timeout(90_000);
  let dir: string;
  let sidecar: ReturnType<typeof spawnSidecar>;
  let port: number;
  let logPath: string;

  beforeEach(async () => {
    dir = tempDir();
    const rules = path.join(dir, 'rules.yaml');
    fs.writeFileSync(rules, 'type: AccessAudit\nname: all\nrules:\n- types: [TrafficRoute]\n  accessAll: true\n');
    sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { zone: ZONE }), '--rules', rules], { cwd: dir });
    port = await sidecar.ready;
    logPath = path.join(dir, 'audit', 'audit.log');
  });
  afterEach(async () => {
    sidecar.proc.kill('SIGTERM');
    expect(await sidecar.exited).to.equal(0);
  });

  /** Opens a raw HTTP/2 StreamEvents call, identified; resolves once the identify answer came back. */
  async function rawStream(
    instance: string,
  ): Promise<{ session: http2.ClientHttp2Session; req: http2.ClientHttp2Stream }> {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const req = session.request({
      ':method': 'POST',
      ':path': '/meshaudit.v1.AuditService/StreamEvents',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    req.write(encode({ identifier: { zone: ZONE, instance } }));
    await new Promise((resolve) => req.once('data', resolve));
    return { session, req };
  }

  it('writes nothing of a batch cut off in the middle (connection dropped), and resumes from before it', async () => {
    const { session, req } = await rawStream('cp-cut');
    const batch = encode({ firstSeq: 1, events: Array.from({ length: 50 }, (_, i) => resourceEvent(i + 1)) });
    req.write(batch.subarray(0, batch.length >> 1));
    await new Promise((resolve) => req.write(Buffer.alloc(0), resolve));
    session.destroy(); // the CP crashed mid-batch
    const c = clients(port);
    try {
      const s = openStream(c.audit);
      s.call.write({ identifier: { zone: ZONE, instance: 'cp-cut' } });
      expect((await s.next()).ackedSeq).to.equal(0);
      s.call.write({ firstSeq: 1, events: Array.from({ length: 50 }, (_, i) => resourceEvent(i + 1)) });
      expect((await s.next()).ackedSeq).to.equal(50);
      s.call.end();
    } finally {
      c.close();
    }
    expect(names(logPath)).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('ends a stream closed with a message half sent, acknowledging and writing none of it', async () => {
    const { session, req } = await rawStream('cp-half');
    const batch = encode({ firstSeq: 1, events: [resourceEvent(1), resourceEvent(2)] });
    let acks = 0;
    req.on('data', () => acks++);
    const status = new Promise<string | undefined>((resolve) =>
      req.on('trailers', (trailers) => resolve(trailers['grpc-status'] as string | undefined)),
    );
    req.end(batch.subarray(0, batch.length - 7)); // half-closed with 7 bytes of the message missing
    // grpc-js drops a message left incomplete at the half-close (for every service) and the stream
    // ends as the CP ended it: OK, with no ack for the batch, which the CP resends on its next stream.
    expect(await status, 'a status, not a hang').to.equal(String(grpc.status.OK));
    session.destroy();
    expect(acks).to.equal(0);
    const c = clients(port);
    try {
      const s = openStream(c.audit);
      s.call.write({ identifier: { zone: ZONE, instance: 'cp-half' } });
      expect((await s.next()).ackedSeq).to.equal(0);
      s.call.end();
    } finally {
      c.close();
    }
    expect(names(logPath)).to.deep.equal([]);
  });

  it('writes each event once when five streams fight over one identifier, each taking over from the last', async () => {
    const events = Array.from({ length: 3000 }, (_, i) => resourceEvent(i + 1) as AuditEvent);
    let takeovers = 0;
    await Promise.all(
      Array.from({ length: 5 }, () =>
        sendAll(`127.0.0.1:${port}`, { zone: ZONE, instance: 'cp-0' }, events, {
          batchSize: 50,
          window: 4,
          deadlineMs: 60_000,
          onReconnect: () => takeovers++,
        }),
      ),
    );
    expect(takeovers, 'streams ended by a newer one for the same identifier').to.be.above(0);
    const seqs = names(logPath);
    expect(seqs.length).to.equal(3000);
    expect(seqs.every((seq, i) => seq === i + 1)).to.equal(true);
  });

  it('refuses sequences at the edges: 0 with events, a gap at 2^53 - 1, past 2^53', async () => {
    const c = clients(port);
    try {
      const cases: Array<[string, grpc.status, RegExp]> = [
        ['0', grpc.status.INVALID_ARGUMENT, /firstSeq: must be at least 1 when events are sent/],
        [
          '9007199254740991',
          grpc.status.FAILED_PRECONDITION,
          /expected firstSeq <= 1, got 9007199254740991; resend from 1/,
        ],
        ['18446744073709551615', grpc.status.INVALID_ARGUMENT, /got 18446744073709551615/],
      ];
      for (const [firstSeq, code, message] of cases) {
        const s = openStream(c.audit);
        s.call.write({ identifier: { zone: ZONE, instance: `cp-edge-${firstSeq}` } });
        await s.next();
        s.call.write({ firstSeq, events: [resourceEvent(1)] });
        const err = (await s.status)!;
        expect(err.code, firstSeq).to.equal(code);
        const violations = fieldViolationsOf(err.metadata).map((v) => `${v.field}: ${v.description}`);
        expect(`${err.details} ${violations.join('; ')}`).to.match(message);
      }
      // And it serves on.
      expect(await unary(c.audit, 'Record', { event: resourceEvent(1) })).to.deep.equal({ audited: true });
    } finally {
      c.close();
    }
  });
});
