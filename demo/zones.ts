// `make demo-zones`: two zones, each with its own sidecar, config, rules, data and audit files under
// ./var/demo-zones/<zone>/, a control plane streaming to each through AuditClient, a rule change in zone-2
// alone (with `meshaudit rules apply`, as an operator makes it), then the evidence that each zone's records
// and rules stay its own. Exit code 0 when every check holds, 1 otherwise (130 on Ctrl-C); both sidecars
// are stopped with SIGTERM in every case.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { spawnSidecar, type SpawnedSidecar, writeSidecarConfig } from '../bench/sidecar';
import { AuditClient, type AuditEvent } from '../src/client';
import { meshauditClients } from '../src/client/services';

/** Everything of the demo, made again at each run; nothing else under ./var is touched. */
const ROOT = path.join('var', 'demo-zones');
/** The checkout's meshaudit command (this file runs as dist/demo/zones.js). */
const BIN = path.resolve(__dirname, '../../bin/meshaudit');
const ZONES = ['zone-1', 'zone-2'] as const;
type Zone = (typeof ZONES)[number];

/** Each zone's own rules, written as its --rules file: zone-1 and zone-2 audit different actions. */
const RULES: Record<Zone, string> = {
  'zone-1':
    'type: AccessAudit\nname: zone-1-changes\nrules:\n- types: ["TrafficRoute"]\n  access: ["CREATE", "DELETE"]\n',
  'zone-2': 'type: AccessAudit\nname: zone-2-deletes\nrules:\n- access: ["DELETE"]\n',
};
/** The rule change, applied to zone-2 alone with `meshaudit rules apply -f`. */
const ZONE_2_CHANGE = 'type: AccessAudit\nname: zone-2-everything\nrules:\n- accessAll: true\n';
const ACTIONS = ['CREATE', 'UPDATE', 'DELETE'];

/** What each round of a zone's control plane must get back, action by action. */
const EXPECTED: Record<Zone, [string[], string[]]> = {
  'zone-1': [
    ['recorded', 'skipped', 'recorded'],
    ['recorded', 'skipped', 'recorded'],
  ],
  'zone-2': [
    ['skipped', 'skipped', 'recorded'],
    ['recorded', 'recorded', 'recorded'],
  ],
};

interface RunningZone {
  zone: Zone;
  dir: string;
  sidecar: SpawnedSidecar;
  address: string;
  cp: AuditClient;
  config: string;
  rules: string;
}

interface RuleStub extends grpc.Client {
  ListAccessAudits(req: object, cb: (err: grpc.ServiceError | null, res: ListReply) => void): void;
}
interface ListReply {
  accessAudits: Array<{
    name: string;
    version: number;
    rules: Array<{ types: string[]; mesh: string; access: string[]; accessAll: boolean }>;
  }>;
}
/** What `meshaudit rules apply` prints (a list left out when empty). */
interface ApplyOutput {
  created?: string[];
  updated?: string[];
  unchanged?: string[];
}

/** Every sidecar spawned, started or not: what stopAll stops. */
const running: Array<Pick<RunningZone, 'dir' | 'sidecar'>> = [];
/** Rejects when a sidecar exits before the demo stops it: the steps waiting on it would wait for ever. */
let sidecarDied: (err: Error) => void = () => {};
const died = new Promise<never>((_, reject) => (sidecarDied = reject));
const checks: Array<{ ok: boolean; what: string }> = [];

function check(ok: boolean, what: string): void {
  checks.push({ ok, what });
}

/** A resource change by the zone's operator: every name carries the zone, so a stray record shows. */
function event(zone: Zone, round: number, action: string): AuditEvent {
  return {
    date: '2022-09-21T09:31:42Z',
    action,
    resource: { type: 'TrafficRoute', name: `${zone}-route-${round}`, mesh: 'default' },
    user: { name: `operator@${zone}`, groups: ['mesh-system:admin'] },
  };
}

function ruleCall<T>(zone: RunningZone, method: 'ListAccessAudits', req: object): Promise<T> {
  const stub = new (meshauditClients().RuleService)(
    zone.address,
    grpc.credentials.createInsecure(),
  ) as unknown as RuleStub;
  return new Promise<T>((resolve, reject) =>
    stub[method](req, (err, res) => {
      stub.close();
      if (err) reject(err);
      else resolve(res as T);
    }),
  );
}

