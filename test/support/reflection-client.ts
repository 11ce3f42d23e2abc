// A reflection-based gRPC client that works like grpcurl, so the tests see what an operator sees:
// everything it knows about the server's services and messages comes from the server's reflection
// service, never from a .proto file. It links the descriptors it receives as strictly as grpcurl (Go's
// protodesc) does: a dependency that is not served, a type that is not declared in the file itself or in
// one it imports, or a map entry not named as protoc names it fails `describe` with grpcurl's words.
// Requests and replies are JSON in the protobuf JSON mapping, as with `grpcurl -d`: lowerCamelCase
// names (proto names accepted too), 64-bit integers as strings, enums by name, default values left out.
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import * as descriptor from 'protobufjs/ext/descriptor';

export type ReflectionVersion = 'v1' | 'v1alpha';
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

// ---- descriptor.proto, as decoded (only what the client reads) ----

export interface FieldDesc {
  name: string;
  number: number;
  label?: number;
  type?: number;
  typeName?: string;
  jsonName?: string;
  oneofIndex?: number;
  proto3Optional?: boolean;
}
export interface MessageDesc {
  name: string;
  field: FieldDesc[];
  nestedType: MessageDesc[];
  enumType: EnumDesc[];
  oneofDecl: Array<{ name: string }>;
  options?: { mapEntry?: boolean };
}
export interface EnumDesc {
  name: string;
  value: Array<{ name: string; number: number }>;
}
export interface MethodDesc {
  name: string;
  inputType: string;
  outputType: string;
  clientStreaming?: boolean;
  serverStreaming?: boolean;
}
export interface ServiceDesc {
  name: string;
  method: MethodDesc[];
}
export interface FileDesc {
  name: string;
  package?: string;
  dependency: string[];
  publicDependency: number[];
  messageType: MessageDesc[];
  enumType: EnumDesc[];
  service: ServiceDesc[];
  extension: FieldDesc[];
  sourceCodeInfo?: { location: Array<{ path: number[]; leadingComments?: string }> };
  syntax?: string;
}

const TYPE_GROUP = 10;
const TYPE_MESSAGE = 11;
const TYPE_ENUM = 14;
const LABEL_REPEATED = 3;
const SCALARS: Readonly<Record<number, string>> = {
  1: 'double',
  2: 'float',
  3: 'int64',
  4: 'uint64',
  5: 'int32',
  6: 'fixed64',
  7: 'fixed32',
  8: 'bool',
  9: 'string',
  12: 'bytes',
  13: 'uint32',
  15: 'sfixed32',
  16: 'sfixed64',
  17: 'sint32',
  18: 'sint64',
};
const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

/** A reflection answer that is an error (errorResponse), with its gRPC code. */
export class ReflectionError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

/** What `describe` found: the symbol, resolved in a Root linked from the server's descriptors only. */
export interface Described {
  symbol: string;
  /** The service, method, message or enum. */
  object: protobuf.ReflectionObject;
  /** The name of the file declaring it, as the server named it. */
  file: string;
  /** That file and its transitive dependencies: every file linked. */
  files: string[];
  /** Files that the fileContainingSymbol reply left out and that had to be asked for by name. */
  fetchedByFilename: string[];
  /** The leading comment, from the file's SourceCodeInfo (as grpcurl prints it). */
  comment: string | null;
  root: protobuf.Root;
}

/** One open bidi stream, driven message by message in JSON. */
export interface JsonStream {
  send(message: JsonObject): void;
  next(): Promise<JsonObject>;
  /** The replies received and not yet taken by next(). */
  drain(): JsonObject[];
  end(): void;
  /** null once the server ends the call with OK; the ServiceError otherwise. */
  status: Promise<grpc.ServiceError | null>;
}

/** The decoded google.rpc.Status of an error, details rendered as grpcurl prints them. */
export interface ErrorDetails {
  code: number;
  message: string;
  details: JsonObject[];
}

