// YAML -> defaults -> validate -> frozen Config. Every problem in the file is collected and reported
// at once, each with its field path and line, and any problem stops start-up before anything is written.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { isIPv6 } from 'node:net';
import * as path from 'node:path';
import { type ExtraResourceType, isBuiltInType, type TypeRegistry, typeRegistry } from '../rules/resource-types';
import {
  byLine,
  didYouMean,
  field as join,
  formatViolation,
  IS_REQUIRED,
  InvalidArgumentError,
  index,
  mustBe,
  quote,
  show,
  unknown,
  unknownField,
  Violations,
} from '../validators';
import { DEFAULT_PERMISSIONS, isLoopback, PERMISSIONS, type Permissions } from '../auth/principal';
import * as D from './defaults';
import type { CertificateIdentity } from '../auth/certificates';
import { LOG_LEVELS, type LogLevel } from '../log';
import type {
  AdminConfig,
  AuthConfig,
  Config,
  FileBackendConfig,
  FileModes,
  ForwarderConfig,
  IntegrityConfig,
  Limits,
  NatsCredentials,
  NatsForwarderConfig,
  NatsTlsConfig,
  PostgresSslMode,
  RotationConfig,
  StoreConfig,
  TlsConfig,
  UnixSocketConfig,
} from './types';
import { STREAM_NAME, STREAM_NAME_RULE, SUBJECT_TOKEN, SUBJECT_TOKEN_RULE } from './nats-names';
import { readTextFile, UnusableFileError } from './read-file';
import { DEFAULT_MAX_ALIAS_NODES, parseYamlDocuments, YamlError } from './yaml';

