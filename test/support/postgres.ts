// A real PostgreSQL for the tests of the PostgreSQL AccessAudit store (issue 16): the shared server every
// dev and CI machine runs, a schema of a test's own on it, and throwaway clusters a test may stop and start.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client, type QueryResultRow } from 'pg';
import { tempDir } from './helpers';
import { freePort } from './process';

const execFileAsync = promisify(execFile);

/** Where Debian's postgresql-<major> packages put each major version's server binaries. */
const DEBIAN_POSTGRESQL_DIR = '/usr/lib/postgresql';
const SERVER_BINARIES = ['initdb', 'pg_ctl', 'postgres'];

/** The shared server: trust auth, started before every session on the project's machines. */
const SHARED_HOST = '127.0.0.1';
const SHARED_PORT = 5432;
const SHARED_DATABASE = 'test';
const SUPERUSER = 'postgres';
/** Long enough for a loaded 2-core machine, short enough that a machine without the server skips at once. */
const CONNECT_TIMEOUT_MS = 2_000;

/** The one line a test prints when it skips for want of PostgreSQL. */
export const SKIP_NO_POSTGRES =
  'PostgreSQL is not installed (Debian package postgresql) or not answering on 127.0.0.1:5432: skipping the PostgreSQL store tests';

/** A database to connect to, as the store's config names one (trust auth: no password). */
export interface PgTarget {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
}

/**
 * The newest PostgreSQL server binaries folder (/usr/lib/postgresql/<major>/bin holding initdb, pg_ctl
 * and postgres), or undefined when none is installed.
 */
