// `meshaudit health`: asks the sidecar's grpc.health.v1.Health whether it serves, for exec probes and
// scripts (gRPC listens on loopback in a pod: the kubelet's own gRPC probe cannot reach it).
import * as grpc from '@grpc/grpc-js';
import { healthClient } from '../client/services';
import {
  CLIENT_HELP,
  CLIENT_OPTIONS,
  CLIENT_SYNOPSIS,
  COMMON_OPTIONS,
  EXIT_OK,
  EXIT_REFUSED,
  type OptionSpecs,
  startClientCommand,
  UsageError,
  unreachable,
} from './command-line';

const COMMAND = 'meshaudit health';
/**
 * How long the check may take, connecting included. A sidecar that is starting holds the call until it
 * serves: past this it counts as not serving. Below a probe's own timeout when set to 10 s.
 */
const CHECK_DEADLINE_MS = 5_000;

const EXIT_SERVING = EXIT_OK;
const EXIT_NOT_SERVING = EXIT_REFUSED;

const SYNOPSIS = `${COMMAND} ${CLIENT_SYNOPSIS} [--service NAME]`;
export const HEALTH_USAGE = `Usage: ${SYNOPSIS}

Asks the sidecar's grpc.health.v1.Health whether it serves: what its admin /ready says (NOT_SERVING
while starting or draining, after POST /healthcheck/fail, and while an audit file or the checkpoint
cannot be written). For an exec probe, or a script waiting for the sidecar.
${CLIENT_HELP}
  --service NAME        the service to ask about (default "": the sidecar as a whole;
                        meshaudit.v1.AuditService, meshaudit.v1.RuleService)
  --help                print this help and exit
  --version             print the version and exit
Exit codes:
  0  SERVING (printed on stdout)
  1  anything else: NOT_SERVING, an unknown service, no answer within ${CHECK_DEADLINE_MS / 1000} s, no sidecar, a refused caller (on stderr)
  2  invalid flags, or a credential file cannot be read`;

const OPTIONS = { ...CLIENT_OPTIONS, service: { type: 'string' }, ...COMMON_OPTIONS } as const satisfies OptionSpecs;

type HealthClient = grpc.Client & {
  Check(
    request: { service: string },
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, reply: { status: string }) => void,
  ): void;
};

/** Runs `meshaudit health`; returns the exit code. */
export async function runHealthCommand(argv: readonly string[]): Promise<number> {
  const started = startClientCommand(argv, {
    name: COMMAND,
    synopsis: SYNOPSIS,
    usage: HEALTH_USAGE,
    options: OPTIONS,
    read: ({ values, positionals }) => {
      if (positionals.length > 0) throw new UsageError(`unexpected ${JSON.stringify(positionals[0])}`);
      return { service: (values.service as string | undefined) ?? '' };
    },
  });
  if (typeof started === 'number') return started;
  const { flags, credentials } = started;
  const { service } = started.args;
  const named = service === '' ? 'the sidecar' : service;
  const client = new (healthClient())(flags.address, credentials.channel) as unknown as HealthClient;
  try {
    const reply = await new Promise<{ status: string }>((resolve, reject) =>
      client.Check({ service }, credentials.metadata, { deadline: Date.now() + CHECK_DEADLINE_MS }, (err, r) =>
        err ? reject(err) : resolve(r),
      ),
    );
    if (reply.status === 'SERVING') {
      process.stdout.write(`SERVING: ${named} on ${flags.address}\n`);
      return EXIT_SERVING;
    }
    process.stderr.write(
      `${COMMAND}: ${reply.status}: ${named} on ${flags.address} does not serve ` +
        '(starting, draining, failing, or POST /healthcheck/fail: its admin /ready says why)\n',
    );
    return EXIT_NOT_SERVING;
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (err.code === grpc.status.UNAVAILABLE) process.stderr.write(`${unreachable(COMMAND, flags.address)}\n`);
    else if (err.code === grpc.status.DEADLINE_EXCEEDED)
      process.stderr.write(
        `${COMMAND}: ${flags.address} did not answer within ${CHECK_DEADLINE_MS / 1000} s (a sidecar still starting?)\n`,
      );
    else if (err.code === grpc.status.NOT_FOUND)
      process.stderr.write(
        `${COMMAND}: NOT_FOUND: the sidecar on ${flags.address} has no service ${JSON.stringify(service)}\n`,
      );
    else process.stderr.write(`${COMMAND}: ${grpc.status[err.code] ?? err.code}: ${err.details}\n`);
    return EXIT_NOT_SERVING;
  } finally {
    client.close();
  }
}
