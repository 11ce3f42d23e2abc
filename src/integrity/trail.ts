// The tamper-evident trail of one file backend (meshaudit.integrity): the sidecar's side of
// src/integrity/format.ts. It follows what the writer commits, not what it writes, so that nothing it
// signs can be cut back by recovery after a crash:
// - a rotated file is digested once the commit after its rotation lands (every byte of it acknowledged),
//   in rotation order, each digest linked to the one before;
// - the active file is sealed every sealIntervalSeconds (idle or not), at start-up and at a graceful stop,
//   over its committed bytes, hashed as they are committed (read back once, in pieces: never the whole file
//   again);
// - retention's deletions get a signed marker before the file goes.
// Every document is written durably (a temp file renamed over it) and copied to `copyTo` when set. A
// failure is told (onEvent) and never stops writing or acknowledging: the trail is evidence about the
// audit files, and losing a seal is better than refusing records.
import type * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Doomed } from '../backends/file';
import { COMPRESSED_SUFFIX, rotatedFromName, timeFromName } from '../backends/file';
import type { FileModes } from '../backends/file-modes';
import type { SinkPosition } from '../backends/sink';
import { replaceFile } from '../store/durable-file';
import {
  type ChainLink,
  ContentsCounter,
  DIGEST_KIND,
  DIGEST_SUFFIX,
  type Digest,
  digestName,
  linkTo,
  MARKER_KIND,
  markerName,
  type RetentionMarker,
  SEAL_KIND,
  type Seal,
  type SequenceRange,
  mismatchName,
  sealName,
  signDocument,
} from './format';
import { contentsOf, gunzippedContents, readInto, recordTimes } from './read-contents';

/** What the trail did, or could not do, for the process to log. */
export type TrailEvent =
  | { readonly type: 'digest-written'; readonly file: string; readonly records: number }
  | { readonly type: 'marker-written'; readonly file: string; readonly reason: string }
  | { readonly type: 'failed'; readonly what: string; readonly error: Error }
  /** At start-up the active file no longer held what its last seal sealed: that seal was kept as `evidence`. */
  | { readonly type: 'seal-mismatch'; readonly file: string; readonly evidence: string }
  /** The active file is shorter than what was committed to it: cut behind the sidecar's back. */
  | { readonly type: 'active-file-shorter'; readonly file: string; readonly committed: number; readonly found: number };

export interface TrailOptions {
  /** The backend's active file, absolute. */
  readonly activePath: string;
  readonly zone: string;
  /** The Ed25519 private key that signs. */
  readonly key: crypto.KeyObject;
  readonly sealIntervalMs: number;
  /** A second folder receiving every document as well (its own sub-folder per backend: copyFolder). */
  readonly copyTo?: string;
  readonly modes: FileModes;
  readonly now?: () => Date;
  /** Must not throw. */
  readonly onEvent?: (e: TrailEvent) => void;
}

