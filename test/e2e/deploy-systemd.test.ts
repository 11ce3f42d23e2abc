// deploy/systemd/meshaudit.service: its hardening, that it agrees with the meshaudit.yaml made for it (the
// folders it may write, the gRPC address its readiness check asks), that systemd parses it, and that the
// readiness check, run from this checkout, waits for a real sidecar and gives up when there is none.
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../../src/config';
import { tempDir, waitFor } from '../support/helpers';
import { freePort, spawnSidecar, writeSidecarConfig } from '../support/process';

const ROOT = path.resolve(__dirname, '../../..');
const UNIT = path.join(ROOT, 'deploy/systemd/meshaudit.service');
const CONFIG = path.join(ROOT, 'deploy/systemd/meshaudit.yaml');
/** Where the unit's header installs the checkout. */
const INSTALLED = '/opt/meshaudit';

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

/** A spawned command: its exit code (or signal) once it ends, and its stderr so far. */
function runCommand(argv: readonly string[]): { exited: Promise<number | string>; stderr(): string } {
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  return {
    exited: new Promise((resolve) => proc.on('close', (code, signal) => resolve(code ?? signal ?? -1))),
    stderr: () => stderr,
  };
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
  /** A flag's value in the readiness command; undefined when it is not given. */
  const flag = (name: string): string | undefined =>
    readiness.includes(name) ? readiness[readiness.indexOf(name) + 1] : undefined;

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

  it("is ready when meshaudit health of the installed checkout says SERVING on the config's gRPC address", () => {
    expect(readiness.slice(0, 2)).to.deep.equal([`${INSTALLED}/bin/meshaudit`, 'health']);
    expect(one('ExecStart')).to.contain(` ${INSTALLED}/dist/src/cli/main.js `);
    expect(flag('--address')).to.equal(config.grpcAddress);
    // Bounded: the check gives up within TimeoutStartSec.
    expect(Number(flag('--wait')))
      .to.be.greaterThan(0)
      .and.lessThan(Number(one('TimeoutStartSec')));
    expect(unit.get('Unit')!.get('Before')).to.deep.equal(['kuma-cp.service']);
  });

  it('parses without a warning from systemd-analyze verify', function () {
    const which = spawnSync('sh', ['-c', 'command -v systemd-analyze']);
    if (which.status !== 0) this.skip(); // systemd-analyze is not installed: the checks above stand alone.
    const run = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    // Where node or the checkout are installed elsewhere than in the unit, systemd says so: a host's matter, not the unit's.
    const warnings = run.stderr.split('\n').filter((l) => l !== '' && !/is not executable|No such file/.test(l));
    expect(warnings).to.deep.equal([]);
  });

  describe('its readiness check, run from this checkout against a real sidecar', () => {
    /** The unit's command with this checkout for the installed one, asking 127.0.0.1:port for at most `waitSeconds`. */
    const command = (port: number, waitSeconds: number): string[] =>
      readiness.map((a, i) => {
        if (a.startsWith(`${INSTALLED}/`)) return path.join(ROOT, a.slice(INSTALLED.length));
        if (readiness[i - 1] === '--address') return `127.0.0.1:${port}`;
        return readiness[i - 1] === '--wait' ? String(waitSeconds) : a;
      });

    it('waits for the sidecar that starts after it, and succeeds once it serves', async () => {
      const port = await freePort();
      const check = runCommand(command(port, 60));
      await waitFor(() => check.stderr().includes('no sidecar answers'), 'the check to find no sidecar yet');
      const sidecar = spawnSidecar(['--config', writeSidecarConfig(tempDir(), { address: `127.0.0.1:${port}` })]);
      expect(await sidecar.ready).to.equal(port);
      expect(await check.exited, check.stderr()).to.equal(0);
      sidecar.proc.kill('SIGTERM');
      expect(await sidecar.exited).to.equal(0);
    });

    it('fails when nothing answers, once its wait is over', async () => {
      const check = runCommand(command(await freePort(), 1));
      expect(await check.exited).to.equal(1);
      expect(check.stderr()).to.match(/\nmeshaudit health: not SERVING within --wait 1 s \(\d+ checks\)\n$/);
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
