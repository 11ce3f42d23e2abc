// The tamper-evident trail the real sidecar writes (meshaudit.integrity, on by default): every rotated
// file digested and chained, retention's markers, the seal of the active file, the key generated in the
// data directory, copyTo; checked by `meshaudit verify` (src/integrity/verify.ts), clean and tampered.
import { expect } from 'chai';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sendAll } from '../../src/client/audit-client';
import { timeFromName } from '../../src/backends/file';
import { digestName, sealName } from '../../src/integrity/format';
import { copyFolder } from '../../src/integrity/trail';
import { verifyTrail, type TrailReport } from '../../src/integrity/verify';
import { events } from '../support/exactly-once';
import { meshaudit } from '../support/cli';
import { AUDIT_ALL, TestZone, tempDir, waitFor } from '../support/helpers';
import { freePort, logLines, spawnSidecar, writeSidecarConfig } from '../support/process';

const RULES = 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n';

/** A zone's folder after a real sidecar recorded `n` events and stopped: ~20 KB files, 4 kept. */
async function recordedTrail(
  n: number,
  meshauditKeys = '',
): Promise<{ dir: string; audit: string; pub: string; config: string }> {
  const dir = tempDir('meshaudit-trail-');
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'rules.yaml'), RULES);
  const config = writeSidecarConfig(dir, {
    zone: 'zone-1',
    address: `127.0.0.1:${port}`,
    backends: [{ folder: 'audit', rotation: { maxSizeMb: 0.02, maxRetainedFiles: 4, maxAgeDays: 0 } }],
  });
  if (meshauditKeys !== '')
    fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('meshaudit:\n', `meshaudit:\n${meshauditKeys}\n`));
  const sidecar = spawnSidecar(['--config', config, '--rules', path.join(dir, 'rules.yaml')]);
  await sidecar.ready;
  await sendAll(`127.0.0.1:${port}`, { zone: 'zone-1', instance: 'cp-0' }, events(n, 7), {
    batchSize: 100,
    window: 8,
    deadlineMs: 60_000,
  });
  sidecar.proc.kill('SIGTERM');
  expect(await sidecar.exited).to.equal(0);
  return {
    dir,
    audit: path.join(dir, 'audit'),
    pub: path.join(dir, 'data', 'integrity', 'meshaudit-signing.pub'),
    config,
  };
}

async function verify(audit: string, pub: string): Promise<TrailReport> {
  return verifyTrail({ dir: audit, publicKeys: [crypto.createPublicKey(fs.readFileSync(pub))] });
}

function verdicts(report: TrailReport): Record<string, string> {
  return Object.fromEntries(report.files.map((f) => [f.file, f.verdict]));
}

/** A copy of the audit folder, to tamper with while the original stays clean. */
function copyOf(audit: string): string {
  const copy = path.join(tempDir('meshaudit-tampered-'), 'audit');
  fs.cpSync(audit, copy, { recursive: true });
  return copy;
}

const rotatedOf = (audit: string): string[] =>
  fs
    .readdirSync(audit)
    .filter((f) => timeFromName('audit.log', f) !== undefined)
    .sort();

