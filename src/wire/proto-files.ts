// Where the .proto files are: the public contract, loaded by the gRPC server, the reflection service
// and the wire decoder alike.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** proto/ at the package root: dist/src/<layer> -> ../../../proto, src/<layer> -> ../../proto. */
export function protoDir(): string {
  const fromDist = path.resolve(__dirname, '../../../proto');
  const fromSrc = path.resolve(__dirname, '../../proto');
  return fs.existsSync(path.join(fromDist, 'meshaudit')) ? fromDist : fromSrc;
}

export const AUDIT_PROTO = 'meshaudit/v1/audit.proto';