export interface LoadConfigOptions {
  /** The config file, as the operator named it (it prefixes every message); relative to cwd. */
  readonly file?: string;
  /** Directory that relative paths (the file, dataDir, backend paths) are resolved against. */
  readonly cwd: string;
  /** Where meshaudit.store.postgres falls back to the PG* variables; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * The config cannot be used: every violation, each with the file (`source`), its line and field path.
 * The message has one line per violation, e.g. `config.yaml:12: <field>: ...`.
 */
export class ConfigError extends InvalidArgumentError {
  override readonly name = 'ConfigError';
}

/** A valid configuration, and what the operator should still hear about it (`config.yaml:2: field: ...`). */
export interface LoadedConfig {
  readonly config: Config;
  readonly warnings: readonly string[];
}

/** The limits when the config sets none (callers without a config: tests, tools). */
export function defaultLimits(): Limits {
  return resolveLimits(undefined, undefined, new Checker({}));
}

/** The built-in defaults, with their relative paths resolved against `cwd`. */
export function defaultConfig(cwd: string): Config {
  return resolveConfig({}, cwd, new Checker({}), {});
}

/** Without a file: the defaults. With one: the file merged over the defaults, or a ConfigError. */
export function loadConfig(opts: LoadConfigOptions): LoadedConfig {
  if (opts.file === undefined) return { config: defaultConfig(opts.cwd), warnings: [] };
  const file = opts.file;
  const text = readConfigText(file, path.resolve(opts.cwd, file));
  const whole = (description: string, line?: number): ConfigError =>
    new ConfigError([{ field: '', description, source: file, ...(line === undefined ? {} : { line }) }]);

  let parsed: ReturnType<typeof parseYamlDocuments>;
  try {
    parsed = parseYamlDocuments(text, { filename: file });
  } catch (err) {
    if (!(err instanceof YamlError)) throw err;
    throw whole(err.reason, err.line);
  }
  if (parsed.docs.length > 1)
    throw whole(`must hold a single YAML document, found ${parsed.docs.length}`, parsed.lineOf(1, ''));

  const checker = new Checker({ source: file, lineOf: (field) => parsed.lineOf(0, field) });
  // An empty file (or only comments) is a valid config: every default.
  const config = resolveConfig(parsed.docs[0] ?? {}, opts.cwd, checker, opts.env ?? process.env);
  if (!checker.violations.isEmpty) throw new ConfigError(byLine(checker.violations.list));
  return { config, warnings: byLine(checker.warnings.list).map(formatViolation) };
}

// ---------------------------------------------------------------------------------------------
// Reading

function readConfigText(file: string, absolute: string): string {
  try {
    // The same limit (and words) as the YAML parser's, enforced while reading so a huge file is never loaded.
    return readTextFile(absolute, D.DEFAULT_YAML_BYTES);
  } catch (err) {
    if (!(err instanceof UnusableFileError)) throw err;
    // A file that could not be read is named in the message; one that was read is the source of the line.
    if (!err.read)
      throw new ConfigError([{ field: '', description: `cannot read config file ${file}: ${err.message}` }]);
    throw new ConfigError([{ field: '', description: err.message, source: file }]);
  }
}

// ---------------------------------------------------------------------------------------------
// The shape of the file

const TOP_KEYS = ['meshaudit', 'kmesh'];
// workerThreads is known so that it is answered as removed (Checker.removed), not as an unknown key.
/** The keys of meshaudit.limits, in the order docs/limits.md and docs/reload.md list them. */
export const LIMITS_KEYS: ReadonlyArray<keyof Limits> = [
  'messageBytes',
  'statusBytes',
  'connections',
  'streamsPerConnection',
  'bufferedRequestBytes',
  'eventsPerBatch',
  'fieldChars',
  'listEntries',
  'accessAudits',
  'rulesPerAccessAudit',
  'rulesFileBytes',
  'yamlBytes',
  'yamlDepth',
  'yamlAliases',
];
const MESHAUDIT_KEYS = [
  'limits',
  'zone',
  'dataDir',
  'fsync',
  'drainTimeoutSeconds',
  'workerThreads',
  'extraResourceTypes',
  'grpc',
  'auth',
  'files',
  'admin',
  'log',
  'store',
  'integrity',
  'forwarders',
];
const INTEGRITY_KEYS = ['enabled', 'keyFile', 'sealIntervalSeconds', 'copyTo'];
const STORE_KEYS = ['type', 'postgres', 'createSchema'];
const STORE_TYPES = ['file', 'postgres'] as const;
const POSTGRES_KEYS = ['host', 'port', 'database', 'user', 'passwordFile', 'schema', 'sslMode', 'caFile'];
const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
const ADMIN_KEYS = ['address', 'probeAddress'];
const LOG_KEYS = ['level'];
const FILES_KEYS = ['fileMode', 'dirMode'];
const GRPC_KEYS = ['address', 'maxMessageBytes', 'allowInsecureRemote', 'tls', 'unixSocket'];
const UNIX_SOCKET_KEYS = ['path', 'mode', 'user', 'groups', 'zones'];
const TLS_KEYS = ['certFile', 'keyFile', 'clientCaFile', 'clientAuth'];
const AUTH_KEYS = ['localhostIsAdmin', 'tokensFile', 'permissions', 'certificateIdentities'];
const IDENTITY_KEYS = ['match', 'user', 'groups', 'zones', 'instances'];
const MATCH_KEYS = ['commonName', 'uri', 'dns'];
const KMESH_KEYS = ['access'];
const ACCESS_KEYS = ['audit'];
const AUDIT_KEYS = ['skipDefaultTypes', 'backends'];
const BACKEND_KEYS = ['type', 'file'];
const BACKEND_TYPES = [D.FILE_BACKEND_TYPE];
const FILE_KEYS = ['path', 'rotation'];
const FORWARDER_KEYS = [
  'kind',
  'name',
  'servers',
  'user',
  'passwordFile',
  'tokenFile',
  'nkeySeedFile',
  'credsFile',
  'tls',
  'instance',
  'stream',
  'maxHeldFiles',
];
const FORWARDER_TLS_KEYS = ['caFile', 'certFile', 'keyFile'];
const STREAM_KEYS = ['name', 'create', 'replicas', 'maxAgeDays', 'duplicateWindowSeconds'];
const ROTATION_KEYS = ['enabled', 'maxRetainedFiles', 'maxSizeMb', 'maxAgeDays', 'interval', 'compress'];

const AUDIT = 'kmesh.access.audit';
const BACKENDS = `${AUDIT}.backends`;

function resolveConfig(doc: unknown, cwd: string, c: Checker, env: NodeJS.ProcessEnv): Config {
  const top = c.section(doc, '', TOP_KEYS);
  const own = c.section(get(top, 'meshaudit'), 'meshaudit', MESHAUDIT_KEYS);
  const grpc = c.section(get(own, 'grpc'), 'meshaudit.grpc', GRPC_KEYS);
  const kmesh = c.section(get(top, 'kmesh'), 'kmesh', KMESH_KEYS);
  const access = c.section(get(kmesh, 'access'), 'kmesh.access', ACCESS_KEYS);
  const audit = c.section(get(access, 'audit'), AUDIT, AUDIT_KEYS);

  c.removed(
    own,
    'meshaudit',
    'workerThreads',
    0,
    'batches are read, checked and formatted on the event loop, which costs less CPU per event than worker threads did',
  );
  const extraResourceTypes = c.extraTypes(own, 'meshaudit', 'extraResourceTypes');
  const knownTypes = typeRegistry(extraResourceTypes);
  const drainSeconds = c.field(own, 'meshaudit', 'drainTimeoutSeconds', D.DEFAULT_DRAIN_TIMEOUT_SECONDS, drainTimeout);
  const dataDir = path.resolve(cwd, c.field(own, 'meshaudit', 'dataDir', D.DEFAULT_DATA_DIR, directoryPath));
  if (existingKind(dataDir) === 'other') c.report('meshaudit.dataDir', `${dataDir} exists and is not a directory`);
  const grpcAddress = c.field(grpc, 'meshaudit.grpc', 'address', D.DEFAULT_GRPC_ADDRESS, grpcAddressRule);
  const allowInsecureRemote = c.field(grpc, 'meshaudit.grpc', 'allowInsecureRemote', false, boolean);
  const tls = resolveTls(get(grpc, 'tls'), cwd, c);
  // In plaintext, tokens cross the network in clear and anyone who reaches the port may try them.
  if (grpcAddress !== 'off' && tls === undefined && !allowInsecureRemote && !isLoopback(grpcAddress)) {
    c.report(
      'meshaudit.grpc.address',
      `${grpcAddress} is not a loopback address, and the sidecar serves it without TLS: anyone who can reach it ` +
        'could send events or present stolen tokens; configure meshaudit.grpc.tls, listen on 127.0.0.1 beside ' +
        'the control plane, or set meshaudit.grpc.allowInsecureRemote: true where the network itself is trusted',
    );
  }
  const admin = resolveAdmin(c.section(get(own, 'admin'), 'meshaudit.admin', ADMIN_KEYS), tls, allowInsecureRemote, c);
  const log = c.section(get(own, 'log'), 'meshaudit.log', LOG_KEYS);
  const auth = resolveAuth(c.section(get(own, 'auth'), 'meshaudit.auth', AUTH_KEYS), cwd, c);
  const unixSocket = resolveUnixSocket(get(grpc, 'unixSocket'), cwd, c);
  if (grpcAddress === 'off' && unixSocket === undefined) {
    c.report('meshaudit.grpc.address', 'is off, and no meshaudit.grpc.unixSocket is configured: nothing would listen');
  }
  const clientCertificates = tls?.clientCaFile !== undefined;
  // Nobody could call: every call, the control plane's stream included, would be refused.
  if (!auth.localhostIsAdmin && auth.tokensFile === undefined && !clientCertificates && unixSocket === undefined) {
    c.report(
      'meshaudit.auth.localhostIsAdmin',
      'is false, and no caller could present a credential (no meshaudit.auth.tokensFile, no ' +
        'meshaudit.grpc.tls.clientCaFile, no meshaudit.grpc.unixSocket): every call would be refused',
    );
  }
  if (auth.certificateIdentities.length > 0 && !clientCertificates) {
    c.warnings.add(
      'meshaudit.auth.certificateIdentities',
      'can never apply: no client certificate is asked for without meshaudit.grpc.tls.clientCaFile',
    );
  }
  const zone = c.field(own, 'meshaudit', 'zone', D.DEFAULT_ZONE, zoneName);
  return Object.freeze({
    zone,
    grpcAddress,
    dataDir,
    extraResourceTypes,
    fsync: c.field(own, 'meshaudit', 'fsync', D.DEFAULT_FSYNC, boolean),
    // Rounded, not ceiled: 0.3 s is 300.00000000000006 ms in floating point. At least 1 ms: 0 would mean no wait.
    drainTimeoutMs: Math.max(1, Math.round(drainSeconds * 1000)),
    // Checked against the registry: a misspelt skip would silently audit every heartbeat of that type.
    limits: resolveLimits(c.section(get(own, 'limits'), 'meshaudit.limits', LIMITS_KEYS), grpc, c),
    auth,
    allowInsecureRemote,
    tls,
    unixSocket,
    files: resolveFiles(c.section(get(own, 'files'), 'meshaudit.files', FILES_KEYS), c),
    admin,
    integrity: resolveIntegrity(c.section(get(own, 'integrity'), 'meshaudit.integrity', INTEGRITY_KEYS), cwd, c),
    store: resolveStore(c.section(get(own, 'store'), 'meshaudit.store', STORE_KEYS), cwd, env, c),
    logLevel: c.field(log, 'meshaudit.log', 'level', D.DEFAULT_LOG_LEVEL as LogLevel, logLevel),
    skipDefaultTypes: c.typeNames(audit, AUDIT, 'skipDefaultTypes', D.DEFAULT_SKIP_DEFAULT_TYPES, knownTypes),
    backends: resolveBackends(audit, cwd, dataDir, c),
    forwarders: resolveForwarders(get(own, 'forwarders'), zone, cwd, c),
  });
}

function resolveLimits(limits: Mapping | undefined, grpc: Mapping | undefined, c: Checker): Limits {
  const at = 'meshaudit.limits';
  const int = (key: string, fallback: number, min: number, max: number): number =>
    c.field(limits, at, key, fallback, integerFrom(min, max));
  const messageBytes = resolveMessageBytes(limits, grpc, c);
  const bufferedRequestBytes = int('bufferedRequestBytes', D.DEFAULT_BUFFERED_REQUEST_BYTES, 1024, MAX_BUFFERED_BYTES);
  // Below one whole message, a request of the largest allowed size could never be received.
  if (bufferedRequestBytes < messageBytes) {
    c.report(
      `${at}.bufferedRequestBytes`,
      `must be at least meshaudit.limits.messageBytes (${messageBytes}), got ${bufferedRequestBytes}`,
    );
  }
  return Object.freeze({
    messageBytes,
    statusBytes: int('statusBytes', D.DEFAULT_STATUS_BYTES, 1024, 65536),
    connections: int('connections', D.DEFAULT_CONNECTIONS, 1, 65536),
    streamsPerConnection: int('streamsPerConnection', D.DEFAULT_STREAMS_PER_CONNECTION, 1, 10000),
    bufferedRequestBytes,
    // 1,000,000 events of a few bytes each still fit the largest message.
    eventsPerBatch: int('eventsPerBatch', D.DEFAULT_EVENTS_PER_BATCH, 1, 1_000_000),
    // Fewer than 253 characters would refuse valid Kubernetes names.
    fieldChars: int('fieldChars', D.DEFAULT_FIELD_CHARS, 253, 1024 * 1024),
    listEntries: int('listEntries', D.DEFAULT_LIST_ENTRIES, 1, 4096),
    accessAudits: int('accessAudits', D.DEFAULT_ACCESS_AUDITS, 1, 100_000),
    rulesPerAccessAudit: int('rulesPerAccessAudit', D.DEFAULT_RULES_PER_ACCESS_AUDIT, 1, 10_000),
    rulesFileBytes: int('rulesFileBytes', D.DEFAULT_RULES_FILE_BYTES, 1024, D.DEFAULT_RULES_FILE_BYTES * 16),
    yamlBytes: int('yamlBytes', D.DEFAULT_YAML_BYTES, 1024, 64 * 1024 * 1024),
    // At least 16: the config itself nests 9 levels as js-yaml counts them.
    yamlDepth: int('yamlDepth', D.DEFAULT_YAML_DEPTH, 16, 1000),
    // At most the nodes aliases may add in all (10,000): more aliases than that could never be used.
    yamlAliases: int('yamlAliases', D.DEFAULT_YAML_ALIASES, 0, DEFAULT_MAX_ALIAS_NODES),
  });
}

function resolveAdmin(
  admin: Mapping | undefined,
  tls: TlsConfig | undefined,
  allowInsecureRemote: boolean,
  c: Checker,
): AdminConfig {
  const at = 'meshaudit.admin';
  const address = c.field(admin, at, 'address', D.DEFAULT_ADMIN_ADDRESS, optionalAddress);
  const probeAddress = c.field(admin, at, 'probeAddress', '', optionalAddress);
  // The gRPC rule: config and tokens must not cross a network in clear. The admin serves HTTPS with
  // meshaudit.grpc.tls's certificate on a non-loopback address. The probe listener shows neither
  // config nor state that can be changed, so it may listen on the pod's address in plain HTTP.
  if (address !== '' && tls === undefined && !allowInsecureRemote && !isLoopback(address)) {
    c.report(
      `${at}.address`,
      `${address} is not a loopback address, and without meshaudit.grpc.tls the admin would be served in plain ` +
        'HTTP: configure meshaudit.grpc.tls, listen on 127.0.0.1 (meshaudit.admin.probeAddress serves /ready and ' +
        '/stats/prometheus on the pod address), or set meshaudit.grpc.allowInsecureRemote: true',
    );
  }
  return Object.freeze({
    address: address === '' ? undefined : address,
    probeAddress: probeAddress === '' ? undefined : probeAddress,
  });
}

function resolveIntegrity(integrity: Mapping | undefined, cwd: string, c: Checker): IntegrityConfig {
  const at = 'meshaudit.integrity';
  const keyFile = c.resolvedFile(integrity, at, 'keyFile', cwd);
  const copyTo = c.field(integrity, at, 'copyTo', undefined, directoryPath);
  const seconds = c.field(integrity, at, 'sealIntervalSeconds', D.DEFAULT_SEAL_INTERVAL_SECONDS, sealInterval);
  return Object.freeze({
    enabled: c.field(integrity, at, 'enabled', D.DEFAULT_INTEGRITY_ENABLED, boolean),
    keyFile,
    sealIntervalMs: Math.round(seconds * 1000),
    copyTo: copyTo === undefined ? undefined : path.resolve(cwd, copyTo),
  });
}

function resolveStore(store: Mapping | undefined, cwd: string, env: NodeJS.ProcessEnv, c: Checker): StoreConfig {
  const at = 'meshaudit.store';
  const type = c.field(store, at, 'type', 'file' as const, oneOf(STORE_TYPES));
  const createSchema = c.field(store, at, 'createSchema', false, boolean);
  const given = get(store, 'postgres');
  if (type === 'file') {
    if (given !== undefined && given !== null) {
      c.warnings.add(`${at}.postgres`, 'is ignored: meshaudit.store.type is file (set it to postgres to use it)');
    }
    return Object.freeze({ type, postgres: undefined, createSchema });
  }
  const pg = c.section(given, `${at}.postgres`, POSTGRES_KEYS);
  const pgAt = `${at}.postgres`;
  // A key absent from the file takes its PG* variable, as libpq does; a bad variable is named as such.
  const setting = <T>(key: string, variable: string | undefined, fallback: T, rule: Rule<T>): T => {
    if (pg !== undefined && Object.hasOwn(pg, key)) return c.field(pg, pgAt, key, fallback, rule);
    const value = variable === undefined ? undefined : env[variable];
    if (value === undefined || value === '') return fallback;
    const result = rule(key === 'port' ? (/^[0-9]+$/.test(value) ? Number(value) : value) : value);
    if (!(result instanceof Expected)) return result;
    c.report(`${pgAt}.${key}`, `is not set, and ${variable} ${result.description}, got ${show(value)}`);
    return fallback;
  };
  const osUser = safeUserName();
  const user = setting('user', 'PGUSER', osUser, nonEmptyString);
  const passwordFile = setting<string | undefined>('passwordFile', undefined, undefined, filePath);
  const caFile = setting<string | undefined>('caFile', 'PGSSLROOTCERT', undefined, filePath);
  const sslMode = setting<PostgresSslMode>('sslMode', 'PGSSLMODE', 'disable', sslModeRule);
  if (caFile !== undefined && (sslMode === 'disable' || sslMode === 'require')) {
    c.warnings.add(
      `${pgAt}.caFile`,
      `is not used with sslMode ${sslMode}: verify-ca or verify-full check the server with it`,
    );
  }
  return Object.freeze({
    type,
    createSchema,
    postgres: Object.freeze({
      host: setting('host', 'PGHOST', 'localhost', nonEmptyString),
      port: setting('port', 'PGPORT', 5432, integerFrom(1, 65535)),
      database: setting('database', 'PGDATABASE', user, nonEmptyString),
      user,
      passwordFile: passwordFile === undefined ? undefined : path.resolve(cwd, passwordFile),
      schema: setting('schema', undefined, 'public', sqlIdentifier),
      sslMode,
      caFile: caFile === undefined ? undefined : path.resolve(cwd, caFile),
    }),
  });
}

/** The user the process runs as (libpq's default user and database); "postgres" where it has no name. */
function safeUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'postgres';
  }
}

