// ReadService: operators read the trail back. Query streams the committed records of the first file
// backend, oldest file first, filtered, in batches that each carry a cursor; with `follow` it goes on
// with what is committed later. Reading is separate from writing: only file reads, never a lock or a
// queue the writer waits on, so a slow reader costs the writer nothing but its share of the CPU.
//
// Bounded: a query holds at most one chunk of a file (64 KiB), the line it is in, and one batch; when the
// client does not read, `write()` returns false and the query waits for 'drain' before reading on.
import type * as grpc from '@grpc/grpc-js';
import { MeshauditError, UnavailableError } from '../errors';
import {
  type CommittedTrail,
  committedEnds,
  decodeCursor,
  encodeCursor,
  fileAfter,
  firstLine,
  lineHash,
  listTrailFiles,
  readFrom,
  type TrailFile,
  type TrailPosition,
} from '../backends/file/trail-reader';
import { compileRecordFilter, type RecordFilter, type RecordFilterInput } from '../record/record-filter';
import type { TypeRegistry } from '../rules';
import { InvalidArgumentError } from '../validators';
import type { Logger } from '../log';
import type { Authenticator } from './authn';
import { UnreadableRequest } from './requests';
import type { ServingState } from './serving-state';
import type { Statuses } from './status';

/**
 * Records per response at most: a commit's worth (a control plane's window is 8 batches of 100), so that a
 * follower gets one message per commit; each message costs HTTP/2 framing and a write on the event loop.
 */
export const MAX_RECORDS_PER_RESPONSE = 1000;
/** Bytes of records per response at most (a response is sent once it reaches this): 4 of the read chunks. */
export const MAX_RESPONSE_BYTES = 256 * 1024;
/** Queries open at once at most: each holds a file handle and its buffers. */
export const MAX_CONCURRENT_QUERIES = 64;

/** A cursor into a file retention deleted: the caller learns where the trail it can read starts. */
export class OutOfRangeError extends MeshauditError {
  readonly kind = 'out-of-range';
}

/** Too many queries are open. */
export class TooManyQueriesError extends MeshauditError {
  readonly kind = 'resource-exhausted';
}

export interface ReadServiceOptions {
  /** The first file backend's committed position; undefined: no file backend (nothing to read). */
  readonly trail: CommittedTrail | undefined;
  /** Resource types a filter may name: the registry plus meshaudit.extraResourceTypes. */
  readonly knownTypes: TypeRegistry;
  readonly serving: ServingState;
  readonly statuses: Statuses;
  readonly auth: Authenticator;
  readonly log: Logger;
}

interface QueryRequest {
  filter: RecordFilterInput | null;
  follow: boolean;
  cursor: string;
}

/** A QueryResponse as proto-loader would take it (the service writes encodeQueryResponse's bytes instead). */
interface QueryResponse {
  records: string[];
  cursor: string;
}

/**
 * QueryResponse, encoded here: each record goes from the file's bytes to the wire as they are (field 1,
 * length-delimited), with no string made of it, and the cursor as field 2. proto-loader's encoder would
 * decode every line into a string and encode it back: half of what following the trail cost.
 */
export function encodeQueryResponse(records: readonly Buffer[], cursor: string): Buffer {
  const cursorBytes = Buffer.from(cursor, 'utf8');
  let size = 0;
  for (const r of records) size += 1 + varintSize(r.length) + r.length;
  size += cursorBytes.length > 0 ? 1 + varintSize(cursorBytes.length) + cursorBytes.length : 0;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  const put = (tag: number, bytes: Buffer): void => {
    out[at++] = tag;
    for (let n = bytes.length; ; n >>>= 7) {
      if (n < 0x80) {
        out[at++] = n;
        break;
      }
      out[at++] = (n & 0x7f) | 0x80;
    }
    at += bytes.copy(out, at);
  };
  for (const r of records) put(RECORDS_TAG, r);
  if (cursorBytes.length > 0) put(CURSOR_TAG, cursorBytes);
  return out;
}

