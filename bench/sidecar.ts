// Spawning the real built sidecar, as an operator runs it, and writing its config: shared by the
// benchmark, the soak and the tests (test/support/process.ts re-exports it; bench/ imports nothing from test/).
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { SIDECAR_NODE_FLAGS } from '../src/cli/node-flags';
import { ADMIN_GROUP } from '../src/auth/principal';

export const MAIN = path.resolve(__dirname, '../src/cli/main.js');

export interface SpawnedSidecar {
  proc: ChildProcess;
  /** Resolves with the bound port once the sidecar logs that it started. */
  ready: Promise<number>;
  /** Resolves with the admin's bound port once the sidecar logs that it started (rejects when the admin is off). */
  adminPort: Promise<number>;
  /** The same for the probe listener (meshaudit.admin.probeAddress). */
  probePort: Promise<number>;
  /** Resolves with the exit code (or signal name) once its output is read to the end. */
  exited: Promise<number | string>;
  stderr(): string;
  stdout(): string;
}

// A failed test (or a failed soak) must not leave a sidecar running after its process exits.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/**
 * Starts the built sidecar with the node flags every launcher passes (`nodeFlags` replaces them).
 * `wrap` runs it through a command that execs its arguments (`unshare -m sh -c '...; exec "$@"' sh`):
 * the process is still the sidecar's own.
 */
