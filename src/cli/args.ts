// Command-line flags. Parsed once, at the edge; every mistake names the flag.
import { didYouMean, quote } from '../validators';

const FLAGS = ['--config', '--rules', '--check-config', '--help', '--version'];

export interface CliArgs {
  config?: string;
  rules: string[];
  checkConfig: boolean;
  help: boolean;
  version: boolean;
}

export class UsageError extends Error {}

export const USAGE = `Usage: meshaudit [--config FILE] [--rules FILE...] [--check-config] [--help] [--version]
       meshaudit token add|list|revoke ...   (bearer tokens: meshaudit token --help)

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

export function parseArgs(argv: readonly string[]): CliArgs {
  const args: CliArgs = { rules: [], checkConfig: false, help: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] =
      arg.startsWith('--') && arg.includes('=')
        ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
        : [arg, undefined];
    switch (flag) {
      case '--config': {
        const value = inline ?? argv[++i];
        if (value === undefined || value === '' || value.startsWith('--'))
          throw new UsageError('--config: needs a file name');
        if (args.config !== undefined) throw new UsageError('--config: given twice');
        args.config = value;
        break;
      }
      case '--rules': {
        const before = args.rules.length;
        if (inline !== undefined) args.rules.push(inline);
        while (i + 1 < argv.length && !argv[i + 1].startsWith('--')) args.rules.push(argv[++i]);
        if (args.rules.length === before || args.rules.includes(''))
          throw new UsageError('--rules: needs at least one file name');
        break;
      }
      case '--check-config':
        args.checkConfig = true;
        break;
      case '--help':
      case '-h':
        args.help = true;
        break;
      case '--version':
        args.version = true;
        break;
      default:
        throw new UsageError(`unknown argument ${quote(arg)}${arg.startsWith('-') ? didYouMean(flag, FLAGS) : ''}`);
    }
  }
  return args;
}
