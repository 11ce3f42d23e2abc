// `meshaudit query` and `meshaudit tail -f`: the trail read back over ReadService.Query. Records are
// printed as the files hold them, one per line; `query --json` prints each response (records and cursor).
import * as grpc from '@grpc/grpc-js';
import { meshauditClients } from '../client/services';
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
  startClientCommand,
  UsageError,
  unreachable,
} from './command-line';

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
${EXIT_HELP}`,
  options: {
    ...CLIENT_OPTIONS,
    ...FILTER_OPTIONS,
    cursor: { type: 'string' },
    json: { type: 'boolean' },
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
  return run(argv, QUERY);
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
      const str = (name: string): string => (values[name] as string | undefined) ?? '';
      return {
        request: {
          filter: {
            from: str('from'),
            to: str('to'),
            actions: (values.action as string[] | undefined) ?? [],
            types: (values.type as string[] | undefined) ?? [],
            mesh: str('mesh'),
            name: str('name'),
            tokenId: str('token-id'),
            user: str('user'),
          },
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
