// Built-in defaults: what the sidecar runs with when a key (or the whole config file) is absent.
// Relative paths are resolved against the working directory when the config is loaded.
import { DEFAULT_SKIP_TYPES, type ExtraResourceType } from '../rules/resource-types';

/** meshaudit.zone: Kuma's name for the zone of a standalone control plane. */
export const DEFAULT_ZONE = 'default';

/**
 * meshaudit.grpc.address (host:port): loopback, because the control plane that streams to the
 * sidecar runs beside it; 5690 sits just above Kuma's own ports (5676-5685) without clashing.
 */
export const DEFAULT_GRPC_ADDRESS = '127.0.0.1:5690';
/** The admin HTTP listener (meshaudit.admin.address), beside gRPC on loopback; "" turns it off. */
export const DEFAULT_ADMIN_ADDRESS = '127.0.0.1:5691';
/** The lowest level the log writes (meshaudit.log.level). */
export const DEFAULT_LOG_LEVEL = 'info';

/** meshaudit.limits.messageBytes (formerly meshaudit.grpc.maxMessageBytes), in bytes: 4 MiB, gRPC's own default receive limit. */
export const DEFAULT_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * meshaudit.limits.statusBytes, in bytes: 8 KiB for a status's message and details together, about 100
 * field violations. A status travels in HTTP/2 trailers; one past the peer's header limit (grpc-js and
 * Go allow 16-64 KiB, base64 and percent-encoding included) is never answered and stalls its connection.
 */
export const DEFAULT_STATUS_BYTES = 8 * 1024;

/**
 * meshaudit.limits.streamsPerConnection: 100 calls open at once on one connection (HTTP/2's
 * SETTINGS_MAX_CONCURRENT_STREAMS; grpc-go's servers advertise the same). A control plane needs one
 * stream and a few unary calls; each open stream may hold a message of up to maxMessageBytes.
 */
export const DEFAULT_STREAMS_PER_CONNECTION = 100;

/** meshaudit.limits.rulesFileBytes, in bytes: 1 MiB, the YAML parser's own bound; a rules file is a few KiB. */
export const DEFAULT_RULES_FILE_BYTES = 1024 * 1024;

/**
 * meshaudit.limits.connections: 100 connections open at once. A sidecar serves the control plane beside it
 * (one or two connections) and an operator's grpcurl; each connection costs an HTTP/2 session and may open
 * streamsPerConnection calls, so their number must be bounded for bufferedRequestBytes to mean anything.
 */
export const DEFAULT_CONNECTIONS = 100;

/**
 * meshaudit.limits.bufferedRequestBytes, in bytes: 64 MiB for every request message the sidecar holds
 * unfinished (received in part), across all connections: 16 messages of the default 4 MiB at once, far more
 * than a control plane's window of 8 batches needs, and small beside the memory a sidecar is given.
 */
export const DEFAULT_BUFFERED_REQUEST_BYTES = 64 * 1024 * 1024;

/**
 * meshaudit.limits.eventsPerBatch: 5,000 events in one StreamEvents request. The CP's batches are a few
 * hundred events; every event of a batch is evaluated in one turn of the event loop, so this bounds how
 * long one request can keep every other call waiting (about 5 ms at 1 µs an event).
 */
export const DEFAULT_EVENTS_PER_BATCH = 5000;

/**
 * meshaudit.limits.fieldChars, in characters: 1024 per string field of an event, generous for Kubernetes
 * names (253), emails and group names, and it bounds a record line (and so a batch write) whatever a CP sends.
 */
export const DEFAULT_FIELD_CHARS = 1024;

/** meshaudit.limits.listEntries: 64 entries in one list or map of an event (user groups, token tags, scope). */
export const DEFAULT_LIST_ENTRIES = 64;

/**
 * meshaudit.limits.accessAudits: 1,000 AccessAudit resources in the store. A mesh has a handful; every
 * change compiles them all and writes the whole store, so their number bounds the cost of one change.
 */
export const DEFAULT_ACCESS_AUDITS = 1000;

/** meshaudit.limits.rulesPerAccessAudit: 100 rules in one AccessAudit (a real one has a few). */
export const DEFAULT_RULES_PER_ACCESS_AUDIT = 100;

/**
 * meshaudit.limits.yamlBytes, in bytes of UTF-8: 1 MiB for one YAML text (a rules file, an
 * ApplyAccessAudits call); everything after it is linear in the input, so bounding it bounds time and memory.
 */
export const DEFAULT_YAML_BYTES = 1024 * 1024;

/**
 * meshaudit.limits.yamlDepth: 64 levels, counted as js-yaml counts them (the document and the innermost
 * scalar are levels too, so 62 nested collections; a config nests 7 deep). Recursive validators and
 * JSON.stringify must not run out of stack.
 */
export const DEFAULT_YAML_DEPTH = 64;

/** meshaudit.limits.yamlAliases: 100 aliases (`*name`) per YAML document; real files use none or a few. */
export const DEFAULT_YAML_ALIASES = 100;

/**
 * meshaudit.auth.localhostIsAdmin: on, as Kong Mesh's API server: with the default loopback address
 * only processes of this host can call, and a control plane beside the sidecar needs no credential.
 * With tokens (or, later, certificates) configured, turn it off so that local callers must present one.
 */
export const DEFAULT_LOCALHOST_IS_ADMIN = true;

/**
 * meshaudit.files.fileMode and dirMode: rw-r----- and rwxr-x---, whatever the umask. The owner writes,
 * the group (a log shipper) reads, others nothing; a umask of 0000, common in containers, would
 * otherwise leave the audit trail readable by every user of the host.
 */
