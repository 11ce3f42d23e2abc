// Where a rule change takes effect in the audit trail: exactly at its own record. Events written
// before the change's record were judged by the old rules, events written after it by the new ones.
import { expect } from 'chai';
import { startSidecar } from '../../src/cli/sidecar';
import { silentLogger } from '../../src/log';
import {
  clients,
  MemorySink,
  openStream,
  refusal,
  resourceEvent,
  startTestSidecar,
  tempDir,
  testConfig,
  unary,
  waitFor,
  valid,
} from '../support/helpers';

describe('a rule change under a live stream', () => {
  it('judges an event accepted while the change record waits to be written by the new rules', async () => {
    const sink = new MemorySink();
    const changesOnly = {
      name: 'changes',
      rules: [{ types: ['AccessAudit'], mesh: '', access: [], accessAll: true }],
    };
    const sidecar = await startSidecar({
      config: testConfig(tempDir()),
      audits: [valid(changesOnly)],
      log: silentLogger,
      sinks: [sink],
    });
    const c = clients(sidecar.port);
    try {
      const s = openStream(c.audit);
      s.call.write({ identifier: { zone: 'zone-1', instance: 'cp-0' } });
      await s.next();
      s.call.write({ firstSeq: 1, events: [resourceEvent(1)] });
      expect(await s.next()).to.include({ recorded: 0, skipped: 1 });
      sink.hold();
      const attempts = sink.attempts;
      const created = unary(c.rules, 'CreateAccessAudit', {
        accessAudit: { name: 'everything', rules: [{ accessAll: true }] },
      });
      // The change's record is being written (held at the sink): the new rules are in force.
      await waitFor(() => sink.attempts > attempts, "the change record's write");
      s.call.write({ firstSeq: 2, events: [resourceEvent(2)] });
      const accepted = (): number => sidecar.identifiers().find((i) => i.identifier === 'zone-1/cp-0')?.accepted ?? 0;
      await waitFor(() => accepted() === 2, 'event 2 accepted behind the held write');
      sink.release();
      await created;
      expect(await s.next()).to.include({ ackedSeq: 2, recorded: 1, skipped: 0 });
      // 'changes' is the rules file's own record: its rule covers AccessAudit, so seeding it is recorded.
      expect(sink.lines.map((l) => JSON.parse(l).resource.name)).to.deep.equal(['changes', 'everything', 'route-2']);
      s.call.end();
    } finally {
      c.close();
      await sidecar.stop();
    }
  });
});

describe('sidecar.reload', () => {
  it('refuses what it cannot put in force, naming the key, and changes nothing', async () => {
    const config = testConfig(tempDir());
    const sidecar = await startTestSidecar(config);
    try {
      const [b] = config.backends;
      const tiny = { ...b, rotation: { ...b.rotation, maxSizeBytes: 0.5 } };
      const next = { ...config, logLevel: 'debug' as const, backends: [tiny] };
      const refused = await refusal(sidecar.reload(next, undefined));
      expect(refused.message).to.equal(
        'kmesh.access.audit.backends[0].file.rotation.maxSizeMb: must be at least 1 byte',
      );
      // Callers left no credential once the client CAs (a restart key) are kept off.
      const locked = { ...config, auth: { ...config.auth, localhostIsAdmin: false } };
      expect((await refusal(sidecar.reload(locked, undefined))).message).to.match(
        /^meshaudit\.auth\.localhostIsAdmin: is false, and with the keys that need a restart kept/,
      );
      expect(sidecar.config).to.deep.equal(config);
    } finally {
      await sidecar.stop();
    }
  });

  it('puts the config in force while the rules wait for a disk that cannot write their record', async () => {
    const config = testConfig(tempDir());
    const sink = new MemorySink();
    const sidecar = await startTestSidecar(config, undefined, { sinks: [sink] });
    try {
      sink.hold(); // a full disk: nothing written until it is released
      const audits = [
        valid({ name: 'routes', rules: [{ types: ['TrafficRoute'], mesh: '', access: [], accessAll: true }] }),
      ];
      let done = false;
      const reloading = sidecar.reload({ ...config, logLevel: 'debug' }, audits).then((summary) => {
        done = true;
        return summary;
      });
      // The rule change's record is waiting for the disk; the config is in force already.
      await waitFor(() => sink.attempts > 0, "the rule change's record reaching the sink");
      expect(sidecar.config.logLevel).to.equal('debug');
      expect(done).to.equal(false);
      sink.release();
      const summary = await reloading;
      expect(summary.changed).to.deep.equal(['meshaudit.log.level']);
      expect(summary.rules).to.deep.include({ created: ['routes'] });
    } finally {
      await sidecar.stop();
    }
  });

  it('diffs each reload against the config the one before left, one at a time', async () => {
    const config = testConfig(tempDir());
    const sidecar = await startTestSidecar(config);
    try {
      const level = (logLevel: 'debug' | 'warn') => sidecar.reload({ ...config, logLevel }, undefined);
      const [a, b, c] = await Promise.all([level('debug'), level('debug'), level('warn')]);
      expect([a.changed, b.changed, c.changed]).to.deep.equal([['meshaudit.log.level'], [], ['meshaudit.log.level']]);
      expect(sidecar.config.logLevel).to.equal('warn');
    } finally {
      await sidecar.stop();
    }
  });
});
