// An error too large for the HTTP/2 trailers it travels in was never answered and stalled every call
// on its connection. Against the real process: every error is answered, bounded, and the connection
// goes on serving.
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { fieldViolationsOf } from '../../src/client/status-details';
import { clients, failure, resourceEvent, tempDir, unary } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig } from '../support/process';

describe('faults: errors too large for their trailers', function () {
  this.timeout(30_000);
  let sidecar: ReturnType<typeof spawnSidecar>;
  let c: ReturnType<typeof clients>;

  before(async () => {
    const dir = tempDir();
    // 1,000 rules in one AccessAudit, past the default rulesPerAccessAudit (100): an error per rule is the point here.
    const config = writeSidecarConfig(dir, { zone: 'zone-1', limits: { rulesPerAccessAudit: 1000 } });
    sidecar = spawnSidecar(['--config', config], { cwd: dir });
    c = clients(await sidecar.ready);
  });
  after(async () => {
    c.close();
    sidecar.proc.kill('SIGTERM');
    await sidecar.exited;
  });

  /** A call that must be answered well within `ms`. */
  function within<T>(call: Promise<T>, ms = 5000): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not answered within ${ms} ms`)), ms);
    });
    return Promise.race([call, late]).finally(() => clearTimeout(timer));
  }

  it('answers an apply with a thousand violations, bounded, saying how many were left out', async () => {
    const rules = Array.from({ length: 1000 }, (_, i) => `- types: [Nope${i}]\n  access: [CREAT]`).join('\n');
    const err = await within(
      failure(unary(c.rules, 'ApplyAccessAudits', { yaml: `type: AccessAudit\nname: a\nrules:\n${rules}\n` })),
    );
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    const violations = fieldViolationsOf(err.metadata);
    expect(violations.length).to.be.within(20, 200);
    expect(violations[0].description).to.equal('line 4: rules[0].types[0]: unknown type "Nope0"');
    expect(violations[violations.length - 1]).to.deep.equal({
      field: '',
      description: `${2000 - (violations.length - 1)} more violation(s) not shown`,
    });
    expect(err.details).to.match(/ \(2000 in all\)$/);
    expect(
      Buffer.byteLength(err.details) + (err.metadata.get('grpc-status-details-bin')[0] as Buffer).length,
    ).to.be.at.most(8192);
    // The connection goes on: a Record on it is answered.
    expect(await within(unary(c.audit, 'Record', { event: resourceEvent(1) }))).to.deep.equal({ audited: false });
  });

  it('answers an apply with a 100 KiB unknown key, quoting it cut short', async () => {
    const key = 'k'.repeat(100 * 1024);
    const err = await within(
      failure(unary(c.rules, 'ApplyAccessAudits', { yaml: `type: AccessAudit\nname: a\n${key}: 1\n` })),
    );
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(fieldViolationsOf(err.metadata)).to.deep.equal([
      // The path quotes the key cut short (the line map cannot find a key it does not have whole).
      { field: 'yaml', description: `["${'k'.repeat(64)}..."]: unknown field` },
    ]);
    expect(await within(unary(c.rules, 'ListAccessAudits', {}))).to.deep.equal({ accessAudits: [] });
  });
});
