// The NATS JetStream forwarder (meshaudit.forwarders[], kind nats; docs/forwarding.md): the first file
// backend's committed trail is its outbox. It follows the trail in file order (across rotations and
// compressed files: src/backends/file/trail-follower.ts), publishes each record as the message contract
// says (nats-record.ts) and moves its cursor only past records JetStream acknowledged, with every record
// before them.
//
// Exactly once, with publishes in flight: each message's id is the record's place in the trail, so a
// record published again within the stream's duplicate window is dropped by JetStream; and after every
// start and every reconnect, before publishing, the forwarder reads the last message of each of its three
// subjects and skips every record at or before the newest of them, so a record is never in the stream
// twice, even past the window. Records are published in trail order on one connection and JetStream stores
// them in that order; a publish refused or not acknowledged ends the session (what is in flight is looked
// up again). What this cannot see: a stream leader lost in a cluster dropping a record while a later one
// of the same window is stored by the next leader; the record is then skipped, never duplicated.
//
// The zone never waits for it: the writer acknowledges the control plane without it, and while NATS is
// unreachable the forwarder backs off (bounded, with jitter) while the backlog stays in the audit files,
// which retention holds for it up to maxHeldFiles (hold()).
//
// The publish path is lean: a core publish per record with a reply subject of the forwarder's own inbox,
// its headers encoded once into the buffer of its payload, one subscription receiving every
// acknowledgement, no promise or timer per record; the acknowledgements in flight are matched in a ring.
// Still, a record costs ~7-8 µs of CPU here (bench scenario s1n), far more than the sidecar's own write
// path: its ~600 bytes on the socket (half of them headers, the chain link the largest), nats.js's publish
// and the parsing of its acknowledgement.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { type JetStreamManager, jetstreamManager, StorageType } from '@nats-io/jetstream';
import {
  type Authenticator,
  connect,
  createInbox,
  credsAuthenticator,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  nkeyAuthenticator,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
} from '@nats-io/transport-node';
import { MeshauditError } from '../errors';
import type { Doomed } from '../backends/file/retention';
import { type FollowedFile, followTrail, type LineVisitor, TrailGoneError } from '../backends/file/trail-follower';
import {
  type CommittedTrail,
  committedEnds,
  fileAfter,
  firstLine,
  GZIP_SUFFIX,
  lineHash,
  listTrailFiles,
  readFrom,
  rotationTimeMs,
  type TrailFile,
  type TrailPosition,
} from '../backends/file/trail-reader';
import type { FileModes, NatsForwarderConfig } from '../config/types';
import { type Digest, DIGEST_SUFFIX, digestName, linkTo, recordDate, recordLines } from '../integrity/format';
import { parseRfc3339 } from '../events/rfc3339';
import { type Logger, RateLimitedWarning } from '../log';
import type { Metrics } from '../metrics';
import { cursorFile, readCursor, writeCursor } from './forward-cursor';
import { natsFailure } from './nats-errors';
import {
  CHAIN_HEADER,
  comparePositions,
  DATE_HEADER,
  formatPosition,
  INSTANCE_HEADER,
  MSG_ID_HEADER,
  parsePosition,
  POSITION_HEADER,
  RECORD_KINDS,
  type RecordFields,
  type RecordKind,
  type RecordPosition,
  recordFields,
  STREAM_SUBJECTS,
  SUBJECT_PREFIX,
  subjectOf,
  subjectsOf,
  ZONE_HEADER,
} from './nats-record';

/**
 * Records in flight at most (published, not acknowledged): enough to keep a round trip to the center busy
 * at 100k records/s on a 10 ms link (a JetStream server acknowledges ~1 MB of them per round trip).
 */
const WINDOW_RECORDS = 2048;
/** Bytes of records in flight at most: what a lost connection makes nats.js hold and send again. */
const WINDOW_BYTES = 4 * 1024 * 1024;
/**
 * Records published in one turn of the event loop at most (~2 ms of it at ~4 µs each): a forwarder catching
 * up on a backlog lets the control plane's batches and acknowledgements through between its turns.
 */
const LINES_PER_TURN = 512;
/** A publish not acknowledged in this long fails the session: the forwarder reconnects and looks again. */
const ACK_TIMEOUT_MS = 10_000;
/** Bytes of publishes nats.js buffers before it writes them to the socket (see connect()). */
const PENDING_LIMIT_BYTES = 256 * 1024;
/** JetStream API calls (stream info, last message) time out after this long. */
const API_TIMEOUT_MS = 5_000;
/** The first back-off, doubled after each failure up to BACKOFF_MAX_MS; each wait is 50-150% of it (jitter). */
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** How often the cursor is written while it moves: a crash costs at most this much reading again. */
const CURSOR_WRITE_INTERVAL_MS = 1_000;
/** A warning that keeps coming (NATS unreachable) is logged once a minute, saying how many were left out. */
const WARNING_INTERVAL_MS = 60_000;
/**
 * How long the forwarder waits for the digest of the file before the one it reads (Meshaudit-Chain): the
 * digest is written once that file's last bytes are acknowledged, right after the rotation's commit.
 */
const DIGEST_WAIT_MS = 5_000;
/**
 * How long start-up waits for NATS (to find a missing stream) before going on without it: the control plane
 * waits for the sidecar meanwhile, and the zone never waits for the center for long.
 */
