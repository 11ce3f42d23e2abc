// One way to replace a small state file durably, for the AccessAudit store and the checkpoint's
// compaction: a temp file beside it, written whole and fsynced, renamed over the file, then the folder
// fsynced (a rename is durable only once its folder is). A crash at any point leaves the old content or
// the new one, never a torn file; a temp file left by a crash is never read, and the next replacement
// overwrites it.
import type * as nodeFs from 'node:fs';
import * as path from 'node:path';

/** The file operations it uses: injected, so that tests can make any of them fail (a crash, a full disk). */
export type DurableFs = Pick<
  typeof nodeFs,
  'mkdirSync' | 'openSync' | 'writeFileSync' | 'fsyncSync' | 'closeSync' | 'renameSync' | 'fchmodSync'
>;

/**
 * A replacement failed. `renamed` false: before the rename, the file is as it was. `renamed` true: only
 * the folder's fsync failed, the new content is in place and only its survival of a power loss is in doubt.
 */
export class ReplaceError extends Error {
  constructor(
    message: string,
    readonly renamed: boolean,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Replaces `file` with `data` (see the top of this file), with `mode` when given (whatever the umask);
 * a folder it must create gets `dirMode` less the umask. Throws ReplaceError.
 */
export function replaceFile(
  fs: DurableFs,
  file: string,
  data: string,
  opts: { mode?: number; dirMode?: number } = {},
): void {
  const dir = path.dirname(file);
  const tmp = `${file}.tmp`;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: opts.dirMode });
    const fd = fs.openSync(tmp, 'w', opts.mode);
    try {
      // Whatever the umask, and whatever mode a temp file left by a crash had.
      if (opts.mode !== undefined) fs.fchmodSync(fd, opts.mode);
      fs.writeFileSync(fd, data); // writes it all, or throws
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    throw new ReplaceError((e as Error).message, false, { cause: e });
  }
  try {
    syncDir(fs, dir);
  } catch (e) {
    throw new ReplaceError(`its folder could not be fsynced: ${(e as Error).message}`, true, { cause: e });
  }
}

/** Makes a rename or a new file in `dir` durable. */
export function syncDir(fs: Pick<DurableFs, 'openSync' | 'fsyncSync' | 'closeSync'>, dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
