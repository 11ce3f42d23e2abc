// rotation.compress on the real process: rotated files become `<name>.gz` once final (after their digest),
// and SIGKILLs mid-stream, during rotations and compressions, leave every event in the files exactly once
// and a trail that `verify` finds intact.
import { expect } from 'chai';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sendAll } from '../../src/client/audit-client';
import { rotatedFromName } from '../../src/backends/file';
import { verifyTrail } from '../../src/integrity/verify';
import { expectExactlyOnce, events, writeConfig } from '../support/exactly-once';
import { AUDIT_ALL, NO_ROTATION, TestZone, tempDir, waitFor } from '../support/helpers';
import { freePort, spawnSidecar } from '../support/process';

describe('rotation.compress and rotation.interval (the real process; a sidecar on a test clock for interval)', function () {
  this.timeout(60_000);
  const SKIP = 7;

  it('gzips rotated files once final, and loses, doubles and breaks nothing when killed mid-stream', async () => {
    const n = 8000;
    const dir = tempDir('meshaudit-compress-');
    const port = await freePort();
    const args = ['--config', writeConfig(dir, port, 0.02, true), '--rules', path.join(dir, 'rules.yaml')];
    let sidecar = spawnSidecar(args);
    await sidecar.ready;
    let killed = 0;
    let next = 10;
    let acks = 0;
    let restarting: Promise<void> | null = null;
    await sendAll(`127.0.0.1:${port}`, { zone: 'crash', instance: 'cp-0' }, events(n, SKIP), {
      batchSize: 100,
      window: 8,
      deadlineMs: 50_000,
      onAck: () => {
        if (restarting !== null || killed >= 5 || ++acks < next) return;
        next = acks + 5 + Math.floor(Math.random() * 10);
        restarting = (async () => {
          sidecar.proc.kill('SIGKILL');
          await sidecar.exited;
          killed++;
          sidecar = spawnSidecar(args);
          await sidecar.ready;
        })().finally(() => (restarting = null));
      },
    });
    if (restarting) await restarting;
    sidecar.proc.kill('SIGTERM');
    expect(await sidecar.exited).to.equal(0);
    expect(killed).to.equal(5);

    const names = fs.readdirSync(path.join(dir, 'audit'));
    const rotated = names.map((name) => rotatedFromName('audit.log', name)).filter((r) => r !== undefined);
    const compressed = rotated.filter((r) => r.compressed);
    // Most are compressed: only those final in the last moments before the stop may still be plain.
    expect(compressed.length, names.join(' ')).to.be.greaterThan(rotated.length / 2);
    expect(new Set(rotated.map((r) => r.plain)).size, 'no file both plain and compressed').to.equal(rotated.length);
    expect(names.filter((name) => name.endsWith('.gz.tmp'))).to.deep.equal([]);
    // The second backend never rotates, nor compresses; both hold every valid event once.
    expectExactlyOnce(dir, n, SKIP);

    const pub = crypto.createPublicKey(fs.readFileSync(path.join(dir, 'data', 'integrity', 'meshaudit-signing.pub')));
    const report = await verifyTrail({ dir: path.join(dir, 'audit'), publicKeys: [pub] });
    const bad = report.files.filter((f) => f.verdict !== 'ok');
    expect(bad, JSON.stringify(bad, null, 1)).to.deep.equal([]);
    expect(report.files.length).to.equal(rotated.length + 1);
  });

  it('rotates at each UTC hour with interval 1h, even a small file, and compresses with integrity off', async () => {
    // The sidecar's clock, moved by the test: a boundary is passed without waiting for one.
    let nowMs = Date.UTC(2026, 11, 7, 10, 59, 30);
    const zone = new TestZone();
    await zone.start([AUDIT_ALL], {
      now: () => new Date(nowMs),
      config: {
        integrity: { enabled: false, keyFile: undefined, sealIntervalMs: 60_000, copyTo: undefined },
        backends: [
          {
            type: 'file',
            path: path.join(zone.dir, 'audit', 'audit.log'),
            rotation: {
              ...NO_ROTATION,
              enabled: true,
              maxSizeBytes: 100 * 1024 * 1024,
              intervalMs: 3_600_000,
              compress: true,
            },
          },
        ],
      },
    });
    try {
      const send = (from: number, count: number) =>
        sendAll(
          `127.0.0.1:${zone.sidecar.port}`,
          { zone: 'zone-1', instance: `cp-${from}` },
          events(from + count, SKIP).slice(from),
          {
            batchSize: 10,
            deadlineMs: 20_000,
          },
        );
      await send(0, 20);
      const rotated = (): string[] =>
        fs.readdirSync(path.join(zone.dir, 'audit')).filter((n) => rotatedFromName('audit.log', n) !== undefined);
      expect(rotated(), 'no rotation within the hour').to.deep.equal([]);
      nowMs = Date.UTC(2026, 11, 7, 11, 0, 1);
      await send(20, 20);
      // Compressed: the .gz renamed into place, then the plain file removed.
      await waitFor(() => rotated().length === 1 && rotated()[0].endsWith('.gz'), 'the rotated file compressed');
      expect(rotated()).to.deep.equal(['audit-2026-12-07T11-00-01.000.log.gz']);
      const records = zone.records();
      expect(records.filter((l) => l.includes('"name":"route-'))).to.have.length(40 - Math.floor(40 / SKIP));
    } finally {
      await zone.stop();
    }
  });
});
