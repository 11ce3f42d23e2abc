import type { CertificateIdentity } from '../auth/certificates';
import type { Permissions } from '../auth/principal';
// The sidecar's resolved configuration: validated once at start-up, then frozen.
// YAML keys and their defaults are documented in src/config/defaults.ts and the README.
import type { LogLevel } from '../log';
import type { ExtraResourceType } from '../rules';

export interface RotationConfig {
  /** false: one file that only grows. */
  readonly enabled: boolean;
  /** Rotated files kept; 0 keeps all (lumberjack's MaxBackups). */
  readonly maxRetainedFiles: number;
  /** Rotate once a write makes the active file reach this many bytes (from maxSizeMb, fractions allowed). */
  readonly maxSizeBytes: number;
  /** Rotated files whose name's time is older than this many days are deleted; 0 keeps them regardless of age. */
  readonly maxAgeDays: number;
  /**
   * rotation.interval in milliseconds: the active file also rotates before the first write after a UTC
   * boundary (a multiple of it since the Unix epoch) passed, whatever its size. Undefined: no interval.
   */
  readonly intervalMs?: number;
  /** rotation.compress: rotated files are gzipped (`<rotated name>.gz`) once final. Default false. */
  readonly compress?: boolean;
}

export interface FileBackendConfig {
  readonly type: 'file';
  /** Path of the active file, absolute (resolved against the working directory). */
  readonly path: string;
  readonly rotation: RotationConfig;
}

/**
 * Bounds on what a client or an input may make the sidecar hold or do (meshaudit.limits): docs/limits.md
 * has them all in one table, with their defaults (src/config/defaults.ts).
 */
export interface Limits {
  /** Largest request message, in bytes (messageBytes, formerly meshaudit.grpc.maxMessageBytes). */
  readonly messageBytes: number;
  /** Bytes a gRPC status may carry, its message and details together (statusBytes). */
  readonly statusBytes: number;
  /** Client connections open at once; more are closed as they come (connections). */
  readonly connections: number;
  /** HTTP/2 streams (calls) one connection may have open at once (streamsPerConnection). */
  readonly streamsPerConnection: number;
  /** Bytes of request messages received in part, all connections together (bufferedRequestBytes). */
  readonly bufferedRequestBytes: number;
  /** Events in one StreamEvents request (eventsPerBatch). */
  readonly eventsPerBatch: number;
  /** Characters of one string field of an event (fieldChars). */
  readonly fieldChars: number;
  /** Entries of one list or map of an event: groups, tags, scope (listEntries). */
  readonly listEntries: number;
  /** AccessAudit resources in the store (accessAudits). */
  readonly accessAudits: number;
  /** Rules of one AccessAudit (rulesPerAccessAudit). */
  readonly rulesPerAccessAudit: number;
  /** Bytes of one --rules file; a larger file (or a device that never ends) is refused (rulesFileBytes). */
  readonly rulesFileBytes: number;
  /** Bytes of one YAML text: rules files, ApplyAccessAudits (yamlBytes). */
  readonly yamlBytes: number;
  /** Nesting levels of one YAML document, as js-yaml counts them (yamlDepth). */
  readonly yamlDepth: number;
  /** Aliases (`*name`) in one YAML document (yamlAliases). */
  readonly yamlAliases: number;
}

/** The modes of what the sidecar creates (meshaudit.files), whatever the umask. */
export interface FileModes {
  /** Files: audit files (active and rotated), the checkpoint, the AccessAudit store, the lock (fileMode). */
  readonly file: number;
  /** Folders the sidecar creates; an existing one is left as the operator made it (dirMode). */
  readonly dir: number;
}

/** A Unix domain socket listener besides TCP (meshaudit.grpc.unixSocket): who can connect is its identity. */
export interface UnixSocketConfig {
  /** Absolute. */
  readonly path: string;
  /** The socket file's mode: who may connect (the OS checks it). */
  readonly mode: number;
  /** The principal every caller through it is. */
  readonly user: string;
  readonly groups: readonly string[];
  /** The zones it may stream for; undefined: any. */
  readonly zones: readonly string[] | undefined;
}

