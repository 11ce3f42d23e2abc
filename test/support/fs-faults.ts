// Preloaded into the real sidecar (`node --require`) by fault tests: faults at the file-system
// boundary, for what a real file system cannot be made to do here (a slow disk) or where a test may
// not mount one (no root: a full or read-only disk). Set by the environment:
// - SLOW_WRITE_MS: every write through a fs/promises FileHandle (how rotating-file-stream writes the
//   audit files) first waits this long.
// - FAULT_FILE, FAULT_DIR, FAULT_CODE: while FAULT_FILE exists, every write to a file under FAULT_DIR
//   (through a FileHandle, fs.write or fs.writeSync) fails with FAULT_CODE (ENOSPC by default), as
//   a full disk fails it. With EROFS, as a read-only disk does, so does everything else that would
//   change the folder: opening to write or create, truncating, renaming, unlinking, making a folder,
//   setting times.
// The module objects themselves are patched (not an import's copy), so that every caller sees it.
import fs = require('node:fs');
import fsp = require('node:fs/promises');

const delayMs = Number(process.env.SLOW_WRITE_MS ?? '0');
const faultFile = process.env.FAULT_FILE;
const faultDir = process.env.FAULT_DIR;
const faultCode = process.env.FAULT_CODE ?? 'ENOSPC';

/** The path each descriptor was opened on, for the descriptors that matter (under FAULT_DIR). */
const pathOfFd = new Map<number, string>();

/** `/proc/self/fd/<n>` (how a file is opened again through a descriptor) as the file it names. */
function resolved(file: string | undefined): string | undefined {
  if (file === undefined || !file.startsWith('/proc/self/fd/')) return file;
  try {
    return fs.readlinkSync(file);
  } catch {
    return file;
  }
}

function failing(file: string | undefined): NodeJS.ErrnoException | undefined {
  if (faultFile === undefined || faultDir === undefined || file === undefined) return undefined;
  if (!file.startsWith(faultDir) || !fs.existsSync(faultFile)) return undefined;
  return Object.assign(new Error(`${faultCode}: injected by the test, write '${file}'`), { code: faultCode });
}

const open = fsp.open;
(fsp as { open: typeof fsp.open }).open = async (...args: Parameters<typeof fsp.open>) => {
  const handle = await open(...args);
  const file = String(args[0]);
  const write = handle.write.bind(handle) as (...a: unknown[]) => Promise<unknown>;
  (handle as unknown as { write: typeof write }).write = async (...a: unknown[]) => {
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const err = failing(file);
    if (err) throw err;
    return write(...a);
  };
  return handle;
};

if (faultFile !== undefined) {
  const openSync = fs.openSync;
  (fs as { openSync: typeof fs.openSync }).openSync = (...args: Parameters<typeof fs.openSync>) => {
    const fd = openSync(...args);
    const file = resolved(String(args[0]));
    if (file?.startsWith(faultDir ?? '\0')) pathOfFd.set(fd, file);
    return fd;
  };
  const write = fs.write as (...a: unknown[]) => void;
  (fs as unknown as { write: typeof write }).write = (...a: unknown[]) => {
    const err = failing(pathOfFd.get(a[0] as number));
    const callback = a[a.length - 1] as (e: Error) => void;
    if (err) process.nextTick(() => callback(err));
    else write(...a);
  };
  const writeSync = fs.writeSync as (...a: unknown[]) => number;
  (fs as unknown as { writeSync: typeof writeSync }).writeSync = (...a: unknown[]) => {
    const err = failing(pathOfFd.get(a[0] as number));
    if (err) throw err;
    return writeSync(...a);
  };
}

/** A read-only file system refuses every change, not only writes. */
if (faultFile !== undefined && faultCode === 'EROFS') {
  const pathOf = (p: unknown): string | undefined =>
    resolved(typeof p === 'string' ? p : p instanceof URL ? p.pathname : undefined);
  const writes = (flags: unknown): boolean =>
    flags !== undefined &&
    flags !== 'r' &&
    flags !== fs.constants.O_RDONLY &&
    !(typeof flags === 'number' && (flags & 3) === 0);
  /** Wraps `name` of `mod` to fail as a read-only disk does when `refuses(args)` names a path under FAULT_DIR. */
  const guard = (
    mod: Record<string, unknown>,
    name: string,
    refuses: (args: unknown[]) => string | undefined,
  ): void => {
    const original = mod[name] as (...a: unknown[]) => unknown;
    mod[name] = (...args: unknown[]) => {
      const err = failing(refuses(args));
      if (err) {
        const callback = args[args.length - 1];
        if (mod === (fs as unknown) && typeof callback === 'function' && !name.endsWith('Sync')) {
          process.nextTick(() => (callback as (e: Error) => void)(err));
          return undefined;
        }
        if (mod === (fsp as unknown)) return Promise.reject(err);
        throw err;
      }
      return original.apply(mod, args);
    };
  };
  const first = (args: unknown[]): string | undefined => pathOf(args[0]);
  const both = (args: unknown[]): string | undefined => pathOf(args[0]) ?? pathOf(args[1]);
  const opening = (args: unknown[]): string | undefined => (writes(args[1]) ? pathOf(args[0]) : undefined);
  const byFd = (args: unknown[]): string | undefined => pathOfFd.get(args[0] as number);
  const sync = fs as unknown as Record<string, unknown>;
  const promised = fsp as unknown as Record<string, unknown>;
  for (const name of ['openSync', 'open']) guard(sync, name, opening);
  guard(promised, 'open', opening);
  for (const name of ['renameSync', 'rename']) guard(sync, name, both);
  guard(promised, 'rename', both);
  // A folder that exists is no change: mkdir reports EEXIST before EROFS, which recursive mkdir takes as done.
  const creating = (args: unknown[]): string | undefined => {
    const dir = pathOf(args[0]);
    return dir !== undefined && !fs.existsSync(dir) ? dir : undefined;
  };
  for (const name of ['mkdirSync', 'mkdir']) guard(sync, name, creating);
  guard(promised, 'mkdir', creating);
  for (const name of ['unlinkSync', 'unlink', 'utimesSync', 'utimes', 'rmSync', 'linkSync']) guard(sync, name, first);
  for (const name of ['unlink', 'utimes', 'rm', 'truncate']) guard(promised, name, first);
  for (const name of ['ftruncateSync', 'ftruncate']) guard(sync, name, byFd);
}
