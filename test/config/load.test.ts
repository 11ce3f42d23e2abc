import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, defaultConfig, loadConfig } from '../../src/config';
import type { Config } from '../../src/config';

const lines = (...ls: string[]): string => `${ls.join('\n')}\n`;

/** A config with one file backend; `rotation` holds the lines of its rotation block (line 9 on). */
function withRotation(...rotation: string[]): string {
  return lines(
    'kmesh:',
    '  access:',
    '    audit:',
    '      backends:',
    '      - type: file',
    '        file:',
    '          path: a.log',
    '          rotation:',
    ...rotation.map((l) => `            ${l}`),
  );
}

/** A config whose meshaudit block holds `own` (line 2 on). */
function withMeshaudit(...own: string[]): string {
  return lines('meshaudit:', ...own.map((l) => `  ${l}`));
}

/** A config whose backends list holds `backends` (line 5 on). */
function withBackends(...backends: string[]): string {
  return lines('kmesh:', '  access:', '    audit:', '      backends:', ...backends.map((l) => `      ${l}`));
}

const ROTATION = 'kmesh.access.audit.backends[0].file.rotation';
const DEFAULT_SKIP = [
  'DataplaneInsight',
  'ZoneIngressInsight',
  'ZoneEgressInsight',
  'ZoneInsight',
  'ServiceInsight',
  'MeshInsight',
];

