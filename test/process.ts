// Spawning the real built sidecar, as an operator runs it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { SIDECAR_NODE_FLAGS } from '../src/cli/node-flags';

export const MAIN = path.resolve(__dirname, '../src/cli/main.js');

export interface SpawnedSidecar {
  proc: ChildProcess;
  /** Resolves with the bound port once the sidecar logs that it started. */
  ready: Promise<number>;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  stderr(): string;
  stdout(): string;
}

// A failed test must not leave a sidecar running after mocha exits.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** Starts the built sidecar with the node flags every launcher passes (`nodeFlags` replaces them). */
export function spawnSidecar(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; nodeFlags?: readonly string[] } = {},
): SpawnedSidecar {
  const proc = spawn(process.execPath, [...(opts.nodeFlags ?? SIDECAR_NODE_FLAGS), MAIN, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  let err = '';
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((resolve) =>
    proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const ready = new Promise<number>((resolve, reject) => {
    proc.stderr!.on('data', (d) => {
      err += d;
      const m = /"msg":"meshaudit started".*?"grpc":"[^"]*:(\d+)"/.exec(err);
      if (m) resolve(Number(m[1]));
    });
    exited.then((code) => reject(new Error(`sidecar exited (${code}) before it started:\n${err}`)));
  });
  ready.catch(() => {});
  return { proc, ready, exited, stderr: () => err, stdout: () => out };
}

/**
 * Writes `<dir>/meshaudit.yaml`, the smallest config a spawned sidecar needs: state in `<dir>/data`,
 * records in `<dir>/audit/audit.log`, gRPC on `address` (a free port by default). Returns its path.
 */
export function writeSidecarConfig(dir: string, opts: { zone?: string; address?: string } = {}): string {
  const file = path.join(dir, 'meshaudit.yaml');
  fs.writeFileSync(
    file,
    `meshaudit:\n  zone: ${opts.zone ?? 'default'}\n  dataDir: ${dir}/data\n  grpc:\n    address: ${opts.address ?? '127.0.0.1:0'}\n` +
      `kmesh:\n  access:\n    audit:\n      backends:\n      - type: file\n        file:\n          path: ${dir}/audit/audit.log\n`,
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
