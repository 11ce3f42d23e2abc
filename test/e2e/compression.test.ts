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
import { AUDIT_ALL, NO_ROTATION, samples, TestZone, tempDir, waitFor } from '../support/helpers';
import { freePort, spawnSidecar, writeSidecarConfig } from '../support/process';
import { SIDECAR_NODE_FLAGS } from '../../src/cli/node-flags';

describe('rotation.compress and rotation.interval (the real process, its clock shifted for interval)', function () {
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
      await waitFor(() => {
        const now = rotated();
        return now.length === 1 && now[0].endsWith('.gz');
      }, 'the rotated file compressed');
      expect(rotated()).to.deep.equal(['audit-2026-12-07T11-00-01.000.log.gz']);
      const records = zone.records();
      expect(records.filter((l) => l.includes('"name":"route-'))).to.have.length(40 - Math.floor(40 / SKIP));
    } finally {
      await zone.stop();
    }
  });

  it('the real process rotates at a UTC hour with interval 1h, a small file, then digests and compresses it', async () => {
    // The process's clock is shifted (test/support/clock-shift.ts, as libfaketime would) to a few seconds
    // before 11:00 UTC: the test waits for the boundary those seconds, not up to an hour.
    const boundaryMs = Date.UTC(2026, 11, 7, 11, 0, 0);
    const leadMs = 5000;
    const shiftMs = boundaryMs - leadMs - Date.now();
    const processNow = (): number => Date.now() + shiftMs;
    const dir = tempDir('meshaudit-interval-');
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'rules.yaml'), 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n');
    const config = writeSidecarConfig(dir, {
      zone: 'zone-1',
      address: `127.0.0.1:${port}`,
      backends: [{ folder: 'audit', rotation: { maxSizeMb: 100, interval: '1h', compress: true } }],
    });
    const sidecar = spawnSidecar(['--config', config, '--rules', path.join(dir, 'rules.yaml')], {
      nodeFlags: [...SIDECAR_NODE_FLAGS, '--require', path.resolve(__dirname, '../support/clock-shift.js')],
      env: { MESHAUDIT_TEST_CLOCK_SHIFT_MS: String(shiftMs) },
    });
    try {
      await sidecar.ready;
      const send = (from: number, count: number) =>
        sendAll(
          `127.0.0.1:${port}`,
          { zone: 'zone-1', instance: `cp-${from}` },
          events(from + count, SKIP).slice(from),
          {
            batchSize: 10,
            deadlineMs: 20_000,
          },
        );
      await send(0, 20);
      expect(processNow(), 'the first events went in before 11:00 (the sidecar started in time)').to.be.below(
        boundaryMs,
      );
      const audit = path.join(dir, 'audit');
      const rotated = (): string[] =>
        fs.readdirSync(audit).filter((n) => rotatedFromName('audit.log', n) !== undefined);
      expect(rotated(), 'no rotation within the hour').to.deep.equal([]);
      // Waiting for a time, not for an order of events: the boundary passes whatever the sidecar does.
      await new Promise((resolve) => setTimeout(resolve, boundaryMs + 50 - processNow()));
      await send(20, 20);
      // Rotated at the first write after 11:00, digested, then compressed: told by the metric, which moves
      // once the plain file is gone (a listing taken while a rename lands may miss an entry).
      const backend = path.join(audit, 'audit.log');
      const compressions = async (): Promise<number[]> => {
        const m = samples(await (await fetch(`http://127.0.0.1:${await sidecar.adminPort}/stats/prometheus`)).text());
        return ['ok', 'failed'].map(
          (r) => m.get(`meshaudit_compressions_total{backend="${backend}",result="${r}"}`) ?? -1,
        );
      };
      for (const deadline = Date.now() + 10_000; (await compressions())[0] < 1; ) {
        if (Date.now() > deadline)
          throw new Error(`no compression: ${fs.readdirSync(audit).join(' ')}\n${sidecar.stderr()}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(await compressions()).to.deep.equal([1, 0]);
      const [gz] = rotated();
      expect(gz).to.match(/^audit-2026-12-07T11-00-0\d\.\d{3}\.log\.gz$/);
      expect(rotated()).to.deep.equal([gz]);
      expect(fs.existsSync(path.join(audit, `${gz.slice(0, -3)}.digest.json`)), 'its digest').to.equal(true);
      sidecar.proc.kill('SIGTERM');
      expect(await sidecar.exited).to.equal(0);
      // The hour before 11:00 in the rotated file, the events after it in the active file, once each.
      expectExactlyOnce(dir, 40, SKIP, ['audit']);
      const active = fs.readFileSync(path.join(audit, 'audit.log'), 'utf8').trim().split('\n');
      expect(active.map((l) => JSON.parse(l).resource.name)).to.deep.equal(
        events(40, SKIP)
          .slice(20)
          .filter((_, i) => (21 + i) % SKIP !== 0)
          .map((e) => e.resource?.name),
      );
      const pub = crypto.createPublicKey(fs.readFileSync(path.join(dir, 'data', 'integrity', 'meshaudit-signing.pub')));
      const report = await verifyTrail({ dir: audit, publicKeys: [pub] });
      expect(report.files.map((f) => f.verdict)).to.deep.equal(['ok', 'ok']);
    } finally {
      if (sidecar.proc.exitCode === null) sidecar.proc.kill('SIGKILL');
      await sidecar.exited;
    }
  });
});
