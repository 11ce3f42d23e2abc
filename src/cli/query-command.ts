// `meshaudit query` and `meshaudit tail -f`: the trail read back over ReadService.Query. Records are
// printed as the files hold them, one per line; `query --json` prints each response (records and cursor).
// `meshaudit query --nats URL` reads the central JetStream stream instead (src/cli/nats-query.ts), with
// the same filters and output.
import * as grpc from '@grpc/grpc-js';
import { meshauditClients } from '../client/services';
import { DEFAULT_NATS_STREAM } from '../config/defaults';
import { STREAM_NAME, STREAM_NAME_RULE, SUBJECT_TOKEN, SUBJECT_TOKEN_RULE } from '../config/nats-names';
import { compileRecordFilter, type RecordFilter, type RecordFilterInput } from '../record/record-filter';
import { typeRegistry } from '../rules';
import { InvalidArgumentError, quote } from '../validators';
import {
  CLIENT_HELP,
  CLIENT_OPTIONS,
  CLIENT_SYNOPSIS,
  COMMON_OPTIONS,
  callFailed,
  connect,
  EXIT_OK,
  EXIT_UNREACHABLE,
  type OptionSpecs,
  type Parsed,
  startClientCommand,
  startCommand,
  UsageError,
  unreachable,
} from './command-line';
import type { NatsQueryArgs } from './nats-query';

const FILTER_OPTIONS = {
  from: { type: 'string' },
  to: { type: 'string' },
  action: { type: 'string', multiple: true },
  type: { type: 'string', multiple: true },
  mesh: { type: 'string' },
  name: { type: 'string' },
  'token-id': { type: 'string' },
  user: { type: 'string' },
} as const satisfies OptionSpecs;

const FILTER_SYNOPSIS =
  '[--from TIME] [--to TIME] [--action A]... [--type T]... [--mesh M] [--name N] [--token-id ID] [--user U]';

const FILTER_HELP = `  --from TIME, --to TIME  records whose date is at or after --from and before --to (RFC 3339)
  --action A            records of this action; repeat for several
  --type T              records of resources of this type; repeat for several
  --mesh M, --name N    records of resources in mesh M, of name N
  --token-id ID         records of the token of this id
  --user U              records of actions of this user`;

const EXIT_HELP = `Exit codes:
  0  done
  1  the sidecar refused the query (an invalid filter or cursor; OUT_OF_RANGE: the cursor's file was deleted)
  2  invalid flags
  3  no sidecar answers on the address
  4  the sidecar refused the caller (UNAUTHENTICATED, PERMISSION_DENIED)`;

/** The flags of `query --nats`: the center's stream instead of a sidecar. */
const NATS_OPTIONS = {
  nats: { type: 'string' },
  stream: { type: 'string' },
  zone: { type: 'string' },
  'all-zones': { type: 'boolean' },
  follow: { type: 'boolean' },
  'nats-creds': { type: 'string' },
  'nats-user': { type: 'string' },
  'nats-password-file': { type: 'string' },
  'nats-token-file': { type: 'string' },
  'nats-ca': { type: 'string' },
} as const satisfies OptionSpecs;

const NATS_SYNOPSIS = `meshaudit query --nats URL [--stream NAME] [--zone Z | --all-zones] ${FILTER_SYNOPSIS} [--follow] [--json] [--nats-creds FILE | --nats-user U --nats-password-file FILE | --nats-token-file FILE] [--nats-ca FILE]`;

const NATS_HELP = `Reading the center: every zone's records, as the forwarders published them to NATS JetStream
(docs/forwarding.md), merged by date (each sidecar's records in its files' order):
  ${NATS_SYNOPSIS}
  --nats URL            the NATS servers (nats://HOST:PORT, comma-separated for a cluster)
  --stream NAME         the stream (default ${DEFAULT_NATS_STREAM})
  --zone Z              the records of zone Z alone
  --all-zones           the records of every zone (the default)
  --follow              then print the records published after the start, as they come, until interrupted
  --json                one object per record: {"records": [...], "zone", "instance", "position",
                        "chain" (integrity on), "sequence" (in the stream)}
  --nats-creds FILE     authenticate with a .creds file (JWT and NKey seed)
  --nats-user U --nats-password-file FILE  authenticate with a user and the password in FILE
  --nats-token-file FILE  authenticate with the token in FILE
  --nats-ca FILE        TLS: trust the servers' certificates signed by these CAs
  The filters above apply. Exit codes: 0 done; 1 no such stream, or JetStream refused the read;
  2 invalid flags or an unreadable credential file; 3 no NATS server answers, its certificate is not
  trusted, or the connection was lost before the read ended; 4 the server refused the credentials or
  this user's permissions.`;

/** The flags that go with the sidecar (ReadService), not with --nats. */
const SIDECAR_ONLY = ['address', 'token-file', 'cacert', 'cert', 'key', 'cursor'];
/** The flags that go with --nats alone. */
const NATS_ONLY = Object.keys(NATS_OPTIONS).filter((name) => name !== 'nats');

