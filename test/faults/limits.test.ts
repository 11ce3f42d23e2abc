// Every limit is a key under meshaudit.limits (docs/limits.md). Against the real process: a request past
// a configured limit is refused naming the field and the limit, and everything else goes on.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { SIDECAR_NODE_FLAGS } from '../../src/cli/node-flags';
import { fieldViolationsOf } from '../../src/client/status-details';
import { clients, failure, openStream, resourceEvent, tempDir, unary } from '../support/helpers';
import { MAIN, spawnSidecar, writeSidecarConfig } from '../support/process';

const LIMITS = {
  eventsPerBatch: 10,
  listEntries: 5,
  fieldChars: 300,
  accessAudits: 2,
  rulesPerAccessAudit: 2,
  yamlBytes: 2048,
  yamlDepth: 16,
  yamlAliases: 1,
};

function audit(name: string, rules = 1): string {
  const list = Array.from({ length: rules }, (_, i) => `- types: [Mesh]\n  access: [${i === 0 ? 'CREATE' : 'DELETE'}]`);
  return `type: AccessAudit\nname: ${name}\nrules:\n${list.join('\n')}\n`;
}

describe('faults: the limits of meshaudit.limits, configured', function () {
  this.timeout(30_000);
  let dir: string;
  let sidecar: ReturnType<typeof spawnSidecar>;
  let c: ReturnType<typeof clients>;

  before(async () => {
    dir = tempDir();
    sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { zone: 'zone-1', limits: LIMITS })], { cwd: dir });
    c = clients(await sidecar.ready);
  });
  after(async () => {
    c.close();
    sidecar.proc.kill('SIGTERM');
    await sidecar.exited;
  });

  it('refuses a batch of more than eventsPerBatch events, naming events and the limit; earlier acks stand', async () => {
    const s = openStream(c.audit);
    s.call.write({ identifier: { zone: 'zone-1', instance: 'cp-batch' } });
    expect((await s.next()).ackedSeq).to.equal(0);
    s.call.write({ firstSeq: 1, events: Array.from({ length: 10 }, (_, i) => resourceEvent(i + 1)) });
    expect(await s.next()).to.include({ ackedSeq: 10, skipped: 10 });
    s.call.write({ firstSeq: 11, events: Array.from({ length: 11 }, (_, i) => resourceEvent(i + 11)) });
    const err = (await s.status)!;
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(fieldViolationsOf(err.metadata)).to.deep.equal([
      { field: 'events', description: 'must have at most 10 entries, got 11 (meshaudit.limits.eventsPerBatch)' },
    ]);
    // A new stream resumes after the last acknowledged batch.
    const again = openStream(c.audit);
    again.call.write({ identifier: { zone: 'zone-1', instance: 'cp-batch' } });
    expect((await again.next()).ackedSeq).to.equal(10);
    again.call.end();
  });

  it('checks listEntries and fieldChars as configured, on the byte path and the reference path alike', async () => {
    await unary(c.rules, 'ApplyAccessAudits', { yaml: audit('all-creates').replace('types: [Mesh]', 'types: []') });
    const user = (groups: number, chars = 1) => ({
      name: 'ann',
      groups: Array.from({ length: groups }, (_, i) => `${i}`.padEnd(chars, 'g')),
    });
    const event = (u: unknown, name = 'r') => ({ action: 'CREATE', resource: { type: 'Mesh', name }, user: u });
    // At the limits: recorded. ASCII takes the byte path; é the reference path.
    expect(await unary(c.audit, 'Record', { event: event(user(5, 300)) })).to.deep.equal({ audited: true });
    expect(await unary(c.audit, 'Record', { event: event(user(5, 300), 'é') })).to.deep.equal({ audited: true });
    for (const name of ['r', 'é']) {
      const many = await failure(unary(c.audit, 'Record', { event: event(user(6), name) }));
      expect(fieldViolationsOf(many.metadata)).to.deep.equal([
        { field: 'event.user.groups', description: 'must have at most 5 entries, got 6' },
      ]);
      const long = await failure(unary(c.audit, 'Record', { event: event(user(1, 301), name) }));
      expect(fieldViolationsOf(long.metadata)).to.deep.equal([
        { field: 'event.user.groups[0]', description: 'must be at most 300 characters, got 301' },
      ]);
    }
  });

  it('refuses an AccessAudit past accessAudits with FAILED_PRECONDITION and a field violation', async () => {
    // all-creates (the test before) is one; a second fits.
    await unary(c.rules, 'CreateAccessAudit', { accessAudit: { name: 'second', rules: [] } });
    const err = await failure(unary(c.rules, 'CreateAccessAudit', { accessAudit: { name: 'third', rules: [] } }));
    expect(err.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(fieldViolationsOf(err.metadata)).to.deep.equal([
      {
        field: 'name',
        description: 'would make 3 AccessAudits: meshaudit.limits.accessAudits allows 2; delete some first',
      },
    ]);
    const apply = await failure(unary(c.rules, 'ApplyAccessAudits', { yaml: audit('third') }));
    expect(apply.code).to.equal(grpc.status.FAILED_PRECONDITION);
    // Updating one that is there still works.
    await unary(c.rules, 'ApplyAccessAudits', { yaml: audit('second') });
    expect(((await unary(c.rules, 'ListAccessAudits', {})) as { accessAudits: unknown[] }).accessAudits).to.have.length(
      2,
    );
  });

  it('refuses an AccessAudit of more than rulesPerAccessAudit rules, from YAML and from the API', async () => {
    const err = await failure(unary(c.rules, 'ApplyAccessAudits', { yaml: audit('second', 3) }));
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(fieldViolationsOf(err.metadata)).to.deep.equal([
      {
        field: 'yaml',
        description: 'line 3: rules: must have at most 2 entries, got 3 (meshaudit.limits.rulesPerAccessAudit)',
      },
    ]);
    const rule = { types: ['Mesh'], access: ['CREATE'] };
    const api = await failure(
      unary(c.rules, 'UpdateAccessAudit', { accessAudit: { name: 'second', rules: [rule, rule, rule] } }),
    );
    expect(fieldViolationsOf(api.metadata)).to.deep.equal([
      {
        field: 'accessAudit.rules',
        description: 'must have at most 2 entries, got 3 (meshaudit.limits.rulesPerAccessAudit)',
      },
    ]);
  });

  it('reads ApplyAccessAudits YAML within yamlBytes, yamlDepth and yamlAliases', async () => {
    const refusal = async (yaml: string): Promise<string> =>
      fieldViolationsOf((await failure(unary(c.rules, 'ApplyAccessAudits', { yaml }))).metadata)[0]!.description;
    expect(await refusal(`${audit('second')}# ${'x'.repeat(2048)}\n`)).to.equal('too large: more than 2048 bytes');
    expect(await refusal(`${audit('second')}x: ${'['.repeat(20)}${']'.repeat(20)}\n`)).to.match(
      /exceeded maxDepth \(16\)/,
    );
    expect(await refusal(`${audit('second')}a: &a 1\nb: *a\nc: *a\n`)).to.match(/too many aliases: more than 1/);
  });
});

describe('faults: rules files past accessAudits', function () {
  this.timeout(30_000);

  it('stops start-up and --check-config, naming the key (exit 2)', () => {
    const dir = tempDir();
    const config = writeSidecarConfig(dir, { limits: { accessAudits: 1 } });
    const rules = path.join(dir, 'rules.yaml');
    fs.writeFileSync(rules, `${audit('one')}---\n${audit('two')}`);
    for (const extra of [['--check-config'], []]) {
      const r = spawnSync(
        process.execPath,
        [...SIDECAR_NODE_FLAGS, MAIN, '--config', config, '--rules', rules, ...extra],
        {
          cwd: dir,
          encoding: 'utf8',
          timeout: 15_000,
        },
      );
      expect(r.status, `${extra.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr).to.include('the rules files define 2 AccessAudits: meshaudit.limits.accessAudits allows 1');
    }
  });
});
