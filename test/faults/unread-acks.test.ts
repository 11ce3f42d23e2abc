// A control plane that sends and never reads its acks made the sidecar hold every ack in memory (1M
// events: 77 -> 289 MB, still held after it left). Against the real process and a raw HTTP/2 client
// that never reads: the sidecar stops reading the stream once its acks stop flowing.
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as path from 'node:path';
import { expect } from 'chai';
import { contract } from '../../src/contract';
import { grpcFrame, memoryMiB, resourceEvent, tempDir } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig } from '../support/process';

/** Newlines in every file of the audit directory: records written, whatever rotated, even mid-write. */
function completeLines(auditDir: string): number {
  if (!fs.existsSync(auditDir)) return 0;
  let count = 0;
  for (const name of fs.readdirSync(auditDir)) {
    const bytes = fs.readFileSync(path.join(auditDir, name));
    for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) count++;
  }
  return count;
}

describe('faults: a control plane that never reads its acks', function () {
  this.timeout(60_000);

  it('stops reading its stream while the acks do not flow, so memory stays bounded', async () => {
    const dir = tempDir();
    const rules = path.join(dir, 'rules.yaml');
    fs.writeFileSync(rules, 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n');
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir, { zone: 'zone-1' }), '--rules', rules], {
      cwd: dir,
    });
    const port = await sidecar.ready;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const req = session.request({
        ':method': 'POST',
        ':path': '/meshaudit.v1.AuditService/StreamEvents',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      req.pause(); // never read: the acks fill the stream's window, then grpc-js's buffers
      const encode = (m: object): Buffer => grpcFrame(contract().messages.StreamEventsRequest.encode(m).finish());
      req.write(encode({ identifier: { zone: 'zone-1', instance: 'cp-0' } }));
      // 50,000 batches of one event each: one ack per event, as many acks as a CP can make us owe.
      const sent = 50_000;
      for (let seq = 1; seq <= sent; seq++) req.write(encode({ firstSeq: seq, events: [resourceEvent(seq)] }));
      // What the sidecar wrote stops growing once it stops reading: wait until it has not changed for
      // a second (it grows by thousands a second while the stream is read).
      const lines = (): number => completeLines(path.join(dir, 'audit'));
      let last = -1;
      let since = Date.now();
      const deadline = Date.now() + 40_000;
      while (Date.now() - since < 1000 && Date.now() < deadline) {
        const now = lines();
        if (now !== last) {
          last = now;
          since = Date.now();
        }
        await new Promise((resolve) => setTimeout(resolve, 50)); // a polling interval, not an ordering
      }
      expect(last, 'events written once the acks stopped flowing')
        .to.be.greaterThan(0)
        .and.below(sent / 2);
      expect(memoryMiB(sidecar.proc.pid!, 'VmRSS')).to.be.below(150);
      req.close(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.destroy();
      sidecar.proc.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
