// The PostgreSQL AccessAudit store itself (src/store/postgres-store.ts), against a real server, for what an
// operator's bad day does to it: a flood of notifications, a cache file that cannot be read, a database
// that stops answering. The sidecars of a zone are tested end to end in test/e2e/postgres-store.test.ts.
import { expect } from 'chai';
import type pg from 'pg';
import { typeRegistry } from '../../src/rules';
import { NOTIFY_CHANNEL, PostgresAccessAuditStore, type PostgresStoreOptions } from '../../src/store/postgres-store';
import { tempDir, waitFor } from '../support/helpers';
import { type PgTarget, query, sharedSchemaForEachTest } from '../support/postgres';

function optionsOf(target: PgTarget, schema: string, dataDir = tempDir()): PostgresStoreOptions {
  return {
    knownTypes: typeRegistry(),
    zone: 'zone-1',
    dataDir,
    config: {
      type: 'postgres',
      createSchema: true,
      postgres: { ...target, passwordFile: undefined, schema, sslMode: 'disable', caFile: undefined },
    },
  };
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
