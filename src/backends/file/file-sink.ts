// The file backend: JSON Lines appended to one active file, rotated the way lumberjack does it (see
// rotation-names.ts), on top of rotating-file-stream (rfs) 3.x.
//
// What rfs gives and what it does not, and what this file adds:
// - Rotation is decided here, not by rfs's `size` option. rfs rotates AFTER the write that makes the
//   file reach its size, and counts a write toward the size before it lands, so a write that failed
//   half-way (a full disk) still rotated, leaving a torn file that the cut-back made empty: empty
//   rotated files that retention counted, deleting real ones. Here, as in lumberjack, a file never
//   passes maxSizeBytes unless one record alone is larger: a write is split at record boundaries, the
//   active file is rotated (rfs's own rotate(), so names and events are rfs's) before the record that
//   would not fit, and only after everything before it landed. A failed write never rotates: one that
//   rotated before it failed is undone (see undoWrite).
// - rfs has no fsync and hides its file descriptor: fsync opens the file the data went to and fsyncs
//   that; fsync flushes the file, whichever descriptor asks.
// - rfs ignores short writes: when the disk fills up (or RLIMIT_FSIZE is hit) in the middle of a
//   write, libuv returns the bytes written without an error and rfs reports success with a torn
//   batch. Every write is therefore checked against the file's size before it is acknowledged.
// - An rfs error destroys the stream for good: the file is cut back to where it was before the
//   failed write (no torn line, no partial batch) and a new stream is made for the next write.
// - rfs writes to the file it opened, whatever happens to its name: an active file renamed, deleted
//   or replaced behind the sink's back fails the write (it is checked by path), and the sink cuts the
//   batch back out of it through a descriptor of its own, so the batch is written once, at `path`
//   (a new file there). The audit folder is created again when it is gone.
// - rfs's retention (maxFiles/maxSize) only knows its own history file and has no age limit; it is
//   not used (no `<active>.txt` history file appears). Retention is a directory scan (retention.ts).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { createStream } from 'rotating-file-stream';
import type { Options as RfsOptions, RotatingFileStream } from 'rotating-file-stream';
import { whyNotWritable } from '../../config/places';
import { DEFAULT_FILE_MODES, type FileModes, makeDirAsync } from '../file-modes';
import { QuickWrites } from '../quick-writes';
import type { RotationConfig } from '../../config/types';
import { type Sink, SinkError, SinkNewFileError, type SinkPosition } from '../sink';
import { applyRetention, type Doomed, listRotatedFiles, RetentionError, type RetentionHold } from './retention';
import { COMPRESSING_SUFFIX, gunzippedBytes, gzipToTemp } from './compression';
import { COMPRESSED_SUFFIX, rotatedName, timeFromName } from './rotation-names';

/** Torn-line repair reads the end of the file backwards in blocks of this size (records are < 64 KiB). */
const TAIL_BLOCK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

/** What the sink did on its own, for the process to log and count. `file` is always the sink's key. */
export type FileSinkEvent =
  /** The active file was renamed to `rotatedFile` (absolute path) and a new active file started. */
  | { readonly type: 'rotated'; readonly file: string; readonly rotatedFile: string }
  /** rotation.compress gzipped the rotated file `rotatedFile` to `compressedFile` (absolute paths). */
  | {
      readonly type: 'compressed';
      readonly file: string;
      readonly rotatedFile: string;
      readonly compressedFile: string;
    }
  /** Compressing `rotatedFile` failed: it stays plain, and is compressed at the next start. */
  | { readonly type: 'compression-failed'; readonly file: string; readonly rotatedFile: string; readonly error: Error }
  /**
   * At open, `removed` (absolute) was left by a compression a crash cut short: a `.gz.tmp`, the plain file
   * beside a whole `.gz` of it, or a `.gz` that does not gunzip whole beside its plain file.
   */
  | { readonly type: 'compression-repaired'; readonly file: string; readonly removed: string; readonly reason: string }
  /** Retention deleted these rotated files (base names). */
  | { readonly type: 'retention-deleted'; readonly file: string; readonly deleted: readonly string[] }
  /** Retention could not list the folder or delete some files; it is tried again after the next rotation. */
  | { readonly type: 'retention-failed'; readonly file: string; readonly error: Error }
  /**
   * Recovery at open cut `target` from `fromBytes` down to `toBytes`: data after the committed position
   * (`reason: 'uncommitted'`: never acknowledged, the CP resends it) or a torn last line (`'torn-line'`).
   */
  | {
      readonly type: 'recovery-cut';
      readonly file: string;
      readonly target: string;
      readonly reason: 'uncommitted' | 'torn-line';
      readonly fromBytes: number;
      readonly toBytes: number;
    }
  /** Recovery at open deleted a rotated file that held only data after the committed position. */
  | { readonly type: 'recovery-deleted'; readonly file: string; readonly target: string; readonly bytes: number }
  /** No file of this backend has the committed inode (deleted or moved by hand): only a torn line was repaired. */
  | { readonly type: 'recovery-committed-file-missing'; readonly file: string; readonly committed: SinkPosition }
  /**
   * The committed file is shorter than the committed size (a crash without fsync, or the file was
   * edited): nothing acknowledged is deleted, only torn lines are repaired.
   */
  | {
      readonly type: 'recovery-committed-data-missing';
      readonly file: string;
      readonly target: string;
      readonly committed: SinkPosition;
      readonly sizeBytes: number;
    };