const START_CONNECT_TIMEOUT_MS = 2_000;

/** With create false, the stream is not there: start-up stops, naming it. */
class StreamMissingError extends MeshauditError {
  readonly kind = 'not-found';
}

export interface NatsForwarderOptions {
  readonly config: NatsForwarderConfig;
  readonly zone: string;
  /** The first file backend's active file: its trail is the outbox. */
  readonly activePath: string;
  readonly dataDir: string;
  readonly modes: FileModes;
  /** meshaudit.integrity.enabled: each message carries Meshaudit-Chain. */
  readonly chain: boolean;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Records committed since start (the sidecar's meshaudit_events_recorded_total): the lag in records. */
  readonly recordsCommitted: () => number;
  readonly now?: () => number;
}

/** What /server_info shows of a forwarder. */
export interface ForwarderStatus {
  readonly name: string;
  readonly kind: 'nats';
  readonly stream: string;
  readonly subjects: string;
  /** connecting, forwarding (connected, publishing or caught up), backing-off, stopped. */
  readonly state: 'connecting' | 'forwarding' | 'backing-off' | 'stopped';
  /** The last failure, while it backs off. */
  readonly lastError?: string;
  readonly server?: string;
  readonly lagRecords: number;
  readonly lagSeconds: number;
  readonly published: number;
  readonly heldFiles: number;
}

/** The records in flight, by publish id: a ring of WINDOW_RECORDS slots (id % WINDOW_RECORDS). */
class InFlight {
  /** The oldest id not released yet (acknowledged with all before it), and the next id to publish. */
  head = 0;
  next = 0;
  bytes = 0;
  readonly startMs = new Float64Array(WINDOW_RECORDS);
  readonly after = new Float64Array(WINDOW_RECORDS);
  readonly hash: string[] = new Array(WINDOW_RECORDS).fill('');
  readonly size = new Uint32Array(WINDOW_RECORDS);
  readonly acked = new Uint8Array(WINDOW_RECORDS);
  readonly sentAtMs = new Float64Array(WINDOW_RECORDS);

  get count(): number {
    return this.next - this.head;
  }

  get full(): boolean {
    return this.count >= WINDOW_RECORDS || this.bytes >= WINDOW_BYTES;
  }

  /**
   * Half empty: where a full window resumes publishing. Resuming at the first free slot would publish one
   * record per acknowledgement, each in a socket write of its own (nats.js flushes once per microtask
   * turn): a write per record, most of the forwarder's CPU. From half, a resumed follower publishes half a
   * window in one write.
   */
  get halfEmpty(): boolean {
    return this.count <= WINDOW_RECORDS / 2 && this.bytes <= WINDOW_BYTES / 2;
  }

  /** Adds the record ending at `after` in the file `startMs`/`hash`; returns its id. */
  add(startMs: number, after: number, hash: string, bytes: number, acked: boolean, nowMs: number): number {
    const id = this.next++;
    const slot = id % WINDOW_RECORDS;
    this.startMs[slot] = startMs;
    this.after[slot] = after;
    this.hash[slot] = hash;
    this.size[slot] = bytes;
    this.acked[slot] = acked ? 1 : 0;
    this.sentAtMs[slot] = nowMs;
    this.bytes += bytes;
    return id;
  }

  /** Forgets every record in flight (a failed session: they are looked up in the stream again). */
  drop(): void {
    this.head = this.next;
    this.bytes = 0;
  }
}

export class NatsForwarder implements LineVisitor {
  readonly name: string;
  private readonly config: NatsForwarderConfig;
  private readonly subjects: Readonly<Record<RecordKind, string>>;
  private readonly cursorPath: string;
  private readonly now: () => number;
  private readonly warnings: RateLimitedWarning;
  private readonly published: { inc(n?: number): void };
  private publishedCount = 0;

  private nc: NatsConnection | undefined;
  private jsm: JetStreamManager | undefined;
  private replyPrefix = '';
  private state: ForwarderStatus['state'] = 'connecting';
  private lastError: string | undefined;
  private stopping = false;
  private loop: Promise<void> = Promise.resolve();

  /** After the last record acknowledged with every one before it; undefined: the oldest file's start. */
  private cursor: TrailPosition | undefined;
  private cursorWritten: TrailPosition | undefined;
  private cursorTimer: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;

  // The running session: publishing from the cursor until a failure or the stop.
  private readonly inFlight = new InFlight();
  /** Ids below this belong to an earlier session: their late acknowledgements are ignored. */
  private sessionBase = 0;
  private session: AbortController | undefined;
  /** Why the session was ended (thrown by forward() once the follower has returned). */
  private failure: Error | undefined;
  /** Records at or before this position are in the stream already (the last-message check). */
  private skipThrough: RecordPosition | undefined;
  private readonly fields: RecordFields = { date: '', kind: 'resource' };
  /** Waiting for room in the window (flush), or for the in-flight records' acknowledgements (stop). */
  private readonly waiters = new Set<() => void>();
  /** The line a new file began with, held while its chain link is looked up (flush). */
  private held: { payload: Buffer; startMs: number; offset: number; after: number; hash: string } | undefined;
  /** The Meshaudit-Chain header line of the file `chainStartMs` ('' without integrity). */
  private chainStartMs = -1;
  private chainLine = '';
  /** The headers' start, the same for every record: up to the position in Nats-Msg-Id. */
  private readonly headerPrefix: Buffer;
  /** One headers object and one options object for every publish: nats.js reads them during the call only. */
  private readonly encoded = new EncodedHeaders();
  private readonly publishOptions = { headers: this.encoded as unknown as MsgHdrs, reply: '' };
  /** Records published since the forwarder last let the event loop take its I/O (LINES_PER_TURN). */
  private sinceYield = 0;
  /** line() returned true: the next flush() is for it, not for the end of what is committed. */
  private flushAsked = false;
  /** Read to the end of what is committed, with nothing read since (caught up once in flight is empty). */
  private atEnd = false;
  private wake: (() => void) | undefined;

