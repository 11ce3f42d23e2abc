// What the two naive baselines share: the contract loaded with proto-loader's DEFAULT conversion
// (Long objects, numeric enums, no defaults: what a first grpc-js server gets), one rotating-file-stream
// with the benchmark's rotation size, start-up on a given port, and a clean stop on SIGTERM.
// Nothing here is meshaudit code: it is the yardstick the issue sets (issue 4, "the naive baseline").
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createStream, type RotatingFileStream } from 'rotating-file-stream';
import { protoFile } from './events';

export interface NaiveArgs {
  /** 0: any free port (the ready line names it). */
  port: number;
  /** Folder of the audit files: audit.log, then audit-0001.log, ... once rotated. */
  dir: string;
  /** Rotate once a write makes the file reach this many MiB, as the sidecar does. */
  maxSizeMb: number;
}

export function naiveArgs(argv: string[]): NaiveArgs {
  const get = (flag: string): string => {
    const i = argv.indexOf(flag);
    if (i < 0 || i + 1 >= argv.length) throw new Error(`missing ${flag}`);
    return argv[i + 1];
  };
  return { port: Number(get('--port')), dir: get('--dir'), maxSizeMb: Number(get('--max-size-mb')) };
}

export function naiveFile(args: NaiveArgs): RotatingFileStream {
  // Rotated files named as lumberjack names them (audit-<UTC time to the ms>.log, a ms later per attempt
  // while the name is taken), so that the benchmark's exactly-once check finds them.
  const name = (time: number | Date, index?: number): string =>
    time
      ? `audit-${new Date(new Date(time).getTime() + Math.max(0, (index ?? 1) - 1)).toISOString().slice(0, 23).replace(/:/g, '-')}.log`
      : 'audit.log';
  const out = createStream(name, {
    path: args.dir,
    size: `${args.maxSizeMb}M`,
  });
  out.on('error', (err) => {
    process.stderr.write(`naive server: audit file failed: ${err.message}\n`);
    process.exit(1);
  });
  return out;
}

/** The AuditService definition, converted the default way. */
export function naiveService(): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync(protoFile());
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    meshaudit: { v1: { AuditService: grpc.ServiceClientConstructor } };
  };
  return pkg.meshaudit.v1.AuditService.service;
}

/** Serves `handlers` on 127.0.0.1:port, prints {"ready":port} on stdout, and stops cleanly on SIGTERM. */
export function serveNaive(
  args: NaiveArgs,
  handlers: grpc.UntypedServiceImplementation,
  out: RotatingFileStream,
): void {
  const server = new grpc.Server();
  server.addService(naiveService(), handlers);
  server.bindAsync(`127.0.0.1:${args.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      process.stderr.write(`naive server: can't listen on ${args.port}: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`${JSON.stringify({ ready: port })}\n`);
  });
  process.on('SIGTERM', () => {
    // Whatever happens, the process is gone within 5 s.
    setTimeout(() => process.exit(1), 5000).unref();
    server.tryShutdown(() => out.end(() => process.exit(0)));
  });
}
