// ReadService: operators read the trail back. Query streams the committed records of the first file
// backend, oldest file first, filtered, in batches that each carry a cursor; with `follow` it goes on
// with what is committed later. Reading is separate from writing: only file reads, never a lock or a
// queue the writer waits on, so a slow reader costs the writer nothing but its share of the CPU.
//
// It reads through the trail's one follower (src/backends/file/trail-follower.ts). Bounded: a query holds
// one read chunk (256 KiB), the line it is in, and one response; when the client does not read, `write()`
// returns false and the query waits for 'drain' before reading on.
import type * as grpc from '@grpc/grpc-js';
import { MeshauditError, UnavailableError } from '../errors';
import { type CommittedTrail, decodeCursor, encodeCursor, type TrailPosition } from '../backends/file/trail-reader';
import { type FollowedFile, followTrail, type LineVisitor } from '../backends/file/trail-follower';
import { compileRecordFilter, type RecordFilter, type RecordFilterInput } from '../record/record-filter';
import type { TypeRegistry } from '../rules';
import { InvalidArgumentError } from '../validators';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import type { Authenticator } from './authn';
import { UnreadableRequest } from './requests';
import type { ServingState } from './serving-state';
import type { Statuses } from './status';

/**
 * Records per response at most: a commit's worth (a control plane's window is 8 batches of 100), so that a
 * follower gets one message per commit; each message costs HTTP/2 framing and a write on the event loop.
 */
export const MAX_RECORDS_PER_RESPONSE = 1000;
/** Bytes of records per response at most (a response is sent once it reaches this): one read chunk. */
export const MAX_RESPONSE_BYTES = 256 * 1024;
/**
 * A response up to this size is copied out of the builder's buffer, which is then used again: a follower
 * sends one small response per commit, and a new buffer of MAX_RESPONSE_BYTES for each (past glibc's mmap
 * threshold: an mmap, page faults and an munmap) cost more than copying a few KiB.
 */
const COPY_OUT_BYTES = 64 * 1024;
/** Queries open at once at most: each holds a file handle and its buffers. */
export const MAX_CONCURRENT_QUERIES = 64;

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
  readonly metrics: Metrics;
}

interface QueryRequest {
  filter: RecordFilterInput | null;
  follow: boolean;
  cursor: string;
}

/** A QueryResponse as proto-loader would take it (the service writes QueryResponseBuilder's bytes instead). */
interface QueryResponse {
  records: string[];
  cursor: string;
}

/** Field 1 (records) and 2 (cursor) of QueryResponse, length-delimited (wire type 2). */
const RECORDS_TAG = (1 << 3) | 2;
const CURSOR_TAG = (2 << 3) | 2;
/** A field's tag and the longest length a response's field can have (a varint of up to 5 bytes). */
const FIELD_HEAD_BYTES = 6;

/**
 * A QueryResponse, encoded as it is built: each record goes from the read buffer to the response's bytes
 * as it is (field 1, length-delimited), with no string or Buffer made of it, and the cursor (field 2) last.
 * proto-loader's encoder would decode every line into a string and encode it back: half of what following
 * the trail cost.
 */
class QueryResponseBuilder {
  private out = Buffer.allocUnsafe(MAX_RESPONSE_BYTES + 4 * 1024);
  private at = 0;
  /** Records in the response so far. */
  count = 0;
  /**
   * The last source buffer added from, and a plain Uint8Array view of it: `set(view.subarray())` copies a
   * record in ~50 ns, where Buffer's copy() or subarray() make a Buffer (or view) of their own, ~100 ns.
   */
  private source: Buffer | undefined;
  private view: Uint8Array = new Uint8Array(0);

  /** Appends `data[start, end)` as a record; true once the response is full (records or bytes). */
  add(data: Buffer, start: number, end: number): boolean {
    this.reserve(FIELD_HEAD_BYTES + end - start);
    this.field(RECORDS_TAG, end - start);
    if (data !== this.source) {
      this.source = data;
      this.view = new Uint8Array(data.buffer, data.byteOffset, data.length);
    }
    this.out.set(this.view.subarray(start, end), this.at);
    this.at += end - start;
    this.count++;
    return this.count >= MAX_RECORDS_PER_RESPONSE || this.at >= MAX_RESPONSE_BYTES;
  }

  /** The response's bytes with `cursor` ('' for none) as its last field; the builder starts a new one. */
  finish(cursor: string): Buffer {
    const bytes = Buffer.from(cursor, 'utf8');
    if (bytes.length > 0) {
      this.reserve(FIELD_HEAD_BYTES + bytes.length);
      this.field(CURSOR_TAG, bytes.length);
      this.at += bytes.copy(this.out, this.at);
    }
    // The response owns its bytes (grpc-js may hold it, queued, until it is written): a small one is a
    // copy, a big one keeps this buffer and the next response gets another.
    let done: Buffer;
    if (this.at <= COPY_OUT_BYTES) {
      done = Buffer.allocUnsafe(this.at);
      this.out.copy(done, 0, 0, this.at);
    } else {
      done = this.out.subarray(0, this.at);
      this.out = Buffer.allocUnsafe(MAX_RESPONSE_BYTES + 4 * 1024);
    }
    this.at = 0;
    this.count = 0;
    this.source = undefined;
    return done;
  }