  // Lag: committed records not acknowledged, counted from the last time it was caught up.
  private committedBase = 0;
  private backlog = 0;
  /** Times the lag started again from 0 (a backlog counted meanwhile is out of date). */
  private caughtUpCount = 0;
  private doneSinceBase = 0;
  /** When everything committed was last acknowledged (or the oldest record of the backlog at start was written). */
  private behindSinceMs = 0;
  private heldFiles = 0;

  /** The first file backend's committed trail, from start(). */
  private trail: CommittedTrail | undefined;

  /**
   * Reads the cursor (so that retention holds what the forwarder has not read from the sidecar's first
   * retention on, before the files are open); start() then forwards.
   */
  constructor(private readonly opts: NatsForwarderOptions) {
    this.config = opts.config;
    this.name = opts.config.name;
    this.subjects = subjectsOf(opts.zone, opts.config.instance);
    this.headerPrefix = Buffer.from(
      `NATS/1.0\r\n${ZONE_HEADER}: ${opts.zone}\r\n${INSTANCE_HEADER}: ${opts.config.instance}\r\n` +
        `${MSG_ID_HEADER}: ${opts.zone}.${opts.config.instance}.`,
    );
    this.cursorPath = cursorFile(opts.dataDir, this.name);
    this.now = opts.now ?? Date.now;
    this.warnings = new RateLimitedWarning(opts.log, WARNING_INTERVAL_MS, this.now, 'warn');
    this.published = opts.metrics.forwardPublished.labels(this.name);
    opts.metrics.addForwarder(this.name, () => ({
      lagRecords: this.lagRecords(),
      lagSeconds: this.lagSeconds(),
      connected: this.nc !== undefined && this.state === 'forwarding',
      heldFiles: this.heldFiles,
    }));
    try {
      this.cursor = readCursor(this.cursorPath);
    } catch (err) {
      opts.log.warn(
        'forwarder: the cursor file cannot be read: reading from the oldest file (what the stream holds is skipped)',
        { forwarder: this.name, file: this.cursorPath, err },
      );
    }
    this.cursorWritten = this.cursor;
  }

  /**
   * Connects and finds the stream (creating it when allowed), then forwards `trail` in the background until
   * stop(). Throws StreamMissingError when NATS answers without the stream (create false). NATS unreachable
   * within START_CONNECT_TIMEOUT_MS is no error: the forwarder goes on trying.
   */
  async start(trail: CommittedTrail): Promise<void> {
    this.trail = trail;
    this.behindSinceMs = this.now();
    this.committedBase = this.opts.recordsCommitted();
    let prepared = false;
    try {
      await this.prepare(START_CONNECT_TIMEOUT_MS);
      prepared = true;
    } catch (err) {
      if (err instanceof StreamMissingError) {
        this.stopping = true;
        await this.closeConnection();
        throw err;
      }
      this.failed(err as Error);
    }
    this.cursorTimer = setInterval(() => this.persistCursor(), CURSOR_WRITE_INTERVAL_MS);
    this.ackTimer = setInterval(() => this.checkAckTimeout(), 1_000);
    this.cursorTimer.unref();
    this.ackTimer.unref();
    this.loop = this.run(prepared);
    void this.countBacklog();
  }

  /** The stream's name, for the start-up line. */
  get stream(): string {
    return this.config.stream.name;
  }

