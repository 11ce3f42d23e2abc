// One sidecar per data directory. Two processes on one dataDir (a rolling update on a shared volume, a
// second sidecar started by mistake on another port) would interleave checkpoint lines and cut each
// other's audit files on recovery, so the second one refuses to start.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const LOCK_FILE = 'meshaudit.lock';

export class DataDirLockError extends Error {}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `<dataDir>/meshaudit.lock` (holding this process's pid) and returns its release. A lock left by
 * a process that no longer runs (SIGKILL, a crash) is taken over; so is one holding this process's own
 * pid, which is what a restarted container (pid 1 again) finds.
 */
export function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new DataDirLockError(`can't lock ${file}: ${(e as Error).message}`);
      }
    }
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new DataDirLockError(
        `${dataDir} (meshaudit.dataDir) is in use by another meshaudit (pid ${pid}); if no such sidecar runs, delete ${file}`,
      );
    }
    fs.rmSync(file, { force: true });
  }
  throw new DataDirLockError(`can't lock ${file}: another process keeps taking it`);
}
