// deploy/nats/ as an operator runs it: a three-node JetStream cluster of real nats-server processes from
// nats-server.conf (the store directory rewritten to a temp directory; the ports and routes, which the
// file leaves to the command line, on free 127.0.0.1 ports), the stream of stream-meshaudit.json, and the
// users it defines: a zone's forwarder may publish its zone's records and read back its own last one, and
// nothing of another zone; the reader reads every zone with `meshaudit query --nats`. Then the Kubernetes
// variant, rendered as kustomize renders it, against the Kubernetes schemas and the config it runs.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as yaml from 'js-yaml';
import { jetstream, jetstreamManager, type StreamConfig } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { StatefulSet } from 'kubernetes-models/apps/v1';
import { ConfigMap, Namespace, Service } from 'kubernetes-models/v1';
import { meshaudit } from '../support/cli';
import { readRecords, tempDir, waitFor } from '../support/helpers';
import { sendAll } from '../../src/client/audit-client';
import { events } from '../support/exactly-once';
import { hasNatsServer, natsClient, skipWithoutNats, streamMessages, ThrowawayNats } from '../support/nats';
import { freePort, spawnSidecar, writeSidecarConfig } from '../support/process';

const ROOT = path.resolve(__dirname, '../../..');
const NATS = path.join(ROOT, 'deploy/nats');
const CONFIG = fs.readFileSync(path.join(NATS, 'nats-server.conf'), 'utf8');
const STREAM: StreamConfig = JSON.parse(fs.readFileSync(path.join(NATS, 'stream-meshaudit.json'), 'utf8'));
const STORE_LINE = 'store_dir: /data/jetstream';

/** The environment variables nats-server.conf takes the passwords from (`password: $NAME`). */
const PASSWORD_VARIABLES = [...CONFIG.matchAll(/password: \$(\w+)/g)].map((m) => m[1]);

type Obj = Record<string, any>;

/** Publishes one record of `zone` as the forwarder does; resolves with the ack's stream sequence. */
async function publish(nc: NatsConnection, zone: string, id: string): Promise<number> {
  const h = headers();
  h.set('Meshaudit-Zone', zone);
  h.set('Meshaudit-Instance', 'cp-0');
  h.set('Meshaudit-Position', `0.${id}`);
  h.set('Meshaudit-Date', '2022-09-21T09:00:00Z');
  const line = JSON.stringify({ date: '2022-09-21T09:00:00Z', action: 'CREATE', resource: { name: id, type: 'Mesh' } });
  const ack = await jetstream(nc).publish(`meshaudit.${zone}.cp-0.resource`, line, {
    msgID: `${zone}.cp-0.0.${id}`,
    headers: h,
    timeout: 5_000,
  });
  return ack.seq;
}

/** The error `attempt` rejects with; fails the test when it resolves. */
async function refusal(attempt: Promise<unknown>): Promise<string> {
  try {
    await attempt;
  } catch (e) {
    return String((e as Error).message);
  }
  throw new Error('expected a refusal, the server allowed it');
}

