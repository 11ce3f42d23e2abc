// `meshaudit token add|list|revoke`: the bearer tokens of meshaudit.auth.tokensFile. A token is shown
// once, when it is made; the file keeps only its hash, and is written whole (a temp file renamed over
// it) with mode 0600. The sidecar re-reads the file when it changes, so nothing needs a restart.
import * as fs from 'node:fs';
import { newToken, tokenHash, type TokenEntry } from '../auth/tokens';
import { MeshauditError } from '../errors';
import { formatTokens, parseTokens, readTokensFile } from '../config/tokens-file';
import { replaceFile } from '../store/durable-file';
import { COMMON_OPTIONS, type OptionSpecs, parseCommandLine } from './command-line';
import { version } from './version';

export const TOKEN_USAGE = `Usage:
  meshaudit token add NAME --groups GROUP[,GROUP...] [--zones ZONE[,ZONE...]] --file FILE
  meshaudit token list --file FILE
  meshaudit token revoke NAME --file FILE

Bearer tokens for callers of the sidecar (meshaudit.auth.tokensFile). "add" prints the new token once,
on stdout; the file keeps only its SHA-256. --zones limits the zones a token may stream events for.
A running sidecar picks up every change without a restart.

Exit codes: 0 done; 2 a wrong command, flag or name, or a tokens file that cannot be used.`;

/** The file's mode: a tokens file readable by group or others is refused by the sidecar. */
const TOKENS_FILE_MODE = 0o600;

export interface TokenIo {
  out(line: string): void;
  err(line: string): void;
}

class TokenUsageError extends Error {}

function names(flag: string, value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const list = value.split(',').map((s) => s.trim());
  if (list.some((s) => s === '')) throw new TokenUsageError(`${flag}: an empty name in ${JSON.stringify(value)}`);
  return list;
}

/** Runs one token command; returns the exit code. */
export function runTokenCommand(argv: readonly string[], io: TokenIo): number {
  try {
    return run(argv, io);
  } catch (e) {
    if (e instanceof TokenUsageError) {
      io.err(`meshaudit token: ${e.message}\nRun "meshaudit token --help" for the usage.`);
      return 2;
    }
    if (e instanceof MeshauditError) {
      io.err(`meshaudit token: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

function run(argv: readonly string[], io: TokenIo): number {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    throw new TokenUsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(TOKEN_USAGE);
    return 0;
  }
  if (values.version) {
    io.out(`meshaudit ${version()}`);
    return 0;
  }
  const [command, name, ...extra] = positionals;
  if (command === undefined) throw new TokenUsageError('needs a command: add, list or revoke');
  if (!['add', 'list', 'revoke'].includes(command))
    throw new TokenUsageError(`unknown command ${JSON.stringify(command)}: add, list or revoke`);
  const file = values.file;
  if (file === undefined || file === '') throw new TokenUsageError('--file: needs the tokens file');
  const wantsName = command !== 'list';
  if (wantsName && name === undefined) throw new TokenUsageError(`${command}: needs the token's NAME`);
  if (extra.length > 0 || (!wantsName && name !== undefined))
    throw new TokenUsageError(`${command}: unexpected ${JSON.stringify((wantsName ? extra : [name, ...extra])[0])}`);
  if (command !== 'add' && (values.groups !== undefined || values.zones !== undefined))
    throw new TokenUsageError(`${command}: --groups and --zones are for add`);

  const entries = readTokensFile(file, { mustExist: command !== 'add' });
  if (command === 'list') {
    for (const e of entries) {
      io.out(
        `${e.name}\tgroups=${e.groups.join(',')}\tzones=${e.zones?.join(',') ?? '*'}\tsha256=${e.sha256.slice(0, 12)}...`,
      );
    }
    if (entries.length === 0) io.err(`meshaudit token: ${file} holds no tokens`);
    return 0;
  }
  if (command === 'revoke') {
    const left = entries.filter((e) => e.name !== name);
    if (left.length === entries.length)
      throw new TokenUsageError(`revoke: no token named ${JSON.stringify(name)} in ${file}`);
    write(file, left);
    io.err(
      `meshaudit token: revoked ${JSON.stringify(name)}; a running sidecar refuses it from its next re-read of ${file}`,
    );
    return 0;
  }
  const groups = names('--groups', values.groups);
  if (groups === undefined)
    throw new TokenUsageError('add: needs --groups (mesh-system:admin, mesh-system:control-plane, ...)');
  if (entries.some((e) => e.name === name))
    throw new TokenUsageError(
      `add: a token named ${JSON.stringify(name)} exists; revoke it first, or choose another name`,
    );
  const zones = names('--zones', values.zones);
  const token = newToken();
  const entry: TokenEntry = {
    name: name!,
    groups,
    ...(zones === undefined ? {} : { zones }),
    sha256: tokenHash(token),
  };
  // The entry goes through the file's own validation, so that a name the sidecar would refuse is refused here.
  const next = parseTokens(formatTokens([...entries, entry]), file);
  write(file, next);
  io.out(token);
  io.err(
    `meshaudit token: added ${JSON.stringify(name)} (groups ${groups.join(', ')}${zones ? `; zones ${zones.join(', ')}` : ''}) to ${file}. ` +
      'The token is shown this once: store it now; the file keeps only its hash.',
  );
  return 0;
}

const OPTIONS = {
  file: { type: 'string' },
  groups: { type: 'string' },
  zones: { type: 'string' },
  ...COMMON_OPTIONS,
} as const satisfies OptionSpecs;

function parse(argv: readonly string[]) {
  const { values, positionals } = parseCommandLine(argv, OPTIONS);
  const str = (name: string): string | undefined => values[name] as string | undefined;
  return {
    values: {
      file: str('file'),
      groups: str('groups'),
      zones: str('zones'),
      help: values.help === true,
      version: values.version === true,
    },
    positionals,
  };
}

function write(file: string, entries: readonly TokenEntry[]): void {
  try {
    replaceFile(fs, file, formatTokens(entries), { mode: TOKENS_FILE_MODE });
  } catch (e) {
    throw new TokenUsageError(`can't write ${file}: ${(e as Error).message}`);
  }
}
