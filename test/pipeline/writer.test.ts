// The group-commit writer with sinks that fail on demand (a test double of the sink boundary; the
// real file sink's own failures are tested in file-sink.test.ts) and the real checkpoint on disk.
// Nothing here waits on a clock: the doubles say when a write or a commit happens, and `turn()` lets
// the writer do all it can with what the doubles have already answered.
import { EventEmitter, once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import type { Sink, SinkPosition } from '../../src/backends/sink';
import { FileSink } from '../../src/backends/file';
import { AuditWriter, WriterClosedError } from '../../src/pipeline/writer';
import { Checkpoint } from '../../src/store/checkpoint';
import { Metrics } from '../../src/metrics';
import { samples, tempDir, waitFor } from '../support/helpers';

/** A sink in memory that fails while `failing`; every write attempt is an 'attempt' event. */
class FlakySink extends EventEmitter implements Sink {
  failing = false;
  data = '';
  writes = 0;
  /** The file the next writes end in: change it to make the next write a rotation. */
  ino = 1;
  constructor(readonly key: string) {
    super();
  }
  open(): Promise<SinkPosition> {
    return Promise.resolve({ ino: 1, size: 0 });
  }
  write(chunk: Buffer): Promise<SinkPosition> {
    this.writes++;
    this.emit('attempt');
    if (this.failing) return Promise.reject(new Error(`${this.key}: ENOSPC`));
    this.data += chunk.toString();
    return Promise.resolve({ ino: this.ino, size: this.data.length });
  }
  /** Reopens so far; each one moves to a new file (ino + 1), as after the operator moved the old one. */
  reopens = 0;
  reopen(): Promise<SinkPosition> {
    this.reopens++;
    this.ino++;
    return Promise.resolve({ ino: this.ino, size: 0 });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A commit held by GatedCheckpoint until the test lets it through (or fails it). */
interface HeldCommit {
  seqs: ReadonlyMap<string, number>;
  /** The size of sink "a" this commit records. */
  size: number | undefined;
  /** The file (inode) of sink "a" this commit records. */
  ino: number | undefined;
  /** Every sink's position this commit records. */
  positions: ReadonlyMap<string, SinkPosition>;
  release: (fail?: Error) => void;
}

/** The real checkpoint, whose commits wait until the test releases them. */
class GatedCheckpoint extends Checkpoint {
  held: HeldCommit[] = [];
  private readonly arrived = new EventEmitter();

  override commit(delta: Parameters<Checkpoint['commit']>[0]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.held.push({
        seqs: new Map(delta.seqs),
        size: delta.positions.get('a')?.size,
        ino: delta.positions.get('a')?.ino,
        positions: new Map(delta.positions),
        release: (fail) => (fail ? reject(fail) : super.commit(delta).then(resolve, reject)),
      });
      this.arrived.emit('commit');
    });
  }

  /** The next commit the writer asks for, once it does. */
  async next(): Promise<HeldCommit> {
    if (this.held.length === 0) await once(this.arrived, 'commit');
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

/** Resolves once `sink` has been asked to write `n` times in all. */
async function attempts(sink: FlakySink, n: number): Promise<void> {
  while (sink.writes < n) await once(sink, 'attempt');
}

/** One turn of the event loop: every promise already settled has run its continuations. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Submits `lines` completing sequence `seq`; resolves with null once committed, or with the error. */
function submit(w: AuditWriter, lines: string, seq: number): Promise<Error | null> {
  return w.submit(Buffer.from(lines), { key: 'z/cp', seq }).then(
    () => null,
    (err: Error) => err,
  );
}

function committedSeq(dir: string): number | undefined {
  return new Checkpoint(dir).load().state.seqs.get('z/cp');
}

describe('group-commit writer', () => {
  it('commits where a new active file starts before it writes to it, when the old one was moved away', async () => {
    const dir = tempDir();
    const cp = new GatedCheckpoint(dir);
    cp.load();
    const file = path.join(dir, 'audit', 'audit.log');
    const sink = new FileSink({
      path: file,
      rotation: { enabled: false, maxRetainedFiles: 0, maxSizeBytes: 1024, maxAgeDays: 0 },
    });
    await sink.open();
    const w = new AuditWriter([sink], cp, { retryDelayMs: 1, maxRetryDelayMs: 1 });
    const first = submit(w, 'one\n', 1);
    (await cp.next()).release();
    expect(await first).to.equal(null);
    // logrotate's create mode, or an operator's mv, while the sidecar writes.
    fs.renameSync(file, `${file}.1`);
    const second = submit(w, 'two\n', 2);
    // The write to the moved file is taken back; a new file is made at the path, and where it starts is
    // committed before anything is written to it: a crash after the write finds that file by its inode.
    const start = await cp.next();
    const ino = fs.statSync(file).ino;
    expect(start.positions.get(file)).to.deep.equal({ ino, size: 0 });
    expect(fs.readFileSync(file, 'utf8')).to.equal('');
    start.release();
    const written = await cp.next();
    expect(written.positions.get(file)).to.deep.equal({ ino, size: 4 });
    written.release();
    expect(await second).to.equal(null);
    expect(fs.readFileSync(`${file}.1`, 'utf8')).to.equal('one\n');
    expect(fs.readFileSync(file, 'utf8')).to.equal('two\n');
    await w.close(1000);
  });

  it('counts per group and per part: bytes and time of each write, failed writes and commits, the queue, the checkpoint', async () => {
    const metrics = new Metrics({ zone: 'z', version: 'test' });
    const { dir, cp, sink, w } = setup(GatedCheckpoint, { retryDelayMs: 1, maxRetryDelayMs: 1, metrics });
    const read = async (): Promise<Map<string, number>> => samples(await metrics.prometheus());
    sink.failing = true;
    const first = submit(w, 'one\n', 1);
    await turn(); // the group starts at the end of the turn: "two\n" comes after it
    const queued = submit(w, 'two\n', 2);
    await attempts(sink, 2);
    let m = await read();
    expect(m.get('meshaudit_write_failures_total{backend="a"}')).to.be.at.least(2);
    expect(m.get('meshaudit_pending_bytes')).to.equal(4); // "two\n" waits behind the failing group
    sink.failing = false;
    // The first commit fails once, then goes through.
    (await cp.next()).release(new Error('EIO'));
    (await cp.next()).release();
    expect(await first).to.equal(null);
    (await cp.next()).release();
    expect(await queued).to.equal(null);
    m = await read();
    expect({
      bytes: m.get('meshaudit_written_bytes_total{backend="a"}'),
      writes: m.get('meshaudit_write_duration_seconds_count{backend="a"}'),
      commits: m.get('meshaudit_checkpoint_commit_duration_seconds_count'),
      failures: m.get('meshaudit_write_failures_total{backend="a"}'),
      commitFailures: m.get('meshaudit_write_failures_total{backend="checkpoint"}'),
      pending: m.get('meshaudit_pending_bytes'),
      checkpoint: m.get('meshaudit_checkpoint_size_bytes'),
    }).to.deep.equal({
      bytes: 8,
      writes: 2,
      commits: 2,
      failures: sink.writes - 2, // every attempt but the two that worked
      commitFailures: 1,
      pending: 0,
      checkpoint: fs.statSync(path.join(dir, 'checkpoint.jsonl')).size,
    });
    await w.close(100);
  });

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
      retryDelayMs: 1,
      maxRetryDelayMs: 2,
      onError: (_e, attempt) => errors.push(attempt),
    });
    sink.failing = true;
    const first = submit(w, 'one\n', 1);
    const second = submit(w, 'two\n', 2);
    await attempts(sink, 3);
    expect(sink.data).to.equal('');
    expect(errors.slice(0, 2)).to.deep.equal([1, 2]);
    sink.failing = false;
    expect(await first).to.equal(null);
    expect(await second).to.equal(null);
    expect(sink.data).to.equal('one\ntwo\n');
    await w.close(100);
  });

  it('acknowledges a group that spanned a pause only once confirmAfterPause agrees, and none that it refuses', async () => {
    let confirms = 0;
    let refusing = true;
    const errors: string[] = [];
    const { dir, sink, w } = setup(Checkpoint, {
      retryDelayMs: 1,
      onError: (e) => errors.push(e.message),
      pauseCheckMs: 0, // every group counts as one that spanned a pause
      confirmAfterPause: () => {
        confirms++;
        if (refusing) throw new Error('the data directory was taken over');
      },
    });
    let answered = false;
    const first = submit(w, 'one\n', 1).then((r) => {
      answered = true;
      return r;
    });
    await waitFor(() => confirms >= 2, 'the commit to be confirmed, refused and retried');
    expect(answered).to.equal(false);
    // Refused before the checkpoint line: nothing of it reached the checkpoint.
    expect(committedSeq(dir)).to.equal(undefined);
    expect(errors[0]).to.equal('the data directory was taken over');
    refusing = false;
    expect(await first).to.equal(null);
    expect(sink.data).to.equal('one\n');
    await w.close(100);
  });

  it('does not ask confirmAfterPause about a group written and committed quickly', async () => {
    let confirms = 0;
    const { w } = setup(Checkpoint, { confirmAfterPause: () => void confirms++ });
    expect(await submit(w, 'one\n', 1)).to.equal(null);
    expect(confirms).to.equal(0);
    await w.close(100);
  });

  it('says which parts are failing from the first failure until they write again: a sink, the checkpoint', async () => {
    const reports: string[][] = [];
    const { sink, w, cp } = setup(GatedCheckpoint, { retryDelayMs: 1, onFailing: (parts) => reports.push([...parts]) });
    sink.failing = true;
    const one = submit(w, 'one\n', 1);
    await attempts(sink, 3);
    expect(reports).to.deep.equal([['a']]); // once, not once per retry
    sink.failing = false;
    const commit = await cp.next();
    expect(reports).to.deep.equal([['a'], []]);
    commit.release(new Error('EIO'));
    (await cp.next()).release();
    expect(await one).to.equal(null);
    expect(reports).to.deep.equal([['a'], [], ['checkpoint'], []]);
    await w.close(100);
  });

  it('retries only the backend that failed, so the other does not get the group twice', async () => {
    const dir = tempDir();
    const cp = new Checkpoint(dir);
    cp.load();
    const a = new FlakySink('a');
    const b = new FlakySink('b');
    const w = new AuditWriter([a, b], cp, { retryDelayMs: 1 });
    b.failing = true;
    const done = submit(w, 'one\n', 1);
    await attempts(b, 1);
    b.failing = false;
    expect(await done).to.equal(null);
    expect([a.data, b.data, a.writes, b.writes]).to.deep.equal(['one\n', 'one\n', 1, 2]);
    await w.close(100);
  });

  it('on close gives up a group still failing and everything queued after it, committing none of it', async () => {
    const { dir, sink, w } = setup(Checkpoint, { retryDelayMs: 60_000, maxRetryDelayMs: 60_000 });
    expect(await submit(w, 'zero\n', 10)).to.equal(null);
    sink.failing = true;
    const stuck = submit(w, 'one\n', 11);
    const after = submit(w, 'two\n', 12);
    await attempts(sink, 2);
    await w.close(1); // cuts the minute-long retry wait short
    sink.failing = false; // the disk recovers too late: nothing may be written or committed any more
    expect(await stuck).to.be.instanceOf(WriterClosedError);
    expect(await after).to.be.instanceOf(WriterClosedError);
    await turn();
    expect(sink.writes).to.equal(2);
    expect(committedSeq(dir)).to.equal(10);
  });

  it('writes what one turn of the event loop submits to an idle writer as one group', async () => {
    const { dir, sink, w } = setup(Checkpoint);
    // Three calls answered by one read of the socket: each is submitted before the writer starts.
    const burst = [submit(w, '1\n', 1), submit(w, '2\n', 2), submit(w, '3\n', 3)];
    expect(await Promise.all(burst)).to.deep.equal([null, null, null]);
    expect([sink.writes, sink.data, committedSeq(dir)]).to.deep.equal([1, '1\n2\n3\n', 3]);
    await w.close(1000);
  });

  it('writes the next group while one is committed, and commits and acknowledges in order', async () => {
    const { dir, cp, sink, w } = setup(GatedCheckpoint, { retryDelayMs: 1, maxRetryDelayMs: 1 });
    const acked: number[] = [];
    const send = (seq: number): Promise<Error | null> =>
      submit(w, `${seq}\n`, seq).then((err) => {
        acked.push(seq);
        return err;
      });
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
    await turn();
    expect(sink.data).to.equal('0\n1\n2\n');
    // Group 3 waits: one group is committed, one written and waiting, no more.
    const three = send(3);
    await turn();
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
    await turn();
    expect(sink.data).to.equal('0\n1\n2\n');
    first.release();
    await one;
    const second = await cp.next();
    // Group 2 rotated: group 3 waits for its commit, whatever else is free.
    const three = submit(w, '3\n', 3);
    await turn();
    expect(sink.data).to.equal('0\n1\n2\n');
    second.release();
    await two;
    const third = await cp.next();
    expect(sink.data).to.equal('0\n1\n2\n3\n');
    third.release();
    expect(await three).to.equal(null);
    await w.close(100);
  });

  it('reopens the sinks after the commit under way, and commits their new files before the next write', async () => {
    const { cp, sink, w } = setup(GatedCheckpoint);
    const one = submit(w, '1\n', 1);
    const first = await cp.next();
    const reopened = w.reopen();
    const two = submit(w, '2\n', 2);
    await turn();
    // The commit under way names the old file: the reopen waits for it, and group 2 for the reopen.
    expect([sink.reopens, sink.data]).to.deep.equal([0, '1\n']);
    first.release();
    expect(await one).to.equal(null);
    const positions = await cp.next();
    expect([sink.reopens, positions.ino, positions.size, positions.seqs.size]).to.deep.equal([1, 2, 0, 0]);
    await turn();
    expect(sink.data, 'nothing is written before the new file is committed').to.equal('1\n');
    positions.release();
    expect([...(await reopened)]).to.deep.equal([['a', { ino: 2, size: 0 }]]);
    const third = await cp.next();
    expect([sink.data, third.ino]).to.deep.equal(['1\n2\n', 2]);
    third.release();
    expect(await two).to.equal(null);
    await w.close(100);
  });

  it('on close acknowledges the group whose commit lands within the grace first, then gives up the written and queued ones', async () => {
    const { dir, cp, sink, w } = setup(GatedCheckpoint);
    const zero = submit(w, '0\n', 0);
    (await cp.next()).release();
    await zero;
    const answers: string[] = [];
    const answered = (name: string, p: Promise<Error | null>): Promise<Error | null> =>
      p.then((err) => {
        answers.push(`${name} ${err === null ? 'ok' : err.constructor.name}`);
        return err;
      });
    const committing = answered('1', submit(w, '1\n', 1));
    const held = await cp.next(); // group 1's commit is under way when the close begins
    const written = answered('2', submit(w, '2\n', 2));
    await turn();
    const queued = answered('3', submit(w, '3\n', 3));
    await turn();
    expect(sink.data).to.equal('0\n1\n2\n');
    const closed = w.close(1);
    await waitFor(() => w.isClosed, 'the close to give up waiting');
    expect(answers).to.deep.equal([]); // nothing is answered before group 1's commit is
    held.release(); // lands during the grace: its record is in the checkpoint, so it is acknowledged
    await closed;
    await Promise.all([committing, written, queued]);
    // A stream gets group 1's ack before the failure of group 2 ends it.
    expect(answers).to.deep.equal(['1 ok', '2 WriterClosedError', '3 WriterClosedError']);
    expect(cp.held).to.deep.equal([]);
    await w.idle(); // resolves: nothing is left
    expect(committedSeq(dir)).to.equal(1);
  });

  it('on close gives up a commit that does not land within the grace', async () => {
    const { dir, cp, w } = setup(GatedCheckpoint, { closeGraceMs: 1 });
    const zero = submit(w, '0\n', 0);
    (await cp.next()).release();
    await zero;
    const committing = submit(w, '1\n', 1);
    const hung = await cp.next(); // a commit stuck behind a hung disk
    await w.close(1);
    expect(await committing).to.be.instanceOf(WriterClosedError);
    hung.release(new Error('EIO'));
    await turn();
    expect(committedSeq(dir)).to.equal(0);
  });

  it('refuses new requests once closed', async () => {
    const { w } = setup(Checkpoint);
    await w.close(10);
    expect(await submit(w, 'late\n', 1)).to.be.instanceOf(WriterClosedError);
  });

  it('is full at the high-water mark and says when it drains', async () => {
    const { cp, w } = setup(GatedCheckpoint, { highWaterBytes: 10, maxGroupBytes: 4 });
    const drained = once(w.queued, 'drain');
    const zero = submit(w, '000\n', 0);
    const waiting = [submit(w, '111\n', 1), submit(w, '222\n', 2), submit(w, '333\n', 3)];
    expect(w.queued.size).to.equal(16);
    await turn(); // at the end of the turn, a group of one (maxGroupBytes) is taken into a write
    expect(w.queued.size).to.equal(12);
    expect(w.queued.isFull).to.equal(true);
    (await cp.next()).release();
    await zero;
    await drained;
    expect(w.queued.isFull).to.equal(false);
    for (let i = 0; i < 3; i++) (await cp.next()).release();
    expect(await Promise.all(waiting)).to.deep.equal([null, null, null]);
    await w.close(10);
  });
});
