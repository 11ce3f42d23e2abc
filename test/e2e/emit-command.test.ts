// `meshaudit emit`, the built command, against a real sidecar: a file of events through AuditClient.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, spawnSidecar, writeSidecarConfig, type SpawnedSidecar } from '../support/process';
import { readRecords, tempDir } from '../support/helpers';
import { BIN, meshaudit, PACKAGE_VERSION } from '../support/cli';
import { spawnSync } from 'node:child_process';

const EXAMPLE_RULES = path.resolve(__dirname, '../../../deploy/examples/access-audit-default.yaml');

function event(name: string, over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    date: '2022-09-21T09:31:42+02:00',
    action: 'UPDATE',
    resource: { type: 'Mesh', name },
    user: { name: 'john.doe@kuma.io' },
    ...over,
  });
}

describe('meshaudit emit (the built command against a real sidecar)', function () {
  this.timeout(60_000);
  let sidecar: SpawnedSidecar;
  let address: string;
  let dir: string;
  let logPath: string;
  const write = (name: string, lines: string[]): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  };

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

  it('streams every event of a file, more than the queue holds, each written once, and prints plain progress off a terminal', async () => {
    const count = 12_000; // past the AuditClient's default maxQueued (10,000): the send loop waits for room
    const file = write(
      'many.jsonl',
      Array.from({ length: count }, (_, i) => event(`mesh-${i}`)),
    );
    const r = await meshaudit(['emit', '--zone', 'zone-1', '--instance', 'many', '--address', address, file]);
    expect([r.code, r.stdout]).to.deep.equal([0, `${count} recorded, 0 skipped, 0 refused\n`]);
    expect(r.stderr).to.not.contain('\u001b');
    expect(r.stderr.trimEnd().split('\n').at(-1)).to.match(
      new RegExp(`^meshaudit emit: ${count}/${count} acknowledged, \\d+ events/s, 0 remaining$`),
    );
    // The file also holds the sidecar's own record of its --rules AccessAudit.
    const names = readRecords(logPath)
      .map((l) => JSON.parse(l).resource)
      .filter((res) => res.type === 'Mesh')
      .map((res) => res.name as string);
    expect(new Set(names).size).to.equal(count);
    expect(names).to.have.length(count);
  });

  it('draws a progress bar on a terminal: acknowledged of the total, events/s, remaining', async function () {
    // util-linux script(1) gives the command a pseudo-terminal; Node has none of its own.
    if (spawnSync('script', ['--version']).status !== 0) this.skip(); // no script(1) here: the plain lines are tested above
    const file = write('tty.jsonl', [event('tty-1'), event('tty-2')]);
    const command = [BIN, 'emit', '--zone', 'zone-1', '--instance', 'tty', '--address', address, file].join(' ');
    const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8' });
    expect(r.status, r.stdout).to.equal(0);
    expect(r.stdout).to.contain('\u001b['); // drawn in place
    expect(r.stdout).to.match(/2\/2 acknowledged \| \d+ events\/s \| 0 remaining/);
    expect(r.stdout).to.contain('2 recorded, 0 skipped, 0 refused');
    expect(r.stdout).to.not.contain('meshaudit emit: 2/2 acknowledged'); // no plain lines
  });

  it('reports refused events by line, those it checks itself and those the sidecar rejects, and exits 1', async () => {
    const file = write('mixed.jsonl', [
      '# a comment', // 1
      event('ok-1'), // 2
      event('bad-1', { mesch: 'default' }), // 3
      '{', // 4
      event('insight', { resource: { type: 'DataplaneInsight', name: 'dp', mesh: 'default' } }), // 5
      event('bad-2', { action: 'CREAT' }), // 6
    ]);
    const r = await meshaudit(['emit', '--zone=zone-1', '--instance', 'mixed', '--address', address, file]);
    expect(r.code).to.equal(1);
    const [counts, ...lines] = r.stdout.trimEnd().split('\n');
    // Recorded and skipped events acknowledged in one batch are counted together.
    expect(counts).to.match(
      /^(1 recorded, 1 skipped|0 recorded, 0 skipped, 2 recorded or skipped \(their batches had both\)), 3 refused$/,
    );
    expect(lines).to.have.length(3);
    expect(lines[0]).to.match(/^line 3: event\.mesch: unknown field/);
    expect(lines[1]).to.match(/^line 4: not JSON: /);
    expect(lines[2]).to.equal('line 6: action: unknown action "CREAT", did you mean "CREATE"?');
  });

  it('stops at once when the sidecar refuses the stream (another zone), sends nothing, and exits 4', async () => {
    const before = readRecords(logPath).length;
    const r = await meshaudit(['emit', '--zone', 'zone-2', '--address', address, write('z.jsonl', [event('z')])]);
    expect(r.code).to.equal(4);
    expect(r.stdout).to.equal('0 recorded, 0 skipped, 0 refused, 1 not acknowledged\n');
    expect(r.stderr).to.contain(
      'meshaudit emit: the sidecar refused the stream: INVALID_ARGUMENT: identifier.zone: this sidecar serves zone "zone-1", not "zone-2"',
    );
    expect(readRecords(logPath)).to.have.length(before);
  });

  it('says that no sidecar answers and exits 3; refuses mistakes with exit 2', async () => {
    const port = await freePort();
    const none = await meshaudit(['emit', '--address', `127.0.0.1:${port}`, write('n.jsonl', [event('n')])]);
    expect([none.code, none.stdout, none.stderr]).to.deep.equal([
      3,
      '',
      `meshaudit emit: no sidecar answers on 127.0.0.1:${port} (is a sidecar listening there? see its meshaudit.grpc.address)\n`,
    ]);
    for (const [args, says] of [
      [['--zon', 'x'], 'unknown flag "--zon", did you mean "--zone"?'],
      [['--instance'], '--instance needs an instance name'],
      [['a', 'b'], 'one FILE at most, got "a" and "b"'],
    ] as const) {
      const r = await meshaudit(['emit', ...args]);
      expect([r.code, r.stdout], args.join(' ')).to.deep.equal([2, '']);
      expect(r.stderr, args.join(' ')).to.satisfy((s: string) => s.startsWith(`meshaudit emit: ${says} (usage: `));
    }
    const missing = path.join(dir, 'missing.jsonl');
    const unreadable = await meshaudit(['emit', missing]);
    expect(unreadable.code).to.equal(2);
    expect(unreadable.stderr).to.equal(
      `meshaudit emit: cannot read ${missing}: ENOENT: no such file or directory, open '${missing}'\n`,
    );
  });

  it('prints its usage with --help and the version with --version', async () => {
    const help = await meshaudit(['emit', '--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/^Usage: meshaudit emit \[--zone ZONE\] \[--instance NAME\] \[--address HOST:PORT\]/);
    expect(help.stdout).to.contain('  4  the sidecar refused the stream');
    expect(await meshaudit(['emit', '--version'])).to.deep.equal({
      code: 0,
      stdout: `meshaudit ${PACKAGE_VERSION}\n`,
      stderr: '',
    });
  });
});
