// The sidecar's node flags (src/cli/node-flags.ts): every launcher passes them, and a sidecar started
// without them says so at start-up.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { missingNodeFlags, SIDECAR_NODE_FLAGS } from '../../src/cli/node-flags';
import { tempDir } from '../support/helpers';
import { MAIN, spawnSidecar, writeSidecarConfig } from '../support/process';

const ROOT = path.resolve(__dirname, '../../..');
const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8');
const FLAGS = SIDECAR_NODE_FLAGS.join(' ');

describe('node flags of the sidecar', () => {
  it('are named by missingNodeFlags when absent, whether given on the command line or in NODE_OPTIONS', () => {
    expect(SIDECAR_NODE_FLAGS).to.deep.equal(['--max-semi-space-size=4']);
    expect(missingNodeFlags([])).to.deep.equal(['--max-semi-space-size=4']);
    expect(missingNodeFlags(['--inspect', '--max-old-space-size=512'], '--enable-source-maps')).to.deep.equal([
      '--max-semi-space-size=4',
    ]);
    expect(missingNodeFlags(['--max-semi-space-size=4'])).to.deep.equal([]);
    expect(missingNodeFlags([], '--enable-source-maps  --max-semi-space-size=4')).to.deep.equal([]);
    expect(missingNodeFlags([], '"--max-semi-space-size=4"')).to.deep.equal([]);
    // Another value is the operator's choice, and the underscore spelling is the same flag.
    expect(missingNodeFlags(['--max-semi-space-size=8'])).to.deep.equal([]);
    expect(missingNodeFlags(['--max_semi_space_size=4'])).to.deep.equal([]);
  });

  it('are passed by every launcher: make run, npm start, bin/meshaudit, the Dockerfile, the systemd unit', () => {
    // Not the bin's shebang: `env -S` is missing from BusyBox and older coreutils (node-flags.ts).
    expect(fs.readFileSync(MAIN, 'utf8').split('\n')[0]).to.equal('#!/usr/bin/env node');
    expect(read('Makefile')).to.match(new RegExp(`^SIDECAR_NODE_FLAGS := ${FLAGS}$`, 'm'));
    expect(read('bin/meshaudit')).to.match(
      new RegExp(`^exec node ${FLAGS} "\\$\\(dirname .*/dist/src/cli/main\\.js" "\\$@"$`, 'm'),
    );
    expect(JSON.parse(read('package.json')).bin.meshaudit).to.equal('bin/meshaudit');
    expect(read('Makefile')).to.contain('\tnode $(SIDECAR_NODE_FLAGS) dist/src/cli/main.js ');
    expect(JSON.parse(read('package.json')).scripts.start).to.equal(`node ${FLAGS} dist/src/cli/main.js`);
    const entrypoint = /^ENTRYPOINT (.*)$/m.exec(read('deploy/container/Dockerfile'));
    // tini first: PID 1, forwarding the signals to node (the Dockerfile says why).
    expect(JSON.parse(entrypoint![1])).to.deep.equal([
      '/usr/bin/tini',
      '--',
      'node',
      ...SIDECAR_NODE_FLAGS,
      '/opt/meshaudit/dist/src/cli/main.js',
    ]);
    expect(read('deploy/systemd/meshaudit.service')).to.match(
      new RegExp(`^ExecStart=/usr/bin/node ${FLAGS} /opt/meshaudit/dist/src/cli/main.js `, 'm'),
    );
  });

  it('are asked for in a warning by a sidecar started without them, and only then', async () => {
    const startAndStop = async (nodeFlags: readonly string[]): Promise<string> => {
      const dir = tempDir();
      const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir)], { nodeFlags, env: { NODE_OPTIONS: '' } });
      await sidecar.ready;
      sidecar.proc.kill('SIGTERM');
      expect(await sidecar.exited).to.equal(0);
      return sidecar.stderr();
    };
    const without = await startAndStop([]);
    const warning = without.split('\n').find((l) => l.includes('started without the node flags'));
    expect(warning, without).to.not.equal(undefined);
    expect(JSON.parse(warning!)).to.include({ level: 'warn', missing: '--max-semi-space-size=4' });
    expect(await startAndStop(SIDECAR_NODE_FLAGS)).to.not.contain('started without the node flags');
  });
});
