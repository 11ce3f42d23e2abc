import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import realFs = require('node:fs');
import * as os from 'node:os';
import * as path from 'node:path';
import type { RotationConfig } from '../../../src/config/types';
import { SinkNewFileError, type SinkPosition } from '../../../src/backends/sink';
import { applyRetention, FileSink, rotatedName, timeFromName } from '../../../src/backends/file';
import { EARN_QUICK_WRITES, QUICK_WRITE_MAX_BYTES } from '../../../src/backends/quick-writes';
import type { FileSinkEvent } from '../../../src/backends/file';

const DAY_MS = 24 * 60 * 60 * 1000;
const T0 = Date.UTC(2021, 5, 7, 9, 15, 18, 265);

/** A clock that only moves when told to. */
class FakeClock {
  constructor(public ms = T0) {}
  readonly now = (): Date => new Date(this.ms);
  advance(ms: number): void {
    this.ms += ms;
  }
}

function rotation(over: Partial<RotationConfig> = {}): RotationConfig {
  return { enabled: true, maxRetainedFiles: 0, maxSizeBytes: 1024 * 1024, maxAgeDays: 0, ...over };
}

/** One JSON record line of exactly `bytes` bytes (newline included). */
function line(n: number, bytes = 30): string {
  const head = `{"n":${n},"pad":"`;
  const pad = bytes - head.length - 3;
  if (pad < 0) throw new Error(`line ${n} does not fit in ${bytes} bytes`);
  return `${head}${'x'.repeat(pad)}"}\n`;
}

function lines(from: number, count: number, bytes = 30): Buffer {
  let s = '';
  for (let i = from; i < from + count; i++) s += line(i, bytes);
  return Buffer.from(s);
}

/**
 * The write after a failed one made a new file at the path (the old one moved, deleted or replaced):
 * it writes nothing and says where the new file starts (`size`: what it already holds), for the writer
 * to commit before it writes again.
 */
async function newFileFirst(s: FileSink, chunk: Buffer, size = 0): Promise<void> {
  const file = s.key;
  const err = await s.write(chunk).then(
    () => undefined,
    (e: Error) => e,
  );
  expect(err).to.be.instanceOf(SinkNewFileError);
  expect((err as SinkNewFileError).position).to.deep.equal({ ino: fs.statSync(file).ino, size });
  expect(fs.statSync(file).size).to.equal(size);
}

