// The zone's AccessAudit resources in PostgreSQL (meshaudit.store.type: postgres), shared by every
// replica of the zone's control plane: one rule set per zone, as Kong Mesh keeps AccessAudit in the zone's
// own store. docs/store.md is the operator's side of this file.
//
// - One table, keyed by zone and name (tableSql below, shipped as deploy/postgres/schema.sql): zones may
//   share a server and never see each other's rows.
// - A change locks the zone (a transaction-scoped advisory lock, so that creates are serialised too),
//   reads the zone again, is prepared against what it holds, writes its audit record (the caller's work),
//   then writes the rows, each update and delete only at the version it was prepared against, notifies,
//   and commits. Two changes at one version on two replicas: the second reads the first's version and
//   gets ABORTED, writing no record. A sidecar killed mid-change leaves the transaction uncommitted: the
//   rows hold the old version whole, and the trail holds the record of the attempt.
// - Every sidecar LISTENs: a change committed by another replica is read (the whole zone) and put in force
//   at once, without a record (that replica recorded it). After any reconnect the whole zone is read
//   again, so a notification missed meanwhile cannot leave a sidecar stale.
// - The last rule set read is cached in the data directory (access-audits.postgres-cache.json): memory
//   follows the database whether or not the cache can be written (onCacheError says when not). While the
//   database cannot be reached the sidecar keeps recording with it, is `degraded`, and refuses changes
//   (UNAVAILABLE); a sidecar started then starts on the cache, and one with no cache refuses to start.
//   The connection is retried with a jittered backoff.
//
// Nothing here knows of gRPC; StoreError is UNAVAILABLE (src/server/status.ts).
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { PostgresStoreConfig, StoreConfig } from '../config/types';
import type { ValidAccessAudit } from '../rules';
import type { Violation } from '../validators';
import {
  AccessAuditStore,
  type PreparedChange,
  type RuleStore,
  type StoreDiff,
  type StoreOptions,
  type StoredAccessAudit,
} from './access-audit-store';
import { StaleVersionError, StoreError } from './errors';

/** The table, in the configured schema. */
export const TABLE = 'meshaudit_access_audits';
/** The cache of the last rule set read, in the data directory: never the file store's own file. */
export const POSTGRES_CACHE_FILE = 'access-audits.postgres-cache.json';
/** One channel per database: payloads name the schema and the zone, so tests' schemas and zones stay apart. */
export const NOTIFY_CHANNEL = 'meshaudit_access_audits';

/** A connection attempt longer than this counts as the database being unreachable. */
const CONNECT_TIMEOUT_MS = 5_000;
/**
 * A change waits this long for the zone's lock (another replica's change, which holds it while its record
 * is written): past it, UNAVAILABLE rather than a call that hangs.
 */
const LOCK_TIMEOUT_MS = 10_000;
/** Any statement past this is given up (a database that stopped answering without closing the connection). */
const STATEMENT_TIMEOUT_MS = 15_000;
/** Past statement_timeout (the server's own bound): a query that long has no server answering it. */
const QUERY_TIMEOUT_MS = STATEMENT_TIMEOUT_MS + 5_000;
/**
 * The listener asks the database this often whether it is there: a host that vanished without closing
 * its connections is noticed within HEARTBEAT_MS + HEARTBEAT_TIMEOUT_MS, not after TCP's minutes.
 */
const HEARTBEAT_MS = 10_000;
const HEARTBEAT_TIMEOUT_MS = 5_000;
/** Reconnect backoff: from the first, doubled up to the last, each with up to half of it added at random. */
const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 5_000;
/** TCP keepalive on every connection: a database host that vanished is noticed without a query. */
const KEEPALIVE_DELAY_MS = 10_000;

/**
 * The table as SQL names it in `schema`: the schema quoted, so that one named by a reserved word (user,
 * order) is a name too. The config keeps schemas to lowercase identifiers: quoted or not, the same name.
 */
export function qualifiedTable(schema: string): string {
  return `"${schema}".${TABLE}`;
}

