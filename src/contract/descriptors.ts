// The served files described as protoc would describe them, for server reflection.
//
// @grpc/reflection answers the protocol, but the FileDescriptorProtos that @grpc/proto-loader makes
// (protobufjs's Root#toDescriptor) are not what protoc would produce, and grpcurl (Go's protodesc)
// refuses them:
//   - no file lists its imports, so a field of type google.protobuf.Duration cannot be resolved:
//     "cannot resolve type: *.google.protobuf.Duration not found" (grpc-node#3034,
//     https://github.com/grpc/grpc-node/issues/3034, open against @grpc/reflection 1.0.4);
//   - a map field's entry message is named `Tags` instead of protoc's `TagsEntry`: "is an invalid map:
//     incorrect implicit map entry name" (https://github.com/fullstorydev/grpcurl/issues/519), which
//     breaks meshaudit.v1.Claims, grpc.health.v1.HealthListResponse and google.rpc.ErrorInfo;
//   - files are merged per package under invented names (`meshaudit_v1.proto`), type names are
//     relative, and json_name and comments are missing (https://github.com/fullstorydev/grpcurl/issues/464).
// So this module builds one faithful FileDescriptorProto per source file, as protoc would: real file
// names, every dependency listed, fully-qualified type names, protoc's map entry names and json_name,
// and the .proto comments as SourceCodeInfo (grpcurl `describe` prints them).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import type { ParsedFiles } from './files';

// The descriptor.proto shapes this module fills in (protobufjs's typings leave out json_name,
// proto3_optional and source_code_info, which its descriptor.json does have).
interface FieldProto {
  name: string;
  number: number;
  label: number;
  type: number;
  typeName?: string;
  jsonName: string;
  oneofIndex?: number;
  proto3Optional?: boolean;
}
export interface MessageProto {
  name: string;
  field: FieldProto[];
  nestedType: MessageProto[];
  enumType: EnumProto[];
  oneofDecl: Array<{ name: string }>;
  reservedRange: Array<{ start: number; end: number }>;
  reservedName: string[];
  options?: { mapEntry: true };
}
interface EnumProto {
  name: string;
  value: Array<{ name: string; number: number }>;
  reservedRange: Array<{ start: number; end: number }>;
  reservedName: string[];
  options?: { allowAlias: true };
}
interface ServiceProto {
  name: string;
  method: Array<{
    name: string;
    inputType: string;
    outputType: string;
    clientStreaming: boolean;
    serverStreaming: boolean;
  }>;
}
interface SourceLocation {
  path: number[];
  span: number[];
  leadingComments: string;
}
export interface FileProto {
  name: string;
  package: string;
  dependency: string[];
  messageType: MessageProto[];
  enumType: EnumProto[];
  service: ServiceProto[];
  sourceCodeInfo: { location: SourceLocation[] };
  syntax: 'proto3';
}

// Field numbers in descriptor.proto, the steps of a SourceCodeInfo path.
const FILE_MESSAGE_TYPE = 4;
const FILE_ENUM_TYPE = 5;
const FILE_SERVICE = 6;
const MESSAGE_FIELD = 2;
const MESSAGE_NESTED_TYPE = 3;
const MESSAGE_ENUM_TYPE = 4;
const ENUM_VALUE = 2;
const SERVICE_METHOD = 2;

// FieldDescriptorProto.Type and .Label.
const TYPE_MESSAGE = 11;
const TYPE_ENUM = 14;
const SCALAR_TYPES: Readonly<Record<string, number>> = {
  double: 1,
  float: 2,
  int64: 3,
  uint64: 4,
  int32: 5,
  fixed64: 6,
  fixed32: 7,
  bool: 8,
  string: 9,
  bytes: 12,
  uint32: 13,
  sfixed32: 15,
  sfixed64: 16,
  sint32: 17,
  sint64: 18,
};
const LABEL_OPTIONAL = 1;
const LABEL_REPEATED = 3;

/** protobufjs keeps reserved ranges inclusive; descriptor.proto's message ranges end exclusive. */
const MAX_FIELD_NUMBER = 536870911;

