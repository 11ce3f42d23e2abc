// Real nats-server processes for the tests of the forwarder (issue 19), of the central reader (`meshaudit
// query --nats`) and of deploy/nats/: throwaway single servers, three-node JetStream clusters and deploy/nats's
// own configuration, on free 127.0.0.1 ports, their store and config in a temp directory, a node stopped,
// killed and started again; and the shared server (127.0.0.1:4222) for tests that never stop it. Where the
// binary is missing the tests skip with one line.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, headers as natsHeaders, nkeys } from '@nats-io/transport-node';
import { tempDir } from './helpers';
import { NATS_SERVER_BIN, NatsNode, type NatsNodeOptions } from '../../bench/nats-server';
import { freePort } from './process';

export { NatsNode, stopAllNatsNodes } from '../../bench/nats-server';

/** The shared server every dev and CI machine runs before a session, JetStream on. */
export const SHARED_NATS_URL = 'nats://127.0.0.1:4222';

/** The one line a test prints when it skips for want of nats-server. */
export const SKIP_NO_NATS = `nats-server is not installed (${NATS_SERVER_BIN}, Debian package nats-server): skipping the NATS tests`;

let skipPrinted = false;

/** Skips the test (or the hook's suite) for want of nats-server, printing SKIP_NO_NATS the first time in the run. */
export function skipWithoutNats(ctx: Mocha.Context): never {
  if (!skipPrinted) console.log(`    (${SKIP_NO_NATS})`);
  skipPrinted = true;
  ctx.skip();
}

/** nats-server is installed. */
export function hasNatsServer(): boolean {
  try {
    fs.accessSync(NATS_SERVER_BIN, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Throwaway nats-server nodes (one, a cluster of three, or deploy/nats's): started in a temp directory, destroyed with it. */
export class ThrowawayNats {
  private constructor(
    readonly dir: string,
    readonly nodes: readonly NatsNode[],
  ) {}

  /** The first node's URL: a single server's. */
  get url(): string {
    return this.nodes[0].url;
  }

  /** The URLs of every node, for a client's `servers`. */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /** One server with JetStream on free ports; `extra`: more lines of its config (an `authorization` block). */
  static single(extra: readonly string[] = []): Promise<ThrowawayNats> {
    return ThrowawayNats.start('meshaudit-nats-', [{ extra }]);
  }

  /** Three JetStream nodes routed to each other (a stream of 3 replicas spans them all). */
  static async cluster(): Promise<ThrowawayNats> {
    const clusterPorts = [await freePort(), await freePort(), await freePort()];
    return ThrowawayNats.start(
      'meshaudit-nats-cluster-',
      clusterPorts.map((clusterPort, i) => ({
        cluster: { clusterPort, routes: clusterPorts.filter((_, j) => j !== i) },
      })),
    );
  }

  /**
   * One node per entry of `nodes`, each running the whole config `configText` with the environment `env`
   * (deploy/nats/nats-server.conf and its passwords) and its own `args`: what the config leaves to the
   * command line.
   */
  static configured(
    configText: (storeDir: string) => string,
    nodes: ReadonlyArray<{ readonly args: readonly string[] }>,
    env: NodeJS.ProcessEnv = {},
  ): Promise<ThrowawayNats> {
    return ThrowawayNats.start(
      'meshaudit-nats-configured-',
      nodes.map((n) => ({ configText, args: n.args, env })),
    );
  }

  /**
   * Starts the nodes together (a cluster's node is healthy once its peers elected JetStream's leader) and
   * waits until each serves; a node that fails to stops them all, with the directory.
   */
  private static async start(prefix: string, options: readonly NatsNodeOptions[]): Promise<ThrowawayNats> {
    const dir = tempDir(prefix);
    const nodes: NatsNode[] = [];
    const nats = new ThrowawayNats(dir, nodes);
    try {
      for (const [i, o] of options.entries()) nodes.push(await NatsNode.create(dir, `n${i + 1}`, o));
      for (const n of nodes) n.spawn();
      await Promise.all(nodes.map((n) => n.ready()));
      return nats;
    } catch (e) {
      await nats.destroy();
      throw e;
    }
  }

  /** Stops every node and removes the directory. */
  async destroy(): Promise<void> {
    try {
      await Promise.all(this.nodes.map((n) => n.stop()));
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** How a test's own client logs in, on a server with an `authorization` block. */
export type ClientAuth = { token?: string; user?: string; pass?: string };

/** A message of the stream, as a test checks it: its subject, headers and payload. */
export interface StreamMessage {
  readonly seq: number;
  readonly subject: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly data: Buffer;
}

/** Every message of `stream` in stream order, read with an ordered consumer (what a central reader does). */
export async function streamMessages(
  servers: string | string[],
  stream: string,
  auth: ClientAuth = {},
): Promise<StreamMessage[]> {
  const nc: NatsConnection = await connect({ servers, timeout: 5_000, ...auth });
  try {
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(stream);
    const out: StreamMessage[] = [];
    if (state.messages === 0) return out;
    const consumer = await jetstream(nc).consumers.get(stream);
    const messages = await consumer.consume({ max_messages: 1000 });
    for await (const m of messages) {
      const headers: Record<string, string> = {};
      for (const [k, v] of m.headers ?? []) headers[k] = v[0];
      out.push({ seq: m.seq, subject: m.subject, headers, data: Buffer.from(m.data) });
      if (m.seq >= state.last_seq) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** Runs `fn` with a JetStream manager on a connection of its own, closed afterwards. */
export async function withManager<T>(
  servers: string | string[],
  fn: (jsm: JetStreamManager) => Promise<T>,
  auth: ClientAuth = {},
): Promise<T> {
  const nc: NatsConnection = await connect({ servers, timeout: 5_000, ...auth });
  try {
    return await fn(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

/** Deletes a stream (on the shared server: a test's own stream, after it). */
export async function deleteStream(servers: string | string[], stream: string): Promise<void> {
  await withManager(servers, async (jsm) => {
    await jsm.streams.delete(stream).catch(() => false);
  });
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
  /** `operator`, `system_account` and `resolver` lines for ThrowawayNats.single's `extra`. */
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