export interface FileSinkOptions {
  /** Path of the active file; made absolute against the working directory. */
  readonly path: string;
  readonly rotation: RotationConfig;
  /**
   * fsync each write before it resolves: the file the data went to, and the folder after the active
   * file was (re)created or rotated. Default false.
   */
  readonly fsync?: boolean;
  /** Clock for rotated names and maxAgeDays. Default: the system clock. */
  readonly now?: () => Date;
  /** Told about rotations, retention and recovery. Must not throw. */
  readonly onEvent?: (e: FileSinkEvent) => void;
  /** A write slower than this shows a slow disk (src/backends/quick-writes.ts); QUICK_WRITE_MS by default. */
  readonly slowWriteMs?: number;
  /** The modes of the files and folders it creates (meshaudit.files); DEFAULT_FILE_MODES by default. */
  readonly modes?: FileModes;
  /**
   * Told which rotated files retention is about to delete, oldest first (the integrity trail leaves its
   * signed markers); when it rejects, retention deletes nothing this time and tries again later.
   */
  readonly beforeRetentionDelete?: (doomed: readonly Doomed[]) => Promise<void>;
  /** Asked which rotated files retention must keep for now, before beforeRetentionDelete (a forwarder's hold). */
  readonly retentionHold?: RetentionHold;
}

/** A write that failed: where it began, and the files it rotated (their new names, in order). */
interface FailedWrite {
  readonly before: SinkPosition;
  rotated: string[];
  /** Inodes of the files this write created (a rotation's new active file): only these may an undo remove. */
  readonly created: Set<number>;
}

interface BackendFile {
  /** Absolute path. */
  readonly file: string;
  readonly size: number;
  /** Rotation time from the name; undefined for the active file. */
  readonly time?: Date;
}

export class FileSink implements Sink {
  readonly key: string;
  private readonly dir: string;
  private readonly base: string;
  private rotation: RotationConfig;
  private readonly fsync: boolean;
  private readonly clock: () => Date;
  private readonly onEvent: (e: FileSinkEvent) => void;
  private readonly beforeRetentionDelete: FileSinkOptions['beforeRetentionDelete'];
  private readonly retentionHold: FileSinkOptions['retentionHold'];
  private readonly rfsOptions: RfsOptions;
  private readonly modes: FileModes;
  /** A file is rotated before a record that would make it larger (Infinity: rotation off). */
  private maxFileBytes: number;
  /**
   * When the active file's records began, for rotation.interval: the time of the write that began it,
   * or at open the file's last modification (a file last written before a boundary rotates at the next write).
   */
  private activeSinceMs = 0;
  /** The rotated file the last rotating write kept for its uncommitted position (see runRetention). */
  private keptForCommit: string | undefined;

  private state: 'new' | 'open' | 'closed' = 'new';
  /** Serialises open/write/close: positions are only meaningful one write at a time. */
  private tail: Promise<unknown> = Promise.resolve();
  private stream: RotatingFileStream | undefined;
  /** The active file rfs writes to, set on each 'open'. */
  private ino = 0;
  private size = 0;
  /**
   * A descriptor of the sink's own on the active file (opened with it): a failed write is cut back
   * through it even when the file was renamed or deleted meanwhile, where no path leads to it.
   */
  private activeFd: number | undefined;
  /** Set by 'rotated' while a write (or a stream start) is in progress: where the active file went. */
  private rotatedFile: string | undefined;
  /** A rotated name is never earlier than this (see `generator`). */
  private nameFloorMs = 0;
  /** A failed write that could not be undone yet: done before anything else is written. */
  private pendingUndo: FailedWrite | undefined;
  /** Another process writes the active file: set once, every later write is refused (see checkWritten). */
  private foreignWriter: string | undefined;
  /**
   * The file the last position this sink returned is in (open, write, reopen, or the start of a new file
   * told by SinkNewFileError): what the writer commits. A write that starts a stream on another file
   * tells so before writing (see write).
   */
  private endedIn = 0;
  /** The folder changed (file created or renamed) since it was last fsynced. */
  private dirSyncDue = false;
  /** Whether a write goes straight to the kernel or through libuv's thread pool (src/backends/quick-writes.ts). */
  private readonly quick: QuickWrites;
  /** Compressions run one after another, beside the writes (see compressRotated). */
  private compressions: Promise<void> = Promise.resolve();
  /** Set by close: compressions not started yet are left to the next start. */
  private compressionStopped = false;

