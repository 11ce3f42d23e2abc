// The one command-line parser of every meshaudit command (node:util parseArgs, read token by token so
// that each mistake gets one line naming the flag), and the options every client command shares: where
// the sidecar is, TLS and the bearer token, defined once.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { fieldViolationsOf } from '../client/status-details';
import { didYouMean, quote } from '../validators';
import { version } from './version';

/** A mistake on the command line: one line on stderr, exit code 2. */
export class UsageError extends Error {}

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
}

export type OptionSpecs = Record<string, OptionSpec>;

/** A flag of the command line, in the order given: `value` is undefined for a boolean flag. */
export interface FlagToken {
  kind: 'option';
  name: string;
  value: string | undefined;
}

export interface PositionalToken {
  kind: 'positional';
  value: string;
}

/** `--help` and `--version`: every command takes them. */
export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const satisfies OptionSpecs;

/**
 * The command line as flags and positionals in their order. An unknown flag, a boolean flag given a
 * value, or a value flag without one (missing, empty, or the next flag) is a UsageError.
 */
export function tokenize(argv: readonly string[], options: OptionSpecs): Array<FlagToken | PositionalToken> {
  // Not strict: parseArgs' own messages are long and suggest nothing; the checks below say it in one line.
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const flags = Object.keys(options).map((name) => `--${name}`);
  const out: Array<FlagToken | PositionalToken> = [];
  for (const t of tokens) {
    if (t.kind === 'option-terminator') continue;
    if (t.kind === 'positional') {
      out.push({ kind: 'positional', value: t.value });
      continue;
    }
    const spec = Object.hasOwn(options, t.name) ? options[t.name] : undefined;
    // `-` alone is standard input, which parseArgs already gives as a positional.
    if (spec === undefined)
      throw new UsageError(
        `unknown flag ${quote(t.rawName)}${t.rawName.startsWith('--') ? didYouMean(t.rawName, flags) : ''}`,
      );
    if (spec.type === 'boolean') {
      if (t.value !== undefined) throw new UsageError(`--${t.name} takes no value`);
      out.push({ kind: 'option', name: t.name, value: undefined });
      continue;
    }
    // parseArgs takes the next argument whatever it is: a value that is a flag means the value is missing
    // (a negative number is a value, for the command to refuse by name).
    if (t.value === undefined || t.value === '' || (t.value.startsWith('-') && !/^-(\d|$)/.test(t.value)))
      throw new UsageError(`--${t.name} needs ${VALUE_NAMES[t.name] ?? 'a value'}`);
    out.push({ kind: 'option', name: t.name, value: t.value });
  }
  return out;
}

/** What a value flag needs, for the message when it is missing. */
const VALUE_NAMES: Record<string, string> = {
  address: 'a value, HOST:PORT',
  config: 'a file name',
  rules: 'at least one file name',
  'token-file': 'a file name',
  cacert: 'a file name',
  cert: 'a file name',
  key: 'a file name',
  file: 'a file name',
  service: 'a service name',
  zone: 'a zone name',
  instance: 'an instance name',
  wait: 'a number of seconds',
  dir: 'a folder',
  out: 'a folder',
  pubkey: 'a public key file (PEM)',
  from: 'a time (RFC 3339)',
  to: 'a time (RFC 3339)',
  nats: 'a URL, nats://HOST:PORT',
  stream: 'a stream name',
  'nats-creds': 'a file name',
  'nats-user': 'a user name',
  'nats-password-file': 'a file name',
  'nats-token-file': 'a file name',
  'nats-ca': 'a file name',
};

/** The parsed flags (the last of a flag given twice wins; `multiple` ones collect) and the positionals. */
export interface Parsed {
  values: Record<string, string | string[] | boolean | undefined>;
  positionals: string[];
}

export function parseCommandLine(argv: readonly string[], options: OptionSpecs): Parsed {
  const values: Parsed['values'] = {};
  const positionals: string[] = [];
  for (const t of tokenize(argv, options)) {
    if (t.kind === 'positional') positionals.push(t.value);
    else if (t.value === undefined) values[t.name] = true;
    else if (options[t.name].multiple) values[t.name] = [...((values[t.name] as string[] | undefined) ?? []), t.value];
    else values[t.name] = t.value;
  }
  return { values, positionals };
}

// ---- The start every client command shares ----

