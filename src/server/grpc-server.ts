// The gRPC server: services, health, and a drain that never waits forever.
import { EventEmitter } from 'node:events';
import type * as http2 from 'node:http2';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import * as fs from 'node:fs';
import type { TlsConfig, UnixSocketConfig } from '../config';
import { type Logger, RateLimitedWarning } from '../log';
import { TlsFiles } from './tls';
import { TRANSPORT_KEY } from './authn';
import type { AuditServiceImpl } from './audit-service';
import { exactRequests } from './requests';
import { fastReadService, type ReadServiceImpl } from './read-service';
import type { RuleServiceImpl } from './rule-service';
import type { ServingState } from './serving-state';
import { contract } from '../contract';
import { MeshauditError } from '../errors';
import { addReflection } from './reflection';
import { fastAuditService } from './fast-codec';
import { BufferedRequests } from './buffered-requests';
import type { Statuses } from './status';

const AUDIT_SERVICE_NAME = 'meshaudit.v1.AuditService';
const RULE_SERVICE_NAME = 'meshaudit.v1.RuleService';
const READ_SERVICE_NAME = 'meshaudit.v1.ReadService';

export interface GrpcServerOptions {
  audit: AuditServiceImpl;
  rules: RuleServiceImpl;
  read: ReadServiceImpl;
  serving: ServingState;
  log: Logger;
  /** Maps errors to statuses: health's and reflection's are bounded like the services' own. */
  statuses: Statuses;
}

/** The listen address cannot be used; the message names the config key. */
export class ListenError extends MeshauditError {
  readonly kind = 'unavailable';
}

/** A server bound to its port, serving nothing yet. */
export interface BoundGrpcServer {
  readonly server: grpc.Server;
  readonly port: number;
  /** Accepts the connections (meshaudit.limits.connections) and hands them to `server`. */
  readonly listener: net.Server;
  /** Closes the listener and every connection at once. */
  forceClose(): void;
  /** Starts serving the connections: those that came while starting waited until now (see bindGrpcServer). */
  open(): void;
  /** The TLS files the connections are served with (meshaudit.grpc.tls); undefined: plaintext. */
  readonly tls: TlsFiles | undefined;
  /** Stops accepting on the Unix socket and removes its file (a clean stop). */
  closeUnixSocket(): void;
  /**
   * New limits (a config reload): connections and streamsPerConnection for new connections,
   * bufferedRequestBytes from the next chunk received. messageBytes is fixed when grpc-js builds the
   * server (grpc.max_receive_message_length): it needs a restart (src/config/reload.ts).
   */
  setLimits(limits: Omit<ServerLimits, 'messageBytes'>): void;
}

/** The limits the server itself enforces (meshaudit.limits). */
export interface ServerLimits {
  readonly messageBytes: number;
  readonly connections: number;
  readonly streamsPerConnection: number;
  readonly bufferedRequestBytes: number;
}

/**
 * Binds the port before anything else starts, so that a port in use (say, another sidecar already
 * running) stops start-up before any state or audit file is opened. A connection that arrives before
 * `serveGrpc` waits, unserved, until then (health included): its calls wait within their deadlines.
 *
 * The sidecar accepts the connections itself and hands each to grpc-js (its connection injector): so
 * that their number is bounded (net.Server's maxConnections closes one past it as it comes), and so
 * that the bytes of unfinished request messages are bounded across them all (src/server/buffered-requests.ts).
 * Without both, the memory a client can pin is connections x streamsPerConnection x messageBytes.
 */
