// Requests that are not what they claim: bytes that are not the message answered INTERNAL on RuleService
// (AuditService said INVALID_ARGUMENT), strings that are not UTF-8 were taken with U+FFFD in their place,
// and a uint64 past 2^53 was quoted rounded (`got 18446744073709552000`). Against the real process with
// a real client sending the bytes as they are: each is INVALID_ARGUMENT naming the field and quoting
// what was sent, and the sidecar goes on serving.
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { fieldViolationsOf } from '../../src/client/status-details';
import { contract } from '../../src/contract';
import { clients, openStream, tempDir, unary, waitFor } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig } from '../support/process';

const MAX_UINT64 = '18446744073709551615';
const NOT_UTF8 = Buffer.from([0x61, 0xff, 0xfe, 0x62]);

const field = (message: string, name: string): number => contract().fieldNumber(message, name);
const sub = (): protobuf.Writer => protobuf.Writer.create();
const put = (w: protobuf.Writer, number: number, body: Uint8Array): protobuf.Writer =>
  w.uint32((number << 3) | 2).bytes(body);

/** A resource event whose user name is `userName`, as bytes: what a CP's encoder would send. */
function eventWithUser(userName: Uint8Array): Uint8Array {
  const resource = put(
    put(sub(), field('Resource', 'type'), Buffer.from('Mesh')),
    field('Resource', 'name'),
    Buffer.from('demo'),
  );
  const event = put(sub(), field('Event', 'action'), Buffer.from('CREATE'));
  put(event, field('Event', 'resource'), resource.finish());
  put(event, field('Event', 'user'), put(sub(), field('User', 'name'), userName).finish());
  return event.finish();
}

