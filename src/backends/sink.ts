// The sink interface: a sink only writes what it is given. Deciding what to audit happens before it.
import { UnavailableError } from '../errors';

/** A sink cannot reach its file or folder (a full or read-only disk, a missing folder): retried later. */
export class SinkError extends UnavailableError {}

/**
 * A write found its active file gone (moved or deleted behind the sink's back) and made a new one at
 * its path, writing nothing yet: `position` is where the new file starts. It must be committed before
 * the write is tried again, or a crash after that write leaves a checkpoint naming the old file, and
 * recovery could not tell the new file's records apart from acknowledged ones (the control plane's
 * resend would write them twice).
 */
export class SinkNewFileError extends SinkError {
  constructor(
    readonly position: SinkPosition,
    file: string,
  ) {
    super(`audit file ${file} was made again at its path: its start is committed before the write`);
  }
}

/**
 * Where a sink's committed data ends: the file (by inode, which survives the rename of a rotation)
 * and the byte length of the data in it. Everything written after it is not acknowledged yet.
 */
export interface SinkPosition {
  readonly ino: number;
  readonly size: number;
}

export interface Sink {
  /** Stable key of this sink in the checkpoint: the active file's absolute path. */
  readonly key: string;
  /**
   * Opens the sink. With `committed`, everything written after that position (in that file, and in
   * any file rotated after it) is removed first: it was never acknowledged and the control plane resends
   * it. Without it, only a torn last line is repaired. Returns the position writing starts from.
   */
  open(committed?: SinkPosition): Promise<SinkPosition>;
  /**
   * Appends whole lines (chunk ends with "\n") in one write. Rejects with SinkNewFileError, having
   * written nothing, when the active file had to be made again (see there). Resolves once the data is written, and
   * any rotation it triggered is done, with the position just after it. On failure it rejects, after
   * cutting the file back to the position before this write, and is ready for the same chunk again.
   */
  write(chunk: Buffer): Promise<SinkPosition>;
  /**
   * Reopens the active file at its path (the admin's /reopen_logs, SIGUSR2): after an operator moved it
   * away, a new file is made there. Serialised with writes; resolves with the position writing goes on
   * from, which the writer commits before anything more is written.
   */
  reopen(): Promise<SinkPosition>;
  /** Flushes and closes. */
  close(): Promise<void>;
}
