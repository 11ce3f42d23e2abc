// Reading what a digest or a seal covers from an audit file: shared by the sidecar that signs it and
// by `meshaudit verify` that checks it, so both count and hash the same way.
import type * as fsp from 'node:fs/promises';
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
