// One follower for the benchmark's scenario s1f: `ReadService.Query {follow: true}` on the sidecar under
// load, reading every record as the writer commits it, as an operator's `meshaudit tail -f` does. It
// prints {"ready": true} once the call is open, and on "stop" (stdin) {"result": {records, responses}}.
// It counts the records in each response's bytes rather than decoding them into strings: the benchmark
// measures the sidecar, and on 2 cores a follower decoding 30 MB of strings per 100k events would take
// the CPU the sidecar and the load generator share (an operator's follower runs elsewhere).
import * as grpc from '@grpc/grpc-js';
import { meshauditClients } from '../src/client/services';

/** The records (field 1) in a QueryResponse's bytes. */
function countRecords(bytes: Buffer): { records: { length: number } } {
  let records = 0;
  for (let at = 0; at < bytes.length; ) {
    const tag = bytes[at++];
    let length = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[at++];
      length += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
    at += length;
    if (tag === 0x0a) records++;
  }
  return { records: { length: records } };
}

const address = process.argv[2];
const query = meshauditClients().ReadService.service.Query;
const Client = grpc.makeGenericClientConstructor({ Query: { ...query, responseDeserialize: countRecords } }, 'Read');
const client = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
  Query(request: object): grpc.ClientReadableStream<{ records: { length: number } }>;
};
const call = client.Query({ follow: true, filter: {} });
let records = 0;
let responses = 0;
let failed: string | undefined;
call.on('data', (r: { records: { length: number } }) => {
  records += r.records.length;
  responses++;
});
call.on('error', (e: grpc.ServiceError) => {
  if (e.code !== grpc.status.CANCELLED) failed = e.message;
});
call.on('metadata', () => {});
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d: string) => {
  if (!d.includes('stop')) return;
  call.cancel();
  client.close();
  process.stdout.write(`${JSON.stringify({ result: { records, responses, failed: failed ?? null } })}\n`);
  process.exit(0);
});
