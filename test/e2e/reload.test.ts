// Reloading the config while running (docs/reload.md), against the real built process: SIGHUP, the
// file replaced by rename, a ConfigMap-style `..data` swap; live keys take effect, restart keys are
// logged and kept, an invalid file changes nothing.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { timeFromName } from '../../src/backends/file';
import * as grpc from '@grpc/grpc-js';
import { logLines, MAIN, type SpawnedSidecar, spawnSidecar, writeSidecarConfig } from '../support/process';
import type { SidecarConfigOptions } from '../support/process';
import { bearer, clients, openStream, refusal, resourceEvent, samples, tempDir, unary } from '../support/helpers';

const RULES_ALL = 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n';
const RELOADED = 'config reloaded';
const REFUSED = 'config reload refused; the config and rules in force stay';
const RESTART_WARNING = 'config reload: these keys changed and need a restart; their old values stay in force';

/** The text of a sidecar config for `dir`: writeSidecarConfig's, with `own` lines added under `meshaudit:`. */
function configText(dir: string, opts: SidecarConfigOptions, own: readonly string[] = []): string {
  const scratch = path.join(dir, 'scratch');
  fs.mkdirSync(scratch, { recursive: true });
  const text = fs.readFileSync(writeSidecarConfig(scratch, opts), 'utf8').replaceAll(scratch, dir);
  return text.replace('meshaudit:\n', `meshaudit:\n${own.map((l) => `  ${l}\n`).join('')}`);
}

/** Replaces `file` by rename, as an editor or a config tool does: the old inode never holds the new text. */
function replaceByRename(file: string, text: string): void {
  const next = `${file}.next`;
  fs.writeFileSync(next, text);
  fs.renameSync(next, file);
}

/** The log lines of `s` with message `msg`. */
function lines(s: SpawnedSidecar, msg: string): Array<Record<string, unknown>> {
  return logLines(s.stderr()).filter((l) => l.msg === msg);
}