function resolveAuth(auth: Mapping | undefined, cwd: string, c: Checker): AuthConfig {
  const at = 'meshaudit.auth';
  const tokensFile = c.resolvedFile(auth, at, 'tokensFile', cwd);
  const granted = c.section(get(auth, 'permissions'), `${at}.permissions`, PERMISSIONS);
  const permissions = Object.fromEntries(
    PERMISSIONS.map((p) => [
      p,
      Object.freeze(c.field(granted, `${at}.permissions`, p, DEFAULT_PERMISSIONS[p], groupList)),
    ]),
  ) as unknown as Permissions;
  return Object.freeze({
    localhostIsAdmin: c.field(auth, at, 'localhostIsAdmin', D.DEFAULT_LOCALHOST_IS_ADMIN, boolean),
    tokensFile,
    permissions: Object.freeze(permissions),
    certificateIdentities: resolveIdentities(get(auth, 'certificateIdentities'), `${at}.certificateIdentities`, c),
  });
}

function resolveFiles(files: Mapping | undefined, c: Checker): FileModes {
  const at = 'meshaudit.files';
  const file = c.field(files, at, 'fileMode', D.DEFAULT_FILE_MODES.file, octalMode);
  const dir = c.field(files, at, 'dirMode', D.DEFAULT_FILE_MODES.dir, octalMode);
  // The owner must be able to write what it creates, and to enter and write its folders.
  if ((file & 0o600) !== 0o600)
    c.report(`${at}.fileMode`, `must let the owner read and write (0600 at least), got ${showMode(file)}`);
  if ((dir & 0o700) !== 0o700)
    c.report(`${at}.dirMode`, `must let the owner read, write and enter (0700 at least), got ${showMode(dir)}`);
  return Object.freeze({ file, dir });
}

