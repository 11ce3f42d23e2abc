// `meshaudit health`, the built command, against a real sidecar: what an exec probe runs.
import { expect } from 'chai';
import * as http from 'node:http';
import * as net from 'node:net';
import { freePort, spawnSidecar, writeSidecarConfig, type SpawnedSidecar } from '../support/process';
import { tempDir, waitFor } from '../support/helpers';
import { meshaudit, PACKAGE_VERSION } from '../support/cli';

function post(port: number, urlPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method: 'POST' }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('meshaudit health (the built command against a real sidecar)', function () {
  this.timeout(30_000);
  let sidecar: SpawnedSidecar;
  let address: string;
  let adminPort: number;

  before(async () => {
    sidecar = spawnSidecar(['--config', writeSidecarConfig(tempDir(), { zone: 'zone-1' })]);
    address = `127.0.0.1:${await sidecar.ready}`;
    adminPort = await sidecar.adminPort;
  });
  after(async () => {
    sidecar.proc.kill('SIGTERM');
    await sidecar.exited;
  });

  it('exits 0 and says SERVING while the sidecar serves, for the whole and for each service', async () => {
    expect(await meshaudit(['health', '--address', address])).to.deep.equal({
      code: 0,
      stdout: `SERVING: the sidecar on ${address}\n`,
      stderr: '',
    });
    const rules = await meshaudit(['health', '--address', address, '--service', 'meshaudit.v1.RuleService']);
    expect([rules.code, rules.stdout]).to.deep.equal([0, `SERVING: meshaudit.v1.RuleService on ${address}\n`]);
  });

  it('exits 1 with the reason on stderr after POST /healthcheck/fail, and 0 again after /healthcheck/ok', async () => {
    expect(await post(adminPort, '/healthcheck/fail')).to.equal(200);
    try {
      expect(await meshaudit(['health', '--address', address])).to.deep.equal({
        code: 1,
        stdout: '',
        stderr:
          `meshaudit health: NOT_SERVING: the sidecar on ${address} does not serve ` +
          '(starting, draining, failing, or POST /healthcheck/fail: its admin /ready says why)\n',
      });
    } finally {
      expect(await post(adminPort, '/healthcheck/ok')).to.equal(200);
    }
    expect((await meshaudit(['health', '--address', address])).code).to.equal(0);
  });

  it('exits 1 for a service the sidecar does not have, at once even with --wait', async () => {
    const started = Date.now();
    const waited = await meshaudit(['health', '--address', address, '--service', 'no.such.Service', '--wait', '60']);
    expect(waited.code).to.equal(1);
    // Well under the 60 s asked for: an unknown service is not waited for.
    expect(Date.now() - started).to.be.lessThan(20_000);
    const r = await meshaudit(['health', '--address', address, '--service', 'no.such.Service']);
    expect([r.code, r.stdout, r.stderr]).to.deep.equal([
      1,
      '',
      `meshaudit health: NOT_FOUND: the sidecar on ${address} has no service "no.such.Service"\n`,
    ]);
  });

  it('exits 1 when no sidecar answers, naming the address', async () => {
    const port = await freePort();
    const r = await meshaudit(['health', '--address', `127.0.0.1:${port}`]);
    expect([r.code, r.stderr]).to.deep.equal([
      1,
      `meshaudit health: no sidecar answers on 127.0.0.1:${port} (is a sidecar listening there? see its meshaudit.grpc.address)\n`,
    ]);
  });

  it('with --wait, exits 0 once a sidecar that starts after it began serves', async () => {
    const port = await freePort();
    const late = `127.0.0.1:${port}`;
    const noSidecar = `meshaudit health: no sidecar answers on ${late} (is a sidecar listening there? see its meshaudit.grpc.address)\n`;
    let stderr = '';
    const run = meshaudit(['health', '--address', late, '--wait', '20'], { onStderr: (all) => (stderr = all) });
    await waitFor(() => stderr.includes(noSidecar), 'the first check to find no sidecar');
    const starting = spawnSidecar(['--config', writeSidecarConfig(tempDir(), { address: late })]);
    try {
      expect(await starting.ready).to.equal(port);
      expect(await run).to.deep.equal({ code: 0, stdout: `SERVING: the sidecar on ${late}\n`, stderr: noSidecar });
    } finally {
      starting.proc.kill('SIGTERM');
      await starting.exited;
    }
  });

  it('with --wait, exits 1 once SECONDS pass without SERVING, having asked more than once', async () => {
    const port = await freePort();
    const r = await meshaudit(['health', '--address', `127.0.0.1:${port}`, '--wait', '2']);
    expect([r.code, r.stdout]).to.deep.equal([1, '']);
    // The same answer each time: said once.
    const [, checks] =
      new RegExp(
        `^meshaudit health: no sidecar answers on 127\\.0\\.0\\.1:${port} \\(.*\\)\\n` +
          'meshaudit health: not SERVING within --wait 2 s \\((\\d+) checks\\)\\n$',
      ).exec(r.stderr) ?? [];
    expect(Number(checks), r.stderr).to.be.at.least(2);
  });

  it('with --wait, says nothing of a last check the wait cut short, only that the wait ended', async () => {
    // A listener that takes connections and never speaks HTTP/2: every check waits for its deadline.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const r = await meshaudit(['health', '--address', `127.0.0.1:${port}`, '--wait', '1']);
      expect([r.code, r.stdout, r.stderr]).to.deep.equal([
        1,
        '',
        'meshaudit health: not SERVING within --wait 1 s (1 check)\n',
      ]);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('refuses a --wait that is not a number of seconds with exit 2, naming the flag', async () => {
    for (const [value, says] of [
      ['-1', '--wait: must be a number of seconds, 0 or more, got "-1"'],
      ['soon', '--wait: must be a number of seconds, 0 or more, got "soon"'],
      ['1e3', '--wait: must be a number of seconds, 0 or more, got "1e3"'],
      [undefined, '--wait needs a number of seconds'],
    ] as const) {
      const r = await meshaudit(['health', '--address', address, '--wait', ...(value === undefined ? [] : [value])]);
      expect([r.code, r.stdout], String(value)).to.deep.equal([2, '']);
      expect(r.stderr, String(value)).to.equal(
        `meshaudit health: ${says} (usage: meshaudit health [--address HOST:PORT] [--token-file FILE] ` +
          '[--cacert FILE [--cert FILE --key FILE]] [--service NAME] [--wait SECONDS])\n',
      );
    }
  });

  it('prints its usage with --help, the version with --version, and refuses a wrong flag with exit 2', async () => {
    const help = await meshaudit(['health', '--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(
      /^Usage: meshaudit health \[--address HOST:PORT\] .* \[--service NAME\] \[--wait SECONDS\]\n/,
    );
    expect(help.stdout).to.contain('  0  SERVING');
    expect(await meshaudit(['health', '--version'])).to.deep.equal({
      code: 0,
      stdout: `meshaudit ${PACKAGE_VERSION}\n`,
      stderr: '',
    });
    for (const [args, says] of [
      [['--servce', 'x'], 'unknown flag "--servce", did you mean "--service"?'],
      [['--service'], '--service needs a service name'],
      [['extra'], 'unexpected "extra"'],
      [['--cert', 'c.pem'], '--cert and --key go together'],
    ] as const) {
      const r = await meshaudit(['health', ...args]);
      expect([r.code, r.stdout], args.join(' ')).to.deep.equal([2, '']);
      expect(r.stderr, args.join(' ')).to.match(
        new RegExp(`^meshaudit health: ${says.replace(/[?"]/g, '\\$&')} \\(usage: `),
      );
    }
  });
});
