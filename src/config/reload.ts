// What a reload (SIGHUP, or the config or rules files changed on disk) does with each key: the one table of it,
// which docs/reload.md repeats (a test compares them). A `live` key takes effect at once; a `restart` key
// keeps its old value until the sidecar restarts, and the reload says so in one warning line.
import { LIMITS_KEYS } from './load';
import type { Config, Limits, TlsConfig } from './types';

export type ReloadEffect = 'live' | 'restart';

export interface ReloadRule {
  /** The key as the config file spells it. */
  readonly key: string;
  readonly effect: ReloadEffect;
  /** Why, or what "live" means for it: docs/reload.md says the same. */
  readonly note: string;
}

/** The limits' rows, by key: what grpc-js cannot change on a running server needs a restart. */
const LIMIT_RULES: Readonly<Record<keyof Limits, ReloadRule>> = (() => {
  const live = (k: keyof Limits, note: string): ReloadRule => ({ key: `meshaudit.limits.${k}`, effect: 'live', note });
  return {
    messageBytes: {
      key: 'meshaudit.limits.messageBytes',
      effect: 'restart',
      note: 'grpc-js fixes its largest receive message when the server is built',
    },
    statusBytes: live('statusBytes', 'the next status'),
    connections: live('connections', 'new connections; those open stay open'),
    streamsPerConnection: live('streamsPerConnection', 'new connections; those open keep the old setting'),
    bufferedRequestBytes: live('bufferedRequestBytes', 'the next message received'),
    eventsPerBatch: live('eventsPerBatch', 'the next request'),
    fieldChars: live('fieldChars', 'the next batch'),
    listEntries: live('listEntries', 'the next batch'),
    accessAudits: live('accessAudits', 'the next rule change (stored resources over it stay)'),
    rulesPerAccessAudit: live('rulesPerAccessAudit', 'the next rule change'),
    rulesFileBytes: live('rulesFileBytes', 'the rules files of this reload'),
    yamlBytes: live('yamlBytes', 'the rules files of this reload and the next ApplyAccessAudits'),
    yamlDepth: live('yamlDepth', 'the rules files of this reload and the next ApplyAccessAudits'),
    yamlAliases: live('yamlAliases', 'the rules files of this reload and the next ApplyAccessAudits'),
  };
})();

/** Every key of the config file, in the order of docs/reload.md. */
export const RELOAD_TABLE: readonly ReloadRule[] = Object.freeze([
  { key: 'meshaudit.zone', effect: 'restart', note: "the checkpoint and every stream are the zone's" },
  { key: 'meshaudit.dataDir', effect: 'restart', note: 'the lock, the checkpoint and the store are held open there' },
  { key: 'meshaudit.fsync', effect: 'restart', note: 'the files and the checkpoint are opened with it' },
  { key: 'meshaudit.drainTimeoutSeconds', effect: 'live', note: 'the next stop waits the new time' },
  {
    key: 'meshaudit.extraResourceTypes',
    effect: 'restart',
    note: 'the stored AccessAudits were validated against the types known at start-up',
  },
  { key: 'meshaudit.grpc.address', effect: 'restart', note: 'a listen address' },
  {
    key: 'meshaudit.grpc.allowInsecureRemote',
    effect: 'restart',
    note: 'it only decides which listen addresses are allowed',
  },
  { key: 'meshaudit.grpc.unixSocket', effect: 'restart', note: 'a listen address' },
  { key: 'meshaudit.grpc.tls', effect: 'restart', note: 'turning TLS on or off' },
  { key: 'meshaudit.grpc.tls.certFile', effect: 'live', note: 'new connections use the new file' },
  { key: 'meshaudit.grpc.tls.keyFile', effect: 'live', note: 'new connections use the new file' },
  {
    key: 'meshaudit.grpc.tls.clientCaFile',
    effect: 'live',
    note: 'another path is live; adding or removing it needs a restart (the handshake asks for a certificate or not)',
  },
  { key: 'meshaudit.grpc.tls.clientAuth', effect: 'restart', note: 'the TLS server is built with it' },
  ...LIMITS_KEYS.map((k): ReloadRule => LIMIT_RULES[k]),
  { key: 'meshaudit.auth.localhostIsAdmin', effect: 'live', note: 'the next call' },
  { key: 'meshaudit.auth.tokensFile', effect: 'live', note: 'another path is read at once (and watched)' },
  { key: 'meshaudit.auth.permissions', effect: 'live', note: 'the next call' },
  { key: 'meshaudit.auth.certificateIdentities', effect: 'live', note: 'the next call' },
  { key: 'meshaudit.admin.address', effect: 'restart', note: 'a listen address' },
  { key: 'meshaudit.admin.probeAddress', effect: 'restart', note: 'a listen address' },
  { key: 'meshaudit.log.level', effect: 'live', note: 'the next line' },
  {
    key: 'meshaudit.integrity',
    effect: 'restart',
    note: 'the key is read, and the chain of each backend taken up, at start-up',
  },
  {
    key: 'meshaudit.store',
    effect: 'restart',
    note: 'the store is opened (and, for PostgreSQL, listened to) once, at start-up',
  },
  {
    key: 'meshaudit.forwarders',
    effect: 'restart',
    note: 'each forwarder connects, finds its stream and takes its cursor up at start-up',
  },
  {
    key: 'meshaudit.files.fileMode',
    effect: 'restart',
    note: 'the files in use were created with the old mode',
  },
  { key: 'meshaudit.files.dirMode', effect: 'restart', note: 'the folders in use were created with the old mode' },
  {
    key: 'kmesh.access.audit.skipDefaultTypes',
    effect: 'restart',
    note: 'it changes what every rule covers, which only a recorded rule change may do while running',
  },
  {
    key: 'kmesh.access.audit.backends',
    effect: 'restart',
    note: "a backend added or removed, or its path changed: the checkpoint holds each file's position",
  },
  {
    key: 'kmesh.access.audit.backends[].file.rotation',
    effect: 'live',
    note: 'the next write rotates at the new size or interval; retention runs at once under the new limits; compress applies from the next file final after the reload',
  },
]) as readonly ReloadRule[];

