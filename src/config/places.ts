// Whether a directory the configuration names could be created and written in, worded for an
// operator. Node's recursive mkdir reports a read-only file system as ENOENT, which names nothing
// useful: the nearest directory that exists says what is wrong.
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Why `dir` could not be created or written in, naming the nearest directory that exists (`/x is on a
 * read-only file system`), or undefined when it could.
 */
export function whyNotWritable(dir: string): string | undefined {
  let existing = dir;
  while (!fs.existsSync(existing)) existing = path.dirname(existing);
  if (!fs.statSync(existing).isDirectory()) return `${existing} is not a directory`;
  try {
    fs.accessSync(existing, fs.constants.W_OK | fs.constants.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EROFS') return `${existing} is on a read-only file system`;
    if (code === 'EACCES') return `no permission to write in ${existing}`;
    return `can't write in ${existing} (${code})`;
  }
  return undefined;
}
