// A slow disk: every audit write takes 200 ms (injected at the file-system boundary of the real
// process, test/support/fs-faults.ts). A control plane offers a million events as fast as HTTP/2 lets
// it, without waiting for acks: the sidecar stops reading, flow control stops the client, and memory
// stays under the bound docs/durability.md states (16 MiB of queued records, a batch more per stream,
// the groups in the writer, on top of the ~60-100 MB the process needs anyway).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { SIDECAR_NODE_FLAGS } from '../../src/cli/node-flags';
import { contract } from '../../src/contract';
import { clients, memoryMiB, openStream, resourceEvent, tempDir } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig } from '../support/process';

/** The bound docs/durability.md states for a slow disk (the process itself needs 60-100 MB). */
const RSS_BOUND_MB = 150;

describe('faults: a slow disk', function () {
  this.timeout(60_000);

  it('stops reading while the disk falls behind: a million events offered, memory stays bounded', async () => {
    const dir = tempDir();
    const rules = path.join(dir, 'rules.yaml');
    fs.writeFileSync(rules, 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n');
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { zone: 'zone-1' }), '--rules', rules], {
      cwd: dir,
      env: { SLOW_WRITE_MS: '200' },
      nodeFlags: [...SIDECAR_NODE_FLAGS, '--require', path.resolve(__dirname, '../support/fs-faults.js')],
    });
    const c = clients(await sidecar.ready);
    const pid = sidecar.proc.pid!;
    const s = openStream(c.audit);
    try {
      s.call.write({ identifier: { zone: 'zone-1', instance: 'cp-0' } });
      await s.next();
      // Batches of 100 events, encoded once: the client's own memory stays small.
      const batch = (first: number) => ({
        firstSeq: first,
        events: Array.from({ length: 100 }, (_, i) => resourceEvent(first + i)),
      });
      contract(); // loaded before the clock, like the sidecar's
      let offered = 0;
      let peak = 0;
      const sample = setInterval(() => (peak = Math.max(peak, memoryMiB(pid, 'VmRSS'))), 50);
      const pump = (): void => {
        while (offered < 1_000_000) {
          const ok = s.call.write(batch(offered + 1));
          offered += 100;
          if (!ok) {
            s.call.once('drain', pump);
            return;
          }
        }
      };
      pump();
      // Offered for 10 s: the disk takes ~4,700 records (one 1 MiB group) per 200 ms write at most.
      await new Promise((resolve) => setTimeout(resolve, 10_000)); // a load's duration, not an ordering
      clearInterval(sample);
      peak = Math.max(peak, memoryMiB(pid, 'VmRSS'));
      // What 10 s of a disk writing a 1 MiB group per 200 ms takes, plus the 16 MiB queue and the
      // HTTP/2 windows: well under a quarter of the million (it read 800k without backpressure).
      expect(offered, 'events the client got to send').to.be.below(250_000);
      expect(peak, `peak RSS in MB with ${offered} events offered`).to.be.below(RSS_BOUND_MB);
    } finally {
      s.call.cancel();
      c.close();
      sidecar.proc.kill('SIGKILL');
      await sidecar.exited;
    }
  });
});
