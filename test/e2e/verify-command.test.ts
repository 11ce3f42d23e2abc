// `meshaudit keygen` and `meshaudit verify`, the built command, on synthetic trails (test/support/trail.ts).
import { expect } from 'chai';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { keyIdOf } from '../../src/integrity/format';
import { verifyTrail } from '../../src/integrity/verify';
import { meshaudit } from '../support/cli';
import { tempDir } from '../support/helpers';
import { writePublicKey, writeTrail } from '../support/trail';

const KEY = 'meshaudit-signing.key';
const PUB = 'meshaudit-signing.pub';

/** A clean trail signed by a new key, with its public key in a file beside the folder. */
function trail(opts: Parameters<typeof writeTrail>[1] = {}): { t: ReturnType<typeof writeTrail>; pub: string } {
  const t = writeTrail(tempDir(), opts);
  const pub = path.join(tempDir(), PUB);
  writePublicKey(pub, t.key);
  return { t, pub };
}

describe('meshaudit keygen and verify (the built command)', function () {
  this.timeout(20_000);

  describe('keygen', () => {
    it('writes the private key 0600 and the public key 0644, whatever the umask, and prints both and the key id', async () => {
      const out = path.join(tempDir(), 'keys');
      // A umask that would narrow 0644 to 0600: the public key is meant for others to read.
      const umask = process.umask(0o077);
      let r: Awaited<ReturnType<typeof meshaudit>>;
      try {
        r = await meshaudit(['keygen', '--out', out]);
      } finally {
        process.umask(umask);
      }
      const key = crypto.createPrivateKey(fs.readFileSync(path.join(out, KEY)));
      expect(r).to.deep.equal({
        code: 0,
        stdout:
          `private key: ${path.join(out, KEY)} (mode 0600: meshaudit.integrity.keyFile)\n` +
          `public key:  ${path.join(out, PUB)} (mode 0644: meshaudit verify --pubkey)\n` +
          `key id:      ${keyIdOf(key)}\n`,
        stderr: '',
      });
      expect(fs.statSync(path.join(out, KEY)).mode & 0o777).to.equal(0o600);
      expect(fs.statSync(path.join(out, PUB)).mode & 0o777).to.equal(0o644);
      expect(fs.readFileSync(path.join(out, KEY), 'utf8')).to.match(/^-----BEGIN PRIVATE KEY-----\n/);
      expect(fs.readFileSync(path.join(out, PUB), 'utf8')).to.match(/^-----BEGIN PUBLIC KEY-----\n/);
      expect(key.asymmetricKeyType).to.equal('ed25519');
      // The pair works: a trail signed with the key verifies with the public key file.
      const t = writeTrail(tempDir(), { key });
      const verified = await meshaudit(['verify', '--dir', t.dir, '--pubkey', path.join(out, PUB)]);
      expect(verified.code).to.equal(0);
    });

    it('refuses to overwrite an existing key file (exit 2, naming it) and writes nothing', async () => {
      const out = tempDir();
      fs.writeFileSync(path.join(out, PUB), 'an older public key\n');
      const r = await meshaudit(['keygen', '--out', out]);
      expect(r).to.deep.equal({
        code: 2,
        stdout: '',
        stderr: `meshaudit keygen: ${path.join(out, PUB)} exists: not overwritten (move it away, or choose another folder)\n`,
      });
      expect(fs.readdirSync(out)).to.deep.equal([PUB]);
      expect(fs.readFileSync(path.join(out, PUB), 'utf8')).to.equal('an older public key\n');
    });

    it('refuses to run without --out (exit 2)', async () => {
      expect(await meshaudit(['keygen'])).to.deep.equal({
        code: 2,
        stdout: '',
        stderr:
          'meshaudit keygen: --out: needs the folder to write the key pair in (usage: meshaudit keygen --out DIR)\n',
      });
    });
  });

  describe('verify', () => {
    it('exits 0 on an intact trail: a line per file with its records, and a summary', async () => {
      const { t, pub } = trail({ rotated: 3, deletedByRetention: 1 });
      const r = await meshaudit(['verify', '--dir', t.dir, '--pubkey', pub]);
      expect(r).to.deep.equal({
        code: 0,
        stdout:
          `DELETED-BY-RETENTION  ${t.rotated[0]}  5 records, 2026-03-01T10:00:00Z .. 2026-03-01T10:00:04Z; deleted by retention (maxRetainedFiles 2) at 2026-03-02T00:00:00.000Z\n` +
          `OK  ${t.rotated[1]}  5 records, 2026-03-01T10:00:05Z .. 2026-03-01T10:00:09Z\n` +
          `OK  ${t.rotated[2]}  5 records, 2026-03-01T10:00:10Z .. 2026-03-01T10:00:14Z\n` +
          'OK  audit.log  4 records, 2026-03-01T10:00:15Z .. 2026-03-01T10:00:18Z\n' +
          `intact: 4 files in ${t.dir} (1 deleted by retention)\n`,
        stderr: '',
      });
    });

    it('exits 1 on a tampered trail, with the verdict line of the file and a summary', async () => {
      const { t, pub } = trail({ sealState: 'closed' });
      fs.appendFileSync(t.path('audit.log'), t.nextRecord());
      fs.rmSync(t.path(t.rotated[0]));
      const r = await meshaudit(['verify', '--dir', t.dir, '--pubkey', pub]);
      expect(r.code).to.equal(1);
      expect(r.stdout.split('\n')).to.deep.equal([
        `MISSING  ${t.rotated[0]}  gone, and no retention marker names it`,
        `OK  ${t.rotated[1]}  5 records, 2026-03-01T10:00:05Z .. 2026-03-01T10:00:09Z`,
        `OK  ${t.rotated[2]}  5 records, 2026-03-01T10:00:10Z .. 2026-03-01T10:00:14Z`,
        `EXTENDED-AFTER-SEAL  audit.log  114 bytes written after the seal at ${t.sealedAt.toISOString()}, closed when the sidecar stopped`,
        `NOT INTACT: 2 of 4 files in ${t.dir}: 1 missing, 1 extended-after-seal`,
        '',
      ]);
    });

    it('prints the report as JSON with --json', async () => {
      const { t, pub } = trail();
      fs.writeFileSync(t.path(t.rotated[1]), 'nothing here\n');
      const r = await meshaudit(['verify', '--dir', t.dir, '--pubkey', pub, '--json']);
      expect([r.code, r.stderr]).to.deep.equal([1, '']);
      expect(JSON.parse(r.stdout)).to.deep.equal(await verifyTrail({ dir: t.dir, publicKeys: [t.publicKey] }));
      expect(JSON.parse(r.stdout)).to.deep.include({ ok: false, problems: 1 });
    });

    it('lists only the files holding records between --from and --to', async () => {
      const { t, pub } = trail();
      const r = await meshaudit([
        'verify',
        '--dir',
        t.dir,
        '--pubkey',
        pub,
        '--from',
        '2026-03-01T10:00:06Z',
        '--to',
        '2026-03-01T11:00:12+01:00',
      ]);
      expect([r.code, r.stderr]).to.deep.equal([0, '']);
      expect(r.stdout.split('\n').map((l) => l.split('  ')[1])).to.deep.equal([
        t.rotated[1],
        t.rotated[2],
        undefined,
        undefined,
      ]);
      expect(r.stdout).to.include(
        `intact: 2 files holding records from 2026-03-01T10:00:06.000Z to 2026-03-01T10:00:12.000Z in ${t.dir}\n`,
      );
    });

    it('exits 1 when the folder holds no trail at all', async () => {
      const dir = tempDir();
      const { pub } = trail();
      const r = await meshaudit(['verify', '--dir', dir, '--pubkey', pub]);
      expect(r).to.deep.equal({
        code: 1,
        stdout: `no trail in ${dir}: no seal, digest, retention marker or rotated file to check (is it the audit folder?)\n`,
        stderr: '',
      });
    });

    it('exits 2, naming the file, for a public key that is not PEM, not Ed25519, or a private key', async () => {
      const { t } = trail();
      const dir = tempDir();
      const notPem = path.join(dir, 'not-pem.pub');
      fs.writeFileSync(notPem, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI nobody\n');
      const rsa = path.join(dir, 'rsa.pub');
      fs.writeFileSync(
        rsa,
        crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }),
      );
      const priv = path.join(dir, KEY);
      fs.writeFileSync(priv, t.key.export({ type: 'pkcs8', format: 'pem' }));
      const cases: Array<[string, string]> = [
        [notPem, `${notPem} is not a PEM key (no -----BEGIN line)`],
        [rsa, `${rsa} is a rsa key: the trail is signed with Ed25519`],
        [priv, `${priv} is a private key: give the public key (${PUB}) instead`],
        [
          path.join(dir, 'absent.pub'),
          `can't read ${path.join(dir, 'absent.pub')}: ENOENT: no such file or directory, stat '${path.join(dir, 'absent.pub')}'`,
        ],
      ];
      for (const [file, message] of cases) {
        expect(await meshaudit(['verify', '--dir', t.dir, '--pubkey', file]), file).to.deep.equal({
          code: 2,
          stdout: '',
          stderr: `meshaudit verify: --pubkey: ${message}\n`,
        });
      }
    });

    it('exits 2 for a folder that cannot be read, and for missing or invalid flags', async () => {
      const { pub } = trail();
      const absent = path.join(tempDir(), 'absent');
      const r = await meshaudit(['verify', '--dir', absent, '--pubkey', pub]);
      expect([r.code, r.stdout, r.stderr]).to.deep.equal([
        2,
        '',
        `meshaudit verify: can't read --dir ${absent}: ENOENT: no such file or directory, scandir '${absent}'\n`,
      ]);
      const usage =
        '(usage: meshaudit verify --dir DIR --pubkey FILE [--pubkey FILE ...] [--from TIME] [--to TIME] [--json])';
      const cases: Array<[string[], string]> = [
        [['--pubkey', pub], '--dir: needs the audit folder'],
        [['--dir', absent], "--pubkey: needs the zone's public key (meshaudit keygen writes one)"],
        [
          ['--dir', absent, '--pubkey', pub, '--from', 'yesterday'],
          '--from: must be an RFC 3339 time such as 2026-03-01T10:00:00Z, got "yesterday"',
        ],
        [
          ['--dir', absent, '--pubkey', pub, '--from', '2026-03-02T00:00:00Z', '--to', '2026-03-01T00:00:00Z'],
          '--from 2026-03-02T00:00:00.000Z is after --to 2026-03-01T00:00:00.000Z',
        ],
      ];
      for (const [args, message] of cases) {
        expect(await meshaudit(['verify', ...args]), args.join(' ')).to.deep.equal({
          code: 2,
          stdout: '',
          stderr: `meshaudit verify: ${message} ${usage}\n`,
        });
      }
    });
  });
});
