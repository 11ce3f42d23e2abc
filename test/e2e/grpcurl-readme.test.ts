// The README's grpcurl session, run for real. Each command below is executed, with the same data,
// through test/support/reflection-client.ts, which like grpcurl learns every schema from the server's
// reflection service, against the built sidecar process started with the example rules
// (deploy/examples/access-audit-default.yaml) in zone default (as `make run` starts it), with TZ=UTC. Each "# ->" line is the
// reply in the protobuf JSON form grpcurl prints (compacted here; grpcurl indents it). The test fails
// when a command it runs, or the reply it gets, is not written here exactly as below.
//
// For a sidecar on 127.0.0.1:5690 whose meshaudit.zone is default (make run). jq turns a YAML file into the JSON
// string field "yaml"; sed shows a change without editing the file.
//
//   grpcurl -plaintext 127.0.0.1:5690 list
//   grpcurl -plaintext 127.0.0.1:5690 describe meshaudit.v1.RuleService
//   grpcurl -plaintext 127.0.0.1:5690 describe meshaudit.v1.AccessAudit
//
//   grpcurl -plaintext -d '{}' 127.0.0.1:5690 meshaudit.v1.RuleService/ListAccessAudits
//   # -> {"accessAudits":[{"name":"audit-everything","rules":[{"accessAll":true}],"version":"1"}]}
//
// audits.yaml:
//
//   type: AccessAudit            # Universal form
//   name: audit-1
//   rules:
//   - types: ["TrafficPermission", "TrafficRoute", "Mesh"]
//     mesh: default
//     access: ["CREATE", "UPDATE", "DELETE"]
//   ---
//   apiVersion: kuma.io/v1alpha1 # Kubernetes form
//   kind: AccessAudit
//   metadata:
//     name: audit-2
//   spec:
//     rules:
//     - access: ["GENERATE_DATAPLANE_TOKEN"]
//       mesh: demo
//
//   jq -Rs '{yaml: .}' audits.yaml | grpcurl -plaintext -d @ 127.0.0.1:5690 meshaudit.v1.RuleService/ApplyAccessAudits
//   # -> {"created":["audit-1","audit-2"]}
//   jq -Rs '{yaml: .}' audits.yaml | grpcurl -plaintext -d @ 127.0.0.1:5690 meshaudit.v1.RuleService/ApplyAccessAudits
//   # -> {"unchanged":["audit-1","audit-2"]}
//   sed 's/mesh: demo/mesh: default/' audits.yaml | jq -Rs '{yaml: ., dryRun: true}' | grpcurl -plaintext -d @ 127.0.0.1:5690 meshaudit.v1.RuleService/ApplyAccessAudits
//   # -> {"updated":["audit-2"],"unchanged":["audit-1"]}
//
//   grpcurl -plaintext -d '{"event":{"date":"2022-09-21T09:31:42+02:00","action":"UPDATE","resource":{"type":"TrafficPermission","name":"web-to-backend","mesh":"default"},"user":{"name":"john.doe@kuma.io","groups":["team-a"]}}}' 127.0.0.1:5690 meshaudit.v1.RuleService/Evaluate
//   # -> {"audited":true,"matches":[{"accessAudit":"audit-1"},{"accessAudit":"audit-everything"}],"record":"{\"date\":\"2022-09-21T07:31:42Z\",\"action\":\"UPDATE\",\"resource\":{\"name\":\"web-to-backend\",\"mesh\":\"default\",\"type\":\"TrafficPermission\"},\"user\":{\"name\":\"john.doe@kuma.io\",\"groups\":[\"team-a\"]}}"}
//
//   grpcurl -plaintext -d '{"name":"audit-1"}' 127.0.0.1:5690 meshaudit.v1.RuleService/GetAccessAudit
//   # -> {"name":"audit-1","rules":[{"types":["TrafficPermission","TrafficRoute","Mesh"],"mesh":"default","access":["CREATE","UPDATE","DELETE"]}],"version":"1"}
//   grpcurl -plaintext -d '{"accessAudit":{"name":"audit-1","rules":[{"types":["TrafficPermission","TrafficRoute","Mesh"],"mesh":"default","access":["CREATE","DELETE"]}],"version":"1"}}' 127.0.0.1:5690 meshaudit.v1.RuleService/UpdateAccessAudit
//   # -> {"name":"audit-1","rules":[{"types":["TrafficPermission","TrafficRoute","Mesh"],"mesh":"default","access":["CREATE","DELETE"]}],"version":"2"}
//   grpcurl -plaintext -d '{"accessAudit":{"name":"audit-1","rules":[{"types":["TrafficPermission","TrafficRoute","Mesh"],"mesh":"default","access":["CREATE","DELETE"]}],"version":"1"}}' 127.0.0.1:5690 meshaudit.v1.RuleService/UpdateAccessAudit
//   # -> ERROR: Code: Aborted, Message: AccessAudit "audit-1" is at version 2, not 1: read it again and retry (version 0 changes it whatever its version)
//   grpcurl -plaintext -d '{"name":"audit-1"}' 127.0.0.1:5690 meshaudit.v1.RuleService/DeleteAccessAudit
//   # -> {}
//   grpcurl -plaintext -d '{"name":"audit-1"}' 127.0.0.1:5690 meshaudit.v1.RuleService/GetAccessAudit
//   # -> ERROR: Code: NotFound, Message: AccessAudit "audit-1" not found
//
//   grpcurl -plaintext -d '{"event":{"date":"2022-09-21T09:31:42+02:00","action":"UPDATE","resource":{"type":"TrafficPermission","name":"web-to-backend","mesh":"default"},"user":{"name":"john.doe@kuma.io","groups":["team-a"]}}}' 127.0.0.1:5690 meshaudit.v1.AuditService/Record
//   # -> {"audited":true}
//   grpcurl -plaintext -d @ 127.0.0.1:5690 meshaudit.v1.AuditService/StreamEvents <<'EOF'
//   {"identifier":{"zone":"default","instance":"cp-0"}}
//   {"firstSeq":"1","events":[{"date":"2022-09-21T09:31:42+02:00","action":"GENERATE_DATAPLANE_TOKEN","token":{"id":"0e120ec9-6b42-495d-9758-07b59fe86fb9","expiresAt":"2022-09-22T09:31:42+02:00","claims":{"mesh":"default","tags":{"kuma.io/service":"backend"}}},"user":{"name":"john.doe@kuma.io","groups":["team-a"]}}]}
//   EOF
//   # -> {}
//   # -> {"ackedSeq":"1","firstSeq":"1","recorded":1}
//
//   grpcurl -plaintext -d '{"filter":{"actions":["GENERATE_DATAPLANE_TOKEN"]}}' 127.0.0.1:5690 meshaudit.v1.ReadService/Query
//   # -> {"records":["{\"date\":\"2022-09-21T07:31:42Z\",\"action\":\"GENERATE_DATAPLANE_TOKEN\",\"token\":{\"id\":\"0e120ec9-6b42-495d-9758-07b59fe86fb9\",\"expiresAt\":\"2022-09-22T07:31:42Z\",\"claims\":{\"mesh\":\"default\",\"tags\":{\"kuma.io/service\":\"backend\"}}},\"user\":{\"name\":\"john.doe@kuma.io\",\"groups\":[\"team-a\"]}}"],"cursor":"<cursor>"}
//
//   grpcurl -plaintext -d '{"event":{"action":"DELET","resource":{"type":"TrafficPermission","name":"web-to-backend","mesh":"default"},"user":{"name":"john.doe@kuma.io"}}}' 127.0.0.1:5690 meshaudit.v1.AuditService/Record
//   # -> ERROR: Code: InvalidArgument, Message: event.action: unknown action "DELET", did you mean "DELETE"?
//   # -> Details: {"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"event.action","description":"unknown action \"DELET\", did you mean \"DELETE\"?"}]}
//   grpcurl -plaintext -d '{"yaml":"type: AccessAudit\nname: typo\nrules:\n- types: [\"TrafficPermision\"]\n  access: [\"CREAT\"]\n"}' 127.0.0.1:5690 meshaudit.v1.RuleService/ApplyAccessAudits
//   # -> ERROR: Code: InvalidArgument, Message: yaml: line 4: rules[0].types[0]: unknown type "TrafficPermision", did you mean "TrafficPermission"?; yaml: line 5: rules[0].access[0]: unknown action "CREAT", did you mean "CREATE"?
//   # -> Details: {"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"yaml","description":"line 4: rules[0].types[0]: unknown type \"TrafficPermision\", did you mean \"TrafficPermission\"?"},{"field":"yaml","description":"line 5: rules[0].access[0]: unknown action \"CREAT\", did you mean \"CREATE\"?"}]}
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { readRecords, tempDir } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig, type SpawnedSidecar } from '../support/process';
import { ReflectionClient, type Described, type JsonObject } from '../support/reflection-client';

