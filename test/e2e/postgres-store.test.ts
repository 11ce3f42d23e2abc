// The AccessAudit store on PostgreSQL (meshaudit.store.type: postgres), against a real server: the shared
// one (127.0.0.1:5432) for what needs it running, a throwaway cluster of the test's own for what stops it.
// Each test has a schema of its own, so zones and runs never see each other's rows.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { StoreConfig } from '../../src/config/types';
import { startSidecar, type Sidecar } from '../../src/cli/sidecar';
import { jsonLogger, type Logger, silentLogger } from '../../src/log';
import { AuditClient } from '../../src/client';
import type { AuditEvent } from '../../src/client';
import { NOTIFY_CHANNEL, POSTGRES_CACHE_FILE, TABLE, tableSql } from '../../src/store/postgres-store';
import {
  AUDIT_ALL,
  adminRequest,
  clients,
  failure,
  readRecords,
  tempDir,
  testConfig,
  unary,
  valid,
  type AnyClient,
} from '../support/helpers';
import {
  freshSchema,
  type FreshSchema,
  type PgTarget,
  postgresBinaries,
  query,
  sharedPostgres,
  skipWithoutPostgres,
  ThrowawayCluster,
} from '../support/postgres';
import { logLines, spawnSidecar, type SpawnedSidecar, writeSidecarConfig } from '../support/process';
import type { AccessAudit } from '../../src/rules';

/** The bound for a change made on one replica to be in force on the others. */
const CONVERGE_MS = 2_000;
/** Past the store's reconnect backoff (at most 5 s, plus jitter) after the database comes back. */
const RECONNECT_MS = 15_000;

const DELETES: AccessAudit = {
  name: 'deletes',
  rules: [{ types: [], mesh: '', access: ['DELETE'], accessAll: false }],
};
const CREATES: AccessAudit = {
  name: 'creates',
  rules: [{ types: [], mesh: '', access: ['CREATE'], accessAll: false }],
};

function storeOf(target: PgTarget, schema: string): StoreConfig {
  return {
    type: 'postgres',
    createSchema: true,
    postgres: { ...target, passwordFile: undefined, schema, sslMode: 'disable', caFile: undefined },
  };
}

/** One replica of a zone's control plane's sidecar, in this process. */
interface Replica {
  readonly sidecar: Sidecar;
  readonly rules: AnyClient;
  readonly address: string;
  readonly logPath: string;
  readonly dataDir: string;
  records(): string[];
  stop(): Promise<void>;
}

async function replica(
  zone: string,
  store: StoreConfig,
  audits?: readonly AccessAudit[],
  dir = tempDir(),
  log: Logger = silentLogger,
): Promise<Replica> {
  const config = testConfig(dir, { zone, store });
  const sidecar = await startSidecar({
    config,
    audits: audits?.map(valid),
    log,
    utcOffsetMinutes: 0,
  });
  const c = clients(sidecar.port);
  const logPath = config.backends[0].path;
  return {
    sidecar,
    rules: c.rules,
    address: `127.0.0.1:${sidecar.port}`,
    logPath,
    dataDir: config.dataDir,
    records: () => (fs.existsSync(logPath) ? readRecords(logPath) : []),
    stop: async () => {
      c.close();
      await sidecar.stop();
    },
  };
}

/** An event of a control plane of `zone`, with a real name and its own date. */
function event(action: string, name: string): AuditEvent {
  return {
    date: new Date().toISOString(),
    action,
    resource: { type: 'TrafficRoute', name, mesh: 'default' },
    user: { name: 'admin', groups: ['mesh-system:admin'] },
  } as AuditEvent;
}

/** Sends each event through a control plane's client and returns each outcome. */
async function stream(address: string, zone: string, events: readonly AuditEvent[]): Promise<string[]> {
  const cp = new AuditClient({ address, identifier: { zone, instance: `cp-${Math.random()}` }, batchDelayMs: 0 });
  try {
    const outcomes: string[] = [];
    for (const e of events) outcomes.push((await cp.send(e)).outcome);
    return outcomes;
  } finally {
    await cp.close();
  }
}

