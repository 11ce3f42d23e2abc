// The PostgreSQL AccessAudit store itself (src/store/postgres-store.ts), against a real server, for what an
// operator's bad day does to it: a flood of notifications, a cache file that cannot be read, a database
// that stops answering. The sidecars of a zone are tested end to end in test/e2e/postgres-store.test.ts.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type pg from 'pg';
import { type AccessAudit, typeRegistry } from '../../src/rules';
import {
  NOTIFY_CHANNEL,
  POSTGRES_CACHE_FILE,
  PostgresAccessAuditStore,
  type PostgresStoreOptions,
  UnreachableError,
} from '../../src/store/postgres-store';
import { tempDir, waitFor } from '../support/helpers';
import { freePort } from '../support/process';
import { type PgTarget, query, sharedSchemaForEachTest, throwawayClusterForSuite } from '../support/postgres';

function optionsOf(target: PgTarget, schema: string, dataDir = tempDir()): PostgresStoreOptions {
  return {
    cache: { knownTypes: typeRegistry() },
    zone: 'zone-1',
    dataDir,
    config: {
      type: 'postgres',
      createSchema: true,
      postgres: { ...target, passwordFile: undefined, schema, sslMode: 'disable', caFile: undefined },
    },
  };
}

function audit(name: string): AccessAudit {
  return { name, rules: [{ types: [], mesh: '', access: ['DELETE'], accessAll: false }] };
}

describe('the PostgreSQL AccessAudit store', function () {
  this.timeout(30_000);
  const opened: PostgresAccessAuditStore[] = [];
  const shared = sharedSchemaForEachTest(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });
  const open = async (opts: PostgresStoreOptions): Promise<PostgresAccessAuditStore> => {
    const { store } = await PostgresAccessAuditStore.open(opts);
    opened.push(store);
    return store;
  };

  it("starts on the zone's rows when its cache cannot be read, and writes the cache again", async () => {
    const dataDir = tempDir();
    const writer = await open(optionsOf(shared.target, shared.schema));
    await writer.change('admin', async () => writer.prepareCreate(audit('a')));
    // What a power loss leaves of a file whose rename was not synced, or a hand edit.
    const cacheFile = path.join(dataDir, POSTGRES_CACHE_FILE);
    fs.writeFileSync(cacheFile, '');

    const store = await open(optionsOf(shared.target, shared.schema, dataDir));
    expect(store.list().map((a) => a.name)).to.deep.equal(['a']);
    expect(JSON.parse(fs.readFileSync(cacheFile, 'utf8')).accessAudits.map((a: AccessAudit) => a.name)).to.deep.equal([
      'a',
    ]);

    // A zone without rows changes nothing in memory: the cache is written all the same.
    const emptyZoneDir = tempDir();
    fs.writeFileSync(path.join(emptyZoneDir, POSTGRES_CACHE_FILE), '');
    await open({ ...optionsOf(shared.target, shared.schema, emptyZoneDir), zone: 'zone-2' });
    expect(
      JSON.parse(fs.readFileSync(path.join(emptyZoneDir, POSTGRES_CACHE_FILE), 'utf8')).accessAudits,
    ).to.deep.equal([]);
  });

  it('refuses to start, exit 1, naming the database and the cache, when neither can be read', async () => {
    const dataDir = tempDir();
    fs.writeFileSync(path.join(dataDir, POSTGRES_CACHE_FILE), '{"format": 1, "accessAudits": [{"name"');
    const nobody: PgTarget = { ...shared.target, port: await freePort() };
    const refused = await PostgresAccessAuditStore.open(optionsOf(nobody, shared.schema, dataDir)).catch((e) => e);
    expect(refused).to.be.instanceOf(UnreachableError);
    expect(refused.exitCode).to.equal(1);
    expect(refused.message).to.contain('ECONNREFUSED');
    expect(refused.message).to.contain(`${POSTGRES_CACHE_FILE} is corrupt: not JSON`);
  });

  it('asks for one read for a burst of notifications, and for another once that read has started', async () => {
    const store = await open(optionsOf(shared.target, shared.schema));
    let notified = 0;
    store.on('notified', () => notified++);
    // What the store's listener has received: a handler added after the store's runs after it, message by message.
    let received = 0;
    (store as unknown as { listener: pg.Client }).listener.on('notification', () => received++);
    const burst = async (n: number): Promise<void> => {
      const payload = JSON.stringify({ schema: shared.schema, zone: 'zone-1' });
      // Distinct payloads: PostgreSQL folds identical ones of one transaction into one.
      await query(
        shared.target,
        "SELECT count(pg_notify($1, $2 || repeat(' ', g))) FROM generate_series(1, $3::int) g",
        [NOTIFY_CHANNEL, payload, n],
      );
    };
    await burst(20);
    await waitFor(() => received === 20, 'the 20 notifications', 5_000);
    expect(notified).to.equal(1);
    await store.refresh();
    await burst(20);
    await waitFor(() => received === 40, 'the next 20 notifications', 5_000);
    expect(notified).to.equal(2);
  });
});

describe('the PostgreSQL AccessAudit store, on a database that stops answering', function () {
  this.timeout(30_000);
  const suite = throwawayClusterForSuite();
  let store: PostgresAccessAuditStore | undefined;
  afterEach(async () => {
    await store?.close();
  });

  it('refuses a change within one query timeout when the database hangs with the change on its connection', async () => {
    const { cluster } = suite;
    /** Short, so that the test does not wait the 20 s a sidecar would. */
    const queryTimeoutMs = 2_000;
    ({ store } = await PostgresAccessAuditStore.open({ ...optionsOf(cluster.target, 's_hangs'), queryTimeoutMs }));
    const opened = store;
    // A change leaves its connection idle in the pool: the next one takes it, and waits on the frozen server.
    await opened.change('admin', async () => opened.prepareCreate(audit('a')));
    cluster.freeze();
    try {
      const started = Date.now();
      const refused = await opened.change('admin', async () => opened.prepareCreate(audit('b'))).catch((e) => e);
      expect(refused).to.be.instanceOf(UnreachableError);
      expect(refused.message).to.contain('Query read timeout');
      // Not a second timeout for a ROLLBACK the server cannot answer either: every change waits behind this one.
      expect(Date.now() - started).to.be.below(1.5 * queryTimeoutMs);
    } finally {
      cluster.thaw();
    }
  });

  it('stays degraded while its open listening connection answers and a new one cannot be made, and is restored once it can', async () => {
    const { cluster } = suite;
    ({ store } = await PostgresAccessAuditStore.open(optionsOf(cluster.target, 's_new_connections')));
    const opened = store;
    // The pool's connections end: the next query needs a new one. The listener's stays (LISTEN, then heartbeats).
    await query(
      cluster.target,
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = 'meshaudit zone-1' AND query NOT LIKE 'LISTEN %' AND query <> 'SELECT 1'`,
    );
    // The postmaster alone stopped: the kernel accepts connections it never takes; open backends answer.
    const postmaster = cluster.pid as number;
    process.kill(postmaster, 'SIGSTOP');
    let restored = false;
    try {
      expect(await opened.refresh().catch((e) => e)).to.be.instanceOf(UnreachableError);
      opened.once('restored', () => {
        restored = true;
      });
      // Past the first reconnect attempts (from 0.25 s): the listener answering is not the database answering.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(restored).to.equal(false);
      expect(opened.degraded).to.not.equal(undefined);
    } finally {
      process.kill(postmaster, 'SIGCONT');
    }
    await waitFor(() => restored, 'restored once the database takes connections', 15_000);
    expect(opened.degraded).to.equal(undefined);
  });
});
