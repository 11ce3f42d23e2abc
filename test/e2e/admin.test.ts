// The admin HTTP listener of the real process, as an operator, a kubelet and Prometheus reach it:
// every endpoint, the 405s and the 404, the probe listener, /ready and gRPC health agreeing through
// a drain and a healthcheck failed by hand, reopening moved audit files, tokens and permissions, HTTPS
// on a non-loopback address with a certificate read again, and the listener off or its port in use.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { newToken, tokenHash } from '../../src/auth/tokens';
import { SIDECAR_NODE_FLAGS } from '../../src/cli/node-flags';
import { version } from '../../src/cli/version';
import { formatTokens } from '../../src/config/tokens-file';
import { hasOpenssl, TestCa } from '../support/certs';
import { adminRequest, clients, healthClient, openStream, resourceEvent, tempDir, waitFor } from '../support/helpers';
import { freePort, logLines, type SpawnedSidecar, spawnSidecar, writeSidecarConfig } from '../support/process';

const RULES = 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n';
const IDENTIFIER = { zone: 'zone-1', instance: 'cp-0' };

function rulesFile(dir: string): string {
  const file = path.join(dir, 'rules.yaml');
  fs.writeFileSync(file, RULES);
  return file;
}

async function stop(sidecar: SpawnedSidecar): Promise<void> {
  sidecar.proc.kill('SIGTERM');
  expect(await sidecar.exited, sidecar.stderr()).to.equal(0);
}

/** A control plane's stream: send(first, last) sends those events in one batch and waits for their ack. */
async function controlPlane(port: number): Promise<{ send(first: number, last: number): Promise<void>; end(): void }> {
  const c = clients(port);
  const s = openStream(c.audit);
  s.call.write({ identifier: IDENTIFIER });
  await s.next();
  return {
    async send(first, last) {
      const events = Array.from({ length: last - first + 1 }, (_, i) => resourceEvent(first + i));
      s.call.write({ firstSeq: first, events });
      expect(await s.next()).to.include({ ackedSeq: last });
    },
    end() {
      s.call.end();
      c.close();
    },
  };
}

/** The sequences of the events recorded in `file`, in order. */
function routesIn(file: string): number[] {
  return [...fs.readFileSync(file, 'utf8').matchAll(/"name":"route-(\d+)"/g)].map((m) => Number(m[1]));
}

function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/** What gRPC health says for "" now. */
function health(port: number): Promise<string> {
  const client = healthClient(port);
  return new Promise<string>((resolve, reject) =>
    client.Check({ service: '' }, (e: Error | null, r: { status: string }) => {
      client.close();
      return e ? reject(e) : resolve(r.status);
    }),
  );
}