/** The SQL that creates the table (and its schema): deploy/postgres/schema.sql is this for `public`. */
export function tableSql(schema: string): string {
  return `CREATE SCHEMA IF NOT EXISTS "${schema}";

-- meshaudit's AccessAudit resources, one row per zone and name (docs/store.md).
CREATE TABLE IF NOT EXISTS ${qualifiedTable(schema)} (
  zone       text        NOT NULL,
  name       text        NOT NULL,
  -- 1 on creation, one more on every change: optimistic concurrency (UpdateAccessAudit's version).
  version    bigint      NOT NULL CHECK (version >= 1),
  -- api: written through RuleService; file: by the --rules files (which delete what they stop defining).
  origin     text        NOT NULL CHECK (origin IN ('api', 'file')),
  rules      jsonb       NOT NULL,
  -- The user who made the change (the authenticated caller, or meshaudit:rules-files), and when.
  changed_by text        NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (zone, name)
);
`;
}

export interface PostgresStoreOptions {
  /** The cache's options: the types and limits a change is checked with (passed on whole: limits are getters). */
  readonly cache: StoreOptions;
  readonly zone: string;
  /** The data directory: the cache of the last rule set read is kept there. */
  readonly dataDir: string;
  readonly config: StoreConfig & { postgres: PostgresStoreConfig };
  /** How long a query waits for the server's answer; QUERY_TIMEOUT_MS by default (tests shorten it). */
  readonly queryTimeoutMs?: number;
  /**
   * Told when the cache cannot be written: the rules in force follow the database all the same, but a
   * start while the database is down would start on older ones. Default: throws (nothing writes the
   * cache without a sidecar: --check-config).
   */
  readonly onCacheError?: (err: StoreError) => void;
}

interface PostgresStoreEvents {
  /**
   * Another replica changed the zone: refresh() reads it. Said once until refresh() starts, whatever
   * the number of notifications meanwhile: one read covers every change committed before it.
   */
  notified: [];
  /** The database cannot be reached: changes are refused until `restored`. */
  degraded: [reason: string];
  /** The database answers again: refresh() reads what changed meanwhile. */
  restored: [];
}

/** The connection settings of node-postgres, from the resolved config. */
export function clientConfig(p: PostgresStoreConfig, zone: string, queryTimeoutMs = QUERY_TIMEOUT_MS): pg.ClientConfig {
  const ssl =
    p.sslMode === 'disable'
      ? false
      : {
          rejectUnauthorized: p.sslMode !== 'require',
          ...(p.caFile === undefined ? {} : { ca: readSetting(p.caFile, 'caFile') }),
          // verify-ca: the chain is checked, the host name is not (libpq's meaning).
          ...(p.sslMode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
        };
  return {
    host: p.host,
    port: p.port,
    database: p.database,
    user: p.user,
    // Read at each connection, so that a rotated secret is used without a restart. Undefined: node-postgres
    // falls back to PGPASSWORD, then the PGPASSFILE (~/.pgpass) file, as libpq does.
    // A trailing newline is the file's, not the password's (a Kubernetes Secret written by echo).
    ...(p.passwordFile === undefined
      ? {}
      : { password: () => readSetting(p.passwordFile as string, 'passwordFile').replace(/\r?\n$/, '') }),
    ssl,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    // The server enforces statement_timeout; a server that vanished (its host gone, a network partition)
    // answers nothing, so the client gives up on its own a little later.
    query_timeout: queryTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    application_name: `meshaudit ${zone}`.slice(0, 63),
  };
}

function readSetting(file: string, key: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new StoreError(`can't read meshaudit.store.postgres.${key} ${file}: ${(e as Error).message}`);
  }
}

/** The database cannot be reached: UNAVAILABLE, and exit 1 at start-up without a cache (a supervisor retries). */
export class UnreachableError extends StoreError {}

