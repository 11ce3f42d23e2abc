// Preloaded into the real sidecar (`node --require`) by fault tests: faults at the file-system
// boundary, for what a real file system cannot be made to do here (a slow disk) or where a test may
// not mount one (no root: a full or read-only disk). Set by the environment:
// - SLOW_WRITE_MS: every write through a fs/promises FileHandle (how rotating-file-stream writes the
//   audit files) first waits this long.
// - FAULT_FILE, FAULT_DIR, FAULT_CODE: while FAULT_FILE exists, every write to a file under FAULT_DIR
//   (through a FileHandle, fs.write or fs.writeSync) fails with FAULT_CODE (ENOSPC by default), as
//   a full (or, with EROFS, a read-only) disk fails it.
// The module objects themselves are patched (not an import's copy), so that every caller sees it.
import fs = require('node:fs');
import fsp = require('node:fs/promises');

const delayMs = Number(process.env.SLOW_WRITE_MS ?? '0');
const faultFile = process.env.FAULT_FILE;
const faultDir = process.env.FAULT_DIR;
const faultCode = process.env.FAULT_CODE ?? 'ENOSPC';

/** The path each descriptor was opened on, for the descriptors that matter (under FAULT_DIR). */
const pathOfFd = new Map<number, string>();

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
    if (String(args[0]).startsWith(faultDir ?? '\0')) pathOfFd.set(fd, String(args[0]));
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