describe('the tamper-evident trail of the real sidecar', function () {
  this.timeout(120_000);
  let trail: Awaited<ReturnType<typeof recordedTrail>>;

  before(async () => {
    trail = await recordedTrail(3000);
  });

  it('digests every kept rotated file, marks every one retention deleted, seals the active file closed: verify says intact', async () => {
    const report = await verify(trail.audit, trail.pub);
    expect(report.problems, JSON.stringify(report.files, null, 1)).to.equal(0);
    const kept = rotatedOf(trail.audit);
    expect(kept).to.have.length(4);
    for (const f of kept) expect(fs.existsSync(path.join(trail.audit, digestName(f))), f).to.equal(true);
    const all = Object.values(verdicts(report));
    expect(all.filter((v) => v === 'deleted-by-retention').length).to.be.greaterThan(0);
    expect(all.filter((v) => v === 'ok').length).to.equal(5);
    const seal = JSON.parse(fs.readFileSync(path.join(trail.audit, sealName('audit.log')), 'utf8'));
    expect(seal).to.include({ state: 'closed', sizeBytes: fs.statSync(path.join(trail.audit, 'audit.log')).size });
    // The digests carry the identifier's sequence ranges, and the records' times.
    const digest = JSON.parse(fs.readFileSync(path.join(trail.audit, digestName(kept[3])), 'utf8'));
    expect(digest.identifiers['zone-1/cp-0'].lastSeq).to.be.greaterThan(digest.identifiers['zone-1/cp-0'].firstSeq);
    expect(digest.firstRecordAt).to.be.a('string');
  });

  it('is checked by meshaudit verify with the public key the sidecar generated beside its data: exit 0', async () => {
    const r = await meshaudit(['verify', '--dir', trail.audit, '--pubkey', trail.pub]);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.match(/OK\s+audit\.log/);
  });

  it('catches an edited byte in a rotated file, and a line appended after the closed seal', async () => {
    const edited = copyOf(trail.audit);
    const victim = path.join(edited, rotatedOf(edited)[1]);
    const bytes = fs.readFileSync(victim);
    bytes[40] = bytes[40] === 0x61 ? 0x62 : 0x61;
    fs.writeFileSync(victim, bytes);
    fs.appendFileSync(
      path.join(edited, 'audit.log'),
      `${fs.readFileSync(path.join(edited, 'audit.log'), 'utf8').split('\n')[0]}\n`,
    );
    const report = await verify(edited, trail.pub);
    expect(report.ok).to.equal(false);
    expect(verdicts(report)).to.include({ [path.basename(victim)]: 'modified', 'audit.log': 'extended-after-seal' });
    const r = await meshaudit(['verify', '--dir', edited, '--pubkey', trail.pub]);
    expect(r.code).to.equal(1);
  });

  it('keeps a seal the active file no longer matches as evidence when it starts again, and verify reports it', async () => {
    const { dir, audit, pub, config } = await recordedTrail(300);
    // An edit while the sidecar is stopped: one byte of the active file.
    const active = path.join(audit, 'audit.log');
    const bytes = fs.readFileSync(active);
    bytes[10] = bytes[10] === 0x32 ? 0x33 : 0x32;
    fs.writeFileSync(active, bytes);
    const again = spawnSidecar(['--config', config, '--rules', path.join(dir, 'rules.yaml')]);
    await again.ready;
    again.proc.kill('SIGTERM');
    expect(await again.exited).to.equal(0);
    expect(
      logLines(again.stderr()).some((l) => String(l.msg).includes('no longer holds what its last seal sealed')),
    ).to.equal(true);
    const evidence = fs.readdirSync(audit).filter((f) => f.startsWith('audit.log.seal-mismatch-'));
    expect(evidence).to.have.length(1);
    // The new seal states what the file holds now; the kept one shows it changed.
    const report = await verify(audit, pub);
    expect(verdicts(report)['audit.log']).to.equal('modified');
    expect(report.files.find((f) => f.file === 'audit.log')?.detail).to.contain(evidence[0]);
  });

  it('copies every digest, marker and seal to copyTo', async () => {
    const copyTo = tempDir('meshaudit-copy-');
    const { audit } = await recordedTrail(1500, `  integrity: {copyTo: ${copyTo}}`);
    const docs = fs.readdirSync(audit).filter((f) => f.endsWith('.json'));
    const copies = fs.readdirSync(copyFolder(copyTo, path.join(audit, 'audit.log')));
    expect(copies.sort()).to.deep.equal(docs.sort());
  });

  it('seals the active file again every sealIntervalSeconds while nothing is written', async () => {
    const zone = new TestZone();
    await zone.start([AUDIT_ALL], {
      config: { integrity: { enabled: true, keyFile: undefined, sealIntervalMs: 1000, copyTo: undefined } },
    });
    try {
      const sealFile = path.join(path.dirname(zone.logPath), sealName('audit.log'));
      const signedAt = (): string => JSON.parse(fs.readFileSync(sealFile, 'utf8')).signedAt;
      const first = signedAt();
      const seen = new Set([first]);
      // Idle: no event is sent; each new seal is a new signedAt over the same bytes.
      await waitFor(() => seen.add(signedAt()).size >= 3, 'two more seals of an idle file', 5_000);
      const seal = JSON.parse(fs.readFileSync(sealFile, 'utf8'));
      expect(seal).to.include({ state: 'open', sizeBytes: fs.statSync(zone.logPath).size });
    } finally {
      await zone.stop();
    }
  });
});
