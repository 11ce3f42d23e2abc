// `meshaudit record`: sends events (JSON, one per line, as grpcurl would) to a running sidecar with
// AuditService.Record and prints, for each, whether it was audited. For trying rules by hand and for
// scripts; a control plane streams with StreamEvents instead (src/client).
//
// Each line is checked against the Event message of the contract before it is sent: protobufjs, like
// any protobuf library, drops fields it does not know, so a misspelt "mesch" would otherwise be
// recorded without its mesh, and a wrong JSON type would fail as an opaque serialization error.
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { meshauditClients } from '../client/services';
import { fieldViolationsOf } from '../client/status-details';
import { contract, jsonName } from '../contract';
import { entry, field, formatViolation, index, quote, show, unknownField, Violations } from '../validators';
import {
  CLIENT_HELP,
  CLIENT_OPTIONS,
  CLIENT_SYNOPSIS,
  type ClientFlags,
  clientFlagsOf,
  COMMON_OPTIONS,
  connect,
  credentialsOf,
  type OptionSpecs,
  parseCommandLine,
  TOKEN_ENV,
  UsageError,
  unreachable,
} from './command-line';
import { version } from './version';

const COMMAND = 'meshaudit record';
/** How long one Record may take: it answers once the record is written, fsync on a slow disk included. */
const RECORD_DEADLINE_MS = 10_000;

const EXIT_OK = 0;
const EXIT_REJECTED = 1;
const EXIT_USAGE = 2;
const EXIT_UNREACHABLE = 3;
const EXIT_REFUSED_CALLER = 4;

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

interface Args extends ClientFlags {
  /** "-" is standard input. */
  file: string;
  help: boolean;
  version: boolean;
}

function parseRecordArgs(argv: readonly string[]): Args {
  const { values, positionals } = parseCommandLine(argv, OPTIONS);
  if (positionals.length > 1)
    throw new UsageError(
      `one FILE at most, got ${JSON.stringify(positionals[0])} and ${JSON.stringify(positionals[1])}`,
    );
  return {
    ...clientFlagsOf(values),
    file: positionals[0] ?? '-',
    help: values.help === true,
    version: values.version === true,
  };
}

/** A line of the input that holds an event, numbered as in the file (from 1). */
interface EventLine {
  line: number;
  text: string;
}

function eventLines(text: string): EventLine[] {
  const out: EventLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line !== '' && !line.startsWith('#')) out.push({ line: i + 1, text: line });
  });
  return out;
}

// ---- The Event message's JSON form, checked against the contract ----

/** The Event message as the .proto file declares it (proto names: JSON names are derived). */
function loadEventType(): protobuf.Type {
  return contract().type('meshaudit.v1.Event');
}

/** The protobuf JSON name of a field (`expires_at` -> `expiresAt`): its json_name option, or protoc's. */
function jsonNameOf(field: protobuf.Field): string {
  return (field.options?.json_name as string | undefined) ?? jsonName(field.name);
}

/**
 * Checks `value` against `type` as the protobuf JSON mapping reads it (JSON names and proto names
 * accepted, null meaning "not set"), adding every problem with its field path. Returns the message
 * with JSON names, or undefined when `value` is not an object.
 */
function checkMessage(
  type: protobuf.Type,
  value: unknown,
  at: string,
  problems: Violations,
): Record<string, unknown> | undefined {
  if (!isObject(value)) {
    problems.add(at, mustBeJson('an object', value));
    return undefined;
  }
  const byJsonName = new Map(type.fieldsArray.map((f) => [jsonNameOf(f), f]));
  const givenAs = new Map<protobuf.Field, string>();
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const keyPath = field(at, key);
    const declared = byJsonName.get(key) ?? (Object.hasOwn(type.fields, key) ? type.fields[key] : undefined);
    if (declared === undefined) {
      problems.add(keyPath, unknownField(key, [...byJsonName.keys()]));
      continue;
    }
    const other = givenAs.get(declared);
    if (other !== undefined) {
      problems.add(keyPath, `the same field as ${quote(other)}: give it once`);
      continue;
    }
    givenAs.set(declared, key);
    if (item === null) continue;
    declared.resolve();
    if (declared.map) {
      if (!isObject(item)) problems.add(keyPath, mustBeJson(`an object of ${kindOf(declared).many}`, item));
      else
        out[jsonNameOf(declared)] = Object.fromEntries(
          Object.entries(item).map(([k, v]) => [k, checkValue(declared, v, entry(keyPath, k), problems)]),
        );
    } else if (declared.repeated) {
      if (!Array.isArray(item)) problems.add(keyPath, mustBeJson(`a list of ${kindOf(declared).many}`, item));
      else out[jsonNameOf(declared)] = item.map((v, i) => checkValue(declared, v, index(keyPath, i), problems));
    } else {
      out[jsonNameOf(declared)] = checkValue(declared, item, keyPath, problems);
    }
  }
  return out;
}

