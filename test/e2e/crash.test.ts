// Exactly once across crashes: the real process is SIGKILLed mid-stream, again and again, the control
// plane resends everything after the resume point it is given, and every event must be in the files
// exactly once, with no torn line.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sendAll } from '../../src/client/audit-client';
import { expectExactlyOnce, events, writeConfig } from '../support/exactly-once';
import { readRecords, tempDir } from '../support/helpers';
import { freePort, spawnSidecar, writeSidecarConfig, type SpawnedSidecar } from '../support/process';
import { timeFromName } from '../../src/backends/file';
import { verifyTrail } from '../../src/integrity/verify';
import * as crypto from 'node:crypto';

/** The integrity trail of `<dir>/audit` verifies with the key the sidecar generated: no kill left a gap. */
async function expectTrailIntact(dir: string): Promise<void> {
  const pub = crypto.createPublicKey(fs.readFileSync(path.join(dir, 'data', 'integrity', 'meshaudit-signing.pub')));
  const report = await verifyTrail({ dir: path.join(dir, 'audit'), publicKeys: [pub] });
  const bad = report.files.filter((f) => f.verdict !== 'ok' && f.verdict !== 'deleted-by-retention');
  expect(bad, JSON.stringify(bad, null, 1)).to.deep.equal([]);
}

/** A rotated audit file of `audit.log` (not a digest, marker or seal beside it). */
const isRotated = (name: string): boolean => timeFromName('audit.log', name) !== undefined;

