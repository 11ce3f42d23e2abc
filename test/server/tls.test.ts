// TLS and mutual TLS against a real sidecar with real grpc-js clients, certificates made by openssl
// for the run: client certificates mapped to identities, refused when untrusted or expired, the
// server's certificate rotated in place without a restart, a bad pair refused with the good one kept.
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { newToken, tokenHash } from '../../src/auth/tokens';
import type { Sidecar } from '../../src/cli/sidecar';
import type { TlsConfig } from '../../src/config';
import { formatTokens } from '../../src/config/tokens-file';
import { jsonLogger } from '../../src/log';
import { type Issued, hasOpenssl, TestCa } from '../support/certs';
import {
  clients,
  grpcurlOrSkip,
  openStream,
  readRecords,
  resourceEvent,
  startTestSidecar,
  tempDir,
  testConfig,
  unary,
  waitFor,
  refusal,
} from '../support/helpers';

/** Clients over TLS to 127.0.0.1:port, trusting `ca`, presenting `client` when given. */
function tlsClients(port: number, ca: string, client?: Issued): ReturnType<typeof clients> {
  const read = (file: string | undefined): Buffer | null => (file === undefined ? null : fs.readFileSync(file));
  return clients(port, grpc.credentials.createSsl(fs.readFileSync(ca), read(client?.key), read(client?.cert)));
}

/** The serial number of the certificate the server presents to a new connection. */
function servedSerial(port: number, ca: string, client: Issued): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      {
        host: '127.0.0.1',
        port,
        ca: fs.readFileSync(ca),
        key: fs.readFileSync(client.key),
        cert: fs.readFileSync(client.cert),
        ALPNProtocols: ['h2'],
        servername: 'localhost',
      },
      () => {
        resolve(socket.getPeerCertificate().serialNumber);
        socket.destroy();
      },
    );
    socket.on('error', reject);
  });
}

