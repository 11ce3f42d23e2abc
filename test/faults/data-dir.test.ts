// A data directory removed under a running sidecar went unnoticed: commits went on into a deleted
// checkpoint, a restart would have resumed from 0 (the CP resending everything: duplicates), and a
// second sidecar could start on the directory. Against the real process: the next commit notices,
// writes the whole checkpoint again from memory and takes the lock back; where another sidecar holds
// it by then, the sidecar stops at once (exit 1), writing nothing more beside it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { Checkpoint } from '../../src/store/checkpoint';
import { clients, openStream, resourceEvent, tempDir, waitFor } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig } from '../support/process';

const RULES = 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n';
const ID = { zone: 'zone-1', instance: 'cp-0' };

function start(dir: string, config = writeSidecarConfig(dir, { zone: 'zone-1' })): ReturnType<typeof spawnSidecar> {
  const rules = path.join(dir, 'rules.yaml');
  if (!fs.existsSync(rules)) fs.writeFileSync(rules, RULES);
  return spawnSidecar(['--config', config, '--rules', rules], { cwd: dir });
}

/** A stream that sends batch after batch of 10, each once the last is acknowledged, while `going()`. */
async function streamer(port: number) {
  const c = clients(port);
  const s = openStream(c.audit);
  s.call.write({ identifier: ID });
  const resumeFrom = (await s.next()).ackedSeq as number;
  let acked = resumeFrom;
  const send = (first: number): void => {
    s.call.write({ firstSeq: first, events: Array.from({ length: 10 }, (_, i) => resourceEvent(first + i)) });
  };
  s.call.on('data', (ack: { ackedSeq: number }) => (acked = ack.ackedSeq));
  return {
    resumeFrom,
    acked: () => acked,
    /** Sends the next batch and waits for its ack (up to `ms`); false when none came. */
    async batch(ms = 10_000): Promise<boolean> {
      const want = acked + 10;
      send(acked + 1);
      try {
        await waitFor(() => acked >= want, `the ack of events ${want - 9}..${want}`, ms);
        return true;
      } catch {
        return false;
      }
    },
    close(): void {
      s.call.end();
      c.close();
    },
  };
}

describe('faults: the data directory removed under a running sidecar', function () {
  this.timeout(60_000);

  it('writes the checkpoint again from memory and takes the lock back, so a restart resumes where it was', async () => {
    const dir = tempDir();
    const data = path.join(dir, 'data');
    const sidecar = start(dir);
    const port = await sidecar.ready;
    const cp = await streamer(port);
    try {
      for (let i = 0; i < 5; i++) expect(await cp.batch()).to.equal(true);
      fs.rmSync(data, { recursive: true });
      for (let i = 0; i < 5; i++) expect(await cp.batch()).to.equal(true);
      expect(cp.acked()).to.equal(100);
      // The acks and the log line travel by different pipes.
      await waitFor(() => sidecar.stderr().includes('the data directory lost its checkpoint while running'), 'the log');
      // The directory holds the whole state again: the checkpoint, the lock, the AccessAudits.
      expect(new Checkpoint(data).load().state.seqs.get('zone-1/cp-0')).to.equal(100);
      expect(fs.readdirSync(data).filter((f) => f.startsWith('meshaudit.lock.'))).to.have.length(1);
      expect(JSON.parse(fs.readFileSync(path.join(data, 'access-audits.json'), 'utf8'))).to.not.deep.equal({});
      // A second sidecar on the same directory is refused again.
      const second = start(dir, writeSidecarConfig(dir, { zone: 'zone-1' }));
      expect(await second.exited).to.equal(1);
      expect(second.stderr()).to.include('is in use by another meshaudit');
    } finally {
      cp.close();
      sidecar.proc.kill('SIGTERM');
      await sidecar.exited;
    }
    const restarted = start(dir);
    const again = await streamer(await restarted.ready);
    try {
      expect(again.resumeFrom).to.equal(100);
    } finally {
      again.close();
      restarted.proc.kill('SIGTERM');
      await restarted.exited;
    }
  });

  it('stops at once, acknowledging nothing more, once another sidecar took the directory', async () => {
    const dir = tempDir();
    const sidecar = start(dir);
    const port = await sidecar.ready;
    const cp = await streamer(port);
    // The intruder: the same data directory, its own audit folder.
    const other = path.join(dir, 'other');
    fs.mkdirSync(other);
    const intruderConfig = writeSidecarConfig(other, { zone: 'zone-1' });
    const text = fs.readFileSync(intruderConfig, 'utf8');
    fs.writeFileSync(intruderConfig, text.replace(`dataDir: ${other}/data`, `dataDir: ${dir}/data`));
    let intruder: ReturnType<typeof start> | undefined;
    try {
      expect(await cp.batch()).to.equal(true);
      fs.rmSync(path.join(dir, 'data'), { recursive: true });
      intruder = start(other, intruderConfig);
      await intruder.ready;
      // The next commit finds the checkpoint gone and the directory held: fail-stop, exit 1.
      expect(await cp.batch(3000)).to.equal(false);
      expect(await sidecar.exited).to.equal(1);
      expect(cp.acked()).to.equal(10);
      expect(sidecar.stderr()).to.include('another meshaudit took the data directory over: stopping at once');
    } finally {
      cp.close();
      intruder?.proc.kill('SIGTERM');
      sidecar.proc.kill('SIGKILL');
      await Promise.all([sidecar.exited, intruder?.exited]);
    }
  });
});