export async function bindGrpcServer(
  address: string,
  limits: ServerLimits,
  log: Logger,
  tlsConfig?: TlsConfig,
  unixSocket?: UnixSocketConfig,
): Promise<BoundGrpcServer> {
  // Read first: TLS files that cannot be used stop start-up (exit 2) before the port is taken.
  const tlsFiles = tlsConfig === undefined ? undefined : new TlsFiles(tlsConfig, log);
  const server = new grpc.Server({
    // Requests only: replies are acks, small, and reflection's answers (~13 KB), which a small
    // messageBytes must not break.
    'grpc.max_receive_message_length': limits.messageBytes,
    // Each open call may hold a message of up to messageBytes: the number of calls bounds that.
    'grpc.max_concurrent_streams': limits.streamsPerConnection,
    // Channelz (grpc-js's introspection service) is not served here; without it grpc-js keeps no
    // per-call counters and call history, which a Record call paid for on every call.
    'grpc.enable_channelz': 0,
  });
  const buffered = new BufferedRequests(limits.bufferedRequestBytes, log);
  const warnings = new RateLimitedWarning(log, 10_000);
  const http2Servers: http2.Http2Server[] = [];
  let connections = limits.connections;
  // With a Unix socket, each call is tagged with the transport it came by (src/server/authn.ts): the
  // socket's callers are its identity, and a TCP caller cannot claim to be one.
  const tcpCredentials = tlsFiles?.credentials() ?? grpc.ServerCredentials.createInsecure();
  const tcp = injectorFor(
    server,
    unixSocket === undefined ? tcpCredentials : tagTransport(tcpCredentials, 'tcp'),
    buffered,
    warnings,
    http2Servers,
  );
  const unix =
    unixSocket === undefined
      ? undefined
      : injectorFor(
          server,
          tagTransport(grpc.ServerCredentials.createInsecure(), 'unix-socket'),
          buffered,
          warnings,
          http2Servers,
        );
  // A connection that comes while the sidecar starts (the port is bound first) waits, unserved, until
  // the services are added: served at once, its calls would be answered UNIMPLEMENTED, which a client
  // takes for a wrong address. Its calls wait instead, within their deadline.
  let waiting: Array<() => void> | undefined = [];
  const accept =
    (injector: grpc.ConnectionInjector) =>
    (socket: net.Socket): void => {
      const serve = (): void => {
        if (!socket.destroyed) injector.injectConnection(socket);
      };
      if (waiting) waiting.push(serve);
      else serve();
    };
  const listener = net.createServer({ noDelay: true }, accept(tcp));
  const unixListener = unix === undefined ? undefined : net.createServer(accept(unix));
  listener.maxConnections = limits.connections;
  // A client retrying in a loop must not flood the log: one line per 10 s, counting the others.
  listener.on('drop', () =>
    warnings.warn('connections', 'refused connections: meshaudit.limits.connections are open', {
      limit: connections,
    }),
  );
  let boundUnix = false;
  const closeUnix = (): void => {
    unixListener?.close();
    if (boundUnix) removeSocketFile(unixSocket!.path);
    boundUnix = false;
  };
  // meshaudit.grpc.address "off": the Unix socket alone.
  const tcpOn = address !== 'off';
  const forceClose = (): void => {
    tlsFiles?.close();
    if (listener.listening) listener.close();
    closeUnix();
    waiting = [];
    server.forceShutdown();
  };
  try {
    if (tcpOn) {
      const { host, port } = splitHostPort(address);
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen({ host, port }, () => {
          listener.off('error', reject);
          resolve();
        });
      });
    }
    if (unixListener !== undefined) {
      unixListener.maxConnections = limits.connections;
      await listenOnSocketFile(unixListener, unixSocket!);
      boundUnix = true;
    }
    const open = (): void => {
      const early = waiting ?? [];
      waiting = undefined;
      for (const serve of early) serve();
    };
    return {
      server,
      port: tcpOn ? (listener.address() as net.AddressInfo).port : 0,
      listener,
      forceClose,
      open,
      closeUnixSocket: closeUnix,
      tls: tlsFiles,
      setLimits(next) {
        connections = next.connections;
        listener.maxConnections = next.connections;
        if (unixListener !== undefined) unixListener.maxConnections = next.connections;
        buffered.setMaxBytes(next.bufferedRequestBytes);
        // Node's HTTP/2 server sends these settings to each new session; the open ones keep theirs.
        for (const h of http2Servers) h.updateSettings({ maxConcurrentStreams: next.streamsPerConnection });
      },
    };
  } catch (err) {
    forceClose();
    if (err instanceof ListenError) throw err;
    throw listenError(address, 'meshaudit.grpc.address', err);
  }
}