/** Field 1 (records) and 2 (cursor) of QueryResponse, length-delimited (wire type 2). */
const RECORDS_TAG = (1 << 3) | 2;
const CURSOR_TAG = (2 << 3) | 2;

function varintSize(n: number): number {
  let size = 1;
  for (let v = n; v >= 0x80; v >>>= 7) size++;
  return size;
}

/** The service definition with Query's responses written as encodeQueryResponse made them. */
export function fastReadService(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const query = def.Query as grpc.MethodDefinition<unknown, unknown>;
  return {
    ...def,
    Query: {
      ...query,
      responseSerialize: (r: unknown) => (Buffer.isBuffer(r) ? r : query.responseSerialize(r)),
    },
  };
}

type QueryCall = grpc.ServerWritableStream<QueryRequest, QueryResponse>;

/** Where a query reads: the file by its start, the bytes of it read, and the hash of its first line once known. */
interface Reading {
  startMs: number;
  offset: number;
  hash: string;
  /** The inode of the file while it is plain (-1: not known yet, or gzipped). */
  ino: number;
  /** At the start of the file after one this query read whole (startMs is that file's time). */
  afterFile: boolean;
}

export class ReadServiceImpl {
  private open = 0;

  constructor(private readonly opts: ReadServiceOptions) {}

  /** Number of open queries. */
  get queryCount(): number {
    return this.open;
  }

  handlers(): grpc.UntypedServiceImplementation {
    const { statuses, auth } = this.opts;
    return {
      Query: (call: QueryCall) => {
        let filter: RecordFilter;
        let from: TrailPosition | undefined;
        let trail: CommittedTrail;
        try {
          auth.authorize(call, 'read', 'Query');
          const request = call.request as unknown;
          if (request instanceof UnreadableRequest) throw request.error;
          if (this.opts.serving.draining) throw new UnavailableError('the sidecar is shutting down');
          filter = compileRecordFilter(call.request.filter ?? {}, this.opts.knownTypes);
          from = cursorOf(call.request.cursor);
          if (this.opts.trail === undefined) throw new UnavailableError('no file backend: there is no trail to read');
          trail = this.opts.trail;
          if (this.open >= MAX_CONCURRENT_QUERIES) {
            throw new TooManyQueriesError(`${MAX_CONCURRENT_QUERIES} queries are open: retry when one has ended`);
          }
        } catch (err) {
          call.emit('error', statuses.of(err, { rpc: 'Query' }));
          return;
        }
        this.open++;
        new Query(call, trail, filter, call.request.follow, this.opts.serving)
          .run(from)
          .then(
            () => call.end(),
            (err: unknown) => call.emit('error', statuses.of(err, { rpc: 'Query' })),
          )
          .finally(() => this.open--);
      },
    };
  }
}

/** The position of a request's cursor; undefined for none. */
function cursorOf(cursor: string): TrailPosition | undefined {
  if (cursor === '') return undefined;
  const position = decodeCursor(cursor);
  if (position === undefined) {
    throw new InvalidArgumentError([{ field: 'cursor', description: 'is not a cursor of a QueryResponse' }]);
  }
  return position;
}

