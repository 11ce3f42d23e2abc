// The checkpoint: for each control-plane identifier the last acknowledged sequence, and for each sink
// where its acknowledged data ends. Both move together, in one appended line per committed batch,
// which is what makes the audit files exactly-once across crashes: on start, each sink is cut back to
// its committed position (dropping data written but never acknowledged) and each CP resumes right
// after its committed sequence.
//
// Layout: <dataDir>/checkpoint.jsonl, one JSON object per line, each a delta:
//   {"s":{"<zone>/<instance>":<seq>,...},"p":{"<sink key>":[<inode>,<size>],...}}
// Replaying the lines in order gives the state. A line torn by a crash is the last one, without its
// newline, and is dropped: it was never acknowledged. So is a tail of lines holding NUL bytes that no
// readable line follows: what a machine crash leaves when the file grew but its last pages never reached
// the disk (fsync off). Any other line that cannot be read is corruption. When the file passes
// COMPACT_AT_BYTES it is replaced durably (src/store/durable-file.ts) by one line with the whole state.
import * as nodeFs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_FILE_MODES, type FileModes } from '../backends/file-modes';
import { QuickWrites } from '../backends/quick-writes';
import type { SinkPosition } from '../backends/sink';
import { MeshauditError } from '../errors';
import { type DurableFs, ReplaceError, replaceFile, syncDir } from './durable-file';

/** 4 MiB of deltas (~40k batches) replay in milliseconds at start-up and compact in one write. */
const COMPACT_AT_BYTES = 4 * 1024 * 1024;
export const CHECKPOINT_FILE = 'checkpoint.jsonl';

export interface CheckpointState {
  readonly seqs: Map<string, number>;
  readonly positions: Map<string, SinkPosition>;
}

export interface CheckpointDelta {
  readonly seqs: ReadonlyMap<string, number>;
  readonly positions: ReadonlyMap<string, SinkPosition>;
}

/** The checkpoint cannot be read or written; the message names the file. Exit 1 when it stops start-up. */
export class CheckpointError extends MeshauditError {
  readonly kind = 'unavailable';
}

/** The checkpoint file holds something no crash leaves: restarting will not help (exit 2). */
export class CheckpointCorruptError extends CheckpointError {
  override readonly exitCode = 2;
}

/** The file operations the checkpoint uses: injected, so that tests can make any of them fail. */
export type CheckpointFs = DurableFs &
  Pick<
    typeof nodeFs,
    'readFileSync' | 'ftruncateSync' | 'fstatSync' | 'statSync' | 'write' | 'writeSync' | 'fdatasync'
  >;

export interface CheckpointOptions {
  /** fdatasync every append before it is acknowledged (meshaudit.fsync). */
  readonly fsync: boolean;
  /** Compact once the file passes this many bytes; COMPACT_AT_BYTES by default. */
  readonly compactAtBytes?: number;
  /** Default: node:fs. */
  readonly fs?: CheckpointFs;
  /**
   * The checkpoint file was removed or replaced behind the sidecar's back (the data directory deleted,
   * a second sidecar started on it): called before the whole state is written again from memory, to
   * take back what else the directory held (the lock, the AccessAudit store). A throw fails the
   * commit, which is retried: nothing more is acknowledged until it works.
   */
  readonly onLost?: () => void | Promise<void>;
  /**
   * Called before every commit (the data directory's lock: src/store/data-dir-lock.ts); a throw fails
   * the commit. Returns nothing at once while all is well, so that the hot path does not wait on it.
   */
  readonly beforeCommit?: () => void | Promise<void>;
  /** The file's mode (meshaudit.files); DEFAULT_FILE_MODES by default. */
  readonly modes?: FileModes;
  /** An append slower than this shows a slow disk (src/backends/quick-writes.ts); QUICK_WRITE_MS by default. */
  readonly slowWriteMs?: number;
}

function applyLine(state: CheckpointState, line: string): boolean {
  let parsed: { s?: Record<string, number>; p?: Record<string, [number, number]> };
  try {
    parsed = JSON.parse(line);
  } catch {
    return false;
  }
  if (typeof parsed !== 'object' || parsed === null) return false;
  for (const [k, v] of Object.entries(parsed.s ?? {})) state.seqs.set(k, v);
  for (const [k, v] of Object.entries(parsed.p ?? {})) state.positions.set(k, { ino: v[0], size: v[1] });
  return true;
}

