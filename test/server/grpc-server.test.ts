// The services the libraries add (health, reflection) answer errors bounded like meshaudit's own:
// health's NOT_FOUND quoted the service name asked for whole, and a status too large for the HTTP/2
// trailers is never answered and stalls its connection.
import { expect } from 'chai';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import type { Sidecar } from '../../src/cli/sidecar';
import { healthClient, startTestSidecar, tempDir, testConfig } from '../support/helpers';
import { ReflectionClient, ReflectionError } from '../support/reflection-client';

describe('grpc server: health and reflection errors', () => {
  let sidecar: Sidecar;
  const statusBytes = 2048;

  before(async () => {
    const config = testConfig(tempDir());
    sidecar = await startTestSidecar({ ...config, limits: { ...config.limits, statusBytes } });
  });
  after(() => sidecar.stop());

  it('answers a health check of a 1 MiB unknown service name NOT_FOUND, its message cut to the status bytes', async () => {
    const health = healthClient(sidecar.port);
    try {
      const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
        health.Check({ service: 's'.repeat(1024 * 1024) }, (e: grpc.ServiceError | null) =>
          e ? resolve(e) : reject(new Error('answered')),
        ),
      );
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
      expect(err.details).to.match(/^Health status unknown for service s+\.\.\.$/);
      expect(err.details.length).to.equal(statusBytes / 2);
      // The same channel goes on.
      const ok = await new Promise<{ status: string }>((resolve, reject) =>
        health.Check({ service: '' }, (e: Error | null, r: { status: string }) => (e ? reject(e) : resolve(r))),
      );
      expect(ok.status).to.equal('SERVING');
    } finally {
      health.close();
    }
  });

  it('answers reflection asked for a 100 KiB unknown symbol with an error whose message is cut', async () => {
    const client = new ReflectionClient(sidecar.port);
    try {
      const err = await client.fileContainingSymbol('x'.repeat(100 * 1024)).then(
        () => expect.fail('answered'),
        (e: unknown) => e as ReflectionError,
      );
      expect(err).to.be.instanceOf(ReflectionError);
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
      expect(err.message.length).to.be.at.most(statusBytes / 2);
      expect(err.message).to.match(/x\.\.\.$/);
      expect(await client.listServices()).to.include('meshaudit.v1.AuditService');
    } finally {
      client.close();
    }
  });
});

describe('grpc server: limits changed by a config reload', () => {
  /** A raw HTTP/2 connection once the server's settings came, or undefined when the server closed it. */
  function connect(port: number): Promise<http2.ClientHttp2Session | undefined> {
    return new Promise((resolve) => {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on('error', () => {});
      session.once('remoteSettings', () => resolve(session));
      session.once('close', () => resolve(undefined));
    });
  }

  it('gives new connections the new streamsPerConnection, and closes those past a lowered connections', async () => {
    const config = testConfig(tempDir());
    const sidecar = await startTestSidecar(config);
    const open: http2.ClientHttp2Session[] = [];
    try {
      const first = await connect(sidecar.port);
      open.push(first!);
      expect(first?.remoteSettings.maxConcurrentStreams).to.equal(100);
      const limits = { ...config.limits, streamsPerConnection: 7, connections: 1 };
      expect((await sidecar.reload({ ...config, limits }, undefined)).changed).to.deep.equal([
        'meshaudit.limits.connections',
        'meshaudit.limits.streamsPerConnection',
      ]);
      expect(await connect(sidecar.port)).to.equal(undefined);
      // The one open keeps its settings; once it ends, a new one gets the new ones.
      expect(first?.remoteSettings.maxConcurrentStreams).to.equal(100);
      first!.close();
      let next: http2.ClientHttp2Session | undefined;
      const deadline = Date.now() + 5000;
      while (next === undefined && Date.now() < deadline) next = await connect(sidecar.port);
      open.push(next!);
      expect(next?.remoteSettings.maxConcurrentStreams).to.equal(7);
    } finally {
      for (const s of open) s?.destroy();
      await sidecar.stop();
    }
  });
});