/** Why listening on `address` (the value of config key `key`) failed, in words an operator acts on. */
export function listenError(address: string, key: string, err: unknown): ListenError {
  const code = (err as NodeJS.ErrnoException).code;
  const reason =
    code === 'EADDRINUSE'
      ? 'the address is already in use (is another sidecar running?)'
      : code === 'EADDRNOTAVAIL'
        ? 'this machine has no such address'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? 'no such host'
            : (err as Error).message;
  return new ListenError(`can't listen on ${address} (${key}): ${reason}`);
}

/** host:port or [IPv6]:port (checked by the config) as listen() takes them. */
export function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(address.slice(colon + 1)) };
}

/**
 * A connection injector, and the bound on buffered request bytes on the HTTP/2 server behind it. grpc-js
 * does not expose that server: it is the entry its injector adds to its private map of servers (no port
 * is bound through grpc-js). Should a grpc-js update move it, start-up fails here, loudly, rather than
 * the bound going quietly away.
 */
function injectorFor(
  server: grpc.Server,
  credentials: grpc.ServerCredentials,
  buffered: BufferedRequests,
  warnings: RateLimitedWarning,
  http2Servers: http2.Http2Server[],
): grpc.ConnectionInjector {
  const servers = (server as unknown as { http2Servers?: Map<unknown, unknown> }).http2Servers;
  const before = servers instanceof Map ? new Set(servers.keys()) : new Set();
  const injector = server.createConnectionInjector(credentials);
  const added = servers instanceof Map ? [...servers.keys()].filter((k) => !before.has(k)) : [];
  const found = added.length === 1 ? added[0] : undefined;
  if (!(found instanceof EventEmitter) || typeof (found as http2.Http2Server).listen !== 'function') {
    throw new Error('grpc-js no longer keeps its HTTP/2 servers where meshaudit looks for them (http2Servers)');
  }
  buffered.watch(found as http2.Http2Server);
  http2Servers.push(found as http2.Http2Server);
  logTlsRefusals(found as http2.Http2Server, warnings);
  return injector;
}

/**
 * A handshake refused (no client certificate where one is required, one no CA signed, an expired one,
 * plaintext on a TLS port) never becomes a call, so it would be logged nowhere: it is, once per 10 s.
 */
function logTlsRefusals(http2Server: http2.Http2Server, warnings: RateLimitedWarning): void {
  http2Server.on('tlsClientError', (err: Error, socket: net.Socket) =>
    warnings.warn('tls', 'TLS handshake refused', {
      peer: `${socket.remoteAddress}:${socket.remotePort}`,
      reason: err.message,
    }),
  );
}

/** Credentials whose calls carry TRANSPORT_KEY = `transport`, whatever the client sent in it. */
function tagTransport(credentials: grpc.ServerCredentials, transport: 'tcp' | 'unix-socket'): grpc.ServerCredentials {
  const tag: grpc.ServerInterceptor = (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            metadata.set(TRANSPORT_KEY, transport);
            nextMetadata(metadata);
          },
        }),
    });
  return grpc.experimental.createServerCredentialsWithInterceptors(credentials, [tag]);
}

/**
 * Listens on the socket file with its mode from the start (the umask is narrowed around the bind, so no
 * one else can connect in between). A stale file (no one accepts on it: a crash) is replaced; one a
 * live process listens on, or anything that is not a socket, stops start-up naming the key.
 */