/** The address the commands name: the default of meshaudit.grpc.address (make run). */
const ADDRESS = '127.0.0.1:5690';
const EXAMPLE_RULES = path.resolve(__dirname, '../../../deploy/examples/access-audit-default.yaml');
/** This file's header, the comment's text without its `// ` prefixes. */
const HEADER = ((): string => {
  const lines = fs
    .readFileSync(path.resolve(__dirname, '../../../test/e2e/grpcurl-readme.test.ts'), 'utf8')
    .split('\n');
  return lines
    .slice(
      0,
      lines.findIndex((l) => !l.startsWith('//')),
    )
    .map((l) => l.replace(/^\/\/ ?/, ''))
    .join('\n');
})();

const AUDITS_YAML = `type: AccessAudit            # Universal form
name: audit-1
rules:
- types: ["TrafficPermission", "TrafficRoute", "Mesh"]
  mesh: default
  access: ["CREATE", "UPDATE", "DELETE"]
---
apiVersion: kuma.io/v1alpha1 # Kubernetes form
kind: AccessAudit
metadata:
  name: audit-2
spec:
  rules:
  - access: ["GENERATE_DATAPLANE_TOKEN"]
    mesh: demo
`;

/** The README's event (the spec's first record). */
const EVENT: JsonObject = {
  date: '2022-09-21T09:31:42+02:00',
  action: 'UPDATE',
  resource: { type: 'TrafficPermission', name: 'web-to-backend', mesh: 'default' },
  user: { name: 'john.doe@kuma.io', groups: ['team-a'] },
};
/** Its record, with the sidecar on UTC. */
const EVENT_RECORD =
  '{"date":"2022-09-21T07:31:42Z","action":"UPDATE","resource":{"name":"web-to-backend","mesh":"default","type":"TrafficPermission"},"user":{"name":"john.doe@kuma.io","groups":["team-a"]}}';
