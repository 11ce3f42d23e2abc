// Reading what a digest or a seal covers from an audit file: shared by the sidecar that signs it and
// by `meshaudit verify` that checks it, so both count and hash the same way.
import * as fs from 'node:fs';
import type * as fsp from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { type Contents, ContentsCounter, DATE_PREFIX_BYTES, recordDate } from './format';

/** Files are read in pieces of this size: a 100 MB rotated file never sits in memory whole. */
const READ_CHUNK_BYTES = 1024 * 1024;
/** How far back from its end the last record's start is looked for (a record is at most a few KiB). */
const LAST_LINE_WINDOW_BYTES = 1024 * 1024;

/** Feeds `counter` the bytes of `handle` from `counter.sizeBytes` up to `end`; false when the file ends first. */
export async function readInto(handle: fsp.FileHandle, counter: ContentsCounter, end: number): Promise<boolean> {
  const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, Math.max(1, end - counter.sizeBytes)));
  while (counter.sizeBytes < end) {
    const want = Math.min(buffer.length, end - counter.sizeBytes);
    const { bytesRead } = await handle.read(buffer, 0, want, counter.sizeBytes);
    if (bytesRead === 0) return false;
    counter.update(buffer.subarray(0, bytesRead));
  }
  return true;
}

/** The `date` of the first record of the file and of the last one before `end`. */
export async function recordTimes(
  handle: fsp.FileHandle,
  end: number,
): Promise<{ firstRecordAt: string | null; lastRecordAt: string | null }> {
  if (end === 0) return { firstRecordAt: null, lastRecordAt: null };
  const head = Buffer.alloc(Math.min(DATE_PREFIX_BYTES, end));
  await handle.read(head, 0, head.length, 0);
  const from = Math.max(0, end - LAST_LINE_WINDOW_BYTES);
  const tail = Buffer.alloc(end - from);
  const { bytesRead } = await handle.read(tail, 0, tail.length, from);
  const window = tail.subarray(0, bytesRead);
  // The last line ends at `end` with "\n": it starts after the newline before that one.
  const start = window.lastIndexOf(0x0a, window.length - 2) + 1;
  const lastRecordAt = start === 0 && from > 0 ? null : recordDate(window.subarray(start));
  return { firstRecordAt: recordDate(head), lastRecordAt };
}

/** What a digest or seal of the first `end` bytes says, continuing `counter` (a new one by default). */
export async function contentsOf(
  handle: fsp.FileHandle,
  file: string,
  end: number,
  counter = new ContentsCounter(),
): Promise<Omit<Contents, 'identifiers'> | undefined> {
  if (!(await readInto(handle, counter, end))) return undefined;
  return {
    file,
    sizeBytes: counter.sizeBytes,
    sha256: counter.sha256(),
    records: counter.records,
    ...(await recordTimes(handle, end)),
  };
}

/** What the uncompressed bytes of a gzipped rotated file hold, and the SHA-256 of their first `prefixBytes`. */
export interface GunzippedContents extends Omit<Contents, 'identifiers'> {
  readonly endsWithNewline: boolean;
  /** Undefined without prefixBytes, or when the file is shorter. */
  readonly prefixSha256?: string;
}

/**
 * What a digest of the uncompressed bytes of `gzFile` (rotation.compress) says, read as a stream: a
 * gzip file has no random access, so the first and last record's `date` are kept as the bytes go by.
 * Rejects when the file does not gunzip whole.
 */
export async function gunzippedContents(
  gzFile: string,
  file: string,
  prefixBytes?: number,
): Promise<GunzippedContents> {
  const counter = new ContentsCounter();
  let prefixSha256: string | undefined;
  let head = Buffer.alloc(0);
  // The start of the line being read, and of the last whole line: a record's date is in its first bytes.
  let lineStart = Buffer.alloc(0);
  let lastLineStart: Buffer | undefined;
  let lastByte = -1;
  const take = (chunk: Buffer): void => {
    if (head.length < DATE_PREFIX_BYTES) {
      head = Buffer.concat([head, chunk.subarray(0, DATE_PREFIX_BYTES - head.length)]);
    }
    for (let from = 0; ; ) {
      const nl = chunk.indexOf(0x0a, from);
      const end = nl < 0 ? chunk.length : nl;
      if (lineStart.length < DATE_PREFIX_BYTES) {
        lineStart = Buffer.concat([
          lineStart,
          chunk.subarray(from, Math.min(end, from + DATE_PREFIX_BYTES - lineStart.length)),
        ]);
      }
      if (nl < 0) break;
      lastLineStart = lineStart;
      lineStart = Buffer.alloc(0);
      from = nl + 1;
    }
    if (
      prefixBytes !== undefined &&
      counter.sizeBytes < prefixBytes &&
      counter.sizeBytes + chunk.length >= prefixBytes
    ) {
      const cut = prefixBytes - counter.sizeBytes;
      counter.update(chunk.subarray(0, cut));
      prefixSha256 = counter.sha256();
      counter.update(chunk.subarray(cut));
    } else counter.update(chunk);
    if (chunk.length > 0) lastByte = chunk[chunk.length - 1];
  };
  await pipeline(
    fs.createReadStream(gzFile),
    zlib.createGunzip(),
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        take(chunk);
        done();
      },
    }),
  );
  if (prefixBytes === 0) prefixSha256 = new ContentsCounter().sha256();
  const endsWithNewline = lastByte === 0x0a;
  // As recordTimes: the last line is the one that ends the file, whole or torn.
  const last = endsWithNewline ? lastLineStart : lineStart;
  return {
    file,
    sizeBytes: counter.sizeBytes,
    sha256: counter.sha256(),
    records: counter.records,
    firstRecordAt: counter.sizeBytes === 0 ? null : recordDate(head),
    lastRecordAt: counter.sizeBytes === 0 || last === undefined ? null : recordDate(last),
    endsWithNewline,
    ...(prefixSha256 === undefined ? {} : { prefixSha256 }),
  };
}