function encode(delta: CheckpointDelta): string {
  let s = '';
  for (const [k, v] of delta.seqs) s += `${s ? ',' : ''}${JSON.stringify(k)}:${v}`;
  let p = '';
  for (const [k, v] of delta.positions) p += `${p ? ',' : ''}${JSON.stringify(k)}:[${v.ino},${v.size}]`;
  return `{"s":{${s}},"p":{${p}}}\n`;
}

/**
 * Whether `tail` (from the first line that cannot be read) is what a machine crash leaves with fsync off:
 * the file grew, but some of its last pages never reached the disk and read as NUL bytes. It holds a NUL
 * and no readable line follows; a readable line after it would be acknowledged state, not a torn tail.
 */
function tornByMachineCrash(tail: string): boolean {
  const [first, ...rest] = tail.split('\n');
  if (!first.includes('\0')) return false;
  const scratch: CheckpointState = { seqs: new Map(), positions: new Map() };
  return rest.every((line) => line.trim() === '' || line.includes('\0') || !applyLine(scratch, line));
}

/**
 * What start-up dropped from the end of the file: nothing (false); a last line without its newline, a
 * crash during a commit that was never acknowledged ('torn line'); or a tail of NUL bytes, a crash of
 * the machine with fsync off, which may have lost groups acknowledged just before it ('lost pages').
 */
export type DroppedTail = false | 'torn line' | 'lost pages';

export class Checkpoint {
  private fd = -1;
  /** The inode of the file `fd` appends to (read once per open: a descriptor's inode never changes). */
  private ino = -1;
  private bytes = 0;
  private closed = false;
  /** A failed append may have left a partial line after `bytes`: cut before appending again. */
  private cutDue = false;
  /** A compaction renamed its file into place but could not fsync the folder: done before the next commit. */
  private dirSyncDue = false;
  private readonly file: string;
  private readonly fs: CheckpointFs;
  private readonly modes: FileModes;
  /** Whether an append goes straight to the kernel or through libuv's thread pool. */
  private readonly quick: QuickWrites;
  readonly state: CheckpointState = { seqs: new Map(), positions: new Map() };

  constructor(
    private readonly dir: string,
    private readonly opts: CheckpointOptions = { fsync: false },
  ) {
    this.file = path.join(dir, CHECKPOINT_FILE);
    this.fs = opts.fs ?? nodeFs;
    this.modes = opts.modes ?? DEFAULT_FILE_MODES;
    this.quick = new QuickWrites(!opts.fsync, opts.slowWriteMs);
  }

  /**
   * What load() would read, without creating or changing anything (--check-config): the state, and
   * whether a torn last line would be dropped. Throws what load() throws for an unreadable or corrupt file.
   */
  inspect(): { state: CheckpointState; droppedTail: DroppedTail } {
    const { state, droppedTail } = this.parse(this.read());
    return { state, droppedTail };
  }

  /** Reads the state; a torn or corrupt line can only be the last one and is cut off. */
  load(): { state: CheckpointState; droppedTail: DroppedTail } {
    try {
      this.fs.mkdirSync(this.dir, { recursive: true, mode: this.modes.dir });
    } catch (e) {
      throw new CheckpointError(`can't create ${this.dir} for checkpoint ${this.file}: ${(e as Error).message}`);
    }
    const text = this.read();
    const { good, droppedTail } = this.parse(text, this.state);
    this.bytes = Buffer.byteLength(text.slice(0, good));
    try {
      this.fd = this.openAppend();
      if (text === '' && this.opts.fsync) syncDir(this.fs, this.dir);
      if (droppedTail) this.fs.ftruncateSync(this.fd, this.bytes);
    } catch (e) {
      throw new CheckpointError(`can't open checkpoint ${this.file}: ${(e as Error).message}`);
    }
    return { state: this.state, droppedTail };
  }

  /** The file's text; '' when there is none yet. */
  private read(): string {
    try {
      return this.fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw new CheckpointError(`can't read checkpoint ${this.file}: ${(e as Error).message}`);
    }
  }