/** The spec's token event. */
const TOKEN_EVENT: JsonObject = {
  date: '2022-09-21T09:31:42+02:00',
  action: 'GENERATE_DATAPLANE_TOKEN',
  token: {
    id: '0e120ec9-6b42-495d-9758-07b59fe86fb9',
    expiresAt: '2022-09-22T09:31:42+02:00',
    claims: { mesh: 'default', tags: { 'kuma.io/service': 'backend' } },
  },
  user: { name: 'john.doe@kuma.io', groups: ['team-a'] },
};
const AUDIT_1_RULES = {
  types: ['TrafficPermission', 'TrafficRoute', 'Mesh'],
  mesh: 'default',
  access: ['CREATE', 'UPDATE', 'DELETE'],
};
const AUDIT_1_CHANGED = { ...AUDIT_1_RULES, access: ['CREATE', 'DELETE'] };
// A loopback caller with no credential is the admin (meshaudit.auth.localhostIsAdmin, the default).
const OPERATOR = '"user":{"name":"mesh-system:admin","groups":["mesh-system:admin"]}';

/** What grpcurl is asked: a unary call, a stream, or a YAML file through sed and jq. */
type Call =
  | { method: string; data: JsonObject; serverStream?: true }
  | { method: string; stream: JsonObject[] }
  | { method: string; file: string; sed?: [string, string]; dryRun?: boolean };