/** The exit codes of the client commands (record, emit, rules, health: README, "Running it"). */
export const EXIT_OK = 0;
/** Something was refused (an event, a change) or, for health, the sidecar does not serve. */
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;
export const EXIT_REFUSED_CALLER = 4;

/** A command's description, for the start every command shares. */
export interface Command<T> {
  /** `meshaudit record`: the prefix of its messages. */
  readonly name: string;
  readonly synopsis: string;
  /** Printed by --help. */
  readonly usage: string;
  readonly options: OptionSpecs;
  /** The command's own reading of its flags and positionals, after --help and --version; throws UsageError. */
  readonly read: (parsed: Parsed) => T;
}

export type ClientCommand<T> = Command<T>;

/**
 * What every command does first: its flags parsed, `check` run on them (flags that cannot go together
 * are a mistake even with --help), --help and --version answered, its own arguments read. The exit code
 * when the command is done already (help, version, a usage error: one line on stderr); its arguments
 * otherwise. Errors other than UsageError are the command's to answer.
 */
export function startCommand<T>(
  argv: readonly string[],
  cmd: Command<T>,
  check: (parsed: Parsed) => void = () => {},
): number | { readonly args: T } {
  try {
    const parsed = parseCommandLine(argv, cmd.options);
    check(parsed);
    if (parsed.values.help === true) {
      process.stdout.write(`${cmd.usage}\n`);
      return EXIT_OK;
    }
    if (parsed.values.version === true) {
      process.stdout.write(`meshaudit ${version()}\n`);
      return EXIT_OK;
    }
    return { args: cmd.read(parsed) };
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${cmd.name}: ${e.message} (usage: ${cmd.synopsis})\n`);
    return EXIT_USAGE;
  }
}

/** What a client command goes on with once started. */
export interface StartedCommand<T> {
  readonly flags: ClientFlags;
  readonly credentials: Credentials;
  readonly args: T;
}

/**
 * What every client command does first: startCommand, with the client options checked, then the
 * credentials read. The exit code when the command is done already (help, version, a usage error, an
 * unreadable credential); what it goes on with otherwise.
 */
export function startClientCommand<T>(argv: readonly string[], cmd: ClientCommand<T>): number | StartedCommand<T> {
  let flags: ClientFlags | undefined;
  const started = startCommand(argv, cmd, (parsed) => {
    flags = clientFlagsOf(parsed.values);
  });
  if (typeof started === 'number') return started;
  try {
    return { flags: flags!, credentials: credentialsOf(flags!), args: started.args };
  } catch (e) {
    process.stderr.write(`${cmd.name}: cannot read a credential: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
}

/** The one FILE (or `-`, standard input, when none is given) of a command that reads events. */
export function oneFile(positionals: readonly string[]): string {
  if (positionals.length > 1) {
    throw new UsageError(
      `one FILE at most, got ${JSON.stringify(positionals[0])} and ${JSON.stringify(positionals[1])}`,
    );
  }
  return positionals[0] ?? '-';
}

/** The text of FILE (`-`: standard input), or undefined after saying why it cannot be read. */
export function readInput(command: string, file: string): string | undefined {
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    process.stderr.write(
      `${command}: cannot read ${file === '-' ? 'standard input' : file}: ${(e as Error).message}\n`,
    );
    return undefined;
  }
}

// ---- The client commands' connection ----

/** Where `make run` listens (meshaudit.grpc.address's default). */
export const DEFAULT_ADDRESS = '127.0.0.1:5690';
/** The environment variable a bearer token may come in (kept out of the command line and shell history). */
export const TOKEN_ENV = 'MESHAUDIT_TOKEN';
/**
 * How long to wait for the sidecar to accept the connection. A refused connection fails at once; this
 * bounds the wait on an address that never answers (grpc's own connect timeout is 20 s).
 */
const CONNECT_TIMEOUT_MS = 5_000;

/** The options of every command that calls the sidecar. */
export const CLIENT_OPTIONS = {
  address: { type: 'string' },
  'token-file': { type: 'string' },
  cacert: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
} as const satisfies OptionSpecs;

export const CLIENT_SYNOPSIS = '[--address HOST:PORT] [--token-file FILE] [--cacert FILE [--cert FILE --key FILE]]';

export const CLIENT_HELP = `  --address HOST:PORT   the sidecar (default ${DEFAULT_ADDRESS})
  --token-file FILE     send the bearer token in FILE (meshaudit token add); or set ${TOKEN_ENV}
  --cacert FILE         TLS: trust the sidecar's certificate signed by these CAs (meshaudit.grpc.tls)
  --cert FILE --key FILE  TLS: present this client certificate`;