  /** Replays `text` into `state`: how far it is good, and whether a torn last line is left after that. */
  private parse(
    text: string,
    state: CheckpointState = { seqs: new Map(), positions: new Map() },
  ): { state: CheckpointState; good: number; droppedTail: DroppedTail } {
    let good = 0;
    let droppedTail: DroppedTail = false;
    while (good < text.length) {
      const nl = text.indexOf('\n', good);
      if (nl < 0 || !applyLine(state, text.slice(good, nl))) {
        // A crash of the process leaves at most a last line without its newline; one of the machine, a
        // tail of NUL bytes. Any other whole line (newline and all) that cannot be read, even the last
        // or the only one, was damaged by something else, and anything after it would be applied out of
        // order: we refuse to guess about either.
        if (nl >= 0 && !tornByMachineCrash(text.slice(good))) {
          throw new CheckpointCorruptError(
            `checkpoint ${this.file} is corrupt at byte ${good}; move it away to start over`,
          );
        }
        droppedTail = nl >= 0 || text.includes('\0', good) ? 'lost pages' : 'torn line';
        break;
      }
      good = nl + 1;
    }
    return { state, good, droppedTail };
  }

  /**
   * Appends a delta. Called only after the data it describes is written, and it settles before anything
   * is acknowledged. Not reentrant: the writer commits one group at a time.
   */
  async commit(delta: CheckpointDelta): Promise<void> {
    if (this.closed) throw new CheckpointError(`checkpoint ${this.file} is closed`);
    if (this.fd < 0) {
      // A compaction renamed the new file into place but could not reopen it (EMFILE, EIO): try again
      // now, rather than refusing every commit until a restart.
      try {
        this.fd = this.openAppend();
        this.bytes = this.fs.fstatSync(this.fd).size;
      } catch (e) {
        this.fd = -1;
        throw new CheckpointError(`can't reopen checkpoint ${this.file}: ${(e as Error).message}`);
      }
    }
    try {
      const guard = this.opts.beforeCommit?.();
      if (guard !== undefined) await guard;
    } catch (e) {
      throw new CheckpointError(`can't commit to checkpoint ${this.file}: ${(e as Error).message}`);
    }
    for (const [k, v] of delta.seqs) this.state.seqs.set(k, v);
    for (const [k, v] of delta.positions) this.state.positions.set(k, v);
    if (this.bytes >= (this.opts.compactAtBytes ?? COMPACT_AT_BYTES)) {
      // The whole state goes to the path; if the file there was lost, the rest must be taken back first.
      if (!this.atItsPath()) await this.takeBack();
      this.compactOrThrow();
      return;
    }
    if (this.cutDue && !this.cutBack()) {
      throw new CheckpointError(`can't cut checkpoint ${this.file} back to its last whole line`);
    }
    if (this.opts.fsync && this.dirSyncDue) {
      // A compaction's rename whose folder fsync failed: durable before anything more is acknowledged.
      try {
        syncDir(this.fs, this.dir);
        this.dirSyncDue = false;
      } catch (e) {
        throw new CheckpointError(`can't fsync the folder of checkpoint ${this.file}: ${(e as Error).message}`);
      }
    }
    // Appended, then checked to be at its path. Appending to a removed file would acknowledge records
    // that no restart could find again (and a second sidecar could start on the directory with resume
    // point 0): then the line just written is moot, and the whole state is written again, at the path.
    const buf = Buffer.from(encode(delta));
    let appendError: Error | undefined;
    await this.append(buf).catch((e: Error) => {
      appendError = e;
    });
    let atPath: boolean | Error;
    try {
      atPath = this.atItsPath();
    } catch (e) {
      atPath = e as Error;
    }
    if (atPath === false) {
      await this.takeBack();
      this.compactOrThrow();
      return;
    }
    if (appendError !== undefined) {
      // A partial line left in the middle would make the next start refuse the file: cut it, now or,
      // if that fails too, before the next append.
      this.cutDue = true;
      this.cutBack();
      throw new CheckpointError(`can't append to checkpoint ${this.file}: ${appendError.message}`);
    }
    this.bytes += buf.length;
    // Appended, but whether at the path is unknown: not acknowledged. The writer commits the same delta
    // again, and a line repeated is replayed to the same state.
    if (atPath instanceof Error) throw atPath;
  }

