// One sidecar per data directory. Two processes on one dataDir (a rolling update on a shared volume, a
// second sidecar started by mistake on another port) would interleave checkpoint lines and cut each
// other's audit files on recovery, so the second one refuses to start.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MeshauditError } from '../errors';

export const LOCK_FILE = 'meshaudit.lock';
/** The holder touches its lock this often, so that a lock from another host can be judged by its age. */
const HEARTBEAT_MS = 10_000;
/** A lock from another host (another container) untouched for this long is left by a process that is gone. */
export const STALE_AFTER_MS = 3 * HEARTBEAT_MS;

/** The data directory is taken by another sidecar, or cannot be locked (exit 1 at start-up). */
export class DataDirLockError extends MeshauditError {
  readonly kind = 'unavailable';
}

interface Holder {
  pid: number;
  host: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): { holder: Holder | undefined; ageMs: number } {
  const text = fs.readFileSync(file, 'utf8');
  const ageMs = Date.now() - fs.statSync(file).mtimeMs;
  const [pid, host] = text.trim().split(/\s+/, 2);
  const n = Number.parseInt(pid, 10);
  return { holder: Number.isInteger(n) && n > 0 ? { pid: n, host: host ?? '' } : undefined, ageMs };
}

/**
 * Whether the holder of a lock still runs. On this host its pid says so (a lock holding this process's
 * own pid is what a restarted container, pid 1 again, finds: stale). From another host (a container
 * with its own pid namespace on a shared volume) the pid means nothing here: the holder's heartbeat
 * does, and a lock untouched for STALE_AFTER_MS is stale.
 */
function inUse(holder: Holder | undefined, ageMs: number, host: string): boolean {
  if (holder === undefined) return false;
  if (holder.host === host) return holder.pid !== process.pid && alive(holder.pid);
  return ageMs < STALE_AFTER_MS;
}

/**
 * Takes `<dataDir>/meshaudit.lock` (this process's pid and host name), keeps it fresh with a
 * heartbeat, and returns its release. A lock whose holder is gone (SIGKILL, a crash) is taken over.
 */
export function lockDataDir(dataDir: string, host: string = os.hostname()): () => void {
  const file = path.join(dataDir, LOCK_FILE);
  try {
    fs.mkdirSync(dataDir, { recursive: true });
  } catch (e) {
    throw new DataDirLockError(`can't create ${dataDir} (meshaudit.dataDir): ${(e as Error).message}`);
  }
  const token = `${process.pid} ${host}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, token, { flag: 'wx' });
      const heartbeat = setInterval(() => {
        const now = new Date();
        try {
          fs.utimesSync(file, now, now);
        } catch {
          // Gone or unwritable: the next start judges the lock by what is there; nothing to do here.
        }
      }, HEARTBEAT_MS);
      heartbeat.unref();
      return () => {
        clearInterval(heartbeat);
        // Only our own lock: after a takeover the file belongs to someone else.
        if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === token) fs.rmSync(file, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new DataDirLockError(`can't lock ${file}: ${(e as Error).message}`);
      }
    }
    const { holder, ageMs } = readHolder(file);
    if (inUse(holder, ageMs, host)) {
      const where = holder!.host === host ? '' : ` on host ${holder!.host}`;
      throw new DataDirLockError(
        `${dataDir} (meshaudit.dataDir) is in use by another meshaudit (pid ${holder!.pid}${where}); ` +
          `if no such sidecar runs, delete ${file}`,
      );
    }
    fs.rmSync(file, { force: true });
  }
  throw new DataDirLockError(`can't lock ${file}: another process keeps taking it`);
}
