// `make demo-zones`, through its built script (make would only add the build): two real sidecars in a
// temp working directory, what the demo prints, its exit code, and that it leaves no sidecar running.
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readRecords, tempDir, waitFor } from '../support/helpers';

const DEMO = path.resolve(__dirname, '../../demo/zones.js');
const REPO = path.resolve(__dirname, '../../..');

interface Demo {
  exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
  kill(signal: NodeJS.Signals): void;
}

function runDemo(cwd: string): Demo {
  const proc = spawn(process.execPath, [DEMO], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (err += d));
  return {
    exited: new Promise((resolve) => proc.on('close', (code, signal) => resolve(code ?? (signal ? -1 : null)))),
    stdout: () => out,
    stderr: () => err,
    kill: (signal) => proc.kill(signal),
  };
}

/** The sidecars' pids, from the demo's "<zone>: sidecar pid N on ..." lines. */
function pids(stdout: string): number[] {
  return [...stdout.matchAll(/^zone-\d: sidecar pid (\d+) on /gm)].map((m) => Number(m[1]));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('make demo-zones (demo/zones.js)', function () {
  this.timeout(30_000);

  it("runs two zones, changes zone-2's rules, shows each zone keeps its own records and rules, exits 0", async () => {
    const cwd = tempDir('meshaudit-demo-zones-');
    // A previous run's leftovers go; the rest of ./var (make run's records) stays.
    fs.mkdirSync(path.join(cwd, 'var/demo-zones/zone-1/audit'), { recursive: true });
    fs.writeFileSync(path.join(cwd, 'var/demo-zones/zone-1/audit/audit.log'), '{"stale":"zone-2"}\n');
    fs.mkdirSync(path.join(cwd, 'var/audit'));
    fs.writeFileSync(path.join(cwd, 'var/audit/audit.log'), 'make run\n');

    const demo = runDemo(cwd);
    const code = await demo.exited;
    const out = demo.stdout();
    expect(code, `${out}\n${demo.stderr()}`).to.equal(0);
    expect(out).to.match(/^zone-1: control plane cp-0, round 1: CREATE recorded, UPDATE skipped, DELETE recorded$/m);
    expect(out).to.match(/^zone-2: control plane cp-0, round 1: CREATE skipped, UPDATE skipped, DELETE recorded$/m);
    expect(out).to.match(
      /^zone-2: bin\/meshaudit rules apply -f var\/demo-zones\/zone-2\/change\.yaml --address 127\.0\.0\.1:\d+\n {2}\{\n {4}"created": \[\n {6}"zone-2-everything"\n {4}\]\n {2}\}$/m,
    );
    expect(out).to.match(/^zone-1: control plane cp-0, round 2: CREATE recorded, UPDATE skipped, DELETE recorded$/m);
    expect(out).to.match(/^zone-2: control plane cp-0, round 2: CREATE recorded, UPDATE recorded, DELETE recorded$/m);
    expect(out).to.contain(
      'refused: 3 INVALID_ARGUMENT: identifier.zone: this sidecar serves zone "zone-2", not "zone-1"',
    );
    expect(out).to.contain(
      '--- zone-1\nAccessAudits in force:\n  zone-1-changes (version 1): CREATE, DELETE of TrafficRoute\n',
    );
    expect(out).to.contain(
      '--- zone-2\nAccessAudits in force:\n  zone-2-deletes (version 1): DELETE\n  zone-2-everything (version 1): every action\n',
    );
    expect(out).to.match(/^records: 4 in var\/demo-zones\/zone-1\/audit\/, e\.g\.\n {2}\{"date":.*"zone-1-route-2"/m);
    expect(out).to.match(/^records: 5 in var\/demo-zones\/zone-2\/audit\/, e\.g\.\n {2}\{"date":.*"zone-2-route-2"/m);
    expect(out).to.not.contain('FAIL');
    expect(out).to.contain('  ok   both sidecars stopped on SIGTERM with exit code 0 (0, 0)\n');
    expect(out).to.match(/demo-zones: every check holds\n$/);

    // The files say what the output says: each zone's records name its own zone alone.
    for (const [zone, other, count] of [
      ['zone-1', 'zone-2', 4],
      ['zone-2', 'zone-1', 5],
    ] as const) {
      const dir = path.join(cwd, 'var/demo-zones', zone);
      const lines = readRecords(path.join(dir, 'audit/audit.log'));
      expect(lines).to.have.length(count);
      for (const line of lines) {
        expect(JSON.parse(line).resource.name).to.match(new RegExp(`^${zone}-`));
        expect(line).to.not.contain(other);
      }
      for (const file of ['meshaudit.yaml', 'rules.yaml', 'meshaudit.log', 'data/checkpoint.jsonl']) {
        expect(fs.existsSync(path.join(dir, file)), file).to.equal(true);
      }
      expect(fs.readFileSync(path.join(dir, 'meshaudit.yaml'), 'utf8')).to.contain(`zone: ${zone}\n`);
    }
    expect(fs.readFileSync(path.join(cwd, 'var/audit/audit.log'), 'utf8')).to.equal('make run\n');
    const [one, two] = pids(out);
    expect([alive(one), alive(two)]).to.deep.equal([false, false]);
  });

  it('stops both sidecars with SIGTERM when interrupted, and exits 130', async () => {
    const cwd = tempDir('meshaudit-demo-zones-');
    const demo = runDemo(cwd);
    await waitFor(() => pids(demo.stdout()).length === 2, 'both sidecars started');
    demo.kill('SIGINT');
    expect(await demo.exited, demo.stderr()).to.equal(130);
    expect(demo.stdout()).to.contain('demo-zones: interrupted, stopping the sidecars\n');
    expect(demo.stdout()).to.not.contain('every check holds');
    expect(pids(demo.stdout()).filter(alive)).to.deep.equal([]);
    for (const zone of ['zone-1', 'zone-2']) {
      const log = fs.readFileSync(path.join(cwd, 'var/demo-zones', zone, 'meshaudit.log'), 'utf8');
      expect(log, zone).to.contain('"msg":"received SIGTERM"').and.to.contain('"msg":"meshaudit stopped"');
    }
  });

  it('exits 1 naming what failed when it cannot make ./var/demo-zones', async () => {
    const cwd = tempDir('meshaudit-demo-zones-');
    fs.writeFileSync(path.join(cwd, 'var'), 'a file, not a folder');
    const demo = runDemo(cwd);
    expect(await demo.exited).to.equal(1);
    expect(demo.stderr()).to.match(/^demo-zones: ENOTDIR: not a directory, .*'var\/demo-zones/);
  });

  it('is a target of make help', () => {
    const out = execFileSync('make', ['--no-print-directory', '-C', REPO, 'help'], { encoding: 'utf8' });
    expect(out).to.match(/^make demo-zones +two sidecars for zone-1 and zone-2/m);
  });
});
