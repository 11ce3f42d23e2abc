// `meshaudit query --nats` (the built CLI) against real nats-server processes of the tests' own: records
// published exactly as the forwarder publishes them (docs/forwarding.md, the message contract) by two
// zones, two instances of one of them, come back once each, merged by date; the filters, --zone,
// --follow and the failures. The shared server on 127.0.0.1:4222 is never used.
import { expect } from 'chai';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { hasOpenssl, TestCa } from '../support/certs';
import { BIN, meshaudit } from '../support/cli';
import { tempDir, waitFor } from '../support/helpers';
import {
  createStream,
  type ForwardedRecord,
  hasNatsServer,
  natsClient,
  operatorTrust,
  publishRecords,
  skipWithoutNats,
  ThrowawayNats,
} from '../support/nats';
import { freePort } from '../support/process';

/** The start of every source's first file (the contract's fileStartMs): any stable number will do. */
const FILE_START_MS = 1_663_745_400_000;

type Kind = ForwardedRecord['kind'];

/** The records of one sidecar, each at the byte offset the one before it ends at (a line and its newline). */
function trail(
  zone: string,
  instance: string,
  records: ReadonlyArray<{ kind: Kind; line: object }>,
  chain?: string,
): ForwardedRecord[] {
  let offset = 0;
  return records.map(({ kind, line }) => {
    const text = JSON.stringify(line);
    const r = { zone, instance, kind, fileStartMs: FILE_START_MS, offset, line: text, chain };
    offset += Buffer.byteLength(text) + 1;
    return r;
  });
}

const user = (name = 'cp'): object => ({ name, groups: [] });
const resource = (date: string, action: string, type: string, name: string, mesh?: string, by = user()) => ({
  kind: (action.startsWith('VIEW_') ? 'view' : 'resource') as Kind,
  line: { date, action, resource: { name, ...(mesh === undefined ? {} : { mesh }), type }, user: by },
});
const token = (date: string, action: string, id: string) => ({
  kind: 'token' as Kind,
  line: { date, action, token: { id, expiresAt: '2022-09-22T09:00:00Z', claims: { mesh: 'default' } }, user: user() },
});

// Three sources whose dates interleave: the merged order is r0..r8. r3 and r4 have the same date (zone-1/cp-0
// comes before zone-2/cp-0 in the sources' order); r2's date is written in another UTC offset.
const ZONE1_CP0 = trail('zone-1', 'cp-0', [
  resource('2022-09-21T09:00:00Z', 'CREATE', 'Mesh', 'r0'),
  resource('2022-09-21T09:00:03Z', 'VIEW_CONFIG_DUMP', 'Dataplane', 'r3', 'default'),
  resource('2022-09-21T09:00:06Z', 'DELETE', 'Mesh', 'r6'),
]);
const ZONE1_CP1 = trail('zone-1', 'cp-1', [
  resource('2022-09-21T09:00:01Z', 'UPDATE', 'TrafficPermission', 'r1', 'demo'),
  resource('2022-09-21T09:00:05Z', 'CREATE', 'TrafficRoute', 'r5', 'default'),
  resource('2022-09-21T09:00:08Z', 'UPDATE', 'MeshTrafficPermission', 'r8', 'default'),
]);
/** zone-2's sidecar runs with integrity on: its records carry the chain link of the digest before their file. */
const ZONE2_CHAIN = `audit-2022-09-21T08-59-00.000.log@${'0f'.repeat(32)}`;
const ZONE2_CP0 = trail(
  'zone-2',
  'cp-0',
  [
    token('2022-09-21T11:00:02+02:00', 'GENERATE_DATAPLANE_TOKEN', 'r2'),
    resource('2022-09-21T09:00:03Z', 'DELETE', 'TrafficRoute', 'r4', 'default', user('john.doe@kuma.io')),
    token('2022-09-21T09:00:07Z', 'GENERATE_USER_TOKEN', 'r7'),
  ],
  ZONE2_CHAIN,
);

/** The name (resource name or token id) of a printed record: r0..r8. */
function nameOf(line: string): string {
  const r = JSON.parse(line);
  return r.resource?.name ?? r.token.id;
}

const names = (stdout: string): string[] =>
  stdout
    .split('\n')
    .filter((l) => l !== '')
    .map(nameOf);

