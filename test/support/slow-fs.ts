// Preloaded into the real sidecar (`node --require`) by test/faults/slow-disk.test.ts: a slow disk at
// the file-system boundary. Every write through a fs/promises FileHandle (what rotating-file-stream
// writes the audit files with) first waits SLOW_WRITE_MS milliseconds.
// The module object itself (not an import's copy with getters), so that rfs's calls see the change.
import fsp = require('node:fs/promises');

const delayMs = Number(process.env.SLOW_WRITE_MS ?? '0');
const open = fsp.open;
(fsp as { open: typeof fsp.open }).open = async (...args: Parameters<typeof fsp.open>) => {
  const handle = await open(...args);
  const write = handle.write.bind(handle) as (...a: unknown[]) => Promise<unknown>;
  (handle as unknown as { write: typeof write }).write = async (...a: unknown[]) => {
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    return write(...a);
  };
  return handle;
};