export const DEFAULT_FILE_MODES: Readonly<{ file: number; dir: number }> = Object.freeze({ file: 0o640, dir: 0o750 });

/** meshaudit.grpc.unixSocket.mode: the sidecar's own user alone may connect; widen it to a group on purpose. */
export const DEFAULT_UNIX_SOCKET_MODE = 0o600;

/** meshaudit.dataDir: relative to the working directory, so that a first `make run` needs no root. */
export const DEFAULT_DATA_DIR = './var';

/**
 * meshaudit.extraResourceTypes: none; the built-in Kuma / Kong Mesh registry covers the usual types. An
 * entry is a type name (mesh-scoped) or `{name, scope: mesh | global}`.
 */
export const DEFAULT_EXTRA_RESOURCE_TYPES: readonly ExtraResourceType[] = Object.freeze([]);

/**
 * meshaudit.fsync: off, as in lumberjack. A written record survives a crash of the process (it is in
 * the page cache); only a crash of the machine can lose the last batches. Turn it on to survive that too.
 */
export const DEFAULT_FSYNC = false;

/**
 * meshaudit.drainTimeoutSeconds, in seconds: well inside Kubernetes' default
 * terminationGracePeriodSeconds (30), so a drain finishes before the kubelet sends SIGKILL.
 */
export const DEFAULT_DRAIN_TIMEOUT_SECONDS = 10;

/**
 * kmesh.access.audit.skipDefaultTypes: the six insight types Kong Mesh skips by default. Insights
 * change on every heartbeat of a data plane or zone; auditing them would bury the actions of people.
 * The list lives beside the type registry in src/rules, so that the two cannot drift apart.
 */
export const DEFAULT_SKIP_DEFAULT_TYPES: readonly string[] = DEFAULT_SKIP_TYPES;

/** kmesh.access.audit.backends[].type: the only backend there is. */
export const FILE_BACKEND_TYPE = 'file';

/**
 * Path of the default (and only) backend when kmesh.access.audit.backends is absent: under the
 * default dataDir, relative to the working directory. It does not follow a configured dataDir.
 */
export const DEFAULT_BACKEND_PATH = './var/audit/audit.log';

/** rotation.enabled: rotate, so that the audit trail cannot fill the disk by itself. */
export const DEFAULT_ROTATION_ENABLED = true;

/** rotation.maxRetainedFiles, in files: 10 rotated files (1 GiB at the default size) besides the active one. */
export const DEFAULT_MAX_RETAINED_FILES = 10;

/** rotation.maxSizeMb, in MiB (lumberjack's "megabytes" are 1024 * 1024 bytes): lumberjack's default. */
export const DEFAULT_MAX_SIZE_MB = 100;

/** rotation.maxAgeDays, in days: a month of history, the usual retention floor of an audit policy. */
export const DEFAULT_MAX_AGE_DAYS = 30;

/** rotation.compress: off, as in lumberjack (a plain file can be grepped where it lies). */
export const DEFAULT_ROTATION_COMPRESS = false;

/** Bytes in one maxSizeMb unit. */
export const BYTES_PER_MB = 1024 * 1024;

/**
 * meshaudit.integrity.enabled: on. Every rotated file gets a signed digest and the active file a signed
 * seal, so that an edit of the trail after it was written can be shown (`meshaudit verify`).
 */
export const DEFAULT_INTEGRITY_ENABLED = true;

/**
 * meshaudit.integrity.sealIntervalSeconds: 60 s, as CloudTrail's hourly digests made finer: the records of
 * the last minute are the ones an edit could hide in (unless copyTo holds the seal elsewhere).
 */
export const DEFAULT_SEAL_INTERVAL_SECONDS = 60;

/** meshaudit.forwarders: none, so that a sidecar depends on nothing beyond its host unless asked. */
export const DEFAULT_FORWARDERS: readonly [] = Object.freeze([]) as readonly [];

/** meshaudit.forwarders[].kind: the engines a forwarder can publish to. */
export const FORWARDER_KINDS = ['nats'] as const;

/** meshaudit.forwarders[].servers: the NATS default port on this host (a leaf node or a local server). */
export const DEFAULT_NATS_SERVERS: readonly string[] = Object.freeze(['nats://127.0.0.1:4222']);

/** meshaudit.forwarders[].stream.name: one stream for every zone, split by subject (meshaudit.<zone>.<instance>.<kind>). */
export const DEFAULT_NATS_STREAM = 'MESHAUDIT';

/** stream.replicas when the sidecar creates the stream: 1, what a single server allows; 3 on a cluster. */
export const DEFAULT_NATS_REPLICAS = 1;

/** stream.maxAgeDays when the sidecar creates the stream: 0, kept until removed (the center's retention is its own). */
export const DEFAULT_NATS_MAX_AGE_DAYS = 0;

/**
 * stream.duplicateWindowSeconds when the sidecar creates the stream: JetStream's own default (2 minutes).
 * Past it the forwarder's look at the stream's last messages keeps records single, not the window.
 */
export const DEFAULT_NATS_DUPLICATE_WINDOW_SECONDS = 120;

/**
 * meshaudit.forwarders[].maxHeldFiles: rotated files retention keeps past its own limits while a forwarder has
 * not read them: 10, another maxRetainedFiles' worth at the defaults (1 GiB), hours of backlog while the
 * center is down. Beyond it they are deleted anyway: the zone's disk must not fill because the center is down.
 */
export const DEFAULT_MAX_HELD_FILES = 10;
