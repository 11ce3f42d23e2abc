// Rules files were read without a bound: `--rules /dev/zero` grew to gigabytes, a FIFO with no writer
// hung start-up, a huge file on SIGHUP blocked the event loop. Against the real process.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { clients, tempDir, unary } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig } from '../support/process';

const RULES = 'type: AccessAudit\nname: audit-everything\nrules:\n- accessAll: true\n';

describe('faults: rules files that never end, never open, or are huge', function () {
  this.timeout(30_000);

  /** Starts the sidecar with `rules` and expects it to stop with exit 2, naming the file; returns stderr. */
  async function refused(rules: string): Promise<string> {
    const dir = tempDir();
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir), '--rules', rules], { cwd: dir });
    expect(await sidecar.exited).to.equal(2);
    return sidecar.stderr();
  }

  it('refuses /dev/zero at once: a device, not a regular file', async () => {
    expect(await refused('/dev/zero')).to.include(
      'invalid AccessAudit rules, nothing was started:\n/dev/zero: not a regular file (a FIFO, a device or a directory)',
    );
  });

  it('refuses a FIFO with no writer instead of waiting for one', async () => {
    const fifo = path.join(tempDir(), 'rules.fifo');
    execFileSync('mkfifo', [fifo]);
    expect(await refused(fifo)).to.include(`${fifo}: not a regular file (a FIFO, a device or a directory)`);
  });

  it('refuses a file past meshaudit.limits.rulesFileBytes without reading it all', async () => {
    const big = path.join(tempDir(), 'big.yaml');
    fs.writeFileSync(big, `${RULES}# ${'x'.repeat(2 * 1024 * 1024)}\n`);
    expect(await refused(big)).to.include(`${big}: too large: more than 1048576 bytes`);
  });

  it('keeps the rules in force when a SIGHUP finds the file grown past the limit', async () => {
    const dir = tempDir();
    const rules = path.join(dir, 'rules.yaml');
    fs.writeFileSync(rules, RULES);
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir), '--rules', rules], { cwd: dir });
    const c = clients(await sidecar.ready);
    try {
      fs.writeFileSync(rules, `${RULES}# ${'x'.repeat(4 * 1024 * 1024)}\n`);
      const refusedReload = new Promise<void>((resolve) => {
        const check = (): void => {
          if (sidecar.stderr().includes('rules reload failed')) resolve();
          else setImmediate(check);
        };
        check();
      });
      sidecar.proc.kill('SIGHUP');
      await refusedReload;
      expect(sidecar.stderr()).to.include('too large: more than 1048576 bytes');
      const { accessAudits } = await unary<{ accessAudits: Array<{ name: string }> }>(c.rules, 'ListAccessAudits', {});
      expect(accessAudits.map((a) => a.name)).to.deep.equal(['audit-everything']);
    } finally {
      c.close();
      sidecar.proc.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
