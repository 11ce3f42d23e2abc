// rotation.compress: a final rotated file (every byte of it acknowledged, and digested when the integrity
// trail is on) is gzipped to `<name>.gz`, lumberjack's name, off the write path. Crash safety comes from
// the order of the steps (FileSink.compressRotated): `<name>.gz.tmp` written and fsynced, renamed to
// `<name>.gz`, the folder fsynced, then the plain file unlinked. A crash leaves a `.gz.tmp` (removed at
// open), or the plain file and a whole `.gz` of it (the plain one removed at open): the file is counted
// once, never twice nor not at all.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { SinkPosition } from '../sink';
import { COMPRESSED_SUFFIX } from './rotation-names';

/** A compression in progress (or cut short by a crash): `<name>.gz.tmp`. */
export const COMPRESSING_SUFFIX = `${COMPRESSED_SUFFIX}.tmp`;

/** Gzips `file` to `<file>.gz.tmp` with `mode`, fsynced; returns that path. Removes it again on failure. */
export async function gzipToTemp(file: string, mode: number): Promise<string> {
  const tmp = `${file}${COMPRESSING_SUFFIX}`;
  try {
    await pipeline(fs.createReadStream(file), zlib.createGzip(), fs.createWriteStream(tmp, { mode }));
    // fsync flushes the file whichever descriptor asks: the stream closed its own.
    const fh = await fsp.open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    return tmp;
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

/** The bytes `file` (a gzip file) holds uncompressed; undefined when it does not gunzip whole. */
export async function gunzippedBytes(file: string): Promise<number | undefined> {
  let bytes = 0;
  const count = new Writable({
    write(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done();
    },
  });
  try {
    await pipeline(fs.createReadStream(file), zlib.createGunzip(), count);
    return bytes;
  } catch {
    // Cut short or corrupt (gzip's CRC-32 and length trailer say so): not a whole copy.
    return undefined;
  }
}

/**
 * Which rotated files become final at a commit, for compression without the integrity trail (which
 * decides the same for its digests): a rotated file may still be cut by recovery until a commit lands
 * in another file than the one the commits were in when it rotated.
 */
export class FinalAfterCommit {
  private pending: string[] = [];

  /** `committedIno`: the file of the position committed at open. */
  constructor(private committedIno: number) {}

  /** The sink rotated the active file to `rotatedFile`. */
  rotated(rotatedFile: string): void {
    this.pending.push(rotatedFile);
  }

  /** A commit landed (undefined: it did not move this sink's position); returns the files final now. */
  committed(position: SinkPosition | undefined): string[] {
    if (position === undefined || position.ino === this.committedIno) return [];
    this.committedIno = position.ino;
    return this.pending.splice(0);
  }
}