interface QueryArgs {
  request: { filter: Record<string, unknown>; follow: boolean; cursor: string };
  json: boolean;
}

interface QueryKind {
  readonly command: string;
  readonly synopsis: string;
  readonly usage: string;
  readonly options: OptionSpecs;
  readonly follow: boolean;
}

const QUERY: QueryKind = {
  command: 'meshaudit query',
  synopsis: `meshaudit query ${FILTER_SYNOPSIS} [--cursor C] [--json] ${CLIENT_SYNOPSIS}`,
  usage: `Usage: meshaudit query ${FILTER_SYNOPSIS} [--cursor C] [--json] ${CLIENT_SYNOPSIS}

Prints the audit records the sidecar holds (its first file backend: rotated, compressed and active
files, oldest first) that match the filters, one JSON line each, as the files hold them.
${FILTER_HELP}
  --cursor C            resume after the last record of an earlier response (--json prints cursors)
  --json                print each response, {"records": [...], "cursor": "..."}, one per line
${CLIENT_HELP}
  --help                print this help and exit
  --version             print the version and exit
${EXIT_HELP}

${NATS_HELP}`,
  options: {
    ...CLIENT_OPTIONS,
    ...FILTER_OPTIONS,
    cursor: { type: 'string' },
    json: { type: 'boolean' },
    ...NATS_OPTIONS,
    ...COMMON_OPTIONS,
  },
  follow: false,
};

const TAIL: QueryKind = {
  command: 'meshaudit tail',
  synopsis: `meshaudit tail -f ${FILTER_SYNOPSIS} ${CLIENT_SYNOPSIS}`,
  usage: `Usage: meshaudit tail -f ${FILTER_SYNOPSIS} ${CLIENT_SYNOPSIS}

Prints the audit records that match the filters as the sidecar commits them, across rotations, until
interrupted (Ctrl-C). The records already held come first.
  -f, --follow          required: follow the trail
${FILTER_HELP}
${CLIENT_HELP}
  --help                print this help and exit
  --version             print the version and exit
${EXIT_HELP}`,
  options: { ...CLIENT_OPTIONS, ...FILTER_OPTIONS, follow: { type: 'boolean', short: 'f' }, ...COMMON_OPTIONS },
  follow: true,
};

export const QUERY_USAGE = QUERY.usage;
export const TAIL_USAGE = TAIL.usage;

export function runQueryCommand(argv: readonly string[]): Promise<number> {
  return argv.some((a) => a === '--nats' || a.startsWith('--nats=')) ? runNatsQuery(argv) : run(argv, QUERY);
}

export function runTailCommand(argv: readonly string[]): Promise<number> {
  return run(argv, TAIL);
}