/** The TCP ports `pid` listens on, from /proc (its socket descriptors, in the listening sockets). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
    if (m) inodes.add(m[1]);
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const line of fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEX_IP:HEX_PORT; st 0A is LISTEN; the inode is the tenth field.
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) ports.push(Number.parseInt(f[1].split(':')[1], 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

describe('the admin HTTP listener (the real process)', function () {
  this.timeout(60_000);

  describe('on loopback with the default authentication (the localhost rule), and a probe listener', () => {
    let dir: string;
    let sidecar: SpawnedSidecar;
    let admin: number;
    let grpcPort: number;
    const get = (urlPath: string, method = 'GET') => adminRequest(admin, method, urlPath);

    before(async () => {
      dir = tempDir();
      const config = writeSidecarConfig(dir, { zone: 'zone-1', probe: '127.0.0.1:0' });
      sidecar = spawnSidecar(['--config', config, '--rules', rulesFile(dir)], { cwd: dir });
      [grpcPort, admin] = await Promise.all([sidecar.ready, sidecar.adminPort]);
    });
    after(() => stop(sidecar));

    it('logs the bound admin and probe addresses in its start line', () => {
      const started = logLines(sidecar.stderr()).find((l) => l.msg === 'meshaudit started');
      expect(started).to.include({ admin: `127.0.0.1:${admin}` });
      expect(started?.probe).to.match(/^127\.0\.0\.1:\d+$/);
    });

    it('answers GET /ready 200 LIVE', async () => {
      const r = await get('/ready');
      expect([r.status, r.body, r.headers['content-type']]).to.deep.equal([200, 'LIVE\n', 'text/plain; charset=utf-8']);
    });

    it('answers GET /server_info with the version, zone, state, uptime and each acknowledged sequence', async () => {
      const cp = await controlPlane(grpcPort);
      try {
        await cp.send(1, 5);
      } finally {
        cp.end();
      }
      const r = await get('/server_info');
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.equal('application/json');
      const info = JSON.parse(r.body);
      expect(info).to.deep.include({
        version: version(),
        zone: 'zone-1',
        state: 'LIVE',
        identifiers: { 'zone-1/cp-0': { ackedSeq: 5, acceptedSeq: 5 } },
      });
      expect(info.uptimeSeconds).to.be.a('number').and.at.least(0);
    });

    it('answers GET /config_dump with the effective config and the AccessAudits in force', async () => {
      const r = await get('/config_dump');
      expect(r.status).to.equal(200);
      const dump = JSON.parse(r.body);
      expect(dump.config).to.deep.include({ zone: 'zone-1', dataDir: path.join(dir, 'data') });
      expect(dump.config.admin).to.deep.equal({ address: '127.0.0.1:0', probeAddress: '127.0.0.1:0' });
      expect(dump.config.files).to.deep.equal({ file: '0640', dir: '0750' });
      expect(dump.config.backends.map((b: { path: string }) => b.path)).to.deep.equal([
        path.join(dir, 'audit', 'audit.log'),
      ]);
      expect(dump.accessAudits.map((a: { name: string }) => a.name)).to.deep.equal(['all']);
      expect(dump.accessAudits[0].rules).to.deep.equal([{ types: [], mesh: '', access: [], accessAll: true }]);
    });

    it('answers GET /stats with one "name{labels}: value" line per sample, sorted', async () => {
      const r = await get('/stats');
      expect(r.status).to.equal(200);
      const lines = r.body.trimEnd().split('\n');
      expect(lines).to.include('meshaudit_ready: 1');
      expect(lines).to.include(`meshaudit_info{version="${version()}",zone="zone-1"}: 1`);
      expect(lines.filter((l) => l.startsWith('meshaudit_ack_latency_seconds_bucket{le="+Inf"}: '))).to.have.length(1);
      expect(
        lines.filter((l) => !/^[a-z_:][a-z0-9_:]*(\{[^}]*\})?: \S+$/.test(l)),
        'lines not name{labels}: value',
      ).to.deep.equal([]);
      expect(lines).to.deep.equal([...lines].sort());
    });

    it('answers GET /stats/prometheus in the Prometheus text format, with its content type', async () => {
      const r = await get('/stats/prometheus');
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.equal('text/plain; version=0.0.4; charset=utf-8');
      expect(r.body).to.include('# TYPE meshaudit_events_received_total counter\n');
      expect(r.body).to.include('\nmeshaudit_ready 1\n');
    });

    it('answers a state change by GET, and a read by POST, 405 with the method in Allow', async () => {
      for (const p of ['/healthcheck/fail', '/healthcheck/ok', '/reopen_logs']) {
        const r = await get(p, 'GET');
        expect([r.status, r.headers.allow, r.body], p).to.deep.equal([405, 'POST', `${p} answers POST only\n`]);
      }
      for (const p of ['/ready', '/server_info', '/config_dump', '/stats', '/stats/prometheus', '/help']) {
        const r = await get(p, 'POST');
        expect([r.status, r.headers.allow], p).to.deep.equal([405, 'GET']);
      }
      // Nothing changed: the GET on /healthcheck/fail did not fail the health check.
      expect((await get('/ready')).body).to.equal('LIVE\n');
    });

    it('answers an unknown path 404 with the list of endpoints, as GET /help lists them', async () => {
      const help = await get('/help');
      expect(help.status).to.equal(200);
      const endpoints = [...help.body.matchAll(/^ {2}(GET|POST) (\S+):/gm)].map((m) => `${m[1]} ${m[2]}`);
      expect(endpoints).to.deep.equal([
        'GET /ready',
        'GET /server_info',
        'GET /config_dump',
        'GET /stats',
        'GET /stats/prometheus',
        'POST /healthcheck/fail',
        'POST /healthcheck/ok',
        'POST /reopen_logs',
        'GET /help',
      ]);
      const r = await get('/clusters');
      expect([r.status, r.body]).to.deep.equal([404, `no such path: /clusters\n${help.body}`]);
    });

    it('fails /ready and gRPC health by hand and passes them again: they always agree, and so does meshaudit_ready', async () => {
      expect([await health(grpcPort), (await get('/ready')).status]).to.deep.equal(['SERVING', 200]);
      expect((await get('/healthcheck/fail', 'POST')).status).to.equal(200);
      const failed = await get('/ready');
      expect([failed.status, failed.body]).to.deep.equal([503, 'healthcheck failed\n']);
      expect(await health(grpcPort)).to.equal('NOT_SERVING');
      expect((await get('/stats/prometheus')).body).to.include('\nmeshaudit_ready 0\n');
      expect(JSON.parse((await get('/server_info')).body)).to.include({
        state: 'HEALTHCHECK_FAILED',
        reason: 'healthcheck failed',
      });
      // Calls are still taken while the health check is failed by hand.
      const cp = await controlPlane(grpcPort);
      try {
        await cp.send(6, 6);
      } finally {
        cp.end();
      }
      await waitFor(
        () => logLines(sidecar.stderr()).some((l) => String(l.msg).startsWith('health check failed by hand')),
        'the log line of the failed health check',
      );
      expect((await get('/healthcheck/ok', 'POST')).status).to.equal(200);
      expect([await health(grpcPort), (await get('/ready')).body]).to.deep.equal(['SERVING', 'LIVE\n']);
      expect((await get('/stats/prometheus')).body).to.include('\nmeshaudit_ready 1\n');
    });

    it('serves only GET /ready and GET /stats/prometheus on the probe listener, to anyone', async () => {
      const probe = await sidecar.probePort;
      expect((await adminRequest(probe, 'GET', '/ready')).body).to.equal('LIVE\n');
      const metrics = await adminRequest(probe, 'GET', '/stats/prometheus');
      expect([metrics.status, metrics.body.includes('# TYPE meshaudit_ready gauge')]).to.deep.equal([200, true]);
      for (const [method, p] of [
        ['GET', '/server_info'],
        ['GET', '/config_dump'],
        ['GET', '/stats'],
        ['GET', '/help'],
        ['POST', '/healthcheck/fail'],
        ['POST', '/reopen_logs'],
        ['POST', '/ready'],
      ]) {
        const r = await adminRequest(probe, method, p);
        expect(r.status, `${method} ${p}`).to.equal(404);
        const listed = [...r.body.matchAll(/^ {2}(GET|POST) (\S+):/gm)].map((m) => `${m[1]} ${m[2]}`);
        expect(listed).to.deep.equal(['GET /ready', 'GET /stats/prometheus']);
      }
      expect((await get('/ready')).body, 'the POST to the probe changed nothing').to.equal('LIVE\n');
    });
  });

  describe('reopening the audit files', () => {
    it('writes to a new audit.log after `mv audit.log audit.log.1` and POST /reopen_logs, each event once, across a restart', async () => {
      const dir = tempDir();
      const config = writeSidecarConfig(dir, { zone: 'zone-1' });
      const active = path.join(dir, 'audit', 'audit.log');
      const moved = `${active}.1`;
      let sidecar = spawnSidecar(['--config', config, '--rules', rulesFile(dir)], { cwd: dir });
      let cp = await controlPlane(await sidecar.ready);
      await cp.send(1, 10);
      fs.renameSync(active, moved);
      const r = await adminRequest(await sidecar.adminPort, 'POST', '/reopen_logs');
      expect(r.status).to.equal(200);
      expect(r.body).to.match(new RegExp(`^reopened ${active} \\(inode \\d+, 0 bytes\\)\\n$`));
      await cp.send(11, 20);
      cp.end();
      await stop(sidecar);
      // The checkpoint names the new file: the restart cuts nothing and the stream goes on from 20.
      sidecar = spawnSidecar(['--config', config, '--rules', rulesFile(dir)], { cwd: dir });
      cp = await controlPlane(await sidecar.ready);
      await cp.send(21, 30);
      cp.end();
      await stop(sidecar);
      expect(routesIn(moved)).to.deep.equal(range(1, 10));
      expect(routesIn(active)).to.deep.equal(range(11, 30));
      expect(logLines(sidecar.stderr()).filter((l) => String(l.msg).startsWith('audit file: recovery'))).to.deep.equal(
        [],
      );
    });

    it('does the same on SIGUSR2, and logs the reopened files', async () => {
      const dir = tempDir();
      const active = path.join(dir, 'audit', 'audit.log');
      const moved = `${active}.1`;
      const config = writeSidecarConfig(dir, { zone: 'zone-1' });
      const sidecar = spawnSidecar(['--config', config, '--rules', rulesFile(dir)], { cwd: dir });
      const cp = await controlPlane(await sidecar.ready);
      try {
        await cp.send(1, 10);
        fs.renameSync(active, moved);
        sidecar.proc.kill('SIGUSR2');
        await waitFor(
          () => logLines(sidecar.stderr()).some((l) => l.msg === 'audit files reopened'),
          'the reopen logged',
        );
        const line = logLines(sidecar.stderr()).find((l) => l.msg === 'audit files reopened');
        const files = (line?.files ?? []) as Array<{ file: string; size: number }>;
        expect(files.map((f) => [f.file, f.size])).to.deep.equal([[active, 0]]);
        await cp.send(11, 20);
      } finally {
        cp.end();
        await stop(sidecar);
      }
      expect(routesIn(moved)).to.deep.equal(range(1, 10));
      expect(routesIn(active)).to.deep.equal(range(11, 20));
    });
  });

  describe('with tokens, on a non-loopback address with TLS', () => {
    let dir: string;
    let ca: TestCa;
    let sidecar: SpawnedSidecar;
    let admin: number;
    let certFile: string;
    let alice: { cert: string; key: string };
    const tokens = { admin: newToken(), viewer: newToken(), cp: newToken() };
    const call = (method: string, urlPath: string, token?: string) =>
      adminRequest(admin, method, urlPath, { token, ca: ca.cert });

    before(async function () {
      if (!hasOpenssl()) {
        console.log('    (skipped: openssl is not installed; the TLS tests make their certificates with it)');
        this.skip();
      }
      dir = tempDir();
      ca = new TestCa(path.join(dir, 'pki'));
      const server = ca.issue('server', { cn: 'meshaudit', sans: ['IP:127.0.0.1'] });
      certFile = server.cert;
      alice = ca.issue('alice', { cn: 'alice' });
      const tokensFile = path.join(dir, 'tokens.yaml');
      fs.writeFileSync(
        tokensFile,
        formatTokens([
          { name: 'alice', groups: ['mesh-system:admin'], sha256: tokenHash(tokens.admin) },
          { name: 'victor', groups: ['ops:viewer'], sha256: tokenHash(tokens.viewer) },
          { name: 'zone-1-cp', groups: ['mesh-system:control-plane'], sha256: tokenHash(tokens.cp) },
        ]),
        { mode: 0o600 },
      );
      const config = path.join(dir, 'meshaudit.yaml');
      // 0.0.0.0 is not loopback: the admin must serve HTTPS there. The tests reach it on 127.0.0.1.
      fs.writeFileSync(
        config,
        [
          'meshaudit:',
          '  zone: zone-1',
          `  dataDir: ${dir}/data`,
          '  grpc:',
          '    address: 127.0.0.1:0',
          `    tls: {certFile: ${server.cert}, keyFile: ${server.key}, clientCaFile: ${ca.cert}}`,
          '  admin: {address: "0.0.0.0:0"}',
          '  auth:',
          '    localhostIsAdmin: false',
          `    tokensFile: ${tokensFile}`,
          '    permissions: {read: [mesh-system:admin, ops:viewer]}',
          '    certificateIdentities: [{match: {commonName: alice}, user: alice, groups: [mesh-system:admin]}]',
          'kmesh:',
          '  access:',
          '    audit:',
          '      backends:',
          `      - {type: file, file: {path: ${dir}/audit/audit.log}}`,
          '',
        ].join('\n'),
      );
      sidecar = spawnSidecar(['--config', config], { cwd: dir });
      admin = await sidecar.adminPort;
    });
    after(async () => {
      if (sidecar !== undefined) await stop(sidecar);
    });

    it('serves HTTPS with the gRPC certificate, and refuses plain HTTP', async () => {
      const r = await call('GET', '/ready', tokens.viewer);
      expect([r.status, r.body, r.certificate?.subject.CN]).to.deep.equal([200, 'LIVE\n', 'meshaudit']);
      expect((await adminRequest(admin, 'GET', '/ready').catch(() => undefined))?.status).to.not.equal(200);
    });

    it('answers 401 without a credential or with an unknown token, even from loopback with localhostIsAdmin off', async () => {
      const none = await call('GET', '/stats');
      expect([none.status, none.headers['www-authenticate'], none.body]).to.deep.equal([
        401,
        'Bearer',
        'a credential is required: a bearer token in the authorization header (meshaudit token add)\n',
      ]);
      const unknown = await call('GET', '/stats', newToken());
      expect([unknown.status, unknown.body]).to.deep.equal([
        401,
        'the bearer token is not valid (unknown, or revoked)\n',
      ]);
    });

    it('needs the read permission to GET and the admin permission to POST (403 naming the permission)', async () => {
      const cp = await call('GET', '/config_dump', tokens.cp);
      expect([cp.status, cp.body]).to.deep.equal([
        403,
        'zone-1-cp may not call GET /config_dump: it needs the read permission (meshaudit.auth.permissions.read)\n',
      ]);
      expect((await call('GET', '/config_dump', tokens.viewer)).status).to.equal(200);
      const viewer = await call('POST', '/healthcheck/fail', tokens.viewer);
      expect([viewer.status, viewer.body]).to.deep.equal([
        403,
        'victor may not call POST /healthcheck/fail: it needs the admin permission (meshaudit.auth.permissions.admin)\n',
      ]);
      expect((await call('GET', '/ready', tokens.viewer)).body, 'the refused POST changed nothing').to.equal('LIVE\n');
      expect((await call('POST', '/healthcheck/fail', tokens.admin)).status).to.equal(200);
      expect((await call('GET', '/ready', tokens.viewer)).body).to.equal('healthcheck failed\n');
      expect((await call('POST', '/healthcheck/ok', tokens.admin)).status).to.equal(200);
    });

    it('counts each refusal in meshaudit_calls_denied_total by permission, and logs it', async () => {
      const before = (await call('GET', '/stats', tokens.admin)).body;
      const count = (text: string, permission: string): number =>
        Number(
          new RegExp(`^meshaudit_calls_denied_total\\{permission="${permission}"\\}: (\\d+)$`, 'm').exec(text)?.[1] ??
            0,
        );
      await call('GET', '/server_info');
      await call('POST', '/reopen_logs', tokens.viewer);
      const after = (await call('GET', '/stats', tokens.admin)).body;
      expect(count(after, 'authenticated') - count(before, 'authenticated')).to.equal(1);
      expect(count(after, 'admin') - count(before, 'admin')).to.equal(1);
      const refused = logLines(sidecar.stderr()).filter((l) => l.msg === 'call refused');
      expect(refused.map((l) => l.rpc)).to.include('GET /stats');
    });

    it('takes a client certificate the handshake verified for its identity (meshaudit.auth.certificateIdentities)', async () => {
      const r = await adminRequest(admin, 'POST', '/healthcheck/ok', { ca: ca.cert, cert: alice.cert, key: alice.key });
      expect([r.status, r.body]).to.deep.equal([200, 'OK\n']);
    });

    it('takes no loopback caller for the admin where gRPC requires a client certificate (clientAuth: require)', async () => {
      const other = tempDir();
      const server = ca.issue('server-require', { cn: 'meshaudit', sans: ['IP:127.0.0.1'] });
      const config = writeSidecarConfig(other);
      const tls = `tls: {certFile: ${server.cert}, keyFile: ${server.key}, clientCaFile: ${ca.cert}, clientAuth: require}`;
      fs.writeFileSync(
        config,
        fs.readFileSync(config, 'utf8').replace('    address: 127.0.0.1:0\n', `    address: 127.0.0.1:0\n    ${tls}\n`),
      );
      const strict = spawnSidecar(['--config', config], { cwd: other });
      try {
        const r = await adminRequest(await strict.adminPort, 'GET', '/ready');
        expect(r.status).to.equal(401);
      } finally {
        await stop(strict);
      }
    });

    it('never shows a token or its hash in /config_dump', async () => {
      const dump = (await call('GET', '/config_dump', tokens.admin)).body;
      for (const token of Object.values(tokens)) {
        expect(dump).to.not.contain(token);
        expect(dump).to.not.contain(tokenHash(token));
      }
      expect(JSON.parse(dump).config.auth.tokensFile).to.equal(path.join(dir, 'tokens.yaml'));
    });

    it('serves a new certificate once it replaces the files, without a restart', async () => {
      const next = ca.issue('server-next', { cn: 'meshaudit next', sans: ['IP:127.0.0.1'] });
      const keyFile = certFile.replace(/\.pem$/, '.key');
      fs.copyFileSync(next.key, keyFile);
      fs.copyFileSync(next.cert, certFile);
      await waitFor(
        () => logLines(sidecar.stderr()).some((l) => l.msg === 'TLS files read again: new connections use them'),
        'the new certificate read',
      );
      const r = await call('GET', '/ready', tokens.viewer);
      expect([r.status, r.certificate?.subject.CN]).to.deep.equal([200, 'meshaudit next']);
    });
  });

  it('says 503 draining on /ready while the sidecar drains, as gRPC health says NOT_SERVING', async () => {
    const dir = tempDir();
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir)], { cwd: dir });
    const [port, admin] = await Promise.all([sidecar.ready, sidecar.adminPort]);
    // A Watch stream: it follows health, and holds the gRPC shutdown (1 s) while the admin still answers.
    const client = healthClient(port) as unknown as grpc.Client & Record<string, (...a: unknown[]) => any>;
    const watch = client.Watch({ service: '' });
    const seen: string[] = [];
    watch.on('data', (r: { status: string }) => seen.push(r.status));
    watch.on('error', () => {});
    try {
      await waitFor(() => seen.includes('SERVING'), 'health SERVING');
      sidecar.proc.kill('SIGTERM');
      await waitFor(() => seen.includes('NOT_SERVING'), 'health NOT_SERVING');
      const r = await adminRequest(admin, 'GET', '/ready');
      expect([r.status, r.body]).to.deep.equal([503, 'draining\n']);
    } finally {
      watch.cancel();
      client.close();
    }
    expect(await sidecar.exited).to.equal(0);
  });

  it('says 503 starting on /ready until start-up ends (the admin listens right after the gRPC port)', async () => {
    const dir = tempDir();
    const adminPort = await freePort();
    const config = writeSidecarConfig(dir, { zone: 'zone-1', admin: `127.0.0.1:${adminPort}` });
    // Every audit write waits 2 s: seeding the rules file's record holds start-up that long.
    const sidecar = spawnSidecar(['--config', config, '--rules', rulesFile(dir)], {
      cwd: dir,
      env: { SLOW_WRITE_MS: '2000' },
      nodeFlags: [...SIDECAR_NODE_FLAGS, '--require', path.resolve(__dirname, '../support/fs-faults.js')],
    });
    try {
      let first: { status: number; body: string } | undefined;
      const deadline = Date.now() + 20_000;
      while (first === undefined && Date.now() < deadline) {
        first = await adminRequest(adminPort, 'GET', '/ready').catch(() => undefined);
        if (first === undefined) await new Promise((resolve) => setImmediate(resolve));
      }
      expect([first?.status, first?.body]).to.deep.equal([503, 'starting\n']);
      const info = await adminRequest(adminPort, 'GET', '/server_info');
      expect([info.status, info.body]).to.deep.equal([503, 'starting\n']);
      await sidecar.ready;
      expect((await adminRequest(adminPort, 'GET', '/ready')).body).to.equal('LIVE\n');
    } finally {
      await stop(sidecar);
    }
  });

  it('listens on the gRPC port only when meshaudit.admin.address is ""', async () => {
    const dir = tempDir();
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { admin: '' })], { cwd: dir });
    try {
      const port = await sidecar.ready;
      expect(logLines(sidecar.stderr()).find((l) => l.msg === 'meshaudit started')).to.include({ admin: 'off' });
      expect(listeningPorts(sidecar.proc.pid!)).to.deep.equal([port]);
    } finally {
      await stop(sidecar);
    }
  });

  it('stops start-up with exit 1, naming meshaudit.admin.address, when its port is in use, before any file is written', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const dir = tempDir();
      const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { admin: `127.0.0.1:${port}` })], {
        cwd: dir,
      });
      expect(await sidecar.exited).to.equal(1);
      expect(sidecar.stderr()).to.contain(
        `meshaudit: can't start: can't listen on 127.0.0.1:${port} (meshaudit.admin.address): the address is already in use (is another sidecar running?)\n`,
      );
      expect(fs.existsSync(path.join(dir, 'data')), 'the data directory').to.equal(false);
    } finally {
      taken.close();
    }
  });
});
