// Server reflection end to end: a real sidecar on 127.0.0.1:0, driven only through what its reflection
// service tells a grpcurl-like client (test/support/reflection-client.ts), so that what grpcurl sees is tested.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as HEALTH_PROTO_PATH } from 'grpc-health-check';
import * as protobuf from 'protobufjs';
import type { Sidecar } from '../../src/cli/sidecar';
import { defaultLimits } from '../../src/config/load';
import { AUDIT_PROTO, protoDir, servedProtoFiles } from '../../src/contract';
import { grpcurlOrSkip, readRecords, resourceEvent, startTestSidecar, tempDir, testConfig } from '../support/helpers';
import { ReflectionClient, type ReflectionError, type Described, type JsonObject } from '../support/reflection-client';

const SERVICES = [
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
  'meshaudit.v1.AuditService',
  'meshaudit.v1.ReadService',
  'meshaudit.v1.RuleService',
];

/** The contract as the .proto files on disk declare it: the expectation, never the client's source. */
function contractOnDisk(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(protoDir(), target));
  const files = servedProtoFiles().filter((f) => f.startsWith('meshaudit/') || f.startsWith('google/rpc/'));
  root.loadSync([...files, HEALTH_PROTO_PATH], { keepCase: true, alternateCommentMode: true });
  root.resolveAll();
  return root;
}

/** Every service, message and enum declared in `pkg`, nested ones included, by full name. */
function symbolsOf(root: protobuf.Root, pkg: string): string[] {
  const out: string[] = [];
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const obj of ns.nestedArray) {
      if (obj instanceof protobuf.Type || obj instanceof protobuf.Service || obj instanceof protobuf.Enum)
        out.push(obj.fullName.slice(1));
      if (obj instanceof protobuf.Type) walk(obj);
    }
  };
  walk(root.lookup(pkg) as protobuf.Namespace);
  return out;
}

/** What describe shows of a declaration: names, numbers, types, cardinality, streaming, comments. */
function shape(obj: protobuf.ReflectionObject | null): unknown {
  if (obj instanceof protobuf.Type) {
    return {
      message: obj.fullName,
      comment: obj.comment ?? null,
      fields: obj.fieldsArray.map((f) => ({
        name: f.name,
        id: f.id,
        type: f.resolve().resolvedType?.fullName ?? f.type,
        repeated: f.repeated,
        keyType: f instanceof protobuf.MapField ? f.keyType : null,
        oneof: f.partOf?.name ?? null,
        comment: f.comment ?? null,
      })),
      nested: obj.nestedArray.map((n) => n.name),
    };
  }
  if (obj instanceof protobuf.Service) {
    return {
      service: obj.fullName,
      comment: obj.comment ?? null,
      methods: obj.methodsArray.map((m) => ({
        name: m.name,
        request: (m.resolve() as protobuf.Method).resolvedRequestType!.fullName,
        response: m.resolvedResponseType!.fullName,
        requestStream: Boolean(m.requestStream),
        responseStream: Boolean(m.responseStream),
        comment: m.comment ?? null,
      })),
    };
  }
  if (obj instanceof protobuf.Enum)
    return {
      enum: obj.fullName,
      comment: obj.comment ?? null,
      values: obj.values,
      comments: Object.fromEntries(Object.entries(obj.comments).filter(([, c]) => c != null)),
    };
  throw new Error(`unexpected ${obj?.fullName}`);
}

function event(over: JsonObject = {}): JsonObject {
  return {
    id: 'e-1',
    date: '2022-09-21T09:31:42Z',
    action: 'CREATE',
    resource: { type: 'TrafficRoute', name: 'route-1', mesh: 'default' },
    user: { name: 'john.doe@example.com', groups: ['mesh-system:admin'] },
    ...over,
  };
}