/** Runs `bin/meshaudit ...args` to its end, the command and its output shown; its exit code and stdout. */
function meshaudit(zone: Zone, args: readonly string[]): Promise<{ code: number; stdout: string }> {
  console.log(`${zone}: bin/meshaudit ${args.join(' ')}`);
  return new Promise((resolve) =>
    execFile(BIN, args, (err, stdout, stderr) => {
      for (const line of `${stdout}${stderr}`.split('\n')) if (line !== '') console.log(`  ${line}`);
      // A command that could not run at all (no node on PATH) has no exit code of its own.
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      if (code !== 0) console.log(`  (exit code ${code})`);
      resolve({ code, stdout });
    }),
  );
}

async function start(zone: Zone): Promise<RunningZone> {
  const dir = path.join(ROOT, zone);
  fs.mkdirSync(dir, { recursive: true });
  const rules = path.join(dir, 'rules.yaml');
  fs.writeFileSync(rules, RULES[zone]);
  // A free port each (the start line names it) and no admin listener: two zones never collide.
  const config = writeSidecarConfig(dir, { zone, admin: '' });
  const sidecar = spawnSidecar(['--config', config, '--rules', rules]);
  running.push({ dir, sidecar });
  void sidecar.exited.then((code) => {
    if (stopping === null) sidecarDied(new Error(`${zone}'s sidecar exited (${code}):\n${sidecar.stderr()}`));
  });
  const address = `127.0.0.1:${await sidecar.ready}`;
  // One event per batch (no batch delay): each action's acknowledgement says its own outcome.
  const cp = new AuditClient({ address, identifier: { zone, instance: 'cp-0' }, batchDelayMs: 0 });
  return { zone, dir, sidecar, address, cp, config, rules };
}

/** One round of the zone's control plane: each action sent and acknowledged in turn, so each has its own outcome. */
async function round(z: RunningZone, n: 0 | 1): Promise<void> {
  const outcomes: string[] = [];
  for (const action of ACTIONS) outcomes.push((await z.cp.send(event(z.zone, n + 1, action))).outcome);
  const shown = ACTIONS.map((a, i) => `${a} ${outcomes[i]}`).join(', ');
  console.log(`${z.zone}: control plane cp-0, round ${n + 1}: ${shown}`);
  check(
    outcomes.join() === EXPECTED[z.zone][n].join(),
    `${z.zone}'s round ${n + 1} is decided by ${z.zone}'s own rules (${EXPECTED[z.zone][n].join(', ')})`,
  );
}

function describeRule(r: ListReply['accessAudits'][number]['rules'][number]): string {
  const what = r.accessAll ? 'every action' : r.access.join(', ');
  const types = r.types.length > 0 ? ` of ${r.types.join(', ')}` : '';
  return `${what}${types}${r.mesh ? ` in mesh ${r.mesh}` : ''}`;
}

/** Every record line of the zone's audit folder (the active file and any rotated one; not the trail's .json). */
function records(z: RunningZone): string[] {
  const folder = path.join(z.dir, 'audit');
  return fs
    .readdirSync(folder)
    .filter((f) => f.endsWith('.log'))
    .sort()
    .flatMap((f) => fs.readFileSync(path.join(folder, f), 'utf8').split('\n'))
    .filter((l) => l !== '');
}

async function report(z: RunningZone, other: Zone, expectedAudits: string[], expectedRecords: number): Promise<void> {
  const list = await ruleCall<ListReply>(z, 'ListAccessAudits', {});
  const names = list.accessAudits.map((a) => a.name);
  console.log(`--- ${z.zone}`);
  console.log('AccessAudits in force:');
  for (const a of list.accessAudits)
    console.log(`  ${a.name} (version ${a.version}): ${a.rules.map(describeRule).join('; ')}`);
  check(names.join() === expectedAudits.join(), `${z.zone}'s AccessAudits are its own: ${expectedAudits.join(', ')}`);
  const lines = records(z);
  console.log(`records: ${lines.length} in ${path.join(z.dir, 'audit')}/, e.g.`);
  console.log(`  ${lines[lines.length - 1] ?? '(none)'}`);
  check(lines.length === expectedRecords, `${z.zone}'s files hold ${expectedRecords} records`);
  const stray = lines.filter((l) => l.includes(other) || !l.includes(`"name":"${z.zone}-`));
  check(stray.length === 0, `${z.zone}'s files hold no ${other} event${stray.length ? `: ${stray[0]}` : ''}`);
}

