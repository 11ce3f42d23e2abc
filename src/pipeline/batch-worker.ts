// Entry point of a batch worker thread (started by src/pipeline/batch-workers.ts). It evaluates the
// batches it is sent, in the order they come, with the rules most recently sent before each.
import { parentPort, workerData } from 'node:worker_threads';
import { compileRules } from '../rules';
import { RecordDateFormatter } from '../events/rfc3339';
import * as protobuf from 'protobufjs';
import { BatchEvaluator } from './evaluate-batch';
import { wireTypes } from '../wire/stream-request';
import type { ToWorker, FromWorker, WorkerSettings } from './batch-workers';

const { utcOffsetMinutes } = workerData as WorkerSettings;
const dates = new RecordDateFormatter(utcOffsetMinutes === undefined ? undefined : () => utcOffsetMinutes);
let evaluator: BatchEvaluator | undefined;

/**
 * Evaluates a made-up batch until V8 has compiled the evaluation code. The pipeline sends a worker
 * batches only when work piles up, so under light load a worker may see one batch now and then: never
 * enough for the optimising compiler, and a batch run by the interpreter took some 20 ms.
 */
function warmUp(): void {
  const event = wireTypes().event;
  const w = protobuf.Writer.create();
  for (let i = 0; i < 100; i++) {
    const e =
      i % 10 === 9
        ? {
            date: '2024-05-01T10:00:00Z',
            action: 'GENERATE_DATAPLANE_TOKEN',
            token: { id: `t-${i}`, expiresAt: '2024-05-02T10:00:00Z', claims: { mesh: 'm', tags: { b: '1', a: '2' } } },
            user: { name: 'u', groups: ['g'] },
          }
        : {
            id: `e-${i}`,
            date: '2024-05-01T10:00:00Z',
            action: 'UPDATE',
            resource: { type: 'Mesh', name: `r-${i}`, mesh: 'm' },
            user: { name: 'u', groups: ['g', 'h'] },
          };
    w.uint32((3 << 3) | 2).bytes(event.encode(e).finish());
  }
  const bytes = Buffer.from(w.finish());
  const warm = new BatchEvaluator(
    compileRules([{ name: 'all', rules: [{ types: [], mesh: '', access: [], accessAll: true }] }], []),
    new RecordDateFormatter(() => 0),
  );
  for (let round = 0; round < WARM_UP_ROUNDS; round++)
    warm.evaluate({ bytes, from: 0, receivedMs: 0, eventCount: 100 });
}
const WARM_UP_ROUNDS = 200;
warmUp();

parentPort!.on('message', (msg: ToWorker) => {
  if (msg.type === 'rules') {
    const rules = compileRules(msg.audits, msg.skipDefaultTypes);
    if (evaluator === undefined) {
      evaluator = new BatchEvaluator(rules, dates);
      // Warmed up and holding rules (10,000 AccessAudits take a while to compile): ready for work.
      parentPort!.postMessage({ type: 'warm' } satisfies FromWorker);
    } else {
      evaluator.setRules(rules);
    }
    return;
  }
  const out = evaluator!.evaluateOrReject(msg.job);
  // Sent by moving its memory, not copying it: unless it is a slice of Node's shared pool.
  const data = out.data.byteLength === out.data.buffer.byteLength ? out.data : new Uint8Array(out.data);
  const reply: FromWorker = {
    type: 'answer',
    id: msg.id,
    recorded: out.recorded,
    skipped: out.skipped,
    rejected: out.rejected,
    failure: out.failure,
    data,
  };
  parentPort!.postMessage(reply, data.byteLength > 0 ? [data.buffer as ArrayBuffer] : []);
});