/** The command line of a call, as an operator pastes it. */
function commandOf(call: Call): string {
  const target = `${ADDRESS} meshaudit.v1.${call.method}`;
  if ('data' in call) {
    const json = JSON.stringify(call.data);
    expect(json, 'a single quote would end the shell argument').to.not.contain("'");
    return `grpcurl -plaintext -d '${json}' ${target}`;
  }
  if ('stream' in call)
    return [`grpcurl -plaintext -d @ ${target} <<'EOF'`, ...call.stream.map((m) => JSON.stringify(m)), 'EOF'].join(
      '\n',
    );
  const sed = call.sed ? `sed 's/${call.sed[0]}/${call.sed[1]}/' ${call.file} | ` : '';
  const jq = `jq -Rs '{yaml: .${call.dryRun ? ', dryRun: true' : ''}}'${call.sed ? '' : ` ${call.file}`}`;
  return `${sed}${jq} | grpcurl -plaintext -d @ ${target}`;
}

/** Each line as the header holds it: indented by two spaces. */
function indented(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

/** grpcurl's name of a status code: ABORTED -> Aborted, NOT_FOUND -> NotFound. */
function codeName(code: number): string {
  return grpc.status[code].toLowerCase().replace(/(^|_)(.)/g, (_m, _s, c: string) => c.toUpperCase());
}

/** The rpc lines of a service, or the field lines of a message, as grpcurl's describe prints them. */
function declarationLines(described: Described): string[] {
  const obj = described.object;
  const typeOf = (t: protobuf.Type | protobuf.Enum | null, scalar: string): string => (t ? t.fullName : scalar);
  if (obj instanceof protobuf.Service) {
    return obj.methodsArray.map((m) => {
      m.resolve();
      const req = `${m.requestStream ? 'stream ' : ''}${m.resolvedRequestType!.fullName}`;
      const res = `${m.responseStream ? 'stream ' : ''}${m.resolvedResponseType!.fullName}`;
      return `rpc ${m.name} ( ${req} ) returns ( ${res} );`;
    });
  }
  if (obj instanceof protobuf.Type) {
    return obj.fieldsArray.map((f) => {
      f.resolve();
      const type =
        f instanceof protobuf.MapField
          ? `map<${f.keyType}, ${typeOf(f.resolvedType, f.type)}>`
          : typeOf(f.resolvedType, f.type);
      return `${f.repeated && !(f instanceof protobuf.MapField) ? 'repeated ' : ''}${type} ${f.name} = ${f.id};`;
    });
  }
  throw new Error(`${described.symbol} is neither a service nor a message`);
}

describe('the README grpcurl session, through reflection, against the real sidecar', function () {
  this.timeout(30_000);
  let dir: string;
  let sidecar: SpawnedSidecar;
  let client: ReflectionClient;
  let logPath: string;
  let seen = 0;
  /** The records written since the last call, dates of changes replaced by D (they are the time of the change). */
  const newRecords = (): string[] => {
    const all = fs.existsSync(logPath) ? readRecords(logPath) : [];
    const added = all.slice(seen);
    seen = all.length;
    return added.map((l) =>
      l.replace(
        /^\{"date":"[^"]*"(?=,"action":"(CREATE|UPDATE|DELETE)","resource":\{"name":"[^"]*","type":"AccessAudit"\})/,
        '{"date":D',
      ),
    );
  };

  /**
   * Runs `call` as grpcurl would and checks that the header holds the command and, after it, each
   * reply (or the error) as written there. Resolves with the replies.
   */
  async function grpcurl(call: Call): Promise<JsonObject[]> {
    const [service, method] = call.method.split('/');
    let replies: JsonObject[];
    let printed: string[];
    if ('stream' in call || ('data' in call && call.serverStream)) {
      const requests = 'stream' in call ? call.stream : [call.data];
      const { replies: got, error } = await client.stream(`meshaudit.v1.${service}`, method, requests);
      expect(error).to.equal(null);
      replies = got;
      // A cursor names the file by the hash of its first line, the seeding record of this start: shown as <cursor>.
      printed = got.map((r) => JSON.stringify(r).replace(/"cursor":"[A-Za-z0-9_-]*"/, '"cursor":"<cursor>"'));
    } else {
      let data: JsonObject;
      if ('data' in call) {
        data = call.data;
      } else {
        // What sed and jq hand grpcurl: the file's text, changed on the line that matches.
        let text = fs.readFileSync(path.join(dir, call.file), 'utf8');
        if (call.sed) {
          expect(text.split(call.sed[0]), `"${call.sed[0]}" once in ${call.file}`).to.have.length(2);
          text = text.replace(call.sed[0], call.sed[1]);
        }
        data = call.dryRun ? { yaml: text, dryRun: true } : { yaml: text };
      }
      try {
        replies = [await client.call(`meshaudit.v1.${service}`, method, data)];
        printed = [JSON.stringify(replies[0])];
      } catch (e) {
        const err = e as grpc.ServiceError;
        if (typeof err.code !== 'number') throw e;
        const details = await client.decodeErrorDetails(err);
        replies = [{ code: err.code, message: err.details, details: details?.details ?? [] }];
        printed = [
          `ERROR: Code: ${codeName(err.code)}, Message: ${err.details}`,
          ...(details?.details ?? []).map((d) => `Details: ${JSON.stringify(d)}`),
        ];
      }
    }
    const transcript = [commandOf(call), ...printed.map((p) => `# -> ${p}`)].join('\n');
    expect(HEADER, `the header lacks, or has another reply to, this command:\n${transcript}\n`).to.contain(
      indented(transcript),
    );
    return replies;
  }

  before(async () => {
    dir = tempDir('meshaudit-grpcurl-');
    logPath = path.join(dir, 'audit', 'audit.log');
    writeSidecarConfig(dir);
    fs.writeFileSync(path.join(dir, 'audits.yaml'), AUDITS_YAML);
    sidecar = spawnSidecar(['--config', path.join(dir, 'meshaudit.yaml'), '--rules', EXAMPLE_RULES], {
      cwd: dir,
      env: { TZ: 'UTC' },
    });
    client = new ReflectionClient(await sidecar.ready);
  });
  after(async () => {
    client?.close();
    sidecar.proc.kill('SIGTERM');
    expect(await sidecar.exited).to.equal(0);
  });

  it('runs every command the README shows (the README cannot drift from what is tested)', () => {
    const readme = fs.readFileSync(path.resolve(__dirname, '../../../README.md'), 'utf8');
    // The session runs from its heading to the next section of the README (a "## " heading); the TLS
    // and token forms of "Callers and permissions" are run by test/server/tls.test.ts.
    const start = readme.indexOf('\n### grpcurl\n');
    const end = readme.indexOf('\n## ', start);
    expect(start, 'the README has a "### grpcurl" section').to.be.greaterThan(-1);
    expect(end, 'the README has a section after "### grpcurl"').to.be.greaterThan(start);
    const section = readme.slice(start, end);
    const commands = section.split('\n').filter((l) => /^(grpcurl|jq|sed) /.test(l) || l.startsWith('{"'));
    expect(commands.length).to.be.greaterThan(12);
    const untested = commands.filter((c) => !HEADER.includes(c));
    expect(untested).to.deep.equal([]);
  });

  it('shows audits.yaml in the header as the file the commands read', () => {
    expect(HEADER).to.contain(`audits.yaml:\n\n${indented(AUDITS_YAML.trimEnd())}\n`);
  });

  it('list: every service, the health and reflection ones included', async () => {
    expect(HEADER).to.contain(indented(`grpcurl -plaintext ${ADDRESS} list`));
    expect(await client.listServices()).to.deep.equal([
      'grpc.health.v1.Health',
      'grpc.reflection.v1.ServerReflection',
      'grpc.reflection.v1alpha.ServerReflection',
      'meshaudit.v1.AuditService',
      'meshaudit.v1.ReadService',
      'meshaudit.v1.RuleService',
    ]);
  });

  it('describe meshaudit.v1.RuleService: every rpc with its types, and a comment on each', async () => {
    expect(HEADER).to.contain(indented(`grpcurl -plaintext ${ADDRESS} describe meshaudit.v1.RuleService`));
    const described = await client.describe('meshaudit.v1.RuleService');
    expect(declarationLines(described)).to.deep.equal([
      'rpc ListAccessAudits ( .meshaudit.v1.ListAccessAuditsRequest ) returns ( .meshaudit.v1.ListAccessAuditsResponse );',
      'rpc GetAccessAudit ( .meshaudit.v1.GetAccessAuditRequest ) returns ( .meshaudit.v1.AccessAudit );',
      'rpc CreateAccessAudit ( .meshaudit.v1.CreateAccessAuditRequest ) returns ( .meshaudit.v1.AccessAudit );',
      'rpc UpdateAccessAudit ( .meshaudit.v1.UpdateAccessAuditRequest ) returns ( .meshaudit.v1.AccessAudit );',
      'rpc DeleteAccessAudit ( .meshaudit.v1.DeleteAccessAuditRequest ) returns ( .meshaudit.v1.DeleteAccessAuditResponse );',
      'rpc ApplyAccessAudits ( .meshaudit.v1.ApplyAccessAuditsRequest ) returns ( .meshaudit.v1.ApplyAccessAuditsResponse );',
      'rpc Evaluate ( .meshaudit.v1.EvaluateRequest ) returns ( .meshaudit.v1.EvaluateResponse );',
    ]);
    expect(described.comment).to.match(/^RuleService manages this zone's AccessAudit resources\./);
    const service = described.object as protobuf.Service;
    for (const m of service.methodsArray) expect(m.comment, m.name).to.match(new RegExp(`^${m.name} `));
    // The streams of AuditService print as grpcurl shows them too.
    expect(declarationLines(await client.describe('meshaudit.v1.AuditService'))[0]).to.equal(
      'rpc StreamEvents ( stream .meshaudit.v1.StreamEventsRequest ) returns ( stream .meshaudit.v1.StreamEventsResponse );',
    );
  });

  it('describe meshaudit.v1.AccessAudit: its fields, and a comment on each', async () => {
    expect(HEADER).to.contain(indented(`grpcurl -plaintext ${ADDRESS} describe meshaudit.v1.AccessAudit`));
    const described = await client.describe('meshaudit.v1.AccessAudit');
    expect(declarationLines(described)).to.deep.equal([
      'string name = 1;',
      'repeated .meshaudit.v1.AccessAuditRule rules = 2;',
      'uint64 version = 3;',
    ]);
    expect(described.comment).to.match(/^AccessAudit is a global-scoped resource/);
    for (const f of (described.object as protobuf.Type).fieldsArray)
      expect(f.comment, f.name).to.match(new RegExp(`^${f.name} `));
  });

  it('ListAccessAudits: the example rules, seeded by --rules, version "1" as grpcurl prints a uint64', async () => {
    expect(await grpcurl({ method: 'RuleService/ListAccessAudits', data: {} })).to.deep.equal([
      { accessAudits: [{ name: 'audit-everything', rules: [{ accessAll: true }], version: '1' }] },
    ]);
  });

  it('ApplyAccessAudits with audits.yaml creates both forms and records both creations, then leaves them unchanged', async () => {
    newRecords();
    expect(await grpcurl({ method: 'RuleService/ApplyAccessAudits', file: 'audits.yaml' })).to.deep.equal([
      { created: ['audit-1', 'audit-2'] },
    ]);
    // The example rules cover every type, AccessAudit included: the changes are audited.
    expect(newRecords()).to.deep.equal([
      `{"date":D,"action":"CREATE","resource":{"name":"audit-1","type":"AccessAudit"},${OPERATOR}}`,
      `{"date":D,"action":"CREATE","resource":{"name":"audit-2","type":"AccessAudit"},${OPERATOR}}`,
    ]);
    expect(await grpcurl({ method: 'RuleService/ApplyAccessAudits', file: 'audits.yaml' })).to.deep.equal([
      { unchanged: ['audit-1', 'audit-2'] },
    ]);
    expect(newRecords()).to.deep.equal([]);
  });

  it('ApplyAccessAudits with dryRun says what a change would update, and changes nothing: no record, the same resources', async () => {
    const before = await client.call('meshaudit.v1.RuleService', 'ListAccessAudits', {});
    expect(
      await grpcurl({
        method: 'RuleService/ApplyAccessAudits',
        file: 'audits.yaml',
        sed: ['mesh: demo', 'mesh: default'],
        dryRun: true,
      }),
    ).to.deep.equal([{ updated: ['audit-2'], unchanged: ['audit-1'] }]);
    expect(newRecords()).to.deep.equal([]);
    expect(await client.call('meshaudit.v1.RuleService', 'ListAccessAudits', {})).to.deep.equal(before);
    expect(fs.readFileSync(path.join(dir, 'audits.yaml'), 'utf8')).to.equal(AUDITS_YAML);
  });

  it('Evaluate names every covering AccessAudit (rule index 0 left out, as a default value) and gives the exact record line, writing nothing', async () => {
    expect(await grpcurl({ method: 'RuleService/Evaluate', data: { event: EVENT } })).to.deep.equal([
      {
        audited: true,
        matches: [{ accessAudit: 'audit-1' }, { accessAudit: 'audit-everything' }],
        record: EVENT_RECORD,
      },
    ]);
    expect(newRecords()).to.deep.equal([]);
  });

  it('GetAccessAudit, UpdateAccessAudit at the version read, the same update again refused with ABORTED naming the current version', async () => {
    expect(await grpcurl({ method: 'RuleService/GetAccessAudit', data: { name: 'audit-1' } })).to.deep.equal([
      { name: 'audit-1', rules: [AUDIT_1_RULES], version: '1' },
    ]);
    const update: Call = {
      method: 'RuleService/UpdateAccessAudit',
      data: { accessAudit: { name: 'audit-1', rules: [AUDIT_1_CHANGED], version: '1' } },
    };
    expect(await grpcurl(update)).to.deep.equal([{ name: 'audit-1', rules: [AUDIT_1_CHANGED], version: '2' }]);
    expect(newRecords()).to.deep.equal([
      `{"date":D,"action":"UPDATE","resource":{"name":"audit-1","type":"AccessAudit"},${OPERATOR}}`,
    ]);
    const [stale] = await grpcurl(update);
    expect(stale).to.deep.include({
      code: grpc.status.ABORTED,
      message:
        'AccessAudit "audit-1" is at version 2, not 1: read it again and retry (version 0 changes it whatever its version)',
    });
    expect(newRecords()).to.deep.equal([]);
  });

  it('DeleteAccessAudit, then GetAccessAudit answers NOT_FOUND naming it', async () => {
    expect(await grpcurl({ method: 'RuleService/DeleteAccessAudit', data: { name: 'audit-1' } })).to.deep.equal([{}]);
    expect(newRecords()).to.deep.equal([
      `{"date":D,"action":"DELETE","resource":{"name":"audit-1","type":"AccessAudit"},${OPERATOR}}`,
    ]);
    const [missing] = await grpcurl({ method: 'RuleService/GetAccessAudit', data: { name: 'audit-1' } });
    expect(missing).to.deep.include({ code: grpc.status.NOT_FOUND, message: 'AccessAudit "audit-1" not found' });
  });

  it('AuditService/Record writes the README event as the README record', async () => {
    expect(await grpcurl({ method: 'AuditService/Record', data: { event: EVENT } })).to.deep.equal([{ audited: true }]);
    expect(newRecords()).to.deep.equal([EVENT_RECORD]);
  });

  it('AuditService/StreamEvents: the identifier answered with the resume point ({} for 0), then the batch acknowledged', async () => {
    const replies = await grpcurl({
      method: 'AuditService/StreamEvents',
      stream: [{ identifier: { zone: 'default', instance: 'cp-0' } }, { firstSeq: '1', events: [TOKEN_EVENT] }],
    });
    expect(replies).to.deep.equal([{}, { ackedSeq: '1', firstSeq: '1', recorded: 1 }]);
    expect(newRecords()).to.deep.equal([
      '{"date":"2022-09-21T07:31:42Z","action":"GENERATE_DATAPLANE_TOKEN","token":{"id":"0e120ec9-6b42-495d-9758-07b59fe86fb9","expiresAt":"2022-09-22T07:31:42Z","claims":{"mesh":"default","tags":{"kuma.io/service":"backend"}}},"user":{"name":"john.doe@kuma.io","groups":["team-a"]}}',
    ]);
  });

  it('ReadService/Query reads the records back from the files, filtered, with a cursor to go on from', async () => {
    const replies = await grpcurl({
      method: 'ReadService/Query',
      data: { filter: { actions: ['GENERATE_DATAPLANE_TOKEN'] } },
      serverStream: true,
    });
    const records = replies.flatMap((r) => (r.records as string[] | undefined) ?? []);
    expect(records).to.deep.equal(readRecords(logPath).filter((l) => l.includes('"GENERATE_DATAPLANE_TOKEN"')));
    expect(records).to.have.length(1);
    expect(replies[replies.length - 1].cursor)
      .to.be.a('string')
      .and.not.equal('');
  });

  it('INVALID_ARGUMENT carries a google.rpc.BadRequest whose field violations decode with types from reflection', async () => {
    const [badEvent] = await grpcurl({
      method: 'AuditService/Record',
      data: { event: { action: 'DELET', resource: EVENT.resource, user: { name: 'john.doe@kuma.io' } } },
    });
    expect(badEvent).to.deep.equal({
      code: grpc.status.INVALID_ARGUMENT,
      message: 'event.action: unknown action "DELET", did you mean "DELETE"?',
      details: [
        {
          '@type': 'type.googleapis.com/google.rpc.BadRequest',
          fieldViolations: [{ field: 'event.action', description: 'unknown action "DELET", did you mean "DELETE"?' }],
        },
      ],
    });
    const [badYaml] = await grpcurl({
      method: 'RuleService/ApplyAccessAudits',
      data: { yaml: 'type: AccessAudit\nname: typo\nrules:\n- types: ["TrafficPermision"]\n  access: ["CREAT"]\n' },
    });
    expect(badYaml.details).to.deep.equal([
      {
        '@type': 'type.googleapis.com/google.rpc.BadRequest',
        fieldViolations: [
          {
            field: 'yaml',
            description:
              'line 4: rules[0].types[0]: unknown type "TrafficPermision", did you mean "TrafficPermission"?',
          },
          { field: 'yaml', description: 'line 5: rules[0].access[0]: unknown action "CREAT", did you mean "CREATE"?' },
        ],
      },
    ]);
    expect(newRecords()).to.deep.equal([]);
  });
});