describe('deploy/nats: a three-node JetStream cluster from nats-server.conf (real nats-server processes)', function () {
  this.timeout(60_000);
  let nats: ThrowawayNats | undefined;
  const passwords: Record<string, string> = {};
  const clients: NatsConnection[] = [];
  const connectAs = async (user: string, node = 0): Promise<NatsConnection> => {
    const nc = await natsClient(nats!.urls[node], { user, pass: passwords[user] });
    clients.push(nc);
    return nc;
  };

  before(async function () {
    if (!hasNatsServer()) skipWithoutNats(this);
    expect(CONFIG, 'the store directory the test rewrites').to.include(STORE_LINE);
    const env: NodeJS.ProcessEnv = {};
    // As deploy/nats/README.md makes them: a letter first (nats-server reads the value as a config value).
    for (const variable of PASSWORD_VARIABLES) env[variable] = `pw${randomBytes(12).toString('hex')}`;
    for (const user of ['zone-1', 'zone-2', 'reader', 'admin'])
      passwords[user] = env[`MESHAUDIT_${user.replace('-', '_').toUpperCase()}_PASSWORD`] as string;
    const clusterPorts = [await freePort(), await freePort(), await freePort()];
    const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`).join(',');
    // What nats-server.conf leaves to each node's command line, as its header says, on free ports (the
    // client and monitoring ports too: NatsNode puts its own on the command line).
    nats = await ThrowawayNats.configured(
      (store) => CONFIG.replace(STORE_LINE, `store_dir: ${JSON.stringify(store)}`),
      clusterPorts.map((p, i) => ({
        args: ['--server_name', `nats-${i + 1}`, '--cluster_listen', `nats://127.0.0.1:${p}`, '--routes', routes],
      })),
      env,
    );
    // The admin creates the stream once the cluster has elected its JetStream leader.
    const admin = await connectAs('admin');
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await (await jetstreamManager(admin, { timeout: 2_000 })).streams.add(STREAM);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  });

  after(async () => {
    for (const nc of clients) await nc.close().catch(() => {});
    await nats?.destroy();
  });

  it('holds the stream of stream-meshaudit.json: meshaudit.>, three replicas, direct get, no delete or purge', async () => {
    const info = await (await jetstreamManager(await connectAs('admin', 1))).streams.info('MESHAUDIT');
    expect(info.config.subjects).to.deep.equal(['meshaudit.>']);
    expect(info.config.num_replicas).to.equal(3);
    expect(info.config.allow_direct).to.equal(true);
    expect(info.cluster?.replicas ?? []).to.have.length(2);
    expect(info.config.deny_delete && info.config.deny_purge).to.equal(true);
  });

  it("lets a zone's user publish its zone's records and get acks, and refuses it another zone's subjects", async () => {
    const zone1 = await connectAs('zone-1');
    const first = await publish(zone1, 'zone-1', '1');
    expect(first).to.be.greaterThan(0);
    // The same record again: the same message id, acknowledged as the duplicate it is.
    const again = await jetstream(zone1).publish('meshaudit.zone-1.cp-0.resource', 'x', { msgID: 'zone-1.cp-0.0.1' });
    expect(again.duplicate).to.equal(true);
    expect(await refusal(publish(zone1, 'zone-2', '1'))).to.match(/permissions violation/i);
    const zone2 = await connectAs('zone-2', 2);
    expect(await publish(zone2, 'zone-2', '2')).to.be.greaterThan(first);
    expect(await refusal(publish(zone2, 'zone-1', '2'))).to.match(/permissions violation/i);
  });

  it("lets a zone's user read the stream's info and its own zone's last message, nothing else", async () => {
    const zone1 = await connectAs('zone-1', 1);
    await publish(zone1, 'zone-1', '3');
    await publish(await connectAs('zone-2'), 'zone-2', '3');
    const jsm = await jetstreamManager(zone1);
    expect((await jsm.streams.info('MESHAUDIT')).config.name).to.equal('MESHAUDIT');
    const last = await jsm.direct.getMessage('MESHAUDIT', { last_by_subj: 'meshaudit.zone-1.cp-0.resource' });
    expect(last?.header.get('Meshaudit-Position')).to.equal('0.3');
    expect(
      await refusal(jsm.direct.getMessage('MESHAUDIT', { last_by_subj: 'meshaudit.zone-2.cp-0.resource' })),
    ).to.match(/permissions violation/i);
    // Not the stream API's get ($JS.API.STREAM.MSG.GET), whose subject names no record subject: it would
    // read any zone's messages. The last-message check is a direct get, which names the subject.
    expect(
      await refusal(jsm.streams.getMessage('MESHAUDIT', { last_by_subj: 'meshaudit.zone-1.cp-0.resource' })),
    ).to.match(/permissions violation/i);
    // It cannot read the stream (a consumer), delete it or change it.
    expect(await refusal(jetstream(zone1).consumers.get('MESHAUDIT'))).to.match(/permissions violation/i);
    expect(await refusal(jsm.streams.delete('MESHAUDIT'))).to.match(/permissions violation/i);
  });

  it("runs a zone's forwarder under its zone's user: every record in the stream once, the sidecar's last message read back", async () => {
    const dir = tempDir('meshaudit-deploy-nats-fwd-');
    const passwordFile = path.join(dir, 'zone-1-password');
    fs.writeFileSync(passwordFile, passwords['zone-1'], { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'rules.yaml'), 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n');
    const port = await freePort();
    const config = writeSidecarConfig(dir, {
      zone: 'zone-1',
      address: `127.0.0.1:${port}`,
      forwarders: [
        {
          kind: 'nats',
          servers: nats!.urls,
          user: 'zone-1',
          passwordFile,
          instance: 'cp-fwd',
          stream: { name: 'MESHAUDIT', create: false },
        },
      ],
    });
    const args = ['--config', config, '--rules', path.join(dir, 'rules.yaml')];
    const forwarded = async (): Promise<string[]> =>
      (await streamMessages(nats!.urls[1], 'MESHAUDIT', { user: 'admin', pass: passwords.admin }))
        .filter((m) => m.subject.startsWith('meshaudit.zone-1.cp-fwd.'))
        .map((m) => m.data.toString('utf8'));
    const untilForwarded = async (n: number): Promise<string[]> => {
      for (const deadline = Date.now() + 30_000; ; ) {
        const got = await forwarded();
        if (got.length >= n || Date.now() > deadline) return got;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    // Twice: the second start reads its last message back (a direct get the zone's user may make) and
    // publishes only what came after it.
    for (const [from, count] of [
      [0, 50],
      [50, 50],
    ]) {
      const sidecar = spawnSidecar(args);
      try {
        await sidecar.ready;
        await sendAll(
          `127.0.0.1:${port}`,
          { zone: 'zone-1', instance: `cp-${from}` },
          events(from + count, 7).slice(from),
          {
            batchSize: 10,
            deadlineMs: 20_000,
          },
        );
        const records = readRecords(path.join(dir, 'audit', 'audit.log'));
        expect(await untilForwarded(records.length), sidecar.stderr()).to.deep.equal(records);
        expect(sidecar.stderr()).not.to.match(/permissions violation/i);
      } finally {
        sidecar.proc.kill('SIGTERM');
        await sidecar.exited;
      }
    }
  });

  it("names the keys to fix when the zone's user is refused: a stream name it may not see, a wrong password", async () => {
    const dir = tempDir('meshaudit-deploy-nats-refused-');
    const good = path.join(dir, 'zone-1-password');
    const bad = path.join(dir, 'wrong-password');
    fs.writeFileSync(good, passwords['zone-1'], { mode: 0o600 });
    fs.writeFileSync(bad, 'pwnotit', { mode: 0o600 });
    const cases: Array<[string, string, RegExp]> = [
      [
        good,
        'MESHAUDT',
        /the NATS user may not look up stream MESHAUDT: is meshaudit\.forwarders\[\] \(name nats\) stream\.name right\?/,
      ],
      [
        bad,
        'MESHAUDIT',
        /the NATS servers refused the credentials: check meshaudit\.forwarders\[\] \(name nats\) user and passwordFile/,
      ],
    ];
    for (const [passwordFile, stream, fix] of cases) {
      const config = writeSidecarConfig(path.join(dir), {
        zone: 'zone-1',
        address: `127.0.0.1:${await freePort()}`,
        forwarders: [
          {
            kind: 'nats',
            servers: nats!.urls,
            user: 'zone-1',
            passwordFile,
            instance: 'cp-x',
            stream: { name: stream },
          },
        ],
      });
      // The zone keeps auditing: the sidecar starts, ready, and says what to fix in its warning.
      const sidecar = spawnSidecar(['--config', config]);
      try {
        await sidecar.ready;
        await waitFor(() => fix.test(sidecar.stderr()), `the line naming the keys (${stream})`, 20_000).catch(
          (e: Error) => {
            throw new Error(`${e.message}:\n${sidecar.stderr()}`);
          },
        );
      } finally {
        sidecar.proc.kill('SIGTERM');
        await sidecar.exited;
      }
    }
  });

  it('lets the reader read every zone with meshaudit query --nats, and publish nothing', async () => {
    const zone1 = await connectAs('zone-1');
    const zone2 = await connectAs('zone-2');
    await publish(zone1, 'zone-1', '4');
    await publish(zone2, 'zone-2', '4');
    const file = path.join(tempDir(), 'reader-password');
    fs.writeFileSync(file, `${passwords.reader}\n`);
    const urls = nats!.urls.join(',');
    const run = await meshaudit(['query', '--nats', urls, '--nats-user', 'reader', '--nats-password-file', file]);
    expect(run.stderr).to.equal('');
    expect(run.code).to.equal(0);
    const read = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).resource.name);
    expect(read.filter((n) => n === '4')).to.have.length(2);
    expect(
      (
        await meshaudit([
          'query',
          '--nats',
          urls,
          '--zone',
          'zone-2',
          '--nats-user',
          'reader',
          '--nats-password-file',
          file,
        ])
      ).stdout,
    ).to.not.include('"zone-1"');
    expect(await refusal(publish(await connectAs('reader'), 'zone-1', '5'))).to.match(/permissions violation/i);
  });

  it('refuses a wrong password and a user that may not read (exit 4), each with one line', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'wrong'), 'wrong');
    fs.writeFileSync(path.join(dir, 'zone-1'), passwords['zone-1']);
    const url = nats!.url;
    const as = (user: string, file: string) =>
      meshaudit(['query', '--nats', url, '--nats-user', user, '--nats-password-file', path.join(dir, file)]);
    const table: Array<[string, string, string]> = [
      ['reader', 'wrong', 'refused the credentials'],
      ['zone-1', 'zone-1', 'does not allow this user to read stream "MESHAUDIT"'],
    ];
    for (const [user, file, says] of table) {
      const run = await as(user, file);
      expect(run.code, user).to.equal(4);
      const line = `meshaudit query: the NATS server on ${url} ${says} (`;
      expect(run.stderr.slice(0, line.length), user).to.equal(line);
      expect(run.stderr.trim().split('\n'), user).to.have.length(1);
    }
  });
});