function showMode(mode: number): string {
  return `"${mode.toString(8).padStart(4, '0')}"`;
}

function resolveUnixSocket(value: unknown, cwd: string, c: Checker): UnixSocketConfig | undefined {
  const at = 'meshaudit.grpc.unixSocket';
  if (value === undefined || value === null) return undefined;
  const unix = c.section(value, at, UNIX_SOCKET_KEYS);
  if (unix === undefined) return undefined;
  for (const key of ['path', 'user', 'groups']) if (!Object.hasOwn(unix, key)) c.report(`${at}.${key}`, IS_REQUIRED);
  const file = c.field(unix, at, 'path', undefined, filePath);
  const mode = c.field(unix, at, 'mode', D.DEFAULT_UNIX_SOCKET_MODE, octalMode);
  const user = c.field(unix, at, 'user', undefined, nonEmptyString);
  const groups = c.field(unix, at, 'groups', undefined, groupList);
  const zones = c.field(unix, at, 'zones', undefined, groupList);
  // A path longer than sun_path (108 bytes on Linux) cannot be bound.
  if (file !== undefined && Buffer.byteLength(path.resolve(cwd, file)) > 107) {
    c.report(`${at}.path`, `is longer than a Unix socket path may be (107 bytes): ${path.resolve(cwd, file)}`);
  }
  if (file === undefined || user === undefined || groups === undefined) return undefined;
  return Object.freeze({ path: path.resolve(cwd, file), mode, user, groups, zones });
}

function resolveTls(value: unknown, cwd: string, c: Checker): TlsConfig | undefined {
  const at = 'meshaudit.grpc.tls';
  if (value === undefined || value === null) return undefined;
  const tls = c.section(value, at, TLS_KEYS);
  if (tls === undefined) return undefined;
  const file = (key: string, required: boolean): string | undefined => {
    if (required && !Object.hasOwn(tls, key)) {
      c.report(`${at}.${key}`, IS_REQUIRED);
      return undefined;
    }
    return c.resolvedFile(tls, at, key, cwd);
  };
  const certFile = file('certFile', true);
  const keyFile = file('keyFile', true);
  const clientCaFile = file('clientCaFile', false);
  const clientAuth = c.field(tls, at, 'clientAuth', 'none' as const, clientAuthMode);
  if (clientAuth === 'require' && clientCaFile === undefined) {
    c.report(`${at}.clientCaFile`, 'is required with clientAuth: require (the CAs that sign client certificates)');
  }
  if (certFile === undefined || keyFile === undefined) return undefined;
  return Object.freeze({ certFile, keyFile, clientCaFile, clientAuth });
}

function resolveIdentities(value: unknown, at: string, c: Checker): readonly CertificateIdentity[] {
  if (value === undefined) return Object.freeze([]);
  if (!Array.isArray(value)) {
    c.report(at, mustBe('a list of {match, user, groups}', value));
    return Object.freeze([]);
  }
  const out: CertificateIdentity[] = [];
  value.forEach((item: unknown, i) => {
    const field = index(at, i);
    const rule = c.section(item, field, IDENTITY_KEYS);
    if (rule === undefined) return;
    const match = c.section(get(rule, 'match'), `${field}.match`, MATCH_KEYS);
    const names = Object.fromEntries(
      MATCH_KEYS.map((k) => [k, c.field(match, `${field}.match`, k, undefined, nonEmptyString)]).filter(
        ([, v]) => v !== undefined,
      ),
    );
    if (Object.keys(names).length === 0) c.report(`${field}.match`, 'must name at least one of commonName, uri, dns');
    const user = c.field(rule, field, 'user', undefined, nonEmptyString);
    if (user === undefined) c.report(`${field}.user`, IS_REQUIRED);
    const groups = c.field(rule, field, 'groups', [], groupList);
    const zones = c.field(rule, field, 'zones', undefined, groupList);
    const instances = c.field(rule, field, 'instances', undefined, groupList);
    if (user === undefined || Object.keys(names).length === 0) return;
    out.push(
      Object.freeze({
        match: Object.freeze(names),
        user,
        groups,
        ...(zones === undefined ? {} : { zones }),
        ...(instances === undefined ? {} : { instances }),
      }),
    );
  });
  return Object.freeze(out);
}

/**
 * meshaudit.limits.messageBytes, or its old name meshaudit.grpc.maxMessageBytes (still accepted); both
 * set to different values is an error naming both.
 */
