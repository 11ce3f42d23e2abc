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
import { tempDir } from '../support/helpers';
import { freePort, spawnSidecar } from '../support/process';

describe('rotation.compress (real process)', function () {
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
});