  status(): ForwarderStatus {
    return {
      name: this.name,
      kind: 'nats',
      stream: this.config.stream.name,
      subjects: subjectOf(this.opts.zone, this.config.instance, '*'),
      state: this.state,
      ...(this.state === 'backing-off' && this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(this.nc?.info !== undefined ? { server: this.nc.getServer() } : {}),
      lagRecords: this.lagRecords(),
      lagSeconds: this.lagSeconds(),
      published: this.publishedCount,
      heldFiles: this.heldFiles,
    };
  }

  /**
   * Graceful stop within `timeoutMs`: publishes nothing more, waits for the acknowledgements in flight,
   * writes the cursor, closes the connection.
   */
  async stop(timeoutMs: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const deadline = this.now() + timeoutMs;
    this.session?.abort();
    this.wake?.();
    await this.until(() => this.inFlight.count === 0, timeoutMs);
    clearInterval(this.cursorTimer);
    clearInterval(this.ackTimer);
    this.persistCursor();
    await withTimeout(this.loop, Math.max(0, deadline - this.now()));
    await withTimeout(this.closeConnection(), Math.max(0, deadline - this.now()));
    this.state = 'stopped';
  }

  // ---- retention's hold ----

  /**
   * Of the rotated files retention is about to delete, those this forwarder has not read yet, the newest
   * maxHeldFiles of them kept (their names). The others are deleted anyway: an error line each, counted,
   * with the records in them this forwarder never published.
   */
  async hold(doomed: readonly Doomed[]): Promise<ReadonlySet<string>> {
    const active = this.opts.activePath;
    const from = this.cursor?.startMs ?? -1;
    // A file whose rotation time is after the cursor's file start is one the cursor has not left yet; the
    // file before it (rotated at that start) is kept too: without the signed trail, whose digests and
    // markers name deleted files, the listing would start the cursor's file at 0 once it is gone.
    const unread = doomed.filter((d) => rotationTimeMs(active, d.name) >= from);
    const keep = unread.slice(Math.max(0, unread.length - this.config.maxHeldFiles));
    const lost = unread.slice(0, unread.length - keep.length);
    this.heldFiles = keep.length;
    if (lost.length > 0) {
      const records = await this.countUnread(lost.map((d) => d.name));
      this.opts.metrics.forwardUnheldFiles.labels(this.name).inc(lost.length);
      this.opts.metrics.forwardLost.labels(this.name).inc(records);
      this.doneSinceBase += records;
      this.opts.log.error(
        'forwarder: retention deletes rotated files the forwarder has not published, past maxHeldFiles: their records never reach the stream',
        { forwarder: this.name, files: lost.map((d) => d.name), records, maxHeldFiles: this.config.maxHeldFiles },
      );
    }
    return new Set(keep.map((d) => d.name));
  }

  /** Records in the files `names` after the cursor (the files are about to be deleted). */
  private async countUnread(names: readonly string[]): Promise<number> {
    const files = await listTrailFiles(this.opts.activePath);
    let records = 0;
    const cursor = this.cursor;
    const cursorStartMs = cursor?.startMs ?? -1;
    // The cursor's file: the oldest whose rotation time is after the cursor's start (the listing may start it
    // at 0), unless that one is its successor (the cursor's own file deleted already: its first line differs).
    let cursorFile = cursor === undefined ? undefined : files[fileAfter(files, cursor.startMs)];
    if (cursorFile !== undefined && lineHash(await firstLine(cursorFile)) !== cursor?.hash) cursorFile = undefined;
    for (const file of files) {
      // The file before the cursor's is held for its time alone: its records are in the stream.
      if (file.timeMs <= cursorStartMs || !names.some((n) => file.name === n || file.name === `${n}.gz`)) continue;
      const from = file === cursorFile ? (cursor as TrailPosition).offset : 0;
      try {
        records += (await recordsIn(file, from, undefined)).records;
      } catch {
        // Gone meanwhile: its records are not counted.
      }
    }
    return records;
  }

  // ---- the loop: connect, find the stream, look at its last messages, publish ----

  /** `prepared`: start() connected and found the stream, which the first session then does not look up again. */
  private async run(prepared: boolean): Promise<void> {
    let failures = 0;
    let ready = prepared;
    while (!this.stopping) {
      try {
        if (!ready) await this.prepare(API_TIMEOUT_MS);
        ready = false;
        const acked = this.publishedCount;
        await this.forward();
        if (this.publishedCount > acked) failures = 0;
      } catch (err) {
        if (this.stopping) break;
        this.failed(err as Error);
      }
      if (this.stopping) break;
      const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(failures++, 16));
      await this.sleep(wait * (0.5 + Math.random()));
    }
  }

  /** Connects (when not connected), then finds or creates the stream. */
  private async prepare(timeoutMs: number): Promise<void> {
    this.state = 'connecting';
    if (this.nc === undefined || this.nc.isClosed()) await this.connect(timeoutMs);
    const jsm = await jetstreamManager(this.nc as NatsConnection, { timeout: API_TIMEOUT_MS, checkAPI: false });
    await this.findStream(jsm);
    this.jsm = jsm;
  }

  private async connect(timeoutMs: number): Promise<void> {
    const { config } = this;
    const nc = await connect({
      servers: [...config.servers],
      name: `meshaudit ${this.opts.zone}/${config.instance}`,
      timeout: timeoutMs,
      // The forwarder reconnects itself (run()): nats.js would send again, after a reconnect, what it had
      // buffered for the lost connection, before the forwarder could look at the stream.
      reconnect: false,
      // A server that stops answering (not a closed socket) is found out in about 20 s.
      pingInterval: 10_000,
      maxPingOut: 2,
      // nats.js writes to the socket once this much is pending (32 KiB by default; the option is not in its
      // types): 256 KiB, a commit's worth of records, in one write.
      ...({ pendingLimit: PENDING_LIMIT_BYTES } as object),
      authenticator: authenticatorOf(config),
      ...(config.tls === undefined
        ? {}
        : {
            tls: {
              ...(config.tls.caFile === undefined ? {} : { caFile: config.tls.caFile }),
              ...(config.tls.certFile === undefined ? {} : { certFile: config.tls.certFile }),
              ...(config.tls.keyFile === undefined ? {} : { keyFile: config.tls.keyFile }),
            },
          }),
    });
    if (this.stopping) {
      await nc.close();
      throw new Error('stopping');
    }
    this.nc = nc;
    // One subscription takes every acknowledgement: `<inbox>.<id>`.
    this.replyPrefix = `${createInbox()}.`;
    nc.subscribe(`${this.replyPrefix}*`, { callback: (err, msg) => this.acked(err, msg) });
    void this.watch(nc);
  }