/** One Query call, from its first position to its end (or, following, to its cancellation). */
class Query {
  private records: Buffer[] = [];
  private bytes = 0;
  /** Where the last record of the batch ends. */
  private lastStartMs = 0;
  private lastOffset = 0;
  private lastHash = '';
  /** The cursor after the last record sent; '' before any. */
  private sent = '';
  private stopped = false;
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly call: QueryCall,
    private readonly trail: CommittedTrail,
    private readonly filter: RecordFilter,
    private readonly follow: boolean,
    private readonly serving: ServingState,
  ) {
    const stop = (): void => {
      this.stopped = true;
      for (const wake of this.wakers) wake();
    };
    call.on('cancelled', stop);
    call.on('close', stop);
    // A follower waiting for the next commit ends at the drain (UNAVAILABLE, with its last cursor sent),
    // so that the server's graceful shutdown need not force it.
    const drain = (): void => {
      for (const wake of this.wakers) wake();
    };
    serving.on('draining', drain);
    call.on('close', () => serving.off('draining', drain));
  }

  async run(from: TrailPosition | undefined): Promise<void> {
    const at: Reading = await this.resolve(from);
    for (;;) {
      // Watched before reading: a commit landing while the files are read still wakes the follower.
      let committedSince = false;
      const forget = this.trail.onNextCommit(() => {
        committedSince = true;
        for (const wake of this.wakers) wake();
      });
      try {
        const next = await this.readCommitted(at);
        if (this.stopped) return;
        if (next === 'again') continue;
        await this.flush();
        if (!this.follow) {
          // The end of what was read, so that a query resumed later does not read it again.
          const end = encodeCursor(at);
          if (at.offset > 0 && end !== this.sent) await this.send([], end);
          return;
        }
        if (this.serving.draining) {
          throw new UnavailableError('the sidecar is shutting down: resume from the last cursor');
        }
        if (!committedSince) await this.until(() => committedSince || this.serving.draining);
        if (this.stopped) return;
      } finally {
        forget();
      }
    }
  }

  /** The first position: the cursor's (checked to still be held), or the start of the oldest file. */
  private async resolve(from: TrailPosition | undefined): Promise<Reading> {
    const files = await listTrailFiles(this.trail.activePath);
    if (from === undefined) return { startMs: files[0]?.startMs ?? 0, offset: 0, hash: '', ino: -1, afterFile: false };
    const i = fileAfter(files, from.startMs);
    if (i < 0 || (from.hash !== '' && lineHash(await firstLine(files[i])) !== from.hash)) {
      throw await outOfRange(files, CURSOR_GONE);
    }
    return { ...from, ino: -1, afterFile: false };
  }

  /**
   * Reads the file of `at` as far as it is committed, sending what matches. 'again' when there is more
   * to read at once (that file is whole and done, and `at` names the next one; or it moved meanwhile);
   * 'caught-up' when what is committed is read.
   */
  private async readCommitted(at: Reading): Promise<'again' | 'caught-up'> {
    const committed = this.trail.committed();
    let file: TrailFile;
    let end: number | undefined;
    let last: boolean;
    if (committed !== undefined && at.ino >= 0 && committed.ino === at.ino) {
      // Still in the file being written: no need to look at the folder.
      // Opened by its path, checked by its inode: renamed by a rotation since, it is looked up again.
      file = {
        name: '',
        path: this.trail.activePath,
        timeMs: Infinity,
        startMs: at.startMs,
        gzipped: false,
        ino: at.ino,
      };
      end = committed.size;
      last = true;
      if (at.offset >= end) return 'caught-up';
    } else {
      const files = await listTrailFiles(this.trail.activePath);
      const i = fileAfter(files, at.startMs);
      if (i < 0) return 'caught-up';
      file = files[i];
      // Retention deleted the file this query was in (a follower that fell behind): said, not skipped.
      if (at.offset > 0 && at.hash !== '' && lineHash(await firstLine(file)) !== at.hash)
        throw await outOfRange(files, CURSOR_GONE);
      // Files between the one read last and this one were deleted before they were read: said too.
      if (at.afterFile && this.trail.deletedBetween(at.startMs, file.timeMs)) {
        throw await outOfRange(
          files.slice(i),
          'retention deleted audit files after the last one read before they were read',
        );
      }
      const { ends, inodes } = await committedEnds(files, committed);
      end = ends[i];
      at.ino = inodes[i];
      last = end !== undefined;
    }
    try {
      await this.readLines(file, at, end);
    } catch (err) {
      // Renamed or gzipped between the listing and the open: looked up again.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        at.ino = -1;
        return 'again';
      }
      throw err;
    }
    if (last || this.stopped) return 'caught-up';
    // The file is whole and read: on to the one after it.
    at.startMs = file.timeMs;
    at.offset = 0;
    at.hash = '';
    at.ino = -1;
    at.afterFile = true;
    return 'again';
  }

  /** Reads `file` from `at.offset` to `end`, line by line, adding the records that match to the batch. */
  private async readLines(file: TrailFile, at: Reading, end: number | undefined): Promise<void> {
    let rest: Buffer | undefined;
    for await (const chunk of readFrom(file, at.offset, end)) {
      const data = rest === undefined ? chunk : Buffer.concat([rest, chunk]);
      let lineStart = 0;
      for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, lineStart)) {
        const line = data.subarray(lineStart, nl);
        if (at.offset === 0) {
          at.hash = lineHash(line);
          at.afterFile = false;
        }
        at.offset += nl + 1 - lineStart;
        lineStart = nl + 1;
        // Synchronous per record (no promise each): only a full batch waits, to be sent.
        if ((this.filter.everyRecord === true || this.filter.matches(line.toString('utf8'))) && this.add(line, at)) {
          await this.flush();
        }
        if (this.stopped) return;
      }
      // A line cut by the chunk's end waits for the next chunk (a record is bounded by the limits).
      rest = lineStart < data.length ? data.subarray(lineStart) : undefined;
    }
  }

  /** Adds the record that ends at `at` to the batch; true once the batch is full (the caller sends it). */
  private add(record: Buffer, at: Reading): boolean {
    this.records.push(record);
    this.bytes += record.length;
    // Fields, not a new object per record: the cursor is made once per response.
    this.lastStartMs = at.startMs;
    this.lastOffset = at.offset;
    this.lastHash = at.hash;
    return this.records.length >= MAX_RECORDS_PER_RESPONSE || this.bytes >= MAX_RESPONSE_BYTES;
  }

  /** Sends the batch, with the cursor right after its last record. */
  private async flush(): Promise<void> {
    if (this.records.length === 0) return;
    const records = this.records;
    this.records = [];
    this.bytes = 0;
    await this.send(records, encodeCursor({ startMs: this.lastStartMs, offset: this.lastOffset, hash: this.lastHash }));
  }

  /** Writes one response; while the client does not take it, waits for 'drain' (or the call's end). */
  private async send(records: readonly Buffer[], cursor: string): Promise<void> {
    if (this.stopped) return;
    this.sent = cursor;
    // Encoded here (encodeQueryResponse): the service is added with fastReadService.
    if (this.call.write(encodeQueryResponse(records, cursor) as unknown as QueryResponse)) return;
    let drained = false;
    const onDrain = (): void => {
      drained = true;
      for (const wake of this.wakers) wake();
    };
    this.call.once('drain', onDrain);
    try {
      await this.until(() => drained);
    } finally {
      this.call.off('drain', onDrain);
    }
  }

  /** Resolves once `condition` holds (checked at every wake) or the call has ended. */
  private until(condition: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        if (!this.stopped && !condition()) return;
        this.wakers.delete(wake);
        resolve();
      };
      this.wakers.add(wake);
      wake();
    });
  }
}

const CURSOR_GONE = 'the cursor points into an audit file retention has deleted';

/** OUT_OF_RANGE naming the oldest position held: its first record's date and a cursor for it. */
async function outOfRange(files: readonly TrailFile[], why: string): Promise<OutOfRangeError> {
  for (const f of files) {
    const line = await firstLine(f);
    if (line.length === 0) continue;
    let date = 'unknown';
    try {
      date = String((JSON.parse(line.toString('utf8')) as { date?: unknown }).date);
    } catch {
      // A line that is not a record: its date is not known; its cursor still is.
    }
    const cursor = encodeCursor({ startMs: f.startMs, offset: 0, hash: lineHash(line) });
    return new OutOfRangeError(`${why}; the oldest record held is from ${date}: resume with cursor ${cursor}`);
  }
  return new OutOfRangeError(`${why}; no record is held now`);
}
