// The benchmark's sidecar config (bench/sidecar.ts) on the real built sidecar: what a scenario asks of
// it is what the process serves.
import * as path from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { meshauditClients } from '../../src/client/services';
import { tempDir } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig } from '../support/process';

describe('bench sidecar config', function () {
  this.timeout(30_000);

  it('gives the sidecar the Unix socket it names (s1fu), where its admin caller may Query', async () => {
    const dir = tempDir();
    const socket = path.join(dir, 'meshaudit.sock');
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { zone: 'bench', unixSocket: socket })], {
      cwd: dir,
    });
    try {
      await sidecar.ready;
      const client = new (meshauditClients().ReadService)(`unix://${socket}`, grpc.credentials.createInsecure());
      const ended = await new Promise<grpc.StatusObject>((resolve) => {
        const call = (client as unknown as { Query(r: object): grpc.ClientReadableStream<unknown> }).Query({});
        call.on('data', () => {});
        call.on('error', (e: grpc.ServiceError) => resolve(e));
        call.on('status', resolve);
      });
      client.close();
      expect(ended.code, ended.details).to.equal(grpc.status.OK);
    } finally {
      sidecar.proc.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
