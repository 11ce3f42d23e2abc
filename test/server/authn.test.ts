// Who may call what, against a real sidecar with real clients: the localhost rule by default; with a
// tokens file and localhostIsAdmin off, tokens only, each permission by group, changes recorded by the
// token's user, a stream held to the zones of its token, a revoked token refused without a restart.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { newToken, tokenHash } from '../../src/auth/tokens';
import type { Sidecar } from '../../src/cli/sidecar';
import { formatTokens } from '../../src/config/tokens-file';
import { jsonLogger } from '../../src/log';
import {
  bearer,
  clients,
  openStream,
  samples,
  readRecords,
  resourceEvent,
  startTestSidecar,
  tempDir,
  testConfig,
  unary,
  waitFor,
  refusal,
} from '../support/helpers';

describe('callers and permissions', () => {
  it('by default, takes a loopback caller without a credential for the admin, and records it so', async () => {
    const dir = tempDir();
    const config = testConfig(dir);
    const sidecar = await startTestSidecar(config);
    const c = clients(sidecar.port);
    try {
      await unary(c.rules, 'CreateAccessAudit', { accessAudit: { name: 'x', rules: [{ accessAll: true }] } });
    } finally {
      c.close();
      await sidecar.stop();
    }
    expect(readRecords(config.backends[0].path).at(-1)).to.include(
      '"user":{"name":"mesh-system:admin","groups":["mesh-system:admin"]}',
    );
  });

  describe('with a tokens file and localhostIsAdmin off', () => {
    let dir: string;
    let tokensFile: string;
    let sidecar: Sidecar;
    let c: ReturnType<typeof clients>;
    const admin = newToken();
    const cp = newToken();
    const shipper = newToken();
    const auditPath = (): string => path.join(dir, 'audit', 'audit.log');
    const logs: string[] = [];

    before(async () => {
      dir = tempDir();
      tokensFile = path.join(dir, 'tokens.yaml');
      fs.writeFileSync(
        tokensFile,
        formatTokens([
          { name: 'alice', groups: ['mesh-system:admin'], sha256: tokenHash(admin) },
          { name: 'zone-1-cp', groups: ['mesh-system:control-plane'], zones: ['zone-1'], sha256: tokenHash(cp) },
          { name: 'shipper', groups: ['log-readers'], sha256: tokenHash(shipper) },
        ]),
        { mode: 0o600 },
      );
      const defaults = testConfig(dir);
      const config = testConfig(dir, {
        auth: {
          ...defaults.auth,
          localhostIsAdmin: false,
          tokensFile,
          permissions: { ...defaults.auth.permissions, read: ['mesh-system:admin', 'log-readers'] },
        },
      });
      sidecar = await startTestSidecar(config, undefined, { log: jsonLogger((line) => logs.push(line)) });
      c = clients(sidecar.port);
    });
    after(async () => {
      c.close();
      await sidecar.stop();
    });

    it('refuses a call without a credential, or with a token it does not know, UNAUTHENTICATED', async () => {
      const none = await refusal(unary(c.rules, 'ListAccessAudits', {}));
      expect([none.code, none.details]).to.deep.equal([
        grpc.status.UNAUTHENTICATED,
        'a credential is required: a bearer token in the authorization metadata (meshaudit token add)',
      ]);
      const unknown = await refusal(unary(c.audit, 'Record', { event: resourceEvent(1) }, bearer(newToken())));
      expect([unknown.code, unknown.details]).to.deep.equal([
        grpc.status.UNAUTHENTICATED,
        'the bearer token is not valid (unknown, or revoked)',
      ]);
      const malformed = new grpc.Metadata();
      malformed.set('authorization', `Basic ${admin}`);
      expect((await refusal(unary(c.rules, 'ListAccessAudits', {}, malformed))).code).to.equal(
        grpc.status.UNAUTHENTICATED,
      );
    });

    it('lets each group do what its permissions say, and names the permission it lacks', async () => {
      expect(await unary(c.audit, 'Record', { event: resourceEvent(1) }, bearer(cp))).to.deep.equal({ audited: true });
      const denied = await refusal(unary(c.rules, 'ListAccessAudits', {}, bearer(cp)));
      expect([denied.code, denied.details]).to.deep.equal([
        grpc.status.PERMISSION_DENIED,
        'zone-1-cp may not call ListAccessAudits: it needs the read permission (meshaudit.auth.permissions.read)',
      ]);
      expect(await unary(c.rules, 'ListAccessAudits', {}, bearer(shipper))).to.have.property('accessAudits');
      const noStream = await refusal(unary(c.audit, 'Record', { event: resourceEvent(2) }, bearer(shipper)));
      expect([noStream.code, noStream.details]).to.deep.equal([
        grpc.status.PERMISSION_DENIED,
        'shipper may not call Record: it needs the stream permission (meshaudit.auth.permissions.stream)',
      ]);
      // A stream is refused at its start, before it names an identifier.
      expect((await openStream(c.audit, bearer(shipper)).status)?.code).to.equal(grpc.status.PERMISSION_DENIED);
      const change = { accessAudit: { name: 'y', rules: [{ accessAll: true }] } };
      // A denied change is not a record: a record has no outcome, and would read as done.
      const before = readRecords(auditPath()).length;
      expect((await refusal(unary(c.rules, 'CreateAccessAudit', change, bearer(shipper)))).code).to.equal(
        grpc.status.PERMISSION_DENIED,
      );
      expect(readRecords(auditPath())).to.have.length(before);
      await unary(c.rules, 'CreateAccessAudit', change, bearer(admin));
      const records = readRecords(auditPath());
      expect(records).to.have.length(before + 1);
      expect(records.at(-1)).to.include('"user":{"name":"alice","groups":["mesh-system:admin"]}');
      // Four denials for want of a permission in this test, one log line: the rest are counted, not logged.
      const denials = logs.filter((l) => l.includes('"msg":"call refused"') && l.includes('"kind":"permission"'));
      expect(denials).to.have.length(1);
      expect(denials[0]).to.include('"caller":"zone-1-cp"').and.include('"permission":"read"');
    });

    it("refuses a stream for a zone its token does not cover, and leaves the real control plane's stream alone", async () => {
      const real = openStream(c.audit, bearer(cp));
      real.call.write({ identifier: { zone: 'zone-1', instance: 'cp-0' } });
      const { ackedSeq } = await real.next();
      const intruder = openStream(c.audit, bearer(cp));
      intruder.call.write({ identifier: { zone: 'zone-2', instance: 'cp-0' } });
      const refused = await intruder.status;
      expect([refused?.code, refused?.details]).to.deep.equal([
        grpc.status.PERMISSION_DENIED,
        'zone-1-cp may not stream for zone-2/cp-0: its credential covers only zones zone-1',
      ]);
      // Without a credential, no stream at all: it never takes over the real one's identifier.
      const anonymous = openStream(c.audit);
      anonymous.call.write({ identifier: { zone: 'zone-1', instance: 'cp-0' } });
      expect((await anonymous.status)?.code).to.equal(grpc.status.UNAUTHENTICATED);
      real.call.write({ firstSeq: ackedSeq + 1, events: [resourceEvent(ackedSeq + 1)] });
      expect((await real.next()).ackedSeq).to.equal(ackedSeq + 1);
      real.call.end();
      expect(await real.status).to.equal(null);
    });

    it('counts each refusal by the permission the caller lacked (authenticated: no valid credential), and each refused stream by why', async () => {
      const counts = async (): Promise<Record<string, number | undefined>> => {
        const m = samples(await sidecar.metrics.prometheus());
        return {
          authenticated: m.get('meshaudit_calls_denied_total{permission="authenticated"}'),
          read: m.get('meshaudit_calls_denied_total{permission="read"}'),
          manageRules: m.get('meshaudit_calls_denied_total{permission="manageRules"}'),
          stream: m.get('meshaudit_calls_denied_total{permission="stream"}'),
          unauthenticatedStreams: m.get('meshaudit_streams_refused_total{reason="unauthenticated"}'),
          deniedStreams: m.get('meshaudit_streams_refused_total{reason="permission_denied"}'),
        };
      };
      const before = await counts();
      await refusal(unary(c.rules, 'ListAccessAudits', {}, bearer(newToken())));
      await refusal(unary(c.rules, 'ListAccessAudits', {}, bearer(cp)));
      await refusal(unary(c.rules, 'DeleteAccessAudit', { name: 'all', version: 0 }, bearer(shipper)));
      const anonymous = openStream(c.audit);
      anonymous.call.write({ identifier: { zone: 'zone-1', instance: 'cp-9' } });
      expect((await anonymous.status)?.code).to.equal(grpc.status.UNAUTHENTICATED);
      const intruder = openStream(c.audit, bearer(cp));
      intruder.call.write({ identifier: { zone: 'zone-2', instance: 'cp-9' } });
      expect((await intruder.status)?.code).to.equal(grpc.status.PERMISSION_DENIED);
      const after = await counts();
      const added = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, (v ?? 0) - (before[k] ?? 0)]));
      expect(added).to.deep.equal({
        authenticated: 2,
        read: 1,
        manageRules: 1,
        stream: 1,
        unauthenticatedStreams: 1,
        deniedStreams: 1,
      });
    });

    it('refuses a revoked token once the file changes, without a restart; a broken file keeps the tokens', async () => {
      const text = fs.readFileSync(tokensFile, 'utf8');
      fs.writeFileSync(tokensFile, 'tokens: [oops');
      await waitFor(() => logs.some((l) => l.includes('tokens file changed but cannot be used')), 'the refusal', 5000);
      expect(await unary(c.rules, 'ListAccessAudits', {}, bearer(shipper))).to.have.property('accessAudits');
      fs.writeFileSync(tokensFile, text.slice(0, text.indexOf('- name: "shipper"')));
      await waitFor(() => logs.some((l) => l.includes('tokens file read again')), 'the new file read', 5000);
      expect((await refusal(unary(c.rules, 'ListAccessAudits', {}, bearer(shipper)))).code).to.equal(
        grpc.status.UNAUTHENTICATED,
      );
      expect(await unary(c.rules, 'ListAccessAudits', {}, bearer(admin))).to.have.property('accessAudits');
    });
  });
});
