// `meshaudit verify`: checks an audit folder's tamper-evident trail (src/integrity/verify.ts) with the
// zone's public keys, for an auditor or a cron job: one line per file, or the report as JSON, and an
// exit status that says whether everything is intact. Reads only; needs no sidecar.
import type * as crypto from 'node:crypto';
import { parseRfc3339 } from '../events/rfc3339';
import { KeyFileError, readPublicKey } from '../integrity/key-pair';
import { type FileReport, INTACT_VERDICTS, type TrailReport, verifyTrail } from '../integrity/verify';
import {
  COMMON_OPTIONS,
  EXIT_OK,
  EXIT_USAGE,
  type OptionSpecs,
  type Parsed,
  startCommand,
  UsageError,
} from './command-line';

const COMMAND = 'meshaudit verify';
/** Something is not intact (or there is no trail to check). */
const EXIT_TAMPERED = 1;

const SYNOPSIS = `${COMMAND} --dir DIR --pubkey FILE [--pubkey FILE ...] [--from TIME] [--to TIME] [--json]`;
export const VERIFY_USAGE = `Usage: ${SYNOPSIS}

Checks the tamper-evident trail of the audit files in DIR (meshaudit.integrity: docs/integrity.md): every
rotated file against its signed digest, the digests' chain, the retention markers, and the active file
against its seal. One line per file: its verdict (OK, DELETED-BY-RETENTION, MODIFIED, MISSING,
OUT-OF-ORDER, TRUNCATED, EXTENDED-AFTER-SEAL, UNSEALED, BAD-SIGNATURE, CHAIN-BROKEN), its name, and its
records or what is wrong; then a summary line.
  --dir DIR        the audit folder (a file backend's folder, where the sidecar writes)
  --pubkey FILE    the zone's Ed25519 public key, PEM (meshaudit keygen's .pub, or the one the sidecar
                   wrote beside its generated key); repeat it for the keys the zone had before
  --from TIME      only the files holding records at or after TIME (RFC 3339: 2026-03-01T00:00:00Z);
  --to TIME        at or before TIME. The chain is checked across every file all the same
  --json           print the report as JSON instead
  --help           print this help and exit
  --version        print the version and exit
Exit codes:
  0  every file is intact (OK, or DELETED-BY-RETENTION: retention deleted it and said so)
  1  something is not: tampering, or files the trail does not cover; also no trail at all in DIR
  2  invalid flags, a public key that cannot be read or is not Ed25519 PEM, a folder that cannot be read`;

const OPTIONS = {
  dir: { type: 'string' },
  pubkey: { type: 'string', multiple: true },
  from: { type: 'string' },
  to: { type: 'string' },
  json: { type: 'boolean' },
  ...COMMON_OPTIONS,
} as const satisfies OptionSpecs;

interface VerifyArgs {
  readonly dir: string;
  readonly pubkeys: readonly string[];
  readonly from?: Date;
  readonly to?: Date;
  readonly json: boolean;
}

/** Runs `meshaudit verify`; returns the exit code. */
export async function runVerifyCommand(argv: readonly string[]): Promise<number> {
  const started = startCommand(argv, {
    name: COMMAND,
    synopsis: SYNOPSIS,
    usage: VERIFY_USAGE,
    options: OPTIONS,
    read,
  });
  if (typeof started === 'number') return started;
  const { args } = started;
  let publicKeys: crypto.KeyObject[];
  try {
    publicKeys = args.pubkeys.map(readPublicKey);
  } catch (e) {
    if (!(e instanceof KeyFileError)) throw e;
    process.stderr.write(`${COMMAND}: --pubkey: ${e.message}\n`);
    return EXIT_USAGE;
  }
  let report: TrailReport;
  try {
    report = await verifyTrail({ dir: args.dir, publicKeys, from: args.from, to: args.to });
  } catch (e) {
    process.stderr.write(`${COMMAND}: can't read --dir ${args.dir}: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  if (args.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    for (const f of report.files) process.stdout.write(`${line(f)}\n`);
    process.stdout.write(`${summary(report, args)}\n`);
  }
  if (report.activeFiles.length === 0) {
    if (args.json) process.stderr.write(`${COMMAND}: ${noTrail(args.dir)}\n`);
    return EXIT_TAMPERED;
  }
  return report.ok ? EXIT_OK : EXIT_TAMPERED;
}

function read({ values, positionals }: Parsed): VerifyArgs {
  if (positionals.length > 0) throw new UsageError(`unexpected ${JSON.stringify(positionals[0])}`);
  const dir = values.dir as string | undefined;
  if (dir === undefined) throw new UsageError('--dir: needs the audit folder');
  const pubkeys = (values.pubkey as string[] | undefined) ?? [];
  if (pubkeys.length === 0) throw new UsageError("--pubkey: needs the zone's public key (meshaudit keygen writes one)");
  const from = timeOf('--from', values.from as string | undefined);
  const to = timeOf('--to', values.to as string | undefined);
  if (from !== undefined && to !== undefined && from > to) {
    throw new UsageError(`--from ${from.toISOString()} is after --to ${to.toISOString()}`);
  }
  return { dir, pubkeys, from, to, json: values.json === true };
}

function timeOf(flag: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const ms = parseRfc3339(value);
  if (Number.isNaN(ms)) {
    throw new UsageError(
      `${flag}: must be an RFC 3339 time such as 2026-03-01T10:00:00Z, got ${JSON.stringify(value)}`,
    );
  }
  return new Date(ms);
}

/** `OK  audit-...log  1200 records, A .. B` or `MODIFIED  audit.log  what is wrong`. */
function line(f: FileReport): string {
  const verdict = f.verdict.toUpperCase();
  if (!INTACT_VERDICTS.has(f.verdict)) return `${verdict}  ${f.file}  ${f.detail}`;
  const records = f.records === undefined ? 'no records' : `${f.records} records`;
  const span =
    f.firstRecordAt === undefined && f.lastRecordAt === undefined
      ? ''
      : `, ${f.firstRecordAt ?? '-'} .. ${f.lastRecordAt ?? '-'}`;
  return `${verdict}  ${f.file}  ${records}${span}${f.detail === '' ? '' : `; ${f.detail}`}`;
}

function summary(report: TrailReport, args: VerifyArgs): string {
  if (report.activeFiles.length === 0) return noTrail(args.dir);
  const range =
    args.from === undefined && args.to === undefined
      ? ''
      : ` holding records ${args.from === undefined ? '' : `from ${args.from.toISOString()} `}${args.to === undefined ? '' : `to ${args.to.toISOString()}`}`.trimEnd();
  const files = `${report.files.length} file${report.files.length === 1 ? '' : 's'}${range} in ${args.dir}`;
  if (report.ok) {
    const deleted = report.files.filter((f) => f.verdict === 'deleted-by-retention').length;
    return `intact: ${files}${deleted === 0 ? '' : ` (${deleted} deleted by retention)`}`;
  }
  const counts = new Map<string, number>();
  for (const f of report.files)
    if (!INTACT_VERDICTS.has(f.verdict)) counts.set(f.verdict, (counts.get(f.verdict) ?? 0) + 1);
  return `NOT INTACT: ${report.problems} of ${files}: ${[...counts].map(([v, n]) => `${n} ${v}`).join(', ')}`;
}

function noTrail(dir: string): string {
  return `no trail in ${dir}: no seal, digest, retention marker or rotated file to check (is it the audit folder?)`;
}