/** The client options as given, checked for the combinations that cannot work. */
export interface ClientFlags {
  address: string;
  tokenFile?: string;
  cacert?: string;
  cert?: string;
  key?: string;
}

export function clientFlagsOf(values: Parsed['values']): ClientFlags {
  const str = (name: string): string | undefined => values[name] as string | undefined;
  const flags: ClientFlags = {
    address: str('address') ?? DEFAULT_ADDRESS,
    tokenFile: str('token-file'),
    cacert: str('cacert'),
    cert: str('cert'),
    key: str('key'),
  };
  if ((flags.cert === undefined) !== (flags.key === undefined)) throw new UsageError('--cert and --key go together');
  if (flags.cert !== undefined && flags.cacert === undefined) throw new UsageError('--cert needs --cacert (TLS)');
  return flags;
}

/** The channel's credentials (TLS when --cacert) and the call metadata (the bearer token, if any). */
export interface Credentials {
  channel: grpc.ChannelCredentials;
  metadata: grpc.Metadata;
  /** The bearer token, for clients that take it as a string. */
  token?: string;
}

/** Reads the credential files; a file that cannot be read throws (the caller says so, exit 2). */
export function credentialsOf(flags: ClientFlags): Credentials {
  const read = (file: string | undefined): Buffer | null => (file === undefined ? null : fs.readFileSync(file));
  const channel =
    flags.cacert === undefined
      ? grpc.credentials.createInsecure()
      : grpc.credentials.createSsl(read(flags.cacert), read(flags.key), read(flags.cert));
  const metadata = new grpc.Metadata();
  const raw = flags.tokenFile === undefined ? process.env[TOKEN_ENV] : fs.readFileSync(flags.tokenFile, 'utf8');
  const token = raw?.trim();
  if (token !== undefined && token !== '') {
    metadata.set('authorization', `Bearer ${token}`);
    return { channel, metadata, token };
  }
  return { channel, metadata };
}

/** Resolves true once the channel is connected; false when the connection fails or takes too long. */
export function connect(client: grpc.Client): Promise<boolean> {
  const channel = client.getChannel();
  const deadline = Date.now() + CONNECT_TIMEOUT_MS;
  return new Promise((resolve) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) {
        resolve(true);
      } else if (state === grpc.connectivityState.TRANSIENT_FAILURE || state === grpc.connectivityState.SHUTDOWN) {
        resolve(false);
      } else {
        channel.watchConnectivityState(state, deadline, (err) => (err ? resolve(false) : check()));
      }
    };
    check();
  });
}

/** The line for an address where no sidecar answers. */
export function unreachable(command: string, address: string): string {
  const hint =
    address === DEFAULT_ADDRESS
      ? 'start one with: make run'
      : 'is a sidecar listening there? see its meshaudit.grpc.address';
  return `${command}: no sidecar answers on ${address} (${hint})`;
}

/**
 * Says on stderr why a call failed, and returns the exit code: EXIT_REFUSED_CALLER for a caller the
 * sidecar refused (with how to present a credential), EXIT_UNREACHABLE for UNAVAILABLE, EXIT_REFUSED for
 * the rest. For the commands that make one call (rules, query); record says it per line.
 */
export function callFailed(command: string, err: grpc.ServiceError): number {
  for (const line of refusal(err)) process.stderr.write(`${command}: ${line}\n`);
  if (err.code === grpc.status.UNAUTHENTICATED || err.code === grpc.status.PERMISSION_DENIED) {
    process.stderr.write(
      `${command}: the sidecar refused this caller (a token: --token-file or ${TOKEN_ENV}; ` +
        'a client certificate: --cacert --cert --key)\n',
    );
    return EXIT_REFUSED_CALLER;
  }
  return err.code === grpc.status.UNAVAILABLE ? EXIT_UNREACHABLE : EXIT_REFUSED;
}

/** The lines printed for a refused call: one per field violation, or the status alone. */
export function refusal(err: grpc.ServiceError): string[] {
  const code = grpc.status[err.code] ?? String(err.code);
  const violations = fieldViolationsOf(err.metadata);
  if (violations.length === 0) return [`${code}: ${err.details}`];
  return violations.map((v) => `${code}: ${v.field}: ${v.description}`);
}