/** Describes each parsed file (and each well-known type it imports) as protoc would. */
export function describeFiles({ root, nameOfPath }: ParsedFiles): FileProto[] {
  // Well-known types (google/protobuf/*.proto) come bundled with protobufjs, without a filename.
  const bundledFileOf = new Map<string, string>();
  for (const file of root.files)
    if (!path.isAbsolute(file)) for (const fullName of bundledSymbols(file)) bundledFileOf.set(fullName, file);

  const fileOf = (obj: protobuf.ReflectionObject): string => {
    let top = obj;
    while (top.parent && (top.parent instanceof protobuf.Type || top.parent instanceof protobuf.Service))
      top = top.parent;
    const name = top.filename ? nameOfPath.get(top.filename) : bundledFileOf.get(top.fullName.slice(1));
    if (name === undefined) throw new Error(`describing the contract: can't tell which file declares ${top.fullName}`);
    return name;
  };

  const builders = new Map<string, FileBuilder>();
  const builderFor = (obj: protobuf.ReflectionObject): FileBuilder => {
    const name = fileOf(obj);
    let b = builders.get(name);
    if (!b) {
      b = new FileBuilder(name, obj.parent ? obj.parent.fullName.slice(1) : '', fileOf);
      builders.set(name, b);
    }
    return b;
  };
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const obj of ns.nestedArray) {
      if (obj instanceof protobuf.Type) builderFor(obj).addMessage(obj);
      else if (obj instanceof protobuf.Enum) builderFor(obj).addEnum(obj);
      else if (obj instanceof protobuf.Service) builderFor(obj).addService(obj);
      else if (obj instanceof protobuf.Field)
        throw new Error(`describing the contract: extension ${obj.fullName} is not supported`);
      else if (obj instanceof protobuf.Namespace) walk(obj);
    }
  };
  walk(root);

  for (const file of root.files) {
    // protobufjs bundles the well-known types, all proto3 but descriptor.proto.
    if (file.endsWith('google/protobuf/descriptor.proto'))
      throw new Error('describing the contract: google/protobuf/descriptor.proto (proto2) is not supported');
    if (!path.isAbsolute(file)) continue;
    const syntax = /^\s*syntax\s*=\s*["']([^"']+)["']/m.exec(fs.readFileSync(file, 'utf8'))?.[1];
    if (syntax !== 'proto3')
      throw new Error(
        `describing the contract: ${nameOfPath.get(file)} is ${syntax ?? 'proto2'}; only proto3 files are described`,
      );
  }
  return [...builders.values()].map((b) => b.build());
}

/** Fully-qualified names of the top-level declarations of a protobufjs bundled file. */
function bundledSymbols(file: string): string[] {
  const out: string[] = [];
  const walk = (json: protobuf.INamespace | undefined, prefix: string): void => {
    for (const [name, nested] of Object.entries(json?.nested ?? {})) {
      const fullName = prefix ? `${prefix}.${name}` : name;
      if ('fields' in nested || 'values' in nested || 'methods' in nested) out.push(fullName);
      else walk(nested as protobuf.INamespace, fullName);
    }
  };
  walk(protobuf.common.get(file) ?? undefined, '');
  return out;
}

/** One .proto file's descriptor, assembled from its top-level declarations. */
class FileBuilder {
  private readonly dependencies = new Set<string>();
  private readonly messages: MessageProto[] = [];
  private readonly enums: EnumProto[] = [];
  private readonly services: ServiceProto[] = [];
  private readonly locations: SourceLocation[] = [];

  constructor(
    private readonly name: string,
    private readonly pkg: string,
    private readonly fileOf: (obj: protobuf.ReflectionObject) => string,
  ) {}

  addMessage(type: protobuf.Type): void {
    this.messages.push(this.message(type, [FILE_MESSAGE_TYPE, this.messages.length]));
  }

  addEnum(e: protobuf.Enum): void {
    this.enums.push(this.enumType(e, [FILE_ENUM_TYPE, this.enums.length]));
  }

  addService(s: protobuf.Service): void {
    const at = [FILE_SERVICE, this.services.length];
    this.comment(at, s.comment);
    const method = s.methodsArray.map((m, i) => {
      this.comment([...at, SERVICE_METHOD, i], m.comment);
      return {
        name: m.name,
        inputType: this.reference(m.resolvedRequestType!),
        outputType: this.reference(m.resolvedResponseType!),
        clientStreaming: Boolean(m.requestStream),
        serverStreaming: Boolean(m.responseStream),
      };
    });
    this.services.push({ name: s.name, method });
  }

  build(): FileProto {
    return {
      name: this.name,
      package: this.pkg,
      dependency: [...this.dependencies].sort(),
      messageType: this.messages,
      enumType: this.enums,
      service: this.services,
      sourceCodeInfo: { location: this.locations },
      syntax: 'proto3',
    };
  }