describe('FileSink', () => {
  let dir: string;
  let active: string;
  let clock: FakeClock;
  let events: FileSinkEvent[];
  const open: FileSink[] = [];

  function sink(
    rot: Partial<RotationConfig> = {},
    extra: { fsync?: boolean; file?: string; slowWriteMs?: number } = {},
  ): FileSink {
    const s = new FileSink({
      path: extra.file ?? active,
      rotation: rotation(rot),
      fsync: extra.fsync,
      slowWriteMs: extra.slowWriteMs,
      now: clock.now,
      onEvent: (e) => events.push(e),
    });
    open.push(s);
    return s;
  }

  /** Rotated files of the active file, oldest first by name (names sort in time order). */
  function rotatedFiles(): string[] {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isFile() && timeFromName('audit.log', e.name) !== undefined)
      .map((e) => e.name)
      .sort();
  }

  /** Every record line of the backend, oldest file first, each parsed. */
  function allRecords(): Array<{ n: number }> {
    const out: Array<{ n: number }> = [];
    for (const name of [...rotatedFiles(), 'audit.log']) {
      const file = path.join(dir, name);
      if (!fs.existsSync(file)) continue;
      const text = fs.readFileSync(file, 'utf8');
      if (text === '') continue;
      expect(text.endsWith('\n'), `${name} ends with a newline`).to.equal(true);
      for (const l of text.slice(0, -1).split('\n')) out.push(JSON.parse(l));
    }
    return out;
  }

  function ns(from: number, count: number): number[] {
    return Array.from({ length: count }, (_, i) => from + i);
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshaudit-file-sink-'));
    active = path.join(dir, 'audit.log');
    clock = new FakeClock();
    events = [];
  });

  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('writing and rotation', () => {
    it('keeps the active file at the configured path, creating its folder', async () => {
      active = path.join(dir, 'nested', 'deeper', 'audit.log');
      const s = sink();
      const pos = await s.open();
      expect(s.key).to.equal(active);
      expect(pos).to.deep.equal({ ino: fs.statSync(active).ino, size: 0 });
      const after = await s.write(lines(0, 2));
      expect(after).to.deep.equal({ ino: pos.ino, size: 60 });
      expect(fs.readFileSync(active, 'utf8')).to.equal(line(0) + line(1));
    });

    it('rotates before a write that would pass maxSizeBytes, as lumberjack, to a lumberjack name in UTC', async () => {
      const s = sink({ maxSizeBytes: 100 });
      const first = await s.open();
      for (let i = 0; i < 3; i++) expect((await s.write(lines(i, 1))).size).to.equal(30 * (i + 1));
      expect(rotatedFiles()).to.deep.equal([]);
      const pos = await s.write(lines(3, 1)); // 90 + 30 > 100: rotates, then writes
      const rotated = path.join(dir, 'audit-2021-06-07T09-15-18.265.log');
      expect(rotatedFiles()).to.deep.equal([path.basename(rotated)]);
      expect(fs.statSync(rotated)).to.include({ ino: first.ino, size: 90 });
      expect(pos).to.deep.equal({ ino: fs.statSync(active).ino, size: 30 });
      expect(pos.ino).to.not.equal(first.ino);
      expect(fs.readFileSync(active, 'utf8')).to.equal(line(3));
      expect(events).to.deep.include({ type: 'rotated', file: active, rotatedFile: rotated });
      // rfs's history file is not used: retention is a directory scan.
      expect(fs.readdirSync(dir).sort()).to.deep.equal([path.basename(rotated), 'audit.log']);
    });

    it('does not rotate a file that stays one byte under maxSizeBytes', async () => {
      const s = sink({ maxSizeBytes: 61 });
      await s.open();
      await s.write(lines(0, 2));
      expect(rotatedFiles()).to.deep.equal([]);
      await s.write(lines(2, 1));
      expect(rotatedFiles()).to.have.length(1);
    });

    it('never lets a file pass maxSizeBytes: a batch is split at a record boundary across files', async () => {
      const maxSizeBytes = 200;
      const s = sink({ maxSizeBytes });
      await s.open();
      let n = 0;
      for (let i = 0; i < 40; i++) {
        const count = (i % 9) + 1; // batches of 30..270 bytes: some larger than a file
        await s.write(lines(n, count));
        n += count;
        clock.advance(1000);
      }
      const files = rotatedFiles();
      expect(files.length).to.be.greaterThan(10);
      for (const name of files) {
        // Rotated only when the next 30-byte record would not fit.
        expect(fs.statSync(path.join(dir, name)).size, name).to.be.within(maxSizeBytes - 29, maxSizeBytes);
      }
      expect(fs.statSync(active).size).to.be.at.most(maxSizeBytes);
      expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, n));
    });

    it('keeps the file a write began in until that write is committed, even past maxRetainedFiles', async () => {
      const s = sink({ maxSizeBytes: 100, maxRetainedFiles: 1 });
      await s.open();
      const committed = await s.write(lines(0, 2)); // 60 in the first file
      clock.advance(1000);
      await s.write(lines(2, 7)); // 1 more there, rotated; 3 in the next, rotated; 3 in the active file
      const names = rotatedFiles();
      expect(names).to.have.length(2); // the newest, and the one that holds the committed position
      expect(fs.statSync(path.join(dir, names[0])).ino).to.equal(committed.ino);
      clock.advance(1000);
      await s.write(lines(9, 4)); // committed by now: the writer commits before it writes after a rotation
      expect(rotatedFiles()).to.not.include(names[0]);
      expect(allRecords().map((r) => r.n)[0]).to.be.above(2);
    });

    it('writes a record larger than maxSizeBytes alone into a file of its own', async () => {
      const s = sink({ maxSizeBytes: 50 });
      await s.open();
      await s.write(lines(0, 1)); // 30
      await s.write(Buffer.concat([lines(1, 1, 80), lines(2, 1)])); // 80 alone, then 30
      expect(rotatedFiles().map((f) => fs.statSync(path.join(dir, f)).size)).to.deep.equal([30, 80]);
      expect(fs.statSync(active).size).to.equal(30);
      expect(allRecords().map((r) => r.n)).to.deep.equal([0, 1, 2]);
    });

    it('never splits a line across two files', async () => {
      const s = sink({ maxSizeBytes: 97 }); // not a multiple of the line size, so it always lands mid-line
      await s.open();
      let n = 0;
      for (let i = 0; n < 500; i++) {
        const count = 1 + ((i * 7) % 4);
        await s.write(lines(n, count, 20 + (i % 3) * 10));
        n += count;
        clock.advance(7);
      }
      expect(rotatedFiles().length).to.be.greaterThan(50);
      expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, n));
    });

    it('grows one file when rotation is disabled, whatever maxSizeBytes says', async () => {
      const s = sink({ enabled: false, maxSizeBytes: 10, maxRetainedFiles: 1, maxAgeDays: 1 });
      const first = await s.open();
      let pos = first;
      for (let i = 0; i < 20; i++) {
        pos = await s.write(lines(i, 1));
        clock.advance(DAY_MS);
      }
      expect(pos).to.deep.equal({ ino: first.ino, size: 600 });
      expect(fs.readdirSync(dir)).to.deep.equal(['audit.log']);
      expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, 20));
    });

    it('does not overwrite a file when 5 rotations happen in the same millisecond', async () => {
      const s = sink({ maxSizeBytes: 10 }); // every write after the first rotates; the clock never moves
      await s.open();
      for (let i = 0; i < 6; i++) await s.write(lines(i, 1));
      expect(rotatedFiles()).to.deep.equal([1, 2, 3, 4, 5].map((i) => rotatedName('audit.log', new Date(T0), i)));
      expect(rotatedFiles().map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))).to.deep.equal(
        ns(0, 5).map((i) => line(i)),
      );
      expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, 6));
    });

    it('keeps names in write order when retention frees a name in the same millisecond', async () => {
      const s = sink({ maxSizeBytes: 10, maxRetainedFiles: 2 });
      await s.open();
      for (let i = 0; i < 6; i++) await s.write(lines(i, 1));
      // The two newest by name must be the two last writes, not a reused earlier name.
      expect(rotatedFiles().map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))).to.deep.equal([line(3), line(4)]);
    });

    // Whether fsync ran is not observable without tracing syscalls; this checks the fsync path writes
    // every batch whole, across rotations.
    it('writes every batch whole across rotations with fsync on', async () => {
      const s = sink({ maxSizeBytes: 100 }, { fsync: true });
      await s.open();
      for (let i = 0; i < 10; i++) await s.write(lines(i * 2, 2)); // a file holds 3 records: 90 bytes
      expect(rotatedFiles()).to.have.length(6);
      expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, 20));
    });

    it('fails a write to a file deleted behind its back, then writes the batch again to a new file', async () => {
      const s = sink({ maxSizeBytes: 1_000_000 });
      await s.open();
      await s.write(lines(0, 1));
      fs.unlinkSync(active);
      let error: Error | undefined;
      await s.write(lines(1, 1)).catch((e: Error) => (error = e));
      expect(error?.message).to.equal(
        `can't write audit file ${active}: ${active} is gone (deleted, or renamed?) while it was written`,
      );
      await newFileFirst(s, lines(1, 1));
      await s.write(lines(1, 1));
      expect(allRecords().map((r) => r.n)).to.deep.equal([1]);
    });

    it('takes a batch back out of an active file renamed behind its back, and writes it once, at path', async () => {
      const s = sink({ maxSizeBytes: 1_000_000 });
      await s.open();
      await s.write(lines(0, 2));
      const moved = path.join(dir, 'moved-by-hand.log');
      fs.renameSync(active, moved);
      const error = await s.write(lines(2, 50)).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error?.message).to.include('is gone (deleted, or renamed?)');
      await newFileFirst(s, lines(2, 50));
      await s.write(lines(2, 50));
      const records = (file: string): number[] =>
        fs
          .readFileSync(file, 'utf8')
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l).n);
      expect(records(moved)).to.deep.equal([0, 1]);
      expect(records(active)).to.deep.equal(ns(2, 50));
    });

    it('takes a batch back out of an active file replaced behind its back, and appends it to the new one', async () => {
      const s = sink({ maxSizeBytes: 1_000_000 });
      await s.open();
      await s.write(lines(0, 1));
      const old = path.join(dir, 'old.log');
      fs.renameSync(active, old);
      fs.writeFileSync(active, lines(100, 1)); // someone else's file now at the path
      const error = await s.write(lines(1, 3)).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error?.message).to.include('is not the file that was written');
      await newFileFirst(s, lines(1, 3), 30);
      await s.write(lines(1, 3));
      expect(fs.readFileSync(old, 'utf8').trimEnd().split('\n')).to.have.length(1);
      expect(allRecords().map((r) => r.n)).to.deep.equal([100, 1, 2, 3]);
    });

    describe('quick writes (straight to the kernel once the disk is quick)', () => {
      /**
       * Counts the parts written through fs.writeSync (the quick way) and, while `fail` is set, fails the
       * next one as the kernel would: a write that lands in part (a full disk), or none of it.
       */
      function watchWriteSync(): { quick: number; fail?: 'short' | 'ENOSPC'; restore(): void } {
        // The module object itself (an import's namespace is read-only): what the sink's calls read.
        const real = realFs.writeSync;
        const w: { quick: number; fail?: 'short' | 'ENOSPC'; restore(): void } = {
          quick: 0,
          restore: () => {
            realFs.writeSync = real;
          },
        };
        (realFs as { writeSync: unknown }).writeSync = (fd: number, buf: Buffer, ...rest: unknown[]) => {
          if (!Buffer.isBuffer(buf) || rest.length > 0) return (real as (...a: unknown[]) => number)(fd, buf, ...rest);
          w.quick++;
          const fail = w.fail;
          w.fail = undefined;
          if (fail === 'ENOSPC')
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          if (fail === 'short') return real(fd, buf, 0, Math.floor(buf.length / 2));
          return real(fd, buf);
        };
        return w;
      }

      // Each test's sink counts every write as quick (slowWriteMs: Infinity), however loaded the machine is.
      let watch: ReturnType<typeof watchWriteSync>;
      beforeEach(() => (watch = watchWriteSync()));
      afterEach(() => watch.restore());

      it('writes small parts straight to the file once enough writes in a row were quick, big ones through rfs, all in order', async () => {
        const s = sink({ maxSizeBytes: 10_000_000 }, { slowWriteMs: Infinity });
        await s.open();
        for (let i = 0; i < 40; i++) await s.write(lines(i, 1));
        expect(watch.quick, 'quick writes').to.equal(40 - EARN_QUICK_WRITES);
        const big = Math.ceil((QUICK_WRITE_MAX_BYTES + 1) / 30);
        await s.write(lines(40, big));
        expect(watch.quick, 'a part over QUICK_WRITE_MAX_BYTES').to.equal(40 - EARN_QUICK_WRITES);
        const pos = await s.write(lines(40 + big, 1));
        expect(watch.quick).to.equal(41 - EARN_QUICK_WRITES);
        expect(pos).to.deep.equal({ ino: fs.statSync(active).ino, size: (41 + big) * 30 });
        expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, 41 + big));
      });

      it('never writes straight to the kernel with fsync on (each write is fdatasynced through the thread pool)', async () => {
        const s = sink({ maxSizeBytes: 10_000_000 }, { fsync: true, slowWriteMs: Infinity });
        await s.open();
        for (let i = 0; i < EARN_QUICK_WRITES + 4; i++) await s.write(lines(i, 1));
        expect(watch.quick).to.equal(0);
        expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, EARN_QUICK_WRITES + 4));
      });

      for (const fail of ['short', 'ENOSPC'] as const) {
        it(`undoes a quick write that fails (${fail === 'short' ? 'lands in part' : 'ENOSPC'}) as any failed write, then goes on`, async () => {
          const s = sink({ maxSizeBytes: 10_000_000 }, { slowWriteMs: Infinity });
          await s.open();
          for (let i = 0; i < EARN_QUICK_WRITES + 2; i++) await s.write(lines(i, 1));
          expect(watch.quick).to.equal(2);
          watch.fail = fail;
          const err = await s.write(lines(100, 3)).then(
            () => undefined,
            (e: Error) => e,
          );
          expect(watch.quick).to.equal(3);
          expect(err?.message).to.match(fail === 'short' ? /short write: 45 of 90 bytes/ : /ENOSPC/);
          expect(fs.statSync(active).size).to.equal((EARN_QUICK_WRITES + 2) * 30);
          await s.write(lines(EARN_QUICK_WRITES + 2, 2));
          expect(watch.quick, 'the write after a failed one goes through the thread pool').to.equal(3);
          expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, EARN_QUICK_WRITES + 4));
        });
      }

      it('appends after bytes another process wrote, and refuses, rather than writing over them', async () => {
        const s = sink({ maxSizeBytes: 10_000_000 }, { slowWriteMs: Infinity });
        await s.open();
        for (let i = 0; i < EARN_QUICK_WRITES + 1; i++) await s.write(lines(i, 1));
        expect(watch.quick).to.equal(1);
        const theirs = '{"n":1000}\n';
        fs.appendFileSync(active, theirs);
        const error = await s.write(lines(EARN_QUICK_WRITES + 1, 1)).then(
          () => undefined,
          (e: Error) => e,
        );
        expect(watch.quick).to.equal(2);
        expect(error?.message).to.match(/grew by 11 bytes that this sidecar did not write/);
        expect(allRecords().map((r) => r.n)).to.deep.equal([
          ...ns(0, EARN_QUICK_WRITES + 1),
          1000,
          EARN_QUICK_WRITES + 1,
        ]);
      });
    });

    it('cuts nothing and writes nothing more once another process appends to the file', async () => {
      const s = sink({ maxSizeBytes: 1_000_000 });
      await s.open();
      await s.write(lines(0, 2));
      // Another sidecar on the same audit path, say: its records must survive this one's failures.
      const theirs = '{"n":1000}\n';
      fs.appendFileSync(active, theirs);
      const error = await s.write(lines(2, 3)).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error?.message).to.match(/grew by 11 bytes that this sidecar did not write: another process writes it/);
      expect(fs.readFileSync(active, 'utf8')).to.include(theirs);
      const again = await s.write(lines(5, 1)).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(again?.message).to.include('nothing more is written to it until a restart');
      expect(allRecords().map((r) => r.n)).to.deep.equal([0, 1, 1000, 2, 3, 4]);
    });

    it('creates the audit folder again when it was removed, and writes on', async () => {
      const s = sink({ maxSizeBytes: 1_000_000 });
      await s.open();
      await s.write(lines(0, 1));
      fs.rmSync(path.dirname(active), { recursive: true });
      const first = await s.write(lines(1, 1)).then(
        () => 'written',
        (e: Error) => e.message,
      );
      expect(first).to.include('is gone');
      await newFileFirst(s, lines(1, 2));
      await s.write(lines(1, 2));
      expect(allRecords().map((r) => r.n)).to.deep.equal([1, 2]);
    });

    it('rejects writes before open and after close, saying what was attempted', async () => {
      const s = sink();
      let err: Error | undefined;
      await s.write(lines(0, 1)).catch((e: Error) => (err = e));
      expect(err?.message).to.equal(`can't write audit file ${active}: the sink is not open`);
      await s.open();
      await s.close();
      await s.write(lines(0, 1)).catch((e: Error) => (err = e));
      expect(err?.message).to.equal(`can't write audit file ${active}: the sink is closed`);
    });

    it('refuses a maxSizeBytes below one byte when rotation is on', () => {
      expect(() => sink({ maxSizeBytes: 0 })).to.throw(
        `audit file ${active}: rotation.maxSizeBytes must be at least 1, got 0`,
      );
    });
  });

  describe('retention', () => {
    it('keeps the newest maxRetainedFiles rotated files', async () => {
      const s = sink({ maxSizeBytes: 10, maxRetainedFiles: 3 });
      await s.open();
      for (let i = 0; i < 6; i++) {
        await s.write(lines(i, 1));
        clock.advance(1000);
      }
      // Each write after the first rotates the file before it: rotated at T0 + 1 s .. T0 + 5 s.
      const want = [3, 4, 5].map((i) => rotatedName('audit.log', new Date(T0 + i * 1000), 1));
      expect(rotatedFiles()).to.deep.equal(want);
      expect(allRecords().map((r) => r.n)).to.deep.equal([2, 3, 4, 5]);
      const deleted = events.flatMap((e) => (e.type === 'retention-deleted' ? e.deleted : []));
      expect(deleted).to.deep.equal([1, 2].map((i) => rotatedName('audit.log', new Date(T0 + i * 1000), 1)));
    });

    it('keeps the newest records after a restart whose clock is behind the previous run', async () => {
      const first = sink({ maxSizeBytes: 10, maxRetainedFiles: 1 });
      await first.open();
      clock.advance(10 * 60 * 1000); // the previous run's clock was ten minutes ahead
      await first.write(lines(0, 1));
      await first.close();
      clock.advance(-10 * 60 * 1000);
      const second = sink({ maxSizeBytes: 10, maxRetainedFiles: 1 });
      await second.open();
      await second.write(lines(1, 1)); // rotates the first run's file
      await second.write(lines(2, 1)); // rotates again: retention keeps the newest, by name
      expect(allRecords().map((r) => r.n)).to.deep.equal([1, 2]);
    });

    it('applies a lowered maxRetainedFiles at open, before any rotation', async () => {
      for (let i = 0; i < 4; i++)
        fs.writeFileSync(path.join(dir, rotatedName('audit.log', new Date(T0 + i), 1)), line(i));
      await sink({ maxRetainedFiles: 1 }).open();
      expect(rotatedFiles()).to.deep.equal([rotatedName('audit.log', new Date(T0 + 3), 1)]);
    });

    it('deletes rotated files whose name is older than maxAgeDays, and nothing else', async () => {
      const unrelated = [
        'other.log',
        'audit.log.bak',
        'other-2000-01-01T00-00-00.000.log', // another backend in the same folder
        'audit-2000-13-01T00-00-00.000.log', // not a real time
      ];
      for (const n of unrelated) fs.writeFileSync(path.join(dir, n), 'keep\n');
      // A rotated name gzipped (rotation.compress, lumberjack's name) is a rotated file, aged as one.
      const compressed = path.join(dir, 'audit-2000-01-01T00-00-00.001.log.gz');
      fs.writeFileSync(compressed, 'not kept\n');
      fs.mkdirSync(path.join(dir, 'audit-2000-01-01T00-00-00.000.log')); // a folder, not a rotated file
      const s = sink({ maxSizeBytes: 10, maxAgeDays: 2 });
      await s.open();
      await s.write(lines(0, 1)); // rotated at day 0
      clock.advance(DAY_MS);
      await s.write(lines(1, 1)); // day 1
      clock.advance(1.5 * DAY_MS);
      await s.write(lines(2, 1)); // day 2.5: the day-0 file is 2.5 days old
      expect(rotatedFiles()).to.deep.equal([
        rotatedName('audit.log', new Date(T0 + DAY_MS), 1),
        rotatedName('audit.log', new Date(T0 + 2.5 * DAY_MS), 1),
      ]);
      clock.advance(10 * DAY_MS);
      await s.write(lines(3, 1)); // day 12.5: only this rotation is young enough
      expect(rotatedFiles()).to.deep.equal([rotatedName('audit.log', new Date(T0 + 12.5 * DAY_MS), 1)]);
      for (const n of unrelated) expect(fs.readFileSync(path.join(dir, n), 'utf8'), n).to.equal('keep\n');
      expect(fs.statSync(path.join(dir, 'audit-2000-01-01T00-00-00.000.log')).isDirectory()).to.equal(true);
      expect(fs.existsSync(compressed)).to.equal(false);
    });

    it('goes by the time in the name, not the modification time', async () => {
      const oldName = rotatedName('audit.log', new Date(T0 - 10 * DAY_MS), 1);
      const newName = rotatedName('audit.log', new Date(T0 - DAY_MS), 1);
      fs.writeFileSync(path.join(dir, oldName), 'x\n'); // modified just now
      fs.writeFileSync(path.join(dir, newName), 'x\n');
      const longAgo = new Date(T0 - 100 * DAY_MS);
      fs.utimesSync(path.join(dir, newName), longAgo, longAgo);
      const deleted = await applyRetention(dir, 'audit.log', { maxRetainedFiles: 0, maxAgeDays: 5 }, new Date(T0));
      expect(deleted).to.deep.equal([oldName]);
      expect(fs.readdirSync(dir)).to.deep.equal([newName]);
    });

    it('keeps everything with both limits at 0', async () => {
      for (let i = 0; i < 5; i++)
        fs.writeFileSync(path.join(dir, rotatedName('audit.log', new Date(T0 - i * 365 * DAY_MS), 1)), '');
      expect(
        await applyRetention(dir, 'audit.log', { maxRetainedFiles: 0, maxAgeDays: 0 }, new Date(T0)),
      ).to.deep.equal([]);
      expect(fs.readdirSync(dir)).to.have.length(5);
    });

    it('reports a failed scan instead of swallowing it', async () => {
      let err: Error | undefined;
      await applyRetention(
        path.join(dir, 'missing'),
        'audit.log',
        { maxRetainedFiles: 1, maxAgeDays: 0 },
        new Date(T0),
      ).catch((e: Error) => (err = e));
      expect(err?.message).to.match(/^can't list audit folder .*missing for retention: ENOENT/);
    });
  });

  describe('setRotation (a config reload)', () => {
    it('rotates at a smaller maxSizeBytes from the next write, after the writes queued before it', async () => {
      const s = sink({ maxSizeBytes: 1000 });
      await s.open();
      const queued = s.write(lines(0, 3));
      const changed = s.setRotation(rotation({ maxSizeBytes: 60 }));
      expect((await queued).size).to.equal(90);
      await changed;
      expect(rotatedFiles()).to.deep.equal([]);
      await s.write(lines(3, 1));
      await s.write(lines(4, 2));
      await s.write(lines(6, 1));
      expect(rotatedFiles()).to.have.length(2);
      expect(fs.readFileSync(path.join(dir, rotatedFiles()[1]!), 'utf8')).to.equal(line(3) + line(4));
      expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, 7));
    });

    it('deletes rotated files at once under a smaller maxRetainedFiles', async () => {
      const s = sink({ maxSizeBytes: 10 });
      await s.open();
      for (let i = 0; i < 5; i++) {
        await s.write(lines(i, 1));
        clock.advance(1000);
      }
      expect(rotatedFiles()).to.have.length(4);
      await s.setRotation(rotation({ maxSizeBytes: 10, maxRetainedFiles: 2 }));
      expect(rotatedFiles()).to.deep.equal([3, 4].map((i) => rotatedName('audit.log', new Date(T0 + i * 1000), 1)));
      expect(allRecords().map((r) => r.n)).to.deep.equal([2, 3, 4]);
    });

    it('stops rotating and deleting when rotation is turned off', async () => {
      const s = sink({ maxSizeBytes: 10, maxRetainedFiles: 1 });
      await s.open();
      await s.write(lines(0, 1));
      await s.setRotation(rotation({ enabled: false }));
      await s.write(lines(1, 3));
      expect(rotatedFiles()).to.deep.equal([]);
      expect(fs.readFileSync(active, 'utf8')).to.equal(lines(0, 4).toString());
    });

    it('refuses a maxSizeBytes under 1 and keeps the rotation in force', async () => {
      const s = sink({ maxSizeBytes: 60 });
      await s.open();
      expect(() => s.setRotation(rotation({ maxSizeBytes: 0 }))).to.throw('rotation.maxSizeBytes must be at least 1');
      await s.write(lines(0, 3));
      expect(rotatedFiles()).to.have.length(1);
    });
  });

  describe('open and recovery', () => {
    it('appends to an existing active file', async () => {
      fs.writeFileSync(active, line(0));
      const s = sink();
      const pos = await s.open();
      expect(pos).to.deep.equal({ ino: fs.statSync(active).ino, size: 30 });
      expect(await s.write(lines(1, 1))).to.deep.equal({ ino: pos.ino, size: 60 });
      expect(allRecords().map((r) => r.n)).to.deep.equal([0, 1]);
      expect(events).to.deep.equal([]);
    });

    it('repairs a torn last line before appending', async () => {
      fs.writeFileSync(active, `${line(0) + line(1)}{"n":2,"pa`);
      const s = sink();
      expect((await s.open()).size).to.equal(60);
      await s.write(lines(2, 1));
      expect(allRecords().map((r) => r.n)).to.deep.equal([0, 1, 2]);
      expect(events).to.deep.equal([
        { type: 'recovery-cut', file: active, target: active, reason: 'torn-line', fromBytes: 70, toBytes: 60 },
      ]);
    });

    it('empties a file that holds only a torn line, even past one read block', async () => {
      fs.writeFileSync(active, 'x'.repeat(150 * 1024));
      expect((await sink().open()).size).to.equal(0);
    });

    it('finds the last newline of a torn line longer than one read block', async () => {
      fs.writeFileSync(active, line(0) + 'y'.repeat(100 * 1024));
      expect((await sink().open()).size).to.equal(30);
    });

    it('rotates an active file already full at open before the first record that would pass the limit', async () => {
      fs.writeFileSync(active, lines(0, 3));
      const s = sink({ maxSizeBytes: 100 });
      const pos = await s.open();
      expect(rotatedFiles()).to.deep.equal([]);
      expect(pos).to.deep.equal({ ino: fs.statSync(active).ino, size: 90 });
      await s.write(lines(3, 1));
      expect(rotatedFiles()).to.deep.equal([rotatedName('audit.log', new Date(T0), 1)]);
      expect(fs.readFileSync(active, 'utf8')).to.equal(line(3));
    });

    it('cuts data written after the committed position in the same file', async () => {
      const s1 = sink();
      await s1.open();
      await s1.write(lines(0, 2));
      const committed = await s1.write(lines(2, 2));
      await s1.write(lines(4, 3)); // written, never acknowledged
      await s1.close();
      fs.appendFileSync(active, '{"n":7'); // and a crash in the middle of the next one
      events = [];
      const s2 = sink();
      expect(await s2.open(committed)).to.deep.equal(committed);
      expect(events).to.deep.equal([
        { type: 'recovery-cut', file: active, target: active, reason: 'uncommitted', fromBytes: 216, toBytes: 120 },
      ]);
      await s2.write(lines(4, 1));
      expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, 5));
    });

    it('cuts the committed file after it was rotated, deletes newer rotated files and empties the active file', async () => {
      const s1 = sink({ maxSizeBytes: 100 });
      await s1.open();
      await s1.write(lines(0, 1));
      const committed = await s1.write(lines(1, 1)); // 60 bytes in the first file
      await s1.write(lines(2, 1)); // 90, in the first file: never committed
      clock.advance(1000);
      await s1.write(lines(3, 4)); // rotated to R1 first; 90 in the next file, rotated to R2; 30 more
      clock.advance(1000);
      await s1.write(lines(7, 1)); // 60 in the active file
      await s1.close();
      const [r1, r2] = rotatedFiles().map((n) => path.join(dir, n));
      expect(fs.statSync(r1).ino).to.equal(committed.ino);
      events = [];
      const s2 = sink({ maxSizeBytes: 100 }, { fsync: true });
      const pos = await s2.open(committed);
      expect(events).to.deep.equal([
        { type: 'recovery-cut', file: active, target: r1, reason: 'uncommitted', fromBytes: 90, toBytes: 60 },
        { type: 'recovery-deleted', file: active, target: r2, bytes: 90 },
        { type: 'recovery-cut', file: active, target: active, reason: 'uncommitted', fromBytes: 60, toBytes: 0 },
      ]);
      expect(pos).to.deep.equal({ ino: fs.statSync(active).ino, size: 0 });
      expect(rotatedFiles()).to.deep.equal([path.basename(r1)]);
      await s2.write(lines(2, 1));
      expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, 3));
      expect(fs.readdirSync(dir).filter((n) => n.endsWith('.txt'))).to.deep.equal([]);
    });

    it('reports a committed file that is gone and only repairs a torn line', async () => {
      fs.writeFileSync(active, `${line(0)}{"n":1`);
      const ino = fs.statSync(active).ino;
      const committed: SinkPosition = { ino: ino + 1000, size: 5 };
      const pos = await sink().open(committed);
      expect(pos).to.deep.equal({ ino, size: 30 });
      expect(events).to.deep.equal([
        { type: 'recovery-committed-file-missing', file: active, committed },
        { type: 'recovery-cut', file: active, target: active, reason: 'torn-line', fromBytes: 36, toBytes: 30 },
      ]);
    });

    it('deletes nothing when the committed file is shorter than the committed size', async () => {
      const s1 = sink({ maxSizeBytes: 50 });
      await s1.open();
      const committed = await s1.write(lines(0, 1));
      await s1.write(lines(1, 1)); // 60 > 50: rotated first (R1 holds record 0)
      await s1.write(lines(2, 2)); // rotated again (same millisecond): R2 holds record 1; one file each
      await s1.close();
      const [r1, r2] = rotatedFiles().map((n) => path.join(dir, n));
      fs.truncateSync(r1, 10); // lost in a crash without fsync
      events = [];
      await sink({ maxSizeBytes: 50 }).open({ ino: committed.ino, size: 60 });
      expect(events).to.deep.equal([
        {
          type: 'recovery-committed-data-missing',
          file: active,
          target: r1,
          committed: { ino: committed.ino, size: 60 },
          sizeBytes: 10,
        },
        { type: 'recovery-cut', file: active, target: r1, reason: 'torn-line', fromBytes: 10, toBytes: 0 },
      ]);
      expect(fs.readFileSync(r2, 'utf8')).to.equal(line(1));
    });

    it('deletes the empty file a kill in the middle of a rotation leaves under a rotated name', async () => {
      const leftover = path.join(dir, rotatedName('audit.log', new Date(T0 - 1000), 1));
      fs.writeFileSync(leftover, '');
      fs.writeFileSync(active, line(0));
      await sink({ maxSizeBytes: 100 }).open({ ino: fs.statSync(active).ino, size: 30 });
      expect(fs.existsSync(leftover)).to.equal(false);
      expect(events).to.deep.equal([{ type: 'recovery-deleted', file: active, target: leftover, bytes: 0 }]);
    });

    it('rejects a second open', async () => {
      const s = sink();
      await s.open();
      let err: Error | undefined;
      await s.open().catch((e: Error) => (err = e));
      expect(err?.message).to.equal(`audit file ${active} was already opened`);
    });
  });

  describe('write failures', () => {
    // A real failure: the child runs under RLIMIT_FSIZE = 1024 bytes (Node ignores SIGXFSZ, so writes
    // past the limit fail with EFBIG, and a write across it is a short write, exactly like ENOSPC).
    const PRLIMIT = ['/usr/bin/prlimit', '/bin/prlimit'].find((p) => fs.existsSync(p));
    const CHILD = `
      const fs = require('fs');
      const { FileSink } = require(process.env.SINK_MODULE);
      const dir = process.env.DIR;
      const line = (n, bytes) => { const h = '{"n":' + n + ',"pad":"'; return h + 'x'.repeat(bytes - h.length - 3) + '"}\\n'; };
      const lines = (from, count, bytes) => Buffer.from(Array.from({ length: count }, (_, i) => line(from + i, bytes)).join(''));
      const attempt = (p) => p.then((pos) => ({ pos }), (err) => ({ err: err.message }));
      (async () => {
        const out = {};
        // Rotation off: the file reaches the limit.
        const a = new FileSink({ path: dir + '/a/audit.log', rotation: { enabled: false, maxRetainedFiles: 0, maxSizeBytes: 1, maxAgeDays: 0 }, fsync: true });
        await a.open();
        out.full = await attempt(a.write(lines(0, 10, 100)));
        out.short = await attempt(a.write(lines(10, 3, 100)));
        out.sizeAfterShort = fs.statSync(dir + '/a/audit.log').size;
        out.fits = await attempt(a.write(lines(10, 1, 24)));
        out.efbig = await attempt(a.write(lines(11, 1, 24)));
        out.efbigAgain = await attempt(a.write(lines(11, 1, 24)));
        out.sizeAtEnd = fs.statSync(dir + '/a/audit.log').size;
        await a.close();
        // Rotation on, files allowed past the size limit: a failed write never rotates (rfs's own size
        // rotation counted the failed bytes and rotated the torn file, leaving an empty rotated file).
        const b = new FileSink({ path: dir + '/b/audit.log', rotation: { enabled: true, maxRetainedFiles: 0, maxSizeBytes: 2000, maxAgeDays: 0 } });
        await b.open();
        out.b1 = await attempt(b.write(lines(0, 9, 100)));
        out.b2 = await attempt(b.write(lines(9, 2, 100)));
        out.b3 = await attempt(b.write(lines(9, 2, 100)));
        out.b4 = await attempt(b.write(lines(9, 1, 100)));
        await b.close();
        // Rotation on at 1000 bytes: a batch across the limit is split and rotated at a record boundary,
        // so no file ever reaches the process's size limit.
        const c = new FileSink({ path: dir + '/c/audit.log', rotation: { enabled: true, maxRetainedFiles: 0, maxSizeBytes: 1000, maxAgeDays: 0 } });
        await c.open();
        out.c1 = await attempt(c.write(lines(0, 9, 100)));
        out.c2 = await attempt(c.write(lines(9, 12, 100)));
        await c.close();
        // A write that rotated and then failed is undone: the new file removed, the old one renamed back.
        const d = new FileSink({ path: dir + '/d/audit.log', rotation: { enabled: true, maxRetainedFiles: 0, maxSizeBytes: 2000, maxAgeDays: 0 } });
        await d.open();
        out.d1 = await attempt(d.write(lines(0, 5, 100)));
        out.d2 = await attempt(d.write(lines(5, 1, 1600))); // does not fit after 500: rotates, then hits the limit
        out.d3 = await attempt(d.write(lines(5, 1, 100)));
        await d.close();
        process.stdout.write(JSON.stringify(out));
      })().catch((err) => { console.error(err); process.exit(1); });
    `;

    it('cuts a failed write back, says what was attempted, and writes the next batch right after', function () {
      if (PRLIMIT === undefined) this.skip();
      fs.writeFileSync(path.join(dir, 'child.js'), CHILD);
      const child = spawnSync(PRLIMIT!, ['--fsize=1024', process.execPath, path.join(dir, 'child.js')], {
        env: { ...process.env, DIR: dir, SINK_MODULE: path.resolve(__dirname, '../../../src/backends/file/index.js') },
        encoding: 'utf8',
        timeout: 15000,
      });
      expect(child.status, child.stderr).to.equal(0);
      const out = JSON.parse(child.stdout);
      const fileA = path.join(dir, 'a', 'audit.log');
      const inoA = fs.statSync(fileA).ino;
      expect(out.full).to.deep.equal({ pos: { ino: inoA, size: 1000 } });
      // Only 24 of the 300 bytes fit: libuv reports a short write without an error, rfs passes it on as success.
      expect(out.short.err).to.equal(
        `can't write audit file ${fileA}: short write: 24 of 300 bytes reached the file (disk full or file size limit?)`,
      );
      expect(out.sizeAfterShort).to.equal(1000);
      expect(out.fits).to.deep.equal({ pos: { ino: inoA, size: 1024 } });
      expect(out.efbig.err).to.match(new RegExp(`^can't write audit file ${fileA}: EFBIG: file too large, write`));
      expect(out.efbigAgain.err).to.match(/EFBIG/);
      expect(out.sizeAtEnd).to.equal(1024);
      const recordsA = fs
        .readFileSync(fileA, 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).n);
      expect(recordsA).to.deep.equal(ns(0, 11));

      const dirB = path.join(dir, 'b');
      expect(out.b1.pos.size).to.equal(900);
      expect(out.b2.err).to.match(/^can't write audit file .*b\/audit\.log: short write: 124 of 200 bytes/);
      expect(out.b3.err).to.match(/short write: 124 of 200 bytes/);
      expect(out.b4.pos).to.deep.equal({ ino: out.b1.pos.ino, size: 1000 }); // right after, in the same file
      expect(fs.readdirSync(dirB)).to.deep.equal(['audit.log']); // never rotated, no empty rotated file
      expect(fs.readFileSync(path.join(dirB, 'audit.log'), 'utf8').trimEnd().split('\n')).to.have.length(10);

      const dirC = path.join(dir, 'c');
      expect(out.c2.pos.size).to.equal(100);
      const namesC = fs.readdirSync(dirC).sort();
      expect(namesC.map((n) => fs.statSync(path.join(dirC, n)).size)).to.deep.equal([1000, 1000, 100]);
      const recordsC = namesC
        .flatMap((n) => fs.readFileSync(path.join(dirC, n), 'utf8').trimEnd().split('\n'))
        .map((l) => JSON.parse(l).n);
      expect(recordsC).to.deep.equal(ns(0, 21));

      const dirD = path.join(dir, 'd');
      expect(out.d2.err).to.match(/short write: 1024 of 1600 bytes/);
      expect(out.d3.pos).to.deep.equal({ ino: out.d1.pos.ino, size: 600 });
      expect(fs.readdirSync(dirD)).to.deep.equal(['audit.log']);
      expect(fs.readFileSync(path.join(dirD, 'audit.log'), 'utf8').trimEnd().split('\n')).to.have.length(6);
    });
  });

  describe('reopen', () => {
    it('makes a new active file at the path after the old one was moved away, and writes there', async () => {
      const s = sink();
      await s.open();
      const before = await s.write(lines(0, 3));
      fs.renameSync(active, `${active}.1`);
      const reopened = await s.reopen();
      expect(reopened).to.deep.equal({ ino: fs.statSync(active).ino, size: 0 });
      expect(reopened.ino).to.not.equal(before.ino);
      expect(await s.write(lines(3, 2))).to.deep.equal({ ino: reopened.ino, size: 60 });
      const numbers = (file: string): number[] =>
        fs
          .readFileSync(file, 'utf8')
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l).n);
      expect(numbers(`${active}.1`)).to.deep.equal(ns(0, 3));
      expect(numbers(active)).to.deep.equal(ns(3, 2));
      expect(events.filter((e) => e.type !== 'retention-deleted')).to.deep.equal([]);
    });

    it('goes on in the same file when it was not moved', async () => {
      const s = sink();
      await s.open();
      const before = await s.write(lines(0, 3));
      expect(await s.reopen()).to.deep.equal(before);
      await s.write(lines(3, 1));
      expect(allRecords().map((r) => r.n)).to.deep.equal(ns(0, 4));
    });

    it('refuses to reopen a sink that is not open', async () => {
      const s = sink();
      const err = await s.reopen().then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).to.equal(`can't reopen audit file ${active}: the sink is not open`);
    });
  });
});