/** TLS on the gRPC port (meshaudit.grpc.tls); the files are absolute, read again when they change. */
export interface TlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
  /** CAs that sign client certificates; undefined: no client certificate is asked for. */
  readonly clientCaFile: string | undefined;
  /** `require`: a connection without a valid client certificate is refused in the handshake. */
  readonly clientAuth: 'none' | 'require';
}

/** Who callers are, and what their groups may do (meshaudit.auth). */
export interface AuthConfig {
  /** A loopback caller that presents no credential is the admin (localhostIsAdmin; Kong Mesh's rule). */
  readonly localhostIsAdmin: boolean;
  /** Bearer tokens, by hash (tokensFile), absolute; undefined: no token is accepted. */
  readonly tokensFile: string | undefined;
  /** The groups that hold each permission (permissions). */
  readonly permissions: Permissions;
  /** From the names on a client certificate to a principal, first match wins (certificateIdentities). */
  readonly certificateIdentities: readonly CertificateIdentity[];
}

/** The admin HTTP listeners (meshaudit.admin): docs/admin.md. */
export interface AdminConfig {
  /** host:port of the admin (meshaudit.admin.address); undefined: off (""). */
  readonly address: string | undefined;
  /** host:port of a listener serving only GET /ready and GET /stats/prometheus (meshaudit.admin.probeAddress); undefined: off. */
  readonly probeAddress: string | undefined;
}

/** PostgreSQL's connection settings (meshaudit.store.postgres): each key falls back to its PG* variable, as libpq's. */
export interface PostgresStoreConfig {
  /** host (PGHOST; default localhost). */
  readonly host: string;
  /** port (PGPORT; default 5432). */
  readonly port: number;
  /** database (PGDATABASE; default: the user's name). */
  readonly database: string;
  /** user (PGUSER; default: the user the sidecar runs as). */
  readonly user: string;
  /**
   * A file holding the password, absolute, read at each connection (a rotated secret is picked up);
   * undefined: PGPASSWORD, then the PGPASSFILE / ~/.pgpass file, as libpq.
   */
  readonly passwordFile: string | undefined;
  /** The schema of the table (PGSCHEMA is not a libpq variable: default public). */
  readonly schema: string;
  /** disable, require, verify-ca or verify-full (PGSSLMODE; default disable). */
  readonly sslMode: PostgresSslMode;
  /** CAs that sign the server's certificate, absolute (PGSSLROOTCERT); undefined: the system's. */
  readonly caFile: string | undefined;
}

export type PostgresSslMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';

/** Where the zone's AccessAudit resources are kept (meshaudit.store): docs/store.md. */
export interface StoreConfig {
  /** file: <dataDir>/access-audits.json, this sidecar's own; postgres: the zone's, shared by its replicas. */
  readonly type: 'file' | 'postgres';
  /** Set with type postgres. */
  readonly postgres: PostgresStoreConfig | undefined;
  /** Create the schema and the table when missing (createSchema); false: a missing table stops start-up. */
  readonly createSchema: boolean;
}

/** The tamper-evident trail (meshaudit.integrity): docs/integrity.md. */
export interface IntegrityConfig {
  /** Digests, retention markers and seals beside the audit files (enabled). */
  readonly enabled: boolean;
  /** The Ed25519 private key (PEM), absolute; undefined: one generated in the data directory. */
  readonly keyFile: string | undefined;
  /** How often the active file is sealed, idle or not (sealIntervalSeconds). */
  readonly sealIntervalMs: number;
  /** A second folder that receives every digest, marker and seal as well, absolute; undefined: none. */
  readonly copyTo: string | undefined;
}

/** How the forwarder proves who it is to NATS (exactly one, or none); every secret is a file, read at each connection. */
export type NatsCredentials =
  | { readonly type: 'none' }
  /** user with passwordFile. */
  | { readonly type: 'user'; readonly user: string; readonly passwordFile: string }
  | { readonly type: 'token'; readonly tokenFile: string }
  /** An NKey seed (`SU...`), the file's first line. */
  | { readonly type: 'nkey'; readonly nkeySeedFile: string }
  /** A `.creds` file (a user JWT and its NKey seed, as `nsc` writes it). */
  | { readonly type: 'creds'; readonly credsFile: string };

