// A real nats-server process with JetStream, on free 127.0.0.1 ports, its config and store in a folder of
// its own: the benchmark's forwarder scenario (s1n) starts one, and the tests start single servers, three-node
// clusters and deploy/nats's own configuration on them (test/support/nats.ts). Its ports and store stay the
// same across restarts.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { freePort } from './sidecar';

/** Where Debian's nats-server package puts the binary. */
export const NATS_SERVER_BIN = '/usr/sbin/nats-server';

/** Every node started and not stopped: stopAllNatsNodes() stops them (a test run's root hook, the bench's end). */
const liveNodes = new Set<NatsNode>();

// Whatever way the process ends (the benchmark's watchdog or a signal exits it; a test run's failure), no
// server outlives it: an exit handler can only do synchronous work, so each is SIGKILLed.
process.on('exit', () => {
  for (const node of liveNodes) node.killNow();
});

/** Long enough for a loaded 2-core machine to start a server and elect JetStream's leaders. */
export const START_TIMEOUT_MS = 20_000;

/** How a node runs: the config NatsNode.create writes, or a whole one given; more of its command line and environment. */
export interface NatsNodeOptions {
  /** Its part of a three-node cluster of written configs: its route port and its peers'. */
  readonly cluster?: { readonly clusterPort: number; readonly routes: readonly number[] };
  /** More lines of the written config (an `authorization` block, an operator's trust). */
  readonly extra?: readonly string[];
  /** A whole config instead of the written one (deploy/nats/nats-server.conf), given the node's store directory. */
  readonly configText?: (storeDir: string) => string;
  /** More of the command line (what a whole config leaves to it: `--server_name`, `--routes`...). */
  readonly args?: readonly string[];
  /** More of the environment (the variables a config reads its passwords from). */
  readonly env?: NodeJS.ProcessEnv;
}

/** One nats-server process with JetStream: its ports stay the same across restarts, and so does its store. */
export class NatsNode {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly port: number,
    readonly monitorPort: number,
    private readonly argv: readonly string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** The URL clients connect to. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** The process id while it runs. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  /**
   * Writes the node's config in `parent/<name>` (or `options.configText`'s), its store beside it. The client
   * and monitoring ports go on the command line (`-a 127.0.0.1 -p -m`), which overrides a config's own
   * `listen` and `http`: a whole config runs on free loopback ports too, and answers the readiness check.
   */
  static async create(parent: string, name: string, options: NatsNodeOptions = {}): Promise<NatsNode> {
    const dir = path.join(parent, name);
    fs.mkdirSync(dir, { recursive: true });
    const port = await freePort();
    const monitorPort = await freePort();
    const store = path.join(dir, 'store');
    let text = options.configText?.(store);
    if (text === undefined) {
      const lines = [
        `server_name: ${name}`,
        `jetstream { store_dir: ${JSON.stringify(store)}, max_memory_store: 64MB, max_file_store: 1GB }`,
      ];
      const { cluster } = options;
      if (cluster !== undefined) {
        lines.push(
          `cluster { name: meshaudit-test, listen: 127.0.0.1:${cluster.clusterPort}, routes: [${cluster.routes
            .map((p) => `nats-route://127.0.0.1:${p}`)
            .join(', ')}] }`,
        );
      }
      lines.push(...(options.extra ?? []));
      text = `${lines.join('\n')}\n`;
    }
    const configFile = path.join(dir, 'nats.conf');
    fs.writeFileSync(configFile, text);
    const argv = [
      ...['-c', configFile, '-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort)],
      ...(options.args ?? []),
    ];
    return new NatsNode(name, dir, port, monitorPort, argv, options.env ?? {});
  }

  /** Starts the process (again), without waiting for it to serve (ready() does). */
  spawn(): void {
    if (this.proc !== undefined) throw new Error(`nats node ${this.name} is already running`);
    const proc = spawn(NATS_SERVER_BIN, [...this.argv], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...this.env },
    });
    const log = fs.createWriteStream(path.join(this.dir, 'server.log'), { flags: 'a' });
    proc.stderr?.pipe(log);
    this.proc = proc;
    liveNodes.add(this);
    // Once its log file is written to the end too: a failure's message reads it.
    const logged = new Promise<void>((resolve) => log.once('close', () => resolve()));
    this.exited = new Promise((resolve) =>
      proc.once('exit', async () => {
        await logged;
        if (this.proc === proc) {
          this.proc = undefined;
          liveNodes.delete(this);
        }
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
    this.thaw();
    proc.kill(signal);
    await this.exited;
  }

  /**
   * Freezes the server (SIGSTOP): connections stay open and nothing answers, as a host that hangs.
   * thaw() lets it go on; stop() thaws it first, so that a SIGTERM is handled.
   */
  freeze(): void {
    if (this.proc?.pid !== undefined) process.kill(this.proc.pid, 'SIGSTOP');
  }

  thaw(): void {
    if (this.proc?.pid !== undefined) process.kill(this.proc.pid, 'SIGCONT');
  }

  /** SIGKILLs the process now, without waiting (the exit handler above). */
  killNow(): void {
    this.proc?.kill('SIGKILL');
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

/** Stops every node started and not stopped (the tests' root hook calls it, before the temp directories go). */
export async function stopAllNatsNodes(): Promise<void> {
  await Promise.all([...liveNodes].map((n) => n.stop()));
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