/** Polls the sidecar's log (every 20 ms, 10 s at most) until it holds `n` reloads, applied or refused. */
async function reloads(s: SpawnedSidecar, n: number): Promise<Array<Record<string, unknown>>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const done = logLines(s.stderr()).filter((l) => l.msg === RELOADED || l.msg === REFUSED);
    if (done.length >= n) return done;
    if (Date.now() > deadline) throw new Error(`timed out waiting for reload ${n}:\n${s.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * A config path for the SIGHUP tests: a symlink in `dir` (the folder the sidecar watches) to a file in a
 * folder it does not watch, so that writing the file reloads on the signal alone. Otherwise a loaded
 * machine can let the watcher's reload run before the signal's, and the test would see two.
 */
function signalledConfig(dir: string): string {
  fs.mkdirSync(path.join(dir, 'etc'));
  const config = path.join(dir, 'meshaudit.yaml');
  fs.symlinkSync(path.join('etc', 'meshaudit.yaml'), config);
  return config;
}

/** Sends SIGHUP and waits for the `n`th reload's line; returns that line. */
async function hup(s: SpawnedSidecar, n: number): Promise<Record<string, unknown>> {
  s.proc.kill('SIGHUP');
  return (await reloads(s, n))[n - 1]!;
}

/** Rotated files beside `<dir>/audit/audit.log` (not the integrity trail's documents). */
function rotated(dir: string): string[] {
  return fs.readdirSync(path.join(dir, 'audit')).filter((f) => timeFromName('audit.log', f) !== undefined);
}

describe('config reload (real process)', function () {
  this.timeout(30_000);
  let running: SpawnedSidecar[] = [];
  let closers: Array<() => void> = [];

  /** Starts the sidecar on `config` (with every action audited) and connects clients. */
  async function start(dir: string, config: string, extra: string[] = []) {
    const rules = path.join(dir, 'rules.yaml');
    fs.writeFileSync(rules, RULES_ALL);
    const s = spawnSidecar(['--config', config, '--rules', rules, ...extra]);
    running.push(s);
    const c = clients(await s.ready);
    closers.push(() => c.close());
    return { s, c };
  }

  afterEach(async () => {
    for (const close of closers) close();
    for (const s of running) s.proc.kill('SIGTERM');
    await Promise.all(running.map((s) => s.exited));
    running = [];
    closers = [];
  });

  it('turns debug lines on and off on SIGHUP with a new meshaudit.log.level', async () => {
    const dir = tempDir();
    const config = signalledConfig(dir);
    fs.writeFileSync(config, configText(dir, {}));
    const { s } = await start(dir, config);
    // Each reload's first line is a debug line, written under the level in force when the reload starts.
    const started = (): number => lines(s, 'config reload started').length;
    fs.writeFileSync(config, configText(dir, {}, ['log: {level: debug}']));
    expect((await hup(s, 1)).changed).to.deep.equal(['meshaudit.log.level']);
    expect(started()).to.equal(0);
    await hup(s, 2);
    expect(lines(s, 'config reload started').map((l) => l.level)).to.deep.equal(['debug']);
    fs.writeFileSync(config, configText(dir, {}, ['log: {level: info}']));
    expect((await hup(s, 3)).changed).to.deep.equal(['meshaudit.log.level']);
    expect(started()).to.equal(2);
    await hup(s, 4);
    expect(started()).to.equal(2);
  });

  it('rotates at a smaller maxSizeMb from the next write, and deletes rotated files at once under a smaller maxRetainedFiles', async () => {
    const dir = tempDir();
    const config = signalledConfig(dir);
    const rotation = (maxSizeMb: number, maxRetainedFiles: number): string =>
      configText(dir, { backends: [{ folder: 'audit', rotation: { maxSizeMb, maxRetainedFiles } }] });
    fs.writeFileSync(config, rotation(1, 0));
    const { s, c } = await start(dir, config);
    let seq = 0;
    const record = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) await unary(c.audit, 'Record', { event: resourceEvent(++seq) });
    };
    await record(10);
    expect(rotated(dir)).to.deep.equal([]);
    // 0.001 MiB: 1048 bytes, about five records.
    fs.writeFileSync(config, rotation(0.001, 0));
    expect((await hup(s, 1)).changed).to.deep.equal(['kmesh.access.audit.backends[].file.rotation']);
    await record(20);
    // The first rotated file is the one written under 1 MiB (it rotates at the first write after the
    // reload); every later one holds at most 1048 bytes and the record that reached it.
    const [, ...after] = rotated(dir).sort();
    expect(after.length).to.be.at.least(3);
    for (const f of after) expect(fs.statSync(path.join(dir, 'audit', f)).size).to.be.at.most(1048 + 300);
    fs.writeFileSync(config, rotation(0.001, 1));
    await hup(s, 2);
    // The reload's line comes once retention is done: no write needed.
    expect(rotated(dir)).to.have.length(1);
  });

  it('refuses a batch over a lowered meshaudit.limits.eventsPerBatch', async () => {
    const dir = tempDir();
    const config = signalledConfig(dir);
    fs.writeFileSync(config, configText(dir, {}));
    const { s, c } = await start(dir, config);
    const id = { zone: 'default', instance: 'cp-1' };
    const before = openStream(c.audit);
    before.call.write({ identifier: id });
    await before.next();
    before.call.write({ firstSeq: 1, events: [resourceEvent(1), resourceEvent(2), resourceEvent(3)] });
    expect((await before.next()).ackedSeq).to.equal(3);
    before.call.end();
    await before.status;
    fs.writeFileSync(config, configText(dir, { limits: { eventsPerBatch: 2 } }));
    expect((await hup(s, 1)).changed).to.deep.equal(['meshaudit.limits.eventsPerBatch']);
    const after = openStream(c.audit);
    after.call.write({ identifier: id });
    await after.next();
    after.call.write({ firstSeq: 4, events: [resourceEvent(4), resourceEvent(5), resourceEvent(6)] });
    const status = await after.status;
    expect(status?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(status?.details).to.contain('(meshaudit.limits.eventsPerBatch)');
  });

  describe('callers', () => {
    /** A token of `groups` added to `file` by `meshaudit token add`. */
    function addToken(file: string, name: string, groups: string): string {
      const made = spawnSync(process.execPath, [MAIN, 'token', 'add', name, '--groups', groups, '--file', file], {
        encoding: 'utf8',
      });
      expect(made.status, made.stderr).to.equal(0);
      return made.stdout.trim();
    }

    it('accepts a token of a tokensFile the reload names', async () => {
      const dir = tempDir();
      const config = signalledConfig(dir);
      fs.writeFileSync(config, configText(dir, {}));
      const { s, c } = await start(dir, config);
      const tokensFile = path.join(dir, 'tokens.yaml');
      const token = addToken(tokensFile, 'cp', 'mesh-system:control-plane');
      const call = (): Promise<unknown> => unary(c.audit, 'Record', { event: resourceEvent(1) }, bearer(token));
      expect((await refusal(call())).code).to.equal(grpc.status.UNAUTHENTICATED);
      fs.writeFileSync(config, configText(dir, {}, [`auth: {tokensFile: ${tokensFile}}`]));
      expect((await hup(s, 1)).changed).to.deep.equal(['meshaudit.auth.tokensFile']);
      expect(await call()).to.deep.equal({ audited: true });
    });

    it('applies changed permissions to the next call', async () => {
      const dir = tempDir();
      const tokensFile = path.join(dir, 'tokens.yaml');
      const token = addToken(tokensFile, 'shipper', 'log-shippers');
      const config = signalledConfig(dir);
      fs.writeFileSync(config, configText(dir, {}, [`auth: {tokensFile: ${tokensFile}}`]));
      const { s, c } = await start(dir, config);
      const list = (): Promise<unknown> => unary(c.rules, 'ListAccessAudits', {}, bearer(token));
      expect((await refusal(list())).code).to.equal(grpc.status.PERMISSION_DENIED);
      fs.writeFileSync(
        config,
        configText(dir, {}, [`auth: {tokensFile: ${tokensFile}, permissions: {read: [log-shippers]}}`]),
      );
      expect((await hup(s, 1)).changed).to.deep.equal(['meshaudit.auth.permissions']);
      expect(await list())
        .to.have.property('accessAudits')
        .with.length(1);
    });
  });

  describe('without a signal', () => {
    it('reloads a config file replaced by rename, and not one whose bytes did not change', async () => {
      const dir = tempDir();
      const config = path.join(dir, 'meshaudit.yaml');
      const text = configText(dir, {}, ['log: {level: debug}']);
      fs.writeFileSync(config, text);
      const { s } = await start(dir, config);
      // The same bytes, by rename and in place, and a touch: looked at (a debug line), nothing to reload.
      replaceByRename(config, text);
      fs.writeFileSync(config, text);
      fs.utimesSync(config, new Date(), new Date());
      const same = 'config folder changed; the files are the same: nothing to reload';
      const deadline = Date.now() + 10_000;
      while (lines(s, same).length === 0) {
        if (Date.now() > deadline) throw new Error(`no "${same}" line:\n${s.stderr()}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      replaceByRename(config, configText(dir, {}, ['log: {level: info}']));
      const done = await reloads(s, 1);
      expect(done).to.have.length(1);
      expect(done[0]).to.include({ msg: RELOADED, why: 'the config or rules files changed' });
      expect(done[0]!.changed).to.deep.equal(['meshaudit.log.level']);
      expect(lines(s, 'config reload started')).to.have.length(1);
    });

    it('reloads when a rules file changes, with the config file as it was', async () => {
      const dir = tempDir();
      const config = path.join(dir, 'meshaudit.yaml');
      fs.writeFileSync(config, configText(dir, {}));
      const { s, c } = await start(dir, config);
      const rules = path.join(dir, 'rules.yaml');
      replaceByRename(rules, 'type: AccessAudit\nname: tokens\nrules:\n- access: ["GENERATE_USER_TOKEN"]\n');
      const [line] = await reloads(s, 1);
      expect(line).to.include({ msg: RELOADED, why: 'the config or rules files changed' });
      expect(line!.changed).to.deep.equal([]);
      expect(line!.rules).to.deep.include({ created: ['tokens'], deleted: ['all'] });
      expect(await unary(c.audit, 'Record', { event: resourceEvent(1) })).to.deep.equal({ audited: false });
    });

    it('reloads when a ConfigMap-style ..data symlink is swapped to a new folder', async () => {
      const dir = tempDir();
      const mount = path.join(dir, 'config');
      fs.mkdirSync(mount);
      // As the kubelet lays out a mounted ConfigMap: the file is a link through ..data to a timestamped folder.
      const version = (name: string, text: string): void => {
        fs.mkdirSync(path.join(mount, name));
        fs.writeFileSync(path.join(mount, name, 'meshaudit.yaml'), text);
      };
      version('..2026_12_07_01', configText(dir, {}));
      fs.symlinkSync('..2026_12_07_01', path.join(mount, '..data'));
      fs.symlinkSync('..data/meshaudit.yaml', path.join(mount, 'meshaudit.yaml'));
      const { s, c } = await start(dir, path.join(mount, 'meshaudit.yaml'));
      version('..2026_12_07_02', configText(dir, { limits: { eventsPerBatch: 1 } }));
      fs.symlinkSync('..2026_12_07_02', path.join(mount, '..data_tmp'));
      fs.renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data'));
      fs.rmSync(path.join(mount, '..2026_12_07_01'), { recursive: true });
      const [line] = await reloads(s, 1);
      expect(line).to.include({ msg: RELOADED, why: 'the config or rules files changed' });
      expect(line!.changed).to.deep.equal(['meshaudit.limits.eventsPerBatch']);
      const stream = openStream(c.audit);
      stream.call.write({ identifier: { zone: 'default', instance: 'cp-1' } });
      await stream.next();
      stream.call.write({ firstSeq: 1, events: [resourceEvent(1), resourceEvent(2)] });
      expect((await stream.status)?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    });
  });

  it('refuses an invalid config naming the key, and keeps the whole config in force', async () => {
    const dir = tempDir();
    const config = signalledConfig(dir);
    fs.writeFileSync(config, configText(dir, { limits: { eventsPerBatch: 2 } }));
    const { s, c } = await start(dir, config);
    // A valid key (the log level) beside an invalid one: neither is applied.
    fs.writeFileSync(config, configText(dir, { limits: { eventsPerBatch: 0 } }, ['log: {level: debug}']));
    const line = await hup(s, 1);
    expect(line.msg).to.equal(REFUSED);
    expect(line.err).to.match(/meshaudit\.yaml:\d+: meshaudit\.limits\.eventsPerBatch: must be/);
    // Still 2 events a batch: 2 are taken, 3 are refused; and no debug line was ever written.
    const id = { zone: 'default', instance: 'cp-1' };
    const ok = openStream(c.audit);
    ok.call.write({ identifier: id });
    await ok.next();
    ok.call.write({ firstSeq: 1, events: [resourceEvent(1), resourceEvent(2)] });
    expect((await ok.next()).ackedSeq).to.equal(2);
    ok.call.write({ firstSeq: 3, events: [resourceEvent(3), resourceEvent(4), resourceEvent(5)] });
    expect((await ok.status)?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    await hup(s, 2);
    expect(logLines(s.stderr()).filter((l) => l.level === 'debug')).to.deep.equal([]);
    const m = samples(await (await fetch(`http://127.0.0.1:${await s.adminPort}/stats/prometheus`)).text());
    expect(m.get('meshaudit_config_reloads_total{result="refused"}')).to.be.at.least(2);
    expect(m.get('meshaudit_config_reloads_total{result="applied"}')).to.equal(0);
  });

  it('logs a key that needs a restart and keeps its old value, while applying the live ones', async () => {
    const dir = tempDir();
    const config = signalledConfig(dir);
    fs.writeFileSync(config, configText(dir, { zone: 'zone-a' }));
    const { s, c } = await start(dir, config);
    fs.writeFileSync(config, configText(dir, { zone: 'zone-b', limits: { eventsPerBatch: 7 } }));
    const line = await hup(s, 1);
    expect(line).to.include({ msg: RELOADED });
    expect(line.restartNeeded).to.deep.equal(['meshaudit.zone']);
    expect(line.changed).to.deep.equal(['meshaudit.limits.eventsPerBatch']);
    expect(lines(s, RESTART_WARNING).map((l) => l.keys)).to.deep.equal([['meshaudit.zone']]);
    // The pid SIGHUP goes to is the one the start line names.
    expect(lines(s, 'meshaudit started')[0].pid).to.equal(s.proc.pid);
    // Another reload with the same key pending says so in its line, not in a second warning.
    fs.writeFileSync(config, configText(dir, { zone: 'zone-b', limits: { eventsPerBatch: 8 } }));
    expect((await hup(s, 2)).restartNeeded).to.deep.equal(['meshaudit.zone']);
    expect(lines(s, RESTART_WARNING)).to.have.length(1);
    const m = samples(await (await fetch(`http://127.0.0.1:${await s.adminPort}/stats/prometheus`)).text());
    expect(m.get('meshaudit_config_reloads_total{result="applied"}')).to.be.at.least(1);
    expect(m.get('meshaudit_config_reloads_total{result="refused"}')).to.equal(0);
    // The zone in force is still zone-a: its streams are taken, zone-b's refused.
    const a = openStream(c.audit);
    a.call.write({ identifier: { zone: 'zone-a', instance: 'cp-1' } });
    expect((await a.next()).ackedSeq).to.equal(0);
    a.call.end();
    await a.status;
    const b = openStream(c.audit);
    b.call.write({ identifier: { zone: 'zone-b', instance: 'cp-1' } });
    expect((await b.status)?.code).to.not.equal(grpc.status.OK);
  });
});
