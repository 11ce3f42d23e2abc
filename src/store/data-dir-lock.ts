// One sidecar per data directory. Two processes on one dataDir (a rolling update on a shared volume, a
// second sidecar started by mistake on another port) would interleave checkpoint lines and cut each
// other's audit files on recovery, so the second one refuses to start.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { whyNotWritable } from '../config/places';
import { MeshauditError } from '../errors';

/** The lock's name; each holder adds its generation (`meshaudit.lock.3`). */
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

/** A lock file and its generation; `meshaudit.lock` without one (earlier versions wrote it) is generation 0. */
interface LockFile {
  generation: number;
  file: string;
}

const LOCK_NAME = /^meshaudit\.lock(?:\.(\d{1,15}))?$/;
const PENDING_PREFIX = '.meshaudit.lock.pending-';

function lockFiles(dataDir: string): LockFile[] {
  const found: LockFile[] = [];
  for (const name of fs.readdirSync(dataDir)) {
    const m = LOCK_NAME.exec(name);
    if (m) found.push({ generation: m[1] === undefined ? 0 : Number(m[1]), file: path.join(dataDir, name) });
  }
  return found.sort((a, b) => b.generation - a.generation);
}

/** Why no lock was taken on this pass: the newest one is held (an error to throw), or changed under us. */
function judge(newest: LockFile | undefined, dataDir: string, host: string): DataDirLockError | 'free' | 'changed' {
  if (newest === undefined) return 'free';
  let read: ReturnType<typeof readHolder>;
  try {
    read = readHolder(newest.file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'changed'; // cleaned up by a newer holder
    throw e;
  }
  if (!inUse(read.holder, read.ageMs, host)) return 'free';
  const { pid, host: on } = read.holder!;
  return new DataDirLockError(
    `${dataDir} (meshaudit.dataDir) is in use by another meshaudit (pid ${pid}${on === host ? '' : ` on host ${on}`}); ` +
      `if no such sidecar runs, delete ${newest.file}`,
  );
}

/**
 * Takes the data directory for this process (pid and host name in `<dataDir>/meshaudit.lock.<n>`),
 * keeps the lock fresh with a heartbeat, and returns its release. A lock whose holder is gone (SIGKILL,
 * a crash) is taken over.
 *
 * The holder is whoever holds the newest generation. A takeover never removes anything: it creates the
 * next generation with link(2), which exactly one process can do, from a file already written whole,
 * so a lock is never seen empty. Removing a stale lock and creating a fresh one instead let two
 * processes that both judged it stale both start: one removed the other's fresh lock. A process that
 * created its generation and then sees a newer one lost to a process that judged the same lock stale
 * first; it withdraws. Generations older than the holder's are left by processes that are gone, and the
 * holder removes them.
 */
export function lockDataDir(dataDir: string, host: string = os.hostname()): () => void {
  try {
    fs.mkdirSync(dataDir, { recursive: true });
  } catch (e) {
    const why = whyNotWritable(dataDir) ?? (e as Error).message;
    throw new DataDirLockError(`can't create ${dataDir} (meshaudit.dataDir): ${why}`);
  }
  const token = `${process.pid} ${host}\n`;
  const pending = path.join(dataDir, `${PENDING_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    fs.writeFileSync(pending, token, { flag: 'wx' });
    for (let attempt = 0; attempt < 10; attempt++) {
      const newest = lockFiles(dataDir)[0];
      const verdict = judge(newest, dataDir, host);
      if (verdict instanceof DataDirLockError) throw verdict;
      if (verdict === 'changed') continue;
      const mine: LockFile = {
        generation: (newest?.generation ?? 0) + 1,
        file: path.join(dataDir, `${LOCK_FILE}.${(newest?.generation ?? 0) + 1}`),
      };
      try {
        fs.linkSync(pending, mine.file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // another process took this generation
        throw e;
      }
      const [first, ...older] = lockFiles(dataDir);
      if (first.generation !== mine.generation) {
        fs.rmSync(mine.file, { force: true });
        continue;
      }
      removeLeftovers(dataDir, older, pending);
      return holdLock(mine.file, token);
    }
  } catch (e) {
    if (e instanceof DataDirLockError) throw e;
    throw new DataDirLockError(`can't lock ${dataDir} (meshaudit.dataDir): ${(e as Error).message}`);
  } finally {
    fs.rmSync(pending, { force: true });
  }
  throw new DataDirLockError(`can't lock ${dataDir} (meshaudit.dataDir): other processes keep taking it`);
}

/** Older generations, and pending files of processes that died while taking the lock (untouched for long). */
function removeLeftovers(dataDir: string, older: readonly LockFile[], pending: string): void {
  for (const { file } of older) fs.rmSync(file, { force: true });
  for (const name of fs.readdirSync(dataDir)) {
    const file = path.join(dataDir, name);
    if (!name.startsWith(PENDING_PREFIX) || file === pending) continue;
    try {
      if (Date.now() - fs.statSync(file).mtimeMs > STALE_AFTER_MS) fs.rmSync(file, { force: true });
    } catch {
      // Gone already: its process finished taking (or failing to take) the lock.
    }
  }
}

function holdLock(file: string, token: string): () => void {
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
    // Only our own file (our pid and host in it): after the directory was removed, another sidecar
    // may hold the same name now, even the same inode number.
    try {
      if (fs.readFileSync(file, 'utf8') === token) fs.rmSync(file, { force: true });
    } catch {
      // Gone already (the directory was removed): nothing of ours to release.
    }
  };
}

/** The data directory's lock, held from start to stop, and taken again if the directory is removed. */
export class DataDirLock {
  private releaseHeld: () => void;

  constructor(
    readonly dataDir: string,
    private readonly host: string = os.hostname(),
  ) {
    this.releaseHeld = lockDataDir(dataDir, host);
  }

  /**
   * Takes the lock again, after the data directory was removed or emptied behind the sidecar's back.
   * Throws DataDirLockError when another sidecar holds it now.
   */
  retake(): void {
    this.releaseHeld();
    this.releaseHeld = lockDataDir(this.dataDir, this.host);
  }

  release(): void {
    this.releaseHeld();
  }
}
