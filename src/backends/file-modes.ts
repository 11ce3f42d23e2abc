// The modes of what the sidecar creates (meshaudit.files): audit files, the checkpoint, the store and
// the lock with fileMode, the folders it creates with dirMode, whatever the umask. A log shipper in
// the files' group can then read them, and nobody else can. The umask alone would not do: a umask of
// 0000 (common in containers) made them 0644 and 0755, readable by every user of the host.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { DEFAULT_FILE_MODES } from '../config/defaults';
import type { FileModes } from '../config/types';

export { DEFAULT_FILE_MODES, type FileModes };

/** `mkdir -p dir`, each folder it creates given `modes.dir` whatever the umask. */
export function makeDir(dir: string, modes: FileModes): void {
  const first = fs.mkdirSync(dir, { recursive: true, mode: modes.dir });
  if (first !== undefined) for (const d of createdBetween(first, dir)) fs.chmodSync(d, modes.dir);
}

/** As makeDir, off the event loop. */
export async function makeDirAsync(dir: string, modes: FileModes): Promise<void> {
  const first = await fs.promises.mkdir(dir, { recursive: true, mode: modes.dir });
  if (first !== undefined) for (const d of createdBetween(first, dir)) await fs.promises.chmod(d, modes.dir);
}

/** `first` and every folder under it down to `leaf`. */
function createdBetween(first: string, leaf: string): string[] {
  const out = [leaf];
  for (let d = leaf; d !== first && path.dirname(d) !== d; ) {
    d = path.dirname(d);
    out.unshift(d);
  }
  return out;
}