  constructor(opts: FileSinkOptions) {
    this.key = path.resolve(opts.path);
    this.dir = path.dirname(this.key);
    this.base = path.basename(this.key);
    this.rotation = opts.rotation;
    this.fsync = opts.fsync ?? false;
    this.quick = new QuickWrites(!this.fsync, opts.slowWriteMs);
    this.clock = opts.now ?? (() => new Date());
    this.onEvent = opts.onEvent ?? (() => {});
    this.beforeRetentionDelete = opts.beforeRetentionDelete;
    this.retentionHold = opts.retentionHold;
    this.modes = opts.modes ?? DEFAULT_FILE_MODES;
    // No `size`: rotation is decided here (see the top of this file).
    this.rfsOptions = { path: this.dir, mode: this.modes.file };
    this.maxFileBytes = this.checkedMaxFileBytes(this.rotation);
  }

  private checkedMaxFileBytes(rotation: RotationConfig): number {
    if (rotation.enabled && !(rotation.maxSizeBytes >= 1)) {
      throw new Error(`audit file ${this.key}: rotation.maxSizeBytes must be at least 1, got ${rotation.maxSizeBytes}`);
    }
    // Whole bytes: a file of at most 52428.8 bytes holds at most 52428.
    return rotation.enabled ? Math.max(1, Math.floor(rotation.maxSizeBytes)) : Infinity;
  }

  /**
   * Puts a new rotation in force (a config reload), after the writes queued before it: the next write
   * rotates at the new size, and retention runs now under the new limits. The rotated file the last
   * rotating write kept for its commit is kept again: that write may not be committed yet.
   */
  setRotation(rotation: RotationConfig): Promise<void> {
    const maxFileBytes = this.checkedMaxFileBytes(rotation);
    return this.serial(async () => {
      this.rotation = rotation;
      this.maxFileBytes = maxFileBytes;
      if (this.state === 'open') await this.runRetention(this.keptForCommit);
    });
  }

  open(committed?: SinkPosition): Promise<SinkPosition> {
    return this.serial(async () => {
      if (this.state !== 'new') throw new Error(`audit file ${this.key} was already opened`);
      await this.makeFolder();
      await this.repairCompression();
      await this.recover(committed);
      await this.removeEmptyRotated(committed);
      // Names must sort in rotation order across restarts too: with a clock that went back since the
      // last run, a new rotation would otherwise sort before older files and retention would delete it.
      const existing = await listRotatedFiles(this.dir, this.base);
      if (existing.length > 0) this.nameFloorMs = existing[existing.length - 1].time.getTime() + 1;
      await this.startStream();
      this.activeSinceMs = this.size > 0 ? (await fstat(this.activeFd as number)).mtimeMs : this.clock().getTime();
      this.state = 'open';
      // Files left over from before this start (or by a smaller maxRetainedFiles) go now, not at the next rotation.
      await this.runRetention();
      if (this.fsync && this.dirSyncDue) {
        // What recovery cut, renamed or deleted is durable before the first commit names this file.
        await syncDir(this.dir);
        this.dirSyncDue = false;
      }
      return this.endHere();
    });
  }

  write(chunk: Buffer): Promise<SinkPosition> {
    return this.serial(async () => {
      if (this.state !== 'open')
        throw new SinkError(
          `can't write audit file ${this.key}: the sink is ${this.state === 'new' ? 'not open' : 'closed'}`,
        );
      if (chunk.length === 0) return { ino: this.ino, size: this.size };
      if (this.foreignWriter !== undefined)
        throw new SinkError(`can't write audit file ${this.key}: ${this.foreignWriter}`);
      if (this.stream === undefined || this.stream.destroyed) {
        this.stream = undefined;
        await this.startStream();
        await this.runRetention();
        // Another file than the one the last write ended in: its start is committed first (SinkNewFileError).
        if (this.ino !== this.endedIn) {
          const position = this.endHere();
          throw new SinkNewFileError(position, this.key);
        }
      }
      const failed: FailedWrite = { before: { ino: this.ino, size: this.size }, rotated: [], created: new Set() };
      const nowMs = this.clock().getTime();
      try {
        if (this.intervalPassed(nowMs)) await this.rotateNow(failed);
        for (let offset = 0; offset < chunk.length; ) {
          const end = this.nextPartEnd(chunk, offset);
          if (end === offset) {
            await this.rotateNow(failed);
            continue;
          }
          await this.writePart(chunk.subarray(offset, end));
          offset = end;
        }
      } catch (err) {
        throw await this.failWrite(failed, err as Error);
      }
      // Told once the write holds: a rotation a failed write undid is no rotation (a full disk retries
      // a write at a file's size every few seconds).
      for (const rotatedFile of failed.rotated) this.onEvent({ type: 'rotated', file: this.key, rotatedFile });
      // The active file's records start now when this write began it (a rotation, or an empty file).
      if (failed.rotated.length > 0 || failed.before.size === 0) this.activeSinceMs = nowMs;
      // The file that held where this write began holds the committed position until this write is
      // committed: retention keeps it (see runRetention).
      if (failed.rotated.length > 0) {
        this.keptForCommit = path.basename(failed.rotated[0]);
        await this.runRetention(this.keptForCommit);
      }
      return this.endHere();
    });
  }

