// Names of rotated audit files, in lumberjack's format so that operators' tooling (and their habits)
// carry over: `audit.log` rotates to `audit-2021-06-07T09-15-18.265.log`, the time being the UTC time
// of the rotation. Pure: no file system, no clock.
import * as path from 'node:path';

/** rotation.compress gzips a rotated file to its name with this suffix, as lumberjack does (`audit-<time>.log.gz`). */
export const COMPRESSED_SUFFIX = '.gz';
/**
 * The signed trail's documents of a rotated file, beside it: its digest, and retention's marker once it is
 * deleted (src/integrity/format.ts). Named here, with the files they follow: the trail listing reads the
 * time of a deleted file from them.
 */
export const DIGEST_SUFFIX = '.digest.json';
export const MARKER_SUFFIX = '.deleted.json';

/** `YYYY-MM-DDTHH-mm-ss.SSS`: lumberjack's backupTimeFormat, colons replaced so the name is portable. */
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})\.(\d{3})$/;
/** Length of a formatted timestamp, so a name can be split without a regexp scan. */
const TIMESTAMP_LENGTH = 'YYYY-MM-DDTHH-mm-ss.SSS'.length;

/** Splits `audit.log` into `audit` and `.log` the way lumberjack does (ext = path.extname). */
function splitBase(activeBase: string): { prefix: string; ext: string } {
  const ext = path.extname(activeBase);
  return { prefix: `${activeBase.slice(0, activeBase.length - ext.length)}-`, ext };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function formatTimestamp(ms: number): string {
  const d = new Date(ms);
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}` +
    `T${pad(d.getUTCHours(), 2)}-${pad(d.getUTCMinutes(), 2)}-${pad(d.getUTCSeconds(), 2)}.${pad(d.getUTCMilliseconds(), 3)}`
  );
}

/**
 * The base name a rotation at `time` gives to the active file `activeBase` (a base name, not a path).
 * `index` is rotating-file-stream's attempt number (1, 2, ... while the previous name exists): attempt n
 * names the file (n - 1) ms later, so a second rotation in the same millisecond keeps lumberjack's
 * format, sorts after the first, and never overwrites it.
 */
export function rotatedName(activeBase: string, time: Date, index: number): string {
  const { prefix, ext } = splitBase(activeBase);
  return `${prefix}${formatTimestamp(time.getTime() + Math.max(0, index - 1))}${ext}`;
}

/**
 * The rotation time written in `fileName` if it is a rotated file of the active file `activeBase`,
 * else undefined (another file, the active file itself, or a timestamp that is not a real UTC time).
 */
export function timeFromName(activeBase: string, fileName: string): Date | undefined {
  const { prefix, ext } = splitBase(activeBase);
  if (fileName.length !== prefix.length + TIMESTAMP_LENGTH + ext.length) return undefined;
  if (!fileName.startsWith(prefix) || !fileName.endsWith(ext)) return undefined;
  const stamp = fileName.slice(prefix.length, prefix.length + TIMESTAMP_LENGTH);
  const m = TIMESTAMP.exec(stamp);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s, ms] = m.map(Number);
  const time = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  // Date.UTC rolls 2021-02-30 over to March: a name whose fields do not survive the round trip is not ours.
  if (formatTimestamp(time) !== stamp) return undefined;
  return new Date(time);
}

/**
 * The rotated name `fileName` stands for, plain (`audit-<time>.log`) or compressed (`audit-<time>.log.gz`),
 * with its rotation time; undefined when it is neither.
 */
export function rotatedFromName(
  activeBase: string,
  fileName: string,
): { readonly plain: string; readonly time: Date; readonly compressed: boolean } | undefined {
  const time = timeFromName(activeBase, fileName);
  if (time !== undefined) return { plain: fileName, time, compressed: false };
  if (!fileName.endsWith(COMPRESSED_SUFFIX)) return undefined;
  const plain = fileName.slice(0, -COMPRESSED_SUFFIX.length);
  const plainTime = timeFromName(activeBase, plain);
  return plainTime === undefined ? undefined : { plain, time: plainTime, compressed: true };
}
