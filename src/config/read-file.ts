// Reading a configuration or rules file, bounded: a regular file only (a FIFO with no writer would block
// start-up forever, a device such as /dev/zero never ends), at most `maxBytes` read (the size on disk is
// not trusted: the file may grow while it is read), and valid UTF-8 (a mis-encoded file would otherwise
// turn into U+FFFD inside names and paths, silently).
import * as fs from 'node:fs';
import { TextDecoder } from 'node:util';

/** Why a file cannot be used; `read` false: it could not even be opened or read (the message says why). */
export class UnusableFileError extends Error {
  constructor(
    message: string,
    readonly read: boolean,
  ) {
    super(message);
  }
}

/** The text of `file`, or UnusableFileError. */
export function readTextFile(file: string, maxBytes: number, opts: { secret?: boolean } = {}): string {
  const bytes = readFileBytes(file, maxBytes, opts);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UnusableFileError('not valid UTF-8', true);
  }
}

/**
 * The bytes of `file`, or UnusableFileError. `secret` (a key, the tokens file): refused when group or
 * others may read it, judged on the file that was opened, not on whatever the path names a moment later.
 */
export function readFileBytes(file: string, maxBytes: number, opts: { secret?: boolean } = {}): Buffer {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw new UnusableFileError((err as Error).message, false);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new UnusableFileError('not a regular file (a FIFO, a device or a directory)', true);
    const exposed = opts.secret ? readableByOthers(st.mode) : undefined;
    if (exposed !== undefined) throw new UnusableFileError(`${exposed}: chmod 600 ${file}`, true);
    const buf = Buffer.allocUnsafe(maxBytes + 1);
    let length = 0;
    while (length <= maxBytes) {
      const n = fs.readSync(fd, buf, length, maxBytes + 1 - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > maxBytes) throw new UnusableFileError(`too large: more than ${maxBytes} bytes`, true);
    return buf.subarray(0, length);
  } catch (err) {
    if (err instanceof UnusableFileError) throw err;
    throw new UnusableFileError((err as Error).message, false);
  } finally {
    fs.closeSync(fd);
  }
}

/** Why a file holding secrets must not be used: group or others may read it; undefined when they may not. */
function readableByOthers(fileMode: number): string | undefined {
  const mode = fileMode & 0o777;
  if ((mode & 0o077) === 0) return undefined;
  return `readable by ${mode & 0o070 ? 'its group' : 'others'} (mode ${mode.toString(8).padStart(4, '0')})`;
}