  /**
   * rotation.interval: whether a UTC boundary (a multiple of the interval since the epoch) passed since
   * the active file's records began. An empty file has nothing to rotate; a clock that stepped back
   * never rotates (its period is not later).
   */
  private intervalPassed(nowMs: number): boolean {
    const intervalMs = this.rotation.intervalMs;
    if (!this.rotation.enabled || intervalMs === undefined || this.size === 0) return false;
    return Math.floor(nowMs / intervalMs) > Math.floor(this.activeSinceMs / intervalMs);
  }

  /**
   * rotation.compress: gzips the rotated file `rotatedFile` (absolute) to `<it>.gz`, after the compressions
   * asked before it. The caller asks only once the file is final: every byte of it acknowledged (recovery
   * may cut a rotated file until the commit after its rotation lands) and, with the integrity trail,
   * digested (the digest covers the uncompressed bytes). The gzip runs beside the writes; only the rename
   * and unlink wait their turn among them, so that retention (which runs inside writes) never deletes a
   * file while its .gz appears. Never rejects: a failure is told (compression-failed) and the file stays
   * plain until the next start compresses it. A file gone (retention) or already compressed is left alone.
   */
  compressRotated(rotatedFile: string): Promise<void> {
    const run = this.compressions.then(() => this.compressNow(rotatedFile));
    this.compressions = run;
    return run;
  }

  /** The plain rotated files of this backend, oldest first (absolute): what is left to compress at a start. */
  async plainRotatedFiles(): Promise<string[]> {
    const files = await listRotatedFiles(this.dir, this.base);
    return files.filter((f) => !f.compressed).map((f) => path.join(this.dir, f.name));
  }

  private async compressNow(file: string): Promise<void> {
    if (this.compressionStopped) return;
    const compressedFile = `${file}${COMPRESSED_SUFFIX}`;
    try {
      const before = await statFile(file);
      if (before === undefined || (await statFile(compressedFile)) !== undefined) return;
      const tmp = await gzipToTemp(file, this.modes.file);
      const renamed = await this.serial(async () => {
        // Deleted by retention (or replaced) while it was read: the copy goes too.
        const now = await statFile(file);
        if (now?.ino !== before.ino || now.size !== before.size) return false;
        await fsp.rename(tmp, compressedFile);
        // The .gz is durable before the only other copy goes.
        await syncDir(this.dir);
        await fsp.unlink(file);
        this.dirSyncDue = true;
        return true;
      });
      if (!renamed) await fsp.rm(tmp, { force: true });
      else this.onEvent({ type: 'compressed', file: this.key, rotatedFile: file, compressedFile });
    } catch (err) {
      this.onEvent({ type: 'compression-failed', file: this.key, rotatedFile: file, error: err as Error });
    }
  }

  /**
   * Repairs what a compression cut short by a crash left, so that each rotated file is counted once: a
   * `.gz.tmp` is removed; a plain file beside a whole `.gz` of it is removed (the unlink did not happen);
   * a `.gz` that does not gunzip whole to the plain file's size is removed, the plain file kept.
   */
  private async repairCompression(): Promise<void> {
    const remove = async (name: string, reason: string): Promise<void> => {
      const removed = path.join(this.dir, name);
      await fsp.unlink(removed);
      this.dirSyncDue = true;
      this.onEvent({ type: 'compression-repaired', file: this.key, removed, reason });
    };
    const names = new Set(await fsp.readdir(this.dir));
    for (const name of names) {
      if (!name.endsWith(COMPRESSING_SUFFIX)) continue;
      const plain = name.slice(0, -COMPRESSING_SUFFIX.length);
      if (timeFromName(this.base, plain) !== undefined) await remove(name, 'a compression cut short');
    }
    const rotated = await listRotatedFiles(this.dir, this.base);
    const plains = new Set(rotated.filter((f) => !f.compressed).map((f) => f.name));
    for (const f of rotated) {
      if (!f.compressed || !plains.has(f.plain)) continue;
      const plainBytes = (await fsp.stat(path.join(this.dir, f.plain))).size;
      if ((await gunzippedBytes(path.join(this.dir, f.name))) === plainBytes) {
        await remove(f.plain, `${f.name} holds it whole`);
      } else await remove(f.name, `it does not gunzip whole to ${f.plain}`);
    }
  }

  /** The position now, as the one returned to the writer. */
  private endHere(): SinkPosition {
    this.endedIn = this.ino;
    return { ino: this.ino, size: this.size };
  }

