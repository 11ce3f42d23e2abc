// `meshaudit query --nats URL`: the records every zone's forwarder published to the central JetStream
// stream (docs/forwarding.md has the message contract), read with ordered, ephemeral consumers and
// merged by date. One consumer per (zone, instance) holds that sidecar's records in its trail's order;
// the k-way merge holds one record per source, so memory is bounded by the number of sources, not by
// the stream. Without --follow it ends at the last record the stream held when it started; with it,
// the records published after that follow in the stream's order, until SIGINT or SIGTERM.
import { once } from 'node:events';
import * as fs from 'node:fs';
import {
  type ConsumerMessages,
  type JetStreamClient,
  type JsMsg,
  JetStreamApiError,
  JetStreamError,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { connect, credsAuthenticator, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { parseRfc3339 } from '../events/rfc3339';
import { mergeByDate, type RecordSource } from '../record/merge-by-date';
import type { RecordFilter } from '../record/record-filter';
import {
  CHAIN_HEADER,
  DATE_HEADER,
  INSTANCE_HEADER,
  kindOfAction,
  POSITION_HEADER,
  parseSubject,
  subjectOf,
  ZONE_HEADER,
} from '../forward/nats-record';
import { natsFailure } from '../forward/nats-errors';
import { EXIT_OK, EXIT_REFUSED, EXIT_REFUSED_CALLER, EXIT_UNREACHABLE, EXIT_USAGE } from './command-line';

/** Bounds the wait for a server that never answers the connection (nats.js's own default is 20 s). */
const CONNECT_TIMEOUT_MS = 5_000;
/**
 * Records a source's consumer fetches ahead: the merge holds one per source, the client this many.
 * 64 records of ~500 bytes: ~32 KB per (zone, instance).
 */
const SOURCE_BUFFER_RECORDS = 64;
/** What --follow fetches ahead: one consumer, printed as the records come. */
const FOLLOW_BUFFER_RECORDS = 256;

/** The credentials and TLS of the reader, as the flags name them (files, read at start). */
interface NatsAuthFlags {
  readonly credsFile?: string;
  readonly user?: string;
  readonly passwordFile?: string;
  readonly tokenFile?: string;
  readonly caFile?: string;
}

export interface NatsQueryArgs {
  /** The servers to try, as given (`nats://host:4222`, comma-separated for a cluster). */
  readonly servers: readonly string[];
  readonly stream: string;
  /** The one zone to read; undefined: every zone. */
  readonly zone?: string;
  /** The actions asked for (`--action`): the subjects are narrowed to their kind when they share one. */
  readonly actions: readonly string[];
  readonly filter: RecordFilter;
  readonly follow: boolean;
  readonly json: boolean;
  readonly auth: NatsAuthFlags;
}

/**
 * The subject token of the records of `actions` (the contract's `<kind>`): `resource`, `token` or `view`
 * when they are all of one kind, `*` otherwise (every kind; the record filter picks the actions).
 */
export function kindToken(actions: readonly string[]): string {
  const kinds = new Set(actions.map(kindOfAction));
  const [kind] = kinds;
  // An action the contract does not know (the filter refuses it first) narrows nothing.
  return kinds.size === 1 && kind !== undefined ? kind : '*';
}

/** One sidecar's records in the stream: its zone and instance, and the subject of its records. */
interface Source {
  readonly zone: string;
  readonly instance: string;
  readonly subject: string;
}

/** A failure of the read, with the exit code it means. */
class NatsQueryError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Reads the records, prints them, and returns the exit code (a failure is one line on stderr). */
export async function queryNats(command: string, args: NatsQueryArgs): Promise<number> {
  let options: NodeConnectionOptions;
  try {
    options = connectionOptions(args);
  } catch (e) {
    process.stderr.write(`${command}: cannot read a credential: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  const where = args.servers.join(',');
  let nc: NatsConnection;
  try {
    nc = await connect(options);
  } catch (e) {
    const failure = classify(e, args, where);
    process.stderr.write(`${command}: ${failure.message}\n`);
    return failure.exitCode;
  }
  const reader = new Reader(nc, args);
  const interrupted = (): void => reader.stop();
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    await reader.run();
    return EXIT_OK;
  } catch (e) {
    // The client throws what it was doing when the connection closed (closed connection, a timeout).
    const failure = reader.lostConnection() ?? classify(e, args, where);
    process.stderr.write(`${command}: ${failure.message}\n`);
    return failure.exitCode;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await nc.close().catch(() => {});
  }
}

/** The connection's options: the servers, the credential files read now (a file that cannot be read throws). */
function connectionOptions(args: NatsQueryArgs): NodeConnectionOptions {
  const { auth } = args;
  const secret = (file: string): string => fs.readFileSync(file, 'utf8').trim();
  const options: NodeConnectionOptions = {
    servers: [...args.servers],
    name: 'meshaudit query',
    timeout: CONNECT_TIMEOUT_MS,
    // A read that ends must not wait for a server that went away; a follower rides out a restart.
    reconnect: args.follow,
    maxReconnectAttempts: -1,
  };
  if (auth.credsFile !== undefined) {
    const authenticator = credsAuthenticator(fs.readFileSync(auth.credsFile));
    // The client parses the file when it first signs a nonce: once now, so that a bad file is said here.
    try {
      authenticator('check');
    } catch (e) {
      throw new Error(`${auth.credsFile}: ${(e as Error).message} (a .creds file holds a user JWT and its NKey seed)`);
    }
    options.authenticator = authenticator;
  }
  if (auth.user !== undefined) {
    options.user = auth.user;
    if (auth.passwordFile !== undefined) options.pass = secret(auth.passwordFile);
  }
  if (auth.tokenFile !== undefined) options.token = secret(auth.tokenFile);
  if (auth.caFile !== undefined) options.tls = { ca: fs.readFileSync(auth.caFile, 'utf8') };
  return options;
}

/** What a failure says and its exit code (the command's help lists them). */
function classify(e: unknown, args: NatsQueryArgs, where: string): NatsQueryError {
  if (e instanceof NatsQueryError) return e;
  const message = (e as Error)?.message ?? String(e);
  const stream = JSON.stringify(args.stream);
  switch (natsFailure(e).kind) {
    case 'stream-not-found':
      return new NatsQueryError(
        `no stream ${stream} on ${where} (the forwarders create it with stream.create: true; --stream names another)`,
        EXIT_REFUSED,
      );
    case 'jetstream-not-enabled':
      return new NatsQueryError(`JetStream is not enabled on ${where} for this user: ${message}`, EXIT_REFUSED);
    case 'credentials':
      return new NatsQueryError(
        `the NATS server on ${where} refused the credentials (${message}): --nats-creds, --nats-user with --nats-password-file, or --nats-token-file`,
        EXIT_REFUSED_CALLER,
      );
    case 'permission':
      return new NatsQueryError(
        `the NATS server on ${where} does not allow this user to read stream ${stream} (${message}): deploy/nats/ has a reader's permissions`,
        EXIT_REFUSED_CALLER,
      );
    case 'tls':
      return new NatsQueryError(
        `no TLS connection to ${where}: ${message} (--nats-ca names the CA that signed the servers' certificates)`,
        EXIT_UNREACHABLE,
      );
    case 'unreachable':
      return new NatsQueryError(`no NATS server answers on ${where} (${message})`, EXIT_UNREACHABLE);
    case 'other':
      if (e instanceof JetStreamApiError || e instanceof JetStreamError)
        return new NatsQueryError(`JetStream refused the read: ${message}`, EXIT_REFUSED);
      throw e;
  }
}

/** One read of the stream: the records held at the start, merged; then, following, the new ones. */
class Reader {
  private readonly js: JetStreamClient;
  /** The consumers' message iterators open now: stop() ends them. */
  private readonly open = new Set<ConsumerMessages>();
  private stopped = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly args: NatsQueryArgs,
  ) {
    this.js = jetstream(nc);
  }

  /** Ends the read: every open iterator ends, and run() resolves once what it holds is printed. */
  stop(): void {
    this.stopped = true;
    for (const m of this.open) m.stop();
  }

  async run(): Promise<void> {
    const { args } = this;
    const kind = kindToken(args.actions);
    const zone = args.zone ?? '*';
    const jsm = await jetstreamManager(this.nc);
    // One request: the last sequence and the subjects it has records of, at the same moment.
    const info = await jsm.streams.info(args.stream, { subjects_filter: subjectOf(zone, '*', kind) });
    const lastSeq = info.state.last_seq;
    const sources = sourcesOf(Object.keys(info.state.subjects ?? {}), kind);
    // A zone the stream has no record of: said (a typo prints nothing otherwise), still a read that ends well.
    if (sources.length === 0 && args.zone !== undefined && !args.follow) {
      process.stderr.write(
        `meshaudit query: stream ${args.stream} holds no record of zone ${args.zone}${args.actions.length > 0 ? ' for these actions' : ''}\n`,
      );
    }
    const readers = await Promise.all(sources.map((s) => this.source(s, lastSeq)));
    const merged = mergeByDate(readers, (m) => parseRfc3339(m.headers?.get(DATE_HEADER) ?? ''));
    for await (const m of merged) await this.print(m);
    this.checkConnection();
    if (!args.follow || this.stopped) return;
    const consumer = await this.js.consumers.get(args.stream, {
      filter_subjects: subjectOf(zone, '*', kind),
      opt_start_seq: lastSeq + 1,
    });
    const messages = await consumer.consume({ max_messages: FOLLOW_BUFFER_RECORDS });
    this.open.add(messages);
    if (this.stopped) messages.stop();
    const { filter } = this.args;
    for await (const m of messages) if (filter.everyRecord === true || filter.matches(m.string())) await this.print(m);
    this.open.delete(messages);
  }

  /** The records of one source the stream held at `lastSeq` that match the filter, one at a time. */
  private async source(source: Source, lastSeq: number): Promise<RecordSource<JsMsg>> {
    const consumer = await this.js.consumers.get(this.args.stream, { filter_subjects: source.subject });
    // The count when the consumer was made: none left (retention removed them meanwhile) is an empty source.
    if ((await consumer.info(true)).num_pending === 0) return async () => undefined;
    const messages = await consumer.consume({ max_messages: SOURCE_BUFFER_RECORDS });
    this.open.add(messages);
    if (this.stopped) messages.stop();
    const it = messages[Symbol.asyncIterator]();
    let done = false;
    const finish = (): void => {
      done = true;
      messages.stop();
      this.open.delete(messages);
    };
    return async () => {
      while (!done) {
        const next = await it.next();
        if (next.done === true) {
          finish();
          return undefined;
        }
        const m = next.value;
        // Published after the start: the follower's (or nobody's).
        if (m.seq > lastSeq) {
          finish();
          return undefined;
        }
        // Nothing more in the stream for this source: no need to wait for a record that may never come.
        if (m.info.pending === 0) finish();
        if (this.args.filter.everyRecord === true || this.args.filter.matches(m.string())) return m;
      }
      return undefined;
    };
  }

  /** Prints one record (paced by standard output: a reader that stops, less or a pipe, stops the read). */
  private async print(m: JsMsg): Promise<void> {
    const h = m.headers;
    const text = this.args.json
      ? `${JSON.stringify({
          records: [m.string()],
          zone: h?.get(ZONE_HEADER) ?? '',
          instance: h?.get(INSTANCE_HEADER) ?? '',
          position: h?.get(POSITION_HEADER) ?? '',
          ...(h?.has(CHAIN_HEADER) === true ? { chain: h.get(CHAIN_HEADER) } : {}),
          sequence: m.seq,
        })}\n`
      : Buffer.concat([m.data, NEWLINE]);
    if (!process.stdout.write(text)) await once(process.stdout, 'drain');
  }

  /** The failure a connection closed while reading is (not the end of the stream), if it closed. */
  lostConnection(): NatsQueryError | undefined {
    if (!this.nc.isClosed() || this.stopped) return undefined;
    return new NatsQueryError('the connection to the NATS server was lost before the read ended', EXIT_UNREACHABLE);
  }

  /** A connection lost while reading may end the iterators early rather than throw: a failure all the same. */
  private checkConnection(): void {
    const lost = this.lostConnection();
    if (lost !== undefined) throw lost;
  }
}

const NEWLINE = Buffer.from('\n');

/**
 * The sources of `subjects` (`meshaudit.<zone>.<instance>.<kind>`), one per (zone, instance), in the
 * order of their names: the merge keeps that order for records of the same date.
 */
function sourcesOf(subjects: readonly string[], kind: string): Source[] {
  const byName = new Map<string, Source>();
  for (const subject of subjects) {
    const tokens = parseSubject(subject);
    if (tokens === undefined) continue;
    const { zone, instance } = tokens;
    const key = `${zone}.${instance}`;
    if (!byName.has(key)) byName.set(key, { zone, instance, subject: subjectOf(zone, instance, kind) });
  }
  return [...byName.values()].sort((a, b) =>
    a.zone === b.zone ? compare(a.instance, b.instance) : compare(a.zone, b.zone),
  );
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