export function spawnSidecar(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; nodeFlags?: readonly string[]; wrap?: readonly string[] } = {},
): SpawnedSidecar {
  const command = [...(opts.wrap ?? []), process.execPath, ...(opts.nodeFlags ?? SIDECAR_NODE_FLAGS), MAIN, ...args];
  const proc = spawn(command[0], command.slice(1), {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  let err = '';
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  // 'close', not 'exit': at 'exit' the last lines may still be in the pipes.
  const exited = new Promise<number | string>((resolve) =>
    proc.on('close', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const started = new Promise<Record<string, unknown>>((resolve, reject) => {
    let seen = 0;
    proc.stderr!.on('data', (d) => {
      err += d;
      for (let end = err.indexOf('\n', seen); end >= 0; end = err.indexOf('\n', seen)) {
        const [entry] = logLines(err.slice(seen, end));
        seen = end + 1;
        if (entry?.msg === 'meshaudit started') resolve(entry);
      }
    });
    exited.then((code) => reject(new Error(`sidecar exited (${code}) before it started:\n${err}`)));
  });
  const portOf = (key: string) => (entry: Record<string, unknown>) => {
    const m = typeof entry[key] === 'string' ? /:(\d+)$/.exec(entry[key] as string) : null;
    if (m === null) throw new Error(`the start line names no ${key} port: ${JSON.stringify(entry)}`);
    return Number(m[1]);
  };
  const ready = started.then(portOf('grpc'));
  const adminPort = started.then(portOf('admin'));
  const probePort = started.then(portOf('probe'));
  for (const p of [ready, adminPort, probePort]) p.catch(() => {});
  return { proc, ready, adminPort, probePort, exited, stderr: () => err, stdout: () => out };
}

/** The lines of a JSON log (torn or foreign lines left out). */
export function logLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // A line torn by a SIGKILL.
    }
  }
  return out;
}

/** The gRPC port a "meshaudit started" log line names; undefined for any other line. */
export function startedPort(line: string): number | undefined {
  const [entry] = logLines(line);
  if (entry?.msg !== 'meshaudit started' || typeof entry.grpc !== 'string') return undefined;
  const m = /:(\d+)$/.exec(entry.grpc);
  return m ? Number(m[1]) : undefined;
}

/**
 * A file backend of writeSidecarConfig: records in `<dir>/<folder>/audit.log`. `rotation` absent
 * leaves the key out (the sidecar's defaults); `false` turns rotation off; otherwise rotation is on at
 * `maxSizeMb` (fractions allowed: 0.02 rotates every ~20 KB) and, unless given, keeps every rotated
 * file (`maxRetainedFiles: 0`, `maxAgeDays: 0`), so that an exactly-once check can read them all.
 */
export interface FileBackendOptions {
  folder: string;
  /** `compress` and `interval` (rotation.compress, rotation.interval): absent, the keys are left out. */
  rotation?:
    | false
    | { maxSizeMb: number; maxRetainedFiles?: number; maxAgeDays?: number; compress?: boolean; interval?: string };
}

export interface SidecarConfigOptions {
  zone?: string;
  /** gRPC host:port; a free port by default (the sidecar logs the one it bound). */
  address?: string;
  /** meshaudit.fsync and meshaudit.drainTimeoutSeconds; absent, the keys are left out (the defaults). */
  fsync?: boolean;
  drainTimeoutSeconds?: number;
  /** The file backends; by default one, `<dir>/audit/audit.log`, with the sidecar's default rotation. */
  backends?: readonly FileBackendOptions[];
  /** meshaudit.limits keys; absent ones are left out (the defaults). */
  limits?: Readonly<Record<string, number>>;
  /** meshaudit.admin.address: a free port on loopback by default (the sidecar logs the one it bound); "" off. */
  admin?: string;
  /** meshaudit.admin.probeAddress; absent, the key is left out (off). */
  probe?: string;
  /** meshaudit.integrity.enabled; absent, the key is left out (on, the default). */
  integrity?: boolean;
  /** meshaudit.forwarders, each entry as the config file takes it (written as a YAML flow mapping); absent, none. */
  forwarders?: ReadonlyArray<Readonly<Record<string, unknown>>>;
  /** meshaudit.store: PostgreSQL at this database and schema (createSchema on); absent, the file store. */
  postgres?: { host: string; port: number; database: string; user: string; schema: string };
  /** meshaudit.grpc.unixSocket at this path, its callers the admin; absent, none. */
  unixSocket?: string;
  /** meshaudit.grpc.tls: the server's certificate and key; absent, plaintext. */
  tls?: { certFile: string; keyFile: string };
}

function backendYaml(dir: string, b: FileBackendOptions): string {
  let text = `      - type: file\n        file:\n          path: ${dir}/${b.folder}/audit.log\n`;
  if (b.rotation === false) text += '          rotation:\n            enabled: false\n';
  else if (b.rotation !== undefined) {
    text +=
      '          rotation:\n            enabled: true\n' +
      `            maxRetainedFiles: ${b.rotation.maxRetainedFiles ?? 0}\n` +
      `            maxSizeMb: ${b.rotation.maxSizeMb}\n` +
      `            maxAgeDays: ${b.rotation.maxAgeDays ?? 0}\n`;
    if (b.rotation.compress !== undefined) text += `            compress: ${b.rotation.compress}\n`;
    if (b.rotation.interval !== undefined) text += `            interval: ${b.rotation.interval}\n`;
  }
  return text;
}

/**
 * Writes `<dir>/meshaudit.yaml` for a spawned sidecar: state in `<dir>/data`, gRPC on `address`, the
 * file backends of `opts.backends`; nothing else, so the sidecar runs its production defaults for the
 * rest (the benchmark and the crash test write theirs with it too). Returns its path.
 */
export function writeSidecarConfig(dir: string, opts: SidecarConfigOptions = {}): string {
  const file = path.join(dir, 'meshaudit.yaml');
  const meshaudit = [
    `  zone: ${opts.zone ?? 'default'}`,
    `  dataDir: ${dir}/data`,
    ...(opts.fsync === undefined ? [] : [`  fsync: ${opts.fsync}`]),
    ...(opts.drainTimeoutSeconds === undefined ? [] : [`  drainTimeoutSeconds: ${opts.drainTimeoutSeconds}`]),
    `  grpc:\n    address: ${opts.address ?? '127.0.0.1:0'}`,
    ...(opts.tls === undefined
      ? []
      : [`    tls:\n      certFile: ${opts.tls.certFile}\n      keyFile: ${opts.tls.keyFile}`]),
    ...(opts.unixSocket === undefined
      ? []
      : [`    unixSocket:\n      path: ${opts.unixSocket}\n      user: bench-admin\n      groups: ["${ADMIN_GROUP}"]`]),
    `  admin:\n    address: "${opts.admin ?? '127.0.0.1:0'}"`,
    ...(opts.probe === undefined ? [] : [`    probeAddress: "${opts.probe}"`]),
    ...(opts.limits === undefined
      ? []
      : ['  limits:', ...Object.entries(opts.limits).map(([key, value]) => `    ${key}: ${value}`)]),
    ...(opts.integrity === undefined ? [] : [`  integrity:\n    enabled: ${opts.integrity}`]),
    // JSON is YAML's flow style.
    ...(opts.forwarders === undefined ? [] : [`  forwarders: ${JSON.stringify(opts.forwarders)}`]),
    ...(opts.postgres === undefined
      ? []
      : [
          '  store:\n    type: postgres\n    createSchema: true\n    postgres:',
          ...Object.entries(opts.postgres).map(([key, value]) => `      ${key}: ${JSON.stringify(value)}`),
        ]),
  ];
  const backends = (opts.backends ?? [{ folder: 'audit' }]).map((b) => backendYaml(dir, b)).join('');
  fs.writeFileSync(
    file,
    `meshaudit:\n${meshaudit.join('\n')}\nkmesh:\n  access:\n    audit:\n      backends:\n${backends}`,
  );
  return file;
}

/** A port that was free a moment ago, so that a restarted sidecar listens where its client reconnects. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}
