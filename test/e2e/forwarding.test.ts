// The NATS JetStream forwarder against real nats-server processes and the real built sidecar (issue 19):
// every committed record in the stream exactly once and in order, across rotations, compression, SIGKILLs
// of the sidecar, a server stopped and started again, a cluster node killed; several zones and instances
// in one stream; a stream that is missing; retention holding what the forwarder has not read.
import { expect } from 'chai';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sendAll } from '../../src/client/audit-client';
import type { AuditEvent } from '../../src/events/event';
import { rotationTimeMs } from '../../src/backends/file/trail-reader';
import { DIGEST_SUFFIX } from '../../src/integrity/format';
import {
  CHAIN_HEADER,
  DATE_HEADER,
  INSTANCE_HEADER,
  MSG_ID_HEADER,
  POSITION_HEADER,
  ZONE_HEADER,
} from '../../src/forward/nats-record';
import { events } from '../support/exactly-once';
import { adminRequest, readRecords, samples, tempDir } from '../support/helpers';
import {
  deleteStream,
  hasNatsServer,
  SHARED_NATS_URL,
  type ClientAuth,
  type StreamMessage,
  skipWithoutNats,
  streamMessages,
  ThrowawayNats,
  withManager,
} from '../support/nats';
import { freePort, type SpawnedSidecar, spawnSidecar, writeSidecarConfig } from '../support/process';
import { meshaudit } from '../support/cli';

const SKIP = 7;
const KIND: Record<string, string> = { CREATE: 'resource', UPDATE: 'resource', DELETE: 'resource' };

interface ZoneSidecar {
  dir: string;
  zone: string;
  instance: string;
  args: string[];
  port: number;
  sidecar: SpawnedSidecar;
}

/** A sidecar of `zone` forwarding to `servers` (stream `stream`), its files in a temp dir of its own. */
async function startZone(opts: {
  /** zone-1 and cp-0 by default. */
  zone?: string;
  instance?: string;
  servers: string[];
  stream: string;
  create?: boolean;
  replicas?: number;
  rotation?: { maxSizeMb: number; maxRetainedFiles?: number; compress?: boolean };
  maxHeldFiles?: number;
  integrity?: boolean;
  /** More keys of the forwarder (its credential). */
  keys?: Record<string, unknown>;
  drainTimeoutSeconds?: number;
}): Promise<ZoneSidecar> {
  const { zone = 'zone-1', instance = 'cp-0' } = opts;
  const dir = tempDir('meshaudit-fwd-');
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'rules.yaml'), 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n');
  const cfg = writeSidecarConfig(dir, {
    zone,
    address: `127.0.0.1:${port}`,
    integrity: opts.integrity,
    drainTimeoutSeconds: opts.drainTimeoutSeconds,
    backends: [{ folder: 'audit', rotation: opts.rotation ?? { maxSizeMb: 0.05 } }],
    forwarders: [
      {
        kind: 'nats',
        servers: opts.servers,
        instance,
        stream: { name: opts.stream, create: opts.create ?? true, replicas: opts.replicas ?? 1 },
        ...(opts.maxHeldFiles === undefined ? {} : { maxHeldFiles: opts.maxHeldFiles }),
        ...opts.keys,
      },
    ],
  });
  const args = ['--config', cfg, '--rules', path.join(dir, 'rules.yaml')];
  const sidecar = spawnSidecar(args);
  running.add(sidecar);
  await sidecar.ready;
  return { dir, zone, instance, args, port, sidecar };
}

/** Sidecars a failed test left running: killed after it, before its temp directory goes. */
const running = new Set<SpawnedSidecar>();

afterEach(async () => {
  for (const sidecar of running) {
    sidecar.proc.kill('SIGKILL');
    await sidecar.exited;
  }
  running.clear();
});

async function stopZone(z: ZoneSidecar): Promise<void> {
  z.sidecar.proc.kill('SIGTERM');
  expect(await z.sidecar.exited, z.sidecar.stderr()).to.equal(0);
}

/** Streams `list` as a control plane of its own (sequences from 1: another identifier for each call). */
function send(z: ZoneSidecar, list: AuditEvent[], onAck?: () => void): Promise<void> {
  return sendAll(`127.0.0.1:${z.port}`, { zone: z.zone, instance: `cp-${++streams}` }, list, {
    batchSize: 100,
    window: 8,
    deadlineMs: 60_000,
    onAck,
  });
}

