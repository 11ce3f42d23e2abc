// `meshaudit rules`: the zone's AccessAudits over RuleService, what kumactl is to Kong Mesh. Replies are
// JSON (a short table for `list`); a refusal prints its status and field violations on stderr.
import * as fs from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { meshauditClients } from '../client/services';
import { didYouMean, formatViolation, quote, Violations } from '../validators';
import { checkEvent } from './event-json';
import {
  CLIENT_HELP,
  CLIENT_OPTIONS,
  CLIENT_SYNOPSIS,
  COMMON_OPTIONS,
  callFailed,
  connect,
  EXIT_OK,
  EXIT_REFUSED,
  EXIT_UNREACHABLE,
  EXIT_USAGE,
  type OptionSpecs,
  startClientCommand,
  UsageError,
  unreachable,
} from './command-line';

const COMMAND = 'meshaudit rules';
/** How long one call may take: a change answers once the store's file is replaced (fsync included). */
const CALL_DEADLINE_MS = 10_000;

const SYNOPSIS = `${COMMAND} list|get NAME|apply -f FILE [--dry-run]|delete NAME|evaluate -f EVENT.json ${CLIENT_SYNOPSIS}`;
export const RULES_USAGE = `Usage: ${COMMAND} list [--output table|json]
       ${COMMAND} get NAME
       ${COMMAND} apply -f FILE|- [--dry-run]
       ${COMMAND} delete NAME
       ${COMMAND} evaluate -f EVENT.json|-
       (each with ${CLIENT_SYNOPSIS})

The zone's AccessAudits, over the sidecar's RuleService (docs/rules.md#the-ruleservice):
  list       the AccessAudits in force: a table (NAME, VERSION, RULES), or their JSON with --output json
  get        one AccessAudit, as JSON
  apply      create or update the AccessAudits of a YAML file (either form, multi-document), as
             ApplyAccessAudits: prints what was created, updated and unchanged; --dry-run changes nothing
  delete     delete one AccessAudit
  evaluate   would the event in the JSON file (the Event message, as grpcurl -d takes it) be audited, by
             which AccessAudit and rule, and the record it would write; writes nothing
Options:
  -f, --file FILE       the YAML (apply) or the event (evaluate); "-" is standard input
  --dry-run             apply: say what would change, change nothing
  --output table|json   list: the format (default table)
${CLIENT_HELP}
  --help                print this help and exit
  --version             print the version and exit
Exit codes:
  0  done
  1  the sidecar refused the request (an invalid AccessAudit or event, a name not found, a version conflict)
  2  invalid flags, or a file cannot be read: nothing was sent
  3  no sidecar answers on the address
  4  the sidecar refused the caller (UNAUTHENTICATED, PERMISSION_DENIED)`;

const OPTIONS = {
  ...CLIENT_OPTIONS,
  file: { type: 'string', short: 'f' },
  'dry-run': { type: 'boolean' },
  output: { type: 'string' },
  ...COMMON_OPTIONS,
} as const satisfies OptionSpecs;

const SUBCOMMANDS = ['list', 'get', 'apply', 'delete', 'evaluate'];

type UnaryMethod = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, reply: Record<string, unknown>) => void,
) => void;

type Call = (method: string, request: object) => Promise<Record<string, unknown>>;

/** A request ready to send, or the exit code of a mistake found before sending. */
interface Plan {
  method: string;
  request: object;
  print(reply: Record<string, unknown>): void;
}

