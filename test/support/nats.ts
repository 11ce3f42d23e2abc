// Real nats-server processes for the forwarder's tests (issue 19): throwaway single servers and three-node
// JetStream clusters on free 127.0.0.1 ports, their store and config in a temp directory, a node stopped,
// killed and started again; and the shared server (127.0.0.1:4222) for tests that never stop it.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { tempDir } from './helpers';
import { freePort } from './process';

/** Where Debian's nats-server package puts the binary. */
export const NATS_SERVER_BIN = '/usr/sbin/nats-server';
/** The shared server every dev and CI machine runs before a session, JetStream on. */
export const SHARED_NATS_URL = 'nats://127.0.0.1:4222';

/** The one line a test prints when it skips for want of nats-server. */
export const SKIP_NO_NATS =
  'nats-server is not installed (Debian package nats-server): skipping the NATS JetStream forwarder tests';

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

/** Every node a test started and did not destroy: the root hook stops them before the temp directories go. */
const liveNodes = new Set<NatsNode>();

/** Long enough for a loaded 2-core machine to start a server and elect JetStream's leaders. */
const START_TIMEOUT_MS = 20_000;

/** One nats-server process with JetStream: its ports stay the same across restarts, and so does its store. */
export class NatsNode {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly port: number,
    readonly monitorPort: number,
    private readonly configFile: string,
  ) {}

  /** The URL clients connect to. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  /** Writes the node's config (`cluster`: its part of a cluster's) in `dir/<name>`. */
  static async create(
    parent: string,
    name: string,
    cluster?: { clusterPort: number; routes: readonly number[] },
  ): Promise<NatsNode> {
    const dir = path.join(parent, name);
    fs.mkdirSync(dir, { recursive: true });
    const port = await freePort();
    const monitorPort = await freePort();
    const lines = [
      `server_name: ${name}`,
      `listen: 127.0.0.1:${port}`,
      `http: 127.0.0.1:${monitorPort}`,
      `jetstream { store_dir: "${path.join(dir, 'store')}", max_memory_store: 64MB, max_file_store: 1GB }`,
    ];
    if (cluster !== undefined) {
      lines.push(
        `cluster { name: meshaudit-test, listen: 127.0.0.1:${cluster.clusterPort}, routes: [${cluster.routes
          .map((p) => `nats-route://127.0.0.1:${p}`)
          .join(', ')}] }`,
      );
    }
    const configFile = path.join(dir, 'nats.conf');
    fs.writeFileSync(configFile, `${lines.join('\n')}\n`);
    return new NatsNode(name, dir, port, monitorPort, configFile);
  }

  /** Starts the process (again), without waiting for it to serve (ready() does). */
  spawn(): void {
    if (this.proc !== undefined) throw new Error(`nats node ${this.name} is already running`);
    const proc = spawn(NATS_SERVER_BIN, ['-c', this.configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    const log = fs.createWriteStream(path.join(this.dir, 'server.log'), { flags: 'a' });
    proc.stderr?.pipe(log);
    this.proc = proc;
    liveNodes.add(this);
    this.exited = new Promise((resolve) =>
      proc.once('exit', () => {
        if (this.proc === proc) this.proc = undefined;
        resolve();
      }),
    );
  }

  /** Resolves once the server answers its health check with JetStream current (`/healthz`). */
  async ready(timeoutMs = START_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (this.proc === undefined) throw new Error(`nats node ${this.name} exited while starting:\n${this.log()}`);
      last = await httpGet(`http://127.0.0.1:${this.monitorPort}/healthz`).catch((e: Error) => e.message);
      if (/"status":\s*"ok"/.test(last)) return;
      await delay(100);
    }
    throw new Error(`nats node ${this.name} is not healthy after ${timeoutMs} ms (${last}):\n${this.log()}`);
  }

  /** Stops the server with `signal` (SIGKILL: a crash; SIGTERM: a clean stop) and waits for its exit. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    if (proc === undefined) return;
    proc.kill(signal);
    await this.exited;
    liveNodes.delete(this);
  }

  /** Starts it again on the same ports and store, and waits until it serves. */
  async restart(): Promise<void> {
    this.spawn();
    await this.ready();
  }

  /** The server's log so far, for a failure's message. */
  log(): string {
    const file = path.join(this.dir, 'server.log');
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').slice(-4000) : '';
  }
}

/** A throwaway single server, or a three-node cluster: started in a temp directory, destroyed with it. */
export class ThrowawayNats {
  private constructor(
    readonly dir: string,
    readonly nodes: readonly NatsNode[],
  ) {}

  /** The URLs of every node, for a client's `servers`. */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /** One server with JetStream on free ports. */
  static async single(): Promise<ThrowawayNats> {
    const dir = tempDir('meshaudit-nats-');
    const node = await NatsNode.create(dir, 'n1');
    const nats = new ThrowawayNats(dir, [node]);
    node.spawn();
    await node.ready();
    return nats;
  }

  /** Three JetStream nodes routed to each other (a stream of 3 replicas spans them all). */
  static async cluster(): Promise<ThrowawayNats> {
    const dir = tempDir('meshaudit-nats-cluster-');
    const clusterPorts = [await freePort(), await freePort(), await freePort()];
    const nodes: NatsNode[] = [];
    for (let i = 0; i < 3; i++) {
      nodes.push(
        await NatsNode.create(dir, `n${i + 1}`, {
          clusterPort: clusterPorts[i],
          routes: clusterPorts.filter((_, j) => j !== i),
        }),
      );
    }
    const nats = new ThrowawayNats(dir, nodes);
    for (const n of nodes) n.spawn();
    await Promise.all(nodes.map((n) => n.ready()));
    return nats;
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

/** Stops every node a test started and did not stop (the root hook calls it, before the temp directories go). */
export async function stopAllNatsNodes(): Promise<void> {
  await Promise.all([...liveNodes].map((n) => n.stop()));
}

/**
 * Registers a suite's hooks around a throwaway server (or cluster) of its own: the suite skips without
 * nats-server (SKIP_NO_NATS), and the servers are destroyed after its last test.
 */
export function throwawayNatsForSuite(kind: 'single' | 'cluster' = 'single'): { readonly nats: ThrowawayNats } {
  let nats: ThrowawayNats | undefined;
  before(async function () {
    if (!hasNatsServer()) skipWithoutNats(this);
    this.timeout(START_TIMEOUT_MS * 2);
    nats = kind === 'single' ? await ThrowawayNats.single() : await ThrowawayNats.cluster();
  });
  after(async () => {
    await nats?.destroy();
  });
  return {
    get nats() {
      return nats as ThrowawayNats;
    },
  };
}

/** A message of the stream, as a test checks it: its subject, headers and payload. */
export interface StreamMessage {
  readonly seq: number;
  readonly subject: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly data: Buffer;
}

/** Every message of `stream` in stream order, read with an ordered consumer (what a central reader does). */
export async function streamMessages(servers: string | string[], stream: string): Promise<StreamMessage[]> {
  const nc: NatsConnection = await connect({ servers, timeout: 5_000 });
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
): Promise<T> {
  const nc: NatsConnection = await connect({ servers, timeout: 5_000 });
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

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
