// The public contract (proto/), loaded once. Everything in meshaudit that speaks protobuf takes its view
// of it from here: the gRPC service definitions (server and client), the message types the pipeline
// reads and the acks are encoded with, the error model's types, the descriptors reflection serves, and
// the field numbers the wire scanner walks by, so that editing a .proto file cannot desynchronise them.
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import { describeFiles, type FileProto } from './descriptors';
import { parseServedFiles } from './files';

export { AUDIT_PROTO, protoDir, servedProtoFiles } from './files';
export { type FileProto, jsonName, type MessageProto } from './descriptors';

/** The meshaudit.v1 package. */
const PACKAGE = 'meshaudit.v1';

/**
 * How grpc-js hands messages to handlers and takes replies: camelCase names (as grpcurl and the JSON
 * form use them), sequences as numbers (below 2^53: 285 years at a million events per second), enums
 * as their names, absent strings as "" and absent messages as null.
 */
const LOADER_OPTIONS: protoLoader.Options = {
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
};

/** An event refused as invalid (meshaudit.v1.Rejection): its index in the batch, and why. */
export interface Rejection {
  index: number;
  reason: string;
}

/** A batch's acknowledgement (meshaudit.v1.StreamEventsResponse), as the sidecar writes it and a client reads it. */
export interface BatchAck {
  /** The last sequence committed for the identifier: the resume point. */
  ackedSeq: number;
  /** The batch's first sequence (0 in the answer to the identifying request). */
  firstSeq: number;
  recorded: number;
  skipped: number;
  /** Events of the batch accepted earlier, not written again. */
  duplicates: number;
  rejected: Rejection[];
}

/** meshaudit.v1 messages with the names handlers see (camelCase: `firstSeq`, `expiresAt`). */
export interface Messages {
  readonly Event: protobuf.Type;
  readonly StreamEventsRequest: protobuf.Type;
  readonly RecordRequest: protobuf.Type;
  readonly Identifier: protobuf.Type;
  readonly StreamEventsResponse: protobuf.Type;
}

export class Contract {
  /** Every served file, parsed once, names as declared (`first_seq`), comments kept. */
  readonly root: protobuf.Root;
  private readonly nameOfPath: ReadonlyMap<string, string>;
  private camel: protobuf.Root | undefined;
  private definition: protoLoader.PackageDefinition | undefined;
  private described: readonly FileProto[] | undefined;
  private views: Messages | undefined;

  constructor() {
    const { root, nameOfPath } = parseServedFiles();
    this.root = root;
    this.nameOfPath = nameOfPath;
  }

  /** The message types of meshaudit.v1 as handlers and the pipeline see them (camelCase). */
  get messages(): Messages {
    if (this.views === undefined) {
      const type = (name: string): protobuf.Type => this.message(name);
      this.views = {
        Event: type('Event'),
        StreamEventsRequest: type('StreamEventsRequest'),
        RecordRequest: type('RecordRequest'),
        Identifier: type('Identifier'),
        StreamEventsResponse: type('StreamEventsResponse'),
      };
    }
    return this.views;
  }

  /** A meshaudit.v1 message by name, its fields named as handlers see them (camelCase). */
  message(name: string): protobuf.Type {
    return this.camelRoot().lookupType(`${PACKAGE}.${name}`);
  }

  /** proto-loader's package definition of meshaudit.v1 (LOADER_OPTIONS), for grpc-js servers and clients. */
  get packageDefinition(): protoLoader.PackageDefinition {
    this.definition ??= protoLoader.fromJSON(this.camelRoot().toJSON(), LOADER_OPTIONS);
    return this.definition;
  }

  /** Every served file described as protoc would, for server reflection. */
  get files(): readonly FileProto[] {
    this.described ??= describeFiles({ root: this.root, nameOfPath: this.nameOfPath });
    return this.described;
  }

  /** A proto-named message type of any served package (`google.rpc.BadRequest`). */
  type(fullName: string): protobuf.Type {
    return this.root.lookupType(fullName);
  }

  /** The number of `field` (as declared) in meshaudit.v1's `message`: what the wire scanner walks by. */
  fieldNumber(message: string, field: string): number {
    const found = this.root.lookupType(`${PACKAGE}.${message}`).fields[field];
    if (found === undefined) throw new Error(`the contract has no field ${PACKAGE}.${message}.${field}`);
    return found.id;
  }

  /** meshaudit.v1 alone, its field names in camelCase: what protobufjs makes with keepCase off. */
  private camelRoot(): protobuf.Root {
    if (this.camel === undefined) {
      const pkg = this.root.lookup(PACKAGE) as protobuf.Namespace;
      this.camel = protobuf.Root.fromJSON({ nested: { meshaudit: { nested: { v1: camelCased(pkg.toJSON()) } } } });
      this.camel.resolveAll();
    }
    return this.camel;
  }
}

let loaded: Contract | undefined;

/** The contract, parsed on first use and shared: the .proto files never change while the process runs. */
export function contract(): Contract {
  loaded ??= new Contract();
  return loaded;
}

/** A namespace's JSON with every field (and oneof member) renamed to camelCase, as protobufjs's parser would. */
function camelCased(json: protobuf.INamespace): protobuf.INamespace {
  const out: Record<string, unknown> = { ...json };
  const type = json as protobuf.IType & protobuf.INamespace;
  if (type.fields !== undefined) {
    out.fields = Object.fromEntries(Object.entries(type.fields).map(([name, f]) => [protobuf.util.camelCase(name), f]));
  }
  if (type.oneofs !== undefined) {
    out.oneofs = Object.fromEntries(
      Object.entries(type.oneofs).map(([name, o]) => [name, { ...o, oneof: o.oneof.map(protobuf.util.camelCase) }]),
    );
  }
  if (json.nested !== undefined) {
    out.nested = Object.fromEntries(
      Object.entries(json.nested).map(([name, n]) => [name, camelCased(n as protobuf.INamespace)]),
    );
  }
  return out as protobuf.INamespace;
}