/** Runs `meshaudit rules`; returns the exit code. */
export async function runRulesCommand(argv: readonly string[]): Promise<number> {
  let started: ReturnType<typeof startClientCommand<Plan>>;
  try {
    started = startClientCommand(argv, {
      name: COMMAND,
      synopsis: SYNOPSIS,
      usage: RULES_USAGE,
      options: OPTIONS,
      read: ({ values, positionals }) => planOf(values, positionals),
    });
  } catch (e) {
    // planOf reads the -f file and checks an event before anything is sent.
    if (e instanceof UnreadableInput) {
      process.stderr.write(`${COMMAND}: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof InvalidEvent) {
      for (const line of e.lines) process.stderr.write(`${COMMAND}: ${line}\n`);
      return EXIT_REFUSED;
    }
    throw e;
  }
  if (typeof started === 'number') return started;
  const { flags, credentials, args: plan } = started;
  const client = new (meshauditClients().RuleService)(flags.address, credentials.channel);
  // The methods of proto-loader's generic client, called by name.
  const methods = client as unknown as Record<string, UnaryMethod>;
  const call: Call = (method, request) =>
    new Promise((resolve, reject) =>
      methods[method].call(
        client,
        request,
        credentials.metadata,
        { deadline: Date.now() + CALL_DEADLINE_MS },
        (err, reply) => (err ? reject(err) : resolve(reply)),
      ),
    );
  try {
    if (!(await connect(client))) {
      process.stderr.write(`${unreachable(COMMAND, flags.address)}\n`);
      return EXIT_UNREACHABLE;
    }
    plan.print(await call(plan.method, plan.request));
    return EXIT_OK;
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (typeof err.code !== 'number') throw e;
    return callFailed(COMMAND, err);
  } finally {
    client.close();
  }
}

/** A file that cannot be read: exit 2, nothing sent. */
class UnreadableInput extends Error {}

/** An event file that is not a valid Event: refused without being sent, exit 1 as record refuses a line. */
class InvalidEvent extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
  }
}

function planOf(values: Record<string, unknown>, positionals: string[]): Plan {
  const [sub, ...rest] = positionals;
  if (sub === undefined) throw new UsageError(`needs a command: ${SUBCOMMANDS.join(', ')}`);
  if (!SUBCOMMANDS.includes(sub))
    throw new UsageError(
      `unknown command ${quote(sub)}${didYouMean(sub, SUBCOMMANDS) || `: ${SUBCOMMANDS.join(', ')}`}`,
    );
  const takesName = sub === 'get' || sub === 'delete';
  const takesFile = sub === 'apply' || sub === 'evaluate';
  if (takesName && rest.length === 0) throw new UsageError(`${sub}: needs the AccessAudit's NAME`);
  const extra = takesName ? rest.slice(1) : rest;
  if (extra.length > 0) throw new UsageError(`${sub}: unexpected ${JSON.stringify(extra[0])}`);
  const file = values.file as string | undefined;
  if (takesFile && file === undefined) throw new UsageError(`${sub}: needs -f FILE`);
  if (!takesFile && file !== undefined) throw new UsageError(`${sub}: -f is for apply and evaluate`);
  if (values['dry-run'] === true && sub !== 'apply') throw new UsageError('--dry-run is for apply');
  const output = values.output as string | undefined;
  if (output !== undefined && sub !== 'list') throw new UsageError('--output is for list');
  if (output !== undefined && output !== 'table' && output !== 'json')
    throw new UsageError(`--output: must be table or json, got ${JSON.stringify(output)}`);
  const json = (reply: Record<string, unknown>): void =>
    void process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`);
  switch (sub) {
    case 'list':
      return {
        method: 'ListAccessAudits',
        request: {},
        print: (reply) => {
          const audits = (reply.accessAudits as AuditMessage[]).map(compactAudit);
          if (output === 'json') json({ accessAudits: audits });
          else process.stdout.write(table(audits));
        },
      };
    case 'get':
      return {
        method: 'GetAccessAudit',
        request: { name: rest[0] },
        print: (reply) => json(compactAudit(reply as unknown as AuditMessage)),
      };
    case 'delete':
      return {
        method: 'DeleteAccessAudit',
        request: { name: rest[0] },
        print: () => json({ deleted: rest[0] }),
      };
    case 'apply':
      return {
        method: 'ApplyAccessAudits',
        request: { yaml: read(file as string), dryRun: values['dry-run'] === true },
        print: (reply) => json(withoutEmptyLists(reply)),
      };
    default: {
      const text = read(file as string);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        throw new InvalidEvent([`${file}: not JSON: ${(e as Error).message}`]);
      }
      const problems = new Violations();
      const event = checkEvent(parsed, problems);
      if (!problems.isEmpty) throw new InvalidEvent(problems.list.map((p) => `${file}: ${formatViolation(p)}`));
      return { method: 'Evaluate', request: { event }, print: json };
    }
  }
}

function read(file: string): string {
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new UnreadableInput(`cannot read ${file === '-' ? 'standard input' : file}: ${(e as Error).message}`);
  }
}

interface RuleMessage {
  types: string[];
  mesh: string;
  access: string[];
  accessAll: boolean;
}

interface AuditMessage {
  name: string;
  rules: RuleMessage[];
  version: number;
}

/** An AccessAudit without the fields a rule leaves at their defaults, as grpcurl and the YAML show it. */
function compactAudit(audit: AuditMessage): Record<string, unknown> {
  return {
    name: audit.name,
    rules: audit.rules.map((r) => ({
      ...(r.types.length > 0 ? { types: r.types } : {}),
      ...(r.mesh !== '' ? { mesh: r.mesh } : {}),
      ...(r.access.length > 0 ? { access: r.access } : {}),
      ...(r.accessAll ? { accessAll: true } : {}),
    })),
    version: audit.version,
  };
}

function withoutEmptyLists(reply: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(reply).filter(([, v]) => !(Array.isArray(v) && v.length === 0)));
}

/** NAME, VERSION and the number of rules, in columns; a line saying so when there are none. */
function table(audits: ReadonlyArray<Record<string, unknown>>): string {
  if (audits.length === 0) return 'no AccessAudits: nothing is audited\n';
  const rows = [
    ['NAME', 'VERSION', 'RULES'],
    ...audits.map((a) => [String(a.name), String(a.version), String((a.rules as unknown[]).length)]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return (
    rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('   ')).join('\n') +
    '\n'
  );
}