async function run(argv: readonly string[], kind: QueryKind): Promise<number> {
  const started = startClientCommand<QueryArgs>(argv, {
    name: kind.command,
    synopsis: kind.synopsis,
    usage: kind.usage,
    options: kind.options,
    read: ({ values, positionals }) => {
      if (positionals.length > 0) throw new UsageError(`unexpected ${JSON.stringify(positionals[0])}`);
      if (kind.follow && values.follow !== true) throw new UsageError('needs -f (follow)');
      if (!kind.follow) {
        const natsOnly = NATS_ONLY.find((name) => values[name] !== undefined);
        if (natsOnly === 'follow') throw new UsageError('--follow goes with --nats URL (a sidecar: meshaudit tail -f)');
        if (natsOnly !== undefined) throw new UsageError(`--${natsOnly} goes with --nats URL`);
      }
      const str = (name: string): string => (values[name] as string | undefined) ?? '';
      return {
        request: {
          filter: filterInputOf(values),
          follow: kind.follow,
          cursor: str('cursor'),
        },
        json: values.json === true,
      };
    },
  });
  if (typeof started === 'number') return started;
  const { flags, credentials, args } = started;
  const client = new (meshauditClients().ReadService)(flags.address, credentials.channel);
  try {
    if (!(await connect(client))) {
      process.stderr.write(`${unreachable(kind.command, flags.address)}\n`);
      return EXIT_UNREACHABLE;
    }
    const query = (
      client as unknown as Record<string, (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<unknown>>
    ).Query;
    const call = query.call(client, args.request, credentials.metadata);
    const interrupted = (): void => call.cancel();
    process.once('SIGINT', interrupted);
    process.once('SIGTERM', interrupted);
    try {
      await new Promise<void>((resolve, reject) => {
        call.on('data', (r: { records: string[]; cursor: string }) => {
          const text = args.json ? `${JSON.stringify(r)}\n` : r.records.map((l) => `${l}\n`).join('');
          // Paced by standard output: a reader that stops (less, a pipe) stops the stream.
          if (text !== '' && !process.stdout.write(text)) {
            call.pause();
            process.stdout.once('drain', () => call.resume());
          }
        });
        call.on('end', resolve);
        call.on('error', reject);
      });
    } finally {
      process.off('SIGINT', interrupted);
      process.off('SIGTERM', interrupted);
    }
    return EXIT_OK;
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (typeof err.code !== 'number') throw e;
    if (err.code === grpc.status.CANCELLED) return EXIT_OK;
    return callFailed(kind.command, err);
  } finally {
    client.close();
  }
}

/** The filter flags as ReadService.Query's filter takes them ('' and []: any). */
function filterInputOf(values: Parsed['values']): Required<RecordFilterInput> {
  const str = (name: string): string => (values[name] as string | undefined) ?? '';
  return {
    from: str('from'),
    to: str('to'),
    actions: (values.action as string[] | undefined) ?? [],
    types: (values.type as string[] | undefined) ?? [],
    mesh: str('mesh'),
    name: str('name'),
    tokenId: str('token-id'),
    user: str('user'),
  };
}

/** The flag of each field of the filter, for the problems `query --nats` finds itself. */
const FILTER_FLAGS: Record<string, string> = {
  from: '--from',
  to: '--to',
  actions: '--action',
  types: '--type',
};

/**
 * The filter, checked here (a sidecar checks it for `query`; the center has no sidecar): the record
 * types are the built-in registry's, as a sidecar without meshaudit.extraResourceTypes knows them.
 */
function compileFilter(input: RecordFilterInput): RecordFilter {
  try {
    return compileRecordFilter(input, typeRegistry(), '');
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    const flag = (field: string): string => FILTER_FLAGS[field.replace(/\[\d+\]$/, '')] ?? field;
    throw new UsageError(e.violations.map((v) => `${flag(v.field)}: ${v.description}`).join('; '));
  }
}

async function runNatsQuery(argv: readonly string[]): Promise<number> {
  const command = 'meshaudit query';
  const started = startCommand<NatsQueryArgs>(argv, {
    name: command,
    synopsis: NATS_SYNOPSIS,
    usage: QUERY.usage,
    options: QUERY.options,
    read: ({ values, positionals }) => {
      if (positionals.length > 0) throw new UsageError(`unexpected ${JSON.stringify(positionals[0])}`);
      const sidecarOnly = SIDECAR_ONLY.find((name) => values[name] !== undefined);
      if (sidecarOnly !== undefined) throw new UsageError(`--${sidecarOnly} goes with a sidecar, not with --nats`);
      const str = (name: string): string | undefined => values[name] as string | undefined;
      const servers = (str('nats') as string).split(',').filter((s) => s !== '');
      if (servers.length === 0) throw new UsageError('--nats needs a URL, nats://HOST:PORT');
      const notNats = servers.find((url) => /^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !/^(nats|tls):\/\//i.test(url));
      if (notNats !== undefined) {
        throw new UsageError(
          `--nats: ${quote(notNats)} is not a NATS URL: nats://HOST:PORT or tls://HOST:PORT (clients connect on 4222; 8222 is the HTTP monitoring port)`,
        );
      }
      // The config's rules (config/nats-names.ts): a name no forwarder can be configured with is refused.
      const stream = str('stream') ?? DEFAULT_NATS_STREAM;
      if (!STREAM_NAME.test(stream))
        throw new UsageError(`--stream: ${quote(stream)} is not a stream name (${STREAM_NAME_RULE})`);
      const zone = str('zone');
      if (zone !== undefined && values['all-zones'] === true)
        throw new UsageError('--zone and --all-zones: one or the other');
      if (zone !== undefined && !SUBJECT_TOKEN.test(zone))
        throw new UsageError(`--zone: ${quote(zone)} is not a zone a forwarder publishes (${SUBJECT_TOKEN_RULE})`);
      const auth = {
        credsFile: str('nats-creds'),
        user: str('nats-user'),
        passwordFile: str('nats-password-file'),
        tokenFile: str('nats-token-file'),
        caFile: str('nats-ca'),
      };
      if ((auth.user === undefined) !== (auth.passwordFile === undefined))
        throw new UsageError('--nats-user and --nats-password-file go together');
      if ([auth.credsFile, auth.user, auth.tokenFile].filter((a) => a !== undefined).length > 1)
        throw new UsageError(
          'one credential: --nats-creds, --nats-user with --nats-password-file, or --nats-token-file',
        );
      const input = filterInputOf(values);
      return {
        servers,
        stream,
        zone,
        actions: input.actions,
        filter: compileFilter(input),
        follow: values.follow === true,
        json: values.json === true,
        auth,
      };
    },
  });
  if (typeof started === 'number') return started;
  // Loaded here: the NATS client is ~90 ms and 2 MB more for every other command, and for the sidecar.
  const { queryNats } = await import('./nats-query');
  return queryNats(command, started.args);
}
