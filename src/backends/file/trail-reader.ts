// Reading a file backend's trail back (ReadService.Query): its retained files oldest first, rotated
// (plain or gzipped, as `<rotated name>.gz`) then active, only as far as the checkpoint has committed,
// and a cursor that names a position in them and survives rotation and compression.
//
// A file is named by its START: the rotation time of the file before it (the time in that file's name),
// 0 for the first file ever. Once retention deleted the file before the oldest one retained, its time is
// read from the signed trail, which keeps a digest or a retention marker of every rotated file (their
// names are the rotated file's plus a suffix, in the same folder); without the signed trail, it is 0. The active file keeps its start when a rotation renames it and when it is
// gzipped, where its name and inode change. "The file whose start is S" is the oldest retained file whose
// own time (its name's; the active file's is +infinity) is after S. Once retention deleted that file, the
// same rule finds its successor instead: to tell them apart a cursor also carries a short hash of its
// file's first line, which no later append, rename or compression changes. See docs/protocol.md,
// "Reading the trail back".
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { createGunzip } from 'node:zlib';
import type { SinkPosition } from '../sink';
import { DIGEST_SUFFIX, MARKER_SUFFIX, timeFromName } from './rotation-names';

/** What lumberjack appends to a compressed rotated file's name. */
export const GZIP_SUFFIX = '.gz';
/**
 * How much of a file is read at a time: the bound on what one reader holds of a file beyond the line
 * it is in. 64 KiB: Node's own stream chunk for files.
 */
export const READ_CHUNK_BYTES = 64 * 1024;
/** How much of a first line the file hash covers: enough to tell files apart, bounded for huge lines. */
const FIRST_LINE_HASH_BYTES = 4096;
/** Deleted files' times a CommittedTrail remembers: far more than any retention keeps between two reads. */
const MAX_DELETED_REMEMBERED = 10_000;
/** Hex characters of the first line's SHA-256 a cursor keeps. */
const FIRST_LINE_HASH_CHARS = 16;

/** One retained file of the trail. */
export interface TrailFile {
  /** Base name. */
  readonly name: string;
  readonly path: string;
  /** Its rotation time (ms, from its name); +Infinity for the active file. */
  readonly timeMs: number;
  /**
   * The rotation time of the file before it: retained, or deleted and named by the signed trail's digest
   * or marker; 0 when neither is known (see the top).
   */
  readonly startMs: number;
  readonly gzipped: boolean;
}

/**
 * The retained files of the backend whose active file is `activePath`, oldest first: rotated ones by
 * the time in their name, then the active file. A rotated file present both plain and gzipped (a
 * compression under way) counts once, plain: the plain one is whole until the gzipped one is.
 */
export async function listTrailFiles(activePath: string): Promise<TrailFile[]> {
  const dir = path.dirname(activePath);
  const activeBase = path.basename(activePath);
  const byTime = new Map<number, { name: string; gzipped: boolean }>();
  /** The times of the rotated files the signed trail has a digest or a retention marker of. */
  const signed: number[] = [];
  let active = false;
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    if (!e.isFile()) continue;
    if (e.name === activeBase) {
      active = true;
      continue;
    }
    const suffix = e.name.endsWith(DIGEST_SUFFIX) ? DIGEST_SUFFIX : e.name.endsWith(MARKER_SUFFIX) ? MARKER_SUFFIX : '';
    if (suffix !== '') {
      const time = rotationTimeMs(activePath, e.name.slice(0, -suffix.length));
      if (!Number.isNaN(time)) signed.push(time);
      continue;
    }
    const gzipped = e.name.endsWith(GZIP_SUFFIX);
    const time = timeFromName(activeBase, gzipped ? e.name.slice(0, -GZIP_SUFFIX.length) : e.name);
    if (time === undefined) continue;
    const seen = byTime.get(time.getTime());
    if (seen === undefined || seen.gzipped) byTime.set(time.getTime(), { name: e.name, gzipped });
  }
  const rotated = [...byTime].sort(([a], [b]) => a - b);
  const files: TrailFile[] = [];
  // The oldest file's start: the newest signed file before it (deleted; or retained, and then it is that file).
  const oldestMs = rotated[0]?.[0] ?? Infinity;
  let startMs = 0;
  for (const time of signed) if (time < oldestMs && time > startMs) startMs = time;
  for (const [timeMs, { name, gzipped }] of rotated) {
    files.push({ name, path: path.join(dir, name), timeMs, startMs, gzipped });
    startMs = timeMs;
  }
  if (active) files.push({ name: activeBase, path: activePath, timeMs: Infinity, startMs, gzipped: false });
  return files;
}

