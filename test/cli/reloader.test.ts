// ConfigReloader against a real sidecar (in this process) and a real config file: what it counts and
// logs, and that a reload refused late (a tokens file that cannot be used) leaves nothing half-applied.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigReloader, concerns } from '../../src/cli/reloader';
import type { Sidecar } from '../../src/cli/sidecar';
import { loadConfig } from '../../src/config';
import { jsonLogger } from '../../src/log';
import { writeSidecarConfig } from '../support/process';
import { clients, openStream, resourceEvent, startTestSidecar, tempDir } from '../support/helpers';

describe('concerns: which changes in a watched folder are looked at', () => {
  const files = ['/etc/meshaudit/meshaudit.yaml', '/etc/meshaudit/rules.yaml'];
  const CASES: Array<[string | null, boolean]> = [
    ['meshaudit.yaml', true], // written in place, or an editor's rename onto it
    ['rules.yaml', true],
    ['..data', true], // the kubelet's ConfigMap swap
    ['..2026_12_07_08_00_00.123456789', true],
    [null, true], // a platform that does not say which entry
    ['var', false], // the sidecar's own dataDir beside the config
    ['audit', false],
    ['meshaudit.yaml.swp', false],
    ['other.yaml', false],
  ];
  for (const [name, expected] of CASES) {
    it(`${name ?? 'no name'}: ${expected ? 'read again' : 'ignored'}`, () => {
      expect(concerns(name, files)).to.equal(expected);
    });
  }
});

describe('ConfigReloader', () => {
  let dir: string;
  let file: string;
  let sidecar: Sidecar;
  let reloader: ConfigReloader;
  let logs: Array<Record<string, unknown>>;

  beforeEach(async () => {
    dir = tempDir();
    file = writeSidecarConfig(dir, { limits: { eventsPerBatch: 2 } });
    logs = [];
    const log = jsonLogger((line) => logs.push(JSON.parse(line)));
    sidecar = await startTestSidecar(loadConfig({ file, cwd: dir }).config, undefined, { log });
    reloader = new ConfigReloader({ configFile: file, cwd: dir, rules: [], log });
    reloader.started(sidecar);
  });

  afterEach(async () => {
    reloader.close();
    await sidecar.stop();
  });

  const reloads = async (result: 'applied' | 'refused'): Promise<number> => {
    const text = await sidecar.metrics.prometheus();
    const m = new RegExp(`^meshaudit_config_reloads_total\\{[^}]*result="${result}"[^}]*\\} (\\d+)$`, 'm').exec(text);
    return Number(m?.[1]);
  };

  /** Writes the config file again: `limits`, and `lines` added under `meshaudit:`. */
  const rewrite = (limits: Record<string, number>, ...lines: string[]): void => {
    const text = fs.readFileSync(writeSidecarConfig(dir, { limits }), 'utf8');
    fs.writeFileSync(file, text.replace('meshaudit:\n', `meshaudit:\n${lines.map((l) => `  ${l}\n`).join('')}`));
  };

  it('counts applied and refused reloads, and logs what each changed or why it was refused', async () => {
    expect([await reloads('applied'), await reloads('refused')]).to.deep.equal([0, 0]);
    rewrite({ eventsPerBatch: 2 }, 'log: {level: warn}', 'drainTimeoutSeconds: 3');
    await reloader.reload('SIGHUP');
    expect(sidecar.config.drainTimeoutMs).to.equal(3000);
    rewrite({ eventsPerBatch: 2 }, 'log: {level: nope}');
    await reloader.reload('SIGHUP');
    expect([await reloads('applied'), await reloads('refused')]).to.deep.equal([1, 1]);
    // The first reload's line is info: under the new level warn it is not written; the refusal is.
    expect(logs.filter((l) => l.msg === 'config reloaded')).to.deep.equal([]);
    const refused = logs.find((l) => l.msg === 'config reload refused; the config and rules in force stay');
    expect(refused).to.include({ why: 'SIGHUP' });
    expect(refused?.err).to.match(/meshaudit\.yaml:\d+: meshaudit\.log\.level: /);
  });

  it('refuses a reload whose new tokens file cannot be used, and applies none of its other keys', async () => {
    const tokensFile = path.join(dir, 'tokens.yaml');
    fs.writeFileSync(tokensFile, 'tokens: [', { mode: 0o600 });
    rewrite({ eventsPerBatch: 5 }, `auth: {tokensFile: ${tokensFile}}`, 'log: {level: debug}');
    await reloader.reload('SIGHUP');
    expect(await reloads('refused')).to.equal(1);
    expect(logs.at(-1)?.err).to.include('(meshaudit.auth.tokensFile)');
    expect(sidecar.config.logLevel).to.equal('info');
    expect(sidecar.config.limits.eventsPerBatch).to.equal(2);
    expect(sidecar.config.auth.tokensFile).to.equal(undefined);
    // Still 2 events a batch.
    const c = clients(sidecar.port);
    try {
      const s = openStream(c.audit);
      s.call.write({ identifier: { zone: 'default', instance: 'cp-1' } });
      await s.next();
      s.call.write({ firstSeq: 1, events: [resourceEvent(1), resourceEvent(2), resourceEvent(3)] });
      expect((await s.status)?.details).to.contain('(meshaudit.limits.eventsPerBatch)');
    } finally {
      c.close();
    }
  });

  it('runs reloads one after another', async () => {
    rewrite({ eventsPerBatch: 2 }, 'log: {level: debug}');
    await Promise.all([reloader.reload('SIGHUP'), reloader.reload('SIGHUP'), reloader.reload('SIGHUP')]);
    const lines = logs.filter((l) => l.msg === 'config reloaded' || l.msg === 'config reload started');
    expect(lines.map((l) => l.msg)).to.deep.equal([
      // The first starts under info (its debug line is not written), the others under debug.
      'config reloaded',
      'config reload started',
      'config reloaded',
      'config reload started',
      'config reloaded',
    ]);
    expect(lines.map((l) => l.changed ?? null)).to.deep.equal([['meshaudit.log.level'], null, [], null, []]);
  });
});
