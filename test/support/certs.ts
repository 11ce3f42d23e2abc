// Certificates for the TLS tests, made by the test run with Debian's openssl: a CA, and leaf
// certificates it (or another CA) signs, with the names and dates a test needs. No key is committed.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export function hasOpenssl(): boolean {
  return spawnSync('openssl', ['version']).status === 0;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.stderr}`);
}

export interface Issued {
  readonly cert: string;
  readonly key: string;
}

export interface LeafOptions {
  readonly cn: string;
  /** subjectAltName entries: `IP:127.0.0.1`, `DNS:localhost`, `URI:spiffe://zone-1/cp`. */
  readonly sans?: readonly string[];
  /** Validity as `openssl ca` takes it (YYYYMMDDHHMMSSZ): for an expired certificate. Default: now, for 2 days. */
  readonly startdate?: string;
  readonly enddate?: string;
}

/** A certificate authority in `dir` (ca.pem, ca.key) that issues leaf certificates there. */
export class TestCa {
  readonly cert: string;
  private readonly key: string;
  private readonly name: string;

  constructor(
    private readonly dir: string,
    name = 'ca',
  ) {
    fs.mkdirSync(dir, { recursive: true });
    this.cert = path.join(dir, `${name}.pem`);
    this.key = path.join(dir, `${name}.key`);
    openssl(
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
        ...['-keyout', this.key, '-out', this.cert, '-subj', `/CN=meshaudit test ${name}`, '-days', '2'],
        ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      ],
      dir,
    );
    fs.writeFileSync(path.join(dir, `${name}.index`), '');
    fs.mkdirSync(path.join(dir, `${name}.issued`), { recursive: true });
    fs.writeFileSync(
      path.join(dir, `${name}.cnf`),
      [
        '[ca]',
        'default_ca = test',
        '[test]',
        `database = ${path.join(dir, `${name}.index`)}`,
        `new_certs_dir = ${path.join(dir, `${name}.issued`)}`,
        `serial = ${path.join(dir, `${name}.serial`)}`,
        'default_md = sha256',
        'policy = any',
        'unique_subject = no',
        '[any]',
        'commonName = supplied',
      ].join('\n'),
    );
    fs.writeFileSync(path.join(dir, `${name}.serial`), '1000\n');
    this.name = name;
  }

  /** Issues `<file>.pem` and `<file>.key` (mode 0600) in the CA's folder. */
  issue(file: string, opts: LeafOptions): Issued {
    const key = path.join(this.dir, `${file}.key`);
    const cert = path.join(this.dir, `${file}.pem`);
    const csr = path.join(this.dir, `${file}.csr`);
    const ext = path.join(this.dir, `${file}.ext`);
    openssl(
      [
        ...['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
        ...['-keyout', key, '-out', csr, '-subj', `/CN=${opts.cn}`],
      ],
      this.dir,
    );
    fs.writeFileSync(
      ext,
      [
        'basicConstraints = CA:FALSE',
        'extendedKeyUsage = serverAuth, clientAuth',
        ...(opts.sans?.length ? [`subjectAltName = ${opts.sans.join(', ')}`] : []),
      ].join('\n'),
    );
    const days =
      opts.startdate === undefined ? ['-days', '2'] : ['-startdate', opts.startdate, '-enddate', opts.enddate!];
    openssl(
      [
        ...['ca', '-batch', '-notext', '-config', path.join(this.dir, `${this.name}.cnf`), '-cert', this.cert],
        ...['-keyfile', this.key, '-in', csr, '-out', cert, '-extfile', ext, ...days],
      ],
      this.dir,
    );
    fs.chmodSync(key, 0o600);
    return { cert, key };
  }
}
