import { expect } from 'chai';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { rotatedName } from '../../src/backends/file/rotation-names';
import { digestName, keyIdOf, markerName, sealName } from '../../src/integrity/format';
import { type TrailReport, type Verdict, type VerifyOptions, verifyTrail } from '../../src/integrity/verify';
import { tempDir } from '../support/helpers';
import { redigest, resign, type Trail, writeMarker, writeTrail } from '../support/trail';

/** Soon after the seal: bytes after it are not yet due to be sealed. */
const RECENT_S = 10;
/** Past 2 x sealIntervalSeconds (60) + 5 s: the sidecar would have sealed again. */
const STALE_S = 126;

function verify(t: Trail, over: Partial<VerifyOptions> = {}): Promise<TrailReport> {
  return verifyTrail({ dir: t.dir, publicKeys: [t.publicKey], now: t.now(RECENT_S), ...over });
}

/** Each file's verdict. */
async function verdicts(t: Trail, over: Partial<VerifyOptions> = {}): Promise<Record<string, Verdict>> {
  const report = await verify(t, over);
  return Object.fromEntries(report.files.map((f) => [f.file, f.verdict]));
}

/** The verdicts of a clean trail of `t`, with `changes` made. */
function expected(t: Trail, changes: Record<string, Verdict>): Record<string, Verdict> {
  return { ...Object.fromEntries([...t.rotated, t.active].map((n) => [n, 'ok'])), ...changes };
}

async function detailOf(t: Trail, file: string, over: Partial<VerifyOptions> = {}): Promise<string> {
  return (await verify(t, over)).files.find((f) => f.file === file)?.detail ?? '(not reported)';
}

function editByte(file: string, at: number): void {
  const bytes = fs.readFileSync(file);
  bytes[at] = bytes[at] === 0x31 ? 0x32 : 0x31;
  fs.writeFileSync(file, bytes);
}

function lines(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split(/(?<=\n)/);
}

function anotherKey(): crypto.KeyObject {
  return crypto.generateKeyPairSync('ed25519').privateKey;
}

/** Gzips a rotated file as rotation.compress does: `<name>.gz`, the plain file removed. */
function compress(file: string): void {
  fs.writeFileSync(`${file}.gz`, zlib.gzipSync(fs.readFileSync(file)));
  fs.unlinkSync(file);
}

