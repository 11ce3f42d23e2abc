// ReadService.Query against a real sidecar and a real client: filters, cursors across rotation,
// compression and retention, follow across rotations, and a follower that does not read.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { sendAll } from '../../src/client/audit-client';
import type { AuditEvent } from '../../src/events/event';
import { meshauditClients } from '../../src/client/services';
import { fieldViolationsOf } from '../../src/client/status-details';
import { type AnyClient, samples, TestZone, waitFor } from '../support/helpers';
import { spawn } from 'node:child_process';
import { BIN, meshaudit } from '../support/cli';

interface QueryResponse {
  records: string[];
  cursor: string;
}

/** ~1 KB files: a rotation every few records. */
const SMALL_FILES = { enabled: true, maxRetainedFiles: 0, maxSizeBytes: 1000, maxAgeDays: 0 };

let cps = 0;

/** Writes `events` through a new control plane identifier, resolved once all are acknowledged. */
function write(zone: TestZone, events: AuditEvent[]): Promise<void> {
  cps++;
  return sendAll(`127.0.0.1:${zone.sidecar.port}`, { zone: 'zone-1', instance: `cp-${cps}` }, events);
}

function event(i: number, over: Partial<Record<string, unknown>> = {}): AuditEvent {
  return {
    id: `e-${i}`,
    date: `2022-09-21T09:${String(i % 60).padStart(2, '0')}:00Z`,
    action: 'CREATE',
    resource: { type: 'TrafficRoute', name: `route-${i}`, mesh: 'default' },
    user: { name: 'cp', groups: [] },
    ...over,
  } as unknown as AuditEvent;
}