export class PostgresAccessAuditStore extends EventEmitter<PostgresStoreEvents> implements RuleStore {
  readonly type = 'postgres';
  readonly location: string;
  private readonly cache: AccessAuditStore;
  private readonly pool: pg.Pool;
  private readonly table: string;
  private readonly zone: string;
  private readonly schema: string;
  /** Names this sidecar in its notifications, so that it skips its own. */
  private readonly instance = `${os.hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  private listener: pg.Client | undefined;
  private degradedBecause: string | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectDelayMs = RECONNECT_FIRST_MS;
  private closed = false;
  /** `notified` was emitted and no refresh() has started since: a burst of notifications asks for one read. */
  private refreshAsked = false;

  private constructor(private readonly opts: PostgresStoreOptions) {
    super();
    const p = opts.config.postgres;
    this.zone = opts.zone;
    this.schema = p.schema;
    this.table = qualifiedTable(p.schema);
    this.location = `postgres://${p.user}@${p.host}:${p.port}/${p.database} table ${this.table}, zone ${opts.zone}`;
    // Getters, not a spread: the limits are read on each change, as a reload sets them.
    this.cache = new AccessAuditStore(opts.dataDir, opts.cache, {
      fileName: POSTGRES_CACHE_FILE,
      onWriteError: opts.onCacheError,
    });
    this.pool = new pg.Pool({ ...clientConfig(p, opts.zone, opts.queryTimeoutMs), max: 2, idleTimeoutMillis: 10_000 });
    // An idle connection that dies (the server stopped) is reported here; without a handler it would crash the process.
    this.pool.on('error', () => {});
  }

  /**
   * Opens the store: the table checked (or created with createSchema), the zone read and cached, and
   * the listener started. With the database unreachable, starts degraded on the cache when there is one
   * (`startedOnCache` says why), and throws UnreachableError when there is none. Returns the warnings of
   * the stored resources, and why the cache could not be read when the zone's rows replaced it
   * (`cacheReplaced`).
   */
  static async open(opts: PostgresStoreOptions): Promise<{
    store: PostgresAccessAuditStore;
    warnings: Violation[];
    startedOnCache: string | undefined;
    cacheReplaced: string | undefined;
  }> {
    const store = new PostgresAccessAuditStore(opts);
    // The cache stands in for the database only while it cannot be reached: one that cannot be read (a
    // power loss, a hand edit) must not stop a start that the database can serve.
    let cached: Violation[] | StoreError;
    try {
      cached = store.cache.load();
    } catch (e) {
      if (!(e instanceof StoreError)) throw e;
      cached = e;
    }
    try {
      await store.ensureTable();
      // Listening first: a change committed after the read is notified, one before it is read.
      await store.sql(() => store.listen());
      const { warnings } = await store.readZone();
      // The read writes the cache only when it differs from memory: an empty zone would leave it unreadable.
      if (cached instanceof StoreError) store.cache.persistAgain();
      return {
        store,
        warnings,
        startedOnCache: undefined,
        cacheReplaced: cached instanceof StoreError ? cached.message : undefined,
      };
    } catch (e) {
      if (!(e instanceof UnreachableError)) {
        await store.close();
        throw e;
      }
      const reason = store.degradedBecause ?? e.message;
      if (cached instanceof StoreError || !fs.existsSync(store.cache.file)) {
        await store.close();
        const noCache =
          cached instanceof StoreError
            ? `its cached rules cannot be read either (${cached.message})`
            : `this sidecar has no cached rules yet (${store.cache.file}) to start on`;
        throw new UnreachableError(
          `the AccessAudit store ${store.location} cannot be reached (${reason}), and ${noCache}: ` +
            'start it again once the database answers',
        );
      }
      return { store, warnings: cached, startedOnCache: reason, cacheReplaced: undefined };
    }
  }

  /**
   * What --check-config says of the store, writing nothing: the connection, the table (or that start-up
   * creates it), and the zone's resources as start-up would read them.
   */
  static async check(
    opts: PostgresStoreOptions,
  ): Promise<{ store: AccessAuditStore; location: string; warnings: Violation[] }> {
    const store = new PostgresAccessAuditStore(opts);
    store.closed = true;
    try {
      const exists = await store.tableExists();
      if (!exists && !opts.config.createSchema) throw store.missingTable();
      const rows = exists ? await store.sql(() => store.selectZone(store.pool)) : [];
      // A planner of the zone as read, in memory alone: --check-config writes nothing.
      const check = new AccessAuditStore(opts.dataDir, opts.cache, { fileName: POSTGRES_CACHE_FILE });
      const { warnings } = check.replaceAll(entriesOf(rows), `the AccessAudit store ${store.location}`, false);
      return { store: check, location: store.location, warnings };
    } finally {
      await store.pool.end();
    }
  }

  /** The file that caches the last rule set read. */
  get cacheFile(): string {
    return this.cache.file;
  }

  get degraded(): string | undefined {
    return this.degradedBecause;
  }

  list(): StoredAccessAudit[] {
    return this.cache.list();
  }

  get(name: string): StoredAccessAudit {
    return this.cache.get(name);
  }

  prepareCreate(input: unknown): PreparedChange {
    return this.cache.prepareCreate(input);
  }

  prepareUpdate(input: unknown, version: number): PreparedChange {
    return this.cache.prepareUpdate(input, version);
  }

  prepareDelete(name: string, version: number): PreparedChange {
    return this.cache.prepareDelete(name, version);
  }

  prepareApply(audits: readonly ValidAccessAudit[]): PreparedChange {
    return this.cache.prepareApply(audits);
  }

  prepareSeed(audits: readonly ValidAccessAudit[]): PreparedChange {
    return this.cache.prepareSeed(audits);
  }

  persistAgain(): void {
    this.cache.persistAgain();
  }

  async change(
    changedBy: string,
    work: (refreshed: StoreDiff | undefined) => Promise<PreparedChange>,
  ): Promise<PreparedChange> {
    if (this.degradedBecause !== undefined) throw this.unavailable(this.degradedBecause);
    const change = await this.transaction(async (client) => {
      await this.sql(async () => {
        await client.query(`SET LOCAL lock_timeout = ${LOCK_TIMEOUT_MS}`);
        await this.lockZone(client);
      });
      const { diff: refreshed } = this.adopt(await this.sql(() => this.selectZone(client)));
      const change = await work(refreshed);
      if (change.changes.length === 0) return { result: change, commit: false };
      await this.sql(async () => {
        await this.write(client, change, changedBy);
        await client.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, this.payload()]);
      });
      return { result: change, commit: true };
    });
    // Committed: memory follows. A cache file that cannot be written is reported (onCacheError), not
    // thrown: the change is in the database, and the caller is told it is made.
    this.cache.commit(change);
    return change;
  }

  async refresh(): Promise<StoreDiff | undefined> {
    // Cleared before the read: a notification that arrives from now on may be of a commit it does not see.
    this.refreshAsked = false;
    if (this.degradedBecause !== undefined) return undefined;
    return (await this.readZone()).diff;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const listener = this.listener;
    this.listener = undefined;
    await Promise.allSettled([listener?.end(), this.pool.end()]);
  }

  /**
   * The table exists, or is created (createSchema); a missing one names itself and the SQL that makes it.
   * Looked for first: creating it, even IF NOT EXISTS, needs rights the sidecars' user may not have
   * (CREATE on the database) once it is made.
   */
  private async ensureTable(): Promise<void> {
    if (await this.tableExists()) return;
    if (!this.opts.config.createSchema) throw this.missingTable();
    // Replicas starting at once with createSchema race to create the same table: one at a time.
    await this.transaction(async (client) => {
      await this.sql(async () => {
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`meshaudit:schema:${this.schema}`]);
        await client.query(tableSql(this.schema));
      });
      return { result: undefined, commit: true };
    });
  }

  private async tableExists(): Promise<boolean> {
    const found = await this.sql(() => this.pool.query('SELECT to_regclass($1) AS table', [this.table]));
    return found.rows[0]?.table !== null;
  }

  private missingTable(): StoreError {
    return new StoreError(
      `the AccessAudit store's table ${this.table} does not exist in ${this.location.split(' table')[0]}: ` +
        `create it with deploy/postgres/schema.sql (as a user that may), or set meshaudit.store.createSchema: true. ` +
        `The SQL:\n${tableSql(this.schema)}`,
    );
  }

  /**
   * Runs `run` in a transaction on a pooled connection, and commits it or rolls it back as `run` says;
   * anything thrown discards the connection, which rolls it back. While a connection is checked out the pool
   * does not listen for its 'error' (the server ended it: a restart, a failover, pg_terminate_backend),
   * and an 'error' nobody listens for ends the process: this listens meanwhile. The query in flight, or
   * the next one, fails with the same cause, and sql() reports it.
   */
  private async transaction<T>(run: (client: pg.PoolClient) => Promise<{ result: T; commit: boolean }>): Promise<T> {
    const client = await this.sql(() => this.pool.connect());
    const ended = (): void => {};
    client.on('error', ended);
    let done = false;
    try {
      await this.sql(() => client.query('BEGIN'));
      const { result, commit } = await run(client);
      await this.sql(() => client.query(commit ? 'COMMIT' : 'ROLLBACK'));
      done = true;
      return result;
    } finally {
      // Discarding the connection ends its transaction on the server. No ROLLBACK first: on a server that
      // stopped answering it would wait QUERY_TIMEOUT_MS more, and every change behind this one with it.
      client.release(done ? undefined : true);
      // A discarded connection keeps its handler: an error while it closes must not reach the process.
      if (done) client.off('error', ended);
    }
  }

  /** Reads the whole zone and puts it in memory and in the cache. */
  private async readZone(): Promise<{ diff: StoreDiff | undefined; warnings: Violation[] }> {
    // One statement: a consistent snapshot of the zone, on whichever pooled connection is free.
    return this.adopt(await this.sql(() => this.selectZone(this.pool)));
  }

  private adopt(rows: ZoneRow[]): { diff: StoreDiff | undefined; warnings: Violation[] } {
    return this.cache.replaceAll(entriesOf(rows), `the AccessAudit store ${this.location}`);
  }

  private async selectZone(on: pg.Pool | pg.PoolClient): Promise<ZoneRow[]> {
    const result = await on.query<ZoneRow>(
      `SELECT name, version, origin, rules FROM ${this.table} WHERE zone = $1 ORDER BY name`,
      [this.zone],
    );
    return result.rows;
  }

  private lockZone(client: pg.PoolClient): Promise<unknown> {
    return client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`meshaudit:${this.schema}:${this.zone}`]);
  }

  /** Writes each row the change touches, each update and delete only at the version it was prepared against. */
  private async write(client: pg.PoolClient, change: PreparedChange, changedBy: string): Promise<void> {
    const after = new Map(change.after.map((a) => [a.name, a]));
    // The zone as read under the lock (list() sorts: once per change, not once per resource).
    const beforeByName = new Map(this.cache.list().map((a) => [a.name, a]));
    for (const { action, name } of change.changes) {
      const before = beforeByName.get(name);
      const audit = after.get(name);
      let written: number | null;
      if (action === 'CREATE' && audit !== undefined) {
        written = (
          await client.query(
            `INSERT INTO ${this.table} (zone, name, version, origin, rules, changed_by) VALUES ($1, $2, $3, $4, $5, $6)`,
            [this.zone, name, audit.version, audit.origin, JSON.stringify(audit.rules), changedBy],
          )
        ).rowCount;
      } else if (action === 'UPDATE' && audit !== undefined && before !== undefined) {
        written = (
          await client.query(
            `UPDATE ${this.table} SET version = $3, origin = $4, rules = $5, changed_by = $6, changed_at = now() ` +
              'WHERE zone = $1 AND name = $2 AND version = $7',
            [this.zone, name, audit.version, audit.origin, JSON.stringify(audit.rules), changedBy, before.version],
          )
        ).rowCount;
      } else if (action === 'DELETE' && before !== undefined) {
        written = (
          await client.query(`DELETE FROM ${this.table} WHERE zone = $1 AND name = $2 AND version = $3`, [
            this.zone,
            name,
            before.version,
          ])
        ).rowCount;
      } else {
        throw new Error(`a ${action} of AccessAudit "${name}" that the store's state does not allow`);
      }
      // The zone is locked and was read under the lock: only a write from outside meshaudit gets here.
      if (written !== 1) throw new StaleVersionError(name, -1, before?.version ?? 0);
    }
  }

  private payload(): string {
    return JSON.stringify({ schema: this.schema, zone: this.zone, by: this.instance });
  }

  /**
   * Runs database calls: an error the server answered with becomes StoreError (UNAVAILABLE, naming the
   * store), any other (the connection) UnreachableError, which also degrades the store.
   */
  private async sql<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      if (e instanceof StaleVersionError || e instanceof StoreError) throw e;
      throw this.translate(e);
    }
  }

  /** Starts listening; a listener that fails makes the store degraded until a new one listens. */
  private async listen(): Promise<void> {
    const client = new pg.Client(clientConfig(this.opts.config.postgres, this.zone, this.opts.queryTimeoutMs));
    const lost = (err?: Error): void => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.end().catch(() => {});
      this.degrade(err === undefined ? 'the connection to the database ended' : describe(err));
    };
    client.on('error', lost);
    client.on('end', () => {
      clearInterval(heartbeat);
      lost();
    });
    const heartbeat = setInterval(() => {
      if (this.listener !== client) return;
      client
        .query({ text: 'SELECT 1', query_timeout: HEARTBEAT_TIMEOUT_MS } as pg.QueryConfig)
        .catch((e: Error) =>
          lost(new Error(`no answer to a heartbeat within ${HEARTBEAT_TIMEOUT_MS / 1000} s: ${e.message}`)),
        );
    }, HEARTBEAT_MS);
    heartbeat.unref();
    client.on('notification', (msg) => {
      if (msg.channel !== NOTIFY_CHANNEL || msg.payload === undefined) return;
      // Anyone who may connect to the database may NOTIFY on the channel: a payload that is not a sidecar's
      // (not JSON, not an object, another zone's) is ignored, and never throws out of the socket's handler.
      let from: unknown;
      try {
        from = JSON.parse(msg.payload);
      } catch {
        return;
      }
      if (typeof from !== 'object' || from === null) return;
      const { schema, zone, by } = from as Record<string, unknown>;
      if (schema !== this.schema || zone !== this.zone || by === this.instance || this.refreshAsked) return;
      this.refreshAsked = true;
      this.emit('notified');
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    } catch (e) {
      clearInterval(heartbeat);
      client.end().catch(() => {});
      throw e;
    }
    // Closed meanwhile, or another reconnect won the race: one listener at a time.
    if (this.closed || this.listener !== undefined) {
      clearInterval(heartbeat);
      await client.end().catch(() => {});
      return;
    }
    this.listener = client;
  }

  /** Marks the store degraded, or says the outage's new reason (a refused password after a timeout), and retries. */
  private degrade(reason: string): void {
    if (this.closed) return;
    if (this.degradedBecause !== reason) {
      this.degradedBecause = reason;
      this.emit('degraded', reason);
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer !== undefined) return;
    const delay = this.reconnectDelayMs * (1 + Math.random() / 2);
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, RECONNECT_MAX_MS);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.reconnect().catch(() => {});
    }, delay);
    this.reconnectTimer.unref();
  }

  private async reconnect(): Promise<void> {
    try {
      if (this.listener === undefined) await this.listen();
      // The listener's connection may outlive what broke the others (a postmaster or a proxy that takes no
      // new connection while the open ones answer; a hung host, until the heartbeat says so): the database
      // answers once a query through the pool, the one changes take, is answered.
      await this.pool.query('SELECT 1');
    } catch (e) {
      this.degrade(describe(e));
      return;
    }
    if (this.closed || this.degradedBecause === undefined) return;
    this.degradedBecause = undefined;
    this.reconnectDelayMs = RECONNECT_FIRST_MS;
    this.emit('restored');
  }

  private translate(e: unknown): StoreError {
    if (e instanceof pg.DatabaseError && !isConnectionCode(e.code)) {
      if (e.code === '55P03') {
        return new StoreError(
          `another change in zone ${this.zone} held the AccessAudit store's lock for ${LOCK_TIMEOUT_MS / 1000} s; retry later`,
        );
      }
      return new StoreError(`the AccessAudit store ${this.location} refused: ${describe(e)}`);
    }
    let reason = describe(e);
    // node-postgres says only "The server does not support SSL connections": name the key that asked for TLS.
    if (/\bSSL\b/.test(reason)) reason += ` (meshaudit.store.postgres.sslMode is ${this.opts.config.postgres.sslMode})`;
    this.degrade(reason);
    return this.unavailable(reason);
  }

  private unavailable(reason: string): UnreachableError {
    return new UnreachableError(
      `the AccessAudit store ${this.location} cannot be reached (${reason}): rule changes are refused until it ` +
        'answers; events are recorded meanwhile with the last rules read',
    );
  }
}

interface ZoneRow {
  name: string;
  version: string | number;
  origin: string;
  rules: unknown;
}

/** Rows as the store's entries (bigint comes as a string). */
function entriesOf(rows: readonly ZoneRow[]): unknown[] {
  return rows.map((r) => ({ name: r.name, version: Number(r.version), origin: r.origin, rules: r.rules }));
}

/** 08: connection exception; 57P: the server is shutting down or restarting. */
function isConnectionCode(code: string | undefined): boolean {
  return code?.startsWith('08') === true || code?.startsWith('57P') === true;
}

function describe(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code !== undefined && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message;
}