describe('verifyTrail', () => {
  describe('compressed rotated files (rotation.compress)', () => {
    it('checks a <rotated>.gz against the digest of <rotated>: its uncompressed bytes, records and times', async () => {
      const t = writeTrail(tempDir(), { rotated: 4, deletedByRetention: 1 });
      const clean = await verify(t);
      for (const name of t.rotated.slice(1, 3)) compress(t.path(name));
      const report = await verify(t);
      expect(report).to.deep.include({ ok: true, problems: 0, activeFiles: ['audit.log'] });
      expect(report.files).to.deep.equal(clean.files);
    });

    it('finds a line edited in a .gz: modified', async () => {
      const t = writeTrail(tempDir());
      editByte(t.path(t.rotated[1]), 10);
      compress(t.path(t.rotated[1]));
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[1]]: 'modified' }));
    });

    it('finds a .gz cut short: modified, as it does not gunzip whole', async () => {
      const t = writeTrail(tempDir());
      compress(t.path(t.rotated[0]));
      const gz = `${t.path(t.rotated[0])}.gz`;
      fs.writeFileSync(gz, fs.readFileSync(gz).subarray(0, 20));
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[0]]: 'modified' }));
      expect(await detailOf(t, t.rotated[0])).to.match(/\.gz does not gunzip whole: /);
    });

    it('finds the backend of a folder whose rotated files are all compressed and whose seal is gone', async () => {
      const t = writeTrail(tempDir());
      for (const name of t.rotated) compress(t.path(name));
      fs.unlinkSync(t.path('audit.log.seal.json'));
      const report = await verify(t);
      expect(report.activeFiles).to.deep.equal(['audit.log']);
      expect(Object.fromEntries(report.files.map((f) => [f.file, f.verdict]))).to.deep.equal(
        expected(t, { 'audit.log': 'unsealed' }),
      );
    });

    it('reads the plain file, with a note, when a compression cut short left both', async () => {
      const t = writeTrail(tempDir());
      fs.writeFileSync(`${t.path(t.rotated[0])}.gz`, zlib.gzipSync(fs.readFileSync(t.path(t.rotated[0]))));
      expect(await verdicts(t)).to.deep.equal(expected(t, {}));
      expect(await detailOf(t, t.rotated[0])).to.equal(`${t.rotated[0]}.gz is beside it`);
    });
  });

  describe('a clean trail', () => {
    it('says ok for every rotated file and the active file, with their records and times', async () => {
      const t = writeTrail(tempDir());
      const report = await verify(t);
      expect(report).to.deep.include({ ok: true, problems: 0, activeFiles: ['audit.log'] });
      expect(report.files).to.deep.equal([
        {
          file: t.rotated[0],
          verdict: 'ok',
          detail: '',
          records: 5,
          firstRecordAt: '2026-03-01T10:00:00Z',
          lastRecordAt: '2026-03-01T10:00:04Z',
        },
        {
          file: t.rotated[1],
          verdict: 'ok',
          detail: '',
          records: 5,
          firstRecordAt: '2026-03-01T10:00:05Z',
          lastRecordAt: '2026-03-01T10:00:09Z',
        },
        {
          file: t.rotated[2],
          verdict: 'ok',
          detail: '',
          records: 5,
          firstRecordAt: '2026-03-01T10:00:10Z',
          lastRecordAt: '2026-03-01T10:00:14Z',
        },
        {
          file: 'audit.log',
          verdict: 'ok',
          detail: '',
          records: 4,
          firstRecordAt: '2026-03-01T10:00:15Z',
          lastRecordAt: '2026-03-01T10:00:18Z',
        },
      ]);
    });

    it('says deleted-by-retention for files deleted with a signed marker, their digests still in the chain', async () => {
      const t = writeTrail(tempDir(), { rotated: 4, deletedByRetention: 2 });
      const report = await verify(t);
      expect(report.ok).to.equal(true);
      expect(Object.fromEntries(report.files.map((f) => [f.file, f.verdict]))).to.deep.equal(
        expected(t, { [t.rotated[0]]: 'deleted-by-retention', [t.rotated[1]]: 'deleted-by-retention' }),
      );
      expect(report.files[0]).to.deep.include({
        records: 5,
        detail: 'deleted by retention (maxRetainedFiles 2) at 2026-03-02T00:00:00.000Z',
      });
    });

    it('says deleted-by-retention, with a note, for a file deleted before its digest was written (a marker without one)', async () => {
      const t = writeTrail(tempDir(), { rotated: 0 });
      const name = rotatedName('audit.log', new Date('2026-02-28T00:00:00Z'), 1);
      writeMarker(t.dir, name, t.zone, null, t.key);
      expect(await verdicts(t)).to.deep.equal({ [name]: 'deleted-by-retention', 'audit.log': 'ok' });
      expect(await detailOf(t, name)).to.match(/before its digest was written$/);
    });

    it('says ok, with a note, for records written after an open seal younger than 2 x sealIntervalSeconds + 5 s', async () => {
      const t = writeTrail(tempDir());
      fs.appendFileSync(t.path('audit.log'), t.nextRecord());
      expect(await verdicts(t)).to.deep.equal(expected(t, {}));
      expect(await detailOf(t, 'audit.log')).to.equal(
        `114 bytes written after the seal at ${t.sealedAt.toISOString()} (the sidecar seals them within sealIntervalSeconds, 60 s)`,
      );
    });

    it('takes a seal made before a rotation it does not know yet (the sidecar writes the digest and seals again)', async () => {
      const t = writeTrail(tempDir());
      // The active file rotates after the seal; the new active file gets a record; no digest or seal yet.
      const rotated = rotatedName('audit.log', new Date(t.sealedAt.getTime() + 1000), 1);
      fs.renameSync(t.path('audit.log'), t.path(rotated));
      fs.writeFileSync(t.path('audit.log'), t.nextRecord());
      const names = [...t.rotated, rotated, 'audit.log'];
      expect(await verdicts(t)).to.deep.equal(Object.fromEntries(names.map((n) => [n, 'ok'])));
      expect(await detailOf(t, rotated)).to.match(/^rotated after the seal at .*: its digest follows within/);
      // Once the seal is stale, nobody is coming: the rotated file has no digest, the active file no seal.
      expect(await verdicts(t, { now: t.now(STALE_S) })).to.deep.include({
        [rotated]: 'unsealed',
        'audit.log': 'unsealed',
      });
    });

    it('checks every backend in the folder, each against its own chain', async () => {
      const dir = tempDir();
      const key = anotherKey();
      const a = writeTrail(dir, { active: 'audit.log', key });
      const b = writeTrail(dir, { active: 'mesh.jsonl', key, rotated: 2 });
      editByte(b.path(b.rotated[1]), 3);
      const report = await verify(a);
      expect(report.activeFiles).to.deep.equal(['audit.log', 'mesh.jsonl']);
      expect(Object.fromEntries(report.files.map((f) => [f.file, f.verdict]))).to.deep.equal({
        ...expected(a, {}),
        ...expected(b, { [b.rotated[1]]: 'modified' }),
      });
    });

    it('verifies each document with whichever given key signed it (a zone whose key changed)', async () => {
      const t = writeTrail(tempDir());
      const newKey = anotherKey();
      resign(t.path(sealName('audit.log')), newKey);
      expect((await verify(t)).files.at(-1)?.verdict).to.equal('bad-signature');
      expect(await verify(t, { publicKeys: [crypto.createPublicKey(newKey), t.publicKey] })).to.deep.include({
        ok: true,
      });
    });

    it('reports only the files whose records overlap from/to, checking them with the digests outside', async () => {
      const t = writeTrail(tempDir());
      const range = { from: new Date('2026-03-01T10:00:06Z'), to: new Date('2026-03-01T10:00:12Z') };
      const report = await verify(t, range);
      expect(report.files.map((f) => [f.file, f.verdict])).to.deep.equal([
        [t.rotated[1], 'ok'],
        [t.rotated[2], 'ok'],
      ]);
      expect(report.ok).to.equal(true);
      // Tampering in a file outside the range is not reported...
      editByte(t.path(t.rotated[0]), 20);
      expect(await verify(t, range)).to.deep.include({ ok: true, problems: 0 });
      expect(await verify(t)).to.deep.include({ ok: false, problems: 1 });
      // ...and a digest inside it replaced is found by the link of the digest after it, outside the range.
      redigest(t, t.rotated[1], t.key);
      const only = await verify(t, { from: range.from, to: new Date('2026-03-01T10:00:08Z') });
      expect(only.files.map((f) => [f.file, f.verdict])).to.deep.equal([[t.rotated[1], 'chain-broken']]);
    });
  });

  describe('tampering', () => {
    it('finds one byte edited in a rotated file: modified', async () => {
      const t = writeTrail(tempDir());
      editByte(t.path(t.rotated[1]), 40);
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[1]]: 'modified' }));
      expect(await detailOf(t, t.rotated[1])).to.equal("its SHA-256 differs from its digest's (the same 570 bytes)");
    });

    it('finds one byte edited in the sealed part of the active file: modified', async () => {
      const t = writeTrail(tempDir());
      editByte(t.path('audit.log'), 40);
      fs.appendFileSync(t.path('audit.log'), t.nextRecord());
      expect(await verdicts(t)).to.deep.equal(expected(t, { 'audit.log': 'modified' }));
      expect(await detailOf(t, 'audit.log')).to.equal(
        `its first 456 bytes differ from its seal of ${t.sealedAt.toISOString()}`,
      );
    });

    it('finds a line deleted from a rotated file: modified', async () => {
      const t = writeTrail(tempDir());
      const l = lines(t.path(t.rotated[0]));
      fs.writeFileSync(t.path(t.rotated[0]), [...l.slice(0, 2), ...l.slice(3)].join(''));
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[0]]: 'modified' }));
      expect(await detailOf(t, t.rotated[0])).to.equal(
        '456 bytes, 114 fewer than its digest says (570), yet it still ends with its last record: lines taken out',
      );
    });

    it('finds a rotated file cut short: truncated', async () => {
      const t = writeTrail(tempDir());
      fs.truncateSync(t.path(t.rotated[2]), 300);
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[2]]: 'truncated' }));
    });

    it('finds a line appended after a closed seal: extended-after-seal', async () => {
      const t = writeTrail(tempDir(), { sealState: 'closed' });
      fs.appendFileSync(t.path('audit.log'), t.nextRecord());
      expect(await verdicts(t)).to.deep.equal(expected(t, { 'audit.log': 'extended-after-seal' }));
      expect(await detailOf(t, 'audit.log')).to.equal(
        `114 bytes written after the seal at ${t.sealedAt.toISOString()}, closed when the sidecar stopped`,
      );
    });

    it('finds a line appended after an open seal older than 2 x sealIntervalSeconds + 5 s: extended-after-seal', async () => {
      const t = writeTrail(tempDir());
      fs.appendFileSync(t.path('audit.log'), t.nextRecord());
      expect(await verdicts(t, { now: t.now(125) })).to.deep.equal(expected(t, {}));
      expect(await verdicts(t, { now: t.now(STALE_S) })).to.deep.equal(
        expected(t, { 'audit.log': 'extended-after-seal' }),
      );
    });

    it('finds two rotated files swapped: out-of-order, each holding the other one', async () => {
      const t = writeTrail(tempDir());
      const [a, b] = [t.path(t.rotated[0]), t.path(t.rotated[1])];
      fs.renameSync(a, `${a}.x`);
      fs.renameSync(b, a);
      fs.renameSync(`${a}.x`, b);
      expect(await verdicts(t)).to.deep.equal(
        expected(t, { [t.rotated[0]]: 'out-of-order', [t.rotated[1]]: 'out-of-order' }),
      );
      expect(await detailOf(t, t.rotated[0])).to.equal(
        `its bytes are those of ${t.rotated[1]} (its digest): files swapped or renamed`,
      );
    });

    it('finds files swapped along with their digests: out-of-order, from the digests and their chain', async () => {
      const t = writeTrail(tempDir());
      for (const name of [t.rotated[0], digestName(t.rotated[0])]) fs.renameSync(t.path(name), t.path(`${name}.x`));
      fs.renameSync(t.path(t.rotated[1]), t.path(t.rotated[0]));
      fs.renameSync(t.path(digestName(t.rotated[1])), t.path(digestName(t.rotated[0])));
      fs.renameSync(t.path(`${t.rotated[0]}.x`), t.path(t.rotated[1]));
      fs.renameSync(t.path(`${digestName(t.rotated[0])}.x`), t.path(digestName(t.rotated[1])));
      expect(await verdicts(t)).to.deep.equal(
        expected(t, { [t.rotated[0]]: 'out-of-order', [t.rotated[1]]: 'out-of-order' }),
      );
    });

    it('finds a rotated file removed: missing', async () => {
      const t = writeTrail(tempDir());
      fs.rmSync(t.path(t.rotated[1]));
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[1]]: 'missing' }));
      expect(await detailOf(t, t.rotated[1])).to.equal('gone, and no retention marker names it');
    });

    it('finds a rotated file removed with its digest: missing, from the link of the digest after it', async () => {
      const t = writeTrail(tempDir());
      fs.rmSync(t.path(t.rotated[1]));
      fs.rmSync(t.path(digestName(t.rotated[1])));
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[1]]: 'missing' }));
      expect(await detailOf(t, t.rotated[1])).to.equal(
        `gone with its digest ${digestName(t.rotated[1])} (the digest of ${t.rotated[2]} links to it), and no retention marker names it`,
      );
    });

    it('finds the newest rotated file removed with its digest: missing, from the link of the seal', async () => {
      const t = writeTrail(tempDir());
      fs.rmSync(t.path(t.rotated[2]));
      fs.rmSync(t.path(digestName(t.rotated[2])));
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[2]]: 'missing' }));
      expect(await detailOf(t, t.rotated[2])).to.match(/\(the seal links to it\)/);
    });

    it('finds a rotated file whose digest alone is removed: missing', async () => {
      const t = writeTrail(tempDir());
      fs.rmSync(t.path(digestName(t.rotated[0])));
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[0]]: 'missing' }));
    });

    it('finds the active file truncated below its seal: truncated', async () => {
      const t = writeTrail(tempDir());
      fs.truncateSync(t.path('audit.log'), 200);
      expect(await verdicts(t)).to.deep.equal(expected(t, { 'audit.log': 'truncated' }));
      expect(await detailOf(t, 'audit.log')).to.equal(
        `200 bytes, 256 fewer than its seal of ${t.sealedAt.toISOString()} says (456): its end is cut`,
      );
    });

    it('finds an edited file whose digest is replaced by one signed with another key: bad-signature naming it', async () => {
      const t = writeTrail(tempDir());
      editByte(t.path(t.rotated[1]), 40);
      const attacker = anotherKey();
      redigest(t, t.rotated[1], attacker);
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[1]]: 'bad-signature' }));
      expect(await detailOf(t, t.rotated[1])).to.match(
        new RegExp(
          `^its digest ${digestName(t.rotated[1])} is signed with key ${keyIdOf(attacker)}, which no given public key is \\(given: ${keyIdOf(t.publicKey)}\\)`,
        ),
      );
    });

    it('finds a digest replaced by another one signed with the zone key (a copy from elsewhere): chain-broken', async () => {
      const t = writeTrail(tempDir());
      redigest(t, t.rotated[1], t.key); // the same content, signed again: other bytes than the chain links to
      const doc = JSON.parse(fs.readFileSync(t.path(digestName(t.rotated[1])), 'utf8'));
      expect(doc.keyId).to.equal(keyIdOf(t.publicKey));
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[1]]: 'chain-broken' }));
      expect(await detailOf(t, t.rotated[1])).to.match(
        new RegExp(
          `^its digest is not the one the digest of ${t.rotated[2]} links to \\(SHA-256 [0-9a-f]{12}\\.\\.\\.\\): replaced$`,
        ),
      );
    });

    it('finds a digest edited after signing: bad-signature, its signature no longer verifying with the zone key', async () => {
      const t = writeTrail(tempDir());
      const file = t.path(digestName(t.rotated[0]));
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('"records":5', '"records":4'));
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[0]]: 'bad-signature' }));
      expect(await detailOf(t, t.rotated[0])).to.match(
        new RegExp(`^its digest \\S+ does not verify with key ${keyIdOf(t.publicKey)}: changed after it was signed`),
      );
    });

    it('finds a digest, a retention marker or a seal re-signed with another key: bad-signature', async () => {
      const t = writeTrail(tempDir(), { deletedByRetention: 1 });
      const attacker = anotherKey();
      for (const doc of [digestName(t.rotated[2]), markerName(t.rotated[0]), sealName('audit.log')])
        resign(t.path(doc), attacker);
      expect(await verdicts(t)).to.deep.equal(
        expected(t, { [t.rotated[0]]: 'bad-signature', [t.rotated[2]]: 'bad-signature', 'audit.log': 'bad-signature' }),
      );
    });

    it('finds a retention marker forged for a file removed outside retention: bad-signature', async () => {
      const t = writeTrail(tempDir());
      fs.rmSync(t.path(t.rotated[0]));
      writeMarker(t.dir, t.rotated[0], t.zone, null, anotherKey());
      expect(await verdicts(t)).to.deep.equal(expected(t, { [t.rotated[0]]: 'bad-signature' }));
    });

    it('finds an active file without a seal, and a rotated file added between two digests: unsealed', async () => {
      const t = writeTrail(tempDir());
      fs.rmSync(t.path(sealName('audit.log')));
      const added = rotatedName('audit.log', new Date('2026-03-01T10:00:07Z'), 1);
      fs.writeFileSync(t.path(added), t.nextRecord());
      expect(await verdicts(t)).to.deep.equal({
        [t.rotated[0]]: 'ok',
        [t.rotated[1]]: 'ok',
        [added]: 'unsealed',
        [t.rotated[2]]: 'ok',
        'audit.log': 'unsealed',
      });
    });

    it('finds a seal older than the newest digest once it is stale: chain-broken', async () => {
      const t = writeTrail(tempDir(), { rotated: 2 });
      const old = fs.readFileSync(t.path(sealName('audit.log')));
      // A later trail of the same key replaces it; the old seal is put back.
      const later = writeTrail(t.dir, { rotated: 3, key: t.key });
      fs.writeFileSync(t.path(sealName('audit.log')), old);
      const report = await verify(later, { now: later.now(STALE_S) });
      expect(report.files.find((f) => f.file === 'audit.log')).to.deep.include({ verdict: 'chain-broken' });
    });

    it('finds the active file gone while its seal covers records: missing', async () => {
      const t = writeTrail(tempDir());
      fs.rmSync(t.path('audit.log'));
      expect(await verdicts(t)).to.deep.equal(expected(t, { 'audit.log': 'missing' }));
    });
  });

  it('rejects a folder that cannot be listed, and finds no trail in an empty one', async () => {
    const dir = tempDir();
    const publicKeys = [crypto.createPublicKey(anotherKey())];
    expect(await verifyTrail({ dir, publicKeys })).to.deep.equal({ ok: true, files: [], problems: 0, activeFiles: [] });
    let error: unknown;
    await verifyTrail({ dir: `${dir}/nothing`, publicKeys }).catch((e) => {
      error = e;
    });
    expect((error as NodeJS.ErrnoException).code).to.equal('ENOENT');
  });
});