/** Where `copyTo` keeps one backend's documents: the active file's path with "/" made "_". */
export function copyFolder(copyTo: string, activePath: string): string {
  return path.join(copyTo, activePath.replace(/^\/+/, '').replace(/\//g, '_'));
}

/** The active file as hashed so far. */
interface ActiveState {
  readonly ino: number;
  counter: ContentsCounter;
  /** The identifiers whose batches were committed while it was active. */
  identifiers: Map<string, SequenceRange>;
}

/** A rotated file waiting for the commit that makes every byte of it acknowledged. */
interface Pending {
  /** The plain rotated name's path. */
  readonly path: string;
  /** Only `<path>.gz` is there (rotation.compress while integrity was off): its uncompressed bytes are digested. */
  readonly compressed?: boolean;
  /** Filled at that commit: the identifiers of the batches it holds. */
  identifiers?: Map<string, SequenceRange>;
}

export class IntegrityTrail {
  private readonly dir: string;
  private readonly base: string;
  private readonly now: () => Date;
  private readonly onEvent: (e: TrailEvent) => void;
  /** Serialises everything that reads the files or writes documents. */
  private tail: Promise<unknown> = Promise.resolve();
  /** The newest digest: what the next digest and every seal link to. */
  private head: ChainLink | null = null;
  private active: ActiveState | undefined;
  private pending: Pending[] = [];
  private position: SinkPosition | undefined;
  /** Digests queued and not written yet: no seal is made meanwhile (it would link to an older head). */
  private digestsDue = 0;
  /** The last committed sequence of each identifier: where its range in the next file starts. */
  private readonly lastSeqs = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: TrailOptions) {
    this.dir = path.dirname(opts.activePath);
    this.base = path.basename(opts.activePath);
    this.now = opts.now ?? (() => new Date());
    this.onEvent = opts.onEvent ?? (() => {});
  }

  /**
   * Takes the chain up after the sink opened (recovery done) and its position was committed: digests
   * every rotated file newer than the newest digest, hashes the active file up to `position`, seals it,
   * and seals again every sealIntervalSeconds.
   */
  open(position: SinkPosition, seqs: ReadonlyMap<string, number>): Promise<void> {
    for (const [key, seq] of seqs) this.lastSeqs.set(key, seq);
    this.position = position;
    return this.serial(async () => {
      const names = await fsp.readdir(this.dir);
      // The newest digest, whether or not retention has deleted its file since: the chain goes on from it.
      const digested = this.byRotation(
        names.map((n) => (n.endsWith(DIGEST_SUFFIX) ? n.slice(0, -DIGEST_SUFFIX.length) : '')),
      );
      const newest = digested[digested.length - 1];
      if (newest !== undefined) {
        this.head = linkTo(digestName(newest), await fsp.readFile(path.join(this.dir, digestName(newest))));
      }
      // Rotated after it, before a crash (or before integrity was turned on), and never digested:
      // recovery has cut what was not acknowledged, so each is final now.
      const newestMs = newest === undefined ? -1 : (timeFromName(this.base, newest) as Date).getTime();
      // A compressed one counts (gzipped while integrity was off): its plain name is digested, from the .gz.
      const present = new Set(names);
      const rotated = names.map((n) => rotatedFromName(this.base, n)?.plain ?? '');
      const after = this.byRotation([...new Set(rotated)]).filter(
        (n) => (timeFromName(this.base, n) as Date).getTime() > newestMs,
      );
      for (const name of after) await this.digest({ path: path.join(this.dir, name), compressed: !present.has(name) });
      this.active = { ino: position.ino, counter: new ContentsCounter(), identifiers: new Map() };
      await this.takeUpSeal(this.active);
      await this.seal('open');
      this.timer = setInterval(() => void this.serial(() => this.seal('open')), this.opts.sealIntervalMs);
      this.timer.unref();
    });
  }

  /** The sink renamed the active file to `rotatedPath`: digested once the commit after it lands. */
  rotated(rotatedPath: string): void {
    this.pending.push({ path: rotatedPath });
  }

  /** A group was committed: this sink's position, and the last sequence of each identifier it completes. */
  committed(position: SinkPosition | undefined, seqs: ReadonlyMap<string, number>): void {
    if (position === undefined || this.closed) return;
    this.position = position;
    const ranges = new Map<string, SequenceRange>();
    for (const [key, seq] of seqs) {
      ranges.set(key, { firstSeq: (this.lastSeqs.get(key) ?? 0) + 1, lastSeq: seq });
      this.lastSeqs.set(key, seq);
    }
    const active = this.active;
    if (active === undefined) return;
    if (position.ino === active.ino) {
      merge(active.identifiers, ranges);
      return;
    }
    // The committed position is in another file: every file rotated before it is final. The group that
    // rotated has records on both sides of the rotation: its ranges go to both (to the batch).
    const done = this.pending.splice(0);
    done.forEach((p, i) => {
      p.identifiers = i === 0 ? merge(active.identifiers, ranges) : new Map(ranges);
    });
    this.active = { ino: position.ino, counter: new ContentsCounter(), identifiers: new Map(ranges) };
    const previous = active;
    this.digestsDue += done.length;
    void this.serial(async () => {
      for (const p of done) {
        await this.digest(p, previous);
        this.digestsDue--;
      }
    });
  }

  /** Retention is about to delete these rotated files: a signed marker for each, first. */
  beforeDelete(doomed: readonly Doomed[]): Promise<void> {
    return this.serial(async () => {
      for (const { name, reason } of doomed) {
        const digestFile = path.join(this.dir, digestName(name));
        let digest: ChainLink | null = null;
        try {
          digest = linkTo(digestName(name), await fsp.readFile(digestFile));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
        const marker: Omit<RetentionMarker, 'signature' | 'keyId'> = {
          kind: MARKER_KIND,
          zone: this.opts.zone,
          file: name,
          digest,
          reason,
          signedAt: this.now().toISOString(),
        };
        // A marker that cannot be written stops the deletion (the caller's rejection): a file gone
        // without one would read as tampering.
        this.write(markerName(name), signDocument<RetentionMarker>(marker, this.opts.key), true);
        this.onEvent({ type: 'marker-written', file: name, reason });
      }
    });
  }

  /** Seals the active file one last time (`closed`): after the writer closed, nothing more is written. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.serial(() => this.seal('closed'));
  }

  /** Digests a final rotated file, continuing `from` (the active state that hashed it) when it is that file. */
  private async digest(p: Pending, from?: ActiveState): Promise<void> {
    const name = path.basename(p.path);
    try {
      if (p.compressed === true) {
        const { endsWithNewline: _, ...contents } = await gunzippedContents(`${p.path}${COMPRESSED_SUFFIX}`, name);
        this.writeDigest(p, contents);
        return;
      }
      const handle = await fsp.open(p.path, 'r');
      try {
        const { ino, size } = await handle.stat();
        const counter = from !== undefined && from.ino === ino ? from.counter : new ContentsCounter();
        const contents = await contentsOf(handle, name, size, counter);
        if (contents === undefined) throw new Error(`${p.path} shrank while it was read`);
        this.writeDigest(p, contents);
      } finally {
        await handle.close();
      }
    } catch (e) {
      // Retention may have deleted it already (its marker says so); anything else is told.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.onEvent({ type: 'failed', what: `digest of ${p.path}`, error: e as Error });
      }
    }
  }

  private writeDigest(
    p: Pending,
    contents: Omit<Digest, 'kind' | 'zone' | 'identifiers' | 'previous' | 'signedAt' | 'signature' | 'keyId'>,
  ): void {
    const name = contents.file;
    const doc: Omit<Digest, 'signature' | 'keyId'> = {
      kind: DIGEST_KIND,
      zone: this.opts.zone,
      ...contents,
      identifiers: Object.fromEntries(p.identifiers ?? []),
      previous: this.head,
      signedAt: this.now().toISOString(),
    };
    const text = signDocument<Digest>(doc, this.opts.key);
    this.write(digestName(name), text, true);
    this.head = linkTo(digestName(name), text);
    this.onEvent({ type: 'digest-written', file: name, records: contents.records });
  }

  /** Seals the active file's committed bytes: hashes what was committed since the last seal, then signs. */
  private async seal(state: Seal['state']): Promise<void> {
    const active = this.active;
    const position = this.position;
    if (active === undefined || position === undefined || position.ino !== active.ino || this.digestsDue > 0) return;
    try {
      const handle = await fsp.open(this.opts.activePath, 'r');
      try {
        const { ino, size } = await handle.stat();
        // Rotated since the commit, and not committed past it yet: the digest will cover it.
        if (ino !== active.ino) return;
        // Cut behind the sidecar's back: the last seal stays as the evidence, and no new one blesses the cut.
        if (size < position.size || !(await readInto(handle, active.counter, position.size))) {
          this.onEvent({
            type: 'active-file-shorter',
            file: this.opts.activePath,
            committed: position.size,
            found: size,
          });
          return;
        }
        const doc: Omit<Seal, 'signature' | 'keyId'> = {
          kind: SEAL_KIND,
          zone: this.opts.zone,
          file: this.base,
          sizeBytes: active.counter.sizeBytes,
          sha256: active.counter.sha256(),
          records: active.counter.records,
          ...(await recordTimes(handle, active.counter.sizeBytes)),
          identifiers: Object.fromEntries(active.identifiers),
          previous: this.head,
          state,
          sealIntervalSeconds: this.opts.sealIntervalMs / 1000,
          signedAt: this.now().toISOString(),
        };
        this.write(sealName(this.base), signDocument<Seal>(doc, this.opts.key), false);
      } finally {
        await handle.close();
      }
    } catch (e) {
      this.onEvent({ type: 'failed', what: `seal of ${this.opts.activePath}`, error: e as Error });
    }
  }

  /**
   * Takes up the seal the last run left for this active file: its identifiers go on, and the file must
   * still hold the bytes it sealed. When it does not (edited or cut while the sidecar was stopped), the
   * seal is kept aside as evidence (`<seal>.mismatch-<time>.json`, which verify reports) before a new one
   * is made: a restart never blesses an edit.
   */
  private async takeUpSeal(active: ActiveState): Promise<void> {
    const sealPath = path.join(this.dir, sealName(this.base));
    let seal: Seal;
    try {
      seal = JSON.parse(await fsp.readFile(sealPath, 'utf8')) as Seal;
    } catch {
      return;
    }
    // A seal of an earlier active file (rotated since, or a chain started again) says nothing of this one.
    if (seal.kind !== SEAL_KIND || (seal.previous?.sha256 ?? null) !== (this.head?.sha256 ?? null)) return;
    const handle = await fsp.open(this.opts.activePath, 'r');
    let intact: boolean;
    try {
      intact =
        (await handle.stat()).ino === active.ino &&
        (await readInto(handle, active.counter, seal.sizeBytes)) &&
        active.counter.sha256() === seal.sha256;
    } finally {
      await handle.close();
    }
    if (intact) {
      active.identifiers = new Map(Object.entries(seal.identifiers ?? {}));
      return;
    }
    const evidence = mismatchName(this.base, this.now());
    await fsp.rename(sealPath, path.join(this.dir, evidence));
    this.onEvent({ type: 'seal-mismatch', file: this.opts.activePath, evidence });
    // Hashed again from the start: the new seal states what the file holds now.
    active.counter = new ContentsCounter();
  }

  /** The rotated names of this backend among `names`, oldest first. */
  private byRotation(names: readonly string[]): string[] {
    return names
      .map((name) => ({ name, time: timeFromName(this.base, name) }))
      .filter((f): f is { name: string; time: Date } => f.time !== undefined)
      .sort((a, b) => a.time.getTime() - b.time.getTime())
      .map((f) => f.name);
  }

  /**
   * Writes a document durably beside the audit files, and to copyTo. `required`: a failure throws (a
   * digest or marker); a copy that fails is told, never thrown.
   */
  private write(name: string, text: string, required: boolean): void {
    const modes = { mode: this.opts.modes.file, dirMode: this.opts.modes.dir };
    try {
      replaceFile(fs, path.join(this.dir, name), text, modes);
    } catch (e) {
      if (required) throw e;
      this.onEvent({ type: 'failed', what: `writing ${name}`, error: e as Error });
    }
    if (this.opts.copyTo === undefined) return;
    try {
      replaceFile(fs, path.join(copyFolder(this.opts.copyTo, this.opts.activePath), name), text, modes);
    } catch (e) {
      this.onEvent({ type: 'failed', what: `copying ${name} to ${this.opts.copyTo}`, error: e as Error });
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/** Adds `ranges` into `into` (a range widens: first of the first, last of the last); returns `into`. */
function merge(
  into: Map<string, SequenceRange>,
  ranges: ReadonlyMap<string, SequenceRange>,
): Map<string, SequenceRange> {
  for (const [key, r] of ranges) {
    const had = into.get(key);
    into.set(key, had === undefined ? r : { firstSeq: had.firstSeq, lastSeq: r.lastSeq });
  }
  return into;
}
