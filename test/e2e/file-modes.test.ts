// The modes of everything the sidecar creates, whatever the umask (meshaudit.files): run under umask
// 0000, where they used to come out 0644 and 0755, readable by every user of the host.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { clients, openStream, resourceEvent, tempDir } from '../support/helpers';
import { spawnSidecar } from '../support/process';

/** Every file and folder under `root`, with its mode (permission bits). */
function modesUnder(root: string): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      out.set(path.relative(root, file), fs.statSync(file).mode & 0o777);
      if (entry.isDirectory()) walk(file);
    }
  };
  walk(root);
  return out;
}

describe('file modes (real process, umask 0000)', function () {
  this.timeout(30_000);

  for (const [what, files, fileMode, dirMode] of [
    ['the defaults', '', 0o640, 0o750],
    ['meshaudit.files', '  files: {fileMode: "0600", dirMode: "0700"}\n', 0o600, 0o700],
  ] as const) {
    it(`creates files and folders with ${what}, rotated files included`, async () => {
      const dir = tempDir();
      const root = path.join(dir, 'state');
      const config = path.join(dir, 'meshaudit.yaml');
      fs.writeFileSync(
        config,
        `meshaudit:\n  zone: zone-1\n  dataDir: ${root}/data\n  grpc: {address: "127.0.0.1:0"}\n  admin: {address: "127.0.0.1:0"}\n${files}` +
          'kmesh:\n  access:\n    audit:\n      backends:\n      - type: file\n        file:\n' +
          `          path: ${root}/audit/zone-1/audit.log\n          rotation: {maxSizeMb: 0.002, maxRetainedFiles: 0}\n`,
      );
      const rules = path.join(dir, 'rules.yaml');
      fs.writeFileSync(rules, 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n');
      const sidecar = spawnSidecar(['--config', config, '--rules', rules], {
        wrap: ['sh', '-c', 'umask 0000; exec "$@"', 'sh'],
      });
      const c = clients(await sidecar.ready);
      try {
        const s = openStream(c.audit);
        s.call.write({ identifier: { zone: 'zone-1', instance: 'cp-0' } });
        await s.next();
        s.call.write({ firstSeq: 1, events: Array.from({ length: 40 }, (_, i) => resourceEvent(i + 1)) });
        expect((await s.next()).ackedSeq).to.equal(40);
        s.call.end();
      } finally {
        c.close();
        sidecar.proc.kill('SIGTERM');
        expect(await sidecar.exited).to.equal(0);
      }
      // The lock is gone after a clean stop: the next test looks at it while the sidecar runs.
      const modes = modesUnder(root);
      const rotated = [...modes.keys()].filter((f) => /audit-\d{4}-/.test(f));
      expect(rotated.length, 'rotated files').to.be.greaterThan(0);
      for (const [file, mode] of modes) {
        const dirEntry = fs.statSync(path.join(root, file)).isDirectory();
        // The generated signing key is its owner's alone, and its public key is for anyone (src/integrity/keys.ts).
        const expected = file.endsWith('.key')
          ? 0o600
          : file.endsWith('.pub')
            ? 0o644
            : file === 'data/integrity'
              ? 0o700
              : dirEntry
                ? dirMode
                : fileMode;
        expect(mode.toString(8), file).to.equal(expected.toString(8));
      }
      expect([...modes.keys()]).to.include.members([
        'data',
        'data/checkpoint.jsonl',
        'data/access-audits.json',
        'audit/zone-1',
      ]);
    });
  }

  it('gives the lock fileMode while the sidecar runs', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'meshaudit.yaml');
    fs.writeFileSync(
      config,
      `meshaudit:\n  dataDir: ${dir}/data\n  grpc: {address: "127.0.0.1:0"}\n  admin: {address: "127.0.0.1:0"}\n`,
    );
    const sidecar = spawnSidecar(['--config', config], { cwd: dir, wrap: ['sh', '-c', 'umask 0000; exec "$@"', 'sh'] });
    try {
      await sidecar.ready;
      const lock = fs.readdirSync(path.join(dir, 'data')).find((f) => f.startsWith('meshaudit.lock.'));
      expect(lock).to.be.a('string');
      expect((fs.statSync(path.join(dir, 'data', lock!)).mode & 0o777).toString(8)).to.equal('640');
    } finally {
      sidecar.proc.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