describe('loadConfig', () => {
  let dir: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshaudit-config-'));
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function load(text: string, name = 'config.yaml'): Config {
    fs.writeFileSync(path.join(dir, name), text);
    const { config, warnings } = loadConfig({ file: name, cwd: dir });
    expect(warnings, 'warnings').to.deep.equal([]);
    return config;
  }

  function loadError(text: string | Buffer, name = 'config.yaml'): ConfigError {
    fs.writeFileSync(path.join(dir, name), text);
    return errorOf(() => loadConfig({ file: name, cwd: dir }));
  }

  function errorOf(fn: () => unknown): ConfigError {
    try {
      fn();
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigError);
      return err as ConfigError;
    }
    expect.fail('expected a ConfigError');
  }

  function defaultsIn(cwd: string): Config {
    return {
      zone: 'default',
      grpcAddress: '127.0.0.1:5690',
      dataDir: path.join(cwd, 'var'),
      extraResourceTypes: [],
      fsync: false,
      drainTimeoutMs: 10_000,
      store: { type: 'file', postgres: undefined, createSchema: false },
      integrity: { enabled: true, keyFile: undefined, sealIntervalMs: 60_000, copyTo: undefined },
      limits: {
        messageBytes: 4 * 1024 * 1024,
        statusBytes: 8192,
        connections: 100,
        streamsPerConnection: 100,
        bufferedRequestBytes: 64 * 1024 * 1024,
        eventsPerBatch: 5000,
        fieldChars: 1024,
        listEntries: 64,
        accessAudits: 1000,
        rulesPerAccessAudit: 100,
        rulesFileBytes: 1048576,
        yamlBytes: 1048576,
        yamlDepth: 64,
        yamlAliases: 100,
      },
      auth: {
        localhostIsAdmin: true,
        tokensFile: undefined,
        permissions: {
          stream: ['mesh-system:control-plane', 'mesh-system:admin'],
          manageRules: ['mesh-system:admin'],
          read: ['mesh-system:admin'],
          admin: ['mesh-system:admin'],
        },
        certificateIdentities: [],
      },
      allowInsecureRemote: false,
      tls: undefined,
      unixSocket: undefined,
      admin: { address: '127.0.0.1:5691', probeAddress: undefined },
      logLevel: 'info',
      files: { file: 0o640, dir: 0o750 },
      skipDefaultTypes: DEFAULT_SKIP,
      backends: [
        {
          type: 'file',
          path: path.join(cwd, 'var', 'audit', 'audit.log'),
          rotation: {
            enabled: true,
            maxRetainedFiles: 10,
            maxSizeBytes: 100 * 1024 * 1024,
            maxAgeDays: 30,
            compress: false,
          },
        },
      ],
      forwarders: [],
    };
  }

  describe('accepts', () => {
    it('no file: the defaults, with paths resolved against the working directory', () => {
      expect(loadConfig({ cwd: '/srv/mesh' })).to.deep.equal({ config: defaultsIn('/srv/mesh'), warnings: [] });
      expect(defaultConfig('/srv/mesh')).to.deep.equal(defaultsIn('/srv/mesh'));
    });

    it('a config frozen all the way down', () => {
      const config = load(withRotation('maxSizeMb: 1'));
      for (const part of [
        config,
        config.backends,
        config.backends[0],
        config.backends[0]!.rotation,
        config.skipDefaultTypes,
        config.extraResourceTypes,
      ]) {
        expect(Object.isFrozen(part)).to.equal(true);
      }
      expect(Object.isFrozen(loadConfig({ cwd: dir }).config.backends[0]!.rotation)).to.equal(true);
    });

    it('a full file, merged over nothing', () => {
      const config = load(
        lines(
          'meshaudit:',
          '  zone: zone-1.eu',
          '  dataDir: /var/lib/meshaudit',
          '  fsync: true',
          '  drainTimeoutSeconds: 2.5',
          '  limits: {statusBytes: 2048, streamsPerConnection: 10, rulesFileBytes: 4096}',
          '  extraResourceTypes: [MyPolicy, {name: OtherThing2, scope: global}]',
          '  files: {fileMode: "0600", dirMode: "0700"}',
          '  admin: {address: "0.0.0.0:15691", probeAddress: "0.0.0.0:15692"}',
          '  log: {level: debug}',
          '  integrity: {enabled: true, keyFile: secrets/signing.key, sealIntervalSeconds: 2.5, copyTo: /mnt/other}',
          '  store:',
          '    type: postgres',
          '    createSchema: true',
          '    postgres: {host: db.zone-1, port: 6432, database: kuma, user: meshaudit, passwordFile: secrets/pg, schema: audit, sslMode: verify-full, caFile: /etc/pg-ca.pem}',
          '  grpc:',
          '    address: "[::1]:15690"',
          '    maxMessageBytes: 1048576',
          '    allowInsecureRemote: true',
          '    tls: {certFile: tls/server.pem, keyFile: tls/server.key, clientCaFile: /etc/ca.pem, clientAuth: require}',
          '    unixSocket: {path: run/m.sock, user: cp, groups: [mesh-system:control-plane]}',
          '  auth:',
          '    localhostIsAdmin: false',
          '    tokensFile: secrets/tokens.yaml',
          '    permissions: {read: [mesh-system:admin, auditors], manageRules: []}',
          '    certificateIdentities:',
          '    - {match: {uri: "spiffe://zone-1/cp"}, user: zone-1-cp, groups: [mesh-system:control-plane], zones: [zone-1]}',
          '    - {match: {commonName: alice, dns: ops.example}, user: alice, groups: [mesh-system:admin]}',
          'kmesh:',
          '  access:',
          '    audit:',
          '      skipDefaultTypes: ["DataplaneInsight"]',
          '      backends:',
          '      - type: file',
          '        file:',
          '          path: /var/log/mesh/audit.log',
          '          rotation:',
          '            enabled: false',
          '            maxRetainedFiles: 0',
          '            maxSizeMb: 0.5',
          '            maxAgeDays: 0',
          '      - type: file',
          '        file:',
          '          path: logs/copy.log',
          '          rotation:',
          '            enabled: true',
          '            maxRetainedFiles: 3',
          '            maxSizeMb: 20',
          '            maxAgeDays: 7.5',
        ),
      );
      expect(config).to.deep.equal({
        zone: 'zone-1.eu',
        admin: { address: '0.0.0.0:15691', probeAddress: '0.0.0.0:15692' },
        logLevel: 'debug',
        integrity: {
          enabled: true,
          keyFile: path.join(dir, 'secrets/signing.key'),
          sealIntervalMs: 2500,
          copyTo: '/mnt/other',
        },
        store: {
          type: 'postgres',
          createSchema: true,
          postgres: {
            host: 'db.zone-1',
            port: 6432,
            database: 'kuma',
            user: 'meshaudit',
            passwordFile: path.join(dir, 'secrets/pg'),
            schema: 'audit',
            sslMode: 'verify-full',
            caFile: '/etc/pg-ca.pem',
          },
        },
        grpcAddress: '[::1]:15690',
        dataDir: '/var/lib/meshaudit',
        extraResourceTypes: [
          { name: 'MyPolicy', scope: 'mesh' },
          { name: 'OtherThing2', scope: 'global' },
        ],
        fsync: true,
        drainTimeoutMs: 2500,
        limits: {
          ...defaultsIn('/').limits,
          messageBytes: 1048576,
          statusBytes: 2048,
          streamsPerConnection: 10,
          rulesFileBytes: 4096,
        },
        auth: {
          localhostIsAdmin: false,
          tokensFile: path.join(dir, 'secrets/tokens.yaml'),
          permissions: {
            ...defaultsIn('/').auth.permissions,
            read: ['mesh-system:admin', 'auditors'],
            manageRules: [],
          },
          certificateIdentities: [
            {
              match: { uri: 'spiffe://zone-1/cp' },
              user: 'zone-1-cp',
              groups: ['mesh-system:control-plane'],
              zones: ['zone-1'],
            },
            { match: { commonName: 'alice', dns: 'ops.example' }, user: 'alice', groups: ['mesh-system:admin'] },
          ],
        },
        allowInsecureRemote: true,
        files: { file: 0o600, dir: 0o700 },
        tls: {
          certFile: path.join(dir, 'tls/server.pem'),
          keyFile: path.join(dir, 'tls/server.key'),
          clientCaFile: '/etc/ca.pem',
          clientAuth: 'require',
        },
        unixSocket: {
          path: path.join(dir, 'run/m.sock'),
          mode: 0o600,
          user: 'cp',
          groups: ['mesh-system:control-plane'],
          zones: undefined,
        },
        skipDefaultTypes: ['DataplaneInsight'],
        backends: [
          {
            type: 'file',
            path: '/var/log/mesh/audit.log',
            rotation: { enabled: false, maxRetainedFiles: 0, maxSizeBytes: 524288, maxAgeDays: 0, compress: false },
          },
          {
            type: 'file',
            path: path.join(dir, 'logs', 'copy.log'),
            rotation: {
              enabled: true,
              maxRetainedFiles: 3,
              maxSizeBytes: 20 * 1024 * 1024,
              maxAgeDays: 7.5,
              compress: false,
            },
          },
        ],
        forwarders: [],
      });
    });

    it('a partial rotation block, taking the other keys from the defaults', () => {
      const config = load(withRotation('maxRetainedFiles: 2'));
      expect(config.backends).to.deep.equal([
        {
          type: 'file',
          path: path.join(dir, 'a.log'),
          rotation: {
            enabled: true,
            maxRetainedFiles: 2,
            maxSizeBytes: 100 * 1024 * 1024,
            maxAgeDays: 30,
            compress: false,
          },
        },
      ]);
    });

    for (const [interval, ms] of [
      ['24h', 86_400_000],
      ['1h', 3_600_000],
      ['30m', 1_800_000],
      ['1m', 60_000],
      ['1440m', 86_400_000],
    ] as const) {
      it(`rotation.interval ${interval} as ${ms} ms, with compress`, () => {
        const rotation = load(withRotation(`interval: ${interval}`, 'compress: true')).backends[0]!.rotation;
        expect(rotation).to.include({ intervalMs: ms, compress: true });
      });
    }

    it('a backend without a rotation block, taking all of it from the defaults', () => {
      const config = load(withBackends('- type: file', '  file: {path: /tmp/x.log}'));
      expect(config.backends[0]!.rotation).to.deep.equal({
        enabled: true,
        maxRetainedFiles: 10,
        maxSizeBytes: 104857600,
        maxAgeDays: 30,
        compress: false,
      });
    });

    it('a partial meshaudit block, taking the other keys from the defaults', () => {
      const config = load(withMeshaudit('zone: eu-west', 'grpc:', '  maxMessageBytes: 1024'));
      expect(config).to.deep.equal({
        ...defaultsIn(dir),
        zone: 'eu-west',
        limits: { ...defaultsIn(dir).limits, messageBytes: 1024 },
      });
    });

    it('messageBytes under its new name, or under both names when they agree', () => {
      expect(load(withMeshaudit('limits: {messageBytes: 2048}')).limits.messageBytes).to.equal(2048);
      const both = load(withMeshaudit('grpc: {maxMessageBytes: 2048}', 'limits: {messageBytes: 2048}'));
      expect(both.limits.messageBytes).to.equal(2048);
    });

    const asDefaults: Array<[name: string, text: string]> = [
      ['an empty file', ''],
      ['a file of comments', '# nothing set yet\n'],
      [
        'sections left empty (all their keys commented out)',
        lines('meshaudit:', '  # zone: x', 'kmesh:', '  access:', '    audit:'),
      ],
    ];
    for (const [name, text] of asDefaults) {
      it(`${name}, as the defaults`, () => {
        expect(load(text)).to.deep.equal(defaultsIn(dir));
      });
    }

    it('an empty skip list: rules without types then cover every type', () => {
      expect(
        load(lines('kmesh:', '  access:', '    audit:', '      skipDefaultTypes: []')).skipDefaultTypes,
      ).to.deep.equal([]);
    });

    it('a new type in the skip list once it is added to extraResourceTypes', () => {
      const config = load(
        lines(
          'meshaudit:',
          '  extraResourceTypes: [QuantumPolicy]',
          'kmesh:',
          '  access:',
          '    audit:',
          '      skipDefaultTypes: [QuantumPolicy]',
        ),
      );
      expect(config.skipDefaultTypes).to.deep.equal(['QuantumPolicy']);
    });

    it('workerThreads: 0, the removed key at its old default, with a warning naming the key and its line', () => {
      fs.writeFileSync(path.join(dir, 'old.yaml'), withMeshaudit('zone: z', 'workerThreads: 0'));
      const { config, warnings } = loadConfig({ file: 'old.yaml', cwd: dir });
      expect(config.zone).to.equal('z');
      expect(warnings).to.deep.equal([
        'old.yaml:3: meshaudit.workerThreads: was removed and is ignored: batches are read, checked and formatted on the event loop, which costs less CPU per event than worker threads did; delete the key',
      ]);
    });

    it('a config file named by a path relative to the working directory, or absolute', () => {
      fs.mkdirSync(path.join(dir, 'etc'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'etc', 'meshaudit.yaml'), withMeshaudit('zone: from-file'));
      expect(loadConfig({ file: 'etc/meshaudit.yaml', cwd: dir }).config.zone).to.equal('from-file');
      expect(loadConfig({ file: path.join(dir, 'etc', 'meshaudit.yaml'), cwd: '/' }).config.zone).to.equal('from-file');
    });

    const sizes: Array<[maxSizeMb: number, maxSizeBytes: number]> = [
      [100, 104857600],
      [1.5, 1572864],
      [0.001, 1048], // floor(1048.576)
      [1e-9, 1], // rounds down to 0 bytes: at least 1
    ];
    for (const [mb, bytes] of sizes) {
      it(`maxSizeMb ${mb} as ${bytes} bytes`, () => {
        expect(load(withRotation(`maxSizeMb: ${mb}`)).backends[0]!.rotation.maxSizeBytes).to.equal(bytes);
      });
    }

    const drains: Array<[seconds: string, ms: number]> = [
      ['0.3', 300],
      ['0.0001', 1],
      ['2147483', 2147483000],
    ];
    for (const [seconds, ms] of drains) {
      it(`drainTimeoutSeconds ${seconds} as ${ms} ms`, () => {
        expect(load(withMeshaudit(`drainTimeoutSeconds: ${seconds}`)).drainTimeoutMs).to.equal(ms);
      });
    }

    for (const address of [
      '127.0.0.1:5690',
      '0.0.0.0:0',
      'localhost:65535',
      '[::1]:5690',
      '[::]:1',
      'audit.mesh-system.svc:5690',
    ]) {
      it(`grpc address ${address}`, () => {
        const allow = ['127.0.0.1:5690', 'localhost:65535', '[::1]:5690'].includes(address)
          ? []
          : ['  allowInsecureRemote: true'];
        expect(load(withMeshaudit('grpc:', `  address: "${address}"`, ...allow)).grpcAddress).to.equal(address);
      });
    }
  });

  describe('meshaudit.forwarders', () => {
    it('takes a nats forwarder with every default but its servers', () => {
      const config = load(withMeshaudit('zone: eu-west', 'forwarders:', '- kind: nats', '  instance: cp-0'));
      expect(config.forwarders).to.deep.equal([
        {
          kind: 'nats',
          name: 'nats',
          servers: ['nats://127.0.0.1:4222'],
          credentials: { type: 'none' },
          tls: undefined,
          instance: 'cp-0',
          stream: { name: 'MESHAUDIT', create: false, replicas: 1, maxAgeMs: 0, duplicateWindowMs: 120_000 },
          maxHeldFiles: 10,
        },
      ]);
    });

    it('takes every key, secrets as files resolved against the working directory', () => {
      const config = load(
        withMeshaudit(
          'forwarders:',
          '- kind: nats',
          '  name: central',
          '  servers: [tls://nats-0.center:4222, "nats-1.center:4222"]',
          '  credsFile: secrets/zone.creds',
          '  tls: {caFile: ca.pem, certFile: c.pem, keyFile: k.pem}',
          '  instance: kong-mesh-cp-7f9c',
          '  stream: {name: AUDIT_ALL, create: true, replicas: 3, maxAgeDays: 0.5, duplicateWindowSeconds: 30}',
          '  maxHeldFiles: 0',
        ),
      );
      expect(config.forwarders).to.deep.equal([
        {
          kind: 'nats',
          name: 'central',
          servers: ['tls://nats-0.center:4222', 'nats-1.center:4222'],
          credentials: { type: 'creds', credsFile: path.join(dir, 'secrets/zone.creds') },
          tls: {
            caFile: path.join(dir, 'ca.pem'),
            certFile: path.join(dir, 'c.pem'),
            keyFile: path.join(dir, 'k.pem'),
          },
          instance: 'kong-mesh-cp-7f9c',
          stream: { name: 'AUDIT_ALL', create: true, replicas: 3, maxAgeMs: 43_200_000, duplicateWindowMs: 30_000 },
          maxHeldFiles: 0,
        },
      ]);
    });

    it('takes the host name as the instance when it is a subject token', () => {
      const host = os.hostname();
      if (host.includes('.')) return;
      expect(load(withMeshaudit('forwarders:', '- kind: nats')).forwarders[0].instance).to.equal(host);
    });

    const cases: Array<{ name: string; lines: string[]; messages: string[] }> = [
      {
        name: 'an unknown kind and an unknown key',
        lines: ['- kind: kafka', '  brokers: [a]'],
        messages: [
          'config.yaml:3: meshaudit.forwarders[0].kind: must be one of "nats", got "kafka"',
          'config.yaml:4: meshaudit.forwarders[0].brokers: unknown field',
        ],
      },
      {
        name: 'no kind',
        lines: ['- instance: cp-0'],
        messages: ['config.yaml:3: meshaudit.forwarders[0].kind: is required (known kinds: "nats")'],
      },
      {
        name: 'an instance that is no subject token, a bad stream name and replicas',
        lines: ['- kind: nats', '  instance: cp.0', '  stream: {name: "A.B", replicas: 7}'],
        messages: [
          "config.yaml:4: meshaudit.forwarders[0].instance: must be a NATS subject token: 1 to 253 characters, no '.', '*', '>' or whitespace, got \"cp.0\"",
          "config.yaml:5: meshaudit.forwarders[0].stream.name: must be a stream name: 1 to 255 letters, digits, '-' or '_', got \"A.B\"",
          'config.yaml:5: meshaudit.forwarders[0].stream.replicas: must be an integer from 1 to 5, got 7',
        ],
      },
      {
        name: 'two credentials, and a user without its password file',
        lines: ['- kind: nats', '  instance: i', '  user: zone-1', '  tokenFile: t'],
        messages: [
          'config.yaml:3: meshaudit.forwarders[0].passwordFile: is required with user and passwordFile: set both',
          'config.yaml:6: meshaudit.forwarders[0].tokenFile: is one credential too many: set one of user, tokenFile, nkeySeedFile, credsFile (got user, tokenFile)',
        ],
      },
      {
        name: 'a password in a server URL, and a certificate without its key',
        lines: ['- kind: nats', '  instance: i', '  servers: ["nats://u:secret@h:4222"]', '  tls: {certFile: c.pem}'],
        messages: [
          'config.yaml:5: meshaudit.forwarders[0].servers: must be a non-empty list of NATS server URLs (nats://host:port, tls://host:port or host:port; no credentials in them), got a list',
          'config.yaml:6: meshaudit.forwarders[0].tls.keyFile: is required with certFile and keyFile: set both',
        ],
      },
      {
        name: 'two forwarders of one name',
        lines: ['- {kind: nats, instance: i}', '- {kind: nats, instance: i}'],
        messages: [
          'config.yaml:4: meshaudit.forwarders[1].name: "nats" is already the name of meshaudit.forwarders[0] (each forwarder has its own cursor)',
        ],
      },
    ];
    for (const c of cases) {
      it(`refuses ${c.name}, naming the keys`, () => {
        const err = loadError(withMeshaudit('forwarders:', ...c.lines));
        expect(err.message.split('\n')).to.deep.equal(c.messages);
      });
    }

    it("refuses a zone with a '.' once there is a forwarder: it would be two subject tokens", () => {
      const err = loadError(withMeshaudit('zone: eu.west', 'forwarders:', '- {kind: nats, instance: i}'));
      expect(err.message).to.equal(
        `config.yaml:2: meshaudit.zone: is "eu.west", which cannot be a NATS subject token (no '.'): forwarders need one`,
      );
    });
  });

  describe('meshaudit.store.postgres', () => {
    const env = { PGHOST: 'db.env', PGPORT: '6543', PGDATABASE: 'kumadb', PGUSER: 'cp', PGSSLMODE: 'require' };
    const store = (text: string, over: NodeJS.ProcessEnv = env) => {
      fs.writeFileSync(path.join(dir, 'store.yaml'), text);
      return loadConfig({ file: 'store.yaml', cwd: dir, env: over });
    };

    it('takes each key absent from the file from its PG* variable, as libpq does; the file wins', () => {
      const { config } = store(withMeshaudit('store:', '  type: postgres', '  postgres: {port: 5433}'));
      expect(config.store.postgres).to.deep.equal({
        host: 'db.env',
        port: 5433,
        database: 'kumadb',
        user: 'cp',
        passwordFile: undefined,
        schema: 'public',
        sslMode: 'require',
        caFile: undefined,
      });
    });

    it('names the variable when it is what is wrong', () => {
      const err = errorOf(() => store(withMeshaudit('store:', '  type: postgres'), { PGPORT: 'x5432' }));
      expect(err.message).to.contain(
        'meshaudit.store.postgres.port: is not set, and PGPORT must be an integer from 1 to 65535, got "x5432"',
      );
    });

    it('is ignored, with a warning, while the store is the file', () => {
      const { config, warnings } = store(withMeshaudit('store:', '  postgres: {host: db}'));
      expect(config.store).to.deep.equal({ type: 'file', postgres: undefined, createSchema: false });
      expect(warnings).to.deep.equal([
        'config.yaml:3: meshaudit.store.postgres: is ignored: meshaudit.store.type is file (set it to postgres to use it)'.replace(
          'config.yaml:3',
          'store.yaml:3',
        ),
      ]);
    });
  });

  describe('rejects, with the message a user sees', () => {
    const cases: Array<{ name: string; text: string; message: string }> = [
      // Callers and permissions
      {
        name: 'a non-loopback address without TLS, unless allowInsecureRemote says the network is trusted',
        text: withMeshaudit('grpc:', '  address: 0.0.0.0:5690'),
        message:
          'config.yaml:3: meshaudit.grpc.address: 0.0.0.0:5690 is not a loopback address, and the sidecar serves it ' +
          'without TLS: anyone who can reach it could send events or present stolen tokens; configure ' +
          'meshaudit.grpc.tls, listen on 127.0.0.1 beside the control plane, or set ' +
          'meshaudit.grpc.allowInsecureRemote: true where the network itself is trusted',
      },
      {
        name: 'a non-loopback admin address without TLS (the gRPC rule)',
        text: withMeshaudit('admin:', '  address: 0.0.0.0:5691'),
        message:
          'config.yaml:3: meshaudit.admin.address: 0.0.0.0:5691 is not a loopback address, and without ' +
          'meshaudit.grpc.tls the admin would be served in plain HTTP: configure meshaudit.grpc.tls, listen on ' +
          '127.0.0.1 (meshaudit.admin.probeAddress serves /ready and /stats/prometheus on the pod address), or set ' +
          'meshaudit.grpc.allowInsecureRemote: true',
      },
      {
        name: 'an admin address that is no host:port',
        text: withMeshaudit('admin:', '  probeAddress: 5692'),
        message:
          'config.yaml:3: meshaudit.admin.probeAddress: must be host:port with a port from 0 to 65535 (IPv6 in ' +
          'brackets: [::1]:5691), or "" (off), got 5692',
      },
      {
        name: 'a store type that does not exist',
        text: withMeshaudit('store:', '  type: etcd'),
        message: 'config.yaml:3: meshaudit.store.type: must be one of "file", "postgres", got "etcd"',
      },
      {
        name: "libpq's prefer, which falls back to plain text",
        text: withMeshaudit('store:', '  type: postgres', '  postgres:', '    sslMode: prefer'),
        message:
          'config.yaml:5: meshaudit.store.postgres.sslMode: must be one of "disable", "require", "verify-ca", ' +
          '"verify-full" (libpq\'s "prefer" falls back to plain text, which this client does not do), got "prefer"',
      },
      {
        name: 'a schema that is no plain SQL identifier',
        text: withMeshaudit('store:', '  type: postgres', '  postgres:', '    schema: "a; DROP TABLE x"'),
        message:
          'config.yaml:5: meshaudit.store.postgres.schema: must be a lowercase SQL identifier: a-z, 0-9 and _, not ' +
          'starting with a digit, at most 63, got "a; DROP TABLE x"',
      },
      {
        name: 'a log level pino does not have',
        text: withMeshaudit('log:', '  level: verbose'),
        message: 'config.yaml:3: meshaudit.log.level: must be one of "debug", "info", "warn", "error", got "verbose"',
      },
      {
        name: 'localhostIsAdmin off with no credential any caller could present',
        text: withMeshaudit('auth:', '  localhostIsAdmin: false'),
        message:
          'config.yaml:3: meshaudit.auth.localhostIsAdmin: is false, and no caller could present a credential ' +
          '(no meshaudit.auth.tokensFile, no meshaudit.grpc.tls.clientCaFile, no meshaudit.grpc.unixSocket): ' +
          'every call would be refused',
      },
      {
        name: 'TCP off with no Unix socket to listen on instead',
        text: withMeshaudit('grpc:', '  address: "off"'),
        message:
          'config.yaml:3: meshaudit.grpc.address: is off, and no meshaudit.grpc.unixSocket is configured: nothing would listen',
      },
      {
        name: 'a Unix socket without the identity of its callers',
        text: withMeshaudit('grpc:', '  unixSocket: {path: /run/meshaudit.sock, groups: [mesh-system:control-plane]}'),
        message: 'config.yaml:3: meshaudit.grpc.unixSocket.user: is required',
      },
      {
        name: 'a file mode written as a bare number, which YAML reads as decimal',
        text: withMeshaudit('files:', '  fileMode: 0640'),
        message: 'config.yaml:3: meshaudit.files.fileMode: must be an octal mode in quotes, such as "0640", got 640',
      },
      {
        name: 'a file mode the sidecar itself could not write',
        text: withMeshaudit('files:', '  fileMode: "0440"'),
        message:
          'config.yaml:3: meshaudit.files.fileMode: must let the owner read and write (0600 at least), got "0440"',
      },
      {
        name: 'clientAuth require without the CAs that sign client certificates',
        text: withMeshaudit('grpc:', '  tls: {certFile: a.pem, keyFile: a.key, clientAuth: require}'),
        message:
          'config.yaml:3: meshaudit.grpc.tls.clientCaFile: is required with clientAuth: require (the CAs that sign client certificates)',
      },
      {
        name: 'a certificate identity that matches nothing',
        text: withMeshaudit('auth:', '  certificateIdentities:', '  - {match: {}, user: x, groups: [g]}'),
        message:
          'config.yaml:4: meshaudit.auth.certificateIdentities[0].match: must name at least one of commonName, uri, dns',
      },
      {
        name: 'a permission given as one group rather than a list',
        text: withMeshaudit('auth:', '  permissions:', '    read: mesh-system:admin'),
        message:
          'config.yaml:4: meshaudit.auth.permissions.read: must be a list of group names (an empty list: nobody), got "mesh-system:admin"',
      },
      {
        name: 'a permission that does not exist',
        text: withMeshaudit('auth:', '  permissions:', '    write: [ops]'),
        message: 'config.yaml:4: meshaudit.auth.permissions.write: unknown field',
      },
      // Unknown keys
      {
        name: 'a misspelt key, suggesting the right one',
        text: withMeshaudit('zoen: zone-1'),
        message: 'config.yaml:2: meshaudit.zoen: unknown field, did you mean "zone"?',
      },
      {
        name: 'a key in the wrong case, suggesting the right one',
        text: withRotation('MaxSizeMB: 10'),
        message: `config.yaml:9: ${ROTATION}.MaxSizeMB: unknown field, did you mean "maxSizeMb"?`,
      },
      {
        name: 'an unknown top-level key',
        text: lines('tls:', '  cert: x'),
        message: 'config.yaml:1: tls: unknown field',
      },
      {
        name: 'an unknown field under kmesh.access',
        text: lines('kmesh:', '  access:', '    type: rbac'),
        message: 'config.yaml:3: kmesh.access.type: unknown field',
      },
      {
        name: 'an unknown field in a backend',
        text: withBackends('- type: file', '  file: {path: a.log}', '  s3: {}'),
        message: 'config.yaml:7: kmesh.access.audit.backends[0].s3: unknown field',
      },
      // Shapes
      {
        name: 'a list at the top level',
        text: lines('- zone: a'),
        message: 'config.yaml:1: the top level must be a mapping, got a list',
      },
      {
        name: 'a scalar section',
        text: lines('meshaudit: 5'),
        message: 'config.yaml:1: meshaudit: must be a mapping, got 5',
      },
      {
        name: 'two documents',
        text: lines('meshaudit:', '  zone: a', '---', 'kmesh: {}'),
        message: 'config.yaml:4: must hold a single YAML document, found 2',
      },
      {
        name: 'broken YAML',
        text: lines('meshaudit:', '  zone: a', ' fsync: true'),
        message: 'config.yaml:3: bad indentation of a mapping entry',
      },
      {
        name: 'a duplicate key',
        text: lines('meshaudit:', '  zone: a', '  zone: b'),
        message: 'config.yaml:3: duplicated mapping key',
      },
      // meshaudit
      {
        name: 'a zone name with capitals',
        text: withMeshaudit('zone: Zone_1'),
        message: `config.yaml:2: meshaudit.zone: must be 1 to 253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit, got "Zone_1"`,
      },
      {
        name: 'an empty zone name',
        text: withMeshaudit('zone: ""'),
        message: `config.yaml:2: meshaudit.zone: must be 1 to 253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit, got ""`,
      },
      {
        name: 'a zone name ending with a dash',
        text: withMeshaudit('zone: zone-'),
        message: `config.yaml:2: meshaudit.zone: must be 1 to 253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit, got "zone-"`,
      },
      {
        name: 'an empty dataDir',
        text: withMeshaudit("dataDir: ''"),
        message: 'config.yaml:2: meshaudit.dataDir: must be a non-empty path, got ""',
      },
      {
        name: 'a dataDir that is a number',
        text: withMeshaudit('dataDir: 7'),
        message: 'config.yaml:2: meshaudit.dataDir: must be a non-empty path, got 7',
      },
      {
        name: 'fsync as "yes"',
        text: withMeshaudit('fsync: yes'),
        message: 'config.yaml:2: meshaudit.fsync: must be true or false, got "yes"',
      },
      {
        name: 'drainTimeoutSeconds 0',
        text: withMeshaudit('drainTimeoutSeconds: 0'),
        message: 'config.yaml:2: meshaudit.drainTimeoutSeconds: must be a number greater than 0, got 0',
      },
      {
        name: 'drainTimeoutSeconds beyond what a timer can wait',
        text: withMeshaudit('drainTimeoutSeconds: 2147484'),
        message:
          'config.yaml:2: meshaudit.drainTimeoutSeconds: must be at most 2147483, the longest Node.js timer, got 2147484',
      },
      {
        name: 'workerThreads, removed, with a value other than the old default',
        text: withMeshaudit('workerThreads: 1'),
        message:
          'config.yaml:2: meshaudit.workerThreads: was removed (got 1): batches are read, checked and formatted on the event loop, which costs less CPU per event than worker threads did; delete the key',
      },
      {
        name: 'an extra resource type with a scope that is neither mesh nor global',
        text: withMeshaudit('extraResourceTypes:', '- {name: MyThing, scope: zone}'),
        message: 'config.yaml:3: meshaudit.extraResourceTypes[0].scope: must be "mesh" or "global", got "zone"',
      },
      {
        name: 'an extra resource type given as a mapping without a name',
        text: withMeshaudit('extraResourceTypes:', '- {scope: global}'),
        message: 'config.yaml:3: meshaudit.extraResourceTypes[0].name: is required',
      },
      {
        name: 'extraResourceTypes as a string',
        text: withMeshaudit('extraResourceTypes: MyPolicy'),
        message:
          'config.yaml:2: meshaudit.extraResourceTypes: must be a list of resource types (a name, or {name, scope}), got "MyPolicy"',
      },
      {
        name: 'a resource type that is not PascalCase',
        text: withMeshaudit('extraResourceTypes: [MyPolicy, my-policy]'),
        message:
          'config.yaml:2: meshaudit.extraResourceTypes[1]: must be a resource type name in PascalCase, e.g. "MeshInsight", got "my-policy"',
      },
      {
        name: 'a resource type listed twice',
        text: withMeshaudit('extraResourceTypes:', '- MyPolicy', '- Other', '- MyPolicy'),
        message:
          'config.yaml:5: meshaudit.extraResourceTypes[2]: "MyPolicy" is already listed at meshaudit.extraResourceTypes[0]',
      },
      {
        name: 'a port above 65535',
        text: withMeshaudit('grpc:', '  address: 127.0.0.1:70000'),
        message:
          'config.yaml:3: meshaudit.grpc.address: must be host:port with a port from 0 to 65535 (IPv6 in brackets: [::1]:5690), or "off", got "127.0.0.1:70000"',
      },
      {
        name: 'an IPv6 address without brackets',
        text: withMeshaudit('grpc:', '  address: "::1:5690"'),
        message:
          'config.yaml:3: meshaudit.grpc.address: must be host:port with a port from 0 to 65535 (IPv6 in brackets: [::1]:5690), or "off", got "::1:5690"',
      },
      {
        name: 'an address without a port',
        text: withMeshaudit('grpc:', '  address: localhost'),
        message:
          'config.yaml:3: meshaudit.grpc.address: must be host:port with a port from 0 to 65535 (IPv6 in brackets: [::1]:5690), or "off", got "localhost"',
      },
      {
        name: 'an address that is only a port number',
        text: withMeshaudit('grpc:', '  address: 5690'),
        message:
          'config.yaml:3: meshaudit.grpc.address: must be host:port with a port from 0 to 65535 (IPv6 in brackets: [::1]:5690), or "off", got 5690',
      },
      {
        name: 'a maxMessageBytes below 1 KiB',
        text: withMeshaudit('grpc:', '  maxMessageBytes: 100'),
        message: 'config.yaml:3: meshaudit.grpc.maxMessageBytes: must be an integer from 1024 to 2147483647, got 100',
      },
      {
        name: 'messageBytes under both names, different',
        text: withMeshaudit('grpc:', '  maxMessageBytes: 2048', 'limits:', '  messageBytes: 4096'),
        message:
          'config.yaml:5: meshaudit.limits.messageBytes: is 4096 but meshaudit.grpc.maxMessageBytes (its old name) is 2048: set only meshaudit.limits.messageBytes',
      },
      {
        name: 'a messageBytes below 1 KiB',
        text: withMeshaudit('limits: {messageBytes: 100}'),
        message: 'config.yaml:2: meshaudit.limits.messageBytes: must be an integer from 1024 to 2147483647, got 100',
      },
      {
        name: 'no connection allowed',
        text: withMeshaudit('limits: {connections: 0}'),
        message: 'config.yaml:2: meshaudit.limits.connections: must be an integer from 1 to 65536, got 0',
      },
      {
        name: 'a buffered-bytes budget below one whole message',
        text: withMeshaudit('limits: {messageBytes: 8192, bufferedRequestBytes: 4096}'),
        message:
          'config.yaml:2: meshaudit.limits.bufferedRequestBytes: must be at least meshaudit.limits.messageBytes (8192), got 4096',
      },
      {
        name: 'no event per batch',
        text: withMeshaudit('limits: {eventsPerBatch: 0}'),
        message: 'config.yaml:2: meshaudit.limits.eventsPerBatch: must be an integer from 1 to 1000000, got 0',
      },
      {
        name: 'a fieldChars too short for a Kubernetes name',
        text: withMeshaudit('limits: {fieldChars: 100}'),
        message: 'config.yaml:2: meshaudit.limits.fieldChars: must be an integer from 253 to 1048576, got 100',
      },
      {
        name: 'a listEntries past 4096',
        text: withMeshaudit('limits: {listEntries: 5000}'),
        message: 'config.yaml:2: meshaudit.limits.listEntries: must be an integer from 1 to 4096, got 5000',
      },
      {
        name: 'no AccessAudit allowed',
        text: withMeshaudit('limits: {accessAudits: 0}'),
        message: 'config.yaml:2: meshaudit.limits.accessAudits: must be an integer from 1 to 100000, got 0',
      },
      {
        name: 'a fractional rulesPerAccessAudit',
        text: withMeshaudit('limits: {rulesPerAccessAudit: 1.5}'),
        message: 'config.yaml:2: meshaudit.limits.rulesPerAccessAudit: must be an integer from 1 to 10000, got 1.5',
      },
      {
        name: 'a yamlBytes past 64 MiB',
        text: withMeshaudit('limits: {yamlBytes: 67108865}'),
        message: 'config.yaml:2: meshaudit.limits.yamlBytes: must be an integer from 1024 to 67108864, got 67108865',
      },
      {
        name: 'a yamlDepth too shallow for the config itself',
        text: withMeshaudit('limits: {yamlDepth: 8}'),
        message: 'config.yaml:2: meshaudit.limits.yamlDepth: must be an integer from 16 to 1000, got 8',
      },
      {
        name: 'negative yamlAliases',
        text: withMeshaudit('limits: {yamlAliases: -1}'),
        message: 'config.yaml:2: meshaudit.limits.yamlAliases: must be an integer from 0 to 10000, got -1',
      },
      // kmesh.access.audit
      {
        name: 'a skip list left empty (null)',
        text: lines('kmesh:', '  access:', '    audit:', '      skipDefaultTypes:'),
        message: 'config.yaml:4: kmesh.access.audit.skipDefaultTypes: must be a list of resource type names, got null',
      },
      {
        name: 'a misspelt type in the skip list, suggesting the right one',
        text: lines(
          'kmesh:',
          '  access:',
          '    audit:',
          '      skipDefaultTypes:',
          '      - ZoneInsight',
          '      - DataplaneInsigt',
        ),
        message:
          'config.yaml:6: kmesh.access.audit.skipDefaultTypes[1]: unknown resource type "DataplaneInsigt", did you mean "DataplaneInsight"?',
      },
      {
        name: 'a type in the skip list that the registry does not know',
        text: lines('kmesh:', '  access:', '    audit:', '      skipDefaultTypes: [QuantumPolicy]'),
        message:
          'config.yaml:4: kmesh.access.audit.skipDefaultTypes[0]: unknown resource type "QuantumPolicy" (add a new type to meshaudit.extraResourceTypes)',
      },
      {
        name: 'an empty backend list',
        text: lines('kmesh:', '  access:', '    audit:', '      backends: []'),
        message: 'config.yaml:4: kmesh.access.audit.backends: must be a non-empty list of backends, got an empty list',
      },
      {
        name: 'a backend that is not a mapping',
        text: withBackends('- file'),
        message: 'config.yaml:5: kmesh.access.audit.backends[0]: must be a mapping, got "file"',
      },
      {
        name: 'a misspelt backend type',
        text: withBackends('- type: fle', '  file: {path: a.log}'),
        message: 'config.yaml:5: kmesh.access.audit.backends[0].type: unknown backend type "fle", did you mean "file"?',
      },
      {
        name: 'an unknown backend type',
        text: withBackends('- type: s3', '  file: {path: a.log}'),
        message: 'config.yaml:5: kmesh.access.audit.backends[0].type: unknown backend type "s3" (known types: "file")',
      },
      {
        name: 'a backend type that is not a string',
        text: withBackends('- type: 1', '  file: {path: a.log}'),
        message: 'config.yaml:5: kmesh.access.audit.backends[0].type: must be a backend type ("file"), got 1',
      },
      {
        name: 'a backend without a type',
        text: withBackends('- file: {path: a.log}'),
        message: 'config.yaml:5: kmesh.access.audit.backends[0].type: is required (known types: "file")',
      },
      {
        name: 'a file backend without its file block',
        text: withBackends('- type: file'),
        message: 'config.yaml:5: kmesh.access.audit.backends[0].file: is required for a file backend',
      },
      {
        name: 'a file backend without a path, at the line of its file block',
        text: withBackends('- type: file', '  file:', '    rotation: {enabled: false}'),
        message: 'config.yaml:6: kmesh.access.audit.backends[0].file.path: is required',
      },
      {
        name: 'an empty path',
        text: withBackends('- type: file', '  file:', '    path: ""'),
        message: 'config.yaml:7: kmesh.access.audit.backends[0].file.path: must be a non-empty file path, got ""',
      },
      {
        name: 'a path that names a directory',
        text: withBackends('- type: file', '  file:', '    path: /var/log/mesh/'),
        message:
          'config.yaml:7: kmesh.access.audit.backends[0].file.path: must be a file path, not a directory, got "/var/log/mesh/"',
      },
      // rotation
      {
        name: 'a maxSizeMb in words',
        text: withRotation('maxSizeMb: ten'),
        message: `config.yaml:9: ${ROTATION}.maxSizeMb: must be a number greater than 0, got "ten"`,
      },
      {
        name: 'a negative maxSizeMb',
        text: withRotation('maxSizeMb: -1'),
        message: `config.yaml:9: ${ROTATION}.maxSizeMb: must be a number greater than 0, got -1`,
      },
      {
        name: 'a maxSizeMb of 0',
        text: withRotation('maxSizeMb: 0'),
        message: `config.yaml:9: ${ROTATION}.maxSizeMb: must be a number greater than 0, got 0`,
      },
      {
        name: 'a maxSizeMb of .nan',
        text: withRotation('maxSizeMb: .nan'),
        message: `config.yaml:9: ${ROTATION}.maxSizeMb: must be a number greater than 0, got .nan`,
      },
      {
        name: 'a maxSizeMb of .inf',
        text: withRotation('maxSizeMb: .inf'),
        message: `config.yaml:9: ${ROTATION}.maxSizeMb: must be a number greater than 0, got .inf`,
      },
      {
        name: 'a maxSizeMb too large to count in bytes exactly',
        text: withRotation('maxSizeMb: 1e20'),
        message: `config.yaml:9: ${ROTATION}.maxSizeMb: must be at most 8589934591, got 100000000000000000000`,
      },
      {
        name: 'a fractional maxRetainedFiles',
        text: withRotation('maxRetainedFiles: 1.5'),
        message: `config.yaml:9: ${ROTATION}.maxRetainedFiles: must be an integer greater than or equal to 0, got 1.5`,
      },
      {
        name: 'a negative maxRetainedFiles',
        text: withRotation('maxRetainedFiles: -1'),
        message: `config.yaml:9: ${ROTATION}.maxRetainedFiles: must be an integer greater than or equal to 0, got -1`,
      },
      {
        name: 'a negative maxAgeDays',
        text: withRotation('maxAgeDays: -0.5'),
        message: `config.yaml:9: ${ROTATION}.maxAgeDays: must be a number greater than or equal to 0, got -0.5`,
      },
      {
        name: 'an interval in seconds',
        text: withRotation('interval: 90s'),
        message: `config.yaml:9: ${ROTATION}.interval: must be a duration in minutes or hours that divides 24h evenly, from "1m" to "24h" (e.g. "24h", "1h", "30m"), got "90s"`,
      },
      {
        name: 'an interval that does not divide a day',
        text: withRotation('interval: 7h'),
        message: `config.yaml:9: ${ROTATION}.interval: must be a duration in minutes or hours that divides 24h evenly, from "1m" to "24h" (e.g. "24h", "1h", "30m"), got "7h"`,
      },
      {
        name: 'an interval longer than a day',
        text: withRotation('interval: 48h'),
        message: `config.yaml:9: ${ROTATION}.interval: must be a duration in minutes or hours that divides 24h evenly, from "1m" to "24h" (e.g. "24h", "1h", "30m"), got "48h"`,
      },
      {
        name: 'an interval as a number',
        text: withRotation('interval: 3600'),
        message: `config.yaml:9: ${ROTATION}.interval: must be a duration in minutes or hours that divides 24h evenly, from "1m" to "24h" (e.g. "24h", "1h", "30m"), got 3600`,
      },
      {
        name: 'compress as a string',
        text: withRotation('compress: yes please'),
        message: `config.yaml:9: ${ROTATION}.compress: must be true or false, got "yes please"`,
      },
      {
        name: 'enabled as a string',
        text: withRotation('enabled: "true"'),
        message: `config.yaml:9: ${ROTATION}.enabled: must be true or false, got "true"`,
      },
      {
        name: 'a rotation block that is a list',
        text: withRotation('- maxSizeMb: 1'),
        message: `config.yaml:8: ${ROTATION}: must be a mapping, got a list`,
      },
      // Hostile input
      {
        name: 'an alias bomb',
        text: lines(
          'a: &a [x, x, x, x, x, x, x, x, x, x]',
          'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
          'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]',
          'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]',
          'e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]',
        ),
        message: 'config.yaml:4: aliases expand to more than 10000 nodes in one document (an alias bomb?)',
      },
      {
        name: 'deep nesting',
        text: `meshaudit: ${'['.repeat(1000)}${']'.repeat(1000)}\n`,
        message: 'config.yaml:1: nesting exceeded maxDepth (64)',
      },
    ];
    for (const { name, text, message } of cases) {
      it(name, () => {
        const err = loadError(text);
        expect(err.message).to.equal(message);
        expect(err.violations).to.have.length(1);
      });
    }

    it('two backends on one file, however it is spelt', () => {
      const err = loadError(
        withBackends(
          '- type: file',
          '  file: {path: logs/a.log}',
          '- type: file',
          `  file: {path: "${dir}/logs/../logs/a.log"}`,
        ),
      );
      expect(err.message).to.equal(
        `config.yaml:8: kmesh.access.audit.backends[1].file.path: is the same file as kmesh.access.audit.backends[0].file.path (${path.join(dir, 'logs', 'a.log')})`,
      );
    });

    it('every problem at once, in the order of the file, each with its field and line', () => {
      const err = loadError(
        lines(
          'meshaudit:',
          '  zoen: zone-1',
          '  grpc:',
          '    address: 127.0.0.1:70000',
          'kmesh:',
          '  access:',
          '    audit:',
          '      backends:',
          '      - type: file',
          '        file:',
          '          path: ""',
          '          rotation:',
          '            maxSizeMb: ten',
          '            maxRetainedFiles: 1.5',
          '  extra: 1',
        ),
      );
      expect(new Set(err.violations.map((v) => v.source))).to.deep.equal(new Set(['config.yaml']));
      expect(err.violations.map(({ source: _, ...rest }) => rest)).to.deep.equal([
        { field: 'meshaudit.zoen', line: 2, description: 'unknown field, did you mean "zone"?' },
        {
          field: 'meshaudit.grpc.address',
          line: 4,
          description:
            'must be host:port with a port from 0 to 65535 (IPv6 in brackets: [::1]:5690), or "off", got "127.0.0.1:70000"',
        },
        {
          field: 'kmesh.access.audit.backends[0].file.path',
          line: 11,
          description: 'must be a non-empty file path, got ""',
        },
        { field: `${ROTATION}.maxSizeMb`, line: 13, description: 'must be a number greater than 0, got "ten"' },
        {
          field: `${ROTATION}.maxRetainedFiles`,
          line: 14,
          description: 'must be an integer greater than or equal to 0, got 1.5',
        },
        { field: 'kmesh.extra', line: 15, description: 'unknown field' },
      ]);
      expect(err.message).to.equal(
        [
          'config.yaml:2: meshaudit.zoen: unknown field, did you mean "zone"?',
          'config.yaml:4: meshaudit.grpc.address: must be host:port with a port from 0 to 65535 (IPv6 in brackets: [::1]:5690), or "off", got "127.0.0.1:70000"',
          'config.yaml:11: kmesh.access.audit.backends[0].file.path: must be a non-empty file path, got ""',
          `config.yaml:13: ${ROTATION}.maxSizeMb: must be a number greater than 0, got "ten"`,
          `config.yaml:14: ${ROTATION}.maxRetainedFiles: must be an integer greater than or equal to 0, got 1.5`,
          'config.yaml:15: kmesh.extra: unknown field',
        ].join('\n'),
      );
    });

    it('a long bad value, shortened in the message', () => {
      const err = loadError(withMeshaudit(`zone: ${'x'.repeat(300)}_`));
      expect(err.message).to.equal(
        `config.yaml:2: meshaudit.zone: must be 1 to 253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit, got "${'x'.repeat(64)}..."`,
      );
    });

    it('a file that does not exist', () => {
      const err = errorOf(() => loadConfig({ file: 'missing.yaml', cwd: dir }));
      expect(err.message).to.equal(
        `cannot read config file missing.yaml: ENOENT: no such file or directory, open '${path.join(dir, 'missing.yaml')}'`,
      );
      expect(err.violations).to.deep.equal([{ field: '', description: err.message }]);
    });

    it('a directory instead of a file', () => {
      fs.mkdirSync(path.join(dir, 'conf.d'), { recursive: true });
      const err = errorOf(() => loadConfig({ file: 'conf.d', cwd: dir }));
      expect(err.message).to.equal('conf.d: not a regular file (a FIFO, a device or a directory)');
    });

    it('a file larger than 1 MiB, without parsing it', () => {
      const err = loadError(`# ${'x'.repeat(1024 * 1024)}\n`, 'big.yaml');
      expect(err.message).to.equal('big.yaml: too large: more than 1048576 bytes');
    });

    it('a file that is not UTF-8', () => {
      const err = loadError(Buffer.from([...Buffer.from('meshaudit:\n  zone: z'), 0xff, 0x0a]));
      expect(err.message).to.equal('config.yaml: not valid UTF-8');
    });
  });
});
