// `meshaudit health`: asks the sidecar's grpc.health.v1.Health whether it serves, for exec probes and
// scripts (gRPC listens on loopback in a pod: the kubelet's own gRPC probe cannot reach it).
import { setTimeout as sleep } from 'node:timers/promises';
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

/**
 * With --wait, how often to ask again. Also the channel's reconnect backoff (grpc's own starts at 1 s and
 * grows to 120 s): a sidecar that starts listening is found within about this long.
 */
const WAIT_INTERVAL_MS = 500;

const EXIT_SERVING = EXIT_OK;
const EXIT_NOT_SERVING = EXIT_REFUSED;

const SYNOPSIS = `${COMMAND} ${CLIENT_SYNOPSIS} [--service NAME] [--wait SECONDS]`;
export const HEALTH_USAGE = `Usage: ${SYNOPSIS}

Asks the sidecar's grpc.health.v1.Health whether it serves: what its admin /ready says (NOT_SERVING
while starting or draining, after POST /healthcheck/fail, and while an audit file or the checkpoint
cannot be written). For an exec probe, or a script or unit waiting for the sidecar (--wait).
${CLIENT_HELP}
  --service NAME        the service to ask about (default "": the sidecar as a whole;
                        meshaudit.v1.AuditService, meshaudit.v1.RuleService)
  --wait SECONDS        ask again about every ${WAIT_INTERVAL_MS / 1000} s until SERVING, for at most SECONDS
                        (default 0: one check); each check within the time left
  --help                print this help and exit
  --version             print the version and exit
Exit codes:
  0  SERVING (printed on stdout)
  1  anything else: NOT_SERVING, an unknown service, no answer within ${CHECK_DEADLINE_MS / 1000} s, no sidecar, a refused caller (on stderr);
     with --wait, not SERVING once SECONDS pass (each answer on stderr as it changes)
  2  invalid flags, or a credential file cannot be read`;

const OPTIONS = {
  ...CLIENT_OPTIONS,
  service: { type: 'string' },
  wait: { type: 'string' },
  ...COMMON_OPTIONS,
} as const satisfies OptionSpecs;

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
      return {
        service: (values.service as string | undefined) ?? '',
        waitMs: waitMsOf(values.wait as string | undefined),
      };
    },
  });
  if (typeof started === 'number') return started;
  const { flags, credentials } = started;
  const { service, waitMs } = started.args;
  const client = new (healthClient())(flags.address, credentials.channel, {
    'grpc.initial_reconnect_backoff_ms': WAIT_INTERVAL_MS,
    'grpc.max_reconnect_backoff_ms': WAIT_INTERVAL_MS,
  }) as unknown as HealthClient;
  const until = Date.now() + waitMs;
  // Each answer once, as it changes: a journal shows what the wait is for (no sidecar yet, then starting).
  let said = '';
  const waitEnded = (checks: number): number => {
    if (waitMs > 0)
      process.stderr.write(
        `${COMMAND}: not SERVING within --wait ${waitMs / 1000} s (${checks} check${checks === 1 ? '' : 's'})\n`,
      );
    return EXIT_NOT_SERVING;
  };
  try {
    for (let checks = 1; ; checks++) {
      const askedAt = Date.now();
      // Without --wait, one whole check; with it, none goes past the wait (a sleep that overran it ends it).
      const checkMs = waitMs === 0 ? CHECK_DEADLINE_MS : Math.min(CHECK_DEADLINE_MS, until - askedAt);
      if (checkMs <= 0) return waitEnded(checks - 1);
      const answer = await check(client, service, credentials.metadata, checkMs);
      if (answer === 'SERVING') {
        process.stdout.write(`SERVING: ${named(service)} on ${flags.address}\n`);
        return EXIT_SERVING;
      }
      // A check the wait's end cut short is no answer of the sidecar's: the wait's last line says it.
      const cut =
        checkMs < CHECK_DEADLINE_MS && typeof answer !== 'string' && answer.code === grpc.status.DEADLINE_EXCEEDED;
      const line = notServing(answer, flags.address, service, checkMs);
      if (!cut && line !== said) process.stderr.write(`${line}\n`);
      if (!cut) said = line;
      // No wait changes an unknown service or a refused caller: said at once.
      if (typeof answer !== 'string' && FINAL_CODES.has(answer.code)) return EXIT_NOT_SERVING;
      const next = askedAt + WAIT_INTERVAL_MS;
      // A check that took its whole time ends the wait too.
      if (Math.max(next, Date.now()) >= until) return waitEnded(checks);
      await sleep(next - Date.now());
    }
  } finally {
    client.close();
  }
}

/** Answers that asking again cannot change. */
const FINAL_CODES: ReadonlySet<grpc.status> = new Set([
  grpc.status.NOT_FOUND,
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
]);

/** --wait's value in milliseconds (0 without it). */
function waitMsOf(value: string | undefined): number {
  if (value === undefined) return 0;
  // Digits, as a person writes seconds: not "", "1e3", "0x10" or "Infinity", which Number takes.
  if (!/^\d+(\.\d+)?$/.test(value)) {
    throw new UsageError(`--wait: must be a number of seconds, 0 or more, got ${JSON.stringify(value)}`);
  }
  return Math.round(Number(value) * 1000);
}

function named(service: string): string {
  return service === '' ? 'the sidecar' : service;
}

/** One Check within `checkMs`: the status the sidecar answered, or the call's error. */
function check(
  client: HealthClient,
  service: string,
  metadata: grpc.Metadata,
  checkMs: number,
): Promise<string | grpc.ServiceError> {
  return new Promise((resolve) =>
    client.Check({ service }, metadata, { deadline: Date.now() + checkMs }, (err, reply) =>
      resolve(err ?? reply.status),
    ),
  );
}

/** The line stderr says of an answer other than SERVING. */
function notServing(answer: string | grpc.ServiceError, address: string, service: string, checkMs: number): string {
  if (typeof answer === 'string') {
    return (
      `${COMMAND}: ${answer}: ${named(service)} on ${address} does not serve ` +
      '(starting, draining, failing, or POST /healthcheck/fail: its admin /ready says why)'
    );
  }
  switch (answer.code) {
    case grpc.status.UNAVAILABLE:
      return unreachable(COMMAND, address);
    case grpc.status.DEADLINE_EXCEEDED:
      return `${COMMAND}: ${address} did not answer within ${checkMs / 1000} s (a sidecar still starting?)`;
    case grpc.status.NOT_FOUND:
      return `${COMMAND}: NOT_FOUND: the sidecar on ${address} has no service ${JSON.stringify(service)}`;
    default:
      return `${COMMAND}: ${grpc.status[answer.code] ?? answer.code}: ${answer.details}`;
  }
}