  /** Follows the connection's status: once it is closed (lost), the session fails and the loop connects again. */
  private async watch(nc: NatsConnection): Promise<void> {
    await nc.closed();
    if (this.nc !== nc) return;
    this.nc = undefined;
    this.failSession(new Error(`lost the connection to NATS (${nc.getServer()})`));
    this.wake?.();
  }

  private async closeConnection(): Promise<void> {
    const nc = this.nc;
    this.nc = undefined;
    if (nc !== undefined && !nc.isClosed()) await nc.close().catch(() => undefined);
  }

  /** The stream, or, with create, a new one (STREAM_SUBJECTS); StreamMissingError when it is neither. */
  private async findStream(jsm: JetStreamManager): Promise<void> {
    const { stream } = this.config;
    const info = await jsm.streams.info(stream.name).catch((err: unknown) => {
      if (natsFailure(err).kind !== 'stream-not-found') throw err;
      return undefined;
    });
    if (info !== undefined) {
      // The last message of its subjects is read with a direct get, whose API subject names the record
      // subject, so that a zone's user may be allowed its own zone's alone (deploy/nats/).
      if (info.config.allow_direct !== true) {
        throw new StreamMissingError(
          `forwarder ${this.name}: the JetStream stream ${stream.name} does not allow direct gets (allow_direct): the forwarder reads the last message of its subjects with one; update the stream with allow_direct: true`,
        );
      }
      return;
    }
    if (!stream.create) {
      throw new StreamMissingError(
        `forwarder ${this.name}: the JetStream stream ${stream.name} does not exist on ${this.nc?.getServer()} (meshaudit.forwarders[].stream.create is false): create it, or set create: true`,
      );
    }
    await jsm.streams.add({
      name: stream.name,
      subjects: [STREAM_SUBJECTS],
      storage: StorageType.File,
      num_replicas: stream.replicas,
      max_age: stream.maxAgeMs * 1_000_000,
      duplicate_window: stream.duplicateWindowMs * 1_000_000,
      allow_direct: true,
    });
    this.opts.log.info('forwarder: created the JetStream stream', {
      forwarder: this.name,
      stream: stream.name,
      replicas: stream.replicas,
    });
  }

  /** The newest position among the last messages of this sidecar's three subjects; undefined: none. */
  private async lastInStream(jsm: JetStreamManager): Promise<RecordPosition | undefined> {
    let newest: RecordPosition | undefined;
    for (const kind of RECORD_KINDS) {
      // $JS.API.DIRECT.GET.<stream>.<subject>: a permission on this sidecar's zone's subjects allows it.
      const m = await jsm.direct.getMessage(this.config.stream.name, { last_by_subj: this.subjects[kind] });
      const position = parsePosition(m?.header?.get(POSITION_HEADER));
      if (position !== undefined && (newest === undefined || comparePositions(position, newest) > 0)) newest = position;
    }
    return newest;
  }

  /** One session: from the cursor, past what the stream holds, publishing until a failure or the stop. */
  private async forward(): Promise<void> {
    const jsm = this.jsm as JetStreamManager;
    // What an earlier session left in flight (a publish that threw, a lost connection) is looked up below.
    this.inFlight.drop();
    this.skipThrough = await this.lastInStream(jsm);
    if (this.stopping) return;
    const session = new AbortController();
    this.session = session;
    this.sessionBase = this.inFlight.next;
    this.state = 'forwarding';
    this.lastError = undefined;
    try {
      await followTrail(this.trail as CommittedTrail, this.cursor, this, { follow: true, signal: session.signal });
    } catch (err) {
      if (!(err instanceof TrailGoneError)) throw err;
      this.trailGone(err);
    } finally {
      this.session = undefined;
      this.held = undefined;
      this.flushAsked = false;
    }
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      throw failure;
    }
  }

  /** The cursor's file is gone (deleted past maxHeldFiles, or while stopped): on from the oldest position held. */
  private trailGone(err: TrailGoneError): void {
    this.opts.log.error(
      'forwarder: the audit file the forwarder was in is deleted: going on from the oldest record held',
      {
        forwarder: this.name,
        err: err.message,
      },
    );
    this.cursor = err.oldest;
    this.persistCursor();
  }

  // ---- LineVisitor: one committed line at a time ----

  line(data: Buffer, start: number, end: number, file: FollowedFile, after: number): boolean {
    if (this.stopping || this.session?.signal.aborted !== false) {
      this.flushAsked = true;
      return true;
    }
    this.atEnd = false;
    const offset = after - (end - start) - 1;
    const skip = this.skipThrough;
    if (skip !== undefined) {
      if (file.startMs < skip.startMs || (file.startMs === skip.startMs && offset <= skip.offset)) {
        this.release(file.startMs, after, file.hash);
        this.opts.metrics.forwardSkipped.labels(this.name).inc();
        this.doneSinceBase++;
        return false;
      }
      this.skipThrough = undefined;
    }
    if (this.opts.chain && file.startMs !== this.chainStartMs) {
      // The chain link of a new file is looked up (a file read) before its first record goes out.
      this.held = {
        payload: Buffer.from(data.subarray(start, end)),
        startMs: file.startMs,
        offset,
        after,
        hash: file.hash,
      };
      this.flushAsked = true;
      return true;
    }
    this.publish(data.subarray(start, end), file.startMs, offset, after, file.hash);
    this.flushAsked = this.inFlight.full || ++this.sinceYield >= LINES_PER_TURN;
    return this.flushAsked;
  }

