// The meshaudit.v1 service clients, from the contract's package definition.
import * as grpc from '@grpc/grpc-js';
import type * as protobuf from 'protobufjs';
import { contract } from '../contract';

export interface MeshauditClients {
  AuditService: grpc.ServiceClientConstructor;
  RuleService: grpc.ServiceClientConstructor;
  ReadService: grpc.ServiceClientConstructor;
}

/** The client constructors of meshaudit.v1 (the contract is parsed once per process). */
export function meshauditClients(): MeshauditClients {
  const root = grpc.loadPackageDefinition(contract().packageDefinition) as unknown as {
    meshaudit: { v1: MeshauditClients };
  };
  return root.meshaudit.v1;
}

/** A unary method of a generic client, its messages coded by the contract's protobufjs types. */
function unaryMethod(
  path: string,
  request: protobuf.Type,
  response: protobuf.Type,
): grpc.MethodDefinition<object, object> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: object) => Buffer.from(request.encode(request.fromObject(value)).finish()),
    requestDeserialize: (bytes: Buffer) => request.toObject(request.decode(bytes), { enums: String }),
    responseSerialize: (value: object) => Buffer.from(response.encode(response.fromObject(value)).finish()),
    responseDeserialize: (bytes: Buffer) => response.toObject(response.decode(bytes), { enums: String }),
  };
}

/** grpc.health.v1.Health's Check, from the health.proto the sidecar serves (the status as its enum name). */
export function healthClient(): grpc.ServiceClientConstructor {
  const type = (name: string): protobuf.Type => contract().type(`grpc.health.v1.${name}`);
  return grpc.makeGenericClientConstructor(
    { Check: unaryMethod('/grpc.health.v1.Health/Check', type('HealthCheckRequest'), type('HealthCheckResponse')) },
    'Health',
  );
}

/** A client of meshaudit.v1.AuditService (its methods through proto-loader's generic client). */
export function auditServiceClient(address: string, credentials: grpc.ChannelCredentials): grpc.Client {
  return new (meshauditClients().AuditService)(address, credentials);
}