describe('exactly once across SIGKILL (real process)', function () {
  this.timeout(120_000);
  const SKIP = 7;

  async function runWithKills(
    n: number,
    maxSizeMb: number,
    killAt: (acks: number, sidecar: SpawnedSidecar) => boolean,
    kills: number,
  ): Promise<{ dir: string; killed: number }> {
    const dir = tempDir('meshaudit-crash-');
    const port = await freePort();
    const cfg = writeConfig(dir, port, maxSizeMb);
    const args = ['--config', cfg, '--rules', path.join(dir, 'rules.yaml')];
    let sidecar = spawnSidecar(args);
    await sidecar.ready;
    let killed = 0;
    let acks = 0;
    let restarting: Promise<void> | null = null;
    const restart = async (): Promise<void> => {
      sidecar.proc.kill('SIGKILL');
      await sidecar.exited;
      killed++;
      sidecar = spawnSidecar(args);
      await sidecar.ready;
    };
    await sendAll(`127.0.0.1:${port}`, { zone: 'crash', instance: 'cp-0' }, events(n, SKIP), {
      batchSize: 100,
      window: 8,
      deadlineMs: 90_000,
      onAck: () => {
        acks++;
        if (restarting === null && killed < kills && killAt(acks, sidecar)) {
          restarting = restart().finally(() => (restarting = null));
        }
      },
    });
    if (restarting) await restarting;
    sidecar.proc.kill('SIGTERM');
    expect(await sidecar.exited).to.equal(0);
    return { dir, killed };
  }

  it('loses and duplicates nothing when killed right after the very first write', async () => {
    const { dir, killed } = await runWithKills(2000, 0.05, (acks) => acks === 1, 1);
    expect(killed).to.equal(1);
    expectExactlyOnce(dir, 2000, SKIP);
  });

  it('loses and duplicates nothing when killed the moment the first record reaches the file, before any ack', async () => {
    // The window between the very first write and its first checkpoint commit: fs.watch fires on the
    // first write and the kill follows at once, five times over.
    for (let round = 0; round < 5; round++) {
      const dir = tempDir('meshaudit-first-');
      const port = await freePort();
      const args = ['--config', writeConfig(dir, port, 1), '--rules', path.join(dir, 'rules.yaml')];
      let sidecar = spawnSidecar(args);
      await sidecar.ready;
      fs.mkdirSync(`${dir}/audit`, { recursive: true });
      let killed = false;
      const watcher = fs.watch(`${dir}/audit`, () => {
        if (killed) return;
        killed = true;
        sidecar.proc.kill('SIGKILL');
      });
      const sending = sendAll(`127.0.0.1:${port}`, { zone: 'crash', instance: 'cp-0' }, events(500, SKIP), {
        batchSize: 100,
        window: 8,
        deadlineMs: 30_000,
      });
      await sidecar.exited;
      watcher.close();
      sidecar = spawnSidecar(args);
      await sidecar.ready;
      await sending;
      sidecar.proc.kill('SIGTERM');
      expect(await sidecar.exited).to.equal(0);
      expect(killed).to.equal(true);
      expectExactlyOnce(dir, 500, SKIP);
    }
  });

  it('loses and duplicates nothing when killed a dozen times mid-stream, during rotations, and its trail verifies intact', async () => {
    // ~20 KB files: a rotation every ~100 records, so kills land before, during and after rotations.
    let next = 3;
    const { dir, killed } = await runWithKills(
      30_000,
      0.02,
      (acks) => {
        if (acks < next) return false;
        next = acks + 5 + Math.floor(Math.random() * 25);
        return true;
      },
      12,
    );
    expect(killed).to.equal(12);
    expect(fs.readdirSync(`${dir}/audit`).filter(isRotated).length).to.be.greaterThan(10);
    expectExactlyOnce(dir, 30_000, SKIP);
    await expectTrailIntact(dir);
  });

  it('loses, duplicates and overwrites nothing when killed at rotations, with retention deleting files', async () => {
    // A kill the moment a rotated file appears lands in the rotation, the retention after it, or the
    // commit of the group that rotated. Retention keeps 4 rotated files of ~20 KB.
    const n = 12_000;
    const dir = tempDir('meshaudit-rotation-');
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'rules.yaml'), 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n');
    const cfg = writeSidecarConfig(dir, {
      zone: 'crash',
      address: `127.0.0.1:${port}`,
      backends: [{ folder: 'audit', rotation: { maxSizeMb: 0.02, maxRetainedFiles: 4, maxAgeDays: 0 } }],
    });
    const args = ['--config', cfg, '--rules', path.join(dir, 'rules.yaml')];
    fs.mkdirSync(path.join(dir, 'audit'), { recursive: true });
    let sidecar = spawnSidecar(args);
    await sidecar.ready;
    let killed = 0;
    let armed = true;
    let restarting: Promise<void> | null = null;
    const watcher = fs.watch(path.join(dir, 'audit'), (_event, name) => {
      if (!armed || killed >= 8 || !String(name).startsWith('audit-')) return;
      armed = false;
      sidecar.proc.kill('SIGKILL');
      restarting = (async () => {
        await sidecar.exited;
        killed++;
        sidecar = spawnSidecar(args);
        await sidecar.ready;
      })().finally(() => (restarting = null));
    });
    let acksSinceRestart = 0;
    try {
      await sendAll(`127.0.0.1:${port}`, { zone: 'crash', instance: 'cp-0' }, events(n, SKIP), {
        batchSize: 100,
        window: 8,
        deadlineMs: 90_000,
        onAck: () => {
          // Armed again once the restarted sidecar has acknowledged a few batches.
          if (!armed && restarting === null && ++acksSinceRestart >= 10) {
            acksSinceRestart = 0;
            armed = true;
          }
        },
      });
    } finally {
      watcher.close();
    }
    if (restarting) await restarting;
    sidecar.proc.kill('SIGTERM');
    expect(await sidecar.exited).to.equal(0);
    expect(killed).to.be.at.least(4);
    const rotated = fs.readdirSync(path.join(dir, 'audit')).filter(isRotated);
    // Retention kept its 4 (and the file a rotating write began in, until the next write).
    expect(rotated.length, rotated.join(' ')).to.be.within(4, 5);
    for (const f of rotated) {
      const size = fs.statSync(path.join(dir, 'audit', f)).size;
      expect(size, f).to.be.within(1, 0.02 * 1024 * 1024);
    }
    await expectTrailIntact(dir);
    // What the kept files and the active file hold is every event from the first kept one to the
    // last, once each, in order: nothing lost or duplicated, no rotated file overwritten, none that
    // retention should have kept deleted.
    const seqs = readRecords(path.join(dir, 'audit', 'audit.log')).map((l) =>
      Number(/route-(\d+)/.exec(JSON.parse(l).resource.name)![1]),
    );
    const want: number[] = [];
    for (let i = seqs[0]; i <= n; i++) if (i % SKIP !== 0) want.push(i);
    expect(seqs).to.deep.equal(want);
  });
});