function resolveMessageBytes(limits: Mapping | undefined, grpc: Mapping | undefined, c: Checker): number {
  const fresh = c.field(limits, 'meshaudit.limits', 'messageBytes', undefined, msgBytes);
  const old = c.field(grpc, 'meshaudit.grpc', 'maxMessageBytes', undefined, msgBytes);
  if (fresh !== undefined && old !== undefined && fresh !== old) {
    c.report(
      'meshaudit.limits.messageBytes',
      `is ${fresh} but meshaudit.grpc.maxMessageBytes (its old name) is ${old}: set only meshaudit.limits.messageBytes`,
    );
  }
  return fresh ?? old ?? D.DEFAULT_MESSAGE_BYTES;
}

/** What is at `file` now: nothing, a directory, or something else (a file, a socket...). */
function existingKind(file: string): 'none' | 'directory' | 'other' {
  try {
    return fs.statSync(file).isDirectory() ? 'directory' : 'other';
  } catch {
    return 'none';
  }
}

function resolveBackends(
  audit: Mapping | undefined,
  cwd: string,
  dataDir: string,
  c: Checker,
): readonly FileBackendConfig[] {
  const defaults = () =>
    Object.freeze([fileBackend(path.resolve(cwd, D.DEFAULT_BACKEND_PATH), resolveRotation(undefined, '', c))]);
  if (audit === undefined || !Object.hasOwn(audit, 'backends')) return defaults();
  const list = get(audit, 'backends');
  if (!Array.isArray(list) || list.length === 0) {
    c.report(BACKENDS, mustBe('a non-empty list of backends', list));
    return defaults();
  }

  const backends: FileBackendConfig[] = [];
  // Two backends on one file would interleave and rotate each other's records.
  const fieldOfPath = new Map<string, string>();
  list.forEach((item: unknown, i) => {
    const field = index(BACKENDS, i);
    if (!isMapping(item)) {
      c.report(field, mustBe('a mapping', item));
      return;
    }
    const backend = c.section(item, field, BACKEND_KEYS)!;
    const type = get(backend, 'type');
    const known = BACKEND_TYPES.map(quote).join(', ');
    if (!Object.hasOwn(backend, 'type')) {
      c.report(`${field}.type`, `${IS_REQUIRED} (known types: ${known})`);
    } else if (typeof type !== 'string') {
      c.report(`${field}.type`, mustBe(`a backend type (${known})`, type));
    } else if (!BACKEND_TYPES.includes(type)) {
      const hint = didYouMean(type, BACKEND_TYPES);
      c.report(
        `${field}.type`,
        `${unknown('backend type', type, [])}${hint === '' ? ` (known types: ${known})` : hint}`,
      );
    }
    if (!Object.hasOwn(backend, 'file')) {
      if (type === D.FILE_BACKEND_TYPE) c.report(`${field}.file`, `${IS_REQUIRED} for a file backend`);
      return;
    }
    const fileField = `${field}.file`;
    const file = c.section(get(backend, 'file'), fileField, FILE_KEYS);
    if (file === undefined) return;
    const rotation = resolveRotation(get(file, 'rotation'), `${fileField}.rotation`, c);
    if (!Object.hasOwn(file, 'path')) {
      c.report(`${fileField}.path`, IS_REQUIRED);
      return;
    }
    const raw = c.field(file, fileField, 'path', undefined, filePath);
    if (raw === undefined) return;
    const resolved = path.resolve(cwd, raw);
    const earlier = fieldOfPath.get(resolved);
    if (earlier !== undefined) {
      c.report(`${fileField}.path`, `is the same file as ${earlier} (${resolved})`);
      return;
    }
    fieldOfPath.set(resolved, `${fileField}.path`);
    if (existingKind(resolved) === 'directory')
      c.report(`${fileField}.path`, `${resolved} is a directory; name the audit file in it`);
    // The sidecar's own state files (checkpoint, store) live directly in dataDir; an audit file there
    // could be one of them, or be cut back by a recovery meant for another.
    if (path.dirname(resolved) === dataDir) {
      c.report(
        `${fileField}.path`,
        `is directly in meshaudit.dataDir (${dataDir}), where the sidecar keeps its own state; use a sub-folder such as ${path.join(dataDir, 'audit')}`,
      );
    }
    backends.push(fileBackend(resolved, rotation));
  });
  return Object.freeze(backends);
}

const FORWARDERS = 'meshaudit.forwarders';

/** meshaudit.forwarders: each a `nats` forwarder of the first file backend's records (docs/forwarding.md). */
function resolveForwarders(value: unknown, zone: string, cwd: string, c: Checker): readonly ForwarderConfig[] {
  if (value === undefined || value === null) return D.DEFAULT_FORWARDERS;
  if (!Array.isArray(value)) {
    c.report(FORWARDERS, mustBe('a list of forwarders', value));
    return D.DEFAULT_FORWARDERS;
  }
  // The zone is the second token of every subject: a '.' in it would make it two.
  if (value.length > 0 && !SUBJECT_TOKEN.test(zone)) {
    c.report('meshaudit.zone', `is ${quote(zone)}, which cannot be a NATS subject token (no '.'): forwarders need one`);
  }
  const forwarders: ForwarderConfig[] = [];
  const firstAt = new Map<string, string>();
  value.forEach((item: unknown, i) => {
    const at = index(FORWARDERS, i);
    const f = resolveForwarder(item, at, cwd, c);
    if (f === undefined) return;
    const first = firstAt.get(f.name);
    if (first !== undefined) {
      c.report(`${at}.name`, `${quote(f.name)} is already the name of ${first} (each forwarder has its own cursor)`);
      return;
    }
    firstAt.set(f.name, at);
    forwarders.push(f);
  });
  return Object.freeze(forwarders);
}

