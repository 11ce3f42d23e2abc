// What --check-config checks beyond the files it parses: that start-up could use every place the
// configuration names, without creating or changing anything. Start-up creates the data directory and
// each audit folder (with their parents) and writes in them; here the nearest existing one must be a
// directory this process may write to (EACCES for others than root, EROFS for everyone). The port is
// not tried: the sidecar being checked usually holds it.
import * as path from 'node:path';
import { whyNotWritable } from '../config/places';
import type { Config } from '../config/types';

/** Each place start-up could not use, as `<config key>: <path>: <why>`. */
export function unusablePlaces(config: Config): string[] {
  const problems: string[] = [];
  const check = (key: string, dir: string): void => {
    const why = whyNotWritable(dir);
    if (why !== undefined) problems.push(`${key}: can't create or write ${dir}: ${why}`);
  };
  check('meshaudit.dataDir', config.dataDir);
  for (const [i, b] of config.backends.entries()) {
    check(`kmesh.access.audit.backends[${i}].file.path`, path.dirname(b.path));
  }
  return problems;
}