/** What a new config changes, by key of RELOAD_TABLE. */
export interface ConfigDiff {
  /** Keys whose new value takes effect now. */
  readonly live: readonly string[];
  /** Keys that changed but keep their old value until a restart. */
  readonly restart: readonly string[];
  /** The config in force after the reload: `next`, with the old value of every restart key. */
  readonly effective: Config;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** The key of each compared part of the config (the TLS and backends parts are compared apart). */
const PARTS: ReadonlyArray<readonly [string, (c: Config) => unknown]> = [
  ['meshaudit.zone', (c) => c.zone],
  ['meshaudit.dataDir', (c) => c.dataDir],
  ['meshaudit.fsync', (c) => c.fsync],
  ['meshaudit.drainTimeoutSeconds', (c) => c.drainTimeoutMs],
  ['meshaudit.extraResourceTypes', (c) => c.extraResourceTypes],
  ['meshaudit.grpc.address', (c) => c.grpcAddress],
  ['meshaudit.grpc.allowInsecureRemote', (c) => c.allowInsecureRemote],
  ['meshaudit.grpc.unixSocket', (c) => c.unixSocket],
  ...LIMITS_KEYS.map((k) => [`meshaudit.limits.${k}`, (c: Config) => c.limits[k]] as const),
  ['meshaudit.auth.localhostIsAdmin', (c) => c.auth.localhostIsAdmin],
  ['meshaudit.auth.tokensFile', (c) => c.auth.tokensFile],
  ['meshaudit.auth.permissions', (c) => c.auth.permissions],
  ['meshaudit.auth.certificateIdentities', (c) => c.auth.certificateIdentities],
  ['meshaudit.admin.address', (c) => c.admin.address],
  ['meshaudit.admin.probeAddress', (c) => c.admin.probeAddress],
  ['meshaudit.log.level', (c) => c.logLevel],
  ['meshaudit.integrity', (c) => c.integrity],
  ['meshaudit.store', (c) => c.store],
  ['meshaudit.forwarders', (c) => c.forwarders],
  ['meshaudit.files.fileMode', (c) => c.files.file],
  ['meshaudit.files.dirMode', (c) => c.files.dir],
  ['kmesh.access.audit.skipDefaultTypes', (c) => c.skipDefaultTypes],
];

function effectOf(key: string): ReloadEffect {
  const rule = RELOAD_TABLE.find((r) => r.key === key);
  if (rule === undefined) throw new Error(`no reload rule for ${key}`);
  return rule.effect;
}

/** What changes from `old` to `next`, and the config in force afterwards. Pure. */
export function diffConfig(old: Config, next: Config): ConfigDiff {
  const live: string[] = [];
  const restart: string[] = [];
  const changed = (key: string, effect: ReloadEffect = effectOf(key)): void => {
    (effect === 'live' ? live : restart).push(key);
  };
  for (const [key, get] of PARTS) if (!same(get(old), get(next))) changed(key);
  const tls = diffTls(old.tls, next.tls, changed);
  const backends = diffBackends(old, next, changed);
  const effective: Config = Object.freeze({
    ...next,
    zone: old.zone,
    dataDir: old.dataDir,
    fsync: old.fsync,
    extraResourceTypes: old.extraResourceTypes,
    grpcAddress: old.grpcAddress,
    allowInsecureRemote: old.allowInsecureRemote,
    unixSocket: old.unixSocket,
    admin: old.admin,
    store: old.store,
    forwarders: old.forwarders,
    integrity: old.integrity,
    files: old.files,
    skipDefaultTypes: old.skipDefaultTypes,
    limits: Object.freeze({ ...next.limits, messageBytes: old.limits.messageBytes }),
    tls,
    backends,
  });
  return { live, restart, effective };
}

/** The TLS in force afterwards: the new paths, unless TLS, the client CAs or clientAuth turn on or off. */
function diffTls(
  old: TlsConfig | undefined,
  next: TlsConfig | undefined,
  changed: (key: string, effect?: ReloadEffect) => void,
): TlsConfig | undefined {
  if (old === undefined || next === undefined) {
    if (old !== next) changed('meshaudit.grpc.tls');
    return old;
  }
  if ((old.clientCaFile === undefined) !== (next.clientCaFile === undefined)) {
    changed('meshaudit.grpc.tls.clientCaFile', 'restart');
    return old;
  }
  for (const k of ['certFile', 'keyFile', 'clientCaFile', 'clientAuth'] as const) {
    if (old[k] !== next[k]) changed(`meshaudit.grpc.tls.${k}`);
  }
  return Object.freeze({ ...next, clientAuth: old.clientAuth });
}

/** The backends afterwards: the old files, each with its new rotation where the new config keeps its path. */
function diffBackends(old: Config, next: Config, changed: (key: string) => void): Config['backends'] {
  const paths = (c: Config): string[] => c.backends.map((b) => b.path);
  if (!same(paths(old), paths(next))) changed('kmesh.access.audit.backends');
  const rotations = new Map(next.backends.map((b) => [b.path, b.rotation]));
  let rotationChanged = false;
  const backends = old.backends.map((b) => {
    const rotation = rotations.get(b.path);
    if (rotation === undefined || same(rotation, b.rotation)) return b;
    rotationChanged = true;
    return Object.freeze({ ...b, rotation });
  });
  if (rotationChanged) changed('kmesh.access.audit.backends[].file.rotation');
  return Object.freeze(backends);
}

/**
 * meshaudit.limits as every component reads them while running: one holder, swapped whole by a reload.
 * The components that derive something from a limit (the evaluator's scanners, the gRPC server's
 * settings) are told by the reload; the others read it here on each use.
 */
export class LiveLimits implements Limits {
  constructor(private limits: Limits) {}

  get current(): Limits {
    return this.limits;
  }

  set(limits: Limits): void {
    this.limits = limits;
  }

  get messageBytes(): number {
    return this.limits.messageBytes;
  }
  get statusBytes(): number {
    return this.limits.statusBytes;
  }
  get connections(): number {
    return this.limits.connections;
  }
  get streamsPerConnection(): number {
    return this.limits.streamsPerConnection;
  }
  get bufferedRequestBytes(): number {
    return this.limits.bufferedRequestBytes;
  }
  get eventsPerBatch(): number {
    return this.limits.eventsPerBatch;
  }
  get fieldChars(): number {
    return this.limits.fieldChars;
  }
  get listEntries(): number {
    return this.limits.listEntries;
  }
  get accessAudits(): number {
    return this.limits.accessAudits;
  }
  get rulesPerAccessAudit(): number {
    return this.limits.rulesPerAccessAudit;
  }
  get rulesFileBytes(): number {
    return this.limits.rulesFileBytes;
  }
  get yamlBytes(): number {
    return this.limits.yamlBytes;
  }
  get yamlDepth(): number {
    return this.limits.yamlDepth;
  }
  get yamlAliases(): number {
    return this.limits.yamlAliases;
  }
}
