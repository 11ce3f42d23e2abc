// `meshaudit rules`, the built command, against a real sidecar: an operator's AccessAudits over RuleService.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, spawnSidecar, writeSidecarConfig, type SpawnedSidecar } from '../support/process';
import { readRecords, tempDir } from '../support/helpers';
import { meshaudit, PACKAGE_VERSION } from '../support/cli';

const EXAMPLE_RULES = path.resolve(__dirname, '../../../deploy/examples/access-audit-default.yaml');

const AUDIT_1 = `type: AccessAudit
name: audit-1
rules:
- types: ["TrafficPermission", "Mesh"]
  mesh: default
  access: ["CREATE", "UPDATE"]
`;

const EVENT = {
  date: '2022-09-21T09:31:42+02:00',
  action: 'UPDATE',
  resource: { type: 'Mesh', name: 'default' },
  user: { name: 'john.doe@kuma.io', groups: ['team-a'] },
};

describe('meshaudit rules (the built command against a real sidecar)', function () {
  this.timeout(30_000);
  let sidecar: SpawnedSidecar;
  let address: string;
  let dir: string;
  let logPath: string;
  const write = (name: string, text: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };
  const rules = (...args: string[]) => meshaudit(['rules', ...args, '--address', address]);

  before(async () => {
    dir = tempDir();
    logPath = path.join(dir, 'audit', 'audit.log');
    const config = writeSidecarConfig(dir, { zone: 'zone-1' });
    sidecar = spawnSidecar(['--config', config, '--rules', EXAMPLE_RULES], { env: { TZ: 'UTC' } });
    address = `127.0.0.1:${await sidecar.ready}`;
  });
  after(async () => {
    sidecar.proc.kill('SIGTERM');
    await sidecar.exited;
  });

  it('applies a file (a dry run first), lists, gets and deletes an AccessAudit', async () => {
    const file = write('audit-1.yaml', AUDIT_1);
    const dry = await rules('apply', '-f', file, '--dry-run');
    expect([dry.code, JSON.parse(dry.stdout)]).to.deep.equal([0, { created: ['audit-1'] }]);
    expect((await rules('list')).stdout).to.equal(
      'NAME               VERSION   RULES\naudit-everything   1         1\n',
    );

    const applied = await rules('apply', '--file', file);
    expect([applied.code, JSON.parse(applied.stdout), applied.stderr]).to.deep.equal([0, { created: ['audit-1'] }, '']);
    // Standard input too; the same file again changes nothing.
    const again = await meshaudit(['rules', 'apply', '-f', '-', '--address', address], { input: AUDIT_1 });
    expect(JSON.parse(again.stdout)).to.deep.equal({ unchanged: ['audit-1'] });

    const list = await rules('list');
    expect([list.code, list.stdout]).to.deep.equal([
      0,
      'NAME               VERSION   RULES\naudit-1            1         1\naudit-everything   1         1\n',
    ]);
    const expected = {
      name: 'audit-1',
      rules: [{ types: ['TrafficPermission', 'Mesh'], mesh: 'default', access: ['CREATE', 'UPDATE'] }],
      version: 1,
    };
    expect(JSON.parse((await rules('list', '--output', 'json')).stdout).accessAudits[0]).to.deep.equal(expected);
    expect(JSON.parse((await rules('get', 'audit-1')).stdout)).to.deep.equal(expected);

    const deleted = await rules('delete', 'audit-1');
    expect([deleted.code, JSON.parse(deleted.stdout)]).to.deep.equal([0, { deleted: 'audit-1' }]);
    const gone = await rules('get', 'audit-1');
    expect(gone).to.deep.equal({
      code: 1,
      stdout: '',
      stderr: 'meshaudit rules: NOT_FOUND: AccessAudit "audit-1" not found\n',
    });
  });

  it('refuses an invalid AccessAudit with every field violation, exit 1, and changes nothing', async () => {
    const file = write('bad.yaml', AUDIT_1.replace('"Mesh"', '"TrafficPermision"').replace('"UPDATE"', '"UPDAT"'));
    const r = await rules('apply', '-f', file);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.equal('');
    expect(r.stderr).to.contain('INVALID_ARGUMENT: ');
    expect(r.stderr).to.contain('did you mean "TrafficPermission"?');
    expect(r.stderr).to.contain('did you mean "UPDATE"?');
    expect((await rules('list')).stdout).to.not.contain('audit-1');
  });

  it('evaluates an event, writing nothing, and refuses a misspelt field before sending it', async () => {
    const before = fs.existsSync(logPath) ? readRecords(logPath).length : 0;
    const r = await rules('evaluate', '-f', write('event.json', JSON.stringify(EVENT)));
    expect(r.code).to.equal(0);
    expect(JSON.parse(r.stdout)).to.deep.equal({
      audited: true,
      matches: [{ accessAudit: 'audit-everything', ruleIndex: 0 }],
      record:
        '{"date":"2022-09-21T07:31:42Z","action":"UPDATE","resource":{"name":"default","type":"Mesh"},"user":{"name":"john.doe@kuma.io","groups":["team-a"]}}',
    });
    expect(fs.existsSync(logPath) ? readRecords(logPath).length : 0).to.equal(before);

    const misspelt = write('misspelt.json', JSON.stringify({ ...EVENT, mesch: 'default' }));
    const bad = await rules('evaluate', '-f', misspelt);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.match(new RegExp(`^meshaudit rules: ${misspelt}: event.mesch: unknown field`));
    const notJson = await rules('evaluate', '-f', write('not.json', '{'));
    expect(notJson.code).to.equal(1);
    expect(notJson.stderr).to.contain('not JSON');
  });

  it('refuses mistakes on the command line with exit 2, an unreadable file with 2, and no sidecar with 3', async () => {
    for (const [args, says] of [
      [[], 'needs a command: list, get, apply, delete, evaluate'],
      [['lst'], 'unknown command "lst", did you mean "list"?'],
      [['get'], "get: needs the AccessAudit's NAME"],
      [['get', 'a', 'b'], 'get: unexpected "b"'],
      [['apply'], 'apply: needs -f FILE'],
      [['list', '-f', 'x'], 'list: -f is for apply and evaluate'],
      [['get', 'a', '--dry-run'], '--dry-run is for apply'],
      [['list', '--output', 'yaml'], '--output: must be table or json, got "yaml"'],
      [['list', '--dryrun'], 'unknown flag "--dryrun", did you mean "--dry-run"?'],
    ] as const) {
      const r = await meshaudit(['rules', ...args]);
      expect([r.code, r.stdout], args.join(' ')).to.deep.equal([2, '']);
      expect(r.stderr, args.join(' ')).to.satisfy((s: string) => s.startsWith(`meshaudit rules: ${says} (usage: `));
    }
    const missing = path.join(dir, 'missing.yaml');
    const unreadable = await rules('apply', '-f', missing);
    expect([unreadable.code, unreadable.stderr]).to.deep.equal([
      2,
      `meshaudit rules: cannot read ${missing}: ENOENT: no such file or directory, open '${missing}'\n`,
    ]);
    const port = await freePort();
    const none = await meshaudit(['rules', 'list', '--address', `127.0.0.1:${port}`]);
    expect([none.code, none.stderr]).to.deep.equal([
      3,
      `meshaudit rules: no sidecar answers on 127.0.0.1:${port} (is a sidecar listening there? see its meshaudit.grpc.address)\n`,
    ]);
  });

  it('prints its usage with --help and the version with --version', async () => {
    const help = await meshaudit(['rules', '--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/^Usage: meshaudit rules list \[--output table\|json\]\n/);
    expect(help.stdout).to.contain('  4  the sidecar refused the caller');
    expect(await meshaudit(['rules', 'list', '--version'])).to.deep.equal({
      code: 0,
      stdout: `meshaudit ${PACKAGE_VERSION}\n`,
      stderr: '',
    });
  });
});
