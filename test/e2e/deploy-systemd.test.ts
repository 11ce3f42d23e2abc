// deploy/systemd/meshaudit.service: its hardening, that it agrees with the meshaudit.yaml made for it (the
// folders it may write, the probe listener its readiness check asks), that systemd parses it, and that the
// readiness check waits for a real sidecar and gives up when there is none.
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../../src/config';
import { tempDir } from '../support/helpers';
import { freePort, spawnSidecar, writeSidecarConfig } from '../support/process';

const ROOT = path.resolve(__dirname, '../../..');
const UNIT = path.join(ROOT, 'deploy/systemd/meshaudit.service');
const CONFIG = path.join(ROOT, 'deploy/systemd/meshaudit.yaml');

/** A unit file as section -> key -> every value given (in order; an empty assignment is an empty string). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    if (line.trim() === '' || /^[#;]/.test(line)) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = new Map();
      sections.set(header[1], section);
      continue;
    }
    const [, key, value] = /^([A-Za-z]+)=(.*)$/.exec(line) ?? [];
    expect(key, `a key=value line in a section: ${line}`).to.not.equal(undefined);
    expect(section, `a section before ${line}`).to.not.equal(undefined);
    section!.set(key, [...(section!.get(key) ?? []), value.trim()]);
  }
  return sections;
}

/** The exit code of a spawned command. */
function exitOf(argv: readonly string[]): Promise<number | string> {
  const proc = spawn(argv[0], argv.slice(1), { stdio: 'ignore' });
  return new Promise((resolve) => proc.on('close', (code, signal) => resolve(code ?? signal ?? -1)));
}

describe('deploy/systemd/meshaudit.service', () => {
  const unit = parseUnit(fs.readFileSync(UNIT, 'utf8'));
  const service = unit.get('Service')!;
  const one = (key: string): string => {
    expect(service.get(key), key).to.have.length(1);
    return service.get(key)![0];
  };
  const config = loadConfig({ file: CONFIG, cwd: '/' }).config;
  const readiness = one('ExecStartPost').split(/\s+/);
  const url = new URL(readiness.find((a) => a.startsWith('http://'))!);

  it('is hardened: a read-only system, no privilege, no capability, its own files alone', () => {
    expect(
      Object.fromEntries([...service].filter(([k]) => HARDENING.includes(k)).map(([k, [v]]) => [k, v])),
    ).to.deep.equal({
      ProtectSystem: 'strict',
      NoNewPrivileges: 'yes',
      PrivateTmp: 'yes',
      ProtectHome: 'yes',
      CapabilityBoundingSet: '',
      AmbientCapabilities: '',
      UMask: '0077',
    });
    expect(one('User')).to.not.equal('root');
    // V8's JIT writes the code it runs: MemoryDenyWriteExecute would stop node at start-up.
    expect(service.has('MemoryDenyWriteExecute')).to.equal(false);
  });

  it('reloads on SIGHUP, restarts on failure but not on an invalid configuration (exit 2)', () => {
    expect(one('ExecReload')).to.equal('/bin/kill -HUP $MAINPID');
    expect(one('Restart')).to.equal('always');
    expect(one('RestartPreventExitStatus')).to.equal('2');
    expect(Number(one('TimeoutStopSec')) * 1000).to.be.greaterThan(config.drainTimeoutMs);
  });

  it('may write the folders of the config made for it, and runs on that config', () => {
    const writable = one('ReadWritePaths').split(/\s+/);
    const folders = [config.dataDir, one('WorkingDirectory'), ...config.backends.map((b) => path.dirname(b.path))];
    for (const folder of folders) {
      expect(writable.some((w) => folder === w || folder.startsWith(`${w}/`), folder)).to.equal(true);
    }
    expect(one('ExecStart')).to.match(/ --config \/etc\/meshaudit\/meshaudit\.yaml /);
    expect(fs.readFileSync(CONFIG, 'utf8')).to.contain('/etc/meshaudit/meshaudit.yaml');
  });

  it('is ready when /ready of the probe listener answers, and orders the control plane after it', () => {
    expect(url.pathname).to.equal('/ready');
    expect(`${url.hostname}:${url.port}`).to.equal(config.admin.probeAddress);
    // Bounded: curl gives up within TimeoutStartSec.
    const retries = Number(readiness[readiness.indexOf('--retry') + 1]);
    const delay = Number(readiness[readiness.indexOf('--retry-delay') + 1]);
    expect(retries * delay).to.be.lessThan(Number(one('TimeoutStartSec')));
    expect(readiness).to.include.members(['-sf', '--retry-connrefused']);
    expect(unit.get('Unit')!.get('Before')).to.deep.equal(['kuma-cp.service']);
  });

  it('parses without a warning from systemd-analyze verify', function () {
    const which = spawnSync('sh', ['-c', 'command -v systemd-analyze']);
    if (which.status !== 0) this.skip(); // systemd-analyze is not installed: the checks above stand alone.
    const run = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    // Where node or curl are installed elsewhere than in the unit, systemd says so: a host's matter, not the unit's.
    const warnings = run.stderr.split('\n').filter((l) => l !== '' && !/is not executable|No such file/.test(l));
    expect(warnings).to.deep.equal([]);
  });

  describe('its readiness check, run against a real sidecar', () => {
    /** The unit's command, asking `port`, retrying at most `retries` times for as many seconds. */
    const command = (port: number, retries: number): string[] => {
      const argv = readiness.map((a) => (a.startsWith('http://') ? `http://127.0.0.1:${port}/ready` : a));
      for (const flag of ['--retry', '--retry-max-time']) argv[argv.indexOf(flag) + 1] = String(retries);
      return argv;
    };
    before(function () {
      if (!fs.existsSync(readiness[0])) this.skip(); // no curl at the unit's path here
    });

    it('waits for the sidecar that starts after it, and succeeds once it is ready', async () => {
      const port = await freePort();
      const check = exitOf(command(port, 60));
      const dir = tempDir();
      const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { probe: `127.0.0.1:${port}` })]);
      expect(await sidecar.probePort).to.equal(port);
      expect(await check).to.equal(0);
      sidecar.proc.kill('SIGTERM');
      expect(await sidecar.exited).to.equal(0);
    });

    it('fails when nothing answers, after its retries', async () => {
      expect(await exitOf(command(await freePort(), 1))).to.equal(7); // curl: could not connect
    });
  });
});

/** The hardening keys the unit must have, with the values the test expects. */
const HARDENING = [
  'ProtectSystem',
  'NoNewPrivileges',
  'PrivateTmp',
  'ProtectHome',
  'CapabilityBoundingSet',
  'AmbientCapabilities',
  'UMask',
];
