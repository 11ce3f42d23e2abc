// One follower for the benchmark's scenario s1f: `ReadService.Query {follow: true}` on the sidecar under
// load, reading every record as the writer commits it, as an operator's `meshaudit tail -f` does. It
// prints {"ready": true} once the call is open, and on "stop" (stdin) {"result": {records, responses}}.
// Its own CPU (decoding the responses) is its own: the benchmark measures the sidecar.
import * as grpc from '@grpc/grpc-js';
import { meshauditClients } from '../src/client/services';

const address = process.argv[2];
const client = new (meshauditClients().ReadService)(
  address,
  grpc.credentials.createInsecure(),
) as unknown as grpc.Client & {
  Query(request: object): grpc.ClientReadableStream<{ records: string[] }>;
};
const call = client.Query({ follow: true, filter: {} });
let records = 0;
let responses = 0;
let failed: string | undefined;
call.on('data', (r: { records: string[] }) => {
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
