// The group-commit writer with sinks that fail on demand (a test double of the sink boundary; the
// real file sink's own failures are tested in file-sink.test.ts) and the real checkpoint on disk.
import { expect } from 'chai';
import type { Sink, SinkPosition } from '../src/backends/sink';
import { Checkpoint } from '../src/store/checkpoint';
import { AuditWriter, WriterClosedError } from '../src/pipeline/writer';
import { tempDir } from './helpers';

class FlakySink implements Sink {
  failing = false;
  data = '';
  writes = 0;
  /** The file the next writes end in: change it to make the next write a rotation. */
  ino = 1;
  constructor(readonly key: string) {}
  open(): Promise<SinkPosition> {
    return Promise.resolve({ ino: 1, size: 0 });
  }
  write(chunk: Buffer): Promise<SinkPosition> {
    this.writes++;
    if (this.failing) return Promise.reject(new Error(`${this.key}: ENOSPC`));
    this.data += chunk.toString();
    return Promise.resolve({ ino: this.ino, size: this.data.length });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The real checkpoint, whose commits wait until the test lets them through (or fail them). */
interface HeldCommit {
  seqs: ReadonlyMap<string, number>;
  /** The size of sink "a" this commit records. */
  size: number | undefined;
  release: (fail?: Error) => void;
}

class GatedCheckpoint extends Checkpoint {
  held: HeldCommit[] = [];
  override commit(delta: Parameters<Checkpoint['commit']>[0], done: (err: Error | null) => void): void {
    const size = delta.positions.get('a')?.size;
    this.held.push({
      seqs: new Map(delta.seqs),
      size,
      release: (fail) => (fail ? done(fail) : super.commit(delta, done)),
    });
  }
  async next(): Promise<HeldCommit> {
    while (this.held.length === 0) await new Promise((r) => setTimeout(r, 1));
    return this.held.shift()!;
  }
}

/** A writer over one FlakySink "a" and a fresh checkpoint (gated: commits wait for the test). */
function setup<C extends Checkpoint>(
  Kind: new (dir: string) => C,
  opts: ConstructorParameters<typeof AuditWriter>[2] = {},
): { dir: string; cp: C; sink: FlakySink; w: AuditWriter } {
  const dir = tempDir();
  const cp = new Kind(dir);
  cp.load();
  const sink = new FlakySink('a');
  return { dir, cp, sink, w: new AuditWriter([sink], cp, opts) };
}

/** Lets the writer run what it can. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

function submit(w: AuditWriter, lines: string, seq: number): Promise<Error | null> {
  return new Promise((resolve) => w.submit({ data: Buffer.from(lines), seqKey: 'z/cp', seq, done: resolve }));
}

function committedSeq(dir: string): number | undefined {
  return new Checkpoint(dir).load().state.seqs.get('z/cp');
}

describe('group-commit writer', () => {
  it('commits groups in order and acknowledges each after its commit', async () => {
    const { dir, sink, w } = setup(Checkpoint);
    const results = await Promise.all([submit(w, 'one\n', 1), submit(w, 'two\n', 2), submit(w, 'three\n', 3)]);
    expect(results).to.deep.equal([null, null, null]);
    expect(sink.data).to.equal('one\ntwo\nthree\n');
    await w.close(100);
    expect(committedSeq(dir)).to.equal(3);
  });

  it('retries a failed group and commits nothing after it until it is written', async () => {
    const errors: number[] = [];
    const { sink, w } = setup(Checkpoint, {
      retryDelayMs: 5,
      maxRetryDelayMs: 10,
      onError: (_e, attempt) => errors.push(attempt),
    });
    sink.failing = true;
    const first = submit(w, 'one\n', 1);
    const second = submit(w, 'two\n', 2);
    await new Promise((r) => setTimeout(r, 60));
    expect(sink.data).to.equal('');
    expect(errors.length).to.be.greaterThan(2);
    sink.failing = false;
    expect(await first).to.equal(null);
    expect(await second).to.equal(null);
    expect(sink.data).to.equal('one\ntwo\n');
    await w.close(100);
  });

  it('retries only the backend that failed, so the other does not get the group twice', async () => {
    const dir = tempDir();
    const cp = new Checkpoint(dir);
    cp.load();
    const a = new FlakySink('a');
    const b = new FlakySink('b');
    const w = new AuditWriter([a, b], cp, { retryDelayMs: 5 });
    b.failing = true;
    const done = submit(w, 'one\n', 1);
    await new Promise((r) => setTimeout(r, 30));
    b.failing = false;
    expect(await done).to.equal(null);
    expect([a.data, b.data]).to.deep.equal(['one\n', 'one\n']);
    await w.close(100);
  });

  it('on close gives up a group still failing and everything queued after it, committing none of it', async () => {
    const { dir, sink, w } = setup(Checkpoint, { retryDelayMs: 5, maxRetryDelayMs: 5 });
    expect(await submit(w, 'zero\n', 10)).to.equal(null);
    sink.failing = true;
    const stuck = submit(w, 'one\n', 11);
    const after = submit(w, 'two\n', 12);
    await new Promise((r) => setTimeout(r, 20));
    await w.close(1);
    sink.failing = false; // the disk recovers too late: nothing may be written or committed any more
    expect(await stuck).to.be.instanceOf(WriterClosedError);
    expect(await after).to.be.instanceOf(WriterClosedError);
    const writesAtClose = sink.writes;
    await new Promise((r) => setTimeout(r, 30));
    expect(sink.writes).to.equal(writesAtClose);
    expect(committedSeq(dir)).to.equal(10);
  });

  it('writes the next group while one is committed, and commits and acknowledges in order', async () => {
    const { dir, cp, sink, w } = setup(GatedCheckpoint, { retryDelayMs: 1, maxRetryDelayMs: 1 });
    const acked: number[] = [];
    const send = (seq: number): Promise<Error | null> =>
      submit(w, `${seq}\n`, seq).then((err) => (acked.push(seq), err));
    // The first write after a start counts as a rotation (next test): its commit comes first.
    const zero = send(0);
    (await cp.next()).release();
    expect(await zero).to.equal(null);
    const one = send(1);
    const first = await cp.next();
    expect(first.seqs.get('z/cp')).to.equal(1);
    expect(first.size).to.equal(4); // what group 1's own write ended at, not any later write's
    // Group 1 is being committed: group 2 is written meanwhile, but not acknowledged.
    const two = send(2);
    await settle();
    expect(sink.data).to.equal('0\n1\n2\n');
    // Group 3 waits: one group is committed, one written and waiting, no more.
    const three = send(3);
    await settle();
    expect(sink.data).to.equal('0\n1\n2\n');
    expect(acked).to.deep.equal([0]);
    // Group 1's commit fails: it is retried, and nothing after it is committed or acknowledged first.
    first.release(new Error('EIO'));
    const retry = await cp.next();
    expect(retry.seqs.get('z/cp')).to.equal(1);
    expect(retry.size).to.equal(4);
    expect(acked).to.deep.equal([0]);
    retry.release();
    expect(await one).to.equal(null);
    const second = await cp.next();
    expect(second.seqs.get('z/cp')).to.equal(2);
    expect(second.size).to.equal(6);
    expect(sink.data).to.equal('0\n1\n2\n3\n');
    second.release();
    (await cp.next()).release();
    expect(await Promise.all([two, three])).to.deep.equal([null, null]);
    expect(acked).to.deep.equal([0, 1, 2, 3]);
    await w.close(100);
    expect(committedSeq(dir)).to.equal(3);
  });

  it('writes nothing more after a write that rotated a file until that group is committed', async () => {
    const { cp, sink, w } = setup(GatedCheckpoint);
    const zero = submit(w, '0\n', 0);
    (await cp.next()).release();
    await zero;
    // Group 1 ends in the same file: group 2 is written during its commit.
    const one = submit(w, '1\n', 1);
    const first = await cp.next();
    sink.ino = 2; // group 2's write rotates
    const two = submit(w, '2\n', 2);
    await settle();
    expect(sink.data).to.equal('0\n1\n2\n');
    first.release();
    await one;
    const second = await cp.next();
    // Group 2 rotated: group 3 waits for its commit, whatever else is free.
    const three = submit(w, '3\n', 3);
    await settle();
    expect(sink.data).to.equal('0\n1\n2\n');
    second.release();
    await two;
    const third = await cp.next();
    expect(sink.data).to.equal('0\n1\n2\n3\n');
    third.release();
    expect(await three).to.equal(null);
    await w.close(100);
  });

  it('on close gives up the groups in every stage, committing and acknowledging none of them', async () => {
    const { dir, cp, sink, w } = setup(GatedCheckpoint);
    const zero = submit(w, '0\n', 0);
    (await cp.next()).release();
    await zero;
    const committing = submit(w, '1\n', 1);
    const held = await cp.next(); // group 1's commit never comes back before the close
    const written = submit(w, '2\n', 2);
    await settle();
    const queued = submit(w, '3\n', 3);
    await settle();
    expect(sink.data).to.equal('0\n1\n2\n');
    await w.close(1);
    expect(await Promise.all([committing, written, queued])).to.satisfy((errs: unknown[]) =>
      errs.every((e) => e instanceof WriterClosedError),
    );
    // Group 1's commit was already under way and may still land (a stream's resend is then a
    // duplicate the sidecar drops by sequence); nothing written after it is ever committed.
    held.release();
    await settle();
    expect(cp.held).to.deep.equal([]);
    expect(sink.data).to.equal('0\n1\n2\n');
    await w.idle(); // resolves: nothing is left
    expect(committedSeq(dir)).to.equal(1);
  });

  it('refuses new requests once closed', async () => {
    const { w } = setup(Checkpoint);
    await w.close(10);
    expect(await submit(w, 'late\n', 1)).to.be.instanceOf(WriterClosedError);
  });
});