/** One value of a field (an element, for lists and maps). */
function checkValue(declared: protobuf.Field, value: unknown, at: string, problems: Violations): unknown {
  const t = declared.resolvedType;
  if (t instanceof protobuf.Type) return checkMessage(t, value, at, problems);
  const ok =
    t instanceof protobuf.Enum
      ? (typeof value === 'string' && Object.hasOwn(t.values, value)) || Number.isInteger(value)
      : declared.type === 'string' || declared.type === 'bytes'
        ? typeof value === 'string'
        : declared.type === 'bool'
          ? typeof value === 'boolean'
          : // Numbers may be strings, as 64-bit integers must be in JSON.
            (typeof value === 'number' || (typeof value === 'string' && value.trim() !== '')) &&
            Number.isFinite(Number(value));
  if (!ok) problems.add(at, mustBeJson(kindOf(declared).one, value));
  return value;
}

/** What a field's values must be, in words: one value, and several in a list or map. */
function kindOf(declared: protobuf.Field): { one: string; many: string } {
  const t = declared.resolvedType;
  if (t instanceof protobuf.Type) return { one: 'an object', many: 'objects' };
  if (t instanceof protobuf.Enum)
    return { one: `one of ${Object.keys(t.values).join(', ')}`, many: `names of ${t.name}` };
  if (declared.type === 'string') return { one: 'a string', many: 'strings' };
  if (declared.type === 'bytes') return { one: 'a base64 string', many: 'base64 strings' };
  if (declared.type === 'bool') return { one: 'true or false', many: 'true or false' };
  return { one: 'a number', many: 'numbers' };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `must be <expected>, got <value>`, in JSON's words (an object, not a mapping). */
function mustBeJson(expected: string, got: unknown): string {
  return `must be ${expected}, got ${show(got, 'an object')}`;
}

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

/** The lines printed for a refused call: one per field violation, or the status alone. */
function refusal(err: grpc.ServiceError): string[] {
  const code = grpc.status[err.code] ?? String(err.code);
  const violations = fieldViolationsOf(err.metadata);
  if (violations.length === 0) return [`${code}: ${err.details}`];
  return violations.map((v) => `${code}: ${v.field}: ${v.description}`);
}

// ---- The command ----

/** Runs `meshaudit record`; returns the exit code. */
export async function runRecordCommand(argv: readonly string[]): Promise<number> {
  let args: Args;
  try {
    args = parseRecordArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${COMMAND}: ${e.message} (usage: ${SYNOPSIS})\n`);
    return EXIT_USAGE;
  }
  if (args.help) {
    process.stdout.write(`${RECORD_USAGE}\n`);
    return EXIT_OK;
  }
  if (args.version) {
    process.stdout.write(`meshaudit ${version()}\n`);
    return EXIT_OK;
  }
  let text: string;
  try {
    text = fs.readFileSync(args.file === '-' ? 0 : args.file, 'utf8');
  } catch (e) {
    process.stderr.write(
      `${COMMAND}: cannot read ${args.file === '-' ? 'standard input' : args.file}: ${(e as Error).message}\n`,
    );
    return EXIT_USAGE;
  }
  let credentials: ReturnType<typeof credentialsOf>;
  try {
    credentials = credentialsOf(args);
  } catch (e) {
    process.stderr.write(`${COMMAND}: cannot read a credential: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  const lines = eventLines(text);
  const eventType = loadEventType();
  const client = new (meshauditClients().AuditService)(args.address, credentials.channel) as unknown as AuditClient;
  try {
    if (!(await connect(client))) {
      process.stderr.write(`${unreachable(COMMAND, args.address)}\n`);
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
      const event = checkMessage(eventType, parsed, 'event', problems);
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
            `${COMMAND}: the sidecar on ${args.address} stopped answering at line ${line}; the lines after it were not sent\n`,
          );
          return EXIT_UNREACHABLE;
        }
      }
    }
    return refused > 0 ? EXIT_REJECTED : EXIT_OK;
  } finally {
    client.close();
  }
}
