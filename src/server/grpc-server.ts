// The gRPC server: services, health, and a drain that never waits forever.
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from '../log';
import type { AuditServiceImpl } from './audit-service';
import { exactRequests } from './requests';
import type { RuleServiceImpl } from './rule-service';
import type { ServingState } from './serving-state';
import { contract } from '../contract';
import { MeshauditError } from '../errors';
import { addReflection } from './reflection';
import { fastAuditService } from './fast-codec';
import type { Statuses } from './status';

const AUDIT_SERVICE_NAME = 'meshaudit.v1.AuditService';
const RULE_SERVICE_NAME = 'meshaudit.v1.RuleService';

export interface GrpcServerOptions {
  audit: AuditServiceImpl;
  rules: RuleServiceImpl;
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
}

/**
 * Binds the port before anything else starts, so that a port in use (say, another sidecar already
 * running) stops start-up before any state or audit file is opened. Calls that arrive before
 * `serveGrpc` get UNIMPLEMENTED, and health is not served yet either.
 */
export async function bindGrpcServer(
  address: string,
  limits: { maxMessageBytes: number; streamsPerConnection: number },
): Promise<BoundGrpcServer> {
  const server = new grpc.Server({
    // Requests only: replies are acks, small, and reflection's answers (~13 KB), which a small
    // maxMessageBytes must not break.
    'grpc.max_receive_message_length': limits.maxMessageBytes,
    // Each open call may hold a message of up to maxMessageBytes: the number of calls bounds that.
    'grpc.max_concurrent_streams': limits.streamsPerConnection,
    // Channelz (grpc-js's introspection service) is not served here; without it grpc-js keeps no
    // per-call counters and call history, which a Record call paid for on every call.
    'grpc.enable_channelz': 0,
  });
  try {
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    return { server, port };
  } catch (err) {
    server.forceShutdown();
    const message = (err as Error).message;
    // grpc-js gives no error code for a failed bind, only its message, which wraps the system's: "No address added out of total 1 resolved errors: [listen EADDRINUSE: ...]".
    const reason = /EADDRINUSE/.test(message)
      ? 'the address is already in use (is another sidecar running?)'
      : /EADDRNOTAVAIL/.test(message)
        ? 'this machine has no such address'
        : /EACCES/.test(message)
          ? 'permission denied'
          : message.replace(/^No address added out of total \d+ resolved errors: /, '');
    throw new ListenError(`can't listen on ${address} (meshaudit.grpc.address): ${reason}`);
  }
}

export interface RunningGrpcServer {
  /** The bound port (useful with address port 0). */
  readonly port: number;
  readonly server: grpc.Server;
  /** Closes what is left: after `graceMs` in tryShutdown, forceShutdown. */
  shutdown(graceMs: number): Promise<void>;
}

/** Adds every service to a bound server: from here on it answers calls. */
export function serveGrpc(bound: BoundGrpcServer, opts: GrpcServerOptions): RunningGrpcServer {
  const { server, port } = bound;
  const definition = contract().packageDefinition;
  const service = (name: string): grpc.ServiceDefinition => definition[name] as grpc.ServiceDefinition;
  server.addService(fastAuditService(service(AUDIT_SERVICE_NAME)), opts.audit.handlers());
  server.addService(exactRequests(service(RULE_SERVICE_NAME)), opts.rules.handlers());
  const health = new HealthImplementation({
    '': 'SERVING',
    [AUDIT_SERVICE_NAME]: 'SERVING',
    [RULE_SERVICE_NAME]: 'SERVING',
  });
  health.addToServer(boundedStatuses(server, opts.statuses));
  // Health follows the serving state: a draining sidecar is NOT_SERVING, so that a load balancer or
  // a CP's health check moves on before the streams end; so is one that cannot write its audit files
  // or its checkpoint, until it can again.
  const follow = (): void => {
    const status = opts.serving.healthy ? 'SERVING' : 'NOT_SERVING';
    for (const name of ['', AUDIT_SERVICE_NAME, RULE_SERVICE_NAME]) health.setStatus(name, status);
  };
  opts.serving.on('draining', follow);
  opts.serving.on('failing', follow);
  follow();
  // Reflection lets grpcurl list, describe and call every service without a .proto file at hand.
  addReflection(server, opts.statuses);

  return {
    port,
    server,
    shutdown(graceMs: number) {
      // tryShutdown waits on every open call, health Watch streams included, which a client may keep
      // open forever: after graceMs the rest is cut.
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