  /**
   * Appends `buf` whole (and fdatasyncs it with fsync on), or rejects: straight to the kernel while the
   * disk is quick, else through libuv's thread pool (src/backends/quick-writes.ts).
   */
  private async append(buf: Buffer): Promise<void> {
    const fd = this.fd;
    let written = 0;
    await this.quick.write(
      buf.length,
      () => (written = this.fs.writeSync(fd, buf, 0, buf.length, null)),
      () =>
        new Promise<void>((resolve, reject) =>
          this.fs.write(fd, buf, 0, buf.length, null, (err, n) => {
            written = n;
            if (err) reject(err);
            else resolve();
          }),
        ),
      () => {
        // A write can be short without an error (file size limit, a full disk): that is a failure too.
        if (written < buf.length) throw new Error(`short write: ${written} of ${buf.length} bytes`);
      },
    );
    // After a failed fsync what reached the disk is unknown: the line is cut and written again, so
    // that a power loss cannot leave half of it in the middle of the file.
    if (this.opts.fsync) {
      await new Promise<void>((resolve, reject) =>
        this.fs.fdatasync(fd, (err) => (err ? reject(new Error(`fsync: ${err.message}`)) : resolve())),
      );
    }
  }

  /** The file at the path is not ours (the data directory removed): takes back what else it held. */
  private async takeBack(): Promise<void> {
    try {
      await this.opts.onLost?.();
    } catch (e) {
      throw new CheckpointError(`checkpoint ${this.file} was removed or replaced: ${(e as Error).message}`);
    }
  }

  private compactOrThrow(): void {
    try {
      this.compact();
    } catch (e) {
      throw new CheckpointError(`can't compact checkpoint ${this.file}: ${(e as Error).message}`);
    }
  }

  /**
   * Whether the file at the checkpoint's path is the one it appends to (not removed, not replaced).
   * Synchronous: it runs at every commit, and a stat of a path whose inode the kernel holds is a few
   * microseconds, where one through libuv's thread pool costs ~30 µs of CPU on this kind of machine (with
   * the audit file's own check, a fifth of the sidecar's CPU went to such round trips).
   */
  private atItsPath(): boolean {
    let atPath: nodeFs.Stats | undefined;
    try {
      atPath = this.fs.statSync(this.file, { throwIfNoEntry: false });
    } catch (e) {
      throw new CheckpointError(`can't check checkpoint ${this.file}: ${(e as Error).message}`);
    }
    return atPath?.ino === this.ino;
  }

  /** Cuts the file back to its last whole line; false when that fails (it is tried again later). */
  private cutBack(): boolean {
    try {
      this.fs.ftruncateSync(this.fd, this.bytes);
      this.cutDue = false;
      return true;
    } catch {
      return false;
    }
  }

  /** Replaces the file with one line holding the whole state: the old file or the new one, never a torn one. */
  private compact(): void {
    const line = encode(this.state);
    try {
      replaceFile(this.fs, this.file, line, { mode: this.modes.file, dirMode: this.modes.dir });
    } catch (e) {
      // Renamed into place, but its directory entry may not be durable yet (a failed directory fsync):
      // the new file is the checkpoint now, and appending to the old one would look like a lost file.
      if (e instanceof ReplaceError && e.renamed) {
        this.reopen(line);
        this.dirSyncDue = true;
      }
      throw e;
    }
    this.reopen(line);
  }

  /** Appends to the file now at the path, which holds `line`. */
  private reopen(line: string): void {
    const old = this.fd;
    // Never leave a closed descriptor number in this.fd: a later write would land in whatever file reuses it.
    this.fd = -1;
    this.fs.closeSync(old);
    this.fd = this.openAppend();
    this.bytes = Buffer.byteLength(line);
  }

  /** Opens the file to append, with meshaudit.files.fileMode whatever the umask. */
  private openAppend(): number {
    const fd = this.fs.openSync(this.file, 'a+', this.modes.file);
    try {
      this.fs.fchmodSync(fd, this.modes.file);
      this.ino = this.fs.fstatSync(fd).ino;
    } catch (e) {
      this.fs.closeSync(fd);
      throw e;
    }
    return fd;
  }

  /** The file's size now, in bytes: it grows by a line per commit until a compaction rewrites it. */
  get sizeBytes(): number {
    return this.bytes;
  }

  close(): void {
    this.closed = true;
    if (this.fd >= 0) this.fs.closeSync(this.fd);
    this.fd = -1;
  }
}