/** grpc-reflection's own proto ships in @grpc/reflection: it is the one proto a reflection client needs. */
function reflectionProtoDir(): string {
  return path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
}

export class ReflectionClient {
  private readonly address: string;
  private readonly channel: grpc.Client;
  private readonly reflection: ReflectionStream;

  constructor(
    port: number,
    readonly version: ReflectionVersion = 'v1',
  ) {
    this.address = `127.0.0.1:${port}`;
    this.channel = new grpc.Client(this.address, grpc.credentials.createInsecure());
    this.reflection = new ReflectionStream(this.address, version);
  }

  close(): void {
    this.reflection.close();
    this.channel.close();
  }

  /** The extension field numbers of a message type (an empty list for one without extensions). */
  async allExtensionNumbersOfType(symbol: string): Promise<number[]> {
    const reply = await this.reflection.ask({ allExtensionNumbersOfType: symbol });
    if (reply.errorResponse) throw new ReflectionError(reply.errorResponse.errorMessage, reply.errorResponse.errorCode);
    return reply.allExtensionNumbersResponse?.extensionNumber ?? [];
  }

  /** `grpcurl list`: the services the server names, sorted. */
  async listServices(): Promise<string[]> {
    const reply = await this.reflection.ask({ listServices: '*' });
    return (reply.listServicesResponse?.service ?? []).map((s) => s.name).sort();
  }

  /** The raw fileContainingSymbol answer, decoded. */
  async fileContainingSymbol(symbol: string): Promise<FileDesc[]> {
    return this.files(await this.reflection.ask({ fileContainingSymbol: symbol }));
  }

  /** The raw fileByFilename answer, decoded. */
  async fileByFilename(name: string): Promise<FileDesc[]> {
    return this.files(await this.reflection.ask({ fileByFilename: name }));
  }

  /** `grpcurl describe SYMBOL`: the file containing the symbol and all its dependencies, linked. */
  async describe(symbol: string): Promise<Described> {
    const files = new Map<string, FileDesc>();
    for (const f of await this.fileContainingSymbol(symbol)) if (!files.has(f.name)) files.set(f.name, f);
    const declaring = [...files.values()].find((f) => declarations(f).has(symbol));
    if (!declaring) throw new Error(`Symbol not found: ${symbol}: no file of the reply declares it`);
    // Like grpcurl: follow every import, asking by name for any the reply left out.
    const fetchedByFilename: string[] = [];
    const closure: string[] = [];
    const visit = async (name: string, importedBy: string | null): Promise<void> => {
      if (closure.includes(name)) return;
      if (!files.has(name)) {
        const reply = await this.fileByFilename(name).catch((err: Error) => {
          throw new Error(
            `Failed to resolve symbol "${symbol}": File not found: ${name} (imported by ${importedBy}): ${err.message}`,
          );
        });
        const found = reply.find((f) => f.name === name);
        if (!found) throw new Error(`Failed to resolve symbol "${symbol}": File not found: ${name}`);
        files.set(name, found);
        fetchedByFilename.push(name);
      }
      closure.push(name);
      for (const dep of files.get(name)!.dependency) await visit(dep, name);
    };
    await visit(declaring.name, null);
    const linked = closure.map((n) => files.get(n)!);
    const problems = link(linked, [...files.values()]);
    if (problems.length > 0) throw new Error(`Failed to resolve symbol "${symbol}": proto: ${problems.join('; ')}`);
    const root = buildRoot(linked);
    const object = root.lookup(symbol);
    if (!object) throw new Error(`Symbol not found: ${symbol}`);
    return {
      symbol,
      object,
      file: declaring.name,
      files: closure,
      fetchedByFilename,
      comment: object.comment ?? null,
      root,
    };
  }

