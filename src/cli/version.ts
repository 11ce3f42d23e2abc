import * as path from 'node:path';

/** The package's version (meshaudit --version, /server_info, meshaudit_info). */
export function version(): string {
  return (require(path.resolve(__dirname, '../../../package.json')) as { version: string }).version;
}
