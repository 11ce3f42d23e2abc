// --check-config said "configuration OK" where start-up then failed: a checkpoint whose only line is
// whole but unreadable (start-up took it for a torn line and dropped it, resuming from 0), and places
// the sidecar cannot write (a read-only file system). Against the real process: --check-config and
// start-up refuse the same things, naming the config key or the file, with the same exit code.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { SIDECAR_NODE_FLAGS } from '../../src/cli/node-flags';
import { tempDir } from '../support/helpers';
import { MAIN, writeSidecarConfig } from '../support/process';
import { canMountTmpfs } from '../support/tmpfs';

/** Runs the sidecar with `args` (after `wrap`, a command that execs the rest), to its exit. */
function run(args: string[], cwd: string, wrap: string[] = []): { code: number | null; stderr: string } {
  const command = [...wrap, process.execPath, ...SIDECAR_NODE_FLAGS, MAIN, ...args];
  const r = spawnSync(command[0], command.slice(1), { cwd, encoding: 'utf8', timeout: 15_000 });
  return { code: r.status, stderr: r.stderr };
}

describe('faults: --check-config refuses what start-up refuses', function () {
  this.timeout(30_000);

  it('refuses a checkpoint whose only line is whole but unreadable: corruption, not a torn line (exit 2)', () => {
    const dir = tempDir();
    const config = writeSidecarConfig(dir);
    fs.mkdirSync(path.join(dir, 'data'));
    const checkpoint = path.join(dir, 'data', 'checkpoint.jsonl');
    fs.writeFileSync(checkpoint, '{"s":{"zone-1/cp-0":12},"p":{}\n'); // a brace short, newline and all
    for (const extra of [['--check-config'], []]) {
      const r = run(['--config', config, ...extra], dir);
      expect(r.code, `${extra.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr).to.include(`can't start: checkpoint ${checkpoint} is corrupt at byte 0; move it away`);
    }
    expect(fs.readFileSync(checkpoint, 'utf8')).to.equal('{"s":{"zone-1/cp-0":12},"p":{}\n');
  });

  it('refuses a data directory and audit folder on a read-only file system, naming the keys (exit 1)', function () {
    if (!canMountTmpfs()) {
      console.log('    (skipped: mounting a read-only tmpfs needs root with unshare)');
      this.skip();
    }
    const dir = tempDir();
    const ro = path.join(dir, 'ro');
    fs.mkdirSync(ro);
    const config = writeSidecarConfig(dir);
    const text = fs.readFileSync(config, 'utf8');
    fs.writeFileSync(config, text.replaceAll(`${dir}/data`, `${ro}/data`).replaceAll(`${dir}/audit/`, `${ro}/audit/`));
    const readOnly = ['unshare', '-m', 'sh', '-c', `mount -t tmpfs -o ro tmpfs '${ro}' && exec "$@"`, 'sh'];
    const check = run(['--config', config, '--check-config'], dir, readOnly);
    expect(check.code, check.stderr).to.equal(1);
    expect(check.stderr).to.include(
      `meshaudit.dataDir: can't create or write ${ro}/data: ${ro} is on a read-only file system`,
    );
    expect(check.stderr).to.include(
      `kmesh.access.audit.backends[0].file.path: can't create or write ${ro}/audit: ${ro} is on a read-only file system`,
    );
    const start = run(['--config', config], dir, readOnly);
    expect(start.code, start.stderr).to.equal(1);
    expect(start.stderr).to.include(
      `can't start: can't create ${ro}/data (meshaudit.dataDir): ${ro} is on a read-only file system`,
    );
  });
});
