// gRPC server reflection (v1 and v1alpha), so that an operator's `grpcurl -plaintext HOST:PORT list`,
// `describe` and `-d` calls work with no .proto file at hand. @grpc/reflection answers the protocol;
// it is handed only the contract's own descriptors, made as protoc would make them
// (src/contract/descriptors.ts says why proto-loader's are not enough). It still indexes the symbols
// and answers every file request with the file and its transitive dependencies; test/server/reflection.test.ts
// checks on the wire that every served file lists each of its imports exactly once and that every
// import is served.
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import * as descriptor from 'protobufjs/ext/descriptor';
import { contract, type FileProto, type MessageProto } from '../contract';
import type { Statuses } from './status';

/**
 * Registers grpc.reflection.v1 and v1alpha ServerReflection for every service the sidecar serves; the
 * messages of its error replies are bounded by `statuses` as statuses are.
 */
export function addReflection(server: grpc.Server, statuses: Statuses): void {
  const files = contract().files;
  const service = new ReflectionService(reflectionPackageDefinition(files));
  answerExtensionNumbersLikeGrpcGo(service, messageNames(files));
  boundErrorMessages(service, statuses);
  service.addToServer(server);
}

/** What @grpc/reflection keeps per protocol version; the methods are public, the fields holding them are not. */
interface ReflectionImplementation {
  allExtensionNumbersOfType(symbol: string): { baseTypeName?: string; extensionNumber?: number[] };
  handleServerReflectionRequest(message: unknown): { errorResponse?: { errorMessage?: string } };
}

/** The v1 and v1alpha implementations of `service`; start-up stops, naming why, if they are not there. */
function implementations(service: ReflectionService): ReflectionImplementation[] {
  // The implementations sit in fields the typings call private: package.json pins @grpc/reflection, and
  // a version that renames them stops start-up here, naming the reason, rather than serving grpcurl badly.
  const versions = service as unknown as Partial<Record<'v1' | 'v1Alpha', ReflectionImplementation>>;
  const found = [versions.v1, versions.v1Alpha];
  for (const impl of found) {
    if (
      typeof impl?.allExtensionNumbersOfType !== 'function' ||
      typeof impl.handleServerReflectionRequest !== 'function'
    ) {
      throw new Error('server reflection: @grpc/reflection no longer has v1 and v1Alpha implementations to patch');
    }
  }
  return found as ReflectionImplementation[];
}

/**
 * An error reply quotes what was asked for (`Symbol not found: <symbol>`), up to a whole request's size:
 * its message is cut as a status's is.
 */
function boundErrorMessages(service: ReflectionService, statuses: Statuses): void {
  for (const impl of implementations(service)) {
    const own = impl.handleServerReflectionRequest.bind(impl);
    impl.handleServerReflectionRequest = (message) => {
      const response = own(message);
      const error = response.errorResponse;
      if (error?.errorMessage !== undefined) error.errorMessage = statuses.message(error.errorMessage);
      return response;
    };
  }
}

/**
 * @grpc/reflection 1.0.4 answers `all_extension_numbers_of_type` with NOT_FOUND for a message that has no
 * extensions; grpc-go (and connect's grpcreflect since #52) answers an empty list, and NOT_FOUND only for a
 * type it does not know. grpcurl 1.8.7 asks that question before it decodes a google.rpc.BadRequest detail
 * and, on NOT_FOUND, prints `"@error": "google.rpc.BadRequest is not recognized"` instead of the field
 * violations. So a known message without extensions gets an empty list here.
 */
function answerExtensionNumbersLikeGrpcGo(service: ReflectionService, messages: ReadonlySet<string>): void {
  for (const impl of implementations(service)) {
    const own = impl.allExtensionNumbersOfType.bind(impl);
    impl.allExtensionNumbersOfType = (symbol) => {
      try {
        return own(symbol);
      } catch (err) {
        const notFound = (err as { statusCode?: number }).statusCode === grpc.status.NOT_FOUND;
        if (!notFound || !messages.has(symbol)) throw err;
        return { baseTypeName: symbol, extensionNumber: [] };
      }
    };
  }
}

/** The fully-qualified name of every message, nested ones included, of `files`. */
function messageNames(files: readonly FileProto[]): Set<string> {
  const names = new Set<string>();
  const add = (prefix: string, messages: readonly MessageProto[]): void => {
    for (const m of messages) {
      const name = prefix === '' ? m.name : `${prefix}.${m.name}`;
      names.add(name);
      add(name, m.nestedType);
    }
  };
  for (const f of files) add(f.package, f.messageType);
  return names;
}

/** Only what @grpc/reflection reads: its constructor takes a proto-loader PackageDefinition. */
type ReflectionPackage = ConstructorParameters<typeof ReflectionService>[0];

/**
 * A package definition with one entry per top-level message, as @grpc/proto-loader makes them, whose
 * `fileDescriptorProtos` are the faithful descriptors of every served file.
 */
function reflectionPackageDefinition(files: readonly FileProto[]): ReflectionPackage {
  const encoded = files.map((f) =>
    Buffer.from(descriptor.FileDescriptorProto.encode(descriptor.FileDescriptorProto.fromObject(f)).finish()),
  );
  const definition: ReflectionPackage = {};
  for (const file of files) {
    for (const message of file.messageType ?? []) {
      const fullName = [file.package, message.name].filter(Boolean).join('.');
      definition[fullName] = {
        format: 'Protocol Buffer 3 DescriptorProto',
        type: message,
        fileDescriptorProtos: encoded,
      };
    }
  }
  return definition;
}