/** The time (ms) in the name of a rotated file `name` of the active file `activePath`; NaN for another name. */
export function rotationTimeMs(activePath: string, name: string): number {
  const base = path.basename(name);
  const plain = base.endsWith(GZIP_SUFFIX) ? base.slice(0, -GZIP_SUFFIX.length) : base;
  return timeFromName(path.basename(activePath), plain)?.getTime() ?? Number.NaN;
}

/** The index in `files` of the file whose start is `startMs` (or of its successor, if it is gone); -1: none. */
export function fileAfter(files: readonly TrailFile[], startMs: number): number {
  return files.findIndex((f) => f.timeMs > startMs);
}

/** The hash a cursor names its file by: of the file's first line (without its newline), '' when there is none. */
export function lineHash(line: Buffer): string {
  const head = line.subarray(0, FIRST_LINE_HASH_BYTES);
  return head.length === 0 ? '' : createHash('sha256').update(head).digest('hex').slice(0, FIRST_LINE_HASH_CHARS);
}

/** The file's first line (at most its first 4 KiB, without its newline); empty for an empty file. */
export async function firstLine(file: TrailFile): Promise<Buffer> {
  const head: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of readFrom(file, 0, undefined)) {
    head.push(chunk);
    bytes += chunk.length;
    if (chunk.includes(0x0a) || bytes >= FIRST_LINE_HASH_BYTES) break;
  }
  const all = Buffer.concat(head);
  const end = all.indexOf(0x0a);
  return all.subarray(0, Math.min(end < 0 ? all.length : end, FIRST_LINE_HASH_BYTES));
}

/**
 * The bytes of `file` from `fromOffset` (of the uncompressed data) up to `toOffset` (undefined: its
 * end), in chunks of at most READ_CHUNK_BYTES; a plain file is read through one open handle, so a
 * rotation renaming it, or retention deleting it, midway changes nothing to what is read.
 */
export async function* readFrom(
  file: TrailFile,
  fromOffset: number,
  toOffset: number | undefined,
): AsyncGenerator<Buffer> {
  if (file.gzipped) {
    yield* readGzipped(file.path, fromOffset, toOffset);
    return;
  }
  const handle = await fs.open(file.path, 'r');
  try {
    const end = toOffset ?? (await handle.stat()).size;
    for (let at = fromOffset; at < end; ) {
      const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, end - at));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
      if (bytesRead === 0) return;
      at += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/** A gzipped file's uncompressed bytes from `fromOffset` to `toOffset`: read and skipped up to there. */
async function* readGzipped(file: string, fromOffset: number, toOffset: number | undefined): AsyncGenerator<Buffer> {
  const stream = createReadStream(file, { highWaterMark: READ_CHUNK_BYTES }).pipe(
    createGunzip({ chunkSize: READ_CHUNK_BYTES }),
  );
  let at = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const from = Math.max(0, fromOffset - at);
      const to = toOffset === undefined ? chunk.length : Math.min(chunk.length, toOffset - at);
      at += chunk.length;
      if (to > from) yield chunk.subarray(from, to);
      if (toOffset !== undefined && at >= toOffset) return;
    }
  } finally {
    stream.destroy();
  }
}

/**
 * How far `files[i]` is committed, from the backend's committed position (the file by inode, and the
 * bytes in it): up to that position in its file; whole for the files before it; nothing after it.
 * Undefined: read it whole. A gzipped file has another inode: it is rotated, and committed whole.
 * With each file's inode (-1: gzipped, or gone).
 */