async function evaluated(r: { rules: AnyClient }, action: string): Promise<boolean> {
  const reply = await unary<{ audited: boolean }>(r.rules, 'Evaluate', { event: event(action, 'web') });
  return reply.audited;
}

/** Resolves once `check` resolves true (retried on every failure or false), or fails naming `what` after `ms`. */
async function eventually(check: () => Promise<boolean>, what: string, ms: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      if (await check()) return Date.now() - started;
    } catch {}
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function rows(target: PgTarget, schema: string, zone: string): Promise<Array<Record<string, unknown>>> {
  return query(
    target,
    `SELECT name, version::int AS version, origin, rules, changed_by FROM ${schema}.${TABLE} WHERE zone = $1 ORDER BY name`,
    [zone],
  );
}

const yamlOf = (audits: readonly AccessAudit[]): string =>
  audits.map((a) => `type: AccessAudit\nname: ${a.name}\nrules: ${JSON.stringify(a.rules)}\n`).join('---\n');

describe('the AccessAudit store on PostgreSQL', function () {
  this.timeout(60_000);

  describe('with the shared server', () => {
    let target: PgTarget;
    let schema: FreshSchema;
    const running: Replica[] = [];

    before(async function () {
      const shared = await sharedPostgres();
      if (shared === undefined) skipWithoutPostgres(this);
      target = shared;
    });
    beforeEach(async () => {
      schema = await freshSchema(target);
    });
    afterEach(async () => {
      await Promise.all(running.splice(0).map((r) => r.stop()));
      await schema.drop();
    });
    const start = async (zone: string, audits?: readonly AccessAudit[], log?: Logger): Promise<Replica> => {
      const r = await replica(zone, storeOf(target, schema.schema), audits, tempDir(), log);
      running.push(r);
      return r;
    };

    it('puts a change made through one replica in force on the other within 2 s, recorded once, by the caller', async () => {
      const bLog: string[] = [];
      const [a, b] = [
        await start('zone-1', [AUDIT_ALL]),
        await start(
          'zone-1',
          [AUDIT_ALL],
          jsonLogger((l) => bLog.push(l)),
        ),
      ];
      const before = b.records().length;
      await unary(a.rules, 'UpdateAccessAudit', { accessAudit: { ...DELETES, name: 'all', version: 1 } });
      const took = await eventually(
        async () => (await evaluated(b, 'DELETE')) && !(await evaluated(b, 'CREATE')),
        'the other replica evaluating with the new rules',
        CONVERGE_MS,
      );
      expect(took).to.be.lessThan(CONVERGE_MS);
      expect(await stream(b.address, 'zone-1', [event('CREATE', 'web'), event('DELETE', 'web')])).to.deep.equal([
        'skipped',
        'recorded',
      ]);
      // The replica that made the changes recorded them; the other recorded none, only the event it was sent.
      const recorded = a.records().map((l) => JSON.parse(l));
      expect(recorded.map((r) => [r.action, r.resource.name, r.user.name])).to.deep.equal([
        ['CREATE', 'all', 'meshaudit:rules-files'],
        ['UPDATE', 'all', 'mesh-system:admin'],
      ]);
      expect(
        b
          .records()
          .slice(before)
          .map((l) => JSON.parse(l).action),
      ).to.deep.equal(['DELETE']);
      // The other replica says it in one line, and records nothing of the change.
      const said = bLog.map((l) => JSON.parse(l).msg as string);
      const adopted = "AccessAudits changed in the zone's store (changed by another replica)";
      expect(said.filter((m) => m.startsWith(adopted))).to.have.length(1);
      expect(said.filter((m) => m === 'AccessAudit changed')).to.deep.equal([]);
      expect(await rows(target, schema.schema, 'zone-1')).to.deep.equal([
        { name: 'all', version: 2, origin: 'api', rules: DELETES.rules, changed_by: 'mesh-system:admin' },
      ]);
    });

    it("ignores notifications that are not a replica's (anyone who may connect may NOTIFY), and still follows the zone", async () => {
      const [a, b] = [await start('zone-1', [AUDIT_ALL]), await start('zone-1', [AUDIT_ALL])];
      for (const payload of ['null', '42', '"text"', '[]', '{}', 'not json', '{"schema":null}', 'x'.repeat(7000)]) {
        await query(target, 'SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, payload]);
      }
      // Another zone's, in this schema: not this zone's change.
      await query(target, 'SELECT pg_notify($1, $2)', [
        NOTIFY_CHANNEL,
        JSON.stringify({ schema: schema.schema, zone: 'zone-2', by: 'x' }),
      ]);
      await unary(a.rules, 'UpdateAccessAudit', { accessAudit: { ...DELETES, name: 'all', version: 1 } });
      await eventually(async () => !(await evaluated(b, 'CREATE')), 'b follows the change', CONVERGE_MS);
      expect(await evaluated(b, 'DELETE')).to.equal(true);
    });

    it('lets exactly one of two updates at the same version win, on two replicas at once: the other is ABORTED, unrecorded', async () => {
      const [a, b] = [await start('zone-1', []), await start('zone-1', [])];
      await unary(a.rules, 'CreateAccessAudit', { accessAudit: { ...AUDIT_ALL, name: 'watched' } });
      await eventually(async () => (await evaluated(b, 'UPDATE')) === true, 'b sees "watched"', CONVERGE_MS);
      const [ra, rb] = [a.records().length, b.records().length];
      const results = await Promise.allSettled([
        unary(a.rules, 'UpdateAccessAudit', { accessAudit: { ...DELETES, name: 'watched', version: 1 } }),
        unary(b.rules, 'UpdateAccessAudit', { accessAudit: { ...CREATES, name: 'watched', version: 1 } }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).to.have.length(1);
      expect(lost).to.have.length(1);
      expect((lost[0].reason as grpc.ServiceError).code).to.equal(grpc.status.ABORTED);
      expect((lost[0].reason as grpc.ServiceError).details).to.contain('is at version 2, not 1');
      const [stored] = await rows(target, schema.schema, 'zone-1');
      expect(stored.version).to.equal(2);
      const winner = results[0].status === 'fulfilled' ? DELETES : CREATES;
      expect(stored.rules).to.deep.equal(winner.rules);
      // One record in all: the winner's.
      expect(a.records().length - ra + (b.records().length - rb)).to.equal(1);
    });

    it('keeps two zones on one server apart: neither sees nor changes the other', async () => {
      const [one, two] = [await start('zone-1', [DELETES]), await start('zone-2', [CREATES])];
      await unary(two.rules, 'CreateAccessAudit', { accessAudit: { ...AUDIT_ALL, name: 'zone-2-all' } });
      const names = async (r: Replica) =>
        (await unary<{ accessAudits: Array<{ name: string }> }>(r.rules, 'ListAccessAudits', {})).accessAudits.map(
          (a) => a.name,
        );
      expect(await names(one)).to.deep.equal(['deletes']);
      expect(await names(two)).to.deep.equal(['creates', 'zone-2-all']);
      expect(await evaluated(one, 'UPDATE')).to.equal(false);
      expect((await rows(target, schema.schema, 'zone-1')).map((r) => r.name)).to.deep.equal(['deletes']);
      expect((await rows(target, schema.schema, 'zone-2')).map((r) => r.name)).to.deep.equal(['creates', 'zone-2-all']);
    });

    it('leaves version 1, and one record, when three replicas start at once seeding the same files', async () => {
      const three = await Promise.all([0, 1, 2].map(() => start('zone-1', [DELETES, CREATES])));
      expect((await rows(target, schema.schema, 'zone-1')).map((r) => [r.name, r.version, r.origin])).to.deep.equal([
        ['creates', 1, 'file'],
        ['deletes', 1, 'file'],
      ]);
      // Only the replica whose seed changed the store recorded it: two creates (the rules cover CREATE).
      const seeded = three.map((r) => r.records().length);
      expect(seeded.sort()).to.deep.equal([0, 0, 2]);
    });

    it('follows the zone when its cache cannot be written: a change read from another replica is in force, and its own change is taken', async () => {
      const [a, b] = [await start('zone-1', [AUDIT_ALL]), await start('zone-1', [AUDIT_ALL])];
      // The cache cannot be replaced: a folder that is not empty stands where the file goes.
      const cache = path.join(b.dataDir, POSTGRES_CACHE_FILE);
      fs.rmSync(cache);
      fs.mkdirSync(path.join(cache, 'in-the-way'), { recursive: true });
      await unary(a.rules, 'UpdateAccessAudit', { accessAudit: { ...DELETES, name: 'all', version: 1 } });
      await eventually(
        async () => (await evaluated(b, 'DELETE')) && !(await evaluated(b, 'CREATE')),
        'the other replica evaluating with the new rules',
        CONVERGE_MS,
      );
      const stored = await unary<{ version: number }>(b.rules, 'UpdateAccessAudit', {
        accessAudit: { ...CREATES, name: 'all', version: 2 },
      });
      expect(stored.version).to.equal(3);
      expect(await evaluated(b, 'CREATE')).to.equal(true);
      expect((await rows(target, schema.schema, 'zone-1')).map((r) => [r.name, r.version])).to.deep.equal([['all', 3]]);
    });

    it('stops start-up with exit 1 naming the missing table and the SQL, and --check-config says the same', async () => {
      const dir = tempDir();
      const config = writeSidecarConfig(dir, { postgres: { ...target, schema: schema.schema } });
      fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('createSchema: true', 'createSchema: false'));
      for (const extra of [[], ['--check-config']]) {
        const proc = spawnSidecar(['--config', config, ...extra]);
        expect(await proc.exited).to.equal(1);
        expect(proc.stderr()).to.contain(`the AccessAudit store's table "${schema.schema}".${TABLE} does not exist`);
        expect(proc.stderr()).to.contain(`CREATE TABLE IF NOT EXISTS "${schema.schema}".${TABLE} (`);
      }
      expect(fs.existsSync(path.join(dir, 'data', POSTGRES_CACHE_FILE))).to.equal(false);
    });

    it('names sslMode when the server refuses TLS that the config asks for', async () => {
      const dir = tempDir();
      const config = writeSidecarConfig(dir, { postgres: { ...target, schema: schema.schema } });
      fs.writeFileSync(
        config,
        fs.readFileSync(config, 'utf8').replace('      schema:', '      sslMode: "require"\n      schema:'),
      );
      const proc = spawnSidecar(['--config', config]);
      expect(await proc.exited).to.equal(1);
      expect(proc.stderr()).to.contain(
        'does not support SSL connections (meshaudit.store.postgres.sslMode is require)',
      );
    });

    it('ships deploy/postgres/schema.sql as the SQL the sidecar creates the table with', () => {
      const shipped = fs.readFileSync(path.resolve(__dirname, '../../../deploy/postgres/schema.sql'), 'utf8');
      expect(shipped).to.contain(tableSql('public'));
    });
  });

  describe('with a throwaway cluster that the test stops', () => {
    let cluster: ThrowawayCluster;
    let schema: string;
    const running: Replica[] = [];
    const spawned: SpawnedSidecar[] = [];

    before(async function () {
      if (postgresBinaries() === undefined) skipWithoutPostgres(this);
      cluster = await ThrowawayCluster.start();
    });
    after(async () => {
      await cluster?.destroy();
    });
    beforeEach(async () => {
      schema = `s_${Math.random().toString(36).slice(2, 8)}`;
      await cluster.start().catch(() => {});
    });
    afterEach(async () => {
      await Promise.all(running.splice(0).map((r) => r.stop()));
      for (const p of spawned.splice(0)) {
        p.proc.kill('SIGKILL');
        await p.exited;
      }
    });

    /** A sidecar process of zone-1 on the cluster, in `dir`; resolves once it serves. */
    const spawnReplica = async (
      dir: string,
      args: string[] = [],
    ): Promise<{ proc: SpawnedSidecar; address: string; rules: AnyClient }> => {
      const config = writeSidecarConfig(dir, { zone: 'zone-1', postgres: { ...cluster.target, schema } });
      const proc = spawnSidecar(['--config', config, ...args]);
      spawned.push(proc);
      const port = await proc.ready;
      const c = clients(port);
      return { proc, address: `127.0.0.1:${port}`, rules: c.rules };
    };

    it('keeps recording with the last rules while the database is down, refuses changes, says degraded, restarts on its cache, and converges when it is back', async () => {
      const store = storeOf(cluster.target, schema);
      const [a, b] = [await replica('zone-1', store, [DELETES]), await replica('zone-1', store, [DELETES])];
      running.push(a, b);
      const cDir = tempDir();
      let c = await spawnReplica(cDir);

      await cluster.stop();
      const admin = a.sidecar.adminAddress!.split(':')[1];
      await eventually(
        async () => (await adminRequest(Number(admin), 'GET', '/ready')).body.includes('degraded'),
        'a says degraded',
        5_000,
      );
      const ready = await adminRequest(Number(admin), 'GET', '/ready');
      expect(ready.status).to.equal(200);
      expect(ready.body).to.match(/^LIVE \(degraded: AccessAudit store unreachable/);
      const info = JSON.parse((await adminRequest(Number(admin), 'GET', '/server_info')).body);
      expect(info.state).to.equal('LIVE');
      expect(info.store).to.include({ type: 'postgres', state: 'degraded' });
      expect((await a.sidecar.metrics.registry.getSingleMetricAsString('meshaudit_store_degraded')).trim()).to.match(
        / 1$/,
      );

      // Every event is still recorded by both, with the rules they last read.
      for (const r of [a, b]) {
        expect(
          await stream(r.address, 'zone-1', [event('DELETE', 'web'), event('CREATE', 'web'), event('DELETE', 'api')]),
        ).to.deep.equal(['recorded', 'skipped', 'recorded']);
      }
      const refused = await failure(unary(a.rules, 'CreateAccessAudit', { accessAudit: CREATES }));
      expect(refused.code).to.equal(grpc.status.UNAVAILABLE);
      expect(refused.details).to.contain('cannot be reached');
      expect(await evaluated(a, 'CREATE')).to.equal(false);

      // A replica restarted meanwhile starts on its cache, and says so.
      c.proc.proc.kill('SIGTERM');
      expect(await c.proc.exited).to.equal(0);
      c = await spawnReplica(cDir);
      expect(
        logLines(c.proc.stderr()).some((l) =>
          String(l.msg).startsWith('the AccessAudit store cannot be reached: starting on the rules cached'),
        ),
      ).to.equal(true);
      expect(await stream(c.address, 'zone-1', [event('DELETE', 'web'), event('CREATE', 'web')])).to.deep.equal([
        'recorded',
        'skipped',
      ]);

      // Back: changes work again, and every replica converges.
      await cluster.start();
      await eventually(
        async () => {
          await unary(a.rules, 'CreateAccessAudit', { accessAudit: CREATES });
          return true;
        },
        'a change through a taken again',
        RECONNECT_MS,
      );
      for (const r of [a, b, c]) {
        await eventually(async () => await evaluated(r, 'CREATE'), 'every replica audits CREATE', RECONNECT_MS);
      }
      expect((await adminRequest(Number(admin), 'GET', '/ready')).body).to.equal('LIVE\n');
    });

    /**
     * An apply through `s` that swaps the rules of "deletes" and "creates", caught waiting in the middle of
     * its transaction: the test holds the row of "creates" (FOR UPDATE), so the change writes "deletes",
     * then waits on "creates". `holder` holds the row until the test rolls it back.
     */
    const changeWaitingOnHeldRow = async (s: {
      rules: AnyClient;
    }): Promise<{ holder: import('pg').Client; change: Promise<grpc.ServiceError | unknown> }> => {
      const holder = new (await import('pg')).default.Client(cluster.target);
      holder.on('error', () => {});
      await holder.connect();
      await holder.query('BEGIN');
      await holder.query(`SELECT * FROM ${schema}.${TABLE} WHERE name = 'creates' FOR UPDATE`);
      const change = unary(s.rules, 'ApplyAccessAudits', {
        yaml: yamlOf([
          { ...DELETES, rules: CREATES.rules },
          { ...CREATES, rules: DELETES.rules },
        ]),
      }).catch((e) => e);
      await eventually(
        async () =>
          (
            await holder.query(
              "SELECT 1 FROM pg_stat_activity WHERE application_name = 'meshaudit zone-1' AND wait_event_type = 'Lock'",
            )
          ).rowCount === 1,
        'the change waiting on the held row',
        10_000,
      );
      return { holder, change };
    };

    const storedRules = async (): Promise<unknown[]> =>
      (await rows(cluster.target, schema, 'zone-1')).map((r) => [r.name, r.version, r.rules]);
    const SEEDED_ROWS = [
      ['all', 1, AUDIT_ALL.rules],
      ['creates', 1, CREATES.rules],
      ['deletes', 1, DELETES.rules],
    ];

    it('leaves the old version whole, and the record of the attempt, when a sidecar is SIGKILLed in the middle of a change', async () => {
      const dir = tempDir();
      const s = await spawnReplica(dir, ['--rules', writeRules(dir, [AUDIT_ALL, DELETES, CREATES])]);
      const trail = path.join(dir, 'audit', 'audit.log');
      const seeded = readRecords(trail).length;
      const { holder, change } = await changeWaitingOnHeldRow(s);
      // The records of the attempt were written and committed before the rows.
      expect(
        readRecords(trail)
          .slice(seeded)
          .map((l) => [JSON.parse(l).action, JSON.parse(l).resource.name]),
      ).to.deep.equal([
        ['UPDATE', 'deletes'],
        ['UPDATE', 'creates'],
      ]);
      s.proc.proc.kill('SIGKILL');
      await s.proc.exited;
      await change;
      await holder.query('ROLLBACK');
      await eventually(
        async () =>
          (await holder.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'meshaudit zone-1'"))
            .rowCount === 0,
        "the killed sidecar's connections closed",
        10_000,
      );
      await holder.end();
      expect(await storedRules()).to.deep.equal(SEEDED_ROWS);
    });

    it('stays up, refusing the change with UNAVAILABLE, when the database ends the connection of a change in flight', async () => {
      const dir = tempDir();
      const s = await spawnReplica(dir, ['--rules', writeRules(dir, [AUDIT_ALL, DELETES, CREATES])]);
      const { holder, change } = await changeWaitingOnHeldRow(s);
      // As a failover or an administrator does: the server ends the backend of the change.
      await holder.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'meshaudit zone-1' AND wait_event_type = 'Lock'",
      );
      const refused = (await change) as grpc.ServiceError;
      expect(refused.code).to.equal(grpc.status.UNAVAILABLE);
      expect(refused.details).to.contain('cannot be reached');
      await holder.query('ROLLBACK');
      await holder.end();
      expect(await storedRules()).to.deep.equal(SEEDED_ROWS);
      // Still serving, with the rules it had; and it takes changes again.
      expect(await evaluated(s, 'CREATE')).to.equal(true);
      await eventually(
        async () => {
          await unary(s.rules, 'DeleteAccessAudit', { name: 'creates', version: 1 });
          return true;
        },
        'a change taken again',
        RECONNECT_MS,
      );
    });

    it('keeps its table in a schema named by a reserved word (user), created and written', async () => {
      // Only on a cluster of the test's own: the name cannot be made unique.
      const r = await replica('zone-1', storeOf(cluster.target, 'user'), [DELETES]);
      running.push(r);
      await unary(r.rules, 'CreateAccessAudit', { accessAudit: CREATES });
      expect((await rows(cluster.target, '"user"', 'zone-1')).map((row) => [row.name, row.version])).to.deep.equal([
        ['creates', 1],
        ['deletes', 1],
      ]);
    });

    it('starts with createSchema on a table that exists, as a user that may use it and not create schemas', async () => {
      // The table made beforehand (deploy/postgres/README.md), and a user with the rights it lists, alone.
      await query(cluster.target, tableSql(schema));
      await query(cluster.target, "SELECT 1 FROM pg_roles WHERE rolname = 'meshaudit'").then((found) =>
        found.length === 0 ? query(cluster.target, 'CREATE ROLE meshaudit LOGIN') : [],
      );
      await query(cluster.target, `GRANT USAGE ON SCHEMA ${schema} TO meshaudit`);
      await query(cluster.target, `GRANT SELECT, INSERT, UPDATE, DELETE ON ${schema}.${TABLE} TO meshaudit`);
      const r = await replica('zone-1', storeOf({ ...cluster.target, user: 'meshaudit' }, schema), [DELETES]);
      running.push(r);
      await unary(r.rules, 'CreateAccessAudit', { accessAudit: CREATES });
      expect((await rows(cluster.target, schema, 'zone-1')).map((row) => [row.name, row.changed_by])).to.deep.equal([
        ['creates', 'mesh-system:admin'],
        ['deletes', 'meshaudit:rules-files'],
      ]);
    });

    it('says degraded when the database stops answering without closing its connections, and recovers when it answers', async () => {
      const a = await replica('zone-1', storeOf(cluster.target, schema), [DELETES]);
      running.push(a);
      // Every process of the cluster frozen: the sockets stay open, nothing answers (a vanished host).
      cluster.freeze();
      try {
        await eventually(
          async () => a.sidecar.metrics.storeDegraded.get().then((m) => m.values[0]?.value === 1),
          'degraded after the heartbeat went unanswered',
          30_000,
        );
      } finally {
        cluster.thaw();
      }
      await eventually(
        async () => {
          await unary(a.rules, 'CreateAccessAudit', { accessAudit: CREATES });
          return true;
        },
        'a change taken again once the database answers',
        RECONNECT_MS,
      );
      expect(await evaluated(a, 'CREATE')).to.equal(true);
    });

    it('refuses to start with exit 1 naming the store when the database is down and there is no cache', async () => {
      await cluster.stop();
      const dir = tempDir();
      const config = writeSidecarConfig(dir, { zone: 'zone-1', postgres: { ...cluster.target, schema } });
      const proc = spawnSidecar(['--config', config]);
      spawned.push(proc);
      expect(await proc.exited).to.equal(1);
      expect(proc.stderr()).to.contain(`the AccessAudit store postgres://postgres@127.0.0.1:${cluster.port}/postgres`);
      expect(proc.stderr()).to.contain('cannot be reached');
      expect(proc.stderr()).to.contain('no cached rules yet');
      // --check-config says the same before anyone starts it.
      const check = spawnSidecar(['--config', config, '--check-config']);
      spawned.push(check);
      expect(await check.exited).to.equal(1);
      expect(check.stderr()).to.contain('cannot be reached');
      expect(check.stderr()).to.contain('start-up would stop (exit 1)');
    });
  });
});

function writeRules(dir: string, audits: readonly AccessAudit[]): string {
  const file = path.join(dir, 'rules.yaml');
  fs.writeFileSync(file, yamlOf(audits));
  return file;
}
