// The floor (issue 4): the same encoded batches scenario 1 sends, read, validated, evaluated against the
// same rules and formatted by meshaudit's own batch evaluator (src/pipeline/evaluate-batch.ts, the
// code the sidecar runs per batch), and written and committed by its own group-commit writer
// (src/pipeline/writer.ts: the same file sink, the same checkpoint), 8 batches in flight, by one
// process with no gRPC. What meshaudit costs beyond this is what gRPC, streams and acks cost.
//
// argv[2] is a JSON FloorSpec; prints one JSON line {"result": FloorResult} and exits.
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as path from 'node:path';
import { FileSink } from '../src/backends/file';
import { AuditWriter } from '../src/pipeline/writer';
import { Checkpoint } from '../src/store/checkpoint';
import { loadAccessAuditFiles } from '../src/config/rules-files';
import { defaultLimits } from '../src/config/load';
import { RecordDateFormatter } from '../src/record/dates';
import { BatchEvaluator } from '../src/pipeline/evaluate-batch';
import { compileRules, DEFAULT_SKIP_TYPES, typeRegistry } from '../src/rules';
import { cachedStream, type DateMode, loadCodec } from './events';

export interface FloorSpec {
  cacheDir: string;
  /** Measured events, after `warmupEvents` processed the same way before the clock starts. */
  events: number;
  warmupEvents: number;
  batchSize: number;
  /** The active audit file; rotated files go beside it. */
  auditFile: string;
  maxSizeMb: number;
  rulesFiles: string[];
  /** Writes queued in the sink at most, like the CP's window of unacknowledged batches. */
  inFlight: number;
  maxSeconds: number;
  /** How the events are dated (events.ts): scenario 1's batches, so per event. */
  dates: DateMode;
}

export interface FloorResult {
  measured: number;
  elapsedMs: number;
  cpuMs: number;
  peakRssMb: number;
  /** The last sequence written: the exactly-once check expects 1..lastSeq once each. */
  lastSeq: number;
  recorded: number;
  skipped: number;
  rejected: number;
  prepareMs: number;
  /** The encoded batches held in memory (part of the peak RSS). */
  inputMb: number;
  /** CPU of the whole process, start to finish (for the orchestrator's check of other load on the machine). */
  totalCpuMs: number;
}

function peakRssMb(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as FloorSpec;
  const t0 = performance.now();
  const codec = loadCodec();
  const batches = cachedStream(spec.cacheDir, codec, 0, spec.warmupEvents + spec.events, spec.batchSize, spec.dates);
  const { audits } = loadAccessAuditFiles(spec.rulesFiles, typeRegistry());
  const rules = compileRules(audits, DEFAULT_SKIP_TYPES);
  const dates = new RecordDateFormatter();
  const sink = new FileSink({
    path: spec.auditFile,
    rotation: { enabled: true, maxRetainedFiles: 0, maxSizeBytes: spec.maxSizeMb * 1024 * 1024, maxAgeDays: 0 },
  });
  await sink.open();
  // Beside the audit folder, like the sidecar's dataDir.
  const checkpoint = new Checkpoint(path.join(path.dirname(spec.auditFile), '..', 'floor-data'));
  checkpoint.load();
  const writer = new AuditWriter([sink], checkpoint);
  const prepareMs = performance.now() - t0;
  const counts = { recorded: 0, skipped: 0, rejected: 0 };
  const evaluator = new BatchEvaluator(rules, dates, defaultLimits());

  const process1 = (buf: Buffer): Buffer => {
    const out = evaluator.evaluate({ bytes: buf, from: 0, receivedMs: Date.now(), eventCount: 0 });
    counts.recorded += out.recorded;
    counts.skipped += out.skipped;
    counts.rejected += out.rejected.length;
    return out.data;
  };
  const submit = (k: number): Promise<void> =>
    writer.submit(process1(batches[k]), { key: 'floor', seq: (k + 1) * spec.batchSize });
  const run = async (from: number, to: number, deadline: number): Promise<number> => {
    const pending: Array<Promise<unknown>> = [];
    let k = from;
    for (; k < to && performance.now() < deadline; k++) {
      pending.push(submit(k));
      if (pending.length >= spec.inFlight) await pending.shift();
    }
    await Promise.all(pending);
    return k;
  };

  const warmupBatches = Math.ceil(spec.warmupEvents / spec.batchSize);
  await run(0, warmupBatches, Infinity);
  const warm = { ...counts };
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const reached = await run(warmupBatches, batches.length, start + spec.maxSeconds * 1000);
  const elapsedMs = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  await writer.close(10_000); // closes the sink and the checkpoint
  const lastSeq = Math.min(reached * spec.batchSize, spec.warmupEvents + spec.events);
  const result: FloorResult = {
    measured: lastSeq - Math.min(warmupBatches * spec.batchSize, lastSeq),
    elapsedMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    peakRssMb: peakRssMb(),
    lastSeq,
    recorded: counts.recorded - warm.recorded,
    skipped: counts.skipped - warm.skipped,
    rejected: counts.rejected - warm.rejected,
    prepareMs,
    inputMb: batches.reduce((sum, b) => sum + b.length, 0) / 2 ** 20,
    totalCpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
  };
  process.stdout.write(`${JSON.stringify({ result })}\n`, () => process.exit(0));
}

main().catch((err) => {
  process.stdout.write(
    `${JSON.stringify({ fatal: err instanceof Error ? (err.stack ?? err.message) : String(err) })}\n`,
    () => process.exit(1),
  );
});