let stopping: Promise<Array<number | string>> | null = null;

/** SIGTERM to every sidecar still running, once; resolves with their exit codes. */
function stopAll(): Promise<Array<number | string>> {
  stopping ??= (async () => {
    for (const z of running) if (z.sidecar.proc.exitCode === null) z.sidecar.proc.kill('SIGTERM');
    const codes = await Promise.all(running.map((z) => z.sidecar.exited));
    // The sidecars' own logs, for a look afterwards.
    for (const z of running) fs.writeFileSync(path.join(z.dir, 'meshaudit.log'), z.sidecar.stderr());
    return codes;
  })();
  return stopping;
}

async function main(): Promise<number> {
  fs.rmSync(ROOT, { recursive: true, force: true });
  console.log(`meshaudit demo-zones: two zones, each with its own sidecar, rules and files under ${ROOT}/`);
  const [one, two] = await Promise.all(ZONES.map(start));
  for (const z of [one, two]) {
    console.log(`${z.zone}: sidecar pid ${z.sidecar.proc.pid} on ${z.address}, config ${z.config}, rules ${z.rules}`);
  }
  await round(one, 0);
  await round(two, 0);

  const change = path.join(two.dir, 'change.yaml');
  fs.writeFileSync(change, ZONE_2_CHANGE);
  const applied = await meshaudit(two.zone, ['rules', 'apply', '-f', change, '--address', two.address]);
  const created = applied.code === 0 ? (JSON.parse(applied.stdout) as ApplyOutput).created : undefined;
  check(
    created?.join() === 'zone-2-everything',
    'the rule change is applied in zone-2 (meshaudit rules apply, exit 0)',
  );
  await round(one, 1);
  await round(two, 1);

  // A control plane that names the wrong zone is refused at once, and its event is written nowhere.
  const stray = new AuditClient({ address: two.address, identifier: { zone: 'zone-1', instance: 'cp-0' } });
  const refused = await stray.send(event('zone-1', 3, 'DELETE')).then(
    () => null,
    (err: grpc.ServiceError) => err,
  );
  await stray.close().catch(() => {});
  console.log(
    `zone-1's control plane streaming to zone-2's sidecar: ${refused ? `refused: ${refused.message}` : 'accepted'}`,
  );
  check(refused?.code === grpc.status.INVALID_ARGUMENT, "zone-2's sidecar refuses a zone-1 stream (INVALID_ARGUMENT)");

  await Promise.all([one.cp.close(), two.cp.close()]);
  // zone-1: CREATE and DELETE of each round; zone-2: the DELETE of round 1, the rule change, all of round 2.
  await report(one, 'zone-2', ['zone-1-changes'], 4);
  await report(two, 'zone-1', ['zone-2-deletes', 'zone-2-everything'], 5);

  const codes = await stopAll();
  check(
    codes.every((c) => c === 0),
    `both sidecars stopped on SIGTERM with exit code 0 (${codes.join(', ')})`,
  );
  console.log('checks:');
  for (const c of checks) console.log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.what}`);
  const failed = checks.filter((c) => !c.ok).length;
  console.log(failed === 0 ? 'demo-zones: every check holds' : `demo-zones: ${failed} check(s) failed`);
  return failed === 0 ? 0 : 1;
}

// Ctrl-C reaches the sidecars too (one process group) when typed; stopping them here covers a SIGINT sent
// to this process alone. What the interrupted steps fail with then is no news: the exit code says 130.
let interrupted = false;
process.once('SIGINT', () => {
  interrupted = true;
  console.log('demo-zones: interrupted, stopping the sidecars');
  void stopAll().finally(() => process.exit(130));
});

Promise.race([main(), died]).then(
  (code) => {
    if (!interrupted) process.exit(code);
  },
  async (err: Error) => {
    if (interrupted) return;
    console.error(`demo-zones: ${err.message}`);
    await stopAll();
    process.exit(1);
  },
);