  /** A unary call in JSON, like `grpcurl -d '{...}' HOST SERVICE/METHOD`; rejects with the ServiceError. */
  async call(
    service: string,
    method: string,
    request: JsonObject,
    metadata = new grpc.Metadata(),
  ): Promise<JsonObject> {
    const m = await this.method(service, method);
    if (m.requestStream || m.responseStream) throw new Error(`${service}/${method} streams: use openStream or stream`);
    const requestType = m.resolvedRequestType!;
    const responseType = m.resolvedResponseType!;
    const body = Buffer.from(requestType.encode(requestType.fromObject(fromJson(requestType, request, ''))).finish());
    const reply = await new Promise<Buffer>((resolve, reject) =>
      this.channel.makeUnaryRequest(
        `/${service}/${method}`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        body,
        metadata,
        (err, res) => (err ? reject(err) : resolve(res!)),
      ),
    );
    return toJson(responseType, responseType.decode(reply)) as JsonObject;
  }

  /** A bidi stream in JSON, driven message by message. */
  async openStream(service: string, method: string): Promise<JsonStream> {
    const m = await this.method(service, method);
    const requestType = m.resolvedRequestType!;
    const responseType = m.resolvedResponseType!;
    const call = this.channel.makeBidiStreamRequest(
      `/${service}/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    const queue: JsonObject[] = [];
    const waiters: Array<(m: JsonObject) => void> = [];
    call.on('data', (b: Buffer) => {
      const json = toJson(responseType, responseType.decode(b)) as JsonObject;
      if (waiters.length > 0) waiters.shift()!(json);
      else queue.push(json);
    });
    const status = new Promise<grpc.ServiceError | null>((resolve) => {
      call.on('error', (e) => resolve(e as grpc.ServiceError));
      call.on('status', (s: grpc.StatusObject) => s.code === grpc.status.OK && resolve(null));
    });
    return {
      send: (message) =>
        call.write(
          Buffer.from(requestType.encode(requestType.fromObject(fromJson(requestType, message, ''))).finish()),
        ),
      next: () => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r))),
      drain: () => queue.splice(0),
      end: () => call.end(),
      status,
    };
  }

  /** Like `grpcurl -d @` on a bidi method: sends every message, half-closes, collects every reply. */
  async stream(
    service: string,
    method: string,
    requests: readonly JsonObject[],
  ): Promise<{ replies: JsonObject[]; error: grpc.ServiceError | null }> {
    const s = await this.openStream(service, method);
    for (const r of requests) s.send(r);
    s.end();
    const error = await s.status; // every reply arrives before the status
    return { replies: s.drain(), error };
  }

  /** The google.rpc.Status of an error, each detail decoded with types obtained by reflection. */
  async decodeErrorDetails(err: grpc.ServiceError): Promise<ErrorDetails | null> {
    const raw = err.metadata?.get('grpc-status-details-bin')[0];
    if (!(raw instanceof Buffer)) return null;
    const statusType = await this.messageType('google.rpc.Status');
    const status = statusType.decode(raw) as unknown as {
      code: number;
      message: string;
      details: Array<{ type_url: string; value: Uint8Array }>;
    };
    const details: JsonObject[] = [];
    for (const any of status.details) {
      const name = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
      // grpcurl 1.8.7 asks for the type's extensions before it decodes a detail, and prints the raw
      // bytes as "not recognized" when that question fails: so does this client.
      await this.allExtensionNumbersOfType(name);
      const type = await this.messageType(name);
      details.push({ '@type': any.type_url, ...(toJson(type, type.decode(any.value)) as JsonObject) });
    }
    return { code: status.code, message: status.message, details };
  }

  private async messageType(symbol: string): Promise<protobuf.Type> {
    const { object } = await this.describe(symbol);
    if (!(object instanceof protobuf.Type)) throw new Error(`${symbol} is not a message type`);
    return object;
  }

  private async method(service: string, method: string): Promise<protobuf.Method> {
    const { object } = await this.describe(service);
    if (!(object instanceof protobuf.Service)) throw new Error(`${service} is not a service`);
    const m = object.methods[method];
    if (!m) throw new Error(`service "${service}" does not include a method named "${method}"`);
    m.resolve();
    return m;
  }

  private files(reply: ReflectionReply): FileDesc[] {
    if (reply.errorResponse) throw new ReflectionError(reply.errorResponse.errorMessage, reply.errorResponse.errorCode);
    return (reply.fileDescriptorResponse?.fileDescriptorProto ?? []).map(
      (b) =>
        descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(b), {
          arrays: true,
          longs: Number,
        }) as FileDesc,
    );
  }
}

// ---- The reflection stream: one ServerReflectionInfo call, answers in request order ----

interface ReflectionReply {
  listServicesResponse?: { service: Array<{ name: string }> };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
  allExtensionNumbersResponse?: { baseTypeName: string; extensionNumber: number[] };
}

class ReflectionStream {
  private readonly client: grpc.Client;
  private call: grpc.ClientDuplexStream<object, ReflectionReply> | null = null;
  private readonly pending: Array<{ resolve: (r: ReflectionReply) => void; reject: (e: Error) => void }> = [];

  constructor(address: string, version: ReflectionVersion) {
    const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
      includeDirs: [reflectionProtoDir()],
      keepCase: false,
      longs: Number,
      enums: String,
      defaults: false,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      grpc: { reflection: Record<ReflectionVersion, { ServerReflection: grpc.ServiceClientConstructor }> };
    };
    this.client = new pkg.grpc.reflection[version].ServerReflection(address, grpc.credentials.createInsecure());
  }

  ask(request: object): Promise<ReflectionReply> {
    const call = this.open();
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      call.write({ host: '', ...request });
    });
  }

  close(): void {
    this.call?.end();
    this.client.close();
  }

  private open(): grpc.ClientDuplexStream<object, ReflectionReply> {
    if (this.call) return this.call;
    const call = (
      this.client as unknown as Record<string, () => grpc.ClientDuplexStream<object, ReflectionReply>>
    ).ServerReflectionInfo();
    call.on('data', (reply: ReflectionReply) => this.pending.shift()?.resolve(reply));
    call.on('error', (err: Error) => {
      this.call = null;
      for (const p of this.pending.splice(0)) p.reject(err);
    });
    this.call = call;
    return call;
  }
}

// ---- Linking, as Go's protodesc does for grpcurl ----

interface Declaration {
  kind: 'message' | 'enum' | 'service';
  file: string;
  message?: MessageDesc;
}

/** Every fully-qualified name (no leading dot) a file declares. */
function declarations(file: FileDesc): Map<string, Declaration> {
  const out = new Map<string, Declaration>();
  const pkg = file.package ?? '';
  const qualify = (scope: string, name: string): string => (scope ? `${scope}.${name}` : name);
  const message = (scope: string, m: MessageDesc): void => {
    const fullName = qualify(scope, m.name);
    out.set(fullName, { kind: 'message', file: file.name, message: m });
    for (const n of m.nestedType) message(fullName, n);
    for (const e of m.enumType) out.set(qualify(fullName, e.name), { kind: 'enum', file: file.name });
  };
  for (const m of file.messageType) message(pkg, m);
  for (const e of file.enumType) out.set(qualify(pkg, e.name), { kind: 'enum', file: file.name });
  for (const s of file.service) {
    out.set(qualify(pkg, s.name), { kind: 'service', file: file.name });
    for (const m of s.method) out.set(qualify(qualify(pkg, s.name), m.name), { kind: 'service', file: file.name });
  }
  return out;
}

/** protoc's implicit map entry name: `tags` -> `TagsEntry`. */
function mapEntryName(field: string): string {
  return `${field
    .split('_')
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('')}Entry`;
}

function parentOf(fullName: string): string {
  const i = fullName.lastIndexOf('.');
  return i < 0 ? '' : fullName.slice(0, i);
}

/**
 * Checks every file as protodesc.NewFile does, and writes into each reference its fully-qualified form.
 * `received` is every file the server sent, imported or not (it names what a file forgot to import).
 * Returns every problem found (protodesc stops at the first; all of them say more in a test failure).
 */
function link(files: readonly FileDesc[], received: readonly FileDesc[]): string[] {
  const problems: string[] = [];
  const byName = new Map(files.map((f) => [f.name, f]));
  const everywhere = new Map<string, Declaration>();
  for (const f of received) for (const [n, d] of declarations(f)) everywhere.set(n, d);

  for (const file of files) {
    // What a file may use: its own declarations, its imports', and their public imports'.
    const visible = new Map(declarations(file));
    const imports = new Set<string>();
    const addImport = (name: string): void => {
      if (imports.has(name)) return;
      imports.add(name);
      const dep = byName.get(name)!;
      for (const [n, d] of declarations(dep)) visible.set(n, d);
      for (const i of dep.publicDependency) addImport(dep.dependency[i]);
    };
    const seen = new Set<string>();
    for (const dep of file.dependency) {
      if (seen.has(dep)) problems.push(`file "${file.name}": already imported "${dep}"`);
      seen.add(dep);
      addImport(dep);
    }

    // protodesc's findDescriptor: a relative name is tried in the scope, then in each enclosing one.
    const resolve = (what: string, scope: string, ref: string): [string, Declaration] | null => {
      let s = ref.startsWith('.') ? '' : scope;
      const name = ref.startsWith('.') ? ref.slice(1) : ref;
      let notImported: string | null = null;
      for (;;) {
        const candidate = s ? `${s}.${name}` : name;
        const local = visible.get(candidate);
        if (local) return [candidate, local];
        if (everywhere.has(candidate)) notImported ??= candidate;
        if (!s) break;
        s = parentOf(s);
      }
      problems.push(
        notImported
          ? `${what} cannot resolve type: resolved "${notImported}", but "${everywhere.get(notImported)!.file}" is not imported`
          : `${what} cannot resolve type: "${ref.startsWith('.') ? ref.slice(1) : `*.${ref}`}" not found`,
      );
      return null;
    };

    const checkMessage = (scope: string, m: MessageDesc): void => {
      const fullName = scope ? `${scope}.${m.name}` : m.name;
      for (const f of m.field) {
        if (f.type === TYPE_GROUP)
          problems.push(`message field "${fullName}.${f.name}": groups are not supported by this client`);
        if (f.type !== TYPE_MESSAGE && f.type !== TYPE_ENUM && f.typeName === undefined) continue;
        const what = `message field "${fullName}.${f.name}"`;
        const found = resolve(what, fullName, f.typeName ?? '');
        if (!found) continue;
        const [target, decl] = found;
        f.typeName = `.${target}`;
        f.type ??= decl.kind === 'enum' ? TYPE_ENUM : TYPE_MESSAGE;
        if ((f.type === TYPE_ENUM) !== (decl.kind === 'enum') || decl.kind === 'service') {
          problems.push(`${what} refers to ${decl.kind} "${target}" as the wrong kind`);
        }
        if (decl.message?.options?.mapEntry) {
          if (parentOf(target) !== fullName)
            problems.push(`${what} is an invalid map: message and field must be declared in the same scope`);
          else if (decl.message.name !== mapEntryName(f.name))
            problems.push(`${what} is an invalid map: incorrect implicit map entry name`);
          else if (f.label !== LABEL_REPEATED) problems.push(`${what} is an invalid map: field must be repeated`);
        }
      }
      for (const n of m.nestedType) checkMessage(fullName, n);
    };
    for (const m of file.messageType) checkMessage(file.package ?? '', m);
    for (const s of file.service) {
      const sName = file.package ? `${file.package}.${s.name}` : s.name;
      for (const m of s.method) {
        for (const key of ['inputType', 'outputType'] as const) {
          const found = resolve(`method "${sName}.${m.name}"`, sName, m[key]);
          if (found && found[1].kind !== 'message')
            problems.push(`method "${sName}.${m.name}": ${key} "${found[0]}" is not a message`);
          if (found) m[key] = `.${found[0]}`;
        }
      }
    }
    if (file.extension.length > 0) problems.push(`file "${file.name}": extensions are not supported by this client`);
  }
  return problems;
}

// ---- A protobufjs Root from linked descriptors ----

/** The comments of a file's SourceCodeInfo, by path, in protobufjs's form (without protoc's leading space). */
function commentsOf(file: FileDesc): Map<string, string> {
  const out = new Map<string, string>();
  for (const loc of file.sourceCodeInfo?.location ?? []) {
    if (!loc.leadingComments) continue;
    const text = loc.leadingComments
      .replace(/\n$/, '')
      .split('\n')
      .map((l) => (l.startsWith(' ') ? l.slice(1) : l))
      .join('\n');
    out.set(loc.path.join('.'), text);
  }
  return out;
}

function buildRoot(files: readonly FileDesc[]): protobuf.Root {
  const rootJson: protobuf.INamespace = { nested: {} };
  for (const file of files) {
    const comments = commentsOf(file);
    const comment = (at: number[]): { comment?: string } => {
      const c = comments.get(at.join('.'));
      return c === undefined ? {} : { comment: c };
    };
    const pkg = file.package ?? '';
    let ns = rootJson;
    for (const part of pkg.split('.').filter(Boolean)) {
      const nested = ns.nested ?? {};
      ns.nested = nested;
      nested[part] ??= { nested: {} };
      ns = nested[part] as protobuf.INamespace;
    }
    const nestedOfNs = ns.nested ?? {};
    ns.nested = nestedOfNs;
    const enumJson = (e: EnumDesc, at: number[]): protobuf.AnyNestedObject => {
      const valueComments: Record<string, string> = {};
      e.value.forEach((v, i) => {
        const c = comments.get([...at, 2, i].join('.'));
        if (c !== undefined) valueComments[v.name] = c;
      });
      return {
        values: Object.fromEntries(e.value.map((v) => [v.name, v.number])),
        comments: valueComments,
        ...comment(at),
      } as protobuf.AnyNestedObject;
    };
    const messageJson = (m: MessageDesc, at: number[], scope: string): protobuf.AnyNestedObject => {
      const fullName = scope ? `${scope}.${m.name}` : m.name;
      // Linking checked that a map entry sits right inside its message, under protoc's name.
      const entries = new Map(
        m.nestedType.filter((n) => n.options?.mapEntry).map((n) => [`.${fullName}.${n.name}`, n]),
      );
      const fields: Record<string, protobuf.IField & { keyType?: string; comment?: string }> = {};
      m.field.forEach((f, i) => {
        const options: Record<string, unknown> = { json_name: f.jsonName ?? jsonNameOf(f.name) };
        if (f.proto3Optional) options.proto3_optional = true;
        const entry = f.typeName === undefined ? undefined : entries.get(f.typeName);
        if (entry) {
          const [key, value] = entry.field;
          fields[f.name] = {
            id: f.number,
            keyType: SCALARS[key.type!],
            type: value.typeName ?? SCALARS[value.type!],
            options,
            ...comment([...at, 2, i]),
          };
        } else {
          const rule = f.label === LABEL_REPEATED ? { rule: 'repeated' } : {};
          fields[f.name] = {
            id: f.number,
            type: f.typeName ?? SCALARS[f.type!],
            ...rule,
            options,
            ...comment([...at, 2, i]),
          };
        }
      });
      const nested: Record<string, protobuf.AnyNestedObject> = {};
      m.nestedType.forEach((n, i) => {
        if (!n.options?.mapEntry) nested[n.name] = messageJson(n, [...at, 3, i], fullName);
      });
      m.enumType.forEach((e, i) => {
        nested[e.name] = enumJson(e, [...at, 4, i]);
      });
      const oneofs: Record<string, protobuf.IOneOf> = {};
      m.oneofDecl.forEach((o, i) => {
        oneofs[o.name] = { oneof: m.field.filter((f) => f.oneofIndex === i).map((f) => f.name) };
      });
      return { fields, nested, oneofs, ...comment(at) } as protobuf.AnyNestedObject;
    };
    const edition = file.syntax === 'proto3' ? 'proto3' : 'proto2';
    file.messageType.forEach((m, i) => {
      nestedOfNs[m.name] = { ...messageJson(m, [4, i], pkg), edition } as unknown as protobuf.AnyNestedObject;
    });
    file.enumType.forEach((e, i) => {
      nestedOfNs[e.name] = enumJson(e, [5, i]);
    });
    file.service.forEach((s, i) => {
      const methods: Record<string, protobuf.IMethod> = {};
      s.method.forEach((m, j) => {
        methods[m.name] = {
          requestType: m.inputType,
          responseType: m.outputType,
          requestStream: Boolean(m.clientStreaming),
          responseStream: Boolean(m.serverStreaming),
          ...(comment([6, i, 2, j]) as { comment: string }),
        };
      });
      nestedOfNs[s.name] = { methods, ...comment([6, i]) } as protobuf.AnyNestedObject;
    });
  }
  const root = protobuf.Root.fromJSON(rootJson);
  root.resolveAll();
  return root;
}

// ---- The protobuf JSON mapping, both ways ----

function jsonNameOf(name: string): string {
  return name.replace(/_+([a-zA-Z0-9]?)/g, (_m, c: string) => c.toUpperCase());
}

function fieldJsonName(f: protobuf.Field): string {
  return (f.options?.json_name as string | undefined) ?? jsonNameOf(f.name);
}

/** JSON (protobuf mapping) -> the plain object protobufjs's fromObject takes, checked as protojson does. */
function fromJson(type: protobuf.Type, json: Json, at: string): Record<string, unknown> {
  if (type.fullName === '.google.protobuf.Duration' && typeof json === 'string') return parseDuration(json, at);
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new Error(`${at || type.name}: want a JSON object for ${type.fullName.slice(1)}`);
  const byJsonName = new Map(type.fieldsArray.map((f) => [fieldJsonName(f), f]));
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const f = byJsonName.get(key) ?? type.fields[key];
    if (!f) throw new Error(`message type ${type.fullName.slice(1)} has no known field named ${key}`);
    if (value === null) continue; // null is the default value in the JSON mapping
    const path = at ? `${at}.${key}` : key;
    f.resolve();
    if (f.map) {
      if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${path}: want a JSON object for a map`);
      out[f.name] = Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, fromJsonValue(f, v, `${path}["${k}"]`)]),
      );
    } else if (f.repeated) {
      if (!Array.isArray(value)) throw new Error(`${path}: want a JSON array`);
      out[f.name] = value.map((v, i) => fromJsonValue(f, v, `${path}[${i}]`));
    } else {
      out[f.name] = fromJsonValue(f, value, path);
    }
  }
  return out;
}