let streams = 0;

/** Events route-<from> .. route-<from + n - 1>, every 7th invalid (never written). */
function eventsFrom(from: number, n: number): AuditEvent[] {
  return events(from + n - 1, SKIP).slice(from - 1);
}

/** Waits until `stream` holds `count` messages, and returns them all. */
async function untilStreamHolds(
  servers: string[],
  stream: string,
  count: number,
  timeoutMs = 30_000,
  auth: ClientAuth = {},
) {
  const deadline = Date.now() + timeoutMs;
  let held = -1;
  while (Date.now() < deadline) {
    held = await withManager(servers, async (jsm) => (await jsm.streams.info(stream)).state.messages, auth).catch(
      () => -1,
    );
    if (held >= count) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(held, `messages in ${stream}`).to.equal(count);
  return streamMessages(servers, stream, auth);
}

/**
 * The messages of one sidecar are its files' records, once each and in order: payload bytes as in the
 * files, subject by kind, message id and position from the record's place, date and zone headers.
 */
function expectForwardedOnce(z: ZoneSidecar, all: readonly StreamMessage[]): void {
  const lines = readRecords(path.join(z.dir, 'audit', 'audit.log'));
  const mine = all.filter((m) => m.headers[ZONE_HEADER] === z.zone && m.headers[INSTANCE_HEADER] === z.instance);
  expect(mine.length, `${z.zone}/${z.instance}: messages against records`).to.equal(lines.length);
  let previous: [number, number] = [-1, -1];
  mine.forEach((m, i) => {
    expect(m.data.toString('utf8'), `message ${i}`).to.equal(lines[i]);
    const record = JSON.parse(lines[i]) as { date: string; action: string };
    expect(m.subject).to.equal(`meshaudit.${z.zone}.${z.instance}.${KIND[record.action] ?? '?'}`);
    expect(m.headers[DATE_HEADER]).to.equal(record.date);
    const position = m.headers[POSITION_HEADER];
    expect(m.headers[MSG_ID_HEADER]).to.equal(`${z.zone}.${z.instance}.${position}`);
    const [startMs, offset] = position.split('.').map(Number);
    const later = startMs > previous[0] || (startMs === previous[0] && offset > previous[1]);
    expect(later, `position ${position} after ${previous.join('.')}`).to.equal(true);
    previous = [startMs, offset];
  });
}

describe('forwarding to NATS JetStream (real nats-server, real process)', function () {
  this.timeout(120_000);
  before(function () {
    if (!hasNatsServer()) skipWithoutNats(this);
  });

  describe('a single throwaway server', () => {
    let nats: ThrowawayNats;
    before(async () => {
      nats = await ThrowawayNats.single();
    });
    after(async () => {
      await nats?.destroy();
    });
    // The sidecar creates its stream on `meshaudit.>`: one at a time per server.
    afterEach(async () => {
      for (const stream of ['ROTATING', 'KILLS', 'OUTAGE', 'HANG'])
        await deleteStream(nats.urls, stream).catch(() => undefined);
    });

    it('puts every record of a rotating, compressed trail in the stream once, in order, with its headers', async () => {
      const z = await startZone({
        servers: nats.urls,
        stream: 'ROTATING',
        rotation: { maxSizeMb: 0.02, compress: true },
      });
      await send(z, eventsFrom(1, 3000));
      const admin = await z.sidecar.adminPort;
      const recorded = samples((await adminRequest(admin, 'GET', '/stats/prometheus')).body).get(
        'meshaudit_events_recorded_total',
      ) as number;
      const all = await untilStreamHolds(nats.urls, 'ROTATING', recorded);
      const info = JSON.parse((await adminRequest(admin, 'GET', '/server_info')).body);
      expect(info.forwarders[0]).to.include({ name: 'nats', state: 'forwarding', stream: 'ROTATING' });
      // Stopped before the files are read: compression renames them meanwhile.
      await stopZone(z);
      expect(fs.readdirSync(path.join(z.dir, 'audit')).filter((f) => f.endsWith('.log.gz')).length).to.be.above(5);
      expectForwardedOnce(z, all);
      // Each record names the digest before its file in the chain: the one of the file rotated at its file's start.
      const dir = path.join(z.dir, 'audit');
      const links = new Map<number, string>([[0, '-']]);
      for (const name of fs.readdirSync(dir).filter((f) => f.endsWith(DIGEST_SUFFIX))) {
        const sha = crypto
          .createHash('sha256')
          .update(fs.readFileSync(path.join(dir, name)))
          .digest('hex');
        links.set(rotationTimeMs(path.join(dir, 'audit.log'), name.slice(0, -DIGEST_SUFFIX.length)), `${name}@${sha}`);
      }
      for (const m of all) {
        const startMs = Number(m.headers[POSITION_HEADER].split('.')[0]);
        expect(m.headers[CHAIN_HEADER], m.headers[POSITION_HEADER]).to.equal(links.get(startMs));
      }
    });

    it('still holds every record exactly once after a dozen SIGKILLs of the sidecar while events flow', async () => {
      let z = await startZone({ servers: nats.urls, stream: 'KILLS' });
      let killed = 0;
      let acks = 0;
      let next = 3;
      let restarting: Promise<void> | null = null;
      const restart = async (): Promise<void> => {
        z.sidecar.proc.kill('SIGKILL');
        await z.sidecar.exited;
        killed++;
        const sidecar = spawnSidecar(z.args);
        running.add(sidecar);
        await sidecar.ready;
        z = { ...z, sidecar };
      };
      await send(z, eventsFrom(1, 12_000), () => {
        acks++;
        if (restarting === null && killed < 12 && acks >= next) {
          next = acks + 3 + Math.floor(Math.random() * 8);
          restarting = restart().finally(() => (restarting = null));
        }
      });
      if (restarting) await restarting;
      expect(killed).to.equal(12);
      const lines = readRecords(path.join(z.dir, 'audit', 'audit.log'));
      expectForwardedOnce(z, await untilStreamHolds(nats.urls, 'KILLS', lines.length));
      await stopZone(z);
    });

    it('stops within drainTimeoutSeconds while the server hangs with records in flight, and resumes once', async () => {
      const z = await startZone({ servers: nats.urls, stream: 'HANG', drainTimeoutSeconds: 1 });
      await send(z, eventsFrom(1, 300));
      const before = readRecords(path.join(z.dir, 'audit', 'audit.log')).length;
      await untilStreamHolds(nats.urls, 'HANG', before);
      nats.nodes[0].freeze();
      try {
        await send(z, eventsFrom(301, 3000));
        const admin = await z.sidecar.adminPort;
        await statsWhen(
          admin,
          (s) => (s.get('meshaudit_forward_lag_records{forwarder="nats"}') as number) > 0,
          'behind',
        );
        const stopAt = Date.now();
        z.sidecar.proc.kill('SIGTERM');
        expect(await z.sidecar.exited).to.equal(0);
        // The drain (1 s) and the rest of the stop; the forwarder's wait for its acks is inside the drain.
        expect(Date.now() - stopAt).to.be.below(4_000);
      } finally {
        nats.nodes[0].thaw();
      }
      // Started again, it publishes from its cursor past what the stream holds, once each.
      const sidecar = spawnSidecar(z.args);
      running.add(sidecar);
      await sidecar.ready;
      const restarted = { ...z, sidecar };
      const all = readRecords(path.join(z.dir, 'audit', 'audit.log')).length;
      expectForwardedOnce(restarted, await untilStreamHolds(nats.urls, 'HANG', all));
      await stopZone(restarted);
    });

    it('forwards what was written while the server was stopped once it is back, counting it as lag across a restart; acks and /ready go on meanwhile', async () => {
      const z = await startZone({ servers: nats.urls, stream: 'OUTAGE' });
      const admin = await z.sidecar.adminPort;
      await send(z, eventsFrom(1, 700));
      const before = readRecords(path.join(z.dir, 'audit', 'audit.log')).length;
      await untilStreamHolds(nats.urls, 'OUTAGE', before);
      await statsWhen(admin, (s) => s.get('meshaudit_forward_lag_records{forwarder="nats"}') === 0, 'caught up');
      await nats.nodes[0].stop('SIGKILL');
      // The control plane's events are acknowledged while JetStream is down (1400 events, 200 invalid).
      await send(z, eventsFrom(701, 1400));
      expect((await adminRequest(admin, 'GET', '/ready')).status).to.equal(200);
      await statsWhen(
        admin,
        (s) =>
          s.get('meshaudit_forward_lag_records{forwarder="nats"}') === 1200 &&
          s.get('meshaudit_forward_connected{forwarder="nats"}') === 0 &&
          (s.get('meshaudit_forward_lag_seconds{forwarder="nats"}') as number) > 0,
        'the lag while the server is down',
      );
      const info = JSON.parse((await adminRequest(admin, 'GET', '/server_info')).body);
      expect(info.forwarders[0]).to.include({ state: 'backing-off', lagRecords: 1200 });
      // Restarted while the server is still down: the backlog is counted at start, the rotated files by
      // their digests (the signed trail is on) and the cursor's file and the active one by reading them.
      const audit = path.join(z.dir, 'audit');
      expect(fs.readdirSync(audit).filter((f) => f.endsWith(DIGEST_SUFFIX)).length).to.be.above(2);
      await stopZone(z);
      const sidecar = spawnSidecar(z.args);
      running.add(sidecar);
      await sidecar.ready;
      const restarted = { ...z, sidecar };
      const admin2 = await sidecar.adminPort;
      await statsWhen(
        admin2,
        (s) =>
          s.get('meshaudit_forward_lag_records{forwarder="nats"}') === 1200 &&
          (s.get('meshaudit_forward_lag_seconds{forwarder="nats"}') as number) > 0,
        'the backlog counted at start',
      );
      await nats.nodes[0].restart();
      expectForwardedOnce(restarted, await untilStreamHolds(nats.urls, 'OUTAGE', before + 1200));
      await statsWhen(admin2, (s) => s.get('meshaudit_forward_lag_records{forwarder="nats"}') === 0, 'caught up again');
      await stopZone(restarted);
    });
  });

  it('holds every record exactly once in a stream of 3 replicas while its leader node is killed and started again', async () => {
    const cluster = await ThrowawayNats.cluster();
    try {
      const z = await startZone({
        servers: cluster.urls,
        stream: 'REPLICATED',
        replicas: 3,
      });
      let acks = 0;
      let killedLeader = false;
      let outage: Promise<void> | null = null;
      await send(z, eventsFrom(1, 6000), () => {
        if (++acks === 15) {
          // The stream's leader: the node whose loss makes JetStream elect another while records are in flight.
          outage = (async () => {
            const leader = await withManager(
              cluster.urls,
              async (jsm) => (await jsm.streams.info('REPLICATED')).cluster?.leader,
            );
            const node = cluster.nodes.find((n) => n.name === leader) ?? cluster.nodes[1];
            await node.stop('SIGKILL');
            killedLeader = node.name === leader;
            await new Promise((r) => setTimeout(r, 1000));
            await node.restart();
          })();
        }
      });
      if (outage) await outage;
      expect(killedLeader).to.equal(true);
      const lines = readRecords(path.join(z.dir, 'audit', 'audit.log'));
      expectForwardedOnce(z, await untilStreamHolds(cluster.urls, 'REPLICATED', lines.length, 60_000));
      await stopZone(z);
    } finally {
      await cluster.destroy();
    }
  });

  it('authenticates with a token read from its file at each connection, and with a user and password file', async () => {
    const secrets = tempDir('meshaudit-nats-secrets-');
    const tokenFile = path.join(secrets, 'token');
    fs.writeFileSync(tokenFile, 'not-the-token\n');
    const byToken = await ThrowawayNats.single(['authorization { token: "s3cr3t-t0ken" }']);
    const byUser = await ThrowawayNats.single(['authorization { user: zone-1, password: "pa55 word" }']);
    try {
      const z = await startZone({
        servers: byToken.urls,
        stream: 'TOKEN',
        keys: { tokenFile },
      });
      const admin = await z.sidecar.adminPort;
      await statsWhen(
        admin,
        (s) => (s.get('meshaudit_forward_failures_total{forwarder="nats"}') as number) > 0,
        'refused',
      );
      const refused = JSON.parse((await adminRequest(admin, 'GET', '/server_info')).body).forwarders[0];
      expect(refused.state).to.equal('backing-off');
      expect(refused.lastError).to.match(/authorization/i);
      // A rotated secret is read at the next connection, without a restart.
      fs.writeFileSync(tokenFile, 's3cr3t-t0ken\n');
      await send(z, eventsFrom(1, 200));
      const recorded = recordedOf(samples((await adminRequest(admin, 'GET', '/stats/prometheus')).body));
      const token = { token: 's3cr3t-t0ken' };
      expectForwardedOnce(z, await untilStreamHolds(byToken.urls, 'TOKEN', recorded, 30_000, token));
      await stopZone(z);

      const passwordFile = path.join(secrets, 'password');
      fs.writeFileSync(passwordFile, 'pa55 word\n');
      const u = await startZone({
        servers: byUser.urls,
        stream: 'USER',
        keys: { user: 'zone-1', passwordFile },
      });
      await send(u, eventsFrom(1, 100));
      const written = readRecords(path.join(u.dir, 'audit', 'audit.log')).length;
      const user = { user: 'zone-1', pass: 'pa55 word' };
      expectForwardedOnce(u, await untilStreamHolds(byUser.urls, 'USER', written, 30_000, user));
      await stopZone(u);
    } finally {
      await byToken.destroy();
      await byUser.destroy();
    }
  });

  describe('the shared server (127.0.0.1:4222, never stopped)', () => {
    // A stream and subjects of this run's own: other tests and sessions use the shared server too.
    const tag = `t${process.pid}x${Date.now().toString(36)}`;
    const stream = `MESHAUDIT_TEST_${tag.toUpperCase()}`;
    before(async function () {
      const up = await withManager([SHARED_NATS_URL], async () => true).catch(() => false);
      if (!up) skipWithoutNats(this);
    });
    after(async () => {
      await deleteStream([SHARED_NATS_URL], stream).catch(() => undefined);
    });

    it('takes two zones, and two instances of one zone, into one stream under their own subjects', async () => {
      await withManager([SHARED_NATS_URL], (jsm) =>
        jsm.streams.add({
          name: stream,
          subjects: [`meshaudit.${tag}-a.>`, `meshaudit.${tag}-b.>`],
          allow_direct: true,
        }),
      );
      const zones = [
        await startZone({ zone: `${tag}-a`, instance: 'cp-0', servers: [SHARED_NATS_URL], stream, create: false }),
        await startZone({ zone: `${tag}-a`, instance: 'cp-1', servers: [SHARED_NATS_URL], stream, create: false }),
        await startZone({ zone: `${tag}-b`, instance: 'cp-0', servers: [SHARED_NATS_URL], stream, create: false }),
      ];
      await Promise.all(zones.map((z, i) => send(z, eventsFrom(1 + i * 1000, 700))));
      const written = zones.map((z) => readRecords(path.join(z.dir, 'audit', 'audit.log')).length);
      const all = await untilStreamHolds([SHARED_NATS_URL], stream, written[0] + written[1] + written[2]);
      for (const z of zones) {
        expectForwardedOnce(z, all);
        // Each sidecar's files hold its own records alone.
        const names = readRecords(path.join(z.dir, 'audit', 'audit.log'))
          .map((l) => JSON.parse(l).resource.name as string)
          .filter((n) => n.startsWith('route-'));
        expect(names.length).to.equal(600);
        const i = zones.indexOf(z);
        expect(names.every((n) => Number(/route-(\d+)/.exec(n)![1]) > i * 1000)).to.equal(true);
        expect(names.every((n) => Number(/route-(\d+)/.exec(n)![1]) <= i * 1000 + 700)).to.equal(true);
      }
      await Promise.all(zones.map(stopZone));
      // The center read back: every record of every zone once, each as its file holds it (the merge by date
      // is test/e2e/query-nats.test.ts's: here each file starts with its rules' record, dated now).
      const read = await meshaudit(['query', '--nats', SHARED_NATS_URL, '--stream', stream, '--all-zones']);
      expect(read.code, read.stderr).to.equal(0);
      const lines = read.stdout.split('\n').filter((l) => l !== '');
      const files = zones.flatMap((z) => readRecords(path.join(z.dir, 'audit', 'audit.log')));
      expect([...lines].sort()).to.deep.equal([...files].sort());
    });

    it('stops start-up when the stream is missing and create is false, naming the stream', async () => {
      const dir = tempDir('meshaudit-fwd-missing-');
      const cfg = writeSidecarConfig(dir, {
        zone: 'zone-1',
        forwarders: [
          { kind: 'nats', servers: [SHARED_NATS_URL], instance: 'cp-0', stream: { name: `${stream}_NONE` } },
        ],
      });
      const sidecar = spawnSidecar(['--config', cfg]);
      expect(await sidecar.exited).to.equal(1);
      expect(sidecar.stderr()).to.include(
        `can't start: forwarder nats: the JetStream stream ${stream}_NONE does not exist on 127.0.0.1:4222 (meshaudit.forwarders[].stream.create is false): create it, or set create: true`,
      );
    });
  });

  it('holds unread rotated files up to maxHeldFiles, then deletes with an error line and counts; goes on from the oldest held', async () => {
    const nats = await ThrowawayNats.single();
    try {
      const z = await startZone({
        servers: nats.urls,
        stream: 'HELD',
        rotation: { maxSizeMb: 0.01, maxRetainedFiles: 2 },
        maxHeldFiles: 3,
      });
      const admin = await z.sidecar.adminPort;
      await send(z, eventsFrom(1, 300));
      const forwarded = recordedOf(
        await statsWhen(admin, (s) => s.get('meshaudit_forward_lag_records{forwarder="nats"}') === 0, 'caught up'),
      );
      await untilStreamHolds(nats.urls, 'HELD', forwarded);
      await nats.nodes[0].stop('SIGKILL');
      await send(z, eventsFrom(301, 2000));
      const rotated = fs.readdirSync(path.join(z.dir, 'audit')).filter((f) => /^audit-.*\.log$/.test(f));
      // Retention keeps 2 (and the file a rotating write began in, until the next write), the forwarder
      // holds 3 more that it has not read, and deletes the rest anyway.
      expect(rotated.length, rotated.join(' ')).to.be.within(5, 6);
      const stats = await statsWhen(
        admin,
        (s) => s.get('meshaudit_forward_held_files{forwarder="nats"}') === 3,
        'three files held',
      );
      expect(stats.get('meshaudit_forward_unheld_deleted_files_total{forwarder="nats"}')).to.be.above(0);
      const lost = stats.get('meshaudit_forward_lost_records_total{forwarder="nats"}') as number;
      expect(lost).to.be.above(0);
      expect(z.sidecar.stderr()).to.include(
        'forwarder: retention deletes rotated files the forwarder has not published, past maxHeldFiles',
      );
      // The center is back: the forwarder goes on from the oldest file held; every record not lost is in the
      // stream once, those the files still hold among them, in trail order.
      await nats.nodes[0].restart();
      const all = await untilStreamHolds(nats.urls, 'HELD', recordedOf(stats) - lost);
      const payloads = all.map((m) => m.data.toString('utf8'));
      expect(new Set(payloads).size).to.equal(payloads.length);
      const held = readRecords(path.join(z.dir, 'audit', 'audit.log'));
      expect(payloads.slice(-held.length)).to.deep.equal(held);
      expect(z.sidecar.stderr()).to.include('forwarder: the audit file the forwarder was in is deleted');
      await stopZone(z);
    } finally {
      await nats.destroy();
    }
  });
});

/** Records the sidecar wrote since it started (meshaudit_events_recorded_total). */
function recordedOf(stats: Map<string, number>): number {
  return stats.get('meshaudit_events_recorded_total') as number;
}

/** The admin's metrics, once `condition` holds of them (polled with a deadline). */
async function statsWhen(
  admin: number,
  condition: (stats: Map<string, number>) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<Map<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stats = samples((await adminRequest(admin, 'GET', '/stats/prometheus')).body);
    if (condition(stats) || Date.now() > deadline) {
      expect(
        condition(stats),
        `${what}: ${JSON.stringify([...stats].filter(([k]) => k.includes('forward')))}`,
      ).to.equal(true);
      return stats;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
