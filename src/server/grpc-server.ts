// The gRPC server: services, health, and a drain that never waits forever.
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from '../log';
import type { AuditServiceImpl } from './audit-service';
import type { RuleServiceImpl } from './rule-service';
import { loadMeshaudit } from './proto';
import { addReflection } from './reflection';

export const AUDIT_SERVICE_NAME = 'meshaudit.v1.AuditService';
export const RULE_SERVICE_NAME = 'meshaudit.v1.RuleService';

export interface GrpcServerOptions {
  address: string;
  maxMessageBytes: number;
  audit: AuditServiceImpl;
  rules: RuleServiceImpl;
  log: Logger;
}

export interface RunningGrpcServer {
  /** The bound port (useful with address port 0). */
  readonly port: number;
  readonly server: grpc.Server;
  readonly health: HealthImplementation;
  /** Stops taking calls and ends the control-plane streams after their in-flight acks. */
  beginDrain(): void;
  /** Closes what is left: after `graceMs` in tryShutdown, forceShutdown. */
  shutdown(graceMs: number): Promise<void>;
}

export async function startGrpcServer(opts: GrpcServerOptions): Promise<RunningGrpcServer> {
  const { pkg } = loadMeshaudit();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes,
    'grpc.max_send_message_length': opts.maxMessageBytes,
  });
  server.addService(pkg.AuditService.service, opts.audit.handlers());
  server.addService(pkg.RuleService.service, opts.rules.handlers());
  const health = new HealthImplementation({ '': 'SERVING', [AUDIT_SERVICE_NAME]: 'SERVING', [RULE_SERVICE_NAME]: 'SERVING' });
  health.addToServer(server);
  // Reflection lets grpcurl list, describe and call every service without a .proto file at hand.
  addReflection(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(opts.address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    server,
    health,
    beginDrain() {
      for (const name of ['', AUDIT_SERVICE_NAME, RULE_SERVICE_NAME]) health.setStatus(name, 'NOT_SERVING');
      opts.audit.drain();
      opts.rules.drain();
    },
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
