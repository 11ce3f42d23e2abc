// The Unix socket listener (meshaudit.grpc.unixSocket), against a real sidecar with real grpc-js
// clients: its callers are its configured identity, with its file mode; a TCP caller cannot claim it;
// a stale socket file is replaced, a live one refused; the file goes on a clean stop.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import type { Sidecar } from '../../src/cli/sidecar';
import type { Config } from '../../src/config';
import {
  clients,
  grpcurlOrSkip,
  resourceEvent,
  startTestSidecar,
  tempDir,
  testConfig,
  unary,
  refusal,
} from '../support/helpers';

function unixClients(file: string): ReturnType<typeof clients> {
  return clients(`unix://${file}`);
}

function configWithSocket(dir: string, socket: string): Config {
  const defaults = testConfig(dir);
  return testConfig(dir, {
    auth: { ...defaults.auth, localhostIsAdmin: false },
    unixSocket: {
      path: socket,
      mode: 0o660,
      user: 'zone-1-cp',
      groups: ['mesh-system:control-plane'],
      zones: ['zone-1'],
    },
  });
}

describe('the Unix socket listener', () => {
  let dir: string;
  let socket: string;
  let sidecar: Sidecar;

  before(async () => {
    dir = tempDir();
    socket = path.join(dir, 'meshaudit.sock');
    sidecar = await startTestSidecar(configWithSocket(dir, socket));
  });
  after(async () => {
    await sidecar?.stop();
  });

  it('takes its callers for the configured identity, with the configured file mode', async () => {
    expect(fs.statSync(socket).mode & 0o777).to.equal(0o660);
    const c = unixClients(socket);
    try {
      expect(await unary(c.audit, 'Record', { event: resourceEvent(1) })).to.deep.equal({ audited: true });
      const denied = await refusal(unary(c.rules, 'ListAccessAudits', {}));
      expect([denied.code, denied.details]).to.deep.equal([
        grpc.status.PERMISSION_DENIED,
        'zone-1-cp may not call ListAccessAudits: it needs the read permission (meshaudit.auth.permissions.read)',
      ]);
    } finally {
      c.close();
    }
  });

  // grpcurl 1.8.7 sends the socket's path as the :authority, which Node's HTTP/2 refuses: -authority.
  it('answers the real grpcurl through the socket (-plaintext -unix -authority localhost)', async function () {
    const grpcurl = grpcurlOrSkip(this);
    const call = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve) =>
        execFile(
          grpcurl,
          ['-plaintext', '-unix', '-authority', 'localhost', ...args],
          { timeout: 15_000 },
          (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }),
        ),
      );
    const record = await call(
      '-d',
      JSON.stringify({ event: resourceEvent(9) }),
      socket,
      'meshaudit.v1.AuditService/Record',
    );
    expect(record.code, record.stderr).to.equal(0);
    expect(JSON.parse(record.stdout)).to.deep.equal({ audited: true });
  });

  it('serves on the Unix socket alone when TCP is off (meshaudit.grpc.address "off")', async () => {
    const only = path.join(tempDir(), 'only.sock');
    const alone = await startTestSidecar({ ...configWithSocket(tempDir(), only), grpcAddress: 'off' });
    const c = unixClients(only);
    try {
      expect(alone.port).to.equal(0);
      expect(await unary(c.audit, 'Record', { event: resourceEvent(4) })).to.deep.equal({ audited: true });
    } finally {
      c.close();
      await alone.stop();
    }
  });

  it('does not let a TCP caller claim the socket by its metadata', async () => {
    const c = clients(sidecar.port);
    const claim = new grpc.Metadata();
    claim.set('meshaudit-transport', 'unix-socket');
    try {
      const e = await refusal(unary(c.audit, 'Record', { event: resourceEvent(2) }, claim));
      expect(e.code).to.equal(grpc.status.UNAUTHENTICATED);
    } finally {
      c.close();
    }
  });

  it('replaces a stale socket file, refuses one a live process accepts on, and removes its own on stop', async () => {
    const other = tempDir();
    const file = path.join(other, 's.sock');
    // A process killed while it listened leaves its socket file behind.
    const holder: ChildProcess = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(file)}, () => console.log('up'))`,
    ]);
    await new Promise((resolve) => holder.stdout!.once('data', resolve));
    const live = await startTestSidecar(configWithSocket(tempDir(), file)).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(live?.message).to.equal(
      `can't listen on ${file} (meshaudit.grpc.unixSocket.path): another process accepts on it (is another sidecar running?)`,
    );
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    expect(fs.lstatSync(file).isSocket()).to.equal(true);
    const next = await startTestSidecar(configWithSocket(tempDir(), file));
    const c = unixClients(file);
    try {
      expect(await unary(c.audit, 'Record', { event: resourceEvent(3) })).to.deep.equal({ audited: true });
    } finally {
      c.close();
      await next.stop();
    }
    expect(fs.existsSync(file)).to.equal(false);
  });
});
