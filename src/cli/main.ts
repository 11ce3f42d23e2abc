#!/usr/bin/env node
// Process entry: flags, config, rules files, signals. Exit codes: 0 stopped cleanly; 1 failed while
// running, or the environment stopped start-up (a port in use, a file system error); 2 the flags, the
// configuration, the rules files or the state on disk are invalid (nothing was written).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type LoadedConfig, loadConfig } from '../config';
import type { LoadedAudits } from '../config/rules-files';
import { loadAccessAuditFiles } from '../config/rules-files';
import { MeshauditError } from '../errors';
import { jsonLogger, RateLimitedWarning } from '../log';
import { AccessAuditStore } from '../store/access-audit-store';
import { POSTGRES_CACHE_FILE, PostgresAccessAuditStore, UnreachableError } from '../store/postgres-store';
import { Checkpoint } from '../store/checkpoint';
import { formatViolation } from '../validators';
import { type CliArgs, parseArgs, USAGE, UsageError } from './args';
import { unusablePlaces } from './check-places';
import { Authenticator } from '../server/authn';
import { TlsFiles } from '../server/tls';
import { droppedTailMeaning, knownTypesOf, startSidecar, UNAUTHENTICATED_WARNING } from './sidecar';
import { runEmitCommand } from './emit-command';
import { runHealthCommand } from './health-command';
import { runKeygenCommand } from './keygen-command';
import { runRecordCommand } from './record-command';
import { runRulesCommand } from './rules-command';
import { runQueryCommand, runTailCommand } from './query-command';
import { runTokenCommand } from './token-cli';
import { runVerifyCommand } from './verify-command';
import { version } from './version';
import { ConfigReloader } from './reloader';
import { missingNodeFlags, SIDECAR_NODE_FLAGS } from './node-flags';
import type { Sidecar } from './sidecar';

const EXIT_INVALID = 2;

/** The subcommands, each returning its exit code. */
const COMMANDS: Record<string, (argv: readonly string[]) => Promise<number> | number> = {
  emit: runEmitCommand,
  health: runHealthCommand,
  keygen: runKeygenCommand,
  query: runQueryCommand,
  record: runRecordCommand,
  rules: runRulesCommand,
  tail: runTailCommand,
  token: (argv) =>
    runTokenCommand(argv, {
      out: (line) => process.stdout.write(`${line}\n`),
      err: (line) => process.stderr.write(`${line}\n`),
    }),
  verify: runVerifyCommand,
};