  /**
   * Where the next part of `chunk` from `offset` ends: after the last whole record that still fits in
   * the active file; `offset` when none fits and the file holds something (rotate first); after the
   * first record when that record alone is larger than a file may be (it goes alone into an empty one).
   */
  private nextPartEnd(chunk: Buffer, offset: number): number {
    const room = this.maxFileBytes - this.size;
    if (chunk.length - offset <= room) return chunk.length;
    const end = room > 0 ? chunk.lastIndexOf(NEWLINE, offset + room - 1) + 1 : 0;
    if (end > offset) return end;
    return this.size > 0 ? offset : chunk.indexOf(NEWLINE, offset) + 1 || chunk.length;
  }

  /**
   * Writes whole records to the active file and checks that they all landed: a small part straight
   * through the sink's own descriptor (an append, as rfs's) while the disk is quick, else through rfs.
   */
  private async writePart(part: Buffer): Promise<void> {
    const stream = this.stream!;
    const before: SinkPosition = { ino: this.ino, size: this.size };
    await this.quick.write(
      part.length,
      () => fs.writeSync(this.activeFd as number, part),
      () => new Promise<void>((resolve, reject) => stream.write(part, (err) => (err ? reject(err) : resolve()))),
      () => this.checkWritten(this.key, before, part.length),
    );
    this.size = before.size + part.length;
  }

  /** Rotates the active file now (rfs renames it and opens a new one), noting where it went in `failed`. */
  private async rotateNow(failed: FailedWrite): Promise<void> {
    this.rotatedFile = undefined;
    try {
      // rfs 3.2's own rotation, as its size option would call it: renamed by the generator, 'rotated'
      // and 'open' emitted. Called between writes, when rfs has nothing in flight.
      await (this.stream as unknown as { rotate(): Promise<void> }).rotate();
    } finally {
      // Renamed, even if opening the new file then failed: the undo must rename it back.
      if (this.rotatedFile !== undefined) failed.rotated.push(this.rotatedFile);
    }
    if (this.rotatedFile === undefined) throw new SinkError(`rotating ${this.key} did not rename it`);
    failed.created.add(this.ino);
  }

  reopen(): Promise<SinkPosition> {
    return this.serial(async () => {
      if (this.state !== 'open')
        throw new SinkError(
          `can't reopen audit file ${this.key}: the sink is ${this.state === 'new' ? 'not open' : 'closed'}`,
        );
      if (this.foreignWriter !== undefined)
        throw new SinkError(`can't reopen audit file ${this.key}: ${this.foreignWriter}`);
      const stream = this.stream;
      this.stream = undefined;
      if (stream !== undefined && !stream.destroyed) {
        // Everything written is acknowledged or in the writer's hands: ending the stream loses nothing.
        await this.endStream(stream);
      }
      // A new stream on the path: rfs opens it for append, creating it when it was moved away; a
      // failure leaves no stream, and the next write starts one (as after a failed write).
      await this.startStream();
      return this.endHere();
    });
  }

  async close(): Promise<void> {
    // The compression under way ends first (it takes its turn among the writes for its rename): a stop
    // leaves no .gz.tmp; the next start compresses what is left.
    this.compressionStopped = true;
    await this.compressions;
    return this.serial(async () => {
      if (this.state === 'closed') return;
      this.state = 'closed';
      const stream = this.stream;
      this.stream = undefined;
      try {
        if (stream === undefined || stream.destroyed) {
          // A failed write whose partial batch could not be cut yet: last chance before the process ends.
          if (this.pendingUndo !== undefined) await this.retryPendingUndo();
          return;
        }
        await this.endStream(stream);
      } finally {
        this.setActiveFd(undefined);
      }
    });
  }

