import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultConfig } from '../../src/config';
import { diffConfig, LiveLimits, RELOAD_TABLE } from '../../src/config/reload';
import type { Config } from '../../src/config';

const base = (): Config => defaultConfig('/srv');

describe('config reload table (src/config/reload.ts)', () => {
  it('is the table of docs/reload.md, key for key and effect for effect', () => {
    const doc = fs.readFileSync(path.resolve(__dirname, '../../../docs/reload.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| `([^`]+)` \| (live|restart) \|/gm)].map((m) => ({ key: m[1], effect: m[2] }));
    expect(rows).to.deep.equal(RELOAD_TABLE.map((r) => ({ key: r.key, effect: r.effect })));
  });

  it('names no key twice', () => {
    const keys = RELOAD_TABLE.map((r) => r.key);
    expect(new Set(keys).size).to.equal(keys.length);
  });
});

describe('diffConfig', () => {
  it('finds nothing between a config and itself', () => {
    const c = base();
    const d = diffConfig(c, c);
    expect(d.live).to.deep.equal([]);
    expect(d.restart).to.deep.equal([]);
    expect(d.effective).to.deep.equal(c);
  });

  it('puts live keys in force and keeps the old value of every key that needs a restart', () => {
    const old = base();
    const next: Config = {
      ...old,
      zone: 'other',
      grpcAddress: '127.0.0.1:7000',
      logLevel: 'debug',
      limits: { ...old.limits, eventsPerBatch: 10, messageBytes: 2048 },
      admin: { address: undefined, probeAddress: '0.0.0.0:9000' },
      auth: { ...old.auth, localhostIsAdmin: false },
    };
    const d = diffConfig(old, next);
    expect(d.live).to.have.members([
      'meshaudit.log.level',
      'meshaudit.limits.eventsPerBatch',
      'meshaudit.auth.localhostIsAdmin',
    ]);
    expect(d.restart).to.have.members([
      'meshaudit.zone',
      'meshaudit.grpc.address',
      'meshaudit.limits.messageBytes',
      'meshaudit.admin.address',
      'meshaudit.admin.probeAddress',
    ]);
    expect(d.effective.zone).to.equal(old.zone);
    expect(d.effective.grpcAddress).to.equal(old.grpcAddress);
    expect(d.effective.admin).to.deep.equal(old.admin);
    expect(d.effective.limits.messageBytes).to.equal(old.limits.messageBytes);
    expect(d.effective.limits.eventsPerBatch).to.equal(10);
    expect(d.effective.logLevel).to.equal('debug');
    expect(d.effective.auth.localhostIsAdmin).to.equal(false);
  });

  it('changes the rotation of a backend it keeps, and keeps the old backends when their paths change', () => {
    const old = base();
    const [b] = old.backends;
    const smaller = { ...b.rotation, maxSizeBytes: 1024 };
    const rotated = diffConfig(old, { ...old, backends: [{ ...b, rotation: smaller }] });
    expect(rotated.live).to.deep.equal(['kmesh.access.audit.backends[].file.rotation']);
    expect(rotated.effective.backends[0].rotation).to.deep.equal(smaller);

    const added = diffConfig(old, {
      ...old,
      backends: [
        { ...b, rotation: smaller },
        { ...b, path: '/srv/other.log' },
      ],
    });
    expect(added.restart).to.deep.equal(['kmesh.access.audit.backends']);
    expect(added.live).to.deep.equal(['kmesh.access.audit.backends[].file.rotation']);
    expect(added.effective.backends.map((x) => x.path)).to.deep.equal([b.path]);
    expect(added.effective.backends[0].rotation).to.deep.equal(smaller);
  });

  it('takes other TLS paths live, and needs a restart to turn TLS, client CAs or clientAuth on or off', () => {
    const tls = { certFile: '/t/a.crt', keyFile: '/t/a.key', clientCaFile: undefined, clientAuth: 'none' as const };
    const old: Config = { ...base(), tls };
    const paths = diffConfig(old, { ...old, tls: { ...tls, certFile: '/t/b.crt', keyFile: '/t/b.key' } });
    expect(paths.live).to.deep.equal(['meshaudit.grpc.tls.certFile', 'meshaudit.grpc.tls.keyFile']);
    expect(paths.effective.tls?.certFile).to.equal('/t/b.crt');

    const off = diffConfig(old, { ...old, tls: undefined });
    expect(off.restart).to.deep.equal(['meshaudit.grpc.tls']);
    expect(off.effective.tls).to.deep.equal(tls);

    const ca = diffConfig(old, { ...old, tls: { ...tls, clientCaFile: '/t/ca.crt', clientAuth: 'require' } });
    expect(ca.restart).to.deep.equal(['meshaudit.grpc.tls.clientCaFile']);
    expect(ca.effective.tls).to.deep.equal(tls);
  });

  it('names every key of the table it can report', () => {
    const keys = new Set(RELOAD_TABLE.map((r) => r.key));
    const old = base();
    const next: Config = {
      ...old,
      limits: Object.fromEntries(Object.entries(old.limits).map(([k, v]) => [k, v + 1])) as unknown as Config['limits'],
    };
    for (const key of diffConfig(old, next).live) expect(keys).to.include(key);
    expect(diffConfig(old, next).live).to.have.length(13);
  });
});

describe('LiveLimits', () => {
  it('reads the limits set last', () => {
    const limits = base().limits;
    const live = new LiveLimits(limits);
    expect(live.eventsPerBatch).to.equal(limits.eventsPerBatch);
    live.set({ ...limits, eventsPerBatch: 3, statusBytes: 2048 });
    expect(live.eventsPerBatch).to.equal(3);
    expect(live.statusBytes).to.equal(2048);
    for (const key of Object.keys(limits)) expect(key in live, key).to.equal(true);
  });
});