  /**
   * Asked by line(): the chain link of a new file, a turn of the event loop for others, room in the
   * window. Otherwise the follower has read all that is committed: caught up once in flight is acknowledged.
   */
  async flush(): Promise<void> {
    if (!this.flushAsked) {
      this.atEnd = true;
      this.caughtUpIfDone();
      return;
    }
    this.flushAsked = false;
    if (this.sinceYield >= LINES_PER_TURN) {
      // The control plane's batches and their acknowledgements go first: they wait for the event loop too.
      this.sinceYield = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const held = this.held;
    if (held !== undefined) {
      this.held = undefined;
      await this.lookUpChain(held.startMs);
      if (this.session?.signal.aborted !== false || this.stopping) return;
      this.publish(held.payload, held.startMs, held.offset, held.after, held.hash);
    }
    if (this.inFlight.full) await this.until(() => this.inFlight.halfEmpty || this.session?.signal.aborted !== false);
  }

  /** Publishes one record (`payload`: the line without its newline; copied, since the line is read into again). */
  private publish(line: Buffer, startMs: number, offset: number, after: number, hash: string): void {
    const nc = this.nc as NatsConnection;
    const fields = this.fields;
    if (!recordFields(line, 0, line.length, fields)) {
      // Not a record (the files hold nothing else; an edit by hand?): nothing to publish, passed over in order.
      this.warnings.warn('not-a-record', 'forwarder: a line of the audit file is not a record: not published', {
        forwarder: this.name,
        position: formatPosition(startMs, offset),
      });
      this.inFlight.add(startMs, after, hash, 0, true, this.now());
      this.advance();
      return;
    }
    // The headers (see the message contract), then the payload, in one buffer: the part that is the same for
    // every record is copied, the rest written as latin1 (positions, dates and chain links are ASCII).
    const position = formatPosition(startMs, offset);
    const tail = `${position}\r\n${POSITION_HEADER}: ${position}\r\n${DATE_HEADER}: ${fields.date}\r\n${this.chainLine}\r\n`;
    const prefix = this.headerPrefix;
    const headerBytes = prefix.length + tail.length;
    const message = Buffer.allocUnsafe(headerBytes + line.length);
    prefix.copy(message, 0);
    message.write(tail, prefix.length, 'latin1');
    line.copy(message, headerBytes);
    const id = this.inFlight.add(startMs, after, hash, line.length, false, this.now());
    this.encoded.bytes = message.subarray(0, headerBytes);
    this.publishOptions.reply = `${this.replyPrefix}${id}`;
    nc.publish(this.subjects[fields.kind], message.subarray(headerBytes), this.publishOptions);
  }

  /** An acknowledgement (or a refusal) of the publish `<inbox>.<id>`. */
  private acked(err: Error | null, msg: Msg): void {
    if (err !== null) return; // the subscription itself failed: the connection's status says why
    const id = Number(msg.subject.slice(this.replyPrefix.length));
    const f = this.inFlight;
    if (!(id >= this.sessionBase && id >= f.head && id < f.next)) return; // an earlier session's
    const data = msg.data;
    // {"stream":"MESHAUDIT","seq":12} or {"stream":...,"duplicate":true}: stored. Anything else: refused.
    if (data.length < 10 || data[2] !== 0x73 /* s */) {
      this.failSession(new Error(`JetStream refused a record: ${publishError(msg)}`));
      return;
    }
    f.acked[id % WINDOW_RECORDS] = 1;
    this.advance();
  }

  /** Releases the acknowledged prefix of what is in flight, moving the cursor past it. */
  private advance(): void {
    const f = this.inFlight;
    let released = 0;
    while (f.head < f.next) {
      const slot = f.head % WINDOW_RECORDS;
      if (f.acked[slot] === 0) break;
      this.cursor = { startMs: f.startMs[slot], offset: f.after[slot], hash: f.hash[slot] };
      f.bytes -= f.size[slot];
      if (f.size[slot] > 0) released++;
      f.head++;
    }
    if (released > 0) {
      this.publishedCount += released;
      this.published.inc(released);
      this.doneSinceBase += released;
    }
    if (!f.full) for (const wake of [...this.waiters]) wake();
    this.caughtUpIfDone();
  }

  /** A record passed over (in the stream already): the cursor moves past it once nothing before is in flight. */
  private release(startMs: number, after: number, hash: string): void {
    if (this.inFlight.count === 0) this.cursor = { startMs, offset: after, hash };
    else this.inFlight.add(startMs, after, hash, 0, true, this.now());
  }

  private caughtUpIfDone(): void {
    if (!this.atEnd || this.inFlight.count > 0 || this.session?.signal.aborted !== false) return;
    // Everything committed when the follower last looked is in the stream: the lag starts again from 0.
    this.committedBase = this.opts.recordsCommitted();
    this.backlog = 0;
    this.doneSinceBase = 0;
    this.behindSinceMs = this.now();
    this.caughtUpCount++;
  }

  /** The oldest record in flight has waited ACK_TIMEOUT_MS: the session fails, and the stream is looked at again. */
  private checkAckTimeout(): void {
    const f = this.inFlight;
    if (f.count === 0) return;
    const waited = this.now() - f.sentAtMs[f.head % WINDOW_RECORDS];
    if (waited > ACK_TIMEOUT_MS)
      this.failSession(new Error(`no acknowledgement from JetStream in ${ACK_TIMEOUT_MS / 1000} s`));
  }

  /** Ends the session: nothing more is published; what is in flight is looked up in the stream next time. */
  private failSession(err: Error): void {
    const session = this.session;
    if (session !== undefined && !session.signal.aborted) {
      this.failure = err;
      session.abort();
    }
    this.inFlight.drop();
    this.atEnd = false;
    for (const wake of [...this.waiters]) wake();
  }

  private failed(err: Error): void {
    this.state = 'backing-off';
    this.lastError = err.message;
    this.opts.metrics.forwardFailures.labels(this.name).inc();
    const fix = whatToFix(err, this.config, this.opts.zone);
    this.warnings.warn(
      err.message,
      'forwarder: cannot publish to JetStream: backing off; records wait in the audit files and acknowledgements to the control plane go on',
      {
        forwarder: this.name,
        stream: this.config.stream.name,
        err: err.message,
        ...(fix === undefined ? {} : { fix }),
      },
    );
  }

  // ---- the cursor, the chain link, the lag ----

  private persistCursor(): void {
    const cursor = this.cursor;
    if (cursor === undefined || cursor === this.cursorWritten) return;
    try {
      writeCursor(this.cursorPath, cursor, this.opts.modes);
      this.cursorWritten = cursor;
    } catch (err) {
      this.warnings.warn('cursor', "forwarder: can't write the cursor file: it is tried again in a second", {
        forwarder: this.name,
        file: this.cursorPath,
        err,
      });
    }
  }

  /**
   * Meshaudit-Chain of the file that starts at `startMs`: the link to the digest of the file before it
   * (rotated at `startMs`), `-` for the first file of the trail. That digest is written once the file is
   * acknowledged whole, right after the rotation: it is waited for a little.
   */
  private async lookUpChain(startMs: number): Promise<void> {
    this.chainStartMs = startMs;
    this.chainLine = `${CHAIN_HEADER}: -\r\n`;
    if (startMs === 0) return;
    const active = this.opts.activePath;
    const dir = path.dirname(active);
    const deadline = this.now() + DIGEST_WAIT_MS;
    for (;;) {
      const names = await fsp.readdir(dir).catch(() => [] as string[]);
      const digest = names.find(
        (n) => n.endsWith(DIGEST_SUFFIX) && rotationTimeMs(active, n.slice(0, -DIGEST_SUFFIX.length)) === startMs,
      );
      if (digest !== undefined) {
        const link = linkTo(digest, await fsp.readFile(path.join(dir, digest)));
        this.chainLine = `${CHAIN_HEADER}: ${link.file}@${link.sha256}\r\n`;
        return;
      }
      if (this.now() >= deadline || this.session?.signal.aborted !== false) {
        this.warnings.warn('chain', 'forwarder: no digest of the file before the one read: Meshaudit-Chain is "-"', {
          forwarder: this.name,
          fileStartMs: startMs,
        });
        return;
      }
      await this.sleep(100);
    }
  }

  /** Records committed and not acknowledged yet. */
  private lagRecords(): number {
    return Math.max(0, this.opts.recordsCommitted() - this.committedBase + this.backlog - this.doneSinceBase);
  }

  /** Seconds since everything committed was last acknowledged (0 while it is). */
  private lagSeconds(): number {
    return this.lagRecords() === 0 ? 0 : Math.max(0, this.now() - this.behindSinceMs) / 1000;
  }

  /**
   * At start: the records committed after the cursor (what the lag starts from), and the date of the first.
   * Rotated files are counted by their digests where the signed trail has them (recordsIn), so that the
   * backlog the forwarding loop is about to read is not read twice; the cursor's file and the active one
   * are read (as far as committed).
   */
  private async countBacklog(): Promise<void> {
    const caughtUp = this.caughtUpCount;
    const cursor = this.cursor;
    const committed = (this.trail as CommittedTrail).committed();
    let records = 0;
    let firstAt: string | null = null;
    try {
      const files = await listTrailFiles(this.opts.activePath);
      const first = cursor === undefined ? 0 : fileAfter(files, cursor.startMs);
      // The cursor's file deleted already (its successor's first line differs): the lag counts from now on.
      if (first < 0 || (cursor !== undefined && lineHash(await firstLine(files[first])) !== cursor.hash)) return;
      const { ends } = await committedEnds(files, committed);
      for (let k = first; k < files.length && ends[k] !== 0 && !this.stopping; k++) {
        const counted = await recordsIn(files[k], k === first && cursor !== undefined ? cursor.offset : 0, ends[k]);
        records += counted.records;
        firstAt ??= counted.firstAt;
      }
    } catch {
      return; // a file gone: the lag counts from what is committed from now on
    }
    if (this.stopping || this.caughtUpCount !== caughtUp) return;
    this.backlog = records;
    const firstMs = firstAt === null ? Number.NaN : parseRfc3339(firstAt);
    if (records > 0 && Number.isFinite(firstMs)) this.behindSinceMs = Math.min(this.behindSinceMs, firstMs);
  }

  // ---- waiting ----

  /** Resolves once `condition` holds (checked at each wake), the stop, or `timeoutMs`. */
  private until(condition: () => boolean, timeoutMs?: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const wake = (): void => {
        if (!condition()) return;
        this.waiters.delete(wake);
        clearTimeout(timer);
        resolve();
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.waiters.delete(wake);
          resolve();
        }, timeoutMs);
      }
      this.waiters.add(wake);
      wake();
    });
  }

  /** Waits `ms`, or less when the stop or a reconnection wakes it. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }
}

/**
 * A record's headers, encoded once (NATS/1.0 and a `Key: value` line each, as nats.js encodes its own):
 * nats.js's publish asks the headers it is given for encode() alone (protocol.js in @nats-io/nats-core,
 * pinned in package.json), where a MsgHdrs of its own costs a Map, a check of every key and a text
 * encoding per record. The end-to-end tests read every header back from the stream.
 */
