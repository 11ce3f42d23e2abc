// The configurations and rules deploy/ ships load as the sidecar loads them: an example that start-up
// would refuse is the first thing an operator copies (deploy/kubernetes's: deploy-kubernetes.test.ts).
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../../src/config';
import { loadAccessAuditFiles } from '../../src/config/rules-files';
import { knownTypesOf } from '../../src/cli/sidecar';

const ROOT = path.resolve(__dirname, '../../..');

describe('the configurations deploy/ ships', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshaudit-deploy-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Loads a config text and the rules texts as the sidecar does at start-up; returns the config's warnings. */
  function load(config: string, rules: readonly string[]): readonly string[] {
    const file = path.join(dir, 'meshaudit.yaml');
    fs.writeFileSync(file, config);
    const loaded = loadConfig({ file, cwd: dir });
    const files = rules.map((text, i) => {
      const f = path.join(dir, `rules-${i}.yaml`);
      fs.writeFileSync(f, text);
      return f;
    });
    const audits = loadAccessAuditFiles(files, knownTypesOf(loaded.config), loaded.config.limits);
    expect(audits.warnings).to.deep.equal([]);
    return loaded.warnings;
  }

  const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8');

  it('deploy/examples/meshaudit.yaml and the example rules', () => {
    expect(
      load(read('deploy/examples/meshaudit.yaml'), [read('deploy/examples/access-audit-default.yaml')]),
    ).to.deep.equal([]);
  });

  it('deploy/examples/meshaudit-forwarder.yaml (a forwarder to the central NATS cluster)', () => {
    expect(load(read('deploy/examples/meshaudit-forwarder.yaml'), [])).to.deep.equal([]);
    expect(load(read('deploy/examples/meshaudit-forwarder-local.yaml'), [])).to.deep.equal([]);
  });

  it('deploy/systemd/meshaudit.yaml', () => {
    expect(load(read('deploy/systemd/meshaudit.yaml'), [])).to.deep.equal([]);
  });
});
