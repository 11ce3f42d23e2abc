import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EARN_QUICK_WRITES } from '../../src/backends/quick-writes';
import { Checkpoint, CHECKPOINT_FILE, CheckpointError, type CheckpointFs } from '../../src/store/checkpoint';
import { tempDir } from '../support/helpers';

function commit(
  cp: Checkpoint,
  seqs: Record<string, number>,
  pos: Record<string, [number, number]> = {},
): Promise<void> {
  return cp.commit({
    seqs: new Map(Object.entries(seqs)),
    positions: new Map(Object.entries(pos).map(([k, [ino, size]]) => [k, { ino, size }])),
  });
}

describe('checkpoint', () => {
  it('replays committed deltas after a restart', async () => {
    const dir = tempDir();
    const cp = new Checkpoint(dir);
    cp.load();
    await commit(cp, { 'z/a': 100 }, { '/x/audit.log': [11, 500] });
    await commit(cp, { 'z/b': 7 });
    await commit(cp, { 'z/a': 200 }, { '/x/audit.log': [12, 0] });
    cp.close();
    const { state, droppedTail } = new Checkpoint(dir).load();
    expect(droppedTail).to.equal(false);
    expect([...state.seqs]).to.deep.equal([
      ['z/a', 200],
      ['z/b', 7],
    ]);
    expect(state.positions.get('/x/audit.log')).to.deep.equal({ ino: 12, size: 0 });
  });

  it('drops a torn last line and cuts it from the file', async () => {
    const dir = tempDir();
    const cp = new Checkpoint(dir);
    cp.load();
    await commit(cp, { 'z/a': 5 });
    cp.close();
    fs.appendFileSync(path.join(dir, CHECKPOINT_FILE), '{"s":{"z/a":9');
    const again = new Checkpoint(dir);
    const { state, droppedTail } = again.load();
    expect(droppedTail).to.equal('torn line');
    expect(state.seqs.get('z/a')).to.equal(5);
    await commit(again, { 'z/a': 6 });
    again.close();
    expect(new Checkpoint(dir).load().state.seqs.get('z/a')).to.equal(6);
  });

  it('refuses a whole line it cannot read, even the only one: a crash leaves no newline after a torn line', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, CHECKPOINT_FILE), 'garbage\n');
    expect(() => new Checkpoint(dir).load()).to.throw(/is corrupt at byte 0; move it away to start over/);
    fs.writeFileSync(path.join(dir, CHECKPOINT_FILE), '{"s":{"z/a":1},"p":{}}\n{"s":{"z/a":2\n');
    expect(() => new Checkpoint(dir).load()).to.throw(/is corrupt at byte 23/);
  });

  it('drops a tail of NUL bytes, what a machine crash leaves, but not one a readable line follows', async () => {
    const dir = tempDir();
    const file = path.join(dir, CHECKPOINT_FILE);
    const first = '{"s":{"z/a":1},"p":{}}\n';
    // The file grew by two lines, but only part of the first reached the disk.
    fs.writeFileSync(file, `${first}{"s":{"z/a":2},"p"\0\0\0\0\n\0\0\0\0\0\0\0\0\n`);
    const cp = new Checkpoint(dir);
    const { state, droppedTail } = cp.load();
    cp.close();
    expect(droppedTail).to.equal('lost pages');
    expect([...state.seqs]).to.deep.equal([['z/a', 1]]);
    expect(fs.readFileSync(file, 'utf8')).to.equal(first);
    // A readable line after the NULs is acknowledged state: the file is damaged, not torn.
    fs.writeFileSync(file, `${first}\0\0\0\0\n{"s":{"z/a":3},"p":{}}\n`);
    expect(() => new Checkpoint(dir).load()).to.throw(/is corrupt at byte 23/);
  });

  it('refuses a file damaged in the middle instead of guessing', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, CHECKPOINT_FILE), '{"s":{"z/a":1},"p":{}}\ngarbage\n{"s":{"z/a":2},"p":{}}\n');
    expect(() => new Checkpoint(dir).load()).to.throw(/is corrupt at byte 23; move it away to start over/);
  });

  it('compacts into one line holding the whole state', async () => {
    const dir = tempDir();
    const cp = new Checkpoint(dir, { fsync: false, compactAtBytes: 200 });
    cp.load();
    for (let i = 1; i <= 50; i++) await commit(cp, { [`z/i${i % 5}`]: i }, { '/a.log': [1, i * 10] });
    cp.close();
    const text = fs.readFileSync(path.join(dir, CHECKPOINT_FILE), 'utf8');
    expect(text.length).to.be.below(600);
    const { state } = new Checkpoint(dir).load();
    expect(state.seqs.get('z/i0')).to.equal(50);
    expect(state.seqs.get('z/i4')).to.equal(49);
    expect(state.positions.get('/a.log')).to.deep.equal({ ino: 1, size: 500 });
  });

  it('writes the whole state again when its file was removed or replaced, after onLost takes back the rest', async () => {
    const dir = path.join(tempDir(), 'data');
    let lost = 0;
    let refuse = false;
    const cp = new Checkpoint(dir, {
      fsync: false,
      onLost: () => {
        lost++;
        if (refuse) throw new Error('another meshaudit holds the directory');
      },
    });
    cp.load();
    await commit(cp, { 'z/a': 10 }, { '/x/audit.log': [11, 500] });
    fs.rmSync(dir, { recursive: true });
    await commit(cp, { 'z/a': 20 });
    expect(lost).to.equal(1);
    expect(fs.readFileSync(path.join(dir, CHECKPOINT_FILE), 'utf8')).to.equal(
      '{"s":{"z/a":20},"p":{"/x/audit.log":[11,500]}}\n',
    );
    await commit(cp, { 'z/a': 30 }); // appends again: the file is its own once more
    expect(lost).to.equal(1);
    // Replaced by someone else's, and the rest cannot be taken back: refused, retried until it can.
    fs.writeFileSync(path.join(dir, `${CHECKPOINT_FILE}.other`), '{"s":{"z/a":1},"p":{}}\n');
    fs.renameSync(path.join(dir, `${CHECKPOINT_FILE}.other`), path.join(dir, CHECKPOINT_FILE));
    refuse = true;
    let err: Error | undefined;
    await commit(cp, { 'z/a': 40 }).catch((e: Error) => (err = e));
    expect(err).to.be.instanceOf(CheckpointError);
    expect(err?.message).to.equal(
      `checkpoint ${path.join(dir, CHECKPOINT_FILE)} was removed or replaced: another meshaudit holds the directory`,
    );
    refuse = false;
    await commit(cp, { 'z/a': 40 });
    cp.close();
    expect(new Checkpoint(dir).load().state.seqs.get('z/a')).to.equal(40);
  });

  describe('through a file system that fails on demand', () => {
    /** node:fs, with the operations a test sets in `failing` failing once each. */
    function flakyFs(): {
      fs: CheckpointFs;
      failing: Set<string>;
      dirSyncs: () => number;
      /** Runs once, between a write landing and its callback: the timing of a race, on the real file system. */
      onWritten: { once?: () => void };
    } {
      const failing = new Set<string>();
      const onWritten: { once?: () => void } = {};
      const once = (op: string): boolean => failing.delete(op);
      /** Descriptors opened read-only: directories, which syncDir fsyncs. */
      const dirs = new Set<number>();
      let dirSynced = 0;
      const flaky: CheckpointFs = {
        ...fs,
        // A short write: half the line reaches the file, without an error (a full disk does that).
        write: ((
          fd: number,
          buf: Buffer,
          off: number,
          len: number,
          pos: null,
          cb: (e: Error | null, n: number) => void,
        ) =>
          once('write')
            ? fs.write(fd, buf, off, Math.floor(len / 2), pos, cb)
            : fs.write(fd, buf, off, len, pos, (err, n) => {
                const race = onWritten.once;
                onWritten.once = undefined;
                race?.();
                cb(err, n);
              })) as unknown as typeof fs.write,
        // The same, for an append made straight to the kernel (src/backends/quick-writes.ts).
        writeSync: ((fd: number, buf: Buffer, off: number, len: number, pos: null) =>
          fs.writeSync(fd, buf, off, once('writeSync') ? Math.floor(len / 2) : len, pos)) as typeof fs.writeSync,
        ftruncateSync: (fd: number, len?: number) => {
          if (once('ftruncateSync')) throw new Error('EIO: i/o error, ftruncate');
          fs.ftruncateSync(fd, len);
        },
        fdatasync: ((fd: number, cb: (e: Error | null) => void) =>
          once('fdatasync')
            ? process.nextTick(cb, new Error('EIO: i/o error, fdatasync'))
            : fs.fdatasync(fd, cb)) as typeof fs.fdatasync,
        renameSync: (from: fs.PathLike, to: fs.PathLike) => {
          if (once('renameSync')) throw new Error('ENOSPC: no space left on device, rename');
          fs.renameSync(from, to);
        },
        openSync: ((file: fs.PathLike, flags?: fs.OpenMode) => {
          if (flags === 'a+' && once('reopen')) throw new Error('EMFILE: too many open files, open');
          const fd = fs.openSync(file, flags as fs.OpenMode);
          if (flags === 'r') dirs.add(fd);
          return fd;
        }) as typeof fs.openSync,
        fsyncSync: (fd: number) => {
          if (dirs.delete(fd)) {
            if (once('dirFsync')) throw new Error('EIO: i/o error, fsync');
            dirSynced++;
          }
          fs.fsyncSync(fd);
        },
      };
      return { fs: flaky, failing, dirSyncs: () => dirSynced, onWritten };
    }

    async function refused(p: Promise<void>): Promise<Error> {
      return p.then(
        () => {
          throw new Error('the commit did not fail');
        },
        (e: Error) => e,
      );
    }

    function lines(dir: string): string[] {
      return fs.readFileSync(path.join(dir, CHECKPOINT_FILE), 'utf8').split('\n');
    }

    it('does not acknowledge a commit whose file was replaced while its line was appended: it writes the whole state again', async () => {
      const dir = path.join(tempDir(), 'data');
      const file = path.join(dir, CHECKPOINT_FILE);
      const { fs: flaky, onWritten } = flakyFs();
      let lost = 0;
      const cp = new Checkpoint(dir, { fsync: false, fs: flaky, onLost: () => void lost++ });
      cp.load();
      await commit(cp, { 'z/a': 10 }, { '/x/audit.log': [11, 500] });
      // Another sidecar's file renamed into place after the line landed, before the commit settles.
      onWritten.once = () => {
        fs.writeFileSync(`${file}.other`, '{"s":{"z/a":1},"p":{}}\n');
        fs.renameSync(`${file}.other`, file);
      };
      await commit(cp, { 'z/a': 20 });
      expect(lost).to.equal(1);
      expect(fs.readFileSync(file, 'utf8')).to.equal('{"s":{"z/a":20},"p":{"/x/audit.log":[11,500]}}\n');
      cp.close();
    });

    it('appends straight to the kernel once the disk is quick, and cuts such an append back when it fails', async () => {
      const dir = tempDir();
      const { fs: flaky, failing } = flakyFs();
      // Every append counts as quick, however loaded the machine is.
      const cp = new Checkpoint(dir, { fsync: false, fs: flaky, slowWriteMs: Infinity });
      cp.load();
      for (let seq = 1; seq <= EARN_QUICK_WRITES; seq++) await commit(cp, { 'z/a': seq });
      failing.add('writeSync');
      const err = await refused(commit(cp, { 'z/a': 100 }));
      expect(failing.has('writeSync'), 'the append went straight to the kernel').to.equal(false);
      expect(err.message).to.match(/can't append to checkpoint .*: short write: \d+ of \d+ bytes/);
      expect(lines(dir).at(-2)).to.equal(`{"s":{"z/a":${EARN_QUICK_WRITES}},"p":{}}`);
      failing.add('writeSync'); // the append after a failed one goes through the thread pool: not taken
      await commit(cp, { 'z/a': 101 });
      expect(failing.has('writeSync'), 'the next append went through the thread pool').to.equal(true);
      cp.close();
      const { state, droppedTail } = new Checkpoint(dir).load();
      expect([droppedTail, state.seqs.get('z/a')]).to.deep.equal([false, 101]);
    });

    it('cuts a failed append back to the last whole line, and appends the next commit after it', async () => {
      const dir = tempDir();
      const { fs: flaky, failing } = flakyFs();
      const cp = new Checkpoint(dir, { fsync: false, fs: flaky });
      cp.load();
      await commit(cp, { 'z/a': 1 });
      failing.add('write');
      const err = await refused(commit(cp, { 'z/a': 2 }));
      expect(err).to.be.instanceOf(CheckpointError);
      expect(err.message).to.match(/can't append to checkpoint .*: short write: \d+ of \d+ bytes/);
      expect(lines(dir)).to.deep.equal(['{"s":{"z/a":1},"p":{}}', '']);
      await commit(cp, { 'z/a': 3 });
      cp.close();
      const { state, droppedTail } = new Checkpoint(dir).load();
      expect([droppedTail, state.seqs.get('z/a')]).to.deep.equal([false, 3]);
    });

    it('cuts a line whose fsync failed and writes it again, so a power loss cannot leave half of it', async () => {
      const dir = tempDir();
      const { fs: flaky, failing } = flakyFs();
      const cp = new Checkpoint(dir, { fsync: true, fs: flaky });
      cp.load();
      await commit(cp, { 'z/a': 1 });
      failing.add('fdatasync');
      const err = await refused(commit(cp, { 'z/a': 2 }));
      expect(err.message).to.match(/can't append to checkpoint .*: fsync: EIO/);
      expect(lines(dir)).to.deep.equal(['{"s":{"z/a":1},"p":{}}', '']);
      await commit(cp, { 'z/a': 2 }); // the writer's retry of the same delta
      cp.close();
      expect(lines(dir)).to.deep.equal(['{"s":{"z/a":1},"p":{}}', '{"s":{"z/a":2},"p":{}}', '']);
    });

    it('retries a cut-back that failed before it appends again', async () => {
      const dir = tempDir();
      const { fs: flaky, failing } = flakyFs();
      const cp = new Checkpoint(dir, { fsync: false, fs: flaky });
      cp.load();
      await commit(cp, { 'z/a': 1 });
      failing.add('write');
      failing.add('ftruncateSync');
      await refused(commit(cp, { 'z/a': 2 }));
      const torn = lines(dir); // the whole first line, then half a line without its newline
      expect([torn.length, torn[0], torn[1] !== '']).to.deep.equal([2, '{"s":{"z/a":1},"p":{}}', true]);
      failing.add('ftruncateSync');
      const again = await refused(commit(cp, { 'z/a': 3 }));
      expect(again.message).to.match(/can't cut checkpoint .* back to its last whole line/);
      await commit(cp, { 'z/a': 4 });
      cp.close();
      expect(lines(dir)).to.deep.equal(['{"s":{"z/a":1},"p":{}}', '{"s":{"z/a":4},"p":{}}', '']);
    });

    it('keeps the old file whole when a compaction fails, and compacts at the next commit', async () => {
      const dir = tempDir();
      const { fs: flaky, failing } = flakyFs();
      const cp = new Checkpoint(dir, { fsync: false, compactAtBytes: 60, fs: flaky });
      cp.load();
      await commit(cp, { 'z/a': 1 });
      await commit(cp, { 'z/b': 2 });
      await commit(cp, { 'z/a': 3 }); // the file passes 60 bytes
      const before = lines(dir);
      failing.add('renameSync');
      const err = await refused(commit(cp, { 'z/c': 4 }));
      expect(err.message).to.match(/can't compact checkpoint .*: ENOSPC/);
      expect(lines(dir)).to.deep.equal(before);
      await commit(cp, { 'z/c': 5 });
      cp.close();
      expect(lines(dir)).to.have.length(2); // one line with the whole state
      expect([...new Checkpoint(dir).load().state.seqs]).to.deep.equal([
        ['z/a', 3],
        ['z/b', 2],
        ['z/c', 5],
      ]);
    });

    it('appends to the new file after a compaction whose folder could not be fsynced, not taking it for lost', async () => {
      const dir = tempDir();
      const { fs: flaky, failing } = flakyFs();
      let lost = 0;
      const cp = new Checkpoint(dir, { fsync: false, compactAtBytes: 60, fs: flaky, onLost: () => void lost++ });
      cp.load();
      for (let seq = 1; seq <= 3; seq++) await commit(cp, { 'z/a': seq });
      failing.add('dirFsync');
      const err = await refused(commit(cp, { 'z/a': 4 }));
      expect(err.message).to.match(/can't compact checkpoint .*: its folder could not be fsynced: EIO/);
      await commit(cp, { 'z/a': 5 });
      cp.close();
      expect(lost).to.equal(0);
      expect(lines(dir)).to.deep.equal(['{"s":{"z/a":4},"p":{}}', '{"s":{"z/a":5},"p":{}}', '']);
    });

    it('with fsync on, fsyncs the folder of a compaction whose folder fsync failed before the next commit', async () => {
      const dir = tempDir();
      const { fs: flaky, failing, dirSyncs } = flakyFs();
      const cp = new Checkpoint(dir, { fsync: true, compactAtBytes: 60, fs: flaky });
      cp.load();
      for (let seq = 1; seq <= 3; seq++) await commit(cp, { 'z/a': seq });
      failing.add('dirFsync');
      await refused(commit(cp, { 'z/a': 4 }));
      const before = dirSyncs();
      await commit(cp, { 'z/a': 5 });
      expect(dirSyncs() - before, 'folder fsyncs at the next commit').to.equal(1);
      await commit(cp, { 'z/a': 6 });
      expect(dirSyncs() - before, 'and not again').to.equal(1);
      cp.close();
    });

    it('commits nothing while beforeCommit refuses (the data directory lock held by another)', async () => {
      const dir = tempDir();
      let refusing = true;
      const cp = new Checkpoint(dir, {
        fsync: false,
        beforeCommit: () => (refusing ? Promise.reject(new Error('in use by another meshaudit')) : undefined),
      });
      cp.load();
      const err = await refused(commit(cp, { 'z/a': 1 }));
      expect(err.message).to.match(/can't commit to checkpoint .*: in use by another meshaudit/);
      expect(cp.state.seqs.size).to.equal(0);
      refusing = false;
      await commit(cp, { 'z/a': 2 });
      cp.close();
      expect(lines(dir)).to.deep.equal(['{"s":{"z/a":2},"p":{}}', '']);
    });

    it('reopens the file at the next commit when a compaction could not reopen it', async () => {
      const dir = tempDir();
      const { fs: flaky, failing } = flakyFs();
      const cp = new Checkpoint(dir, { fsync: false, compactAtBytes: 60, fs: flaky });
      cp.load();
      for (let seq = 1; seq <= 3; seq++) await commit(cp, { 'z/a': seq });
      failing.add('reopen');
      const err = await refused(commit(cp, { 'z/a': 4 }));
      expect(err.message).to.match(/can't compact checkpoint .*: EMFILE/);
      await commit(cp, { 'z/a': 5 });
      cp.close();
      expect(lines(dir)).to.deep.equal(['{"s":{"z/a":4},"p":{}}', '{"s":{"z/a":5},"p":{}}', '']);
    });
  });
});
