// Following a file backend's committed trail: every committed line in file order, from a position (or the
// oldest retained file), across rotations and compressed files, and, when following, on to what is
// committed later. ReadService.Query and the forwarders read the trail through this one loop.
//
// The follower only reads files and watches the writer's commits (CommittedTrail): the writer never
// waits on it. It holds one read buffer (FOLLOW_CHUNK_BYTES), the partial line at its end, and one open
// handle of the plain file it is in, kept across commits (also while it waits: a rotation only renames the
// file, and the next commit moves the follower on), so that following the active file costs one read per
// commit rather than an open, a stat and a close.
//
// What the writer committed a moment ago (FRESH_BYTES) is read synchronously: those bytes are in the page
// cache (the writer's own write put them there), so the read is a copy (~16 µs for 256 KiB here), where a
// read through libuv's thread pool costs ~60 µs of CPU on this kind of machine, whatever its size. Older
// files, and a follower far behind, whose bytes may have left the cache, are read asynchronously.
import { readSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { MeshauditError } from '../../errors';
import {
  type CommittedTrail,
  committedEnds,
  encodeCursor,
  fileAfter,
  firstLine,
  lineHash,
  listTrailFiles,
  readFrom,
  type TrailFile,
  type TrailPosition,
} from './trail-reader';

/**
 * Bytes read at a time from a plain file: a commit's worth of records (a control plane's window of 800
 * records of ~350 bytes) in one read. The bound on what a follower holds beyond the line it is in.
 */
export const FOLLOW_CHUNK_BYTES = 256 * 1024;

/** Bytes behind the committed end that count as just written (read synchronously): a few commits' worth. */
const FRESH_BYTES = 4 * FOLLOW_CHUNK_BYTES;

/** The file a line is in, as a cursor names it (see trail-reader.ts): valid during the visitor's call only. */
export interface FollowedFile {
  readonly startMs: number;
  /** The hash of the file's first line. */
  readonly hash: string;
}

export interface LineVisitor {
  /**
   * One committed line: `data[start, end)`, without its newline; `after` is the offset right after the
   * newline in `file`. Returns true when `flush()` must be awaited before the next line. `data` is valid
   * during the call only (the follower reads into it again).
   */
  line(data: Buffer, start: number, end: number, file: FollowedFile, after: number): boolean;
  /** Awaited when `line` returned true, and each time what is committed has been read. */
  flush(): Promise<void>;
}

export interface FollowOptions {
  /** Go on with what is committed later (until aborted); false: end once what is committed is read. */
  readonly follow: boolean;
  /** Aborted: the follower returns at the next line, or at once while it waits for a commit. */
  readonly signal: AbortSignal;
}

/**
 * The position to follow from is in a file retention has deleted, or files were deleted before they were
 * read: the records in them are gone. `oldest` is the first position still held (undefined: none).
 */
export class TrailGoneError extends MeshauditError {
  readonly kind = 'out-of-range';

  constructor(
    message: string,
    readonly oldest: TrailPosition | undefined,
  ) {
    super(message);
  }
}

/**
 * Calls `visitor.line` with every committed line from `from` (undefined: the start of the oldest retained
 * file) in order; with `follow`, waits for later commits until aborted. Returns the position after the
 * last line read. Throws TrailGoneError when `from`'s file is gone or files were deleted unread.
 */
export async function followTrail(
  trail: CommittedTrail,
  from: TrailPosition | undefined,
  visitor: LineVisitor,
  opts: FollowOptions,
): Promise<TrailPosition> {
  const follower = new Follower(trail, visitor, opts.signal);
  try {
    return await follower.run(from, opts.follow);
  } finally {
    await follower.close();
  }
}

/** Where the follower reads: the file by its start, the bytes of it read, the hash of its first line once known. */
interface Reading extends FollowedFile {
  startMs: number;
  offset: number;
  hash: string;
  /** The inode of the file while it is plain (-1: not known yet, or gzipped). */
  ino: number;
  /** At the start of the file after one read whole (startMs is that file's time). */
  afterFile: boolean;
}

class Follower {
  private readonly buffer = Buffer.allocUnsafe(FOLLOW_CHUNK_BYTES);
  /** The open plain file being read, by inode. */
  private open: { handle: fs.FileHandle; ino: number } | undefined;

  constructor(
    private readonly trail: CommittedTrail,
    private readonly visitor: LineVisitor,
    private readonly signal: AbortSignal,
  ) {}

  async run(from: TrailPosition | undefined, follow: boolean): Promise<TrailPosition> {
    const at = await this.resolve(from);
    const position = (): TrailPosition => ({ startMs: at.startMs, offset: at.offset, hash: at.hash });
    for (;;) {
      // Watched before reading: a commit landing while the files are read still wakes the follower.
      let wake: (() => void) | undefined;
      let committedSince = false;
      const forget = this.trail.onNextCommit(() => {
        committedSince = true;
        wake?.();
      });
      try {
        const next = await this.readCommitted(at).catch(async (err: unknown) => {
          // The lines read before a gap are records still held: flushed (a Query sends them, with their
          // cursor) before the error about the files after them.
          if (err instanceof TrailGoneError) await this.visitor.flush();
          throw err;
        });
        if (this.signal.aborted) return position();
        if (next === 'again') continue;
        await this.visitor.flush();
        if (!follow || this.signal.aborted) return position();
        if (!committedSince) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              this.signal.removeEventListener('abort', done);
              resolve();
            };
            wake = done;
            this.signal.addEventListener('abort', done);
          });
        }
        if (this.signal.aborted) return position();
      } finally {
        forget();
      }
    }
  }

  async close(): Promise<void> {
    await this.closeFile();
  }

  private async closeFile(): Promise<void> {
    const open = this.open;
    this.open = undefined;
    await open?.handle.close();
  }

  /** The first position: `from` (checked to still be held), or the start of the oldest file. */
  private async resolve(from: TrailPosition | undefined): Promise<Reading> {
    const files = await listTrailFiles(this.trail.activePath);
    if (from === undefined) return { startMs: files[0]?.startMs ?? 0, offset: 0, hash: '', ino: -1, afterFile: false };
    const i = fileAfter(files, from.startMs);
    if (i < 0 || (from.hash !== '' && lineHash(await firstLine(files[i])) !== from.hash)) {
      throw await trailGone(files, POSITION_GONE);
    }
    // At a file's very start no line has been named by the cursor's start yet: the listing's, which may
    // know more (a deleted file before it, named by the signed trail), names the file from here on.
    return { ...from, startMs: from.offset === 0 ? files[i].startMs : from.startMs, ino: -1, afterFile: false };
  }

  /**
   * Reads the file of `at` as far as it is committed. 'again' when there is more to read at once (that
   * file is whole and done, and `at` names the next one; or it moved meanwhile); 'caught-up' when what is
   * committed is read.
   */
  private async readCommitted(at: Reading): Promise<'again' | 'caught-up'> {
    const committed = this.trail.committed();
    let file: TrailFile;
    let end: number | undefined;
    let last: boolean;
    let fresh = false;
    if (committed !== undefined && at.ino >= 0 && committed.ino === at.ino) {
      // Still in the file being written: no need to look at the folder.
      if (at.offset >= committed.size) return 'caught-up';
      fresh = committed.size - at.offset <= FRESH_BYTES;
      file = { name: '', path: this.trail.activePath, timeMs: Infinity, startMs: at.startMs, gzipped: false };
      end = committed.size;
      last = true;
    } else {
      const files = await listTrailFiles(this.trail.activePath);
      const i = fileAfter(files, at.startMs);
      if (i < 0) return 'caught-up';
      file = files[i];
      // Retention deleted the file being read (a follower that fell behind): said, not skipped.
      if (at.offset > 0 && at.hash !== '' && lineHash(await firstLine(file)) !== at.hash) {
        throw await trailGone(files, POSITION_GONE);
      }
      // Files between the one read last and this one were deleted before they were read: said too.
      if (at.afterFile && this.trail.deletedBetween(at.startMs, file.timeMs)) {
        throw await trailGone(
          files.slice(i),
          'retention deleted audit files after the last one read before they were read',
        );
      }
      const { ends, inodes } = await committedEnds(files, committed);
      end = ends[i];
      // Nothing committed in it: the file after the committed one, or a rotation landed between the
      // listing and the stats (the active file's inode is then the new file's, under the old one's start).
      // Bound to no inode, the follower looks at the folder again at the next commit.
      if (end === 0) {
        at.ino = -1;
        return 'caught-up';
      }
      at.ino = inodes[i];
      last = end !== undefined;
    }
    try {
      await this.readLines(file, at, end, fresh);
    } catch (err) {
      // Renamed or gzipped between the listing and the open: looked up again.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        at.ino = -1;
        return 'again';
      }
      throw err;
    }
    if (last || this.signal.aborted) return 'caught-up';
    // The file is whole and read: on to the one after it.
    await this.closeFile();
    at.startMs = file.timeMs;
    at.offset = 0;
    at.hash = '';
    at.ino = -1;
    at.afterFile = true;
    return 'again';
  }

  /**
   * Reads `file` from `at.offset` to `end` (undefined: its end), line by line, to the visitor; `fresh`:
   * the bytes were just committed to the active file (read synchronously, see the top).
   */
  private async readLines(file: TrailFile, at: Reading, end: number | undefined, fresh: boolean): Promise<void> {
    let rest: Buffer | undefined;
    const chunks = file.gzipped ? readFrom(file, at.offset, end) : this.readPlain(file, at, end, fresh);
    for await (const chunk of chunks) {
      const data = rest === undefined ? chunk : Buffer.concat([rest, chunk]);
      let lineStart = 0;
      for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, lineStart)) {
        if (at.offset === 0) {
          at.hash = lineHash(data.subarray(lineStart, nl));
          at.afterFile = false;
        }
        at.offset += nl + 1 - lineStart;
        // Synchronous per line (no promise each): only a visitor that asks for it is awaited.
        const full = this.visitor.line(data, lineStart, nl, at, at.offset);
        lineStart = nl + 1;
        if (full) await this.visitor.flush();
        if (this.signal.aborted) return;
      }
      // A line cut by the chunk's end waits for the next chunk (a record is bounded by the limits); copied,
      // since the chunk is read into again.
      rest = lineStart < data.length ? Buffer.from(data.subarray(lineStart)) : undefined;
    }
  }

  /**
   * The bytes of plain `file` from `at.offset` to `end`, through the handle kept open for it (opened by
   * path and checked by inode: a file found with another inode is ENOENT, looked up again).
   */
  private async *readPlain(
    file: TrailFile,
    at: Reading,
    end: number | undefined,
    fresh: boolean,
  ): AsyncGenerator<Buffer> {
    if (this.open === undefined || this.open.ino !== at.ino || at.ino < 0) {
      await this.closeFile();
      const handle = await fs.open(file.path, 'r');
      const { ino } = await handle.stat().catch(async (err: unknown) => {
        await handle.close();
        throw err;
      });
      this.open = { handle, ino };
      if (at.ino >= 0 && ino !== at.ino) {
        await this.closeFile();
        throw Object.assign(new Error(`${file.path} is another file now`), { code: 'ENOENT' });
      }
      at.ino = ino;
    }
    const { handle } = this.open;
    const stop = end ?? (await handle.stat()).size;
    for (let offset = at.offset; offset < stop; ) {
      const length = Math.min(this.buffer.length, stop - offset);
      const bytesRead = fresh
        ? readSync(handle.fd, this.buffer, 0, length, offset)
        : (await handle.read(this.buffer, 0, length, offset)).bytesRead;
      if (bytesRead === 0) return;
      offset += bytesRead;
      yield this.buffer.subarray(0, bytesRead);
    }
  }
}

const POSITION_GONE = 'the cursor points into an audit file retention has deleted';

/** TrailGoneError naming the oldest position held: its first record's date and a cursor for it. */
async function trailGone(files: readonly TrailFile[], why: string): Promise<TrailGoneError> {
  for (const f of files) {
    const line = await firstLine(f);
    if (line.length === 0) continue;
    let date = 'unknown';
    try {
      date = String((JSON.parse(line.toString('utf8')) as { date?: unknown }).date);
    } catch {
      // A line that is not a record: its date is not known; its cursor still is.
    }
    const oldest = { startMs: f.startMs, offset: 0, hash: lineHash(line) };
    return new TrailGoneError(
      `${why}; the oldest record held is from ${date}: resume with cursor ${encodeCursor(oldest)}`,
      oldest,
    );
  }
  return new TrailGoneError(`${why}; no record is held now`, undefined);
}