class EncodedHeaders {
  bytes: Uint8Array = new Uint8Array(0);

  encode(): Uint8Array {
    return this.bytes;
  }
}

/** The credential of the config, read from its file at each connection (a rotated secret is picked up). */
function authenticatorOf(config: NatsForwarderConfig): Authenticator | undefined {
  const c = config.credentials;
  const text = (file: string): string => readSecret(file).trim();
  switch (c.type) {
    case 'none':
      return undefined;
    case 'user':
      return usernamePasswordAuthenticator(c.user, () => text(c.passwordFile));
    case 'token':
      return tokenAuthenticator(() => text(c.tokenFile));
    case 'nkey':
      return nkeyAuthenticator(() => new TextEncoder().encode(text(c.nkeySeedFile).split('\n')[0]));
    case 'creds':
      return credsAuthenticator(() => new Uint8Array(readSecretBytes(c.credsFile)));
  }
}

function readSecretBytes(file: string): Buffer {
  // Synchronous: nats.js asks for the credential inside its connect, which takes no promise.
  return fs.readFileSync(file);
}

function readSecret(file: string): string {
  return readSecretBytes(file).toString('utf8');
}

/** What a refused publish says: JetStream's error description, or the status of a reply without one. */
function publishError(msg: Msg): string {
  if (msg.data.length === 0) return msg.headers?.description || `status ${msg.headers?.code ?? 'unknown'}`;
  try {
    const reply = JSON.parse(Buffer.from(msg.data).toString('utf8')) as { error?: { description?: string } };
    return reply.error?.description ?? Buffer.from(msg.data).toString('utf8').slice(0, 200);
  } catch {
    return Buffer.from(msg.data).toString('utf8').slice(0, 200);
  }
}