  private message(type: protobuf.Type, at: number[]): MessageProto {
    this.comment(at, type.comment);
    // proto3 `optional` fields sit in synthetic oneofs, which protoc declares after the real ones.
    const synthetic = (o: protobuf.OneOf): boolean =>
      o.fieldsArray.length === 1 && Boolean(o.fieldsArray[0].options?.proto3_optional);
    const oneofs = [...type.oneofsArray.filter((o) => !synthetic(o)), ...type.oneofsArray.filter(synthetic)];
    const nestedType: MessageProto[] = [];
    const field = type.fieldsArray.map((f, i): FieldProto => {
      this.comment([...at, MESSAGE_FIELD, i], f.comment);
      const proto: FieldProto = {
        name: f.name,
        number: f.id,
        label: f.repeated || f.map ? LABEL_REPEATED : LABEL_OPTIONAL,
        type: 0,
        jsonName: jsonName(f.name),
      };
      if (f instanceof protobuf.MapField) {
        // protoc's implicit entry message: nested, named <FieldName>Entry, fields key = 1 and value = 2.
        const entry = mapEntryName(f.name);
        nestedType.push({
          name: entry,
          field: [
            { name: 'key', number: 1, label: LABEL_OPTIONAL, type: SCALAR_TYPES[f.keyType], jsonName: 'key' },
            { name: 'value', number: 2, label: LABEL_OPTIONAL, ...this.fieldType(f), jsonName: 'value' },
          ],
          nestedType: [],
          enumType: [],
          oneofDecl: [],
          reservedRange: [],
          reservedName: [],
          options: { mapEntry: true },
        });
        Object.assign(proto, { type: TYPE_MESSAGE, typeName: `${type.fullName}.${entry}` });
      } else {
        Object.assign(proto, this.fieldType(f));
      }
      if (f.partOf) proto.oneofIndex = oneofs.indexOf(f.partOf);
      if (f.options?.proto3_optional) proto.proto3Optional = true;
      return proto;
    });
    const enumType: EnumProto[] = [];
    for (const nested of type.nestedArray) {
      if (nested instanceof protobuf.Type)
        nestedType.push(this.message(nested, [...at, MESSAGE_NESTED_TYPE, nestedType.length]));
      else if (nested instanceof protobuf.Enum)
        enumType.push(this.enumType(nested, [...at, MESSAGE_ENUM_TYPE, enumType.length]));
      else throw new Error(`describing the contract: ${nested.fullName} (nested in ${type.fullName}) is not supported`);
    }
    const reserved = type.reserved ?? [];
    return {
      name: type.name,
      field,
      nestedType,
      enumType,
      oneofDecl: oneofs.map((o) => ({ name: o.name })),
      reservedRange: reserved
        .filter((r): r is number[] => Array.isArray(r))
        .map(([start, end]) => ({ start, end: Math.min(end, MAX_FIELD_NUMBER) + 1 })),
      reservedName: reserved.filter((r): r is string => typeof r === 'string'),
    };
  }

  private enumType(e: protobuf.Enum, at: number[]): EnumProto {
    this.comment(at, e.comment);
    const value = Object.entries(e.values).map(([name, number], i) => {
      this.comment([...at, ENUM_VALUE, i], e.comments[name]);
      return { name, number };
    });
    const reserved = e.reserved ?? [];
    return {
      name: e.name,
      value,
      // Enum reserved ranges are inclusive in descriptor.proto too.
      reservedRange: reserved.filter((r): r is number[] => Array.isArray(r)).map(([start, end]) => ({ start, end })),
      reservedName: reserved.filter((r): r is string => typeof r === 'string'),
      ...(e.options?.allow_alias ? { options: { allowAlias: true as const } } : {}),
    };
  }

  /** The type (and for messages and enums the fully-qualified name) of a field's value. */
  private fieldType(f: protobuf.Field): { type: number; typeName?: string } {
    const resolved = f.resolve().resolvedType;
    if (resolved instanceof protobuf.Type) return { type: TYPE_MESSAGE, typeName: this.reference(resolved) };
    if (resolved instanceof protobuf.Enum) return { type: TYPE_ENUM, typeName: this.reference(resolved) };
    const scalar = SCALAR_TYPES[f.type];
    if (scalar === undefined) throw new Error(`describing the contract: ${f.fullName} has unsupported type ${f.type}`);
    return { type: scalar };
  }

  /** A fully-qualified reference, whose file becomes a dependency of this one (the #3034 fix). */
  private reference(target: protobuf.Type | protobuf.Enum): string {
    const file = this.fileOf(target);
    if (file !== this.name) this.dependencies.add(file);
    return target.fullName;
  }

  private comment(at: number[], text: string | null | undefined): void {
    if (!text) return;
    // protoc keeps what follows `//` on each line, leading space included; protobufjs strips it.
    const leadingComments = `${text
      .split('\n')
      .map((l) => (l === '' ? '' : ` ${l}`))
      .join('\n')}\n`;
    // protobufjs does not keep positions; any 3-element span is valid, and clients only print comments.
    this.locations.push({ path: at, span: [0, 0, 0], leadingComments });
  }
}

/** protoc's default json_name: lowerCamelCase, an underscore capitalising the next letter. */
export function jsonName(field: string): string {
  return field.replace(/_+([a-zA-Z0-9]?)/g, (_m, c: string) => c.toUpperCase());
}

/** protoc's implicit map entry name: `tags` -> `TagsEntry`, `field_map` -> `FieldMapEntry`. */
function mapEntryName(field: string): string {
  return `${field
    .split('_')
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('')}Entry`;
}