function fromJsonValue(f: protobuf.Field, value: Json, at: string): unknown {
  const t = f.resolvedType;
  if (t instanceof protobuf.Type) return fromJson(t, value, at);
  if (t instanceof protobuf.Enum) {
    if (typeof value === 'string' && value in t.values) return value;
    if (typeof value === 'number' && Number.isInteger(value)) return value;
    throw new Error(`${at}: invalid value for enum ${t.fullName.slice(1)}: ${JSON.stringify(value)}`);
  }
  switch (f.type) {
    case 'string':
      if (typeof value !== 'string') throw new Error(`${at}: want a string`);
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw new Error(`${at}: want true or false`);
      return value;
    case 'bytes':
      if (typeof value !== 'string') throw new Error(`${at}: want base64 text`);
      return value;
    default: // numbers: JSON numbers, or strings (which 64-bit integers need)
      if (typeof value === 'number') return value;
      if (typeof value === 'string' && /^-?\d+$/.test(value)) return value;
      if (
        typeof value === 'string' &&
        ['float', 'double'].includes(f.type) &&
        /^(-?Infinity|NaN|-?\d+(\.\d+)?([eE][-+]?\d+)?)$/.test(value)
      )
        return Number(value);
      throw new Error(`${at}: want a number for ${f.type}, got ${JSON.stringify(value)}`);
  }
}

