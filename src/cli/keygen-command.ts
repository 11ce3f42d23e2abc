// `meshaudit keygen`: writes a new Ed25519 key pair for the tamper-evident trail (docs/integrity.md): the
// private key for meshaudit.integrity.keyFile, the public key for `meshaudit verify --pubkey`.
import { KeyFileError, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, writeKeyPair } from '../integrity/key-pair';
import {
  COMMON_OPTIONS,
  EXIT_OK,
  EXIT_USAGE,
  type OptionSpecs,
  type Parsed,
  startCommand,
  UsageError,
} from './command-line';

const COMMAND = 'meshaudit keygen';
const SYNOPSIS = `${COMMAND} --out DIR`;
export const KEYGEN_USAGE = `Usage: ${SYNOPSIS}

Writes a new Ed25519 key pair for meshaudit.integrity into DIR (created, mode 0700, when absent):
  ${PRIVATE_KEY_FILE}  the private key (PKCS8 PEM, mode 0600): meshaudit.integrity.keyFile; keep it
                        where the audit host's users cannot read it (a secret mounted into the sidecar)
  ${PUBLIC_KEY_FILE}  the public key (SPKI PEM, mode 0644): meshaudit verify --pubkey; keep a copy
                        away from the audit host
An existing file of either name is never overwritten. Prints both paths and the key id that the signed
documents name (keyId).
  --out DIR        the folder
  --help           print this help and exit
  --version        print the version and exit
Exit codes: 0 written; 2 invalid flags, a file that exists already, or a folder that cannot be written.`;

const OPTIONS = {
  out: { type: 'string' },
  ...COMMON_OPTIONS,
} as const satisfies OptionSpecs;

/** Runs `meshaudit keygen`; returns the exit code. */
export function runKeygenCommand(argv: readonly string[]): number {
  const started = startCommand(argv, {
    name: COMMAND,
    synopsis: SYNOPSIS,
    usage: KEYGEN_USAGE,
    options: OPTIONS,
    read,
  });
  if (typeof started === 'number') return started;
  try {
    const written = writeKeyPair(started.args);
    process.stdout.write(
      `private key: ${written.keyFile} (mode 0600: meshaudit.integrity.keyFile)\n` +
        `public key:  ${written.publicKeyFile} (mode 0644: meshaudit verify --pubkey)\n` +
        `key id:      ${written.keyId}\n`,
    );
    return EXIT_OK;
  } catch (e) {
    if (!(e instanceof KeyFileError)) throw e;
    process.stderr.write(`${COMMAND}: ${e.message}\n`);
    return EXIT_USAGE;
  }
}

function read({ values, positionals }: Parsed): string {
  if (positionals.length > 0) throw new UsageError(`unexpected ${JSON.stringify(positionals[0])}`);
  const out = values.out as string | undefined;
  if (out === undefined) throw new UsageError('--out: needs the folder to write the key pair in');
  return out;
}