describe('TLS and mutual TLS', function () {
  this.timeout(30_000);
  let dir: string;
  let ca: TestCa;
  let server: Issued;
  let cp: Issued;
  let alice: Issued;
  let stranger: Issued;
  let sidecar: Sidecar;
  let tlsConfig: TlsConfig;
  const logs: string[] = [];

  before(async function () {
    if (!hasOpenssl()) {
      console.log('    (skipped: openssl is not installed; the TLS tests make their certificates with it)');
      this.skip();
    }
    dir = tempDir();
    ca = new TestCa(path.join(dir, 'pki'));
    server = ca.issue('server', { cn: 'meshaudit', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    cp = ca.issue('cp', { cn: 'zone-1 control plane', sans: ['URI:spiffe://zone-1/cp'] });
    alice = ca.issue('alice', { cn: 'alice' });
    stranger = ca.issue('stranger', { cn: 'stranger' });
    tlsConfig = { certFile: server.cert, keyFile: server.key, clientCaFile: ca.cert, clientAuth: 'require' };
    const defaults = testConfig(dir);
    sidecar = await startTestSidecar(
      testConfig(dir, {
        tls: tlsConfig,
        auth: {
          ...defaults.auth,
          localhostIsAdmin: false,
          certificateIdentities: [
            {
              match: { uri: 'spiffe://zone-1/cp' },
              user: 'zone-1-cp',
              groups: ['mesh-system:control-plane'],
              zones: ['zone-1'],
            },
            { match: { commonName: 'alice' }, user: 'alice', groups: ['mesh-system:admin'] },
          ],
        },
      }),
      undefined,
      { log: jsonLogger((line) => logs.push(line)) },
    );
  });
  after(async () => {
    await sidecar?.stop();
  });

  it('maps each client certificate to its identity, permissions and zones, and records changes with it', async () => {
    const c = tlsClients(sidecar.port, ca.cert, cp);
    const a = tlsClients(sidecar.port, ca.cert, alice);
    try {
      expect(await unary(c.audit, 'Record', { event: resourceEvent(1) })).to.deep.equal({ audited: true });
      expect((await refusal(unary(c.rules, 'ListAccessAudits', {}))).code).to.equal(grpc.status.PERMISSION_DENIED);
      const s = openStream(c.audit);
      s.call.write({ identifier: { zone: 'zone-2', instance: 'cp-0' } });
      expect((await s.status)?.details).to.equal(
        'zone-1-cp may not stream for zone-2/cp-0: its credential covers only zones zone-1',
      );
      await unary(a.rules, 'CreateAccessAudit', { accessAudit: { name: 'by-alice', rules: [{ accessAll: true }] } });
      expect(readRecords(path.join(dir, 'audit', 'audit.log')).at(-1)).to.include(
        '"user":{"name":"alice","groups":["mesh-system:admin"]}',
      );
    } finally {
      c.close();
      a.close();
    }
  });

  it('refuses a certificate that maps to no identity, one from another CA, an expired one, and none at all', async () => {
    const unmapped = tlsClients(sidecar.port, ca.cert, stranger);
    try {
      const e = await refusal(unary(unmapped.audit, 'Record', { event: resourceEvent(2) }));
      expect([e.code, e.details]).to.deep.equal([
        grpc.status.UNAUTHENTICATED,
        'the client certificate (CN stranger) maps to no identity in meshaudit.auth.certificateIdentities',
      ]);
    } finally {
      unmapped.close();
    }
    const other = new TestCa(path.join(dir, 'other-pki'), 'other');
    const expired = ca.issue('expired', {
      cn: 'alice',
      startdate: '20200101000000Z',
      enddate: '20200102000000Z',
    });
    for (const [what, client] of [
      ['another CA', other.issue('alice-elsewhere', { cn: 'alice' })],
      ['an expired certificate', expired],
      ['no certificate', undefined],
    ] as const) {
      const c = tlsClients(sidecar.port, ca.cert, client);
      try {
        const deadline = new Date(Date.now() + 3000);
        const e = await refusal(
          new Promise((resolve, reject) =>
            c.rules.ListAccessAudits({}, { deadline }, (err: Error | null, r: unknown) =>
              err ? reject(err) : resolve(r),
            ),
          ),
        );
        expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED], what).to.include(e.code);
      } finally {
        c.close();
      }
    }
    // A refused handshake never becomes a call: the log is where an operator learns of it.
    await waitFor(() => logs.some((l) => l.includes('TLS handshake refused')), 'the refusal in the log');
  });

  it('serves a certificate rotated in place without a restart, and keeps it when a bad pair replaces it', async () => {
    const before = await servedSerial(sidecar.port, ca.cert, alice);
    const next = ca.issue('server-next', { cn: 'meshaudit', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    // As cert-manager does: the files at the same paths get the new pair.
    fs.copyFileSync(next.key, tlsConfig.keyFile);
    fs.copyFileSync(next.cert, tlsConfig.certFile);
    await waitFor(() => logs.some((l) => l.includes('TLS files read again')), 'the new pair read', 10_000);
    const rotated = await servedSerial(sidecar.port, ca.cert, alice);
    expect(rotated).to.not.equal(before);
    // A key that is not the certificate's: refused, and the pair in force stays.
    fs.copyFileSync(alice.key, tlsConfig.keyFile);
    await waitFor(() => logs.some((l) => l.includes('TLS files refused')), 'the bad pair refused', 10_000);
    expect(logs.find((l) => l.includes('TLS files refused'))).to.include(
      `is not the private key of ${tlsConfig.certFile}`,
    );
    expect(await servedSerial(sidecar.port, ca.cert, alice)).to.equal(rotated);
    // SIGHUP reads them again at once (main.ts calls reloadTls), with the same judgement.
    const seen = logs.length;
    sidecar.reloadTls();
    expect(logs.slice(seen).some((l) => l.includes('TLS files refused') && l.includes('"why":"SIGHUP"'))).to.equal(
      true,
    );
    const c = tlsClients(sidecar.port, ca.cert, alice);
    try {
      expect(await unary(c.rules, 'ListAccessAudits', {})).to.have.property('accessAudits');
    } finally {
      c.close();
    }
  });

  it('refuses at start-up a private key that group or others can read, naming the file', async () => {
    const exposed = path.join(dir, 'exposed.key');
    fs.copyFileSync(alice.key, exposed);
    fs.chmodSync(exposed, 0o644);
    const err = await startTestSidecar(
      testConfig(tempDir(), { tls: { ...tlsConfig, certFile: alice.cert, keyFile: exposed } }),
    ).then(
      () => undefined,
      (e: Error & { exitCode?: number }) => e,
    );
    expect(err?.message).to.equal(
      `can't read ${exposed} (meshaudit.grpc.tls.keyFile): readable by its group (mode 0644): chmod 600 ${exposed}`,
    );
    expect(err?.exitCode).to.equal(2);
    // A FIFO where the certificate should be (no writer) is refused at once, not waited on.
    const fifo = path.join(dir, 'cert.fifo');
    execFileSync('mkfifo', [fifo]);
    const hung = await startTestSidecar(testConfig(tempDir(), { tls: { ...tlsConfig, certFile: fifo } })).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(hung?.message).to.equal(
      `can't read ${fifo} (meshaudit.grpc.tls.certFile): not a regular file (a FIFO, a device or a directory)`,
    );
  });

  it('answers the real grpcurl: a client certificate (-cacert -cert -key), or a token over TLS (-H authorization)', async function () {
    const grpcurl = grpcurlOrSkip(this);
    const tokensFile = path.join(dir, 'tokens.yaml');
    const token = newToken();
    fs.writeFileSync(
      tokensFile,
      formatTokens([{ name: 'bob', groups: ['mesh-system:admin'], sha256: tokenHash(token) }]),
      {
        mode: 0o600,
      },
    );
    const defaults = testConfig(dir);
    const fresh = ca.issue('server-grpcurl', { cn: 'meshaudit', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    // clientAuth none with client CAs: a certificate is optional, and a verified one identifies its holder.
    const both = await startTestSidecar(
      testConfig(tempDir(), {
        tls: { ...tlsConfig, certFile: fresh.cert, keyFile: fresh.key, clientAuth: 'none' },
        auth: {
          ...defaults.auth,
          localhostIsAdmin: false,
          tokensFile,
          certificateIdentities: [{ match: { commonName: 'alice' }, user: 'alice', groups: ['mesh-system:admin'] }],
        },
      }),
    );
    const address = `127.0.0.1:${both.port}`;
    const run = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve) =>
        execFile(grpcurl, args, { timeout: 15_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    try {
      const list = ['-d', '{}', address, 'meshaudit.v1.RuleService/ListAccessAudits'];
      const withCert = await run('-cacert', ca.cert, '-cert', alice.cert, '-key', alice.key, ...list);
      expect(withCert.code, withCert.stderr).to.equal(0);
      expect(JSON.parse(withCert.stdout)).to.have.property('accessAudits');
      const withToken = await run('-cacert', ca.cert, '-H', `authorization: Bearer ${token}`, ...list);
      expect(withToken.code, withToken.stderr).to.equal(0);
      const without = await run('-cacert', ca.cert, ...list);
      expect(without.stderr).to.include('Code: Unauthenticated');
      // Reflection stays open: grpcurl can list the services before it has a credential.
      expect((await run('-cacert', ca.cert, address, 'list')).stdout).to.include('meshaudit.v1.RuleService');
    } finally {
      await both.stop();
    }
  });

  it('serves the files of other paths a config reload names, and refuses a reload naming a pair that cannot be used', async () => {
    const before = await servedSerial(sidecar.port, ca.cert, alice);
    const bad = { ...sidecar.config, tls: { ...sidecar.config.tls!, keyFile: alice.key } };
    const refused = await refusal(sidecar.reload(bad, undefined));
    expect(refused.message).to.include(`is not the private key of ${sidecar.config.tls!.certFile}`);
    expect(await servedSerial(sidecar.port, ca.cert, alice)).to.equal(before);
    const next = ca.issue('server-moved', { cn: 'meshaudit', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    const moved = { ...sidecar.config, tls: { ...sidecar.config.tls!, certFile: next.cert, keyFile: next.key } };
    expect((await sidecar.reload(moved, undefined)).changed).to.deep.equal([
      'meshaudit.grpc.tls.certFile',
      'meshaudit.grpc.tls.keyFile',
    ]);
    const served = await servedSerial(sidecar.port, ca.cert, alice);
    expect(served).to.not.equal(before);
    // Watched at the new paths: a rotation in place there is served too.
    const rotations = (): number => logs.filter((l) => l.includes('TLS files read again: new connections')).length;
    const seen = rotations();
    const again = ca.issue('server-moved-again', { cn: 'meshaudit', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    fs.copyFileSync(again.key, next.key);
    fs.copyFileSync(again.cert, next.cert);
    await waitFor(() => rotations() > seen, 'the pair at the new paths read again', 10_000);
    expect(await servedSerial(sidecar.port, ca.cert, alice)).to.not.equal(served);
  });
});
