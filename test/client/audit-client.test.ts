import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { newToken, tokenHash } from '../../src/auth/tokens';
import type { Sidecar } from '../../src/cli/sidecar';
import { AuditClient, type AuditClientOptions, RejectedEventError, sendAll } from '../../src/client/audit-client';
import type { BatchAck } from '../../src/contract';
import { formatTokens } from '../../src/config/tokens-file';
import type { AuditEvent } from '../../src/events/event';
import { expectExactlyOnce, events as crashEvents, writeConfig as writeCrashConfig } from '../support/exactly-once';
import { readRecords, resourceEvent, startTestSidecar, tempDir, testConfig, waitFor } from '../support/helpers';
import { freePort, spawnSidecar } from '../support/process';

const ZONE = 'zone-1';
const event = (seq: number, action = 'CREATE'): AuditEvent => resourceEvent(seq, action) as AuditEvent;

/** The names of the records written, as the sequence each carries (`route-<seq>`). */
function written(sidecar: Sidecar): number[] {
  return readRecords(sidecar.config.backends[0].path).map((l) => Number(JSON.parse(l).resource.name.slice(6)));
}

describe('AuditClient', function () {
  this.timeout(30_000);
  let sidecar: Sidecar;
  let dir: string;
  const open: AuditClient[] = [];

  function client(over: Partial<AuditClientOptions> = {}): AuditClient {
    const c = new AuditClient({
      address: `127.0.0.1:${sidecar.port}`,
      identifier: { zone: ZONE, instance: `cp-${open.length}` },
      backoff: { initialMs: 10, maxMs: 100 },
      ...over,
    });
    open.push(c);
    return c;
  }

  beforeEach(async () => {
    dir = tempDir();
    sidecar = await startTestSidecar(testConfig(dir, { zone: ZONE }));
  });
  afterEach(async () => {
    await Promise.allSettled(open.splice(0).map((c) => c.close()));
    await sidecar.stop();
  });

  it('sends a full batch as soon as it has batchSize events, without waiting for batchDelayMs', async () => {
    const acks: BatchAck[] = [];
    const c = client({ batchSize: 10, batchDelayMs: 600_000, onAck: (a) => acks.push(a) });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => c.send(event(i + 1))));
    expect(results.map((r) => r.seq)).to.deep.equal(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(results.every((r) => r.outcome === 'recorded')).to.equal(true);
    expect(acks.map((a) => [a.firstSeq, a.recorded])).to.deep.equal([
      [1, 10],
      [11, 10],
      [21, 10],
    ]);
    expect(written(sidecar)).to.deep.equal(results.map((r) => r.seq));
  });

  it('sends a partial batch once batchDelayMs has passed since its first event', async () => {
    const acks: BatchAck[] = [];
    const c = client({ batchSize: 100, batchDelayMs: 20, onAck: (a) => acks.push(a) });
    const results = await Promise.all([c.send(event(1)), c.send(event(2)), c.send(event(3))]);
    expect(results).to.deep.equal([
      { seq: 1, outcome: 'recorded' },
      { seq: 2, outcome: 'recorded' },
      { seq: 3, outcome: 'recorded' },
    ]);
    expect(acks.map((a) => [a.firstSeq, a.recorded])).to.deep.equal([[1, 3]]);
  });

  it('rejects an invalid event with the sidecar reason and resolves the rest of its batch', async () => {
    const c = client({ batchSize: 3, batchDelayMs: 600_000 });
    const [a, b, d] = await Promise.allSettled([c.send(event(1)), c.send(event(2, 'CREAT')), c.send(event(3))]);
    expect(a).to.deep.equal({ status: 'fulfilled', value: { seq: 1, outcome: 'recorded' } });
    expect(d).to.deep.equal({ status: 'fulfilled', value: { seq: 3, outcome: 'recorded' } });
    const reason = (b as PromiseRejectedResult).reason;
    expect(reason).to.be.instanceOf(RejectedEventError);
    expect([reason.seq, reason.reason]).to.deep.equal([2, 'action: unknown action "CREAT", did you mean "CREATE"?']);
    expect(written(sidecar)).to.deep.equal([1, 3]);
  });

  it('continues after the resume point the sidecar gives a new client of the same identifier', async () => {
    const first = client({ identifier: { zone: ZONE, instance: 'cp-x' }, batchDelayMs: 0 });
    await Promise.all([first.send(event(1)), first.send(event(2))]);
    await first.close();
    const second = client({ identifier: { zone: ZONE, instance: 'cp-x' }, batchDelayMs: 0 });
    expect(await second.send(event(3))).to.deep.equal({ seq: 3, outcome: 'recorded' });
    expect(written(sidecar)).to.deep.equal([1, 2, 3]);
  });

  it('holds at most maxQueued events: later sends wait, in order, until acks make room', async () => {
    // Nothing listens at first: nothing is acknowledged, so the bound is met and held.
    await sidecar.stop();
    const port = await freePort();
    let reconnects = 0;
    const c = client({
      address: `127.0.0.1:${port}`,
      maxQueued: 5,
      batchSize: 2,
      batchDelayMs: 0,
      onReconnect: () => reconnects++,
    });
    const sends = Array.from({ length: 8 }, (_, i) => c.send(event(i + 1)));
    expect([c.queued, c.blocked]).to.deep.equal([5, 3]);
    await waitFor(() => reconnects >= 2, 'reconnect attempts to a closed port');
    expect([c.queued, c.blocked]).to.deep.equal([5, 3]);
    let most = 0;
    const sampled = sends.map((p) =>
      p.then((r) => {
        most = Math.max(most, c.queued);
        return r;
      }),
    );
    sidecar = await startTestSidecar(testConfig(tempDir(), { zone: ZONE, grpcAddress: `127.0.0.1:${port}` }));
    const results = await Promise.all(sampled);
    expect(results.map((r) => r.seq)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(most).to.be.at.most(5);
    expect(written(sidecar)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('never has more than maxQueued events queued while a CP sends 5,000 as fast as it can', async () => {
    const c = client({ maxQueued: 100, batchSize: 25, batchDelayMs: 1 });
    let most = 0;
    const sends: Promise<unknown>[] = [];
    for (let i = 1; i <= 5000; i++) {
      sends.push(c.send(event(i)));
      most = Math.max(most, c.queued);
    }
    expect(c.blocked).to.equal(5000 - 100);
    await Promise.all(sends.map((p) => p.then(() => (most = Math.max(most, c.queued)))));
    expect(most).to.equal(100);
    expect(written(sidecar).length).to.equal(5000);
  });

  it('close() sends the partial batch at once, waits for every ack, then refuses new sends', async () => {
    const c = client({ batchSize: 100, batchDelayMs: 600_000 });
    const sends = Array.from({ length: 250 }, (_, i) => c.send(event(i + 1)));
    await c.close();
    expect((await Promise.all(sends)).length).to.equal(250);
    expect(written(sidecar).length).to.equal(250);
    const after = await c.send(event(251)).catch((e: Error) => e);
    expect((after as Error).message).to.equal('the AuditClient is closed');
  });

  it('rejects every pending and later send at once for another zone, without a reconnect', async () => {
    let reconnects = 0;
    const c = client({ identifier: { zone: 'zone-2', instance: 'cp-0' }, onReconnect: () => reconnects++ });
    const sends = [c.send(event(1)), c.send(event(2))];
    const errs = (await Promise.allSettled(sends)).map((r) => (r as PromiseRejectedResult).reason);
    expect(errs.map((e) => e.code)).to.deep.equal([grpc.status.INVALID_ARGUMENT, grpc.status.INVALID_ARGUMENT]);
    expect(errs[0].details).to.match(/zone/);
    expect(((await c.send(event(3)).catch((e) => e)) as grpc.ServiceError).code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(reconnects).to.equal(0);
    expect(written(sidecar)).to.deep.equal([]);
  });

  it('rejects a malformed identifier at once', async () => {
    let reconnects = 0;
    const c = client({ identifier: { zone: ZONE, instance: 'a b' }, onReconnect: () => reconnects++ });
    const err = (await c.send(event(1)).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(reconnects).to.equal(0);
  });

  it('stops sendAll at once on a wrong zone instead of retrying until its deadline', async () => {
    let reconnects = 0;
    const started = Date.now();
    const err = (await sendAll(`127.0.0.1:${sidecar.port}`, { zone: 'zone-2', instance: 'cp-0' }, [event(1)], {
      deadlineMs: 20_000,
      onReconnect: () => reconnects++,
    }).catch((e) => e)) as grpc.ServiceError;
    expect([err.code, reconnects]).to.deep.equal([grpc.status.INVALID_ARGUMENT, 0]);
    expect(Date.now() - started).to.be.below(10_000);
  });

  describe('with tokens required', () => {
    const cp = newToken();
    const reader = newToken();

    beforeEach(async () => {
      await sidecar.stop();
      dir = tempDir();
      const tokensFile = path.join(dir, 'tokens.yaml');
      fs.writeFileSync(
        tokensFile,
        formatTokens([
          { name: 'zone-1-cp', groups: ['mesh-system:control-plane'], zones: [ZONE], sha256: tokenHash(cp) },
          { name: 'zone-2-cp', groups: ['mesh-system:control-plane'], zones: ['zone-2'], sha256: tokenHash(reader) },
        ]),
        { mode: 0o600 },
      );
      const defaults = testConfig(dir);
      sidecar = await startTestSidecar(
        testConfig(dir, { zone: ZONE, auth: { ...defaults.auth, localhostIsAdmin: false, tokensFile } }),
      );
    });

    it('streams with a token that covers the zone', async () => {
      expect(await client({ token: cp }).send(event(1))).to.deep.equal({ seq: 1, outcome: 'recorded' });
    });

    it('rejects at once, without a reconnect, a token that does not cover the zone, and no token at all', async () => {
      let reconnects = 0;
      const onReconnect = (): void => {
        reconnects++;
      };
      const denied = (await client({ token: reader, onReconnect })
        .send(event(1))
        .catch((e) => e)) as grpc.ServiceError;
      const missing = (await client({ onReconnect })
        .send(event(1))
        .catch((e) => e)) as grpc.ServiceError;
      expect([denied.code, missing.code, reconnects]).to.deep.equal([
        grpc.status.PERMISSION_DENIED,
        grpc.status.UNAUTHENTICATED,
        0,
      ]);
      expect(written(sidecar)).to.deep.equal([]);
    });
  });
});

describe('AuditClient against the real process', function () {
  this.timeout(120_000);

  it('resends exactly the unacknowledged events after a SIGKILL: every event in the files once', async () => {
    const dir = tempDir('meshaudit-client-crash-');
    const port = await freePort();
    const args = ['--config', writeCrashConfig(dir, port, 0.05), '--rules', path.join(dir, 'rules.yaml')];
    let sidecar = spawnSidecar(args);
    await sidecar.ready;
    let acks = 0;
    let reconnects = 0;
    let restarting: Promise<void> | null = null;
    const c = new AuditClient({
      address: `127.0.0.1:${port}`,
      identifier: { zone: 'crash', instance: 'cp-0' },
      batchSize: 50,
      maxQueued: 400,
      backoff: { initialMs: 10, maxMs: 100 },
      onReconnect: () => reconnects++,
      onAck: () => {
        if (++acks !== 5) return;
        restarting = (async () => {
          sidecar.proc.kill('SIGKILL');
          await sidecar.exited;
          sidecar = spawnSidecar(args);
          await sidecar.ready;
        })();
      },
    });
    const n = 2000;
    const settled = await Promise.allSettled(crashEvents(n, 7).map((e) => c.send(e)));
    await c.close();
    await restarting;
    sidecar.proc.kill('SIGTERM');
    expect(await sidecar.exited).to.equal(0);
    expect(reconnects).to.be.above(0);
    // Every valid event resolves; an invalid one rejects, unless its ack was lost to the kill and the
    // resume point settled it.
    const failed = settled.flatMap((r, i) => (r.status === 'rejected' && (i + 1) % 7 !== 0 ? [i + 1] : []));
    expect(failed).to.deep.equal([]);
    expectExactlyOnce(dir, n, 7);
  });
});