/** TLS to the NATS servers (meshaudit.forwarders[].tls); the files are absolute. */
export interface NatsTlsConfig {
  /** CAs that sign the servers' certificates; undefined: the system's. */
  readonly caFile: string | undefined;
  /** A client certificate and its key (both or neither). */
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
}

/** The JetStream stream the forwarder publishes to (meshaudit.forwarders[].stream). */
export interface NatsStreamConfig {
  /** name: default MESHAUDIT. */
  readonly name: string;
  /** create: the sidecar creates it (subjects `meshaudit.>`) when missing; false: a missing stream stops start-up. */
  readonly create: boolean;
  /** replicas (1 to 5), maxAgeDays (0: no limit) and duplicateWindowSeconds: used only when it creates the stream. */
  readonly replicas: number;
  readonly maxAgeMs: number;
  readonly duplicateWindowMs: number;
}

/**
 * A forwarder (meshaudit.forwarders[]): publishes every committed record of the first file backend, in file
 * order and exactly once, to a NATS JetStream stream (docs/forwarding.md).
 */
export interface NatsForwarderConfig {
  readonly kind: 'nats';
  /** Unique among the forwarders (default: the kind); names its cursor file and its metrics. */
  readonly name: string;
  /** NATS server URLs (`nats://host:port`, `tls://host:port` or `host:port`). */
  readonly servers: readonly string[];
  readonly credentials: NatsCredentials;
  /** undefined: TLS only when a server URL asks for it (`tls://`) or the server requires it. */
  readonly tls: NatsTlsConfig | undefined;
  /** The subject token naming this sidecar's control plane (default: the host name). */
  readonly instance: string;
  readonly stream: NatsStreamConfig;
  /** Rotated files retention keeps beyond its limits while the forwarder has not read them (maxHeldFiles). */
  readonly maxHeldFiles: number;
}

export type ForwarderConfig = NatsForwarderConfig;

export interface Config {
  /** Name of the zone this sidecar serves (meshaudit.zone). */
  readonly zone: string;
  /** host:port the gRPC server listens on (meshaudit.grpc.address). */
  readonly grpcAddress: string;
  /** Directory of the sidecar's own state (acked sequences, rules), absolute (meshaudit.dataDir). */
  readonly dataDir: string;
  /** Resource types known beyond the built-in Kuma / Kong Mesh registry, with their scope (meshaudit.extraResourceTypes). */
  readonly extraResourceTypes: readonly ExtraResourceType[];
  /** fsync every audit file and the checkpoint after each batch (meshaudit.fsync). */
  readonly fsync: boolean;
  /** How long a graceful stop waits for in-flight batches before it forces the server down (meshaudit.drainTimeoutSeconds). */
  readonly drainTimeoutMs: number;
  readonly limits: Limits;
  readonly auth: AuthConfig;
  /** A non-loopback gRPC address is allowed without TLS (meshaudit.grpc.allowInsecureRemote). */
  readonly allowInsecureRemote: boolean;
  /** TLS (meshaudit.grpc.tls); undefined: plaintext. */
  readonly tls: TlsConfig | undefined;
  /** A Unix domain socket besides TCP (meshaudit.grpc.unixSocket); undefined: none. */
  readonly unixSocket: UnixSocketConfig | undefined;
  readonly admin: AdminConfig;
  /** The tamper-evident trail (meshaudit.integrity). */
  readonly integrity: IntegrityConfig;
  /** Where the AccessAudit resources are kept (meshaudit.store). */
  readonly store: StoreConfig;
  /** The lowest level the log writes (meshaudit.log.level). */
  readonly logLevel: LogLevel;
  /** The modes of the files and folders the sidecar creates (meshaudit.files: fileMode, dirMode). */
  readonly files: FileModes;
  /** Types that rules without `types` do not cover (kmesh.access.audit.skipDefaultTypes). */
  readonly skipDefaultTypes: readonly string[];
  /** Where records go (kmesh.access.audit.backends); each record is written to every backend. */
  readonly backends: readonly FileBackendConfig[];
  /** Where the first file backend's committed records are forwarded (meshaudit.forwarders); none by default. */
  readonly forwarders: readonly ForwarderConfig[];
}