const HOUR_MS = 60 * 60 * 1000;
/** 09:15 UTC: the next 1h boundary is 10:00, the next 24h boundary midnight. */
const INTERVAL_T0 = Date.UTC(2021, 5, 7, 9, 15, 0, 0);

function hourly(over: Partial<RotationConfig> = {}): RotationConfig {
  return { enabled: true, maxRetainedFiles: 0, maxSizeBytes: 1024 * 1024, maxAgeDays: 0, intervalMs: HOUR_MS, ...over };
}

function intervalRecord(n: number): Buffer {
  return Buffer.from(`{"n":${n}}\n`);
}

describe('FileSink rotation.interval', () => {
  let dir: string;
  let active: string;
  let nowMs: number;
  const open: FileSink[] = [];

  function sink(over: Partial<RotationConfig> = {}): FileSink {
    const s = new FileSink({ path: active, rotation: hourly(over), now: () => new Date(nowMs) });
    open.push(s);
    return s;
  }

  /** Each file of the backend, oldest first, with what it holds. */
  function files(): Array<[string, string]> {
    const rotated = fs
      .readdirSync(dir)
      .filter((n) => timeFromName('audit.log', n) !== undefined)
      .sort();
    return [...rotated, 'audit.log'].map((n) => [n, fs.readFileSync(path.join(dir, n), 'utf8')]);
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshaudit-interval-'));
    active = path.join(dir, 'audit.log');
    nowMs = INTERVAL_T0;
  });

  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('rotates a small file before the first write after a UTC boundary, to a name after the boundary', async () => {
    const s = sink();
    await s.open();
    await s.write(intervalRecord(1));
    nowMs = Date.UTC(2021, 5, 7, 9, 59, 59, 999);
    await s.write(intervalRecord(2));
    nowMs = Date.UTC(2021, 5, 7, 10, 0, 0, 5);
    await s.write(intervalRecord(3));
    expect(files()).to.deep.equal([
      ['audit-2021-06-07T10-00-00.005.log', '{"n":1}\n{"n":2}\n'],
      ['audit.log', '{"n":3}\n'],
    ]);
  });

  it('rotates once per boundary passed however long the gap, and never an empty file', async () => {
    const s = sink();
    await s.open();
    nowMs += 5 * HOUR_MS; // no record yet: nothing to rotate
    await s.write(intervalRecord(1));
    nowMs += 30 * 60 * 1000; // 14:45, same hour
    await s.write(intervalRecord(2));
    nowMs += 3 * HOUR_MS;
    await s.write(intervalRecord(3));
    expect(files()).to.deep.equal([
      ['audit-2021-06-07T17-45-00.000.log', '{"n":1}\n{"n":2}\n'],
      ['audit.log', '{"n":3}\n'],
    ]);
  });

  it('rotates by size and by time together', async () => {
    const s = sink({ maxSizeBytes: 16, intervalMs: 24 * HOUR_MS });
    await s.open();
    await s.write(Buffer.concat([intervalRecord(1), intervalRecord(2), intervalRecord(3)])); // 8 bytes each: two per file
    nowMs += 1;
    await s.write(intervalRecord(4)); // fits beside 3, same day
    nowMs = Date.UTC(2021, 5, 8, 0, 0, 0, 1);
    await s.write(intervalRecord(5)); // a new UTC day
    expect(files().map(([, text]) => text)).to.deep.equal(['{"n":1}\n{"n":2}\n', '{"n":3}\n{"n":4}\n', '{"n":5}\n']);
    expect(files()[1][0]).to.equal('audit-2021-06-08T00-00-00.001.log');
  });

  /** A restart (the clock at 09:15) over a file holding record 1, last written at `lastWrite`; then record 2. */
  async function restartAfterWriteAt(lastWrite: Date): Promise<Array<[string, string]>> {
    fs.writeFileSync(active, intervalRecord(1));
    fs.utimesSync(active, lastWrite, lastWrite);
    const s = sink();
    await s.open();
    await s.write(intervalRecord(2));
    return files();
  }

  it('rotates at the first write after a restart a file last written before the boundary', async () => {
    expect(await restartAfterWriteAt(new Date(Date.UTC(2021, 5, 7, 8, 59, 0, 0)))).to.deep.equal([
      ['audit-2021-06-07T09-15-00.000.log', '{"n":1}\n'],
      ['audit.log', '{"n":2}\n'],
    ]);
  });

  it('goes on in a file last written in the same period after a restart', async () => {
    expect(await restartAfterWriteAt(new Date(Date.UTC(2021, 5, 7, 9, 1, 0, 0)))).to.deep.equal([
      ['audit.log', '{"n":1}\n{"n":2}\n'],
    ]);
  });

  it('does not rotate when the clock steps back across a boundary', async () => {
    const s = sink();
    await s.open();
    await s.write(intervalRecord(1));
    nowMs -= HOUR_MS;
    await s.write(intervalRecord(2));
    expect(files()).to.deep.equal([['audit.log', '{"n":1}\n{"n":2}\n']]);
  });

  it('takes an interval set by a reload from the next write', async () => {
    const s = sink({ intervalMs: undefined });
    await s.open();
    await s.write(intervalRecord(1));
    nowMs += HOUR_MS;
    await s.write(intervalRecord(2));
    expect(files()).to.have.length(1);
    await s.setRotation(hourly());
    nowMs += HOUR_MS;
    await s.write(intervalRecord(3));
    expect(files().map(([, text]) => text)).to.deep.equal(['{"n":1}\n{"n":2}\n', '{"n":3}\n']);
  });

  it('never rotates with rotation disabled, interval or not', async () => {
    const s = sink({ enabled: false });
    await s.open();
    await s.write(intervalRecord(1));
    nowMs += 2 * HOUR_MS;
    await s.write(intervalRecord(2));
    expect(files()).to.have.length(1);
  });
});
