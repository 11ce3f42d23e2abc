// The benchmark's sidecar config (bench/sidecar.ts) on the real built sidecar: what a scenario asks of
// it is what the process serves.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { meshauditClients } from '../../src/client/services';
import { tempDir } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig } from '../support/process';
import { selfSignedCertificate } from '../../bench/tls';

describe('bench sidecar config', function () {
  this.timeout(30_000);

  /** The status a Query (not following) through `client` ends with. */
  function queryStatus(client: grpc.Client): Promise<grpc.StatusObject> {
    return new Promise<grpc.StatusObject>((resolve) => {
      const call = (client as unknown as { Query(r: object): grpc.ClientReadableStream<unknown> }).Query({});
      call.on('data', () => {});
      call.on('error', (e: grpc.ServiceError) => resolve(e));
      call.on('status', resolve);
    });
  }

  it('gives the sidecar the Unix socket it names (s1fu), where its admin caller may Query', async () => {
    const dir = tempDir();
    const socket = path.join(dir, 'meshaudit.sock');
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { zone: 'bench', unixSocket: socket })], {
      cwd: dir,
    });
    try {
      await sidecar.ready;
      const client = new (meshauditClients().ReadService)(`unix://${socket}`, grpc.credentials.createInsecure());
      const ended = await queryStatus(client);
      client.close();
      expect(ended.code, ended.details).to.equal(grpc.status.OK);
    } finally {
      sidecar.proc.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('serves TLS with the certificate tls.ts makes (s1t), which the load generator trusts', async () => {
    const dir = tempDir();
    const tls = selfSignedCertificate(dir);
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { zone: 'bench', tls })], { cwd: dir });
    try {
      const port = await sidecar.ready;
      const ReadService = meshauditClients().ReadService;
      const trusting = new ReadService(`127.0.0.1:${port}`, grpc.credentials.createSsl(fs.readFileSync(tls.certFile)));
      const ended = await queryStatus(trusting);
      trusting.close();
      expect(ended.code, ended.details).to.equal(grpc.status.OK);
      // Not over plaintext: the scenario measures TLS.
      const plain = new ReadService(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      expect((await queryStatus(plain)).code).to.equal(grpc.status.UNAVAILABLE);
      plain.close();
    } finally {
      sidecar.proc.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
