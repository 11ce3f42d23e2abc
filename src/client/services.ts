// The meshaudit.v1 service clients, from the contract's package definition.
import * as grpc from '@grpc/grpc-js';
import { contract } from '../contract';

export interface MeshauditClients {
  AuditService: grpc.ServiceClientConstructor;
  RuleService: grpc.ServiceClientConstructor;
}

/** The client constructors of meshaudit.v1 (the contract is parsed once per process). */
export function meshauditClients(): MeshauditClients {
  const root = grpc.loadPackageDefinition(contract().packageDefinition) as unknown as {
    meshaudit: { v1: MeshauditClients };
  };
  return root.meshaudit.v1;
}
