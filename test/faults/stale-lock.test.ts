// Two sidecars started together on a data directory whose lock a crash left behind both started (1 in
// about 130 rounds) and lost acknowledged records: both saw the stale lock, one removed it and took
// the directory, the other removed the fresh lock and took it too. Real processes race here on the
// real module (many at once, many rounds), then real sidecars.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { expect } from 'chai';
import { LOCK_FILE } from '../../src/store/data-dir-lock';
import { deadPid, tempDir } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig } from '../support/process';

const LOCK_MODULE = path.resolve(__dirname, '../../src/store/data-dir-lock.js');

/**
 * A process that loads the lock module, says "ready", waits for "go" on stdin, tries the lock and
 * says "held" or "refused", then keeps whatever it took until its stdin closes.
 */
const RACER = `
const { DataDirLock } = require(${JSON.stringify(LOCK_MODULE)});
const rl = require('node:readline').createInterface({ input: process.stdin });
process.stdout.write('ready\\n');
rl.once('line', () => {
  DataDirLock.take(process.argv[1]).then(
    () => process.stdout.write('held\\n'),
    (e) => process.stdout.write('refused ' + e.message + '\\n'),
  );
});
rl.on('close', () => process.exit(0));
`;

interface Racer {
  answer: Promise<string>;
  go(): void;
  done(): Promise<void>;
}

/**
 * Each racer in a network namespace of its own where the machine allows it (root with unshare): there
 * the directory's kernel lock (one per network namespace) cannot decide, and the file lock's atomic
 * takeover alone must, as between pods on a shared volume.
 */
const OWN_NETWORK = spawnSync('unshare', ['--net', 'true']).status === 0 ? ['unshare', '--net'] : [];

function racer(dataDir: string, wrap: readonly string[]): Promise<Racer> {
  const command = [...wrap, process.execPath, '-e', RACER, dataDir];
  const proc = spawn(command[0], command.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: proc.stdout! });
  const said: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => (waiting.length > 0 ? waiting.shift()!(line) : said.push(line)));
  const next = (): Promise<string> =>
    said.length > 0 ? Promise.resolve(said.shift()!) : new Promise((resolve) => waiting.push(resolve));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  return next().then((ready) => {
    expect(ready).to.equal('ready');
    return {
      answer: next(),
      go: () => proc.stdin!.write('go\n'),
      done: () => {
        proc.stdin!.end();
        return exited;
      },
    };
  });
}

describe('faults: a stale data directory lock taken over by several at once', function () {
  this.timeout(120_000);

  for (const [where, wrap] of [
    ['in one network namespace (the kernel lock decides)', []],
    ['each in its own network namespace (the file lock decides)', OWN_NETWORK],
  ] as const)
    it(`lets exactly one of many processes racing for it take it, round after round, ${where}`, async function () {
      if (where.startsWith('each') && wrap.length === 0) {
        console.log('    (skipped: a network namespace of its own needs root and unshare)');
        this.skip();
      }
      const rounds = 12;
      const perRound = 6;
      for (let round = 0; round < rounds; round++) {
        const dir = tempDir();
        fs.writeFileSync(path.join(dir, LOCK_FILE), `${deadPid()} ${os.hostname()}\n`);
        const racers = await Promise.all(Array.from({ length: perRound }, () => racer(dir, wrap)));
        for (const r of racers) r.go();
        const answers = await Promise.all(racers.map((r) => r.answer));
        await Promise.all(racers.map((r) => r.done()));
        const held = answers.filter((a) => a === 'held').length;
        expect(held, `round ${round}: ${answers.join(' | ')}`).to.equal(1);
        for (const a of answers.filter((a) => a !== 'held'))
          expect(a).to.match(/^refused .*is in use by another meshaudit/);
      }
    });

  it('starts exactly one of two sidecars started together on it; the other names the holder', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = tempDir();
      const config = writeSidecarConfig(dir);
      fs.mkdirSync(path.join(dir, 'data'));
      fs.writeFileSync(path.join(dir, 'data', LOCK_FILE), `${deadPid()} ${os.hostname()}\n`);
      const both = [spawnSidecar(['--config', config], { cwd: dir }), spawnSidecar(['--config', config], { cwd: dir })];
      const outcomes = await Promise.all(
        both.map((s) =>
          s.ready.then(
            () => 'started',
            () => s.stderr(),
          ),
        ),
      );
      try {
        expect(
          outcomes.filter((o) => o === 'started'),
          outcomes.join('\n'),
        ).to.have.length(1);
        expect(outcomes.find((o) => o !== 'started')).to.include('is in use by another meshaudit');
      } finally {
        for (const s of both) s.proc.kill('SIGTERM');
        await Promise.all(both.map((s) => s.exited));
      }
    }
  });

  // A sidecar container restarted in its pod: a new pid namespace, the same network namespace. The
  // pid in the lock means nothing there; the directory's kernel lock, which died with the old process,
  // tells at once (it used to wait 30 s for a heartbeat).
  it('takes the lock of a killed sidecar of another pid namespace at once, and refuses a second while one runs', async function () {
    if (spawnSync('unshare', ['--pid', '--fork', '--kill-child', 'true']).status !== 0) {
      console.log('    (skipped: starting a process in its own pid namespace needs root and unshare)');
      this.skip();
    }
    const ownPidNamespace = ['unshare', '--pid', '--fork', '--kill-child'];
    const dir = tempDir();
    const config = writeSidecarConfig(dir);
    const first = spawnSidecar(['--config', config], { cwd: dir, wrap: ownPidNamespace });
    await first.ready;
    const second = spawnSidecar(['--config', config], { cwd: dir, wrap: ownPidNamespace });
    const started = Date.now();
    expect(await second.exited).to.equal(1);
    expect(second.stderr()).to.include('is in use by another meshaudit');
    expect(Date.now() - started, 'refused without watching a heartbeat').to.be.below(10_000);
    first.proc.kill('SIGKILL');
    await first.exited;
    // unshare ignores SIGTERM: it is killed, and passes a SIGTERM on to the sidecar as it dies.
    const third = spawnSidecar(['--config', config], {
      cwd: dir,
      wrap: [...ownPidNamespace.slice(0, 3), '--kill-child=SIGTERM'],
    });
    try {
      await third.ready;
      expect(third.stderr()).to.not.include('waiting');
    } finally {
      third.proc.kill('SIGKILL');
      await third.exited;
    }
  });
});
