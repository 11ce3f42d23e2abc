// A forwarder's cursor: the position in the trail after the last record JetStream acknowledged (with every
// record before it), kept in the data directory as `forward-<name>.cursor.json` and replaced atomically
// (src/store/durable-file.ts). It only saves reading again: a cursor behind the stream (a crash before it
// was written) costs records read and skipped, never one published twice (see nats-forwarder.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TrailPosition } from '../backends/file/trail-reader';
import type { FileModes } from '../config/types';
import { replaceFile } from '../store/durable-file';

/** The cursor file of the forwarder `name` in `dataDir`. */
export function cursorFile(dataDir: string, name: string): string {
  return path.join(dataDir, `forward-${name}.cursor.json`);
}

/** What the file holds. */
interface CursorJson {
  startMs: number;
  offset: number;
  hash: string;
}

/**
 * The cursor in `file`; undefined when there is none yet. A file that is not a cursor (edited, or from
 * another version) throws: its caller starts from the oldest file, and the stream's last messages keep
 * what is already there from being published twice.
 */
export function readCursor(file: string): TrailPosition | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const json = JSON.parse(text) as Partial<CursorJson>;
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (!count(json.startMs) || !count(json.offset) || typeof json.hash !== 'string') {
    throw new Error(`${file} is not a forwarder cursor: ${text.slice(0, 200)}`);
  }
  return { startMs: json.startMs, offset: json.offset, hash: json.hash };
}

/** Replaces the cursor file with `position` (fsynced, then renamed over it). Throws ReplaceError. */
export function writeCursor(file: string, position: TrailPosition, modes: FileModes): void {
  const json: CursorJson = { startMs: position.startMs, offset: position.offset, hash: position.hash };
  replaceFile(fs, file, `${JSON.stringify(json)}\n`, { mode: modes.file, dirMode: modes.dir });
}
