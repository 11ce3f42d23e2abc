// The built command as a user runs it: bin/meshaudit (node with the sidecar's flags), to its end.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const BIN = path.resolve(__dirname, '../../../bin/meshaudit');

export const PACKAGE_VERSION: string = JSON.parse(
  fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8'),
).version;

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Standard input (closed at once when absent). */
  input?: string;
  /** Sees the output as it comes. */
  onStdout?: (all: string) => void;
  onStderr?: (all: string) => void;
  env?: NodeJS.ProcessEnv;
}

/** Runs `meshaudit ...args` to its end. */
export function meshaudit(args: readonly string[], opts: CliOptions = {}): Promise<CliRun> {
  const proc = spawn(BIN, [...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => {
    stdout += d;
    opts.onStdout?.(stdout);
  });
  proc.stderr.on('data', (d) => {
    stderr += d;
    opts.onStderr?.(stderr);
  });
  proc.stdin.end(opts.input ?? '');
  return new Promise((resolve) => proc.on('close', (code) => resolve({ code, stdout, stderr })));
}