export async function committedEnds(
  files: readonly TrailFile[],
  committed: SinkPosition | undefined,
): Promise<{ ends: Array<number | undefined>; inodes: number[] }> {
  const inodes = await Promise.all(
    files.map((f) =>
      f.gzipped
        ? -1
        : fs.stat(f.path).then(
            (st) => st.ino,
            () => -1,
          ),
    ),
  );
  const at = committed === undefined ? -1 : inodes.indexOf(committed.ino);
  const ends = files.map((f, i) => {
    if (at >= 0) return i < at ? undefined : i === at ? (committed as SinkPosition).size : 0;
    // The committed file is not among them (a file made again at the active path, not committed yet):
    // the rotated files are whole, the active file waits for its first commit.
    return f.timeMs === Infinity ? 0 : undefined;
  });
  return { ends, inodes };
}

/**
 * The committed position of one file backend, as the writer's commits move it, and a way to wait for
 * the next commit. Readers only look: the writer never waits on them.
 */
export class CommittedTrail {
  private position: SinkPosition | undefined;
  private readonly waiting = new Set<() => void>();
  private readonly deletedMs: number[] = [];

  /** `activePath`: the backend's active file; `position`: where it is committed at start-up. */
  constructor(
    readonly activePath: string,
    position?: SinkPosition,
  ) {
    this.position = position;
  }

  /** Where the backend's committed data ends (its file by inode); undefined before the first commit. */
  committed(): SinkPosition | undefined {
    return this.position;
  }

  /** After every commit of the writer: `position` is this backend's when the commit moved it. */
  commit(position: SinkPosition | undefined): void {
    if (position !== undefined) this.position = position;
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const wake of waiting) wake();
  }

  /**
   * Retention deleted these rotated files (their name times, ms). Retention may delete files newer than
   * one it keeps (the file holding the committed position during a write that rotated several times):
   * a reader moving from a file to the next retained one asks whether it skipped any (`deletedBetween`).
   */
  deleted(timesMs: readonly number[]): void {
    this.deletedMs.push(...timesMs);
    if (this.deletedMs.length > MAX_DELETED_REMEMBERED)
      this.deletedMs.splice(0, this.deletedMs.length - MAX_DELETED_REMEMBERED);
  }

  /** Whether retention deleted, since start-up, a file rotated after `afterMs` and before `beforeMs`. */
  deletedBetween(afterMs: number, beforeMs: number): boolean {
    return this.deletedMs.some((t) => t > afterMs && t < beforeMs);
  }

  /** Calls `wake` once, at the next commit; the function returned forgets it. */
  onNextCommit(wake: () => void): () => void {
    this.waiting.add(wake);
    return () => this.waiting.delete(wake);
  }
}

// ---- The cursor ----

/** A position in the trail: the file by its start (and first line), and the bytes of it already read. */
export interface TrailPosition {
  readonly startMs: number;
  /** Bytes of the file's uncompressed data before the position: always the end of a line. */
  readonly offset: number;
  /** firstLineHash of the file; '' when the position is at its very start (nothing to check). */
  readonly hash: string;
}

/** The cursor's JSON, kept short: it travels in every response. */
interface CursorJson {
  s: number;
  o: number;
  h?: string;
}

export function encodeCursor(p: TrailPosition): string {
  const json: CursorJson = { s: p.startMs, o: p.offset, ...(p.hash === '' ? {} : { h: p.hash }) };
  return Buffer.from(JSON.stringify(json)).toString('base64url');
}

/** The position of a cursor, or undefined when it is not one this reader made. */
export function decodeCursor(cursor: string): TrailPosition | undefined {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const { s, o, h } = json as Partial<CursorJson>;
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (!count(s) || !count(o) || (h !== undefined && (typeof h !== 'string' || !/^[0-9a-f]{16}$/.test(h)))) {
    return undefined;
  }
  return { startMs: s, offset: o, hash: h ?? '' };
}
