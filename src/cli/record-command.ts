// `meshaudit record`: sends events (JSON, one per line, as grpcurl would) to a running sidecar with
// AuditService.Record and prints, for each, whether it was audited. For trying rules by hand and for
// scripts; a control plane streams with StreamEvents instead (src/client).
// Each line is checked against the Event message before it is sent (src/cli/event-json.ts says why).
import * as grpc from '@grpc/grpc-js';
import { meshauditClients } from '../client/services';
import { formatViolation, Violations } from '../validators';
import { checkEvent, eventLines } from './event-json';
import {
  CLIENT_HELP,
  CLIENT_OPTIONS,
  CLIENT_SYNOPSIS,
  COMMON_OPTIONS,
  connect,
  EXIT_OK,
  EXIT_REFUSED,
  EXIT_REFUSED_CALLER,
  EXIT_UNREACHABLE,
  EXIT_USAGE,
  oneFile,
  type OptionSpecs,
  readInput,
  refusal,
  startClientCommand,
  TOKEN_ENV,
  unreachable,
} from './command-line';

const COMMAND = 'meshaudit record';
/** How long one Record may take: it answers once the record is written, fsync on a slow disk included. */
const RECORD_DEADLINE_MS = 10_000;

const SYNOPSIS = `${COMMAND} ${CLIENT_SYNOPSIS} [FILE|-]`;
export const RECORD_USAGE = `Usage: ${SYNOPSIS}

Reads events, one JSON object per line (the Event message's JSON form, as with grpcurl -d), from FILE
or standard input ("-" or no FILE), records each with AuditService.Record, and prints per line of the
file "audited", "not audited (no rule covers it)" or why the event was refused. Blank lines and lines
starting with # are skipped. An event with a field the Event message does not have, or a value of the
wrong JSON type, is refused without being sent.
${CLIENT_HELP}
  --help                print this help and exit
  --version             print the version and exit
Exit codes:
  0  every event was accepted (audited or not)
  1  at least one event was refused (not JSON, unknown field, wrong type, or rejected by the sidecar)
  2  invalid flags, or a file cannot be read: nothing was sent
  3  no sidecar answers on the address (or it stopped answering): the rest was not sent
  4  the sidecar refused the caller (UNAUTHENTICATED, PERMISSION_DENIED): the rest was not sent`;

const OPTIONS = { ...CLIENT_OPTIONS, ...COMMON_OPTIONS } as const satisfies OptionSpecs;

// ---- The sidecar ----

type AuditClient = grpc.Client & {
  Record(
    request: unknown,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, reply: { audited: boolean }) => void,
  ): void;
};

function record(client: AuditClient, event: unknown, metadata: grpc.Metadata): Promise<{ audited: boolean }> {
  return new Promise((resolve, reject) =>
    client.Record(
      { event },
      metadata,
      { deadline: Date.now() + RECORD_DEADLINE_MS },
      (err: grpc.ServiceError | null, reply: { audited: boolean }) => (err ? reject(err) : resolve(reply)),
    ),
  );
}

// ---- The command ----

/** Runs `meshaudit record`; returns the exit code. */
export async function runRecordCommand(argv: readonly string[]): Promise<number> {
  const started = startClientCommand(argv, {
    name: COMMAND,
    synopsis: SYNOPSIS,
    usage: RECORD_USAGE,
    options: OPTIONS,
    read: ({ positionals }) => oneFile(positionals),
  });
  if (typeof started === 'number') return started;
  const { flags, credentials, args: file } = started;
  const text = readInput(COMMAND, file);
  if (text === undefined) return EXIT_USAGE;
  const lines = eventLines(text);
  const client = new (meshauditClients().AuditService)(flags.address, credentials.channel) as unknown as AuditClient;
  try {
    if (!(await connect(client))) {
      process.stderr.write(`${unreachable(COMMAND, flags.address)}\n`);
      return EXIT_UNREACHABLE;
    }
    let refused = 0;
    const say = (line: number, what: string): void => void process.stdout.write(`line ${line}: ${what}\n`);
    for (const { line, text: json } of lines) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(json);
      } catch (e) {
        refused++;
        say(line, `not JSON: ${(e as Error).message}`);
        continue;
      }
      const problems = new Violations();
      const event = checkEvent(parsed, problems);
      if (!problems.isEmpty) {
        refused++;
        for (const p of problems.list) say(line, formatViolation(p));
        continue;
      }
      try {
        const reply = await record(client, event, credentials.metadata);
        say(line, reply.audited ? 'audited' : 'not audited (no rule covers it)');
      } catch (e) {
        const err = e as grpc.ServiceError;
        refused++;
        for (const l of refusal(err)) say(line, l);
        if (err.code === grpc.status.UNAUTHENTICATED || err.code === grpc.status.PERMISSION_DENIED) {
          process.stderr.write(
            `${COMMAND}: the sidecar refused this caller at line ${line}: the lines after it were not sent ` +
              `(a token: --token-file or ${TOKEN_ENV}; a client certificate: --cacert --cert --key)\n`,
          );
          return EXIT_REFUSED_CALLER;
        }
        if (err.code === grpc.status.UNAVAILABLE) {
          process.stderr.write(
            `${COMMAND}: the sidecar on ${flags.address} stopped answering at line ${line}; the lines after it were not sent\n`,
          );
          return EXIT_UNREACHABLE;
        }
      }
    }
    return refused > 0 ? EXIT_REFUSED : EXIT_OK;
  } finally {
    client.close();
  }
}
