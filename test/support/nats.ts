// Real nats-server processes for the forwarder's tests (issue 19): throwaway single servers and three-node
// JetStream clusters on free 127.0.0.1 ports, their store and config in a temp directory, a node stopped,
// killed and started again; and the shared server (127.0.0.1:4222) for tests that never stop it.
import * as fs from 'node:fs';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { tempDir } from './helpers';
import { NATS_SERVER_BIN, NatsNode } from '../../bench/nats-server';
import { freePort } from './process';

export { NatsNode, stopAllNatsNodes } from '../../bench/nats-server';

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

  /** One server with JetStream on free ports; `extra`: more lines of its config (an `authorization` block). */
  static async single(extra: readonly string[] = []): Promise<ThrowawayNats> {
    const dir = tempDir('meshaudit-nats-');
    const node = await NatsNode.create(dir, 'n1', undefined, extra);
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
