// The .proto files meshaudit serves and where they are: its own contract under proto/meshaudit, the
// error model under proto/google/rpc, and the health and reflection protos of the libraries that serve
// those services. They are parsed here, once, into one protobufjs Root.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

/** proto/ at the package root: dist/src/contract -> ../../../proto, src/contract -> ../../proto. */
export function protoDir(): string {
  const fromDist = path.resolve(__dirname, '../../../proto');
  const fromSrc = path.resolve(__dirname, '../../proto');
  return fs.existsSync(path.join(fromDist, 'meshaudit')) ? fromDist : fromSrc;
}

export const AUDIT_PROTO = 'meshaudit/v1/audit.proto';

/**
 * grpc-health-check ships health.proto at proto/health/v1; every other implementation serves it under
 * the grpc-proto name, which is the name clients know it by.
 */
const HEALTH_FILE = 'grpc/health/v1/health.proto';
const HEALTH_PATH = path.join(packageDir('grpc-health-check'), 'proto', 'health', 'v1', 'health.proto');

/** The reflection protos themselves, so that `list` shows ServerReflection as grpc-go and grpc-java do. */
const REFLECTION_FILES = ['grpc/reflection/v1/reflection.proto', 'grpc/reflection/v1alpha/reflection.proto'];
const REFLECTION_DIR = path.join(packageDir('@grpc/reflection'), 'build', 'proto');

/** google.rpc.Status and its details, so grpcurl can decode the `grpc-status-details-bin` trailer. */
const ERROR_MODEL_FILES = ['google/rpc/status.proto', 'google/rpc/error_details.proto'];

function packageDir(name: string): string {
  return path.dirname(require.resolve(`${name}/package.json`));
}

/** Every file served, by the name other files import it as: the whole contract under proto/meshaudit first. */
export function servedProtoFiles(): string[] {
  const dir = protoDir();
  const contract = (fs.readdirSync(path.join(dir, 'meshaudit'), { recursive: true }) as string[])
    .filter((f) => f.endsWith('.proto'))
    .map((f) => path.posix.join('meshaudit', f.split(path.sep).join('/')))
    .sort();
  return [...contract, ...ERROR_MODEL_FILES, HEALTH_FILE, ...REFLECTION_FILES];
}

/** The parsed files, and the name each file on disk is imported as. */
export interface ParsedFiles {
  readonly root: protobuf.Root;
  /** Absolute path -> import name (`meshaudit/v1/audit.proto`). */
  readonly nameOfPath: ReadonlyMap<string, string>;
}

/**
 * Parses every served file (and what they import) into one Root, names as declared (`first_seq`: the
 * descriptors and the error model use them; handlers get a camelCase view) and every `//` comment kept
 * (grpcurl `describe` prints them).
 */
export function parseServedFiles(): ParsedFiles {
  const includeDirs = [protoDir(), REFLECTION_DIR];
  const nameOfPath = new Map<string, string>();
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => {
    const found =
      target === HEALTH_FILE ? HEALTH_PATH : includeDirs.map((d) => path.join(d, target)).find((p) => fs.existsSync(p));
    if (found === undefined) throw new Error(`can't load ${target}: not under ${includeDirs.join(' or ')}`);
    nameOfPath.set(found, target);
    return found;
  };
  root.loadSync(servedProtoFiles(), { keepCase: true, alternateCommentMode: true });
  root.resolveAll();
  return { root, nameOfPath };
}
