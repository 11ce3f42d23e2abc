// Rules files were read without a bound: `--rules /dev/zero` grew to gigabytes, a FIFO with no writer
// hung start-up, a huge file on SIGHUP blocked the event loop. An empty or half-written file on SIGHUP
// deleted every rule, and what files changed went only to the log. Against the real process.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { clients, readRecords, resourceEvent, tempDir, unary, waitFor } from '../support/helpers';
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
          if (sidecar.stderr().includes('config reload refused')) resolve();
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

describe('faults: a rules file emptied or half-written when SIGHUP comes', function () {
  this.timeout(30_000);
  const FILES_USER = '"user":{"name":"meshaudit:rules-files","groups":["meshaudit:system"]}';
  const TOKENS = 'type: AccessAudit\nname: tokens\nrules:\n- access: ["GENERATE_USER_TOKEN"]\n';

  it('refuses a reload that reads a file defining no AccessAudit, keeps the rules, and records every file change', async () => {
    const dir = tempDir();
    const everything = path.join(dir, 'everything.yaml');
    const tokens = path.join(dir, 'tokens.yaml');
    fs.writeFileSync(everything, RULES);
    fs.writeFileSync(tokens, TOKENS);
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir), '--rules', everything, '--rules', tokens], {
      cwd: dir,
    });
    const c = clients(await sidecar.ready);
    const outcomes = (): number => (sidecar.stderr().match(/"config reloaded"|config reload refused/g) ?? []).length;
    /** Sends SIGHUP and resolves with what that reload logged, once it ended. */
    const reload = async (): Promise<string> => {
      const before = outcomes();
      const from = sidecar.stderr().length;
      sidecar.proc.kill('SIGHUP');
      await waitFor(() => outcomes() > before, 'the reload to end');
      return sidecar.stderr().slice(from);
    };
    const audited = async (seq: number): Promise<boolean> =>
      (await unary<{ audited: boolean }>(c.audit, 'Record', { event: resourceEvent(seq) })).audited;
    try {
      expect(await audited(1)).to.equal(true);
      // Emptied (an editor truncating before it writes), only comments, cut in the middle of a document.
      // Each reload is judged by its own log lines: the first refusal must not answer for the others.
      for (const [i, [text, why]] of (
        [
          ['', 'defines no AccessAudit (an empty or half-written file?)'],
          ['# the rules move to another file\n', 'defines no AccessAudit (an empty or half-written file?)'],
          ['type: AccessAudit\nname: audit-everything\nrules:\n- accessAll: tr', 'rules[0].accessAll'],
        ] as const
      ).entries()) {
        fs.writeFileSync(everything, text);
        const logged = await reload();
        expect(logged, JSON.stringify(text)).to.match(/config reload refused; the config and rules in force stay/);
        expect(logged, JSON.stringify(text)).to.include(why);
        expect(await audited(2 + i), JSON.stringify(text)).to.equal(true);
      }
      // A file that still defines resources but drops one deletes that one, as always, and says so.
      fs.writeFileSync(everything, RULES.replace('accessAll: true', 'access: ["CREATE", "DELETE"]'));
      fs.writeFileSync(tokens, `${TOKENS}---\n${TOKENS.replace('name: tokens', 'name: more-tokens')}`);
      await reload();
      fs.writeFileSync(tokens, TOKENS.replace('name: tokens', 'name: more-tokens'));
      await reload();
      const changes = readRecords(path.join(dir, 'audit', 'audit.log'))
        .filter((line) => line.includes('"type":"AccessAudit"'))
        .map((line) => line.replace(/^\{"date":"[^"]*",/, '{'));
      const change = (action: string, name: string): string =>
        `{"action":"${action}","resource":{"name":"${name}","type":"AccessAudit"},${FILES_USER}}`;
      expect(changes).to.deep.equal([
        change('CREATE', 'audit-everything'),
        change('CREATE', 'tokens'),
        change('UPDATE', 'audit-everything'),
        change('CREATE', 'more-tokens'),
        change('DELETE', 'tokens'),
      ]);
    } finally {
      c.close();
      sidecar.proc.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('refuses to start on a rules file that defines no AccessAudit, naming it', async () => {
    const dir = tempDir();
    const empty = path.join(dir, 'empty.yaml');
    fs.writeFileSync(empty, '');
    const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir), '--rules', empty], { cwd: dir });
    expect(await sidecar.exited).to.equal(2);
    expect(sidecar.stderr()).to.include(`${empty}: defines no AccessAudit`);
  });
});
