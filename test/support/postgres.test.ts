// The PostgreSQL test support (postgres.ts, beside it) that the PostgreSQL store's tests stand on: the
// shared server, schemas of a test's own on it, and throwaway clusters a test stops and starts.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import {
  destroyAllClusters,
  freshSchema,
  liveProcesses,
  type PgTarget,
  postgresBinaries,
  query,
  SKIP_NO_POSTGRES,
  sharedPostgres,
  skipWithoutPostgres,
  ThrowawayCluster,
} from './postgres';

/** The processes of a cluster, zombies aside: its postmaster (named by its directory) and the postmaster's children. */
function processesOf(cluster: ThrowawayCluster, postmasterPid: number): number[] {
  return liveProcesses()
    .filter((p) => p.cmdline.includes(cluster.dir) || p.ppid === postmasterPid)
    .map((p) => p.pid);
}

/** The error a query is refused with; fails the test when it is answered. */
async function queryRefusal(target: PgTarget): Promise<NodeJS.ErrnoException> {
  try {
    await query(target, 'SELECT 1');
  } catch (e) {
    return e as NodeJS.ErrnoException;
  }
  throw new Error(`the server on port ${target.port} answered`);
}

describe('PostgreSQL test support', () => {
  it('names the Debian package in its one skip line', () => {
    expect(SKIP_NO_POSTGRES).to.include('Debian package postgresql');
    expect(SKIP_NO_POSTGRES).not.to.include('\n');
  });

  describe('the shared server', () => {
    let shared: PgTarget;
    before(async function () {
      const target = await sharedPostgres();
      if (target === undefined) skipWithoutPostgres(this);
      shared = target;
    });

    it('answers on 127.0.0.1:5432 in the database test as postgres', async () => {
      expect(shared).to.deep.equal({ host: '127.0.0.1', port: 5432, database: 'test', user: 'postgres' });
      const [row] = await query(shared, 'SELECT current_database() AS db, current_user AS who, $1::int AS n', [7]);
      expect(row).to.deep.equal({ db: 'test', who: 'postgres', n: 7 });
    });

    it('gives each freshSchema a schema of its own, that drop removes with its tables', async () => {
      const a = await freshSchema(shared);
      const b = await freshSchema(shared);
      try {
        expect(a.schema).not.to.equal(b.schema);
        expect(a.schema).to.match(new RegExp(`^t_${process.pid}_\\d+_[0-9a-f]{6}$`));
        await query(shared, `CREATE TABLE ${a.schema}.rules (name text)`);
        const tables = (schema: string): Promise<unknown[]> =>
          query(shared, 'SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [schema]);
        expect(await tables(a.schema)).to.deep.equal([{ table_name: 'rules' }]);
        expect(await tables(b.schema)).to.deep.equal([]);

        await a.drop();
        const left = await query(shared, 'SELECT nspname FROM pg_namespace WHERE nspname = ANY($1)', [
          [a.schema, b.schema],
        ]);
        expect(left).to.deep.equal([{ nspname: b.schema }]);
      } finally {
        await b.drop();
      }
    });
  });

  describe('a throwaway cluster', () => {
    let cluster: ThrowawayCluster | undefined;
    before(function () {
      if (postgresBinaries() === undefined) skipWithoutPostgres(this);
    });
    afterEach(async () => {
      await cluster?.destroy();
      cluster = undefined;
    });

    it('finds the newest server binaries: initdb, pg_ctl and postgres', () => {
      const bin = postgresBinaries()!;
      expect(bin).to.match(/^\/usr\/lib\/postgresql\/[\d.]+\/bin$/);
      for (const name of ['initdb', 'pg_ctl', 'postgres']) expect(fs.existsSync(path.join(bin, name))).to.equal(true);
    });

    it('starts on a free 127.0.0.1 port with its data and socket in its own directory, and answers', async () => {
      cluster = await ThrowawayCluster.start();
      expect(cluster.port).not.to.equal(5432);
      expect(cluster.target).to.deep.equal({
        host: '127.0.0.1',
        port: cluster.port,
        database: 'postgres',
        user: 'postgres',
      });
      const [row] = await query(
        cluster.target,
        `SELECT inet_server_port() AS port, current_setting('data_directory') AS data,
                current_setting('unix_socket_directories') AS sockets, current_setting('fsync') AS fsync`,
      );
      expect(row.port).to.equal(cluster.port);
      expect(row.data.startsWith(`${cluster.dir}/`)).to.equal(true, row.data);
      expect(row.sockets.startsWith(`${cluster.dir}/`)).to.equal(true, row.sockets);
      expect(row.fsync).to.equal('off');
    });

    it('refuses connections once stopped, and starts again on the same port with the same data', async () => {
      cluster = await ThrowawayCluster.start();
      await query(cluster.target, 'CREATE TABLE kept (n int)');
      await query(cluster.target, 'INSERT INTO kept VALUES (42)');
      const firstPid = cluster.pid!;

      await cluster.stop();
      expect(cluster.pid).to.equal(undefined);
      expect(processesOf(cluster, firstPid)).to.deep.equal([]);
      expect((await queryRefusal(cluster.target)).code).to.equal('ECONNREFUSED');

      await cluster.start();
      expect(cluster.pid).not.to.equal(firstPid);
      expect(await query(cluster.target, 'SELECT n FROM kept')).to.deep.equal([{ n: 42 }]);
    });

    it('answers nothing while frozen, on an open connection or a new one, and the answers come once thawed; destroy thaws it', async () => {
      cluster = await ThrowawayCluster.start();
      const open = new Client(cluster.target);
      open.on('error', () => {});
      await open.connect();
      try {
        cluster.freeze();
        let answered = false;
        const waiting = open.query('SELECT 1 AS n').then((r) => {
          answered = true;
          return r.rows;
        });
        // A new connection is accepted by the kernel and never answered: it times out.
        expect((await queryRefusal(cluster.target)).message).to.match(/timeout/);
        expect(answered).to.equal(false);
        cluster.thaw();
        expect(await waiting).to.deep.equal([{ n: 1 }]);
        cluster.freeze();
        const pid = cluster.pid!;
        await cluster.destroy();
        expect(processesOf(cluster, pid)).to.deep.equal([]);
      } finally {
        cluster.thaw();
        await open.end().catch(() => {});
      }
    });

    it('removes its directory on destroy and leaves no process of its own running', async () => {
      cluster = await ThrowawayCluster.start();
      const pid = cluster.pid!;
      expect(processesOf(cluster, pid)).to.include(pid);

      await cluster.destroy();
      expect(fs.existsSync(cluster.dir)).to.equal(false);
      expect(processesOf(cluster, pid)).to.deep.equal([]);
      expect((await queryRefusal(cluster.target)).code).to.equal('ECONNREFUSED');
    });

    it('is destroyed by destroyAllClusters when a test forgets it', async () => {
      const forgotten = await ThrowawayCluster.start();
      const pid = forgotten.pid!;

      await destroyAllClusters();
      expect(fs.existsSync(forgotten.dir)).to.equal(false);
      expect(processesOf(forgotten, pid)).to.deep.equal([]);
    });
  });
});
