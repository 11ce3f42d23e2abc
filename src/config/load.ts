// YAML -> defaults -> validate -> frozen Config. Every problem in the file is collected and reported
// at once, each with its field path and line, and any problem stops start-up before anything is written.
import * as fs from 'node:fs';
import { isIPv6 } from 'node:net';
import * as path from 'node:path';
import { TextDecoder } from 'node:util';
import { KNOWN_RESOURCE_TYPES } from '../rules/resource-types';
import { nearest } from '../rules/suggest';
import * as D from './defaults';
import type { Config, FileBackendConfig, RotationConfig } from './types';
import { DEFAULT_MAX_BYTES, YamlError, parseYamlDocuments } from './yaml';

export interface LoadConfigOptions {
  /** The config file, as the operator named it (it prefixes every message); relative to cwd. */
  readonly file?: string;
  /** Directory that relative paths (the file, dataDir, backend paths) are resolved against. */
  readonly cwd: string;
}

/** One problem: `field` is a path such as `meshaudit.grpc.address`, or empty for the file as a whole. */
export interface ConfigViolation {
  readonly field: string;
  /** 1-based line in the config file, when the problem has one. */
  readonly line?: number;
  readonly description: string;
}

/** The config cannot be used. The message has one line per violation, e.g. `config.yaml:12: <field>: ...`. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';

  constructor(
    /** The file as the operator named it; undefined when the file itself could not be read. */
    readonly file: string | undefined,
    readonly violations: readonly ConfigViolation[],
    options?: { cause?: unknown },
  ) {
    super(violations.map((v) => formatViolation(file, v)).join('\n'), options);
  }
}

function formatViolation(file: string | undefined, v: ConfigViolation): string {
  const where = file === undefined ? '' : `${file}${v.line === undefined ? '' : `:${v.line}`}: `;
  return `${where}${v.field === '' ? '' : `${v.field}: `}${v.description}`;
}

/** A valid configuration, and what the operator should still hear about it (`config.yaml:2: field: ...`). */
export interface LoadedConfig {
  readonly config: Config;
  readonly warnings: readonly string[];
}

/** The built-in defaults, with their relative paths resolved against `cwd`. */
export function defaultConfig(cwd: string): Config {
  return resolveConfig({}, cwd, new Checker(() => undefined));
}

/** Without a file: the defaults. With one: the file merged over the defaults, or a ConfigError. */
export function loadConfig(opts: LoadConfigOptions): LoadedConfig {
  if (opts.file === undefined) return { config: defaultConfig(opts.cwd), warnings: [] };
  const file = opts.file;
  const text = readConfigText(file, path.resolve(opts.cwd, file));

  let parsed;
  try {
    parsed = parseYamlDocuments(text, { filename: file });
  } catch (err) {
    if (!(err instanceof YamlError)) throw err;
    throw new ConfigError(file, [violation('', err.line, err.reason)], { cause: err });
  }
  if (parsed.docs.length > 1) {
    const description = `must hold a single YAML document, found ${parsed.docs.length}`;
    throw new ConfigError(file, [violation('', parsed.lineOf(1, ''), description)]);
  }

  const { lineOf } = parsed;
  const checker = new Checker((field) => lineOf(0, field));
  // An empty file (or only comments) is a valid config: every default.
  const config = resolveConfig(parsed.docs[0] ?? {}, opts.cwd, checker);
  if (checker.violations.length > 0) {
    // Stable sort: the file's order reads best; violations without a line (none today) go last.
    const sorted = [...checker.violations].sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
    throw new ConfigError(file, sorted);
  }
  return { config, warnings: checker.warnings.map((w) => formatViolation(file, w)) };
}

// ---------------------------------------------------------------------------------------------
// Reading

