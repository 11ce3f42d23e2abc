// Throwaway nats-server processes (JetStream on) for the tests of the central reader (`meshaudit query
// --nats`) and of deploy/nats/: each on a free 127.0.0.1 port with its store in a temp directory of its
// own, never the shared server on 127.0.0.1:4222. Where the binary is missing the tests skip with one line.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect, type NatsConnection, headers as natsHeaders, nkeys } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { tempDir } from './helpers';
import { freePort } from './process';

/** Where Debian's nats-server package installs the server. */
export const NATS_SERVER = '/usr/sbin/nats-server';

/** The one line a test prints when it skips for want of nats-server. */
export const SKIP_NO_NATS = `nats-server is not installed (${NATS_SERVER}, Debian package nats-server): skipping the NATS tests`;

let skipPrinted = false;

/** Whether the server binary is there. */
export function hasNatsServer(): boolean {
  try {
    fs.accessSync(NATS_SERVER, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Skips the test (or the hook's suite) for want of nats-server, printing SKIP_NO_NATS the first time in the run. */
export function skipWithoutNats(ctx: Mocha.Context): never {
  if (!skipPrinted) console.log(`    (${SKIP_NO_NATS})`);
  skipPrinted = true;
  ctx.skip();
}

/** Bounds the wait for a server to accept connections: a loaded 2-core machine starts one in well under 1 s. */
const START_TIMEOUT_MS = 10_000;

// A failed test must not leave a server running after its process exits.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** A nats-server of a test's own. */
export class ThrowawayNats {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private log = '';

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly argv: readonly string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** The URL clients connect to. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /**
   * Starts nats-server with JetStream on a free port (or `port`), its store in a new temp directory.
   * `config` is more of the server's configuration (an `authorization` block...); `configText` a whole
   * configuration instead, given the store directory (deploy/nats/); `args` and `env` go to the process.
   * Resolves once it accepts clients.
   */
  static async start(
    opts: {
      config?: string;
      configText?: (storeDir: string) => string;
      port?: number;
      args?: readonly string[];
      env?: NodeJS.ProcessEnv;
    } = {},
  ): Promise<ThrowawayNats> {
    const dir = tempDir('meshaudit-nats-');
    const port = opts.port ?? (await freePort());
    const store = path.join(dir, 'jetstream');
    const text =
      opts.configText?.(store) ??
      `listen: 127.0.0.1:${port}\njetstream { store_dir: ${JSON.stringify(store)} }\n${opts.config ?? ''}\n`;
    const file = path.join(dir, 'nats.conf');
    fs.writeFileSync(file, text);
    const server = new ThrowawayNats(port, dir, ['-c', file, ...(opts.args ?? [])], opts.env ?? {});
    await server.restart();
    return server;
  }

  /** Starts the server (again, after stop(): the same port, configuration and store); resolves once it accepts clients. */
  async restart(): Promise<void> {
    if (this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null)
      throw new Error('the throwaway nats-server is running already');
    const proc = spawn(NATS_SERVER, [...this.argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.env },
    });
    this.proc = proc;
    live.add(proc);
    proc.on('exit', () => live.delete(proc));
    this.exited = new Promise((resolve) => proc.on('close', () => resolve()));
    this.log = '';
    proc.stdout!.on('data', (d) => (this.log += d));
    proc.stderr!.on('data', (d) => (this.log += d));
    const deadline = Date.now() + START_TIMEOUT_MS;
    // "Server is ready": the client listener is up (in a cluster, JetStream may still wait for its peers).
    while (!this.log.includes('Server is ready')) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`nats-server did not start on port ${this.port}:\n${this.log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** What the server logged since it last started. */
  output(): string {
    return this.log;
  }

  /** Stops the server (SIGTERM: it flushes its store) and resolves once it has exited. */
  async stop(): Promise<void> {
    if (this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null)
      this.proc.kill('SIGTERM');
    await this.exited;
  }
}

/** Connects to `url` with `opts` (user, pass, token...): the caller closes it. */
export function natsClient(url: string, opts: Record<string, unknown> = {}): Promise<NatsConnection> {
  return connect({ servers: url, reconnect: false, ...opts });
}

/** Creates the stream as the forwarder creates it (contract: subjects `meshaudit.>`). */
export async function createStream(nc: NatsConnection, name = 'MESHAUDIT'): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name, subjects: ['meshaudit.>'], allow_direct: true });
}

/** One record as a forwarder publishes it (docs/forwarding.md, the message contract). */
export interface ForwardedRecord {
  readonly zone: string;
  readonly instance: string;
  readonly kind: 'resource' | 'token' | 'view';
  readonly fileStartMs: number;
  readonly offset: number;
  /** The record's line, without its newline. */
  readonly line: string;
  readonly chain?: string;
}

/** Publishes `records` in order, as the forwarder does: subject, Nats-Msg-Id and the Meshaudit-* headers; waits for each ack. */
export async function publishRecords(nc: NatsConnection, records: readonly ForwardedRecord[]): Promise<void> {
  const js = jetstream(nc);
  for (const r of records) {
    const h = natsHeaders();
    const position = `${r.fileStartMs}.${r.offset}`;
    h.set('Meshaudit-Zone', r.zone);
    h.set('Meshaudit-Instance', r.instance);
    h.set('Meshaudit-Position', position);
    h.set('Meshaudit-Date', (JSON.parse(r.line) as { date: string }).date);
    if (r.chain !== undefined) h.set('Meshaudit-Chain', r.chain);
    await js.publish(`meshaudit.${r.zone}.${r.instance}.${r.kind}`, r.line, {
      msgID: `${r.zone}.${r.instance}.${position}`,
      headers: h,
    });
  }
}

/** An operator-mode server's trust (JWTs, as nsc makes them): its config lines and a user's `.creds` file. */
export interface OperatorTrust {
  /** `operator`, `system_account` and `resolver` lines for ThrowawayNats.start's `config`. */
  readonly config: string;
  /** A user of the account the config trusts (JetStream enabled), as a `.creds` file. */
  readonly credsFile: string;
  /** A user signed by an account the server does not know: refused. */
  readonly strangerCredsFile: string;
}

/**
 * Makes an operator, a system account and an account with JetStream, and users, as nsc would (a JWT each,
 * signed by its issuer's NKey), writing the users' `.creds` files into `dir`.
 */
export function operatorTrust(dir: string): OperatorTrust {
  const base64url = (x: string | Uint8Array): string => Buffer.from(x).toString('base64url');
  const header = base64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));
  const sign = (issuer: nkeys.KeyPair, subject: string, name: string, nats: object): string => {
    const claims: Record<string, unknown> = {
      iat: Math.floor(Date.now() / 1000),
      iss: issuer.getPublicKey(),
      name,
      sub: subject,
      nats: { ...nats, version: 2 },
    };
    claims.jti = createHash('sha256').update(JSON.stringify(claims)).digest('base64url');
    const body = base64url(JSON.stringify(claims));
    return `${header}.${body}.${base64url(issuer.sign(Buffer.from(`${header}.${body}`)))}`;
  };
  const UNLIMITED = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
  const JETSTREAM = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };
  const operator = nkeys.createOperator();
  const system = nkeys.createAccount();
  const account = nkeys.createAccount();
  const accountJwt = (a: nkeys.KeyPair, name: string, limits: object): string =>
    sign(operator, a.getPublicKey(), name, { type: 'account', limits });
  const creds = (a: nkeys.KeyPair, file: string): string => {
    const user = nkeys.createUser();
    const jwt = sign(a, user.getPublicKey(), 'reader', {
      type: 'user',
      pub: {},
      sub: {},
      subs: -1,
      data: -1,
      payload: -1,
    });
    const seed = Buffer.from(user.getSeed()).toString();
    const text =
      `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n` +
      `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`;
    const out = path.join(dir, file);
    fs.writeFileSync(out, text, { mode: 0o600 });
    return out;
  };
  return {
    config: [
      `operator: ${sign(operator, operator.getPublicKey(), 'meshaudit-test', { type: 'operator' })}`,
      `system_account: ${system.getPublicKey()}`,
      'resolver: MEMORY',
      'resolver_preload: {',
      `  ${system.getPublicKey()}: ${accountJwt(system, 'SYS', UNLIMITED)}`,
      `  ${account.getPublicKey()}: ${accountJwt(account, 'MESHAUDIT', { ...UNLIMITED, ...JETSTREAM })}`,
      '}',
    ].join('\n'),
    credsFile: creds(account, 'reader.creds'),
    strangerCredsFile: creds(nkeys.createAccount(), 'stranger.creds'),
  };
}
