// The real built process, as an operator runs it: flags, start-up errors, signals.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import * as net from 'node:net';
import { freePort, logLines, MAIN, spawnSidecar, writeSidecarConfig } from '../support/process';
import { SIDECAR_NODE_FLAGS } from '../../src/cli/node-flags';
import { clients, resourceEvent, tempDir, unary, waitFor } from '../support/helpers';
import { meshaudit, PACKAGE_VERSION } from '../support/cli';

function run(args: string[], cwd: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...SIDECAR_NODE_FLAGS, MAIN, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 15_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Resolves once something accepts TCP connections on `port` (polled: the sidecar says nothing at that moment). */
async function waitForPort(port: number): Promise<void> {
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function writeFile(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

const RULES_ALL = 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n';

const config = (dir: string): string => writeSidecarConfig(dir);

/** Awaits `p`, failing with the step's name (not a bare mocha timeout) after 8 s. */
async function step<T>(name: string, p: Promise<T>, context: () => string = () => ''): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${name} ${context()}`)), 8000)),
  );
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('meshaudit command line (real process)', function () {
  this.timeout(30_000);

  it('runs as bin/meshaudit, through a symlink too (as npm links it), with the node flags', async () => {
    const dir = tempDir();
    const link = path.join(dir, 'meshaudit');
    fs.symlinkSync(path.resolve(__dirname, '../../../bin/meshaudit'), link);
    const s = spawn(link, ['--config', writeSidecarConfig(dir)], { env: { ...process.env, NODE_OPTIONS: '' } });
    let err = '';
    s.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => s.on('close', resolve));
    await waitFor(() => logLines(err).some((l) => l.msg === 'meshaudit started'), 'the start line');
    s.kill('SIGTERM');
    expect(await exited).to.equal(0);
    expect(err).to.not.contain('started without the node flags');
  });

  it('lists its targets with make help', () => {
    const out = execFileSync('make', ['--no-print-directory', '-C', path.resolve(__dirname, '../../..'), 'help'], {
      encoding: 'utf8',
    });
    for (const target of ['run', 'test', 'demo', 'build', 'lint', 'bench', 'soak', 'fuzz', 'clean']) {
      expect(out).to.match(new RegExp(`^make ${target} `, 'm'));
    }
  });

  it('prints its usage with --help and exits 0', () => {
    const r = run(['--help'], tempDir());
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^Usage: meshaudit \[--config FILE\] \[--rules FILE\.\.\.\] \[--check-config\]/);
  });

  it('lists its subcommands in --help, and each answers --help and --version through bin/meshaudit', async () => {
    const top = await meshaudit(['--help']);
    const listed = [...top.stdout.matchAll(/^ {2}([a-z]+) /gm)].map((m) => m[1]);
    expect(listed).to.include.members(['emit', 'health', 'keygen', 'record', 'rules', 'token', 'verify']);
    for (const command of ['emit', 'health', 'keygen', 'record', 'rules', 'token', 'verify']) {
      const help = await meshaudit([command, '--help']);
      expect([help.code, help.stderr], command).to.deep.equal([0, '']);
      expect(help.stdout, command).to.match(new RegExp(`^Usage:\\s+meshaudit ${command} `));
      const version = await meshaudit([command, '--version']);
      expect(version, command).to.deep.equal({ code: 0, stdout: `meshaudit ${PACKAGE_VERSION}\n`, stderr: '' });
    }
  });

  it('prints the package version with --version', () => {
    const r = run(['--version'], tempDir());
    expect(r.code).to.equal(0);
    expect(r.stdout).to.equal(`meshaudit ${require('../../../package.json').version}\n`);
  });

  it('refuses an unknown flag with exit code 2, naming it', () => {
    const r = run(['--rulez', 'x.yaml'], tempDir());
    expect(r.code).to.equal(2);
    expect(r.stderr).to.equal(
      'meshaudit: unknown flag "--rulez", did you mean "--rules"?\nRun "meshaudit --help" for the usage.\n',
    );
  });

  it('checks the built-in defaults with --check-config, relative to the working directory, writing nothing', () => {
    const dir = tempDir();
    const r = run(['--check-config'], dir);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.contain(
      `configuration OK: zone default, gRPC 127.0.0.1:5690, data ${fs.realpathSync(dir)}/var`,
    );
    expect(r.stdout).to.contain(`file backend ${fs.realpathSync(dir)}/var/audit/audit.log (rotation on)`);
    expect(fs.readdirSync(dir)).to.deep.equal([]);
    // The defaults trust every local process (Kong Mesh's localhost rule): it says so.
    expect(r.stderr).to.include('meshaudit: warning: callers are not authenticated: every local process is the admin');
  });

  it('says nothing of unauthenticated callers once every caller needs a credential', () => {
    const dir = tempDir();
    const tokens = path.join(dir, 'tokens.yaml');
    expect(run(['token', 'add', 'cp', '--groups', 'mesh-system:control-plane', '--file', tokens], dir).code).to.equal(
      0,
    );
    const cfg = writeFile(dir, 'm.yaml', `meshaudit:\n  auth: {localhostIsAdmin: false, tokensFile: ${tokens}}\n`);
    const r = run(['--config', cfg, '--check-config'], dir);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.not.include('not authenticated');
  });

  it('stops start-up on a bad config, naming every key and its line, before anything is written', () => {
    const dir = tempDir();
    const cfg = writeFile(
      dir,
      'bad.yaml',
      `meshaudit:\n  zoen: east\n  dataDir: ${dir}/data\nkmesh:\n  access:\n    audit:\n      backends:\n      - type: file\n        file:\n          path: ${dir}/audit.log\n          rotation:\n            maxSizeMb: ten\n`,
    );
    const r = run(['--config', cfg], dir);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain('meshaudit: invalid configuration, nothing was started:');
    expect(r.stderr).to.match(/bad\.yaml:2: meshaudit\.zoen: unknown field, did you mean "zone"\?/);
    expect(r.stderr).to.match(/bad\.yaml:12: kmesh\.access\.audit\.backends\[0\]\.file\.rotation\.maxSizeMb: .*"ten"/);
    expect(fs.readdirSync(dir)).to.deep.equal(['bad.yaml']);
  });

  it('stops start-up on a bad rules file, naming the file, line and nearest valid value', () => {
    const dir = tempDir();
    const rules = writeFile(
      dir,
      'rules.yaml',
      'type: AccessAudit\nname: a1\nrules:\n- types: ["TrafficPermision"]\n  access: ["CREAT"]\n',
    );
    const r = run(['--config', config(dir), '--rules', rules], dir);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain('meshaudit: invalid AccessAudit rules, nothing was started:');
    expect(r.stderr).to.contain(
      `${rules}:4: rules[0].types[0]: unknown type "TrafficPermision", did you mean "TrafficPermission"?`,
    );
    expect(r.stderr).to.contain(`${rules}:5: rules[0].access[0]: unknown action "CREAT", did you mean "CREATE"?`);
    expect(fs.existsSync(path.join(dir, 'audit'))).to.equal(false);
    expect(fs.existsSync(path.join(dir, 'data'))).to.equal(false);
  });

  it('refuses places the sidecar cannot use, naming the key: a dataDir that is a file, an audit path that is a directory or sits among the state files', () => {
    const dir = tempDir();
    writeFile(dir, 'state', 'not a directory');
    fs.mkdirSync(path.join(dir, 'logs'));
    const cfg = writeFile(
      dir,
      'c.yaml',
      `meshaudit:\n  dataDir: ${dir}/state\nkmesh:\n  access:\n    audit:\n      backends:\n      - type: file\n        file:\n          path: ${dir}/logs\n      - type: file\n        file:\n          path: ${dir}/state/audit.log\n`,
    );
    const r = run(['--config', cfg, '--check-config'], dir);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain(`c.yaml:2: meshaudit.dataDir: ${dir}/state exists and is not a directory`);
    expect(r.stderr).to.contain(
      `c.yaml:9: kmesh.access.audit.backends[0].file.path: ${dir}/logs is a directory; name the audit file in it`,
    );
    expect(r.stderr).to.contain(
      `c.yaml:12: kmesh.access.audit.backends[1].file.path: is directly in meshaudit.dataDir (${dir}/state), where the sidecar keeps its own state; use a sub-folder such as ${dir}/state/audit`,
    );
  });

  it('says in one line that the port is in use, exits 1 and writes nothing', async () => {
    const dir = tempDir();
    const first = spawnSidecar(['--config', config(dir)]);
    const port = await first.ready;
    try {
      const other = tempDir();
      const cfg = writeSidecarConfig(other, { address: `127.0.0.1:${port}` });
      const r = run(['--config', cfg], other);
      expect(r.code).to.equal(1);
      expect(
        r.stderr
          .trim()
          .split('\n')
          .filter((l) => !l.startsWith('{')),
      ).to.deep.equal([
        `meshaudit: can't start: can't listen on 127.0.0.1:${port} (meshaudit.grpc.address): the address is already in use (is another sidecar running?)`,
      ]);
      expect(fs.readdirSync(other)).to.deep.equal(['meshaudit.yaml']);
    } finally {
      first.proc.kill('SIGTERM');
      await first.exited;
    }
  });

  it('lets a call that comes while it starts wait until it serves, instead of answering UNIMPLEMENTED', async () => {
    const dir = tempDir();
    const port = await freePort();
    const rules = writeFile(dir, 'rules.yaml', 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n');
    // The port is bound first; a slow disk then holds start-up on the rules files' records.
    const sidecar = spawnSidecar(
      ['--config', writeSidecarConfig(dir, { address: `127.0.0.1:${port}` }), '--rules', rules],
      {
        env: { SLOW_WRITE_MS: '1500' },
        nodeFlags: [...SIDECAR_NODE_FLAGS, '--require', path.resolve(__dirname, '../support/fs-faults.js')],
      },
    );
    const c = clients(port);
    try {
      await step('the port bound', waitForPort(port));
      expect(sidecar.stderr()).to.not.include('meshaudit started');
      const deadline = new Date(Date.now() + 20_000);
      const reply = await new Promise<{ audited: boolean }>((resolve, reject) =>
        c.audit.Record(
          { event: resourceEvent(1) },
          { deadline },
          (e: grpc.ServiceError | null, r: { audited: boolean }) => (e ? reject(e) : resolve(r)),
        ),
      );
      expect(reply).to.deep.equal({ audited: true });
      expect(sidecar.stderr()).to.include('meshaudit started');
    } finally {
      c.close();
      sidecar.proc.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('refuses a second sidecar on the same data directory, naming the running one', async () => {
    const dir = tempDir();
    const first = spawnSidecar(['--config', config(dir)]);
    await step('first sidecar starts', first.ready);
    try {
      const r = run(['--config', config(dir)], dir);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(
        `meshaudit: can't start: ${dir}/data (meshaudit.dataDir) is in use by another meshaudit (pid ${first.proc.pid})`,
      );
    } finally {
      first.proc.kill('SIGTERM');
      await step('first sidecar stops', first.exited, () => first.stderr());
    }
    // After a SIGKILL the lock is stale and the next sidecar takes it over.
    const killed = spawnSidecar(['--config', config(dir)]);
    await step('second sidecar starts', killed.ready);
    killed.proc.kill('SIGKILL');
    await step('second sidecar dies', killed.exited);
    const next = spawnSidecar(['--config', config(dir)]);
    await step('third sidecar starts', next.ready, () => next.stderr());
    next.proc.kill('SIGTERM');
    expect(await step('third sidecar stops', next.exited, () => next.stderr())).to.equal(0);
  });

  it('keeps the stored AccessAudits when started without --rules, and --check-config shows what will be in force', async () => {
    const dir = tempDir();
    const rules = writeFile(dir, 'r.yaml', RULES_ALL);
    const first = spawnSidecar(['--config', config(dir), '--rules', rules]);
    await step('sidecar with --rules starts', first.ready);
    first.proc.kill('SIGTERM');
    await step('sidecar with --rules stops', first.exited);
    const check = run(['--config', config(dir), '--check-config'], dir);
    expect(check.code).to.equal(0);
    expect(check.stdout).to.contain(
      `1 AccessAudit resource(s) in force at start-up (the store ${dir}/data/access-audits.json): all`,
    );
    const again = spawnSidecar(['--config', config(dir)]);
    const port = await step('sidecar without --rules starts', again.ready);
    const c = clients(port);
    try {
      expect(await unary(c.audit, 'Record', { event: resourceEvent(1) })).to.deep.equal({ audited: true });
    } finally {
      c.close();
      again.proc.kill('SIGTERM');
      await again.exited;
    }
  });

  it('stops on a corrupt AccessAudit store with exit code 2, in --check-config too', () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'data'));
    writeFile(dir, 'data/access-audits.json', '{"format": 1, "accessAudits": [');
    for (const extra of [['--check-config'], []]) {
      const r = run(['--config', config(dir), ...extra], dir);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.contain(
        `meshaudit: can't start: the AccessAudit store ${dir}/data/access-audits.json is corrupt`,
      );
    }
    expect(fs.readdirSync(path.join(dir, 'data'))).to.deep.equal(['access-audits.json']);
  });

  it('names a config file it cannot read', () => {
    const dir = tempDir();
    const r = run(['--config', path.join(dir, 'missing.yaml')], dir);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain(`cannot read config file ${path.join(dir, 'missing.yaml')}`);
  });

  it('stops gracefully on SIGTERM with exit code 0', async () => {
    const dir = tempDir();
    const s = spawnSidecar(['--config', config(dir), '--rules', writeFile(dir, 'r.yaml', RULES_ALL)]);
    const port = await s.ready;
    const c = clients(port);
    try {
      expect(await unary(c.audit, 'Record', { event: resourceEvent(1) })).to.deep.equal({ audited: true });
    } finally {
      c.close();
      s.proc.kill('SIGTERM');
    }
    expect(await s.exited).to.equal(0);
    // The rules file's seed (CREATE AccessAudit "all", covered by its own rule) and the call.
    expect(logLines(s.stderr()).find((l) => l.msg === 'meshaudit stopped')).to.include({ recorded: 2 });
    expect(fs.readFileSync(path.join(dir, 'audit/audit.log'), 'utf8').split('\n')).to.have.length(3);
  });

  it('reloads the rules files on SIGHUP, and keeps the rules in force when the new file is invalid', async () => {
    const dir = tempDir();
    const rules = writeFile(
      dir,
      'r.yaml',
      'type: AccessAudit\nname: tokens\nrules:\n- access: ["GENERATE_USER_TOKEN"]\n',
    );
    const s = spawnSidecar(['--config', config(dir), '--rules', rules]);
    const port = await s.ready;
    const c = clients(port);
    try {
      expect(await unary(c.audit, 'Record', { event: resourceEvent(1) })).to.deep.equal({ audited: false });
      fs.writeFileSync(rules, RULES_ALL);
      const reloaded = (n: number): Promise<void> =>
        new Promise((resolve) => {
          const poll = setInterval(() => {
            if ((s.stderr().match(/"config reloaded"|config reload refused/g) ?? []).length >= n) {
              clearInterval(poll);
              resolve();
            }
          }, 20);
        });
      s.proc.kill('SIGHUP');
      await reloaded(1);
      expect(await unary(c.audit, 'Record', { event: resourceEvent(2) })).to.deep.equal({ audited: true });
      fs.writeFileSync(rules, 'type: AccessAudit\nname: all\nrules:\n- access: ["NOPE"]\n');
      s.proc.kill('SIGHUP');
      await reloaded(2);
      expect(s.stderr()).to.contain('config reload refused; the config and rules in force stay');
      expect(await unary(c.audit, 'Record', { event: resourceEvent(3) })).to.deep.equal({ audited: true });
    } finally {
      c.close();
      s.proc.kill('SIGTERM');
      await s.exited;
    }
  });

  it('answers the health service while serving', async () => {
    const dir = tempDir();
    const s = spawnSidecar(['--config', config(dir)]);
    const port = await s.ready;
    const protoLoader = await import('@grpc/proto-loader');
    const { protoPath } = await import('grpc-health-check');
    const def = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { enums: String })) as any;
    const health = new def.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const reply = await new Promise<any>((resolve, reject) =>
        health.Check({ service: 'meshaudit.v1.AuditService' }, (e: Error, r: unknown) => (e ? reject(e) : resolve(r))),
      );
      expect(reply.status).to.equal('SERVING');
    } finally {
      health.close();
      s.proc.kill('SIGTERM');
    }
    expect(await s.exited).to.equal(0);
  });
});