export function postgresBinaries(): string | undefined {
  let majors: string[];
  try {
    majors = fs.readdirSync(DEBIAN_POSTGRESQL_DIR).filter((d) => /^\d+(\.\d+)?$/.test(d));
  } catch {
    return undefined;
  }
  majors.sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const bin = path.join(DEBIAN_POSTGRESQL_DIR, major, 'bin');
    if (SERVER_BINARIES.every((name) => isExecutable(path.join(bin, name)))) return bin;
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** One probe per run: each test file asks, and a machine without the server would wait for each. */
let sharedProbe: Promise<PgTarget | undefined> | undefined;

/** The shared server (127.0.0.1:5432, database test, user postgres), or undefined when it does not answer. */
export function sharedPostgres(): Promise<PgTarget | undefined> {
  sharedProbe ??= probe({ host: SHARED_HOST, port: SHARED_PORT, database: SHARED_DATABASE, user: SUPERUSER });
  return sharedProbe;
}

async function probe(target: PgTarget): Promise<PgTarget | undefined> {
  try {
    await query(target, 'SELECT 1');
    return target;
  } catch {
    return undefined;
  }
}

let skipPrinted = false;

/** Skips the test (or the hook's suite) for want of PostgreSQL, printing SKIP_NO_POSTGRES the first time in the run. */
export function skipWithoutPostgres(ctx: Mocha.Context): never {
  if (!skipPrinted) console.log(`    (${SKIP_NO_POSTGRES})`);
  skipPrinted = true;
  ctx.skip();
}

/** Runs one statement on a connection of its own and returns its rows. */
export async function query<R extends QueryResultRow = any>(
  target: PgTarget,
  sql: string,
  params: readonly unknown[] = [],
): Promise<R[]> {
  const client = new Client({ ...target, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  // An error of the connection after connect() (the server going away) would otherwise be an uncaught 'error'.
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<R>(sql, params as unknown[])).rows;
  } finally {
    await client.end();
  }
}

/** A schema of a test's own and how to remove it. */
export interface FreshSchema {
  readonly schema: string;
  drop(): Promise<void>;
}

let schemasMade = 0;
/** The schemas made and not dropped yet: dropAllSchemas removes what a failed test left. */
const liveSchemas = new Map<string, PgTarget>();

/**
 * A new schema, named for this process and a counter (plus random, for two runs' processes with the same
 * pid), so that tests running at once, in this run or another, never see each other's tables.
 */
export async function freshSchema(target: PgTarget): Promise<FreshSchema> {
  const schema = `t_${process.pid}_${++schemasMade}_${randomBytes(3).toString('hex')}`;
  await query(target, `CREATE SCHEMA ${schema}`);
  liveSchemas.set(schema, target);
  return {
    schema,
    drop: async () => {
      await query(target, `DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      liveSchemas.delete(schema);
    },
  };
}

/**
 * Registers a suite's hooks on the shared server: the suite skips without it (SKIP_NO_POSTGRES), and each
 * test has a schema of its own, dropped after `cleanup` (what the test opened on it) has run.
 */
export function sharedSchemaForEachTest(cleanup: () => Promise<void> = async () => {}): {
  readonly target: PgTarget;
  readonly schema: string;
} {
  let target: PgTarget | undefined;
  let made: FreshSchema | undefined;
  before(async function () {
    target = await sharedPostgres();
    if (target === undefined) skipWithoutPostgres(this);
  });
  beforeEach(async () => {
    made = await freshSchema(target as PgTarget);
  });
  afterEach(async () => {
    try {
      await cleanup();
    } finally {
      await made?.drop();
    }
  });
  return {
    get target() {
      return target as PgTarget;
    },
    get schema() {
      return (made as FreshSchema).schema;
    },
  };
}

/** Drops every schema freshSchema made and no test dropped (the root hook calls it after the last test). */
export async function dropAllSchemas(): Promise<void> {
  for (const [schema, target] of [...liveSchemas]) {
    await query(target, `DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    liveSchemas.delete(schema);
  }
}

/** Every cluster started and not destroyed yet: destroyAllClusters stops what a failed test left running. */
const liveClusters = new Set<ThrowawayCluster>();

/** The account the server runs as when the tests run as root (PostgreSQL refuses to run as root). */
const SERVER_ACCOUNT = 'postgres';

/**
 * A PostgreSQL cluster of a test's own, in a temp directory, on a free 127.0.0.1 port: a test may stop it
 * (the database goes away) and start it again on the same port and data. It never touches the shared server.
 */
export class ThrowawayCluster {
  /** The database every new cluster has, as its superuser. */
  readonly target: PgTarget;
  private pid_: number | undefined;
  /** What freeze() stopped, for thaw(). */
  private frozen: number[] = [];
  private readonly dataDir: string;
  private readonly socketDir: string;
  private readonly logFile: string;

  private constructor(
    private readonly bin: string,
    readonly dir: string,
    readonly port: number,
  ) {
    this.dataDir = path.join(dir, 'data');
    // Not /var/run/postgresql: the cluster's socket stays inside its own directory.
    this.socketDir = path.join(dir, 'socket');
    this.logFile = path.join(dir, 'postgres.log');
    this.target = { host: '127.0.0.1', port, database: 'postgres', user: SUPERUSER };
  }

  /** initdb in a new temp directory, then start on a free port. */
  static async start(): Promise<ThrowawayCluster> {
    const bin = postgresBinaries();
    if (bin === undefined)
      throw new Error(
        `can't start a throwaway PostgreSQL: no initdb, pg_ctl and postgres in ${DEBIAN_POSTGRESQL_DIR}/<major>/bin (Debian package postgresql)`,
      );
    const dir = tempDir('meshaudit-pg-');
    const cluster = new ThrowawayCluster(bin, dir, await freePort());
    liveClusters.add(cluster);
    fs.mkdirSync(cluster.socketDir);
    if (runsAsRoot()) handToServerAccount(dir, [dir, cluster.socketDir]);
    // Trust auth and no fsync: a test's data need not outlive a crash of the machine. The C locale is on
    // every machine, whatever LANG names, and UTF8 takes any name a test stores.
    await cluster.run('initdb', [
      ...['-D', cluster.dataDir, '-A', 'trust', '-U', SUPERUSER, '--no-sync'],
      ...['-E', 'UTF8', '--locale', 'C'],
    ]);
    await cluster.start();
    return cluster;
  }

  /** Starts the server (again) on the same port and data; resolves once it accepts connections. */
  async start(): Promise<void> {
    // pg_ctl hands these to postgres through the shell: the directory is quoted.
    const options = `-p ${this.port} -k '${this.socketDir}' -c listen_addresses=127.0.0.1 -c fsync=off`;
    await this.run('pg_ctl', ['-D', this.dataDir, '-o', options, '-w', '-l', this.logFile, 'start']);
    this.pid_ = Number(fs.readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  }

  /**
   * Stops every process of the server with SIGSTOP, the postmaster first (it forks no backend after):
   * the kernel still accepts connections and keeps the open ones, and nothing answers, as a database
   * host that hangs. thaw() (or stop(), destroy()) lets it go on.
   */
  freeze(): void {
    const postmaster = this.pid_;
    if (postmaster === undefined) throw new Error("can't freeze a throwaway cluster that is not running");
    process.kill(postmaster, 'SIGSTOP');
    this.frozen = [postmaster, ...childrenOf(postmaster)];
    for (const pid of this.frozen) process.kill(pid, 'SIGSTOP');
  }

  /** Lets a frozen server go on (SIGCONT to what freeze() stopped). */
  thaw(): void {
    for (const pid of this.frozen.splice(0)) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // exited meanwhile
      }
    }
  }

  /** Stops the server at once, as a crash would (no checkpoint); resolves once it has exited. */
  async stop(): Promise<void> {
    // A stopped process handles no signal: pg_ctl's would wait for ever.
    this.thaw();
    await this.run('pg_ctl', ['-D', this.dataDir, 'stop', '-m', 'immediate', '-w']);
    this.pid_ = undefined;
  }

  /**
   * Stops the server if it runs (its postmaster.pid says so, even after a start that failed half way)
   * and removes its directory.
   */
  async destroy(): Promise<void> {
    try {
      if (fs.existsSync(path.join(this.dataDir, 'postmaster.pid'))) await this.stop();
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
      liveClusters.delete(this);
    }
  }

  /** The postmaster's pid while it runs. */
  get pid(): number | undefined {
    return this.pid_;
  }

  /** The server's log so far, for a failure's message. */
  log(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }

  /** Runs a server binary as the server's account, without the PG* environment (PGPORT would override -p). */
  private async run(name: string, args: string[]): Promise<void> {
    const file = path.join(this.bin, name);
    const [command, argv] = runsAsRoot() ? ['runuser', ['-u', SERVER_ACCOUNT, '--', file, ...args]] : [file, args];
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG')));
    try {
      await execFileAsync(command, argv, { env, cwd: this.dir });
    } catch (e) {
      const err = e as Error & { stderr?: string; stdout?: string };
      throw new Error(
        `can't run ${name} ${args.join(' ')} for the throwaway cluster in ${this.dir}: ${err.message}\n` +
          `${err.stdout ?? ''}${err.stderr ?? ''}${this.log()}`,
      );
    }
  }
}

/** A process as /proc tells it. */
export interface LiveProcess {
  readonly pid: number;
  readonly ppid: number;
  readonly cmdline: string;
}

/** Every process of the machine but zombies, from /proc. */
export function liveProcesses(): LiveProcess[] {
  const found: LiveProcess[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name is in parentheses and may hold spaces: the fields that follow it are the state and ppid.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue;
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      found.push({ pid: Number(entry), ppid: Number(ppid), cmdline });
    } catch {
      // the process exited while being read
    }
  }
  return found;
}

/** The live children of a process. */
function childrenOf(parent: number): number[] {
  return liveProcesses()
    .filter((p) => p.ppid === parent)
    .map((p) => p.pid);
}

function runsAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Gives `owned` to the server's account, and lets it reach `dir`: the run's temp directory (`mktemp -d`,
 * 0700 root) and its parents get search permission for others, never read.
 */
function handToServerAccount(dir: string, owned: string[]): void {
  const { uid, gid } = accountIds(SERVER_ACCOUNT);
  for (const d of owned) fs.chownSync(d, uid, gid);
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    const mode = fs.statSync(d).mode;
    if ((mode & 0o001) === 0) fs.chmodSync(d, (mode & 0o7777) | 0o001);
    if (d === path.dirname(d)) break;
  }
}

function accountIds(name: string): { uid: number; gid: number } {
  for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`can't start a throwaway PostgreSQL as root: no account "${name}" to run it as`);
}

/**
 * Registers a suite's hooks around a throwaway cluster of its own: the suite skips without PostgreSQL's
 * server binaries (SKIP_NO_POSTGRES), and the cluster is destroyed after its last test.
 */
export function throwawayClusterForSuite(): { readonly cluster: ThrowawayCluster } {
  let cluster: ThrowawayCluster | undefined;
  before(async function () {
    if (postgresBinaries() === undefined) skipWithoutPostgres(this);
    cluster = await ThrowawayCluster.start();
  });
  after(async () => {
    await cluster?.destroy();
  });
  return {
    get cluster() {
      return cluster as ThrowawayCluster;
    },
  };
}

/** Destroys every cluster a test started and did not destroy (the root hook calls it after the last test). */
export async function destroyAllClusters(): Promise<void> {
  for (const cluster of [...liveClusters]) await cluster.destroy();
}