function readConfigText(file: string, absolute: string): string {
  let bytes: Buffer;
  try {
    bytes = readAtMost(absolute, DEFAULT_MAX_BYTES + 1);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError(undefined, [violation('', undefined, `cannot read config file ${file}: ${reason}`)], {
      cause: err,
    });
  }
  // The same limit (and words) as the YAML parser's, enforced while reading so a huge file is never loaded.
  if (bytes.length > DEFAULT_MAX_BYTES) {
    throw new ConfigError(file, [violation('', undefined, `too large: more than ${DEFAULT_MAX_BYTES} bytes`)]);
  }
  try {
    // fatal: a mis-encoded file would otherwise turn into U+FFFD inside names and paths, silently.
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new ConfigError(file, [violation('', undefined, 'not valid UTF-8')], { cause: err });
  }
}

/** Reads up to `limit` bytes: bounded even for a FIFO or a device, where the size is unknown up front. */
function readAtMost(file: string, limit: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(limit);
    let length = 0;
    while (length < limit) {
      const n = fs.readSync(fd, buf, length, limit - length, null);
      if (n === 0) break;
      length += n;
    }
    return buf.subarray(0, length);
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// The shape of the file

const TOP_KEYS = ['meshaudit', 'kmesh'];
// workerThreads is known so that it is answered as removed (Checker.removed), not as an unknown key.
const MESHAUDIT_KEYS = [
  'zone',
  'dataDir',
  'fsync',
  'drainTimeoutSeconds',
  'workerThreads',
  'extraResourceTypes',
  'grpc',
];
const GRPC_KEYS = ['address', 'maxMessageBytes'];
const KMESH_KEYS = ['access'];
const ACCESS_KEYS = ['audit'];
const AUDIT_KEYS = ['skipDefaultTypes', 'backends'];
const BACKEND_KEYS = ['type', 'file'];
const BACKEND_TYPES = [D.FILE_BACKEND_TYPE];
const FILE_KEYS = ['path', 'rotation'];
const ROTATION_KEYS = ['enabled', 'maxRetainedFiles', 'maxSizeMb', 'maxAgeDays'];

const AUDIT = 'kmesh.access.audit';
const BACKENDS = `${AUDIT}.backends`;

function resolveConfig(doc: unknown, cwd: string, c: Checker): Config {
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
  const extraResourceTypes = c.typeNames(own, 'meshaudit', 'extraResourceTypes', D.DEFAULT_EXTRA_RESOURCE_TYPES);
  const knownTypes = new Set([...KNOWN_RESOURCE_TYPES, ...extraResourceTypes]);
  const drainSeconds = c.field(own, 'meshaudit', 'drainTimeoutSeconds', D.DEFAULT_DRAIN_TIMEOUT_SECONDS, drainTimeout);
  const dataDir = path.resolve(cwd, c.field(own, 'meshaudit', 'dataDir', D.DEFAULT_DATA_DIR, directoryPath));
  if (existingKind(dataDir) === 'other') c.report('meshaudit.dataDir', `${dataDir} exists and is not a directory`);
  return Object.freeze({
    zone: c.field(own, 'meshaudit', 'zone', D.DEFAULT_ZONE, zoneName),
    grpcAddress: c.field(grpc, 'meshaudit.grpc', 'address', D.DEFAULT_GRPC_ADDRESS, hostPort),
    grpcMaxMessageBytes: c.field(grpc, 'meshaudit.grpc', 'maxMessageBytes', D.DEFAULT_GRPC_MAX_MESSAGE_BYTES, msgBytes),
    dataDir,
    extraResourceTypes,
    fsync: c.field(own, 'meshaudit', 'fsync', D.DEFAULT_FSYNC, boolean),
    // Rounded, not ceiled: 0.3 s is 300.00000000000006 ms in floating point. At least 1 ms: 0 would mean no wait.
    drainTimeoutMs: Math.max(1, Math.round(drainSeconds * 1000)),
    // Checked against the registry: a misspelt skip would silently audit every heartbeat of that type.
    skipDefaultTypes: c.typeNames(audit, AUDIT, 'skipDefaultTypes', D.DEFAULT_SKIP_DEFAULT_TYPES, knownTypes),
    backends: resolveBackends(audit, cwd, dataDir, c),
  });
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
    c.report(BACKENDS, `must be a non-empty list of backends, got ${show(list)}`);
    return defaults();
  }

  const backends: FileBackendConfig[] = [];
  // Two backends on one file would interleave and rotate each other's records.
  const fieldOfPath = new Map<string, string>();
  list.forEach((item: unknown, i) => {
    const field = `${BACKENDS}[${i}]`;
    if (!isMapping(item)) {
      c.report(field, `must be a mapping, got ${show(item)}`);
      return;
    }
    const backend = c.section(item, field, BACKEND_KEYS)!;
    const type = get(backend, 'type');
    const known = BACKEND_TYPES.map(quote).join(', ');
    if (!Object.hasOwn(backend, 'type')) {
      c.report(`${field}.type`, `must be defined (known types: ${known})`);
    } else if (typeof type !== 'string') {
      c.report(`${field}.type`, `must be a backend type (${known}), got ${show(type)}`);
    } else if (!BACKEND_TYPES.includes(type)) {
      const hint = nearest(type, BACKEND_TYPES);
      const help = hint === undefined ? ` (known types: ${known})` : `, did you mean ${quote(hint)}?`;
      c.report(`${field}.type`, `unknown backend type ${quote(type)}${help}`);
    }
    if (!Object.hasOwn(backend, 'file')) {
      if (type === D.FILE_BACKEND_TYPE) c.report(`${field}.file`, 'must be defined for a file backend');
      return;
    }
    const fileField = `${field}.file`;
    const file = c.section(get(backend, 'file'), fileField, FILE_KEYS);
    if (file === undefined) return;
    const rotation = resolveRotation(get(file, 'rotation'), `${fileField}.rotation`, c);
    if (!Object.hasOwn(file, 'path')) {
      c.report(`${fileField}.path`, 'must be defined');
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

function fileBackend(file: string, rotation: RotationConfig): FileBackendConfig {
  return Object.freeze({ type: 'file', path: file, rotation });
}

/** A rotation block with only some keys takes the others from the defaults. */
function resolveRotation(value: unknown, field: string, c: Checker): RotationConfig {
  const r = c.section(value, field, ROTATION_KEYS);
  const maxSizeMb = c.field(r, field, 'maxSizeMb', D.DEFAULT_MAX_SIZE_MB, sizeMb);
  return Object.freeze({
    enabled: c.field(r, field, 'enabled', D.DEFAULT_ROTATION_ENABLED, boolean),
    maxRetainedFiles: c.field(r, field, 'maxRetainedFiles', D.DEFAULT_MAX_RETAINED_FILES, fileCount),
    // At least 1: a fraction so small that it floors to 0 bytes still means "rotate after every write".
    maxSizeBytes: Math.max(1, Math.floor(maxSizeMb * D.BYTES_PER_MB)),
    maxAgeDays: c.field(r, field, 'maxAgeDays', D.DEFAULT_MAX_AGE_DAYS, ageDays),
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
const msgBytes: Rule<number> = (v) =>
  Number.isInteger(v) && (v as number) >= MIN_MESSAGE_BYTES && (v as number) <= MAX_MESSAGE_BYTES
    ? (v as number)
    : new Expected(`must be an integer from ${MIN_MESSAGE_BYTES} to ${MAX_MESSAGE_BYTES}`);

const hostPort: Rule<string> = (v) =>
  typeof v === 'string' && isHostPort(v)
    ? v
    : new Expected('must be host:port with a port from 0 to 65535 (IPv6 in brackets: [::1]:5690)');

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

const ageDays: Rule<number> = (v) =>
  isNumber(v) && v >= 0 ? v : new Expected('must be a number greater than or equal to 0');

// Resource types are Kuma kinds: PascalCase identifiers such as MeshTrafficPermission.
const TYPE_NAME = /^[A-Z][A-Za-z0-9]*$/;

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

function violation(field: string, line: number | undefined, description: string): ConfigViolation {
  return line === undefined ? { field, description } : { field, line, description };
}

class Checker {
  readonly violations: ConfigViolation[] = [];
  readonly warnings: ConfigViolation[] = [];

  constructor(private readonly lineOf: (field: string) => number | undefined) {}

  report(field: string, description: string): void {
    this.violations.push(violation(field, this.lineNear(field), description));
  }

  warn(field: string, description: string): void {
    this.warnings.push(violation(field, this.lineNear(field), description));
  }

  /**
   * A key that meshaudit no longer has: its one harmless value (what the removed setting did by default)
   * is a warning, any other value an error, both saying what to do instead.
   */
  removed(obj: Mapping | undefined, parent: string, key: string, harmless: unknown, why: string): void {
    if (obj === undefined || !Object.hasOwn(obj, key)) return;
    const field = join(parent, key);
    if (obj[key] === harmless) this.warn(field, `was removed and is ignored: ${why}; delete the key`);
    else this.report(field, `was removed: ${why}; delete the key, got ${show(obj[key])}`);
  }

  /**
   * A mapping of settings. Absent or null (every key under it commented out) is an empty mapping:
   * all defaults. Unknown keys are reported. Undefined when it is not a mapping.
   */
  section(value: unknown, field: string, known: readonly string[]): Mapping | undefined {
    if (value === undefined || value === null) return {};
    if (!isMapping(value)) {
      this.report(field, `${field === '' ? 'the top level ' : ''}must be a mapping, got ${show(value)}`);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (known.includes(key)) continue;
      const hint = nearest(key, known);
      this.report(join(field, key), `unknown key${hint === undefined ? '' : `, did you mean ${quote(hint)}?`}`);
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

  /** A list of resource type names, each listed once, and each in `known` when that is given. */
  typeNames(
    obj: Mapping | undefined,
    parent: string,
    key: string,
    fallback: readonly string[],
    known?: ReadonlySet<string>,
  ): readonly string[] {
    if (obj === undefined || !Object.hasOwn(obj, key)) return fallback;
    const field = join(parent, key);
    const list = obj[key];
    if (!Array.isArray(list)) {
      this.report(field, `must be a list of resource type names, got ${show(list)}`);
      return fallback;
    }
    const names: string[] = [];
    const firstAt = new Map<string, number>();
    list.forEach((item: unknown, i) => {
      if (typeof item !== 'string' || !TYPE_NAME.test(item)) {
        const expected = 'must be a resource type name in PascalCase, e.g. "MeshInsight"';
        this.report(`${field}[${i}]`, `${expected}, got ${show(item)}`);
        return;
      }
      if (known !== undefined && !known.has(item)) {
        const hint = nearest(item, [...known]);
        const help =
          hint === undefined ? ' (add a new type to meshaudit.extraResourceTypes)' : `, did you mean ${quote(hint)}?`;
        this.report(`${field}[${i}]`, `unknown resource type ${quote(item)}${help}`);
        return;
      }
      const first = firstAt.get(item);
      if (first !== undefined) {
        this.report(`${field}[${i}]`, `${quote(item)} is already listed at ${field}[${first}]`);
        return;
      }
      firstAt.set(item, i);
      names.push(item);
    });
    return Object.freeze(names);
  }

  /** A missing field is reported where its parent is. */
  private lineNear(field: string): number | undefined {
    for (let f = field; ; f = parentOf(f)) {
      const line = this.lineOf(f);
      if (line !== undefined || f === '') return line;
    }
  }
}

function join(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

function parentOf(field: string): string {
  return field.slice(0, Math.max(field.lastIndexOf('.'), field.lastIndexOf('['), 0));
}

function quote(s: string): string {
  return JSON.stringify(s);
}

// Long enough for any sensible value; a pasted blob must not flood the terminal.
const SHOW_MAX_CHARS = 60;

/** A value as the operator wrote it, more or less: strings quoted, numbers in YAML's spelling. */
function show(value: unknown): string {
  if (typeof value === 'string') {
    return value.length > SHOW_MAX_CHARS ? `${quote(value.slice(0, SHOW_MAX_CHARS))}...` : quote(value);
  }
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return '.nan';
    if (!Number.isFinite(value)) return value > 0 ? '.inf' : '-.inf';
    return String(value);
  }
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (isMapping(value)) return 'a mapping';
  return String(value);
}
