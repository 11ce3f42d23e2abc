// The services the libraries add (health, reflection) answer errors bounded like meshaudit's own:
// health's NOT_FOUND quoted the service name asked for whole, and a status too large for the HTTP/2
// trailers is never answered and stalls its connection.
import { expect } from 'chai';
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
