// Real file-system faults for the real process: small tmpfs mounts in a private mount namespace
// (unshare -m, as root), which the test fills, grows and remounts from outside with nsenter. The
// machine's own mounts are never touched.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from './helpers';

let possible: boolean | undefined;

/** Whether this machine lets a test mount a tmpfs in a private mount namespace (root, unshare, nsenter). */
export function canMountTmpfs(): boolean {
  if (possible === undefined) {
    const dir = path.join(tempDir(), 'probe');
    fs.mkdirSync(dir);
    const probe = spawnSync('unshare', ['-m', 'sh', '-c', `mount -t tmpfs -o size=16k tmpfs '${dir}'`]);
    possible = probe.status === 0 && spawnSync('nsenter', ['--version']).status === 0;
  }
  return possible;
}

/** spawnSidecar's `wrap`: the sidecar in its own mount namespace, with a tmpfs of `kb` KiB on each dir. */
export function onTmpfs(mounts: ReadonlyArray<{ dir: string; kb: number }>): string[] {
  const script = mounts.map(({ dir, kb }) => `mount -t tmpfs -o size=${kb}k tmpfs '${dir}' && `).join('');
  for (const { dir } of mounts) fs.mkdirSync(dir, { recursive: true });
  return ['unshare', '-m', 'sh', '-c', `${script}exec "$@"`, 'sh'];
}

/** Runs `command` in the mount namespace of `pid`; throws with its stderr when it fails. */
export function inNamespaceOf(pid: number, command: readonly string[]): Buffer {
  const run = spawnSync('nsenter', ['-t', String(pid), '-m', ...command]);
  if (run.status !== 0) throw new Error(`${command.join(' ')}: ${run.stderr.toString()}`);
  return run.stdout;
}

/** Grows (or shrinks) the tmpfs on `dir` as the process `pid` sees it. */
export function resizeTmpfs(pid: number, dir: string, kb: number): void {
  inNamespaceOf(pid, ['mount', '-o', `remount,size=${kb}k`, dir]);
}

/** Every file of `dir` as the process `pid` sees it, by name. */
export function filesSeenBy(pid: number, dir: string): Map<string, Buffer> {
  const names = inNamespaceOf(pid, ['ls', '-1', dir]).toString().split('\n').filter(Boolean);
  return new Map(names.map((name) => [name, inNamespaceOf(pid, ['cat', path.join(dir, name)])]));
}
