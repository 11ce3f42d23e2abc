// `meshaudit record`, the built command (bin/meshaudit, as the README shows it), against a real sidecar
// process: what a newcomer types and sees.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { freePort, MAIN, spawnSidecar, writeSidecarConfig, type SpawnedSidecar } from '../support/process';
import { readRecords, tempDir } from '../support/helpers';
import { type CliOptions, type CliRun, meshaudit, PACKAGE_VERSION } from '../support/cli';

const EXAMPLE_RULES = path.resolve(__dirname, '../../../deploy/examples/access-audit-default.yaml');
const DEMO_EVENTS = path.resolve(__dirname, '../../../deploy/examples/events.jsonl');
const USAGE_LINE =
  '(usage: meshaudit record [--address HOST:PORT] [--token-file FILE] [--cacert FILE [--cert FILE --key FILE]] [FILE|-])';

/** Runs `meshaudit record ...args` to its end. */
function record(args: string[], opts: CliOptions = {}): Promise<CliRun> {
  return meshaudit(['record', ...args], opts);
}

/** A sidecar process of zone-1 with the example rules (every type but the *Insight ones), dates in UTC. */
async function startSidecar(dir: string): Promise<{ sidecar: SpawnedSidecar; address: string; logPath: string }> {
  const logPath = path.join(dir, 'audit', 'audit.log');
  const config = writeSidecarConfig(dir, { zone: 'zone-1' });
  const sidecar = spawnSidecar(['--config', config, '--rules', EXAMPLE_RULES], { env: { TZ: 'UTC' } });
  return { sidecar, address: `127.0.0.1:${await sidecar.ready}`, logPath };
}

async function stop(sidecar: SpawnedSidecar): Promise<void> {
  sidecar.proc.kill('SIGTERM');
  await sidecar.exited;
}

function writeEvents(lines: string[]): string {
  const file = path.join(tempDir('meshaudit-record-'), 'events.jsonl');
  fs.writeFileSync(file, lines.join('\n'));
  return file;
}

/** An event of the demo's shape; `over` replaces top-level fields. */
function event(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    date: '2022-09-21T09:31:42+02:00',
    action: 'UPDATE',
    resource: { type: 'TrafficPermission', name: 'web-to-backend', mesh: 'default' },
    user: { name: 'john.doe@kuma.io', groups: ['team-a'] },
    ...over,
  };
}

function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

