// Loads the public contract. The conversion options fix the JS shape the handlers see.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { AUDIT_PROTO, protoDir } from '../wire/proto-files';

export { AUDIT_PROTO, protoDir };

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false, // camelCase: the names grpcurl and the JSON form use
  longs: Number, // sequences stay below 2^53: 285 years at a million events per second
  enums: String,
  defaults: true, // absent strings arrive as "", absent messages as null
  arrays: true,
  objects: true,
  includeDirs: [],
};

export interface MeshauditPackage {
  AuditService: grpc.ServiceClientConstructor;
  RuleService: grpc.ServiceClientConstructor;
}

export function loadMeshaudit(): { pkg: MeshauditPackage; definition: protoLoader.PackageDefinition } {
  const definition = protoLoader.loadSync(AUDIT_PROTO, { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
  const root = grpc.loadPackageDefinition(definition) as unknown as { meshaudit: { v1: MeshauditPackage } };
  return { pkg: root.meshaudit.v1, definition };
}