function fail(message: string, code: number = EXIT_INVALID): never {
  process.stderr.write(`meshaudit: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  // A subcommand, or plain `meshaudit [flags]`: the sidecar, as every deploy file runs it.
  const command = process.argv[2];
  if (command !== undefined && Object.hasOwn(COMMANDS, command)) {
    // A reader gone (`meshaudit query ... | head -1`): the command is done, quietly, as a local query is.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
    try {
      process.exitCode = await COMMANDS[command](process.argv.slice(3));
    } catch (err) {
      // Not a user's mistake: a broken installation (the .proto missing) or a bug. One line, no trace.
      process.stderr.write(`meshaudit ${command}: internal error: ${(err as Error).message ?? String(err)}\n`);
      process.exitCode = EXIT_INVALID;
    }
    // A command is done when it returns: a client library's socket or timer left behind (nats.js after a
    // connect that timed out) must not keep the process alive. Writes to a pipe or file are synchronous.
    process.exit();
  }
  let args: CliArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) fail(`${e.message}\nRun "meshaudit --help" for the usage.`);
    throw e;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (args.version) {
    process.stdout.write(`meshaudit ${version()}\n`);
    return;
  }
  const log = jsonLogger();
  // Before the config is read: a change made while starting is seen (SIGHUP, or the file on disk).
  const reloader = new ConfigReloader({ configFile: args.config, cwd: process.cwd(), rules: args.rules, log });
  let loadedConfig: LoadedConfig;
  try {
    loadedConfig = loadConfig({ file: args.config, cwd: process.cwd() });
  } catch (e) {
    if (e instanceof MeshauditError) fail(`invalid configuration, nothing was started:\n${e.message}`, e.exitCode);
    throw e;
  }
  const { config } = loadedConfig;
  const knownTypes = knownTypesOf(config);
  const loadRules = (): LoadedAudits => loadAccessAuditFiles(args.rules, knownTypes, config.limits);
  let loaded: LoadedAudits;
  try {
    loaded = loadRules();
  } catch (e) {
    if (e instanceof MeshauditError) fail(`invalid AccessAudit rules, nothing was started:\n${e.message}`, e.exitCode);
    throw e;
  }
  log.setLevel(config.logLevel);
  // --check-config prints plain lines for a person at a terminal; a running sidecar logs JSON.
  const warn = args.checkConfig
    ? (line: string): void => void process.stderr.write(`meshaudit: warning: ${line}\n`)
    : (line: string): void => log.warn(line);
  for (const w of loadedConfig.warnings) warn(`config: ${w}`);
  for (const w of loaded.warnings) warn(`rules: ${formatViolation(w)}`);
  if (args.checkConfig) {
    // The rules in force at start-up: the store's, with the --rules files applied over them.
    let store: AccessAuditStore;
    let location: string;
    try {
      if (config.store.postgres === undefined) {
        store = new AccessAuditStore(config.dataDir, { knownTypes });
        location = store.file;
        for (const w of store.load()) warn(`AccessAudit store ${store.file}: ${formatViolation(w)}`);
      } else {
        // The connection and the table, as start-up finds them; nothing is written or created.
        const checked = await PostgresAccessAuditStore.check({
          cache: { knownTypes },
          zone: config.zone,
          dataDir: config.dataDir,
          config: { ...config.store, postgres: config.store.postgres },
        }).catch((e) => {
          const cache = path.join(config.dataDir, POSTGRES_CACHE_FILE);
          if (!(e instanceof UnreachableError)) throw e;
          const unreachable = e.message.replace(/: rule changes are refused.*/, '');
          if (!fs.existsSync(cache)) {
            throw new UnreachableError(
              `${unreachable}, and no rules are cached in ${cache} yet: start-up would stop (exit 1)`,
            );
          }
          warn(`${unreachable}: start-up would start on the rules cached in ${cache}`);
          const cached = new AccessAuditStore(config.dataDir, { knownTypes }, { fileName: POSTGRES_CACHE_FILE });
          return { store: cached, location: cache, warnings: cached.load() };
        });
        ({ store, location } = checked);
        for (const w of checked.warnings) warn(`AccessAudit store ${location}: ${formatViolation(w)}`);
      }
      // As start-up reads it, without cutting a torn last line.
      const { droppedTail } = new Checkpoint(config.dataDir).inspect();
      if (droppedTail) warn(`checkpoint: start-up will drop ${droppedTailMeaning(droppedTail)}`);
    } catch (e) {
      if (e instanceof MeshauditError) fail(`can't start: ${e.message}`, e.exitCode);
      throw e;
    }
    // The credentials as start-up reads them: a tokens file or TLS files that cannot be used stop it (exit 2).
    try {
      const auth = new Authenticator(config.auth, log, config.unixSocket);
      auth.close();
      if (config.tls !== undefined) new TlsFiles(config.tls, log).close();
      if (!auth.authenticates(config)) warn(UNAUTHENTICATED_WARNING);
    } catch (e) {
      if (e instanceof MeshauditError) fail(`can't start: ${e.message}`, e.exitCode);
      throw e;
    }
    const unusable = unusablePlaces(config);
    if (unusable.length > 0) fail(`can't start:\n${unusable.join('\n')}`, 1);
    const inForce = (args.rules.length > 0 ? store.prepareSeed(loaded.audits).after : store.list()).map((a) => a.name);
    process.stdout.write(
      `configuration OK: zone ${config.zone}, gRPC ${config.grpcAddress}, data ${config.dataDir}\n` +
        config.backends
          .map((b) => `  file backend ${b.path} (rotation ${b.rotation.enabled ? 'on' : 'off'})\n`)
          .join('') +
        `  ${inForce.length} AccessAudit resource(s) in force at start-up (the store ${location}` +
        `${args.rules.length > 0 ? ', with the --rules files applied' : ''}): ${inForce.join(', ') || '(none: nothing is audited)'}\n`,
    );
    return;
  }
  const missing = missingNodeFlags(process.execArgv, process.env.NODE_OPTIONS);
  if (missing.length > 0) {
    log.warn(
      'started without the node flags meshaudit is meant to run with: it runs normally, with ~20 MB more peak memory',
      {
        missing: missing.join(' '),
        run: `node ${SIDECAR_NODE_FLAGS.join(' ')} ${process.argv[1]} ..., or NODE_OPTIONS=${SIDECAR_NODE_FLAGS.join(' ')} meshaudit ...`,
      },
    );
  }
  // grpc-js logs its own errors to the console; route them into the JSON log.
  // A misbehaving client can make grpc-js say the same thing for every frame: once per 10 s per kind.
  const grpcLines = new RateLimitedWarning(log, 10_000);
  grpc.setLogger({
    error: (...args: unknown[]) => {
      const detail = args.join(' ');
      grpcLines.warn(detail.slice(0, 120), 'grpc', { detail });
    },
  });
  grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
  // One handler per signal for the whole life of the process: removing a handler and adding another
  // can drop a signal that arrives in between (libuv closes the old signal watcher asynchronously).
  // During start-up a signal ends the process at once: nothing has been acknowledged yet.
  let sidecar: Sidecar | undefined;
  const onStopSignal = (signal: NodeJS.Signals) => (): void => {
    if (sidecar === undefined) {
      log.info(`received ${signal} during start-up`);
      process.exit(1);
    }
    log.info(`received ${signal}`);
    sidecar.stop().then(
      () => process.exit(0),
      (err) => {
        log.error('stop failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onStopSignal('SIGTERM'));
  process.on('SIGINT', onStopSignal('SIGINT'));
  // SIGHUP, and a change of the config file on disk: the config and the rules files, read again (a
  // reload asked for during start-up runs once the sidecar is up).
  process.on('SIGHUP', () => {
    // The TLS files too, as they are (cert-manager rotates them in place; they are also watched).
    sidecar?.reloadTls();
    void reloader.reload('SIGHUP');
  });
  reloader.watch();
  // SIGUSR2 reopens the audit files (POST /reopen_logs does the same; Node keeps SIGUSR1 for its
  // debugger). Handled from now on: its default action would end the process.
  process.on('SIGUSR2', () => {
    if (sidecar === undefined) {
      log.info('received SIGUSR2 during start-up: the audit files are opened once start-up ends');
      return;
    }
    log.info('received SIGUSR2: reopening the audit files');
    // A failure is logged by reopenFiles; writing goes on.
    sidecar.reopenFiles().catch(() => {});
  });
  try {
    sidecar = await startSidecar({
      config,
      audits: args.rules.length > 0 ? loaded.audits : undefined,
      log,
      processMetrics: true,
      // No drain: nothing more may be written; the control plane resends what was not acknowledged.
      onFatal: () => process.exit(1),
    });
  } catch (e) {
    // Exit 2: what is configured or stored must change first; exit 1: the environment (a port in use,
    // a file system error), a supervisor may retry. Anything else is a bug: its stack, exit 1.
    if (e instanceof MeshauditError) fail(`can't start: ${e.message}`, e.exitCode);
    throw e;
  }
  reloader.started(sidecar);
}

main().catch((err) => {
  process.stderr.write(`meshaudit: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