describe('faults: requests that are not exactly what they say', function () {
  this.timeout(30_000);
  let sidecar: ReturnType<typeof spawnSidecar>;
  let raw: grpc.Client;
  let address: string;

  before(async () => {
    const dir = tempDir();
    sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { zone: 'zone-1' })], { cwd: dir });
    address = `127.0.0.1:${await sidecar.ready}`;
    raw = new grpc.Client(address, grpc.credentials.createInsecure());
  });
  after(async () => {
    raw.close();
    sidecar.proc.kill('SIGTERM');
    await sidecar.exited;
  });

  /** Sends `bytes` as the request of a RuleService method; resolves with the error it is answered with. */
  function refusal(method: string, bytes: Uint8Array): Promise<grpc.ServiceError> {
    return new Promise((resolve, reject) => {
      raw.makeUnaryRequest(
        `/meshaudit.v1.RuleService/${method}`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(bytes),
        (err, reply) => (err ? resolve(err) : reject(new Error(`answered ${reply?.toString('hex')}`))),
      );
    });
  }

  function violations(err: grpc.ServiceError): Array<{ field: string; description: string }> {
    expect(err.code, err.details).to.equal(grpc.status.INVALID_ARGUMENT);
    return fieldViolationsOf(err.metadata).map(({ field, description }) => ({ field, description }));
  }

  it('answers bytes that are not the request message INVALID_ARGUMENT on `request`, not INTERNAL', async () => {
    // A length-delimited name (field 1) that says 100 bytes and has 2.
    const err = await refusal('GetAccessAudit', Buffer.from([0x0a, 100, 0x61, 0x62]));
    expect(violations(err)).to.deep.equal([
      {
        field: 'request',
        description: 'not a valid GetAccessAuditRequest message (index out of range: 2 + 100 > 4)',
      },
    ]);
  });

  it('refuses strings that are not UTF-8, naming each field, nested ones and map entries too', async () => {
    const get = protobuf.Writer.create().uint32(0x0a).bytes(NOT_UTF8).finish();
    expect(violations(await refusal('GetAccessAudit', get))).to.deep.equal([
      { field: 'name', description: 'is not valid UTF-8 (protobuf strings must be)' },
    ]);
    // Evaluate { event { resource { name } user { groups[1] } token { claims { tags } } } }, by hand.
    const resource = put(sub(), field('Resource', 'name'), NOT_UTF8).finish();
    const user = put(put(sub(), field('User', 'groups'), Buffer.from('ok')), field('User', 'groups'), NOT_UTF8);
    const entry = put(put(sub(), 1, Buffer.from('kuma.io/service')), 2, NOT_UTF8).finish();
    const claims = put(sub(), field('Claims', 'tags'), entry).finish();
    const token = put(sub(), field('Token', 'claims'), claims).finish();
    const event = sub();
    put(event, field('Event', 'resource'), resource);
    put(event, field('Event', 'user'), user.finish());
    put(event, field('Event', 'token'), token);
    const evaluate = put(sub(), field('EvaluateRequest', 'event'), event.finish()).finish();
    expect(violations(await refusal('Evaluate', evaluate))).to.deep.equal([
      { field: 'event.resource.name', description: 'is not valid UTF-8 (protobuf strings must be)' },
      { field: 'event.user.groups[1]', description: 'is not valid UTF-8 (protobuf strings must be)' },
      {
        field: 'event.token.claims.tags',
        description: 'holds a key or value that is not valid UTF-8 (protobuf strings must be)',
      },
    ]);
  });

  it('quotes a version past 2^53 as it was sent, refusing it', async () => {
    const del = protobuf.Writer.create().uint32(0x0a).string('all').uint32(0x10).uint64(MAX_UINT64).finish();
    expect(violations(await refusal('DeleteAccessAudit', del))).to.deep.equal([
      { field: 'version', description: `must be at most 9007199254740991 (2^53 - 1), got ${MAX_UINT64}` },
    ]);
  });

  it('quotes a firstSeq past 2^53 as it was sent, ending the stream', async () => {
    const c = clients(Number(address.split(':')[1]));
    try {
      const s = openStream(c.audit);
      s.call.write({ identifier: { zone: 'zone-1', instance: 'cp-0' } });
      await s.next();
      s.call.write({ firstSeq: MAX_UINT64, events: [] });
      const err = (await s.status)!;
      expect(violations(err)).to.deep.equal([
        { field: 'firstSeq', description: `must be at most 9007199254740991 (2^53 - 1), got ${MAX_UINT64}` },
      ]);
      // The sidecar goes on serving.
      expect(await unary(c.rules, 'ListAccessAudits', {})).to.deep.equal({ accessAudits: [] });
    } finally {
      c.close();
    }
  });

  it('rejects a streamed event with a string that is not UTF-8, naming it, whether a rule covers it or not', async () => {
    // Raw bytes in a StreamEventsRequest: proto-loader's client would not send them.
    const identifier = put(put(sub(), 1, Buffer.from('zone-1')), 2, Buffer.from('cp-raw')).finish();
    const batch = put(sub().uint32(0x10).uint64(1), field('StreamEventsRequest', 'events'), eventWithUser(NOT_UTF8));
    put(batch, field('StreamEventsRequest', 'events'), eventWithUser(Buffer.from('ok')));
    const stream = raw.makeBidiStreamRequest(
      '/meshaudit.v1.AuditService/StreamEvents',
      (b: Buffer) => b,
      (b: Buffer) =>
        contract().messages.StreamEventsResponse.toObject(contract().messages.StreamEventsResponse.decode(b)),
    );
    const acks: unknown[] = [];
    stream.on('data', (ack) => acks.push(ack));
    stream.write(Buffer.from(put(sub(), field('StreamEventsRequest', 'identifier'), identifier).finish()));
    stream.write(Buffer.from(batch.finish()));
    await waitFor(() => acks.length === 2, 'the ack of the batch');
    stream.end();
    expect(acks[1]).to.deep.include({
      skipped: 1, // no rule is in force: the valid event is skipped, the other refused
      rejected: [{ index: 0, reason: 'user.name: is not valid UTF-8 (protobuf strings must be)' }],
    });
  });

  it('refuses a Record whose event has a string that is not UTF-8, naming it', async () => {
    const record = put(sub(), field('RecordRequest', 'event'), eventWithUser(NOT_UTF8)).finish();
    const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
      raw.makeUnaryRequest(
        '/meshaudit.v1.AuditService/Record',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(record),
        (e, reply) => (e ? resolve(e) : reject(new Error(`answered ${reply?.toString('hex')}`))),
      ),
    );
    expect(violations(err)).to.deep.equal([
      { field: 'event.user.name', description: 'is not valid UTF-8 (protobuf strings must be)' },
    ]);
  });
});