describe('deploy/nats on Kubernetes (kustomization.yaml rendered, against the Kubernetes schemas)', () => {
  const MODELS: Record<string, new (data: any) => { validate(): void }> = {
    'apps/v1/StatefulSet': StatefulSet,
    'v1/Service': Service,
    'v1/ConfigMap': ConfigMap,
    'v1/Namespace': Namespace,
  };

  /** What `kustomize build deploy/nats` gives (names without the ConfigMap's hash, which kustomize adds to its references too). */
  function render(): Obj[] {
    const k = yaml.load(fs.readFileSync(path.join(NATS, 'kustomization.yaml'), 'utf8')) as Obj;
    expect(Object.keys(k).sort(), 'the keys this renderer implements').to.deep.equal(
      ['apiVersion', 'configMapGenerator', 'kind', 'namespace', 'resources'].sort(),
    );
    const objects = (k.resources as string[]).flatMap(
      (r) => yaml.loadAll(fs.readFileSync(path.join(NATS, r), 'utf8')) as Obj[],
    );
    for (const g of k.configMapGenerator as Obj[]) {
      const data: Record<string, string> = {};
      for (const f of g.files as string[]) data[path.basename(f)] = fs.readFileSync(path.join(NATS, f), 'utf8');
      objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name }, data });
    }
    return objects.map((o) =>
      o.kind === 'Namespace' ? o : { ...o, metadata: { ...o.metadata, namespace: k.namespace } },
    );
  }

  const objects = render();
  const find = (kind: string, name: string): Obj => {
    const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
    expect(o, `${kind} ${name}`).to.not.equal(undefined);
    return o as Obj;
  };

  it('renders objects the Kubernetes schemas accept, unknown fields included', () => {
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `a schema for ${o.apiVersion} ${o.kind}`).to.not.equal(undefined);
      new Model(o).validate();
    }
  });

  it("runs the hosts' nats-server.conf on three nodes whose routes name every pod, with every password it needs", () => {
    const set = find('StatefulSet', 'nats');
    const pod = set.spec.template.spec;
    const [container] = pod.containers;
    const args: string[] = container.args;
    const config = find('ConfigMap', 'nats-config');
    expect(config.data['nats-server.conf']).to.equal(CONFIG);
    const mount = container.volumeMounts.find((m: Obj) => m.name === 'config');
    expect(pod.volumes.find((v: Obj) => v.name === 'config').configMap.name).to.equal('nats-config');
    expect(args.slice(0, 2)).to.deep.equal(['-c', `${mount.mountPath}/nats-server.conf`]);
    // One route per replica, by the headless Service's pod names.
    const headless = find('Service', set.spec.serviceName);
    expect(headless.spec.clusterIP).to.equal('None');
    const routes = args[args.indexOf('--routes') + 1].split(',');
    expect(routes).to.deep.equal(
      Array.from({ length: set.spec.replicas }, (_, i) => `nats-route://nats-${i}.${set.spec.serviceName}:6222`),
    );
    expect(args[args.indexOf('--server_name') + 1]).to.equal('$(POD_NAME)');
    // The ports the config listens on, and the store on the claim.
    const ports = Object.fromEntries(container.ports.map((p: Obj) => [p.name, p.containerPort]));
    expect(CONFIG).to.include(`listen: 0.0.0.0:${ports.client}`);
    expect(CONFIG).to.include(`listen: 0.0.0.0:${ports.cluster}`);
    expect(CONFIG).to.include(`http: 0.0.0.0:${ports.monitor}`);
    const data = container.volumeMounts.find((m: Obj) => m.name === 'data');
    expect(STORE_LINE.startsWith(`store_dir: ${data.mountPath}/`)).to.equal(true);
    expect(set.spec.volumeClaimTemplates.map((c: Obj) => c.metadata.name)).to.include('data');
    expect(container.env.map((e: Obj) => e.name).filter((n: string) => n !== 'POD_NAME')).to.deep.equal(
      PASSWORD_VARIABLES,
    );
    expect(PASSWORD_VARIABLES).to.have.length(4);
    // The client Service reaches the client port.
    expect(find('Service', 'nats').spec.ports[0].targetPort).to.equal('client');
  });
});