function resolveForwarder(item: unknown, at: string, cwd: string, c: Checker): NatsForwarderConfig | undefined {
  if (!isMapping(item)) {
    c.report(at, mustBe('a mapping', item));
    return undefined;
  }
  const f = c.section(item, at, FORWARDER_KEYS) as Mapping;
  const known = D.FORWARDER_KINDS.map(quote).join(', ');
  if (!Object.hasOwn(f, 'kind')) {
    c.report(`${at}.kind`, `${IS_REQUIRED} (known kinds: ${known})`);
    return undefined;
  }
  const kind = c.field(f, at, 'kind', undefined, oneOf(D.FORWARDER_KINDS));
  if (kind === undefined) return undefined;
  const file = (key: string): string | undefined => c.resolvedFile(f, at, key, cwd);
  const user = c.field(f, at, 'user', undefined, nonEmptyString);
  const passwordFile = file('passwordFile');
  const tokenFile = file('tokenFile');
  const nkeySeedFile = file('nkeySeedFile');
  const credsFile = file('credsFile');
  c.both(at, ['user', user], ['passwordFile', passwordFile]);
  const given = [
    user === undefined ? undefined : 'user',
    tokenFile === undefined ? undefined : 'tokenFile',
    nkeySeedFile === undefined ? undefined : 'nkeySeedFile',
    credsFile === undefined ? undefined : 'credsFile',
  ].filter((k) => k !== undefined);
  if (given.length > 1) {
    c.report(
      `${at}.${given[1]}`,
      `is one credential too many: set one of user, tokenFile, nkeySeedFile, credsFile (got ${given.join(', ')})`,
    );
  }
  const credentials: NatsCredentials =
    user !== undefined && passwordFile !== undefined
      ? { type: 'user', user, passwordFile }
      : tokenFile !== undefined
        ? { type: 'token', tokenFile }
        : nkeySeedFile !== undefined
          ? { type: 'nkey', nkeySeedFile }
          : credsFile !== undefined
            ? { type: 'creds', credsFile }
            : { type: 'none' };
  const hostName = os.hostname();
  let instance = c.field(f, at, 'instance', hostName, subjectToken);
  if (!Object.hasOwn(f, 'instance') && !SUBJECT_TOKEN.test(hostName)) {
    c.report(
      `${at}.instance`,
      `is not set, and the host name ${quote(hostName)} cannot be a NATS subject token (${SUBJECT_TOKEN_RULE}): set it`,
    );
    instance = '';
  }
  const stream = c.section(get(f, 'stream'), `${at}.stream`, STREAM_KEYS);
  const sAt = `${at}.stream`;
  const maxAgeDays = c.field(stream, sAt, 'maxAgeDays', D.DEFAULT_NATS_MAX_AGE_DAYS, ageDays);
  const windowSeconds = c.field(
    stream,
    sAt,
    'duplicateWindowSeconds',
    D.DEFAULT_NATS_DUPLICATE_WINDOW_SECONDS,
    duplicateWindow,
  );
  return Object.freeze({
    kind,
    name: c.field(f, at, 'name', kind, forwarderName),
    servers: c.field(f, at, 'servers', D.DEFAULT_NATS_SERVERS, natsServers),
    credentials: Object.freeze(credentials),
    tls: resolveForwarderTls(get(f, 'tls'), `${at}.tls`, cwd, c),
    instance,
    stream: Object.freeze({
      name: c.field(stream, sAt, 'name', D.DEFAULT_NATS_STREAM, streamName),
      create: c.field(stream, sAt, 'create', false, boolean),
      replicas: c.field(stream, sAt, 'replicas', D.DEFAULT_NATS_REPLICAS, integerFrom(1, 5)),
      maxAgeMs: Math.round(maxAgeDays * 24 * 3_600_000),
      duplicateWindowMs: Math.round(windowSeconds * 1000),
    }),
    maxHeldFiles: c.field(f, at, 'maxHeldFiles', D.DEFAULT_MAX_HELD_FILES, fileCount),
  });
}

function resolveForwarderTls(value: unknown, at: string, cwd: string, c: Checker): NatsTlsConfig | undefined {
  if (value === undefined || value === null) return undefined;
  const tls = c.section(value, at, FORWARDER_TLS_KEYS);
  if (tls === undefined) return undefined;
  const caFile = c.resolvedFile(tls, at, 'caFile', cwd);
  const certFile = c.resolvedFile(tls, at, 'certFile', cwd);
  const keyFile = c.resolvedFile(tls, at, 'keyFile', cwd);
  c.both(at, ['certFile', certFile], ['keyFile', keyFile]);
  return Object.freeze({ caFile, certFile, keyFile });
}

function fileBackend(file: string, rotation: RotationConfig): FileBackendConfig {
  return Object.freeze({ type: 'file', path: file, rotation });
}

/** A rotation block with only some keys takes the others from the defaults. */
function resolveRotation(value: unknown, field: string, c: Checker): RotationConfig {
  const r = c.section(value, field, ROTATION_KEYS);
  const maxSizeMb = c.field(r, field, 'maxSizeMb', D.DEFAULT_MAX_SIZE_MB, sizeMb);
  const intervalMs = c.field(r, field, 'interval', undefined, rotationInterval);
  return Object.freeze({
    enabled: c.field(r, field, 'enabled', D.DEFAULT_ROTATION_ENABLED, boolean),
    maxRetainedFiles: c.field(r, field, 'maxRetainedFiles', D.DEFAULT_MAX_RETAINED_FILES, fileCount),
    // At least 1: a fraction so small that it floors to 0 bytes still means "rotate after every write".
    maxSizeBytes: Math.max(1, Math.floor(maxSizeMb * D.BYTES_PER_MB)),
    maxAgeDays: c.field(r, field, 'maxAgeDays', D.DEFAULT_MAX_AGE_DAYS, ageDays),
    ...(intervalMs === undefined ? {} : { intervalMs }),
    compress: c.field(r, field, 'compress', D.DEFAULT_ROTATION_COMPRESS, boolean),
  });
}

// ---------------------------------------------------------------------------------------------
// Values: each rule returns the accepted value, or what was expected (the checker adds `, got <value>`).

type Rule<T> = (value: unknown) => T | Expected;

class Expected {
  constructor(readonly description: string) {}
}

/** Finite: YAML's .nan and .inf are numbers to js-yaml, but never a sensible size or time. */
function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

const boolean: Rule<boolean> = (v) => (typeof v === 'boolean' ? v : new Expected('must be true or false'));

// Kuma's rule for zone names (a DNS-1123 subdomain): the zone name ends up in DNS names and labels.
const ZONE_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const zoneName: Rule<string> = (v) =>
  typeof v === 'string' && ZONE_NAME.test(v)
    ? v
    : new Expected(
        "must be 1 to 253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit",
      );

const directoryPath: Rule<string> = (v) =>
  typeof v === 'string' && v !== '' && !v.includes('\0') ? v : new Expected('must be a non-empty path');

const filePath: Rule<string> = (v) => {
  if (typeof v !== 'string' || v === '' || v.includes('\0')) return new Expected('must be a non-empty file path');
  const base = path.posix.basename(v);
  if (v.endsWith('/') || base === '.' || base === '..') return new Expected('must be a file path, not a directory');
  return v;
};

// Node.js timers wait at most 2^31 - 1 ms; a longer delay fires at once (with a warning).
const MAX_DRAIN_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
// At least 1 s: a seal hashes what was written since the last one and writes a file; at most a day.
const sealInterval: Rule<number> = (v) =>
  isNumber(v) && v >= 1 && v <= 86_400 ? v : new Expected('must be a number of seconds from 1 to 86400');

const drainTimeout: Rule<number> = (v) => {
  if (!isNumber(v) || v <= 0) return new Expected('must be a number greater than 0');
  if (v > MAX_DRAIN_TIMEOUT_SECONDS) {
    return new Expected(`must be at most ${MAX_DRAIN_TIMEOUT_SECONDS}, the longest Node.js timer`);
  }
  return v;
};