async function listenOnSocketFile(listener: net.Server, config: UnixSocketConfig): Promise<void> {
  const at = `${config.path} (meshaudit.grpc.unixSocket.path)`;
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(config.path);
  } catch {
    st = undefined;
  }
  if (st !== undefined) {
    if (!st.isSocket()) throw new ListenError(`can't listen on ${at}: it exists and is not a socket`);
    const live = await new Promise<boolean>((resolve) => {
      const probe = net.connect(config.path, () => {
        probe.destroy();
        resolve(true);
      });
      probe.on('error', () => resolve(false));
    });
    if (live)
      throw new ListenError(`can't listen on ${at}: another process accepts on it (is another sidecar running?)`);
    fs.unlinkSync(config.path);
  }
  const umask = process.umask(0o777 & ~config.mode);
  try {
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(config.path, () => {
        listener.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    throw new ListenError(`can't listen on ${at}: ${(err as Error).message}`);
  } finally {
    process.umask(umask);
  }
  fs.chmodSync(config.path, config.mode);
}

function removeSocketFile(file: string): void {
  try {
    if (fs.lstatSync(file).isSocket()) fs.unlinkSync(file);
  } catch {
    // Gone already.
  }
}

export interface RunningGrpcServer {
  /** The bound port (useful with address port 0); 0 when TCP is off (meshaudit.grpc.address "off"). */
  readonly port: number;
  readonly server: grpc.Server;
  /** Closes what is left: after `graceMs` in tryShutdown, forceShutdown. */
  shutdown(graceMs: number): Promise<void>;
}

/** Adds every service to a bound server: from here on it answers calls. */
export function serveGrpc(bound: BoundGrpcServer, opts: GrpcServerOptions): RunningGrpcServer {
  const { server, port, listener } = bound;
  const definition = contract().packageDefinition;
  const service = (name: string): grpc.ServiceDefinition => definition[name] as grpc.ServiceDefinition;
  server.addService(fastAuditService(service(AUDIT_SERVICE_NAME)), opts.audit.handlers());
  server.addService(exactRequests(service(RULE_SERVICE_NAME)), opts.rules.handlers());
  server.addService(fastReadService(exactRequests(service(READ_SERVICE_NAME))), opts.read.handlers());
  const health = new HealthImplementation({
    '': 'SERVING',
    [AUDIT_SERVICE_NAME]: 'SERVING',
    [RULE_SERVICE_NAME]: 'SERVING',
    [READ_SERVICE_NAME]: 'SERVING',
  });
  health.addToServer(boundedStatuses(server, opts.statuses));
  // Health follows the serving state: a draining sidecar is NOT_SERVING, so that a load balancer or
  // a CP's health check moves on before the streams end; so is one that cannot write its audit files
  // or its checkpoint, until it can again, and one an operator failed by hand (the admin's
  // /healthcheck/fail): the admin's /ready reads the same state.
  const follow = (): void => {
    const status = opts.serving.healthy ? 'SERVING' : 'NOT_SERVING';
    for (const name of ['', AUDIT_SERVICE_NAME, RULE_SERVICE_NAME, READ_SERVICE_NAME]) health.setStatus(name, status);
  };
  opts.serving.on('change', follow);
  follow();
  // Reflection lets grpcurl list, describe and call every service without a .proto file at hand.
  addReflection(server, opts.statuses);
  bound.open();

  return {
    port,
    server,
    shutdown(graceMs: number) {
      // tryShutdown waits on every open call, health Watch streams included, which a client may keep
      // open forever: after graceMs the rest is cut.
      // No new connection from here on; those open finish their calls.
      if (listener.listening) listener.close();
      bound.closeUnixSocket();
      bound.tls?.close();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/**
 * `server` as a library adding its services sees it: every error a unary handler of theirs answers is
 * bounded by `statuses` (grpc-health-check's Check quotes the service name asked for whole: a 1 MiB name
 * made a status too large for the trailers, never answered, and it stalled the connection).
 */
function boundedStatuses(server: grpc.Server, statuses: Statuses): grpc.Server {
  const addService = (service: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void => {
    // A library's implementation may name its methods by their original (.proto) or their lowerCamel name.
    const unary = new Set<string>();
    for (const [name, method] of Object.entries(service)) {
      if (method.requestStream || method.responseStream) continue;
      unary.add(name);
      if (method.originalName !== undefined) unary.add(method.originalName);
    }
    const bounded: grpc.UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(impl)) {
      bounded[name] = unary.has(name)
        ? boundedUnary(handler as grpc.handleUnaryCall<unknown, unknown>, statuses)
        : handler;
    }
    server.addService(service, bounded);
  };
  return { addService } as unknown as grpc.Server;
}

function boundedUnary(
  handler: grpc.handleUnaryCall<unknown, unknown>,
  statuses: Statuses,
): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) =>
    handler(call, (err, value) =>
      err
        ? callback(statuses.ofLibrary({ code: err.code ?? grpc.status.UNKNOWN, details: err.details }))
        : callback(null, value),
    );
}
