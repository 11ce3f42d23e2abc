// Batch evaluation in worker threads (src/pipeline/batch-workers.ts): the same answers as the event
// loop, in order, with the rules in force when each batch was accepted, and no batch lost or answered
// twice when a worker dies.
import { expect } from 'chai';
import * as protobuf from 'protobufjs';
import { Checkpoint } from '../src/store/checkpoint';
import { AuditWriter } from '../src/pipeline/writer';
import { AuditPipeline, type BatchResult } from '../src/pipeline/pipeline';
import { BatchWorkers } from '../src/pipeline/batch-workers';
import { OffloadSwitch } from '../src/pipeline/loop-load';
import { BatchEvaluator, type EvaluatedBatch } from '../src/pipeline/evaluate-batch';
import { RecordDateFormatter } from '../src/events/rfc3339';
import { compileRules, type CompiledRules } from '../src/rules';
import { scanStreamRequest, wireTypes } from '../src/wire/stream-request';
import {
  clients,
  openStream,
  readRecords,
  resourceEvent,
  startTestSidecar,
  tempDir,
  testConfig,
  AUDIT_ALL,
  MemorySink,
} from './helpers';

const ALL = compileRules([AUDIT_ALL], []);
const CREATES_ONLY = compileRules(
  [{ name: 'creates', rules: [{ types: [], mesh: '', access: ['CREATE'], accessAll: false }] }],
  [],
);

/** An encoded StreamEventsRequest of `n` events from `first` on, alternating CREATE and UPDATE. */
function batch(first: number, n: number): Buffer {
  const events = Array.from({ length: n }, (_, i) =>
    resourceEvent(first + i, (first + i) % 2 === 0 ? 'CREATE' : 'UPDATE'),
  );
  const w = protobuf.Writer.create();
  w.uint32((2 << 3) | 0).uint64(first);
  for (const e of events) w.uint32((3 << 3) | 2).bytes(wireTypes().event.encode(e).finish());
  return Buffer.from(w.finish());
}

function onEventLoop(bytes: Buffer, rules: CompiledRules): EvaluatedBatch {
  return new BatchEvaluator(rules, new RecordDateFormatter(() => 0)).evaluate({
    bytes,
    from: 0,
    receivedMs: 0,
    eventCount: scanStreamRequest(bytes).eventCount,
  });
}

function run(workers: BatchWorkers, bytes: Buffer, rules: CompiledRules): Promise<EvaluatedBatch> {
  return new Promise((resolve) =>
    workers.run({ bytes, from: 0, receivedMs: 0, eventCount: scanStreamRequest(bytes).eventCount }, rules, resolve),
  );
}

function plainResult(out: EvaluatedBatch): object {
  return { ...out, data: out.data.toString() };
}

describe('when batches go to the workers', () => {
  it('after three busy samples in a row, until five in a row fall below the lower mark', () => {
    const run = (samples: number[]): boolean[] => {
      const sw = new OffloadSwitch();
      return samples.map((u) => sw.sample(u));
    };
    expect(run([0.7, 0.95, 0.61, 0.5, 0.31, 0.3, 0.29, 0.1, 0.2, 0.0, 0.29, 0.9])).to.deep.equal([
      false,
      false,
      true,
      true,
      true,
      true,
      true,
      true,
      true,
      true,
      false,
      false,
    ]);
    // One quiet window under load (a pause between batches) does not stop it, nor four.
    expect(run([0.9, 0.9, 0.9, 0.1, 0.7, 0.1, 0.1, 0.1, 0.1, 0.5, 0.2])).to.deep.equal([
      false,
      false,
      true,
      true,
      true,
      true,
      true,
      true,
      true,
      true,
      true,
    ]);
    // A single busy window (a garbage collection, a rotation) is not enough, nor two with a pause between.
    expect(run([0.9, 0.2, 0.9, 0.9, 0.5, 0.9, 0.9])).to.deep.equal([false, false, false, false, false, false, false]);
    // A load at the mark, not above it, stays on the event loop.
    expect(run([0.1, 0.2, 0.59, 0.6, 0.6, 0.6, 0.15])).to.deep.equal([false, false, false, false, false, false, false]);
  });

  it('keeps offloading a steady load that would come back to the loop, and stops once loop and workers are idle', () => {
    const sw = new OffloadSwitch();
    // A steady load that keeps the loop at 0.65 alone: offloading takes 60% of it to a worker.
    const decisions = [0.65, 0.65, 0.65].map((u) => sw.sample(u, 0));
    for (let i = 0; i < 20; i++) decisions.push(sw.sample(0.26, 0.39));
    expect(decisions.every((d, i) => d === i >= 2)).to.equal(true);
    // The load ends: five quiet samples of both, and batches stay on the loop again.
    expect([0.01, 0.02, 0.0, 0.01, 0.0, 0.0].map((u) => sw.sample(u, 0.05))).to.deep.equal([
      true,
      true,
      true,
      true,
      false,
      false,
    ]);
    // The loop's own utilisation alone would have switched it off during the steady load.
    const loopOnly = new OffloadSwitch();
    [0.65, 0.65, 0.65].forEach((u) => loopOnly.sample(u));
    expect(Array.from({ length: 6 }, () => loopOnly.sample(0.26)).at(-1)).to.equal(false);
  });
});

