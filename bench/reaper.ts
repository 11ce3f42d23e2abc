// The reaper: the orchestrator's exit handler kills its children and removes its temp folder, but a
// SIGKILLed orchestrator runs no handler, and the sidecar would listen forever. So run.ts starts this
// small process first and tells it, one line per fact on stdin, what to clean up:
//   dir <path>   a folder to remove        pid <n>   a child process to kill
// When its stdin ends (the orchestrator exited, however it died), it SIGKILLs the listed children
// that are still the node processes it was told about, removes the folders, and exits.
import * as fs from 'node:fs';

const dirs = new Set<string>();
const pids = new Set<number>();

/** Only a process still running node is ours: a pid reused by something else is left alone. */
function isOurs(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === process.execPath;
  } catch {
    return false;
  }
}

function reap(): void {
  for (const pid of pids) {
    if (!isOurs(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

// Ctrl-C reaches the whole process group: the orchestrator handles it, and this process waits for it.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
let partial = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d: string) => {
  const lines = (partial + d).split('\n');
  partial = lines.pop()!;
  for (const line of lines) {
    const [what, value] = [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)];
    if (what === 'dir') dirs.add(value);
    else if (what === 'pid') pids.add(Number(value));
  }
});
process.stdin.on('end', reap);
process.stdin.on('error', reap);
