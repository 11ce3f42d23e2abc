// Retention of rotated audit files, by directory scan. rotating-file-stream's own `maxFiles` only
// knows the files listed in its history file (files rotated before a restart, or by another version,
// are never deleted) and it has no age limit, so lumberjack's rules are applied here, to every file
// in the folder whose name is a rotated name of this backend: keep the newest maxRetainedFiles, and
// delete those whose name's time is older than maxAgeDays. Nothing else in the folder is touched.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { RotationConfig } from '../../config/types';
import { rotatedFromName } from './rotation-names';

const MS_PER_DAY = 24 * 60 * 60 * 1000;

export interface RotatedFile {
  /** Base name, e.g. `audit-2021-06-07T09-15-18.265.log` (or `...log.gz`, compressed). */
  readonly name: string;
  /** The rotated name it is of: `name`, or `name` without `.gz` when compressed. */
  readonly plain: string;
  readonly compressed: boolean;
  /** The rotation time written in the name. */
  readonly time: Date;
}

/**
 * Rotated files of `activeBase` in `dir` (regular files only, compressed ones included), oldest first by
 * the time in their name.
 */
export async function listRotatedFiles(dir: string, activeBase: string): Promise<RotatedFile[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  const files: RotatedFile[] = [];
  for (const e of entries) {
    if (!e.isFile()) continue;
    const rotated = rotatedFromName(activeBase, e.name);
    if (rotated !== undefined) files.push({ name: e.name, ...rotated });
  }
  // Names encode the time to the millisecond and two rotations never share a name, so this order is total
  // (but for a file and its .gz, which are one rotated file).
  return files.sort((a, b) => a.time.getTime() - b.time.getTime());
}

/** The files of `files` that are not empty (a file gone meanwhile is left out). */
async function withRecords(dir: string, files: RotatedFile[]): Promise<RotatedFile[]> {
  const out: RotatedFile[] = [];
  for (const f of files) {
    try {
      if ((await fs.stat(path.join(dir, f.name))).size > 0) out.push(f);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return out;
}

/** Thrown when some deletions failed; `deleted` still lists those that succeeded. */
export class RetentionError extends Error {
  constructor(
    readonly deleted: readonly string[],
    readonly failures: ReadonlyArray<{ readonly file: string; readonly error: Error }>,
  ) {
    super(failures.map((f) => `can't delete rotated audit file ${f.file}: ${f.error.message}`).join('; '));
    this.name = 'RetentionError';
  }
}

/** A rotated file retention is about to delete, and the limit that deletes it. */
export interface Doomed {
  /** Its plain rotated name, whether it is compressed or not (the name its digest is of). */
  readonly name: string;
  readonly reason: string;
}

/**
 * Asked which of the files retention would delete it must keep for now (a forwarder that has not read them
 * yet): their names, a subset of `doomed`'s. Rejecting, it holds nothing back: retention's limits win.
 */
export type RetentionHold = (doomed: readonly Doomed[]) => Promise<ReadonlySet<string>>;

/**
 * Deletes the rotated files of `activeBase` in `dir` that retention no longer keeps, and returns their
 * base names. `hold` is asked first which of them to keep for now; `beforeDelete` is told then (the
 * integrity trail leaves its markers); when it throws, nothing is deleted. A failed scan rejects with its error; failed deletions do not stop the others and reject
 * with a RetentionError once all were tried. A file already gone (deleted concurrently) is not an error.
 */
export async function applyRetention(
  dir: string,
  activeBase: string,
  limits: Pick<RotationConfig, 'maxRetainedFiles' | 'maxAgeDays'>,
  now: Date,
  keep?: string,
  beforeDelete?: (doomed: readonly Doomed[]) => Promise<void>,
  hold?: RetentionHold,
): Promise<string[]> {
  let files: RotatedFile[];
  try {
    // An empty rotated file holds no record: counting it would push one that does out early. None is
    // made any more (a failed write never rotates), but files from before may be there.
    files = await withRecords(dir, await listRotatedFiles(dir, activeBase));
  } catch (err) {
    throw new Error(`can't list audit folder ${dir} for retention: ${(err as Error).message}`, { cause: err });
  }
  // A rotated file and its .gz are one file (both are there only between a compression's rename and
  // unlink, or after a crash there): counted once, deleted together, named by the plain name.
  const plains = [...new Set(files.map((f) => f.plain))];
  const doomed = new Map<string, string>();
  if (limits.maxRetainedFiles > 0) {
    for (const plain of plains.slice(0, Math.max(0, plains.length - limits.maxRetainedFiles))) {
      doomed.set(plain, `maxRetainedFiles: ${limits.maxRetainedFiles}`);
    }
  }
  if (limits.maxAgeDays > 0) {
    const cutoffMs = now.getTime() - limits.maxAgeDays * MS_PER_DAY;
    for (const f of files) if (f.time.getTime() < cutoffMs) doomed.set(f.plain, `maxAgeDays: ${limits.maxAgeDays}`);
  }
  if (keep !== undefined) doomed.delete(keep);
  const list = (): Doomed[] =>
    plains.filter((p) => doomed.has(p)).map((name) => ({ name, reason: doomed.get(name) as string }));
  if (doomed.size > 0 && hold !== undefined) {
    const held = await hold(list()).catch(() => new Set<string>());
    for (const name of held) doomed.delete(name);
  }
  if (doomed.size > 0 && beforeDelete !== undefined) await beforeDelete(list());
  const deleted: string[] = [];
  const failures: Array<{ file: string; error: Error }> = [];
  for (const f of files) {
    if (!doomed.has(f.plain)) continue;
    const file = path.join(dir, f.name);
    try {
      await fs.unlink(file);
      deleted.push(f.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failures.push({ file, error: err as Error });
    }
  }
  if (failures.length > 0) throw new RetentionError(deleted, failures);
  return deleted;
}