/**
 * `fn` of each item, at most `limit` at once (each is a process of its own, most of it Node's start: a
 * few at once use both cores without crowding a loaded machine).
 */
async function fewAtOnce<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Runs at once: the runs of a table. */
const AT_ONCE = 3;

/**
 * `meshaudit query --nats URL ...args`, running: what it printed so far, and its exit code once it ends.
 * Its standard output is read from the start, or only once `read()` is called (until then it waits on
 * its output, the pipe full).
 */
class RunningQuery {
  out = '';
  err = '';
  readonly proc: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;

  constructor(url: string, args: readonly string[], opts: { read: boolean } = { read: true }) {
    this.proc = spawn(BIN, ['query', '--nats', url, ...args]);
    this.proc.stderr.on('data', (d) => (this.err += d));
    this.exited = new Promise((resolve) => this.proc.on('close', (code) => resolve(code)));
    if (opts.read) this.read();
  }

  read(): void {
    this.proc.stdout.on('data', (d) => (this.out += d));
  }
}

describe('meshaudit query --nats (the built CLI and a real nats-server)', function () {
  // A table runs ~15 processes of the built CLI: a loaded 2-core machine takes up to ~2 s each.
  this.timeout(60_000);
  let server: ThrowawayNats | undefined;
  let nc: NatsConnection | undefined;

  before(async function () {
    if (!hasNatsServer()) skipWithoutNats(this);
    server = await ThrowawayNats.single();
    nc = await natsClient(server.url);
    await createStream(nc);
    // Not in date order: zone-2 first, then zone-1's instances; each source in its own order.
    await publishRecords(nc, [...ZONE2_CP0, ...ZONE1_CP1, ...ZONE1_CP0]);
  });

  after(async () => {
    await nc?.close();
    await server?.destroy();
  });

  const query = (...args: string[]) => meshaudit(['query', '--nats', server!.url, ...args]);

  it('returns every record of every zone and instance once, merged by date, each as published', async () => {
    const run = await query();
    expect(run.stderr).to.equal('');
    expect(run.code).to.equal(0);
    expect(names(run.stdout)).to.deep.equal(['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8']);
    // The bytes as published, each on a line of its own.
    const published = new Map([...ZONE1_CP0, ...ZONE1_CP1, ...ZONE2_CP0].map((r) => [nameOf(r.line), r.line]));
    expect(run.stdout).to.equal(
      names(run.stdout)
        .map((n) => `${published.get(n)}\n`)
        .join(''),
    );
    expect((await query('--all-zones')).stdout).to.equal(run.stdout);
  });

  it('narrows to one zone with --zone, and applies each filter of the local query', async () => {
    const table: Array<[string[], string[]]> = [
      [
        ['--zone', 'zone-2'],
        ['r2', 'r4', 'r7'],
      ],
      [
        ['--zone', 'zone-1'],
        ['r0', 'r1', 'r3', 'r5', 'r6', 'r8'],
      ],
      [['--zone', 'zone-3'], []],
      [
        ['--from', '2022-09-21T09:00:02Z', '--to', '2022-09-21T09:00:05Z'],
        ['r2', 'r3', 'r4'],
      ],
      [
        ['--from', '2022-09-21T11:00:06+02:00'],
        ['r6', 'r7', 'r8'],
      ],
      [
        ['--action', 'DELETE', '--action', 'GENERATE_USER_TOKEN'],
        ['r4', 'r6', 'r7'],
      ],
      [['--action', 'GENERATE_DATAPLANE_TOKEN'], ['r2']],
      [['--action', 'VIEW_CONFIG_DUMP'], ['r3']],
      [
        ['--type', 'TrafficRoute'],
        ['r4', 'r5'],
      ],
      [['--mesh', 'demo'], ['r1']],
      [['--name', 'r5'], ['r5']],
      [['--token-id', 'r7'], ['r7']],
      [['--user', 'john.doe@kuma.io'], ['r4']],
      [
        ['--zone', 'zone-1', '--action', 'UPDATE'],
        ['r1', 'r8'],
      ],
    ];
    const runs = await fewAtOnce(table, AT_ONCE, ([args]) => query(...args));
    table.forEach(([args, expected], i) => {
      expect(runs[i].code, `${args.join(' ')}: ${runs[i].stderr}`).to.equal(0);
      expect(names(runs[i].stdout), args.join(' ')).to.deep.equal(expected);
    });
  });

  it('prints each record with its zone, instance, position, chain link and stream sequence with --json', async () => {
    const run = await query('--zone', 'zone-2', '--action', 'DELETE', '--json');
    expect(run.code).to.equal(0);
    const [r4] = ZONE2_CP0.filter((r) => nameOf(r.line) === 'r4');
    expect(
      run.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).to.deep.equal([
      {
        records: [r4.line],
        zone: 'zone-2',
        instance: 'cp-0',
        position: `${FILE_START_MS}.${r4.offset}`,
        chain: ZONE2_CHAIN,
        sequence: 2,
      },
    ]);
  });

  it('says which stream is missing (exit 1) and that no server answers (exit 3)', async () => {
    const missing = await query('--stream', 'AUDIT');
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.equal(
      `meshaudit query: no stream "AUDIT" on ${server!.url} (the forwarders create it with stream.create: true; --stream names another)\n`,
    );
    const nobody = `nats://127.0.0.1:${await freePort()}`;
    const unreachable = await meshaudit(['query', '--nats', nobody]);
    expect(unreachable.code).to.equal(3);
    expect(unreachable.stderr).to.equal(`meshaudit query: no NATS server answers on ${nobody} (connection refused)\n`);
  });

  it('ends at once when its reader goes (| head -1), after a connect that timed out, and on a zone it has no record of', async () => {
    // The reader of its output closes after the first line: the command ends, 0, as a local query does.
    const proc = spawn(BIN, ['query', '--nats', server!.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    proc.stderr.on('data', (d) => (err += d));
    const [first] = (await once(proc.stdout, 'data')) as [Buffer];
    expect(first.toString()).to.match(/^\{"date":/);
    proc.stdout.destroy();
    const [code] = (await once(proc, 'exit')) as [number | null];
    expect({ code, err }).to.deep.equal({ code: 0, err: '' });
    // A port that takes the connection and never speaks NATS: the connect times out, and the process ends.
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `nats://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    try {
      const timedOut = await meshaudit(['query', '--nats', url]);
      expect(timedOut.code).to.equal(3);
      expect(timedOut.stderr).to.equal(`meshaudit query: no NATS server answers on ${url} (timeout)\n`);
    } finally {
      silent.close();
    }
    const typo = await query('--zone', 'zone_1');
    expect([typo.code, typo.stdout, typo.stderr]).to.deep.equal([
      0,
      '',
      'meshaudit query: stream MESHAUDIT holds no record of zone zone_1\n',
    ]);
  });

  it('refuses flags that cannot work, each with one line (exit 2)', async () => {
    const table: Array<[string[], string]> = [
      [['--zone', 'zone-1', '--all-zones'], '--zone and --all-zones: one or the other'],
      [
        ['--zone', 'zone.1'],
        `--zone: "zone.1" is not a zone a forwarder publishes (1 to 253 characters, no '.', '*', '>' or whitespace)`,
      ],
      // What meshaudit.forwarders[].stream.name refuses, --stream refuses: the config's rule.
      [['--stream', 'A.B'], `--stream: "A.B" is not a stream name (1 to 255 letters, digits, '-' or '_')`],
      [['--stream', 'a b'], `--stream: "a b" is not a stream name (1 to 255 letters, digits, '-' or '_')`],
      [['--stream', 'AUDIT!'], `--stream: "AUDIT!" is not a stream name (1 to 255 letters, digits, '-' or '_')`],
      [['--address', '127.0.0.1:5690'], '--address goes with a sidecar, not with --nats'],
      [['--cursor', 'abc'], '--cursor goes with a sidecar, not with --nats'],
      [['--nats-user', 'reader'], '--nats-user and --nats-password-file go together'],
      [
        ['--nats-token-file', 'a', '--nats-creds', 'b'],
        'one credential: --nats-creds, --nats-user with --nats-password-file, or --nats-token-file',
      ],
      [
        ['--action', 'CREAT', '--type', 'TrafficPermision', '--from', 'yesterday'],
        '--from: must be an RFC 3339 time, got "yesterday"; --action: unknown action "CREAT", did you mean "CREATE"?; ' +
          '--type: unknown type "TrafficPermision", did you mean "TrafficPermission"?',
      ],
    ];
    const runs = await fewAtOnce(table, AT_ONCE, ([args]) => query(...args));
    for (const [i, [args, message]] of table.entries()) {
      const run = runs[i];
      expect(run.code, args.join(' ')).to.equal(2);
      const line = `meshaudit query: ${message} (usage: meshaudit query --nats URL `;
      expect(run.stderr.slice(0, line.length), args.join(' ')).to.equal(line);
    }
    const monitoring = await meshaudit(['query', '--nats', 'http://127.0.0.1:8222']);
    expect(monitoring.code).to.equal(2);
    expect(monitoring.stderr).to.match(
      /^meshaudit query: --nats: "http:\/\/127.0.0.1:8222" is not a NATS URL: nats:\/\/HOST:PORT or tls:\/\/HOST:PORT \(clients connect on 4222; 8222 is the HTTP monitoring port\)/,
    );
    // The NATS flags without --nats, and --follow, which a sidecar's query leaves to `tail -f`.
    expect((await meshaudit(['query', '--zone', 'zone-1'])).stderr).to.match(
      /^meshaudit query: --zone goes with --nats URL /,
    );
    expect((await meshaudit(['query', '--follow'])).stderr).to.match(
      /^meshaudit query: --follow goes with --nats URL \(a sidecar: meshaudit tail -f\) /,
    );
    const unreadable = await query('--nats-token-file', path.join(tempDir(), 'absent'));
    expect(unreadable.code).to.equal(2);
    expect(unreadable.stderr).to.match(/^meshaudit query: cannot read a credential: ENOENT/);
    const creds = path.join(tempDir(), 'reader.creds');
    fs.writeFileSync(creds, 'not a creds file\n');
    expect(await query('--nats-creds', creds)).to.deep.include({
      code: 2,
      stderr: `meshaudit query: cannot read a credential: ${creds}: unable to parse credentials (a .creds file holds a user JWT and its NKey seed)\n`,
    });
  });

  it('lists the --nats flags in its help and in meshaudit --help', async () => {
    const help = (await meshaudit(['query', '--help'])).stdout;
    for (const flag of ['--nats URL', '--stream NAME', '--zone Z', '--all-zones', '--follow', '--nats-creds FILE']) {
      expect(help).to.include(flag);
    }
    for (const flag of ['--nats-password-file FILE', '--nats-token-file FILE', '--nats-ca FILE'])
      expect(help).to.include(flag);
    expect((await meshaudit(['--help'])).stdout).to.include('query --nats URL');
  });
});

describe('meshaudit query --nats on a stream that changes (a real nats-server each)', function () {
  this.timeout(60_000);
  let server: ThrowawayNats | undefined;
  let nc: NatsConnection | undefined;

  beforeEach(async function () {
    if (!hasNatsServer()) skipWithoutNats(this);
    server = await ThrowawayNats.single();
    nc = await natsClient(server.url);
    await createStream(nc);
  });

  afterEach(async () => {
    await nc?.close();
    await server?.destroy();
  });

  /** `count` records of one source, one a second from `firstSecond`, ~300 bytes each. */
  function many(zone: string, instance: string, count: number, firstSecond: number, step: number): ForwardedRecord[] {
    return trail(
      zone,
      instance,
      Array.from({ length: count }, (_, i) => {
        const s = firstSecond + i * step;
        const date = new Date(Date.UTC(2022, 8, 21, 9) + s * 1000).toISOString().replace('.000', '');
        return resource(date, 'CREATE', 'TrafficRoute', `${zone}-${instance}-${i}-${'x'.repeat(150)}`, 'default');
      }),
    );
  }

  it('ends at what the stream held when it started, though records keep coming while it prints', async () => {
    const sources = [
      many('zone-1', 'cp-0', 400, 0, 3),
      many('zone-1', 'cp-1', 400, 1, 3),
      many('zone-2', 'cp-0', 400, 2, 3),
    ];
    await publishRecords(nc!, sources[2]);
    await publishRecords(nc!, sources[1]);
    await publishRecords(nc!, sources[0]);
    // ~360 KB: more than the pipe and the stream's buffer hold, so the reader waits on its output.
    const query = new RunningQuery(server!.url, [], { read: false });
    await once(query.proc.stdout, 'readable');
    const later = [...many('zone-1', 'cp-0', 10, 5000, 1), ...many('zone-2', 'cp-0', 10, 5000, 1)].map((r) => ({
      ...r,
      offset: r.offset + 1_000_000,
    }));
    await publishRecords(nc!, later);
    query.read();
    expect(await query.exited).to.equal(0);
    const expected = [0, 1, 2].flatMap((s) => sources[s].map((r, i) => ({ i: i * 3 + s, line: r.line })));
    expected.sort((a, b) => a.i - b.i);
    expect(query.out).to.equal(expected.map((e) => `${e.line}\n`).join(''));
  });

  it('fails (exit 3) when the server goes away before the read ends, rather than print a short listing', async () => {
    for (const [i, instance] of ['cp-0', 'cp-1', 'cp-2'].entries())
      await publishRecords(nc!, many('zone-1', instance, 400, i, 3));
    const query = new RunningQuery(server!.url, [], { read: false });
    // It waits on its output (more than the pipe holds) while the server stops.
    await once(query.proc.stdout, 'readable');
    await server!.nodes[0].stop('SIGTERM');
    query.read();
    expect(await query.exited).to.equal(3);
    expect(query.err).to.equal('meshaudit query: the connection to the NATS server was lost before the read ended\n');
    expect(query.out.split('\n').length - 1).to.be.lessThan(1200);
  });

  it('--follow prints the records published after it started, of its zone alone, and ends on SIGINT', async () => {
    await publishRecords(nc!, [...ZONE1_CP0, ...ZONE2_CP0]);
    const query = new RunningQuery(server!.url, ['--zone', 'zone-1', '--follow']);
    try {
      await waitFor(() => names(query.out).length === 3, 'the records held at the start');
      // A new record of a known source, one of zone-2 (not printed), one of a new instance of zone-1.
      const laterRecord = (zone: string, instance: string, name: string, second: number): ForwardedRecord => ({
        ...trail(zone, instance, [resource(`2022-09-21T10:00:0${second}Z`, 'CREATE', 'Mesh', name)])[0],
        offset: 9999,
      });
      await publishRecords(nc!, [
        laterRecord('zone-2', 'cp-0', 'z2-new', 0),
        laterRecord('zone-1', 'cp-0', 'cp0-new', 1),
        laterRecord('zone-1', 'cp-2', 'cp2-new', 2),
      ]);
      await waitFor(() => names(query.out).length === 5, 'the records published after it started', 15_000);
    } finally {
      query.proc.kill('SIGINT');
    }
    expect(await query.exited).to.equal(0);
    expect(query.err).to.equal('');
    expect(names(query.out)).to.deep.equal(['r0', 'r3', 'r6', 'cp0-new', 'cp2-new']);
  });

  it('--follow rides out a restart of the server: it prints what is published after, once', async () => {
    await publishRecords(nc!, ZONE1_CP0.slice(0, 1));
    const query = new RunningQuery(server!.url, ['--follow']);
    try {
      await waitFor(() => names(query.out).length === 1, 'the record held at the start');
      await publishRecords(nc!, ZONE1_CP0.slice(1, 2));
      await waitFor(() => names(query.out).length === 2, 'the record published while it follows');
      await nc!.close();
      await server!.nodes[0].stop('SIGTERM');
      await server!.nodes[0].restart();
      nc = await natsClient(server!.url);
      await publishRecords(nc, ZONE1_CP0.slice(2));
      await waitFor(() => names(query.out).length === 3, 'the record published after the restart', 30_000);
    } finally {
      query.proc.kill('SIGINT');
    }
    expect(await query.exited).to.equal(0);
    expect(query.err).to.equal('');
    expect(names(query.out)).to.deep.equal(['r0', 'r3', 'r6']);
  });

  it('--follow on an empty stream prints what comes, and ends on SIGTERM', async () => {
    const query = new RunningQuery(server!.url, ['--follow', '--action', 'DELETE']);
    try {
      // Once its follower's consumer is there (an empty stream has no source to read first).
      const jsm = await jetstreamManager(nc!);
      const deadline = Date.now() + 10_000;
      while ((await jsm.streams.info('MESHAUDIT')).state.consumer_count === 0) {
        if (Date.now() > deadline) throw new Error('timed out waiting for the follower');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await publishRecords(nc!, ZONE1_CP0);
      await waitFor(() => names(query.out).length === 1, 'the DELETE published', 15_000);
    } finally {
      query.proc.kill('SIGTERM');
    }
    expect(await query.exited).to.equal(0);
    expect(names(query.out)).to.deep.equal(['r6']);
  });
});

describe('meshaudit query --nats with a token and TLS (a real nats-server)', function () {
  this.timeout(30_000);
  let server: ThrowawayNats | undefined;
  let dir: string;
  const TOKEN = 'a-reader-token-of-the-test';

  before(async function () {
    if (!hasNatsServer()) skipWithoutNats(this);
    if (!hasOpenssl()) this.skip();
    dir = tempDir();
    const ca = new TestCa(path.join(dir, 'ca'));
    const leaf = ca.issue('nats', { cn: 'nats', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    server = await ThrowawayNats.single([
      `tls { cert_file: ${JSON.stringify(leaf.cert)}, key_file: ${JSON.stringify(leaf.key)} }`,
      `authorization { token: ${JSON.stringify(TOKEN)} }`,
    ]);
    const nc = await natsClient(server.url, { token: TOKEN, tls: { ca: fs.readFileSync(ca.cert, 'utf8') } });
    await createStream(nc);
    await publishRecords(nc, ZONE2_CP0);
    await nc.close();
    fs.writeFileSync(path.join(dir, 'token'), `${TOKEN}\n`);
    fs.writeFileSync(path.join(dir, 'wrong'), 'wrong\n');
  });

  after(async () => {
    await server?.destroy();
  });

  it('reads with the token in --nats-token-file over TLS trusting --nats-ca, and says what is refused', async () => {
    const ca = path.join(dir, 'ca', 'ca.pem');
    const withToken = (file: string, ...more: string[]) =>
      meshaudit(['query', '--nats', server!.url, '--nats-token-file', path.join(dir, file), ...more]);
    const ok = await withToken('token', '--nats-ca', ca);
    expect(ok.stderr).to.equal('');
    expect(names(ok.stdout)).to.deep.equal(['r2', 'r4', 'r7']);
    const wrong = await withToken('wrong', '--nats-ca', ca);
    expect(wrong.code).to.equal(4);
    expect(wrong.stderr).to.match(
      /^meshaudit query: the NATS server on nats:\/\/127\.0\.0\.1:\d+ refused the credentials \(/,
    );
    // Without the CA, the server's certificate is not trusted: nothing is read.
    const untrusted = await withToken('token');
    expect({ code: untrusted.code, stderr: untrusted.stderr }).to.deep.equal({
      code: 3,
      stderr: `meshaudit query: no TLS connection to ${server!.url}: unable to verify the first certificate (--nats-ca names the CA that signed the servers' certificates)\n`,
    });
  });
});

describe('meshaudit query --nats with a .creds file (an operator-mode nats-server)', function () {
  this.timeout(30_000);
  let server: ThrowawayNats | undefined;
  let trust: ReturnType<typeof operatorTrust>;

  before(async function () {
    if (!hasNatsServer()) skipWithoutNats(this);
    trust = operatorTrust(tempDir());
    server = await ThrowawayNats.single([trust.config]);
    const nc = await natsClient(server.url, {
      authenticator: credsAuthenticator(fs.readFileSync(trust.credsFile)),
    });
    await createStream(nc);
    await publishRecords(nc, ZONE1_CP1);
    await nc.close();
  });

  after(async () => {
    await server?.destroy();
  });

  it("reads with a user's .creds file, and a user of an account the server does not trust is refused (exit 4)", async () => {
    const ok = await meshaudit(['query', '--nats', server!.url, '--nats-creds', trust.credsFile]);
    expect(ok.stderr).to.equal('');
    expect(names(ok.stdout)).to.deep.equal(['r1', 'r5', 'r8']);
    const stranger = await meshaudit(['query', '--nats', server!.url, '--nats-creds', trust.strangerCredsFile]);
    expect(stranger.code).to.equal(4);
    const line = `meshaudit query: the NATS server on ${server!.url} refused the credentials (`;
    expect(stranger.stderr.slice(0, line.length)).to.equal(line);
  });
});
