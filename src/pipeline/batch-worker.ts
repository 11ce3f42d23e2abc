// Entry point of a batch worker thread (started by src/pipeline/batch-workers.ts). It evaluates the
// batches it is sent, in the order they come, with the rules most recently sent before each.
import { parentPort, workerData } from 'node:worker_threads';
import { compileRules } from '../rules';
import { RecordDateFormatter } from '../events/rfc3339';
import { BatchEvaluator } from './evaluate-batch';
import type { ToWorker, FromWorker, WorkerSettings } from './batch-workers';

const { utcOffsetMinutes } = workerData as WorkerSettings;
const dates = new RecordDateFormatter(utcOffsetMinutes === undefined ? undefined : () => utcOffsetMinutes);
let evaluator: BatchEvaluator | undefined;

parentPort!.on('message', (msg: ToWorker) => {
  if (msg.type === 'rules') {
    const rules = compileRules(msg.audits, msg.skipDefaultTypes);
    if (evaluator === undefined) evaluator = new BatchEvaluator(rules, dates);
    else evaluator.setRules(rules);
    return;
  }
  const out = evaluator!.evaluate(msg.job);
  // Sent by moving its memory, not copying it: unless it is a slice of Node's shared pool.
  const data = out.data.byteLength === out.data.buffer.byteLength ? out.data : new Uint8Array(out.data);
  const reply: FromWorker = { id: msg.id, recorded: out.recorded, skipped: out.skipped, rejected: out.rejected, data };
  parentPort!.postMessage(reply, data.byteLength > 0 ? [data.buffer as ArrayBuffer] : []);
});
