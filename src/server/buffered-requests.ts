// The bytes of request messages received in part, all connections together, bounded by
// meshaudit.limits.bufferedRequestBytes.
//
// grpc-js keeps each message until it is whole (up to messageBytes), and it reads every stream as fast
// as data comes, so HTTP/2 flow control never stops a client that sends the start of many messages
// and never their end: 300 streams each holding an unfinished 4 MiB message took 1.3 GB. This watches
// the same data as grpc-js (a second 'data' listener on each HTTP/2 stream, which neither reads nor
// pauses it) and follows the gRPC framing, a 5-byte prefix (flag, then the length) before each message:
// the work is per chunk and per message, never per byte of a message. When the bytes held in unfinished
// messages pass the budget, the connection that holds the most is closed, with a warning naming the
// limit and the peer; its calls end and the other connections go on.
import type * as http2 from 'node:http2';
import type { Logger } from '../log';

/** The gRPC message prefix: a compressed flag byte, then the length in 4 bytes, big-endian. */
const PREFIX_BYTES = 5;

/** One connection: what its streams hold. */
interface Connection {
  readonly session: http2.ServerHttp2Session;
  readonly peer: string;
  held: number;
  /** Closed (by the guard or by its end): its streams count no more. */
  gone: boolean;
}

/** Where one stream is in its current message. */
interface Progress {
  readonly connection: Connection;
  /** Bytes of the current, unfinished message received so far, prefix included. */
  held: number;
  /** Bytes of the prefix read (0 to 5). */
  prefixRead: number;
  /** The message's length, as far as the prefix is read. */
  length: number;
  /** Bytes of the message body still to come, once the prefix is whole. */
  bodyLeft: number;
}

export class BufferedRequests {
  private readonly connections = new Map<http2.ServerHttp2Session, Connection>();
  private total = 0;

  constructor(
    /** meshaudit.limits.bufferedRequestBytes. */
    private maxBytes: number,
    private readonly log: Logger,
  ) {}

  /** A new meshaudit.limits.bufferedRequestBytes (a config reload): checked from the next chunk received. */
  setMaxBytes(bytes: number): void {
    this.maxBytes = bytes;
  }

  /** Bytes held in unfinished request messages now, all connections together. */
  get heldBytes(): number {
    return this.total;
  }

  /** Follows the streams of every connection of `server` (the HTTP/2 server grpc-js serves on). */
  watch(server: http2.Http2Server): void {
    server.on('session', (session: http2.ServerHttp2Session) => this.addConnection(session));
    server.on('stream', (stream: http2.ServerHttp2Stream) => this.addStream(stream));
  }

  private addConnection(session: http2.ServerHttp2Session): void {
    const socket = session.socket;
    const peer = `${socket?.remoteAddress ?? '?'}:${socket?.remotePort ?? '?'}`;
    const connection: Connection = { session, peer, held: 0, gone: false };
    this.connections.set(session, connection);
    session.once('close', () => this.drop(connection));
  }

  private addStream(stream: http2.ServerHttp2Stream): void {
    const connection = this.connections.get(stream.session as http2.ServerHttp2Session);
    if (connection === undefined) return;
    const p: Progress = { connection, held: 0, prefixRead: 0, length: 0, bodyLeft: 0 };
    stream.on('data', (chunk: Buffer) => this.onData(p, chunk));
    stream.once('close', () => this.release(p));
  }

  private onData(p: Progress, chunk: Buffer): void {
    if (p.connection.gone) return;
    let held = p.held;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (p.prefixRead < PREFIX_BYTES) {
        // Bytes 1 to 4 are the length (byte 0 is the compressed flag); multiplied, not shifted: 2^32 - 1 stays positive.
        if (p.prefixRead > 0) p.length = p.length * 256 + chunk[i]!;
        i++;
        held++;
        if (++p.prefixRead < PREFIX_BYTES) continue;
        p.bodyLeft = p.length;
      } else {
        const take = Math.min(p.bodyLeft, n - i);
        i += take;
        held += take;
        p.bodyLeft -= take;
      }
      if (p.bodyLeft === 0) {
        // Whole: grpc-js hands it on; the handler's own back-pressure (and HTTP/2's) bounds what follows.
        held = 0;
        p.prefixRead = 0;
        p.length = 0;
      }
    }
    this.change(p, held);
    if (this.total > this.maxBytes) this.closeLargest();
  }

  private release(p: Progress): void {
    if (!p.connection.gone) this.change(p, 0);
  }

  private change(p: Progress, held: number): void {
    const delta = held - p.held;
    p.held = held;
    p.connection.held += delta;
    this.total += delta;
  }

  private drop(connection: Connection): void {
    if (connection.gone) return;
    connection.gone = true;
    this.total -= connection.held;
    this.connections.delete(connection.session);
  }

  /** Closes the connection holding the most, at once: its bytes no longer count. */
  private closeLargest(): void {
    let largest: Connection | undefined;
    for (const c of this.connections.values()) if (largest === undefined || c.held > largest.held) largest = c;
    if (largest === undefined) return;
    this.log.warn(
      'closed a connection: unfinished request messages passed meshaudit.limits.bufferedRequestBytes; it held the most',
      { peer: largest.peer, heldBytes: largest.held, allHeldBytes: this.total, limit: this.maxBytes },
    );
    this.drop(largest);
    largest.session.destroy();
  }
}