describe('meshaudit record (the built command against a real sidecar)', function () {
  this.timeout(30_000);

  describe('with a sidecar', () => {
    let sidecar: SpawnedSidecar;
    let address: string;
    let logPath: string;
    /** Records already in the file: each test looks at the ones it adds. */
    let seen = 0;
    const added = (): string[] => (fs.existsSync(logPath) ? readRecords(logPath).slice(seen) : []);

    before(async () => ({ sidecar, address, logPath } = await startSidecar(tempDir())));
    beforeEach(() => (seen = fs.existsSync(logPath) ? readRecords(logPath).length : 0));
    after(() => stop(sidecar));

    it('records the demo file of the README and prints what the README shows', async () => {
      const r = await record(['--address', address, DEMO_EVENTS]);
      expect(r.stdout).to.equal(
        [
          'line 1: audited',
          'line 2: audited',
          'line 3: audited',
          'line 4: not audited (no rule covers it)',
          'line 5: INVALID_ARGUMENT: event.action: unknown action "CREAT", did you mean "CREATE"?',
          '',
        ].join('\n'),
      );
      expect(r.stderr).to.equal('');
      expect(r.code).to.equal(1);
      expect(added()[0]).to.equal(
        '{"date":"2022-09-21T07:31:42Z","action":"UPDATE","resource":{"name":"web-to-backend","mesh":"default","type":"TrafficPermission"},"user":{"name":"john.doe@kuma.io","groups":["team-a"]}}',
      );
      expect(added()).to.have.length(3);
    });

    it('numbers each result by its line in the file, blank and comment lines counted, and exits 0 when every event is accepted', async () => {
      const file = writeEvents([
        '# two events, between blank and comment lines', // 1
        '', // 2
        JSON.stringify(event()), // 3
        '   ', // 4
        '# a token event', // 5
        JSON.stringify(event({ resource: { type: 'DataplaneInsight', name: 'backend-1', mesh: 'default' } })), // 6
        '',
      ]);
      const r = await record(['--address', address, file]);
      expect(r.stdout).to.equal('line 3: audited\nline 6: not audited (no rule covers it)\n');
      expect(r.code).to.equal(0);
      // Standard input too, with Windows line ends.
      const piped = await record([`--address=${address}`, '-'], {
        input: `# comment\r\n\r\n${JSON.stringify(event())}\r\n`,
      });
      expect(piped.stdout).to.equal('line 3: audited\n');
      expect(piped.code).to.equal(0);
      expect(added()).to.have.length(2);
    });

    it('refuses an event with a misspelt field or a value of the wrong JSON type, naming the field path, and sends it not', async () => {
      const token = {
        action: 'GENERATE_DATAPLANE_TOKEN',
        token: {
          id: 't-1',
          expires_at: '2022-09-22T09:31:42Z',
          claims: { mesh: 'default', tags: { 'kuma.io/service': 'backend' } },
        },
        user: { name: 'john.doe@kuma.io' },
      };
      const file = writeEvents([
        '# proto names are accepted as well as JSON names', // 1
        JSON.stringify(token), // 2
        '# misspelt fields', // 3
        '{"action":"UPDATE","resource":{"type":"TrafficPermission","name":"web-to-backend","mesch":"default"},"user":{"name":"john.doe@kuma.io","grups":["team-a"]}}', // 4
        JSON.stringify(event({ user: { name: 'john.doe@kuma.io', groups: 'g' } })), // 5
        JSON.stringify(event({ id: 7, user: { name: 'john.doe@kuma.io', groups: ['team-a', 1] } })), // 6
        JSON.stringify({
          ...token,
          token: { ...token.token, claims: { tags: { 'kuma.io/service': 1 } }, expiresAt: '2022-09-22T09:31:42Z' },
        }), // 7
        '["not", "an", "event"]', // 8
        '{"action": "UPDATE",', // 9
        JSON.stringify(event({ resource: null })), // 10
      ]);
      const r = await record(['--address', address, file]);
      const lines = r.stdout.split('\n');
      expect(lines.slice(0, 10)).to.deep.equal([
        'line 2: audited',
        'line 4: event.resource.mesch: unknown field, did you mean "mesh"?',
        'line 4: event.user.grups: unknown field, did you mean "groups"?',
        'line 5: event.user.groups: must be a list of strings, got "g"',
        'line 6: event.user.groups[1]: must be a string, got 1',
        'line 6: event.id: must be a string, got 7',
        'line 7: event.token.claims.tags["kuma.io/service"]: must be a string, got 1',
        'line 7: event.token.expiresAt: the same field as "expires_at": give it once',
        'line 8: event: must be an object, got a list',
        'line 9: not JSON: Expected double-quoted property name in JSON at position 20',
      ]);
      // null is "not set" in the JSON mapping: then the sidecar names what is missing.
      expect(lines.slice(10)).to.deep.equal(['line 10: INVALID_ARGUMENT: event.resource: is required for UPDATE', '']);
      expect(r.code).to.equal(1);
      expect(added().map((l) => JSON.parse(l))).to.deep.equal([
        {
          date: JSON.parse(added()[0]).date,
          action: 'GENERATE_DATAPLANE_TOKEN',
          token: {
            id: 't-1',
            expiresAt: '2022-09-22T09:31:42Z',
            claims: { mesh: 'default', tags: { 'kuma.io/service': 'backend' } },
          },
          user: { name: 'john.doe@kuma.io', groups: [] },
        },
      ]);
    });
  });

  it('refuses unknown flags, a missing --address value and a second file in one line, with exit code 2', async () => {
    const cases: Array<[string[], string]> = [
      [['--adress', '127.0.0.1:5690'], 'unknown flag "--adress", did you mean "--address"?'],
      [['-v'], 'unknown flag "-v"'],
      [['--help=yes'], '--help takes no value'],
      [['events.jsonl', '--address'], '--address needs a value, HOST:PORT'],
      [['--address', '--help'], '--address needs a value, HOST:PORT'],
      [['--address='], '--address needs a value, HOST:PORT'],
      [['a.jsonl', 'b.jsonl'], 'one FILE at most, got "a.jsonl" and "b.jsonl"'],
    ];
    for (const [args, problem] of cases) {
      const r = await record(args);
      expect(r.stderr, args.join(' ')).to.equal(`meshaudit record: ${problem} ${USAGE_LINE}\n`);
      expect(r.stdout, args.join(' ')).to.equal('');
      expect(r.code, args.join(' ')).to.equal(2);
    }
  });

  it('names a file it cannot read in one line, with exit code 2', async () => {
    const dir = tempDir();
    const missing = path.join(dir, 'missing.jsonl');
    const cases: Array<[string, string]> = [
      [missing, `cannot read ${missing}: ENOENT: no such file or directory, open '${missing}'`],
      [dir, `cannot read ${dir}: EISDIR: illegal operation on a directory, read`],
    ];
    for (const [file, message] of cases) {
      const r = await record(['--address', '127.0.0.1:1', file]);
      expect(r.stderr).to.equal(`meshaudit record: ${message}\n`);
      expect(r.stdout).to.equal('');
      expect(r.code).to.equal(2);
    }
  });

  it('says once that no sidecar answers, sends nothing, and exits 3', async () => {
    const port = await freePort();
    const r = await record(['--address', `127.0.0.1:${port}`, DEMO_EVENTS]);
    expect(r.stderr).to.equal(
      `meshaudit record: no sidecar answers on 127.0.0.1:${port} (is a sidecar listening there? see its meshaudit.grpc.address)\n`,
    );
    expect(r.stdout).to.equal('');
    expect(r.code).to.equal(3);
  });

  it('suggests make run when no sidecar answers on the default address', async function () {
    // Only when nothing listens there: a developer's own sidecar may (the input is empty either way).
    if (await portInUse(5690)) this.skip();
    const r = await record([]);
    expect(r.stderr).to.equal('meshaudit record: no sidecar answers on 127.0.0.1:5690 (start one with: make run)\n');
    expect(r.code).to.equal(3);
  });

  it('stops at the first line the sidecar no longer answers, and exits 3', async () => {
    const { sidecar, address } = await startSidecar(tempDir());
    // Enough events that the command is still sending when the sidecar is killed.
    const file = writeEvents(Array.from({ length: 5000 }, (_, i) => JSON.stringify(event({ id: `e-${i}` }))));
    let killed = false;
    const r = await record(['--address', address, file], {
      onStdout: (all) => {
        if (!killed && all.includes('line 1: audited\n')) {
          killed = true;
          sidecar.proc.kill('SIGKILL');
        }
      },
    });
    await sidecar.exited;
    const m =
      /^meshaudit record: the sidecar on 127\.0\.0\.1:\d+ stopped answering at line (\d+); the lines after it were not sent\n$/.exec(
        r.stderr,
      );
    expect(m, r.stderr).to.not.equal(null);
    const stoppedAt = Number(m![1]);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).to.have.length(stoppedAt);
    expect(lines.slice(0, -1).every((l, i) => l === `line ${i + 1}: audited`)).to.equal(true);
    expect(lines[lines.length - 1]).to.match(new RegExp(`^line ${stoppedAt}: UNAVAILABLE: `));
    expect(r.code).to.equal(3);
  });

  it('prints the version with --version, and meshaudit-record is gone', async () => {
    const r = await record(['--version']);
    expect([r.code, r.stdout, r.stderr]).to.deep.equal([0, `meshaudit ${PACKAGE_VERSION}\n`, '']);
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8'));
    expect(pkg.bin).to.deep.equal({ meshaudit: 'bin/meshaudit' });
  });

  it('lists its exit codes in --help', async () => {
    const r = await record(['--help']);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^Usage: meshaudit record \[--address HOST:PORT\] \[--token-file FILE\] /);
    expect(r.stdout).to.contain(
      [
        'Exit codes:',
        '  0  every event was accepted (audited or not)',
        '  1  at least one event was refused (not JSON, unknown field, wrong type, or rejected by the sidecar)',
        '  2  invalid flags, or a file cannot be read: nothing was sent',
        '  3  no sidecar answers on the address (or it stopped answering): the rest was not sent',
        '  4  the sidecar refused the caller (UNAUTHENTICATED, PERMISSION_DENIED): the rest was not sent',
      ].join('\n'),
    );
  });

  it('sends a bearer token from a file or MESHAUDIT_TOKEN, and stops with exit 4 when the caller is refused', async () => {
    const dir = tempDir();
    const tokensFile = path.join(dir, 'tokens.yaml');
    const made = spawnSync(
      process.execPath,
      [MAIN, 'token', 'add', 'demo', '--groups', 'mesh-system:control-plane', '--file', tokensFile],
      {
        encoding: 'utf8',
      },
    );
    const token = made.stdout.trim();
    const config = writeSidecarConfig(dir, { zone: 'zone-1' });
    const text = fs.readFileSync(config, 'utf8');
    fs.writeFileSync(
      config,
      text.replace('meshaudit:\n', `meshaudit:\n  auth: {localhostIsAdmin: false, tokensFile: ${tokensFile}}\n`),
    );
    const sidecar = spawnSidecar(['--config', config, '--rules', EXAMPLE_RULES], { env: { TZ: 'UTC' } });
    const address = `127.0.0.1:${await sidecar.ready}`;
    try {
      const events = writeEvents([JSON.stringify(event()), JSON.stringify(event())]);
      const anonymous = await record(['--address', address, events]);
      expect(anonymous.code).to.equal(4);
      expect(anonymous.stdout).to.equal(
        'line 1: UNAUTHENTICATED: a credential is required: a bearer token in the authorization metadata (meshaudit token add)\n',
      );
      expect(anonymous.stderr).to.include('the sidecar refused this caller at line 1');
      const tokenFile = path.join(dir, 'token');
      fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
      const withFile = await record(['--address', address, '--token-file', tokenFile, events]);
      expect([withFile.code, withFile.stdout]).to.deep.equal([0, 'line 1: audited\nline 2: audited\n']);
      const withEnv = await record(['--address', address, events], { env: { MESHAUDIT_TOKEN: token } });
      expect(withEnv.code).to.equal(0);
    } finally {
      await stop(sidecar);
    }
  });
});