describe('server reflection: what grpcurl sees', () => {
  let sidecar: Sidecar;
  let client: ReflectionClient;
  let logPath: string;

  beforeEach(async () => {
    const config = testConfig(tempDir());
    logPath = config.backends[0].path;
    sidecar = await startTestSidecar(config);
    client = new ReflectionClient(sidecar.port);
  });
  afterEach(async () => {
    client.close();
    await sidecar.stop();
  });

  it('lists every service over reflection v1, and over v1alpha for older clients', async () => {
    expect(await client.listServices()).to.deep.equal(SERVICES);
    const alpha = new ReflectionClient(sidecar.port, 'v1alpha');
    try {
      expect(await alpha.listServices()).to.deep.equal(SERVICES);
      expect(shape((await alpha.describe('meshaudit.v1.AuditService')).object)).to.deep.equal(
        shape((await client.describe('meshaudit.v1.AuditService')).object),
      );
    } finally {
      alpha.close();
    }
  });

  it('describes every service and message of meshaudit.v1, google.rpc and grpc.health.v1 as the .proto files declare them, comments included', async () => {
    const disk = contractOnDisk();
    const symbols = ['meshaudit.v1', 'google.rpc', 'grpc.health.v1'].flatMap((pkg) => symbolsOf(disk, pkg));
    expect(symbols).to.include.members([
      'meshaudit.v1.AuditService',
      'meshaudit.v1.ReadService',
      'meshaudit.v1.RuleService',
      'meshaudit.v1.Claims',
      'google.rpc.BadRequest',
      'google.rpc.RetryInfo',
    ]);
    for (const symbol of symbols) {
      const described = await client.describe(symbol);
      expect(shape(described.object), symbol).to.deep.equal(shape(disk.lookup(symbol)));
    }
  });

  it('describes google.rpc.RetryInfo, whose google.protobuf.Duration is resolved through its import (grpc-node#3034)', async () => {
    const retry: Described = await client.describe('google.rpc.RetryInfo');
    expect(retry.file).to.equal('google/rpc/error_details.proto');
    expect(retry.files).to.deep.equal(['google/rpc/error_details.proto', 'google/protobuf/duration.proto']);
    expect(retry.fetchedByFilename).to.deep.equal([]);
    const delay = (retry.object as protobuf.Type).fields.retry_delay;
    expect(delay.resolvedType?.fullName).to.equal('.google.protobuf.Duration');
    expect(delay.options?.json_name).to.equal('retryDelay');

    const badRequest = await client.describe('google.rpc.BadRequest.FieldViolation');
    expect((badRequest.object as protobuf.Type).fieldsArray.map((f) => [f.name, f.id])).to.deep.equal([
      ['field', 1],
      ['description', 2],
      ['reason', 3],
      ['localized_message', 4],
    ]);
    const status = await client.describe('google.rpc.Status');
    expect(status.files).to.deep.equal(['google/rpc/status.proto', 'google/protobuf/any.proto']);
  });

  it('answers an empty extension list for a message without extensions, as grpc-go does, and NOT_FOUND for an unknown type', async () => {
    for (const version of ['v1', 'v1alpha'] as const) {
      const c = new ReflectionClient(sidecar.port, version);
      try {
        for (const symbol of ['google.rpc.BadRequest', 'google.rpc.BadRequest.FieldViolation', 'meshaudit.v1.Event']) {
          expect(await c.allExtensionNumbersOfType(symbol), `${version} ${symbol}`).to.deep.equal([]);
        }
        const unknown = await c.allExtensionNumbersOfType('meshaudit.v1.NoSuchMessage').then(
          () => null,
          (err: ReflectionError) => err,
        );
        expect(unknown?.code, version).to.equal(grpc.status.NOT_FOUND);
      } finally {
        c.close();
      }
    }
  });

  it('answers reflection whatever meshaudit.grpc.maxMessageBytes is: it caps requests, not replies', async () => {
    const small = await startTestSidecar(testConfig(tempDir(), { limits: { ...defaultLimits(), messageBytes: 1024 } }));
    const c = new ReflectionClient(small.port);
    try {
      expect(await c.listServices()).to.deep.equal(SERVICES);
      expect((await c.describe('meshaudit.v1.RuleService')).files).to.include('meshaudit/v1/audit.proto');
    } finally {
      c.close();
      await small.stop();
    }
  });

  it('answers each file request with the file and every file it imports, each import listed once and served', async () => {
    const names = new Set<string>(servedProtoFiles());
    for (const name of [...names]) {
      const reply = await client.fileByFilename(name);
      expect(reply[0].name, name).to.equal(name);
      const inReply = new Set(reply.map((f) => f.name));
      for (const f of reply) {
        expect(new Set(f.dependency).size, `${f.name} imports`).to.equal(f.dependency.length);
        for (const dep of f.dependency) {
          expect(inReply.has(dep), `${f.name} imports ${dep}, which the reply for ${name} lacks`).to.equal(true);
          names.add(dep);
        }
      }
    }
    // The well-known types are served too, under their usual names.
    expect([...names]).to.include.members(['google/protobuf/any.proto', 'google/protobuf/duration.proto']);
    for (const symbol of SERVICES) expect((await client.describe(symbol)).fetchedByFilename, symbol).to.deep.equal([]);
  });

  it('refuses, as grpcurl does, what @grpc/reflection 1.0.4 serves on its own: lost imports and misnamed map entries', async function () {
    // Pinned to the version whose behaviour this documents: after an upgrade, check grpc-node#3034 and
    // whether the workaround in src/server/reflection.ts can go (its own tests must stay green either way).
    if ((require('@grpc/reflection/package.json') as { version: string }).version !== '1.0.4') this.skip();
    const server = new grpc.Server();
    const definition = protoLoader.loadSync([AUDIT_PROTO, 'google/rpc/error_details.proto'], {
      includeDirs: [protoDir()],
    });
    new ReflectionService(definition).addToServer(server);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const bare = new ReflectionClient(port);
    try {
      const failure = (symbol: string): Promise<string> =>
        bare.describe(symbol).then(
          () => 'described',
          (err: Error) => err.message,
        );
      expect(await failure('google.rpc.RetryInfo')).to.include(
        'message field "google.rpc.RetryInfo.retryDelay" cannot resolve type: resolved "google.protobuf.Duration", but "google_protobuf.proto" is not imported',
      );
      expect(await failure('meshaudit.v1.Claims')).to.include(
        'message field "meshaudit.v1.Claims.tags" is an invalid map: incorrect implicit map entry name',
      );
    } finally {
      bare.close();
      server.forceShutdown();
    }
  });

  it('Record through reflection takes a JSON event and answers {"audited": true} once the record is written', async () => {
    expect(await client.call('meshaudit.v1.AuditService', 'Record', { event: event() })).to.deep.equal({
      audited: true,
    });
    expect(readRecords(logPath).map((l) => JSON.parse(l).resource.name)).to.deep.equal(['route-1']);
  });

  it('ListAccessAudits through reflection shows the seeded AccessAudit, its uint64 version as a string', async () => {
    expect(await client.call('meshaudit.v1.RuleService', 'ListAccessAudits', {})).to.deep.equal({
      accessAudits: [{ name: 'all', rules: [{ accessAll: true }], version: '1' }],
    });
  });

  it('an invalid event is INVALID_ARGUMENT whose google.rpc.BadRequest details decode with types from reflection', async () => {
    const err = await client.call('meshaudit.v1.AuditService', 'Record', { event: event({ action: 'CREAT' }) }).then(
      () => {
        throw new Error('accepted');
      },
      (e: grpc.ServiceError) => e,
    );
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(await client.decodeErrorDetails(err)).to.deep.equal({
      code: grpc.status.INVALID_ARGUMENT,
      message: 'event.action: unknown action "CREAT", did you mean "CREATE"?',
      details: [
        {
          '@type': 'type.googleapis.com/google.rpc.BadRequest',
          fieldViolations: [{ field: 'event.action', description: 'unknown action "CREAT", did you mean "CREATE"?' }],
        },
      ],
    });
    expect(fs.existsSync(logPath) ? readRecords(logPath) : []).to.deep.equal([]);
  });

  it('StreamEvents through reflection JSON: the identifier, then a batch whose firstSeq is "1" as grpcurl sends a uint64', async () => {
    const identifier = { zone: 'zone-1', instance: 'cp-0' };
    const first = await client.stream('meshaudit.v1.AuditService', 'StreamEvents', [
      { identifier },
      {
        firstSeq: '1',
        events: [event(), event({ id: 'e-2', resource: { type: 'TrafficRoute', name: 'route-2', mesh: 'default' } })],
      },
    ]);
    expect(first.error).to.equal(null);
    // The resume point 0 is the default value: the JSON mapping (and grpcurl) prints it as {}.
    expect(first.replies).to.deep.equal([{}, { ackedSeq: '2', firstSeq: '1', recorded: 2 }]);
    expect(readRecords(logPath).map((l) => JSON.parse(l).resource.name)).to.deep.equal(['route-1', 'route-2']);

    // Message by message, as a CP reconnecting: the answer to the identifier is where to resume.
    const s = await client.openStream('meshaudit.v1.AuditService', 'StreamEvents');
    s.send({ identifier });
    expect(await s.next()).to.deep.equal({ ackedSeq: '2' });
    s.send({ first_seq: '3', events: [resourceEvent(3) as JsonObject] });
    expect(await s.next()).to.deep.equal({ ackedSeq: '3', firstSeq: '3', recorded: 1 });
    s.end();
    expect(await s.status).to.equal(null);
  });

  it('works with the real grpcurl when it is installed: list, describe, a call and its error details', async function () {
    const grpcurl = grpcurlOrSkip(this);
    const address = `127.0.0.1:${sidecar.port}`;
    const run = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve) =>
        execFile(grpcurl, ['-plaintext', ...args], { timeout: 15_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    expect((await run(address, 'list')).stdout.trim().split('\n').sort()).to.deep.equal(SERVICES);
    for (const symbol of [
      'meshaudit.v1.AuditService',
      'meshaudit.v1.ReadService',
      'meshaudit.v1.RuleService',
      'meshaudit.v1.Claims',
      'google.rpc.RetryInfo',
      'grpc.health.v1.Health',
    ]) {
      const r = await run(address, 'describe', symbol);
      expect(r.code, `${symbol}: ${r.stderr}`).to.equal(0);
    }
    expect((await run(address, 'describe', 'google.rpc.RetryInfo')).stdout).to.include(
      '.google.protobuf.Duration retry_delay = 1;',
    );
    const ok = await run('-d', JSON.stringify({ event: event() }), address, 'meshaudit.v1.AuditService/Record');
    expect(JSON.parse(ok.stdout)).to.deep.equal({ audited: true });
    // The README's Query: the records read back as the file holds them, and a cursor.
    const query = await run(
      '-d',
      JSON.stringify({ filter: { actions: [event().action] } }),
      address,
      'meshaudit.v1.ReadService/Query',
    );
    expect(query.code, query.stderr).to.equal(0);
    const answered = JSON.parse(query.stdout) as { records: string[]; cursor: string };
    expect(answered.records).to.deep.equal(
      readRecords(logPath).filter((l) => l.includes(`"action":"${event().action}"`)),
    );
    expect(answered.cursor).to.be.a('string');
    const bad = await run(
      '-d',
      JSON.stringify({ event: event({ action: 'CREAT' }) }),
      address,
      'meshaudit.v1.AuditService/Record',
    );
    expect(bad.code).to.not.equal(0);
    expect(bad.stderr).to.include('Code: InvalidArgument');
    // The field violations themselves, not grpcurl's "@error": "... is not recognized" with raw bytes.
    const detail = /^\s*1\)\t(.*)$/m.exec(bad.stderr)?.[1];
    expect(detail, bad.stderr).to.be.a('string');
    expect(JSON.parse(detail!)).to.deep.equal({
      '@type': 'type.googleapis.com/google.rpc.BadRequest',
      fieldViolations: [{ field: 'event.action', description: 'unknown action "CREAT", did you mean "CREATE"?' }],
    });
  });
});