  private field(tag: number, length: number): void {
    const out = this.out;
    out[this.at++] = tag;
    let n = length;
    for (; n >= 0x80; n >>>= 7) out[this.at++] = (n & 0x7f) | 0x80;
    out[this.at++] = n;
  }

  /** Room for `bytes` more (a record larger than a response makes the buffer grow for it). */
  private reserve(bytes: number): void {
    if (this.at + bytes <= this.out.length) return;
    const grown = Buffer.allocUnsafe(this.at + bytes);
    this.out.copy(grown, 0, 0, this.at);
    this.out = grown;
  }
}

/** The service definition with Query's responses written as QueryResponseBuilder made them. */
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
        this.opts.metrics.queriesOpen.set(this.open);
        this.opts.metrics.queries.labels(call.request.follow ? 'follow' : 'read').inc();
        new Query(call, trail, filter, call.request.follow, this.opts.serving)
          .run(from)
          .then(
            () => call.end(),
            (err: unknown) => call.emit('error', statuses.of(err, { rpc: 'Query' })),
          )
          .finally(() => this.opts.metrics.queriesOpen.set(--this.open));
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

/** One Query call, from its first position to its end (or, following, to its cancellation or the drain). */
class Query implements LineVisitor {
  private readonly response = new QueryResponseBuilder();
  /** Where the last record added to the response ends. */
  private lastStartMs = 0;
  private lastOffset = 0;
  private lastHash = '';
  /** The cursor after the last record sent; '' before any. */
  private sent = '';
  /** The call has ended (cancelled or closed). */
  private cancelled = false;
  /** Stops the follower: the call's end, or, following, the drain. */
  private readonly stop = new AbortController();
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly call: QueryCall,
    private readonly trail: CommittedTrail,
    private readonly filter: RecordFilter,
    private readonly follow: boolean,
    serving: ServingState,
  ) {
    const cancel = (): void => {
      this.cancelled = true;
      this.stop.abort();
      for (const wake of this.wakers) wake();
    };
    call.on('cancelled', cancel);
    call.on('close', cancel);
    // A follower waiting for the next commit ends at the drain (UNAVAILABLE, with its last cursor sent),
    // so that the server's graceful shutdown need not force it.
    if (follow) {
      const drain = (): void => this.stop.abort();
      serving.on('draining', drain);
      call.on('close', () => serving.off('draining', drain));
    }
  }

  async run(from: TrailPosition | undefined): Promise<void> {
    // A position retention has deleted ends the call with the follower's TrailGoneError: OUT_OF_RANGE.
    const end = await followTrail(this.trail, from, this, { follow: this.follow, signal: this.stop.signal });
    if (this.cancelled) return;
    await this.flush();
    // Following, the trail ends only at the drain.
    if (this.follow) throw new UnavailableError('the sidecar is shutting down: resume from the last cursor');
    // The end of what was read, so that a query resumed later does not read it again.
    const cursor = encodeCursor(end);
    if (end.offset > 0 && cursor !== this.sent) await this.send(this.response.finish(cursor), cursor);
  }

  line(data: Buffer, start: number, end: number, file: FollowedFile, after: number): boolean {
    if (this.filter.everyRecord !== true && !this.filter.matches(data.toString('utf8', start, end))) return false;
    // Fields, not a new object per record: the cursor is made once per response.
    this.lastStartMs = file.startMs;
    this.lastOffset = after;
    this.lastHash = file.hash;
    return this.response.add(data, start, end);
  }

  /** Sends the response, with the cursor right after its last record. */
  async flush(): Promise<void> {
    if (this.response.count === 0) return;
    const cursor = encodeCursor({ startMs: this.lastStartMs, offset: this.lastOffset, hash: this.lastHash });
    await this.send(this.response.finish(cursor), cursor);
  }

  /** Writes one response; while the client does not take it, waits for 'drain' (or the call's end). */
  private async send(response: Buffer, cursor: string): Promise<void> {
    if (this.cancelled) return;
    this.sent = cursor;
    // Encoded here (QueryResponseBuilder): the service is added with fastReadService.
    if (this.call.write(response as unknown as QueryResponse)) return;
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        this.wakers.delete(wake);
        this.call.off('drain', wake);
        resolve();
      };
      this.wakers.add(wake);
      this.call.once('drain', wake);
    });
  }
}
