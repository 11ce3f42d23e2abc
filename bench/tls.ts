// The benchmark's TLS (scenario s1t): a self-signed certificate for 127.0.0.1, made by the run with
// Debian's openssl in the scenario's folder; the load generator trusts it as its root. No key is committed.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

export interface ServerCertificate {
  readonly certFile: string;
  readonly keyFile: string;
}

/** Where a scenario's certificate and key are, in its folder. */
export function certificateIn(dir: string): ServerCertificate {
  return { certFile: path.join(dir, 'server.pem'), keyFile: path.join(dir, 'server.key') };
}

/** Writes certificateIn(dir): P-256, for IP 127.0.0.1, valid for a day. */
export function selfSignedCertificate(dir: string): ServerCertificate {
  const { certFile, keyFile } = certificateIn(dir);
  const r = spawnSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
      ...['-keyout', keyFile, '-out', certFile, '-subj', '/CN=meshaudit-bench'],
      ...['-addext', 'subjectAltName=IP:127.0.0.1'],
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`bench: openssl could not make the TLS scenario's certificate:\n${r.stderr}`);
  return { certFile, keyFile };
}
