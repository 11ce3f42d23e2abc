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

/** meshaudit.grpc.maxMessageBytes, in bytes: 4 MiB, gRPC's own default receive limit. */
export const DEFAULT_GRPC_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

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

/** Bytes in one maxSizeMb unit. */
export const BYTES_PER_MB = 1024 * 1024;