/** A decoded message -> JSON (protobuf mapping), default values left out as grpcurl does. */
function toJson(type: protobuf.Type, message: protobuf.Message | Record<string, unknown>): Json {
  const msg = message as unknown as Record<string, unknown>;
  if (type.fullName === '.google.protobuf.Duration') return formatDuration(msg);
  if (type.fullName === '.google.protobuf.Any')
    throw new Error('google.protobuf.Any: decode it with decodeErrorDetails');
  const out: JsonObject = {};
  for (const f of type.fieldsArray) {
    f.resolve();
    const value = msg[f.name];
    if (value === undefined || value === null) continue;
    const key = fieldJsonName(f);
    if (f.map) {
      const entries = Object.entries(value as Record<string, unknown>);
      if (entries.length > 0) out[key] = Object.fromEntries(entries.map(([k, v]) => [k, toJsonValue(f, v)]));
    } else if (f.repeated) {
      const list = value as unknown[];
      if (list.length > 0) out[key] = list.map((v) => toJsonValue(f, v));
    } else if (f.resolvedType instanceof protobuf.Type || f.options?.proto3_optional || !isDefault(value)) {
      out[key] = toJsonValue(f, value);
    }
  }
  return out;
}

function toJsonValue(f: protobuf.Field, value: unknown): Json {
  const t = f.resolvedType;
  if (t instanceof protobuf.Type) return toJson(t, value as Record<string, unknown>);
  if (t instanceof protobuf.Enum) return t.valuesById[value as number] ?? (value as number);
  if (LONG_TYPES.has(f.type)) return String(value); // Long and number both print their decimal form
  if (f.type === 'bytes') return Buffer.from(value as Uint8Array).toString('base64');
  if ((f.type === 'float' || f.type === 'double') && !Number.isFinite(value as number)) return String(value);
  return value as Json;
}