  /** Ends `stream` (flushing what it holds) and waits until its file is closed. */
  private async endStream(stream: RotatingFileStream): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      stream.end((err?: Error | null) =>
        err ? reject(new SinkError(`can't close audit file ${this.key}: ${err.message}`, { cause: err })) : resolve(),
      ),
    );
    await untilClosed(stream);
  }

  /** Replaces the sink's own descriptor of the active file (closing the one it had). */
  private setActiveFd(fd: number | undefined): void {
    const old = this.activeFd;
    // Assigned first: a close that throws must not leave a closed descriptor number in use.
    this.activeFd = fd;
    if (old === undefined) return;
    try {
      fs.closeSync(old);
    } catch {
      // EIO on close: the descriptor is released all the same, and nothing was buffered in it.
    }
  }

  // ---- the stream ----

  /**
   * rfs calls this with null for the active name, and with the rotation time and attempt index 1..999
   * until the name is free. The floor keeps names increasing within this process even when several
   * rotations share a millisecond and retention has deleted an earlier one (which would free a name
   * that sorts before the newest file) or when the clock steps back: retention keeps "the newest" by
   * name, so names must sort in rotation order.
   */
  private readonly generator = (time: number | Date | null, index?: number): string => {
    if (time === null) return this.base;
    const ms = Math.max(new Date(time).getTime(), this.nameFloorMs);
    return rotatedName(this.base, new Date(ms), index ?? 1);
  };

  /** The audit folder, made (with meshaudit.files.dirMode) when it is not there. */
  private async makeFolder(): Promise<void> {
    try {
      await makeDirAsync(this.dir, this.modes);
    } catch (err) {
      const why = whyNotWritable(this.dir) ?? (err as Error).message;
      throw new SinkError(`can't create audit folder ${this.dir}: ${why}`, { cause: err });
    }
  }

  /** Starts a stream on the active file and waits until rfs has opened it. */
  private async startStream(): Promise<void> {
    if (this.pendingUndo !== undefined) await this.retryPendingUndo();
    // Removed by hand (or by a clean-up job) while the sidecar ran: made again, and writing goes on.
    await this.makeFolder();
    const stream = createStream(this.generator, { ...this.rfsOptions });
    // rfs reads its clock through this instance method; rotated names must follow the injected clock.
    // It is first called after rfs's first await, so replacing it here is in time.
    (stream as unknown as { now: () => Date }).now = this.clock;
    // Every rfs error also reaches a waiter (the write callback, the open wait below, end's callback),
    // which handles it; without a listener Node would treat the 'error' event as fatal.
    stream.on('error', () => {});
    stream.on('open', () => {
      // The sink's own descriptor on the very file rfs writes to: through rfs's descriptor where /proc
      // allows (so that a rename between rfs's open and this event cannot give us another file), else
      // by path (rotations happen inside writes, which are serialised). A throw here fails rfs's open
      // or rotation, and so the write, as it should.
      const rfsFd = (stream as unknown as { file?: { fd: number } }).file?.fd;
      // Appending, as rfs's own: a quick write lands at the end even if another process wrote there
      // (checkWritten then sees bytes it did not write) instead of overwriting what that process wrote.
      const fd = fs.openSync(
        rfsFd !== undefined && HAS_PROC_FD ? `/proc/self/fd/${rfsFd}` : this.key,
        fs.constants.O_RDWR | fs.constants.O_APPEND,
      );
      this.setActiveFd(fd);
      // rfs creates it with the mode less the umask; the mode is meshaudit.files.fileMode whatever the
      // umask (and a file an earlier version made with another mode gets it too). Rotated files keep it.
      fs.fchmodSync(fd, this.modes.file);
      const st = fs.fstatSync(fd);
      this.ino = st.ino;
      this.size = st.size;
      this.dirSyncDue = true;
    });
    stream.on('rotated', (rotatedFile: string) => {
      this.rotatedFile = rotatedFile;
      const time = timeFromName(this.base, path.basename(rotatedFile));
      if (time !== undefined) this.nameFloorMs = time.getTime() + 1;
    });
    this.rotatedFile = undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const opened = (): void => {
          stream.off('error', failed);
          resolve();
        };
        const failed = (err: Error): void => {
          stream.off('open', opened);
          reject(err);
        };
        stream.once('open', opened);
        stream.once('error', failed);
      });
    } catch (err) {
      await untilClosed(stream);
      throw new SinkError(`can't open audit file ${this.key}: ${(err as Error).message}`, { cause: err });
    }
    this.stream = stream;
  }

  /** Checks that the whole chunk landed (rfs ignores short writes), then fsyncs it if asked. */
  private async checkWritten(file: string, before: SinkPosition, bytes: number): Promise<void> {
    // By path, on every write: a file renamed, deleted or replaced behind the sink's back (rfs goes
    // on appending to the old inode) fails the write instead of acknowledging records at a path where
    // they are not; failWrite() takes them back out of it. Synchronous: a stat of a path whose inode
    // the kernel holds is a few microseconds, where one through libuv's thread pool costs ~30 µs of
    // CPU on this kind of machine, at every write.
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (st === undefined) throw new SinkError(`${file} is gone (deleted, or renamed?) while it was written`);
    if (st.ino !== before.ino) {
      throw new SinkError(
        `${file} is not the file that was written (inode ${st.ino}, expected ${before.ino}); was it replaced?`,
      );
    }
    if (st.size > before.size + bytes) {
      // Bytes this sink did not write: another process appends to the file. Cutting the file back would
      // destroy what it wrote (another sidecar's acknowledged records, say), so nothing is cut, and
      // nothing more is written until an operator sees to it (health says NOT_SERVING).
      this.foreignWriter =
        `${file} grew by ${st.size - before.size - bytes} bytes that this sidecar did not write: another process ` +
        'writes it (a second sidecar on this audit path, a program appending to it?); nothing more is written ' +
        'to it until a restart, and nothing in it is cut';
      throw new SinkError(this.foreignWriter);
    }
    if (st.size !== before.size + bytes) {
      throw new SinkError(
        `short write: ${st.size - before.size} of ${bytes} bytes reached the file (disk full or file size limit?)`,
      );
    }
    // The sink's own descriptor is on this very inode (checked just above): no open and close per batch.
    if (this.fsync) await fdatasync(this.activeFd as number);
    if (this.fsync && this.dirSyncDue) {
      // A rename or a new file is durable only once its folder is: recovery looks files up by inode.
      await syncDir(this.dir);
      this.dirSyncDue = false;
    }
  }

  /**
   * After a failed write: drop the stream (rfs cannot recover from an error), undo the write, and say
   * what was attempted. The next write starts a new stream. If the undo fails too, it is retried
   * before anything else is written, so new records never follow a partial batch.
   */
  private async failWrite(failed: FailedWrite, cause: Error): Promise<Error> {
    const stream = this.stream;
    this.stream = undefined;
    if (stream !== undefined) {
      stream.destroy();
      // Its descriptor must be closed before we open files again, or a reused descriptor number could
      // be closed under us by rfs.
      await untilClosed(stream);
    }
    let message = `can't write audit file ${this.key}: ${cause.message}`;
    if (this.foreignWriter !== undefined) return new SinkError(message, { cause });
    try {
      await this.undoWrite(failed);
    } catch (err) {
      this.pendingUndo = failed;
      message += `; and can't cut it back to ${failed.before.size} bytes yet (retried before the next write): ${(err as Error).message}`;
    }
    return new SinkError(message, { cause });
  }

  /**
   * Puts the files back as they were before a failed write: the file it began in cut back to where it
   * began; when the write had rotated, the files it created removed and the first one renamed back to
   * the active name, so that a failed write leaves no rotation behind (and no torn or empty rotated
   * file). A crash in the middle leaves a rotated file holding only records from before the write,
   * which recovery handles as any rotated file.
   */
  private async undoWrite(failed: FailedWrite): Promise<void> {
    const { before, rotated, created } = failed;
    if (rotated.length > 0) {
      // By inode, not by name: a file an operator moved to one of these names meanwhile is not ours.
      for (const file of [this.key, ...rotated.slice(1)]) {
        const st = await statFile(file);
        if (st !== undefined && created.has(st.ino)) await fsp.unlink(file);
      }
      const first = await statFile(rotated[0]);
      if (first?.ino === before.ino) {
        if (first.size > before.size) await this.truncate(rotated[0], before.size);
        await fsp.rename(rotated[0], this.key);
        this.dirSyncDue = true;
      }
      failed.rotated = [];
      return;
    }
    await this.cutBack(before);
  }

  private async retryPendingUndo(): Promise<void> {
    const failed = this.pendingUndo!;
    try {
      await this.undoWrite(failed);
    } catch (err) {
      throw new SinkError(
        `can't cut audit file ${this.key} back to ${failed.before.size} bytes after a failed write: ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.pendingUndo = undefined;
  }

  /** Cuts the file with inode `pos.ino` (active or rotated: a failed write may have rotated it) to `pos.size`. */
  private async cutBack(pos: SinkPosition): Promise<void> {
    const fd = this.activeFd;
    const active = fd === undefined ? undefined : await fstat(fd);
    if (fd !== undefined && active?.ino === pos.ino) {
      // The active file, wherever its name went (renamed, deleted): through the sink's own descriptor.
      if (active.size > pos.size) {
        await ftruncate(fd, pos.size);
        if (this.fsync) await fdatasync(fd);
      }
      return;
    }
    const found = await this.findByInode(pos.ino);
    // Gone (deleted by hand): no partial batch is left to follow.
    if (found === undefined || found.size <= pos.size) return;
    await this.truncate(found.file, pos.size);
  }

  /**
   * With fsync, a cut is made durable at once: a cut file that is not written again (a rotated one)
   * would otherwise get its removed tail back after a power loss, in the middle of the audit trail.
   */
  private async truncate(file: string, size: number): Promise<void> {
    const fh = await fsp.open(file, 'r+');
    try {
      await fh.truncate(size);
      if (this.fsync) await fh.sync();
    } finally {
      await fh.close();
    }
  }

  // ---- recovery at open ----

  private async recover(committed: SinkPosition | undefined): Promise<void> {
    if (committed === undefined) {
      await this.repairTornLine(this.key);
      return;
    }
    const found = await this.findByInode(committed.ino);
    if (found === undefined) {
      this.onEvent({ type: 'recovery-committed-file-missing', file: this.key, committed });
      await this.repairTornLine(this.key);
      return;
    }
    if (found.size < committed.size) {
      // Either the tail was lost in a crash or the inode belongs to another file now: deleting newer
      // files could lose acknowledged records, so keep them (the CP's resend may duplicate a few).
      this.onEvent({
        type: 'recovery-committed-data-missing',
        file: this.key,
        target: found.file,
        committed,
        sizeBytes: found.size,
      });
      await this.repairTornLine(found.file);
      if (found.file !== this.key) await this.repairTornLine(this.key);
      return;
    }
    await this.cut(found.file, found.size, committed.size, 'uncommitted');
    if (found.time === undefined) return; // the active file: every rotated file is older
    // Everything of this backend newer than the committed file was written after the committed
    // position: never acknowledged, and resent by the CP.
    for (const f of await listRotatedFiles(this.dir, this.base)) {
      if (f.time.getTime() <= found.time.getTime()) continue;
      const file = path.join(this.dir, f.name);
      const { size } = await fsp.stat(file);
      await fsp.unlink(file);
      this.dirSyncDue = true;
      this.onEvent({ type: 'recovery-deleted', file: this.key, target: file, bytes: size });
    }
    const active = await statFile(this.key);
    if (active !== undefined) await this.cut(this.key, active.size, 0, 'uncommitted');
  }

  /**
   * Deletes empty files under rotated names: rfs creates the new name (and removes it) before it
   * renames the active file there, so a kill in between leaves an empty one. It holds no record; the
   * committed file is kept even if empty (a recovery cut it to a committed size of 0).
   */
  private async removeEmptyRotated(committed: SinkPosition | undefined): Promise<void> {
    for (const f of await listRotatedFiles(this.dir, this.base)) {
      const file = path.join(this.dir, f.name);
      const st = await statFile(file);
      if (st === undefined || st.size > 0 || st.ino === committed?.ino) continue;
      await fsp.unlink(file);
      this.dirSyncDue = true;
      this.onEvent({ type: 'recovery-deleted', file: this.key, target: file, bytes: 0 });
    }
  }

  /** Cuts a torn last line (a crash in the middle of a write): keeps up to the last "\n". */
  private async repairTornLine(file: string): Promise<void> {
    const st = await statFile(file);
    if (st === undefined || st.size === 0) return;
    const fh = await fsp.open(file, 'r');
    let keep = 0;
    try {
      const block = Buffer.alloc(TAIL_BLOCK_BYTES);
      for (let end = st.size; end > 0; ) {
        const start = Math.max(0, end - TAIL_BLOCK_BYTES);
        const { bytesRead } = await fh.read(block, 0, end - start, start);
        const nl = block.subarray(0, bytesRead).lastIndexOf(NEWLINE);
        if (nl >= 0) {
          keep = start + nl + 1;
          break;
        }
        end = start;
      }
    } finally {
      await fh.close();
    }
    await this.cut(file, st.size, keep, 'torn-line');
  }

  private async cut(
    file: string,
    fromBytes: number,
    toBytes: number,
    reason: 'uncommitted' | 'torn-line',
  ): Promise<void> {
    if (fromBytes <= toBytes) return;
    try {
      await this.truncate(file, toBytes);
    } catch (err) {
      throw new SinkError(`can't cut audit file ${file} to ${toBytes} bytes: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.onEvent({ type: 'recovery-cut', file: this.key, target: file, reason, fromBytes, toBytes });
  }

  /** The file of this backend with inode `ino`: the active file, else a rotated one (newest first). */
  private async findByInode(ino: number): Promise<BackendFile | undefined> {
    const active = await statFile(this.key);
    if (active?.ino === ino) return { file: this.key, size: active.size };
    if ((await statFile(this.dir)) === undefined) return undefined; // the folder is gone, and its files
    for (const f of (await listRotatedFiles(this.dir, this.base)).reverse()) {
      const file = path.join(this.dir, f.name);
      const st = await statFile(file);
      if (st?.ino === ino) return { file, size: st.size, time: f.time };
    }
    return undefined;
  }

  // ---- retention ----

  /**
   * With rotation off nothing is deleted: an operator who turned rotation off keeps every file. `keep`
   * (a rotated file's name) is kept whatever the limits say: it holds the committed position while a
   * write that rotated it more than once is not committed yet; the next retention deletes it.
   */
  private async runRetention(keep?: string): Promise<void> {
    if (!this.rotation.enabled) return;
    let deleted: readonly string[];
    try {
      deleted = await applyRetention(
        this.dir,
        this.base,
        this.rotation,
        this.clock(),
        keep,
        this.beforeRetentionDelete,
        this.retentionHold,
      );
    } catch (err) {
      if (err instanceof RetentionError && err.deleted.length > 0) {
        this.onEvent({ type: 'retention-deleted', file: this.key, deleted: err.deleted });
      }
      this.onEvent({ type: 'retention-failed', file: this.key, error: err as Error });
      return;
    }
    if (deleted.length > 0) this.onEvent({ type: 'retention-deleted', file: this.key, deleted });
  }

  /** Runs `fn` after everything queued before it; its error goes to its caller only. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

const fstat = promisify(fs.fstat);
const ftruncate = promisify(fs.ftruncate);
const fdatasync = promisify(fs.fdatasync);

/** Linux: a file's open descriptor can be opened again through /proc, whatever its name is now. */
const HAS_PROC_FD = process.platform === 'linux' && fs.existsSync('/proc/self/fd');

async function statFile(file: string): Promise<fs.Stats | undefined> {
  try {
    return await fsp.stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function untilClosed(stream: RotatingFileStream): Promise<void> {
  if (stream.closed) return Promise.resolve();
  return new Promise((resolve) => stream.once('close', () => resolve()));
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