/** `p`, or nothing after `ms`. */
async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/**
 * What an operator changes for a refusal that retrying will not mend (credentials, permissions, a stream
 * name the user may not see), naming the keys; undefined for the rest (a server down, a timeout).
 */
function whatToFix(err: Error, config: NatsForwarderConfig, zone: string): string | undefined {
  const keys = `meshaudit.forwarders[] (name ${config.name})`;
  const failure = natsFailure(err);
  if (failure.kind === 'credentials') {
    return `the NATS servers refused the credentials: check ${keys} user and passwordFile, tokenFile, nkeySeedFile or credsFile`;
  }
  if (failure.kind !== 'permission') return undefined;
  if (failure.subject.startsWith('$JS.API.STREAM.INFO.')) {
    return `the NATS user may not look up stream ${config.stream.name}: is ${keys} stream.name right? (deploy/nats/ lets a zone's user see that one stream)`;
  }
  if (failure.subject.startsWith('$JS.API.DIRECT.GET.')) {
    return `the NATS user may not read back its last message: allow it $JS.API.DIRECT.GET.${config.stream.name}.${SUBJECT_PREFIX}.${zone}.> (deploy/nats/nats-server.conf)`;
  }
  return `the NATS user may not publish this zone's records: allow it ${SUBJECT_PREFIX}.${zone}.> and the JetStream API subjects of deploy/nats/nats-server.conf`;
}

/**
 * The record lines of `file` from `fromOffset` to `toOffset` (undefined: its end), and the date of the
 * first. A whole rotated file is counted by its digest when the signed trail has one (its `records` and
 * `firstRecordAt`: a count for the lag gauges, so the signature is not checked), else read.
 */
async function recordsIn(
  file: TrailFile,
  fromOffset: number,
  toOffset: number | undefined,
): Promise<{ records: number; firstAt: string | null }> {
  if (fromOffset === 0 && toOffset === undefined && file.timeMs !== Infinity) {
    const plain = file.gzipped ? file.path.slice(0, -GZIP_SUFFIX.length) : file.path;
    try {
      const digest = JSON.parse(await fsp.readFile(digestName(plain), 'utf8')) as Partial<Digest>;
      if (typeof digest.records === 'number')
        return {
          records: digest.records,
          firstAt: typeof digest.firstRecordAt === 'string' ? digest.firstRecordAt : null,
        };
    } catch {
      // No digest (the signed trail off, or not written yet): read.
    }
  }
  let records = 0;
  let firstAt: string | null = null;
  for await (const chunk of readFrom(file, fromOffset, toOffset)) {
    if (records === 0 && firstAt === null) firstAt = recordDate(chunk);
    records += recordLines(chunk);
  }
  return { records, firstAt };
}