describe('batch worker threads', () => {
  it('answer with what the event loop gives, each batch with the rules it was sent with', async () => {
    const workers = new BatchWorkers(2, { utcOffsetMinutes: 0 });
    try {
      const jobs = Array.from({ length: 12 }, (_, i) => ({
        bytes: batch(1 + 10 * i, 10),
        rules: i % 3 === 0 ? CREATES_ONLY : ALL,
      }));
      const answers = await Promise.all(jobs.map((j) => run(workers, j.bytes, j.rules)));
      expect(answers.map(plainResult)).to.deep.equal(jobs.map((j) => plainResult(onEventLoop(j.bytes, j.rules))));
      expect(answers[0]).to.include({ recorded: 5, skipped: 5 });
    } finally {
      await workers.close();
    }
  });

  it('start when first needed, then say they are warm once warmed up and holding rules', async () => {
    const workers = new BatchWorkers(2, { utcOffsetMinutes: 0 });
    try {
      expect(workers.threads).to.have.length(0);
      expect(workers.utilization()).to.equal(0);
      expect(workers.warm).to.equal(false);
      expect(workers.available).to.equal(true);
      workers.start(ALL);
      workers.start(CREATES_ONLY); // a no-op once started
      expect(workers.threads).to.have.length(2);
      expect(workers.warm).to.equal(false); // the threads are still booting
      while (!workers.warm) await new Promise((r) => setTimeout(r, 5));
      // They hold the rules they were started with: a job with the same rules needs none sent.
      expect((await run(workers, batch(1, 10), ALL)).recorded).to.equal(10);
      expect(workers.threads).to.have.length(2);
      // Their busy share: the first call after a start is a baseline, then the jobs show.
      workers.utilization();
      await Promise.all(Array.from({ length: 200 }, (_, i) => run(workers, batch(1 + 100 * i, 100), ALL)));
      const used = workers.utilization();
      expect(used).to.be.greaterThan(0).and.at.most(2);
    } finally {
      await workers.close();
    }
    expect(workers.warm).to.equal(false);
  });

  it('warm up a replacement of a thread that died idle, before it was warm', async () => {
    const exits: Error[] = [];
    const workers = new BatchWorkers(1, { utcOffsetMinutes: 0, onWorkerExit: (err) => exits.push(err) });
    try {
      workers.start(ALL);
      await workers.threads[0].terminate(); // no job sent: nothing but the rules would warm the next one
      const deadline = Date.now() + 10_000;
      while (!workers.warm && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(exits).to.have.length(1);
      expect(workers.warm).to.equal(true);
    } finally {
      await workers.close();
    }
  });

  it('replace a worker that dies and send it its unanswered batches again, with their own rules', async () => {
    const exits: Error[] = [];
    const workers = new BatchWorkers(1, { utcOffsetMinutes: 0, onWorkerExit: (err) => exits.push(err) });
    try {
      const first = run(workers, batch(1, 10), CREATES_ONLY);
      const second = run(workers, batch(11, 10), ALL);
      await workers.threads[0].terminate(); // before it could answer: it was still starting
      expect(plainResult(await first)).to.deep.equal(plainResult(onEventLoop(batch(1, 10), CREATES_ONLY)));
      expect(plainResult(await second)).to.deep.equal(plainResult(onEventLoop(batch(11, 10), ALL)));
      expect(exits).to.have.length(1);
      expect(exits[0].message).to.match(/exited with code/);
      // The replacement keeps working.
      expect(await run(workers, batch(21, 4), ALL)).to.include({ recorded: 4 });
    } finally {
      await workers.close();
    }
  });

  it('evaluate on the event loop a batch that two workers died on', async () => {
    let workers: BatchWorkers | undefined;
    const exits: Error[] = [];
    workers = new BatchWorkers(1, {
      utcOffsetMinutes: 0,
      // The replacement dies too, before it has started: the batch has now been in two dead workers.
      onWorkerExit: (err) => exits.push(err) === 1 && setImmediate(() => void workers!.threads[0].terminate()),
    });
    try {
      const answer = run(workers, batch(1, 10), CREATES_ONLY);
      await workers.threads[0].terminate();
      expect(plainResult(await answer)).to.deep.equal(plainResult(onEventLoop(batch(1, 10), CREATES_ONLY)));
      expect(exits).to.have.length(2);
    } finally {
      await workers.close();
    }
  });

  it('give up on a worker that keeps dying, and answer on the event loop from then on', async () => {
    const exits: Error[] = [];
    const workers = new BatchWorkers(1, { utcOffsetMinutes: 0, onWorkerExit: (err) => exits.push(err) });
    workers.start(ALL);
    try {
      for (let death = 1; death <= 6 && workers.available; death++) {
        await workers.threads[0].terminate();
        while (exits.length < death) await new Promise((r) => setTimeout(r, 5));
      }
      expect(workers.available).to.equal(false);
      expect(exits.at(-1)!.message).to.equal('batch worker died 6 times within a minute');
      expect(plainResult(await run(workers, batch(1, 10), ALL))).to.deep.equal(
        plainResult(onEventLoop(batch(1, 10), ALL)),
      );
    } finally {
      await workers.close();
    }
  });

  it('reject every new event of a batch whose evaluation throws, rather than leave it unanswered', () => {
    const broken: CompiledRules = {
      ...ALL,
      covers: () => {
        throw new Error('broken rules');
      },
    };
    const out = new BatchEvaluator(broken, new RecordDateFormatter(() => 0)).evaluateOrReject({
      bytes: batch(1, 3),
      from: 1,
      receivedMs: 0,
      eventCount: 3,
    });
    expect(out.rejected).to.deep.equal([
      { index: 1, reason: 'event: could not be evaluated (broken rules)' },
      { index: 2, reason: 'event: could not be evaluated (broken rules)' },
    ]);
    expect(out.data.length).to.equal(0);
    expect(out.failure).to.equal('broken rules');
  });

  it('tell the pipeline about a batch rejected for a failed evaluation', async () => {
    const broken: CompiledRules = {
      ...ALL,
      covers: () => {
        throw new Error('broken rules');
      },
    };
    const checkpoint = new Checkpoint(tempDir());
    checkpoint.load();
    const failures: string[] = [];
    const pipeline = new AuditPipeline(new AuditWriter([new MemorySink()], checkpoint), broken, new Map(), {
      onEvaluationError: (failure, key, firstSeq) => failures.push(`${key} ${firstSeq}: ${failure}`),
    });
    try {
      const res = await new Promise<BatchResult>((resolve, reject) =>
        pipeline.submitBatch('z/cp', 1, { bytes: batch(1, 2), eventCount: 2 }, (err, r) =>
          err ? reject(err) : resolve(r!),
        ),
      );
      expect(res).to.include({ ackedSeq: 2, recorded: 0 });
      expect(res.rejected.map((r) => r.index)).to.deep.equal([0, 1]);
      expect(failures).to.deep.equal(['z/cp 1: broken rules']);
    } finally {
      await pipeline.close(1000);
    }
  });
});

for (const workerThreads of [1, 0]) {
  describe(`the pipeline with ${workerThreads} worker thread(s)`, () => {
    it('writes batches in acceptance order, each judged by the rules in force when it was accepted', async () => {
      const checkpoint = new Checkpoint(tempDir());
      checkpoint.load();
      const sink = new MemorySink({ held: true });
      const writer = new AuditWriter([sink], checkpoint);
      const pipeline = new AuditPipeline(writer, ALL, new Map(), {
        utcOffsetMinutes: 0,
        workerThreads,
        offload: 'always',
      });
      try {
        const results: Array<Promise<BatchResult>> = [];
        const submit = (first: number): void => {
          results.push(
            new Promise((resolve, reject) =>
              pipeline.submitBatch('z/cp', first, { bytes: batch(first, 10), eventCount: 10 }, (err, res) =>
                err ? reject(err) : resolve(res!),
              ),
            ),
          );
        };
        // All in one turn of the event loop: no worker has answered yet when the rules change. The
        // first write is held until all are submitted.
        submit(1);
        submit(11);
        pipeline.setRules(CREATES_ONLY);
        submit(21);
        pipeline.setRules(ALL);
        submit(31);
        expect(pipeline.stats.workerBatches).to.equal(workerThreads === 0 ? 0 : 4);
        sink.release();
        const acks = await Promise.all(results);
        expect(acks.map((a) => [a.ackedSeq, a.recorded, a.skipped])).to.deep.equal([
          [10, 10, 0],
          [20, 10, 0],
          [30, 5, 5],
          [40, 10, 0],
        ]);
        const names = sink.lines.map((l) => Number(JSON.parse(l).resource.name.slice('route-'.length)));
        const expected = [
          ...Array.from({ length: 20 }, (_, i) => i + 1),
          22,
          24,
          26,
          28,
          30,
          ...Array.from({ length: 10 }, (_, i) => 31 + i),
        ];
        expect(names).to.deep.equal(expected);
      } finally {
        await pipeline.close(1000);
      }
    });
  });
}

describe('the pipeline with batches in a worker', () => {
  it('is full while the bytes being evaluated pass the mark, and says so when they fall below it', async () => {
    const checkpoint = new Checkpoint(tempDir());
    checkpoint.load();
    const pipeline = new AuditPipeline(new AuditWriter([new MemorySink()], checkpoint), ALL, new Map(), {
      workerThreads: 1,
      offload: 'always',
      maxStagedBytes: 2000,
    });
    try {
      let drained = 0;
      pipeline.onDrain(() => drained++);
      const acked = new Promise<void>((resolve, reject) =>
        pipeline.submitBatch('z/cp', 1, { bytes: batch(1, 20), eventCount: 20 }, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
      expect(batch(1, 20).length).to.be.greaterThan(2000);
      expect(pipeline.isFull(), 'the batch is in the worker').to.equal(true);
      await acked;
      expect(pipeline.isFull()).to.equal(false);
      expect(drained).to.be.greaterThan(0);
    } finally {
      await pipeline.close(1000);
    }
  });
});

describe('a sidecar under light load', () => {
  it('starts no worker thread: batches are evaluated on the event loop', async () => {
    const config = testConfig(tempDir(), { workerThreads: 1 });
    const sidecar = await startTestSidecar(config, [AUDIT_ALL]);
    const c = clients(sidecar.port);
    try {
      const s = openStream(c.audit);
      s.call.write({ identifier: { zone: 'zone-1', instance: 'cp-0' } });
      await s.next();
      for (let b = 0; b < 5; b++) {
        s.call.write({
          firstSeq: 1 + 10 * b,
          events: Array.from({ length: 10 }, (_, i) => resourceEvent(1 + 10 * b + i)),
        });
        expect((await s.next()).ackedSeq).to.equal(10 * (b + 1));
      }
      expect(sidecar.pipeline.workerThreads).to.have.length(0);
      expect(sidecar.pipeline.stats.workerBatches).to.equal(0);
      s.call.end();
    } finally {
      c.close();
      await sidecar.stop();
    }
  });
});

describe('a sidecar whose batch worker dies mid-stream', () => {
  it('acknowledges every event once and writes each exactly once', async () => {
    const config = testConfig(tempDir(), { workerThreads: 1 });
    const sidecar = await startTestSidecar(config, [AUDIT_ALL], { offload: 'always' });
    const c = clients(sidecar.port);
    try {
      const s = openStream(c.audit);
      s.call.write({ identifier: { zone: 'zone-1', instance: 'cp-0' } });
      await s.next();
      const batches = 40;
      for (let b = 0; b < batches; b++) {
        s.call.write({
          firstSeq: 1 + 50 * b,
          events: Array.from({ length: 50 }, (_, i) => resourceEvent(1 + 50 * b + i)),
        });
        if (b === 10) {
          // The thread starts with the first batch the sidecar reads.
          while (sidecar.pipeline.workerThreads.length === 0) await new Promise((r) => setTimeout(r, 1));
          await sidecar.pipeline.workerThreads[0].terminate();
        }
      }
      let acked = 0;
      while (acked < 50 * batches) acked = (await s.next()).ackedSeq;
      expect(acked).to.equal(50 * batches);
      expect(sidecar.pipeline.stats.workerBatches).to.equal(batches);
      const names = readRecords(config.backends[0].path).map((l) => JSON.parse(l).resource.name);
      expect(names).to.deep.equal(Array.from({ length: 50 * batches }, (_, i) => `route-${i + 1}`));
      s.call.end();
    } finally {
      c.close();
      await sidecar.stop();
    }
  });
});