// 1 KiB: smaller cannot carry one event with its token claims; 2^31 - 1: gRPC sizes are signed 32-bit.
const MIN_MESSAGE_BYTES = 1024;
const MAX_MESSAGE_BYTES = 2 ** 31 - 1;
// 64 GiB: more than any sidecar is given; the bound exists only to keep the number exact.
const MAX_BUFFERED_BYTES = 64 * 1024 ** 3;
/** An integer from `min` to `max`, both included. */
function integerFrom(min: number, max: number): Rule<number> {
  return (v) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max
      ? (v as number)
      : new Expected(`must be an integer from ${min} to ${max}`);
}

const msgBytes = integerFrom(MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES);

/** A file mode as an operator writes it, in quotes: "0640" (a bare 0640 is a decimal number in YAML 1.2). */
const octalMode: Rule<number> = (v) =>
  typeof v === 'string' && /^0?[0-7]{3}$/.test(v)
    ? Number.parseInt(v, 8)
    : new Expected('must be an octal mode in quotes, such as "0640"');

/** One of `values`, as written. */
function oneOf<T extends string>(values: readonly T[]): Rule<T> {
  return (v) =>
    typeof v === 'string' && (values as readonly string[]).includes(v)
      ? (v as T)
      : new Expected(`must be one of ${values.map(quote).join(', ')}`);
}

// libpq's allow and prefer fall back to plain text when TLS fails; node-postgres cannot, so they are
// refused rather than silently meaning require.
const sslModeRule: Rule<PostgresSslMode> = (v) =>
  v === 'allow' || v === 'prefer'
    ? new Expected(
        `must be one of ${SSL_MODES.map(quote).join(', ')} (libpq's "${v}" falls back to plain text, which this client does not do)`,
      )
    : oneOf(SSL_MODES)(v);

/** A schema name: letters, digits and underscores, as PostgreSQL folds and stores it (quoted in SQL: a reserved word is a name too). */
const sqlIdentifier: Rule<string> = (v) =>
  typeof v === 'string' && /^[a-z_][a-z0-9_]{0,62}$/.test(v)
    ? v
    : new Expected('must be a lowercase SQL identifier: a-z, 0-9 and _, not starting with a digit, at most 63');

const clientAuthMode: Rule<'none' | 'require'> = (v) =>
  v === 'none' || v === 'require' ? v : new Expected('must be "none" or "require"');

const nonEmptyString: Rule<string> = (v) =>
  typeof v === 'string' && v !== '' ? v : new Expected('must be a non-empty string');

/** Groups that hold a permission: an empty list is allowed (nobody holds it). */
const groupList: Rule<readonly string[]> = (v) =>
  Array.isArray(v) && v.every((g) => typeof g === 'string' && g !== '')
    ? (v as string[])
    : new Expected('must be a list of group names (an empty list: nobody)');

/** host:port, or "" (off). */
const optionalAddress: Rule<string> = (v) =>
  v === '' || (typeof v === 'string' && isHostPort(v))
    ? v
    : new Expected('must be host:port with a port from 0 to 65535 (IPv6 in brackets: [::1]:5691), or "" (off)');

const logLevel: Rule<LogLevel> = (v) =>
  typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v)
    ? (v as LogLevel)
    : new Expected(`must be one of ${LOG_LEVELS.map(quote).join(', ')}`);

/** host:port, or "off": no TCP listener (the Unix socket alone). */
const grpcAddressRule: Rule<string> = (v) =>
  v === 'off'
    ? v
    : typeof v === 'string' && isHostPort(v)
      ? v
      : new Expected('must be host:port with a port from 0 to 65535 (IPv6 in brackets: [::1]:5690), or "off"');

function isHostPort(value: string): boolean {
  let host: string;
  let port: string;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end < 0 || value[end + 1] !== ':') return false;
    host = value.slice(1, end);
    port = value.slice(end + 2);
    if (!isIPv6(host)) return false;
  } else {
    const colon = value.lastIndexOf(':');
    host = value.slice(0, colon);
    port = value.slice(colon + 1);
    // No ':' in the host: an unbracketed IPv6 address cannot be told apart from its port.
    if (colon <= 0 || !/^[A-Za-z0-9.-]+$/.test(host)) return false;
  }
  return /^[0-9]{1,5}$/.test(port) && Number(port) <= 65535;
}

const fileCount: Rule<number> = (v) =>
  Number.isSafeInteger(v) && (v as number) >= 0
    ? (v as number)
    : new Expected('must be an integer greater than or equal to 0');

// Beyond this, maxSizeBytes would pass Number.MAX_SAFE_INTEGER and stop being exact.
const MAX_SIZE_MB = Math.floor(Number.MAX_SAFE_INTEGER / D.BYTES_PER_MB);
const sizeMb: Rule<number> = (v) => {
  if (!isNumber(v) || v <= 0) return new Expected('must be a number greater than 0');
  if (v > MAX_SIZE_MB) return new Expected(`must be at most ${MAX_SIZE_MB}`);
  return v;
};

const MS_PER_UNIT: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000 };
const MS_PER_DAY = 24 * MS_PER_UNIT.h;
/**
 * rotation.interval: minutes or hours that divide a day evenly, from 1m to 24h, so that the boundaries
 * (multiples of it since the Unix epoch) fall at the same UTC times every day: 24h at midnight, 1h on
 * the hour. 7h would rotate at different hours each day, and 48h on every other day counted from 1970.
 */
const rotationInterval: Rule<number> = (v) => {
  const m = typeof v === 'string' ? /^([1-9][0-9]{0,4})(m|h)$/.exec(v) : null;
  const ms = m === null ? NaN : Number(m[1]) * MS_PER_UNIT[m[2]];
  return ms <= MS_PER_DAY && MS_PER_DAY % ms === 0
    ? ms
    : new Expected(
        'must be a duration in minutes or hours that divides 24h evenly, from "1m" to "24h" (e.g. "24h", "1h", "30m")',
      );
};

const subjectToken: Rule<string> = (v) =>
  typeof v === 'string' && SUBJECT_TOKEN.test(v)
    ? v
    : new Expected(`must be a NATS subject token: ${SUBJECT_TOKEN_RULE}`);

const streamName: Rule<string> = (v) =>
  typeof v === 'string' && STREAM_NAME.test(v) ? v : new Expected(`must be a stream name: ${STREAM_NAME_RULE}`);

/** A forwarder's name ends up in its cursor's file name and in metric labels. */
const forwarderName: Rule<string> = (v) =>
  typeof v === 'string' && /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(v)
    ? v
    : new Expected("must be 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit");

// No user:password@ in a URL: secrets come from files (passwordFile, tokenFile...), never from the config.
const NATS_URL = /^((nats|tls):\/\/)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$/;
const natsServers: Rule<readonly string[]> = (v) =>
  Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string' && NATS_URL.test(s))
    ? Object.freeze([...(v as string[])])
    : new Expected(
        'must be a non-empty list of NATS server URLs (nats://host:port, tls://host:port or host:port; no credentials in them)',
      );

// JetStream refuses a duplicate window under 100 ms; a day is far more than any retry takes.
const duplicateWindow: Rule<number> = (v) =>
  isNumber(v) && v >= 0.1 && v <= 86_400 ? v : new Expected('must be a number of seconds from 0.1 to 86400');