function readClient(zone: TestZone): AnyClient {
  return new (meshauditClients().ReadService)(
    `127.0.0.1:${zone.sidecar.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as AnyClient;
}

/** Every response of a Query that ends by itself. */
function query(client: AnyClient, request: object): Promise<QueryResponse[]> {
  return new Promise((resolve, reject) => {
    const out: QueryResponse[] = [];
    const call = client.Query(request) as grpc.ClientReadableStream<QueryResponse>;
    call.on('data', (r: QueryResponse) => out.push(r));
    call.on('error', reject);
    call.on('end', () => resolve(out));
  });
}

const recordsOf = (responses: QueryResponse[]): string[] => responses.flatMap((r) => r.records);

describe('ReadService.Query (a real sidecar and client)', function () {
  this.timeout(30_000);
  let zone: TestZone;
  let client: AnyClient;

  afterEach(async () => {
    client?.close();
    await zone?.stop();
  });

  async function start(rotation: typeof SMALL_FILES & { compress?: boolean } = SMALL_FILES): Promise<void> {
    zone = new TestZone();
    const backend = { type: 'file' as const, path: path.join(zone.dir, 'audit', 'audit.log'), rotation };
    await zone.start(undefined, { config: { backends: [backend] } });
    client = readClient(zone);
  }

  it('streams every committed record, oldest file first, exactly as the files hold them', async () => {
    await start();
    await write(
      zone,
      Array.from({ length: 30 }, (_, i) => event(i)),
    );
    const rotated = fs.readdirSync(path.dirname(zone.logPath)).filter((f) => /^audit-.*\.log$/.test(f));
    expect(rotated.length).to.be.greaterThan(3);
    const responses = await query(client, {});
    expect(recordsOf(responses)).to.deep.equal(zone.records());
    expect(recordsOf(responses)).to.have.length(30);
  });

  it('filters by time range, action, type, mesh, name, token id and user', async () => {
    await start();
    await write(zone, [
      event(1),
      event(2, { action: 'DELETE' }),
      event(3, { resource: { type: 'TrafficPermission', name: 'tp-1', mesh: 'other' } }),
      event(4, { user: { name: 'john.doe@kuma.io', groups: [] } }),
      event(5, {
        action: 'GENERATE_DATAPLANE_TOKEN',
        resource: undefined,
        token: { id: 'token-9', expiresAt: '', claims: { mesh: 'default' } },
      }),
      event(6, { date: '2023-01-01T00:00:00Z' }),
    ]);
    const names = async (filter: object): Promise<string[]> =>
      recordsOf(await query(client, { filter })).map((line) => {
        const r = JSON.parse(line);
        return r.resource?.name ?? r.token.id;
      });
    const table: Array<[object, string[]]> = [
      [{}, ['route-1', 'route-2', 'tp-1', 'route-4', 'token-9', 'route-6']],
      [{ from: '2022-09-21T09:02:00Z', to: '2022-09-21T09:05:00Z' }, ['route-2', 'tp-1', 'route-4']],
      [{ from: '2022-12-31T23:00:00-00:30' }, ['route-6']],
      [{ actions: ['DELETE', 'GENERATE_DATAPLANE_TOKEN'] }, ['route-2', 'token-9']],
      [{ types: ['TrafficPermission'] }, ['tp-1']],
      [{ mesh: 'other' }, ['tp-1']],
      [{ name: 'route-4' }, ['route-4']],
      [{ tokenId: 'token-9' }, ['token-9']],
      [{ user: 'john.doe@kuma.io' }, ['route-4']],
      [{ mesh: 'default', actions: ['CREATE'], user: 'cp' }, ['route-1', 'route-6']],
    ];
    for (const [filter, expected] of table) expect(await names(filter), JSON.stringify(filter)).to.deep.equal(expected);
  });

  it('refuses unknown actions and types, and times that are not RFC 3339, naming each field', async () => {
    await start();
    const err = (await query(client, {
      filter: { actions: ['CREAT'], types: ['TrafficPermision'], from: 'yesterday' },
    }).then(
      () => {
        throw new Error('expected INVALID_ARGUMENT');
      },
      (e: grpc.ServiceError) => e,
    )) as grpc.ServiceError;
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(fieldViolationsOf(err.metadata)).to.deep.equal([
      { field: 'filter.from', description: 'must be an RFC 3339 time, got "yesterday"' },
      { field: 'filter.actions[0]', description: 'unknown action "CREAT", did you mean "CREATE"?' },
      { field: 'filter.types[0]', description: 'unknown type "TrafficPermision", did you mean "TrafficPermission"?' },
    ]);
  });

  it('resumes a cursor after rotations and compression with exactly the records after it', async () => {
    await start();
    await write(
      zone,
      Array.from({ length: 10 }, (_, i) => event(i)),
    );
    const first = await query(client, {});
    const cursor = first[first.length - 1].cursor;
    await write(
      zone,
      Array.from({ length: 20 }, (_, i) => event(100 + i)),
    );
    // Every rotated file gzipped by hand, as lumberjack names them: the cursor's file among them.
    const dir = path.dirname(zone.logPath);
    for (const f of fs.readdirSync(dir).filter((n) => /^audit-.*\.log$/.test(n))) {
      fs.writeFileSync(path.join(dir, `${f}.gz`), zlib.gzipSync(fs.readFileSync(path.join(dir, f))));
      fs.rmSync(path.join(dir, f));
    }
    const all = [...recordsOf(first)];
    const after = recordsOf(await query(client, { cursor }));
    expect(after).to.have.length(20);
    expect(after.map((l) => JSON.parse(l).resource.name)).to.deep.equal(
      Array.from({ length: 20 }, (_, i) => `route-${100 + i}`),
    );
    // The gzipped files read from the start too.
    expect(recordsOf(await query(client, {}))).to.deep.equal([...all, ...after]);
  });

  it('answers a cursor into a file retention deleted with OUT_OF_RANGE and the oldest position held', async () => {
    await start({ ...SMALL_FILES, maxRetainedFiles: 1 });
    await write(
      zone,
      Array.from({ length: 3 }, (_, i) => event(i)),
    );
    const early = await query(client, {});
    const cursor = early[early.length - 1].cursor;
    // One event per write: each rotation is its own, and retention deletes the oldest files in order.
    for (let i = 0; i < 12; i++) await write(zone, [event(100 + i)]);
    const err = (await query(client, { cursor }).then(
      () => {
        throw new Error('expected OUT_OF_RANGE');
      },
      (e: grpc.ServiceError) => e,
    )) as grpc.ServiceError;
    expect(err.code).to.equal(grpc.status.OUT_OF_RANGE);
    const m = /the oldest record held is from (\S+): resume with cursor (\S+)$/.exec(err.details);
    expect(m, err.details).to.not.equal(null);
    const held = zone.records();
    expect(m![1]).to.equal(JSON.parse(held[0]).date);
    expect(recordsOf(await query(client, { cursor: m![2] }))).to.deep.equal(held);
  });

  it('follows across rotations, streaming records written after the call began, until cancelled', async () => {
    await start();
    await write(
      zone,
      Array.from({ length: 5 }, (_, i) => event(i)),
    );
    const got: string[] = [];
    const call = client.Query({ follow: true }) as grpc.ClientReadableStream<QueryResponse>;
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', (r: QueryResponse) => got.push(...r.records));
    await waitFor(() => got.length === 5, 'the records held');
    await write(
      zone,
      Array.from({ length: 30 }, (_, i) => event(100 + i)),
    );
    await waitFor(() => got.length === 35, 'the records written after the call began');
    expect(got).to.deep.equal(zone.records());
    const metrics = async () => samples(await zone.sidecar.metrics.prometheus());
    expect((await metrics()).get('meshaudit_queries_open')).to.equal(1);
    expect((await metrics()).get('meshaudit_queries_total{mode="follow"}')).to.equal(1);
    call.cancel();
    expect((await ended).code).to.equal(grpc.status.CANCELLED);
    const open = async () => (await metrics()).get('meshaudit_queries_open');
    for (const deadline = Date.now() + 5000; (await open()) !== 0 && Date.now() < deadline; ) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await open(), 'the cancelled follower no longer open').to.equal(0);
  });

  it('a follower far behind reads lines cut by its read chunks, across rotations and compressions under its handle, once each', async () => {
    // 800 KB files, ~2.7 MB written while the client does not read: the follower stops mid-file holding its
    // handle while the file rotates and is gzipped; it then reads 256 KiB chunks (synchronously within
    // 1 MiB of the committed end, through the thread pool further behind) that cut records of every length.
    await start({ ...SMALL_FILES, maxSizeBytes: 800_000, compress: true });
    const got: QueryResponse[] = [];
    const call = client.Query({ follow: true }) as grpc.ClientReadableStream<QueryResponse>;
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', (r: QueryResponse) => got.push(r));
    call.pause();
    const events = Array.from({ length: 6000 }, (_, i) =>
      event(i, {
        resource: { type: 'TrafficRoute', name: `route-${i}-${'x'.repeat((i * 37) % 400)}`, mesh: 'default' },
      }),
    );
    await write(zone, events);
    const dir = path.dirname(zone.logPath);
    await waitFor(
      () => fs.readdirSync(dir).filter((n) => n.endsWith('.log.gz')).length >= 2,
      'rotated files gzipped while the follower is behind',
    );
    call.resume();
    await waitFor(() => recordsOf(got).length >= 6000, 'every record', 20_000);
    // Every rotated file gzipped: zone.records() reads a file present both ways (a compression under way) twice.
    await waitFor(() => !fs.readdirSync(dir).some((n) => /^audit-.*\.log$/.test(n)), 'every rotated file gzipped');
    const held = zone.records();
    expect(held).to.have.length(6000);
    expect(recordsOf(got)).to.deep.equal(held);
    // Each response's cursor resumes right after its last record.
    let before = 0;
    for (const r of got.slice(0, -1)) {
      before += r.records.length;
      const rest = recordsOf(await query(client, { cursor: r.cursor }));
      expect(rest.length, `after ${before} records`).to.equal(6000 - before);
      expect(rest[0], `after ${before} records`).to.equal(held[before]);
    }
    call.cancel();
    expect((await ended).code).to.equal(grpc.status.CANCELLED);
  });

  it('ends a waiting follower with UNAVAILABLE when the sidecar drains, so that its stop is not forced', async () => {
    await start();
    await write(zone, [event(1)]);
    const got: string[] = [];
    const call = client.Query({ follow: true }) as grpc.ClientReadableStream<QueryResponse>;
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', (r: QueryResponse) => got.push(...r.records));
    await waitFor(() => got.length === 1, 'the record held');
    const stopped = zone.sidecar.stop();
    const err = await ended;
    expect(err.code).to.equal(grpc.status.UNAVAILABLE);
    expect(err.details).to.contain('shutting down');
    await stopped;
  });

  it('ends a follower far behind at the drain with every record it read sent, and its last cursor resumes after them', async () => {
    const rotation = { ...SMALL_FILES, maxSizeBytes: 800_000 };
    await start(rotation);
    const got: QueryResponse[] = [];
    const call = client.Query({ follow: true }) as grpc.ClientReadableStream<QueryResponse>;
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', (r: QueryResponse) => got.push(r));
    call.pause();
    await write(
      zone,
      Array.from({ length: 10_000 }, (_, i) => event(i)),
    );
    const held = zone.records();
    // The drain begins while the follower waits on its client, mid-trail (~3 MB: past what HTTP/2 and the
    // client buffer), with a response built.
    const stopped = zone.sidecar.stop();
    call.resume();
    const err = await ended;
    expect(err.code, err.details).to.equal(grpc.status.UNAVAILABLE);
    await stopped;
    const read = recordsOf(got);
    expect(read).to.deep.equal(held.slice(0, read.length));
    client.close();
    await zone.start(undefined, {
      config: { backends: [{ type: 'file' as const, path: zone.logPath, rotation }] },
    });
    client = readClient(zone);
    const rest = recordsOf(await query(client, { cursor: got[got.length - 1].cursor }));
    expect([...read, ...rest]).to.deep.equal(held);
  });

  it('never slows the writer for a follower that does not read', async () => {
    await start({ ...SMALL_FILES, maxSizeBytes: 200_000 });
    const call = client.Query({ follow: true }) as grpc.ClientReadableStream<QueryResponse>;
    call.on('error', () => {});
    call.pause();
    // ~1.2 MB of records: far past HTTP/2's windows, which the follower never opens again.
    await write(
      zone,
      Array.from({ length: 6000 }, (_, i) => event(i)),
    );
    expect(zone.records()).to.have.length(6000);
    call.cancel();
  });

  it('meshaudit query prints the matching records, and --json each response with its cursor', async () => {
    await start();
    await write(zone, [event(1), event(2, { action: 'DELETE' }), event(3)]);
    const address = `127.0.0.1:${zone.sidecar.port}`;
    const plain = await meshaudit(['query', '--action', 'CREATE', '--address', address]);
    expect(plain.stderr).to.equal('');
    expect(plain.code).to.equal(0);
    expect(plain.stdout.trim().split('\n')).to.deep.equal([zone.records()[0], zone.records()[2]]);
    const json = await meshaudit(['query', '--name', 'route-2', '--json', '--address', address]);
    const responses = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(responses[0].records).to.deep.equal([zone.records()[1]]);
    const resumed = await meshaudit(['query', '--cursor', responses[0].cursor, '--address', address]);
    expect(resumed.stdout.trim().split('\n')).to.deep.equal([zone.records()[2]]);
    const bad = await meshaudit(['query', '--type', 'Meshh', '--address', address]);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.equal(
      'meshaudit query: INVALID_ARGUMENT: filter.types[0]: unknown type "Meshh", did you mean "Mesh"?\n',
    );
  });

  it('meshaudit tail -f prints each matching record as it is written, until interrupted', async () => {
    await start();
    await write(zone, [event(1, { action: 'DELETE' })]);
    const tail = spawn(BIN, ['tail', '-f', '--action', 'DELETE', '--address', `127.0.0.1:${zone.sidecar.port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    tail.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => tail.on('close', (code) => resolve(code)));
    try {
      // What was written before it began, then what is written after.
      await waitFor(() => out.split('\n').length > 1, 'the first record printed');
      await write(zone, [event(2), event(3, { action: 'DELETE' })]);
      await waitFor(() => out.split('\n').length > 2, 'the record written after it began');
      const deletes = zone.records().filter((l) => l.includes('"action":"DELETE"'));
      expect(out.trim().split('\n')).to.deep.equal(deletes);
    } finally {
      tail.kill('SIGINT');
    }
    expect(await exited).to.not.equal(null);
  });
});