function isDefault(value: unknown): boolean {
  if (value === 0 || value === '' || value === false) return true;
  if (value instanceof Uint8Array) return value.length === 0;
  if (typeof value === 'object' && value !== null && 'low' in value && 'high' in value) {
    const long = value as { low: number; high: number };
    return long.low === 0 && long.high === 0;
  }
  return false;
}

/** google.protobuf.Duration's JSON form: "1.5s", nanoseconds in 0, 3, 6 or 9 digits. */
function formatDuration(msg: Record<string, unknown>): string {
  const seconds = BigInt(String(msg.seconds ?? 0));
  const nanos = Number(msg.nanos ?? 0);
  const sign = seconds < 0n || nanos < 0 ? '-' : '';
  const abs = (n: bigint): bigint => (n < 0n ? -n : n);
  let frac = String(Math.abs(nanos)).padStart(9, '0');
  frac = frac.endsWith('000000') ? frac.slice(0, 3) : frac.endsWith('000') ? frac.slice(0, 6) : frac;
  return `${sign}${abs(seconds)}${nanos === 0 ? '' : `.${frac}`}s`;
}

function parseDuration(text: string, at: string): Record<string, unknown> {
  const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(text);
  if (!m) throw new Error(`${at}: invalid google.protobuf.Duration ${JSON.stringify(text)}`);
  const sign = m[1] ? -1 : 1;
  return { seconds: `${m[1] ?? ''}${m[2]}`, nanos: sign * Number((m[3] ?? '').padEnd(9, '0')) };
}