const resourceScope: Rule<ExtraResourceType['scope']> = (v) =>
  v === 'mesh' || v === 'global' ? v : new Expected('must be "mesh" or "global"');

const ageDays: Rule<number> = (v) =>
  isNumber(v) && v >= 0 ? v : new Expected('must be a number greater than or equal to 0');

// Resource types are Kuma kinds: PascalCase identifiers such as MeshTrafficPermission.
const TYPE_NAME = /^[A-Z][A-Za-z0-9]*$/;
const TYPE_NAME_EXPECTED = 'a resource type name in PascalCase, e.g. "MeshInsight"';

// ---------------------------------------------------------------------------------------------
// The checker: collects violations, with the line of the field (or of the nearest enclosing one).

type Mapping = Record<string, unknown>;

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An own key only: a YAML key never reaches Object.prototype, and a missing one must not either. */
function get(obj: Mapping | undefined, key: string): unknown {
  return obj !== undefined && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** Collects violations and warnings, each with the line of its field (or of the nearest enclosing one). */
class Checker {
  readonly violations: Violations;
  readonly warnings: Violations;

  constructor(where: ConstructorParameters<typeof Violations>[0]) {
    this.violations = new Violations(where);
    this.warnings = new Violations(where);
  }

  report(field: string, description: string): void {
    this.violations.add(field, description);
  }

  /**
   * A key that meshaudit no longer has: its one harmless value (what the removed setting did by default)
   * is a warning, any other value an error, both saying what to do instead.
   */
  removed(obj: Mapping | undefined, parent: string, key: string, harmless: unknown, why: string): void {
    if (obj === undefined || !Object.hasOwn(obj, key)) return;
    const field = join(parent, key);
    if (obj[key] === harmless) this.warnings.add(field, `was removed and is ignored: ${why}; delete the key`);
    else this.report(field, `was removed (got ${show(obj[key])}): ${why}; delete the key`);
  }

  /**
   * A mapping of settings. Absent or null (every key under it commented out) is an empty mapping:
   * all defaults. Unknown keys are reported. Undefined when it is not a mapping.
   */
  section(value: unknown, field: string, known: readonly string[]): Mapping | undefined {
    if (value === undefined || value === null) return {};
    if (!isMapping(value)) {
      this.report(field, `${field === '' ? 'the top level ' : ''}${mustBe('a mapping', value)}`);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) this.report(join(field, key), unknownField(key, known));
    }
    return value;
  }

  /** The value of `key`, the fallback when it is absent, or the fallback after reporting a bad value. */
  field<T, F extends T | undefined>(
    obj: Mapping | undefined,
    parent: string,
    key: string,
    fallback: F,
    rule: Rule<T>,
  ): T | F {
    if (obj === undefined || !Object.hasOwn(obj, key)) return fallback;
    const value = obj[key];
    const result = rule(value);
    if (!(result instanceof Expected)) return result;
    this.report(join(parent, key), `${result.description}, got ${show(value)}`);
    return fallback;
  }

  /** A file path, absolute (resolved against `cwd`); undefined when absent or bad (reported). */
  resolvedFile(obj: Mapping | undefined, parent: string, key: string, cwd: string): string | undefined {
    const raw = this.field(obj, parent, key, undefined, filePath);
    return raw === undefined ? undefined : path.resolve(cwd, raw);
  }

  /** Two keys that go together: the one missing is reported when only the other is set. */
  both(parent: string, [a, valueA]: [string, unknown], [b, valueB]: [string, unknown]): void {
    if ((valueA === undefined) === (valueB === undefined)) return;
    this.report(join(parent, valueA === undefined ? a : b), `is required with ${a} and ${b}: set both`);
  }

  /**
   * meshaudit.extraResourceTypes: each entry a new type's name (mesh-scoped) or `{name, scope}`, each
   * listed once; a built-in name keeps its built-in scope (a warning says so).
   */
  extraTypes(obj: Mapping | undefined, parent: string, key: string): readonly ExtraResourceType[] {
    if (obj === undefined || !Object.hasOwn(obj, key)) return D.DEFAULT_EXTRA_RESOURCE_TYPES;
    const field = join(parent, key);
    const list = obj[key];
    if (!Array.isArray(list)) {
      this.report(field, mustBe('a list of resource types (a name, or {name, scope})', list));
      return D.DEFAULT_EXTRA_RESOURCE_TYPES;
    }
    const types: ExtraResourceType[] = [];
    const firstAt = new Map<string, string>();
    list.forEach((item: unknown, i) => {
      const at = index(field, i);
      const entry = isMapping(item) ? this.section(item, at, ['name', 'scope']) : undefined;
      const namePath = entry === undefined ? at : join(at, 'name');
      const name = entry === undefined ? item : entry.name;
      const scope = entry === undefined ? 'mesh' : this.field(entry, at, 'scope', 'mesh' as const, resourceScope);
      if (entry !== undefined && !Object.hasOwn(entry, 'name')) {
        this.report(namePath, IS_REQUIRED);
        return;
      }
      if (typeof name !== 'string' || !TYPE_NAME.test(name)) {
        this.report(namePath, mustBe(TYPE_NAME_EXPECTED, name));
        return;
      }
      const first = firstAt.get(name);
      if (first !== undefined) {
        this.report(namePath, `${quote(name)} is already listed at ${first}`);
        return;
      }
      firstAt.set(name, namePath);
      if (isBuiltInType(name)) this.warnings.add(namePath, `${quote(name)} is a built-in type: the entry is ignored`);
      else types.push(Object.freeze({ name, scope }));
    });
    return Object.freeze(types);
  }

  /** A list of resource type names, each listed once, and each in `known` when that is given. */
  typeNames(
    obj: Mapping | undefined,
    parent: string,
    key: string,
    fallback: readonly string[],
    known?: TypeRegistry,
  ): readonly string[] {
    if (obj === undefined || !Object.hasOwn(obj, key)) return fallback;
    const field = join(parent, key);
    const list = obj[key];
    if (!Array.isArray(list)) {
      this.report(field, mustBe('a list of resource type names', list));
      return fallback;
    }
    const names: string[] = [];
    const firstAt = new Map<string, number>();
    list.forEach((item: unknown, i) => {
      const at = index(field, i);
      if (typeof item !== 'string' || !TYPE_NAME.test(item)) {
        this.report(at, mustBe(TYPE_NAME_EXPECTED, item));
        return;
      }
      if (known !== undefined && !known.has(item)) {
        const hint = didYouMean(item, [...known.keys()]);
        const help = hint === '' ? ' (add a new type to meshaudit.extraResourceTypes)' : hint;
        this.report(at, `${unknown('resource type', item, [])}${help}`);
        return;
      }
      const first = firstAt.get(item);
      if (first !== undefined) {
        this.report(at, `${quote(item)} is already listed at ${index(field, first)}`);
        return;
      }
      firstAt.set(item, i);
      names.push(item);
    });
    return Object.freeze(names);
  }
}
