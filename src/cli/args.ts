// Command-line flags. Parsed once, at the edge; every mistake names the flag.
import { quote } from '../validators';
import { COMMON_OPTIONS, type OptionSpecs, tokenize, UsageError } from './command-line';

export { UsageError };

export interface CliArgs {
  config?: string;
  rules: string[];
  checkConfig: boolean;
  help: boolean;
  version: boolean;
}

export const USAGE = `Usage: meshaudit [--config FILE] [--rules FILE...] [--check-config] [--help] [--version]
       meshaudit COMMAND [--help] [--version] ...

Commands (each with --help):
  emit [FILE|-]            stream events (JSON lines) as a control plane does, with progress and a summary
  health [--service NAME]  exit 0 when the sidecar serves (grpc.health.v1), 1 otherwise: for exec probes
  keygen --out DIR         write an Ed25519 key pair for meshaudit.integrity (the signed trail)
  query [filters]          print the audit records held that match (ReadService.Query), oldest first
  query --nats URL [--zone Z] [filters] [--follow]   every zone's records from the central NATS
                           JetStream stream, merged by date (docs/forwarding.md)
  record [FILE|-]          record events (JSON lines) with AuditService.Record, one result per line
  rules list|get|apply|delete|evaluate   the zone's AccessAudits over RuleService
  tail -f [filters]        print the matching audit records as they are committed, until interrupted
  token add|list|revoke    bearer tokens for callers of the sidecar
  verify --dir DIR --pubkey FILE   check an audit folder's signed trail: exit 0 only when all is intact

A per-zone access-audit sidecar for service-mesh control planes.

Options:
  --config FILE      sidecar configuration (YAML); without it, the built-in defaults:
                     zone "default", gRPC on 127.0.0.1:5690, the admin on 127.0.0.1:5691,
                     records in ./var/audit/audit.log
  --rules FILE...    AccessAudit resources (YAML, Universal or Kubernetes form, multi-document);
                     the flag may be repeated and takes every following non-flag argument
  --check-config     validate the configuration, the rules files and the stored state, check that
                     every place can be written, print a summary, and exit (0 valid, 2 invalid,
                     1 a place start-up could not use); writes nothing
  --help             print this help and exit
  --version          print the version and exit

Signals: SIGTERM/SIGINT stop gracefully (in-flight batches are acknowledged first);
SIGHUP (and a change of the files on disk) reloads the config and the --rules files (an invalid
file keeps everything in force; docs/reload.md); SIGUSR2 reopens the audit files.`;

const OPTIONS = {
  config: { type: 'string' },
  rules: { type: 'string', multiple: true },
  'check-config': { type: 'boolean' },
  ...COMMON_OPTIONS,
} as const satisfies OptionSpecs;

export function parseArgs(argv: readonly string[]): CliArgs {
  const args: CliArgs = { rules: [], checkConfig: false, help: false, version: false };
  // `--rules A B` takes every following argument that is not a flag: a positional belongs to the
  // --rules just before it; anywhere else it is a mistake.
  let inRules = false;
  for (const t of tokenize(argv, OPTIONS)) {
    if (t.kind === 'positional') {
      if (!inRules) throw new UsageError(`unknown argument ${quote(t.value)}`);
      args.rules.push(t.value);
      continue;
    }
    inRules = t.name === 'rules';
    if (t.name === 'config') {
      if (args.config !== undefined) throw new UsageError('--config: given twice');
      args.config = t.value;
    } else if (t.name === 'rules') args.rules.push(t.value as string);
    else if (t.name === 'check-config') args.checkConfig = true;
    else if (t.name === 'help') args.help = true;
    else if (t.name === 'version') args.version = true;
  }
  return args;
}
