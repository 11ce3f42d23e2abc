// The zone's Ed25519 key pair on disk: `meshaudit keygen` writes one, the sidecar signs with the private
// key (meshaudit.integrity.keyFile, or one generated once in <dataDir>/integrity/), `meshaudit verify`
// reads public keys. The private key is PKCS8 PEM readable by its owner alone; the public key, SPKI PEM,
// may be read by anyone (it is what an auditor is given). A generated key shows edits made by anyone who
// cannot read the data directory, not by its owner (docs/integrity.md, the threat model).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MeshauditError } from '../errors';
import { syncDir } from '../store/durable-file';
import { keyIdOf } from './format';

export const PRIVATE_KEY_FILE = 'meshaudit-signing.key';
export const PUBLIC_KEY_FILE = 'meshaudit-signing.pub';
/** Whatever the umask: a signing key readable by others lets them forge the trail. */
const PRIVATE_KEY_MODE = 0o600;
const PUBLIC_KEY_MODE = 0o644;
/** A folder keygen creates: its owner's alone, as the key in it. */
const KEY_DIR_MODE = 0o700;
/** A PEM key is a few hundred bytes; anything far larger is not one (and is not read whole). */
const KEY_FILE_BYTES = 64 * 1024;

/** A key file that cannot be written or used; the message names it (exit 2). */
export class KeyFileError extends MeshauditError {
  readonly kind = 'invalid-argument';
  override readonly exitCode = 2;
}

export interface WrittenKeyPair {
  readonly keyFile: string;
  readonly publicKeyFile: string;
  readonly keyId: string;
}

/**
 * Generates a key pair and writes it to `dir` (created, mode 0700, when absent) as PRIVATE_KEY_FILE and
 * PUBLIC_KEY_FILE. An existing file of either name is never overwritten: a KeyFileError naming it, and
 * nothing written.
 */
export function writeKeyPair(dir: string): WrittenKeyPair {
  const keyFile = path.join(dir, PRIVATE_KEY_FILE);
  const publicKeyFile = path.join(dir, PUBLIC_KEY_FILE);
  for (const file of [keyFile, publicKeyFile]) {
    if (fs.existsSync(file))
      throw new KeyFileError(`${file} exists: not overwritten (move it away, or choose another folder)`);
  }
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  try {
    fs.mkdirSync(dir, { recursive: true, mode: KEY_DIR_MODE });
  } catch (e) {
    throw new KeyFileError(`can't create ${dir}: ${(e as Error).message}`);
  }
  writeNew(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, PRIVATE_KEY_MODE);
  writeNew(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }) as string, PUBLIC_KEY_MODE);
  try {
    syncDir(fs, dir);
  } catch (e) {
    throw new KeyFileError(`can't fsync ${dir}: ${(e as Error).message}`);
  }
  return { keyFile, publicKeyFile, keyId: keyIdOf(publicKey) };
}

/** Creates `file` (failing if it exists: another keygen may race this one) with `text` and `mode`. */
function writeNew(file: string, text: string, mode: number): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', mode);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new KeyFileError(
      err.code === 'EEXIST' ? `${file} exists: not overwritten` : `can't create ${file}: ${err.message}`,
    );
  }
  try {
    // The umask narrows the mode given to open: 0644 under a umask of 077 would be 0600.
    fs.fchmodSync(fd, mode);
    fs.writeFileSync(fd, text);
    fs.fsyncSync(fd);
  } catch (e) {
    throw new KeyFileError(`can't write ${file}: ${(e as Error).message}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** The Ed25519 public key in the PEM file `file`; a KeyFileError naming the file when it is not one. */
export function readPublicKey(file: string): crypto.KeyObject {
  let text: string;
  try {
    const size = fs.statSync(file).size;
    if (size > KEY_FILE_BYTES) throw new Error(`${size} bytes: a PEM key is a few hundred`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new KeyFileError(`can't read ${file}: ${(e as Error).message}`);
  }
  // createPublicKey takes a private key too (and derives the public one): an auditor is given the public key only.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw new KeyFileError(`${file} is a private key: give the public key (${PUBLIC_KEY_FILE}) instead`);
  }
  if (!text.includes('-----BEGIN ')) throw new KeyFileError(`${file} is not a PEM key (no -----BEGIN line)`);
  let key: crypto.KeyObject;
  try {
    key = crypto.createPublicKey({ key: text, format: 'pem' });
  } catch (e) {
    throw new KeyFileError(`${file} is not a PEM public key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new KeyFileError(`${file} is a ${key.asymmetricKeyType} key: the trail is signed with Ed25519`);
  }
  return key;
}

/** Where a generated key pair is kept, under the data directory. */
export const GENERATED_KEY_DIR = 'integrity';

export interface SigningKey {
  readonly key: crypto.KeyObject;
  readonly keyId: string;
  /** Where its public key is (a generated key), for the start-up line; undefined with a keyFile. */
  readonly publicKeyFile: string | undefined;
  /** The public key, PEM. */
  readonly publicKeyPem: string;
  /** True when this start generated it. */
  readonly generated: boolean;
}

/**
 * The key meshaudit.integrity.keyFile names, or the one generated in the data directory (made on first
 * use). A KeyFileError names the file when it cannot be read or is not an Ed25519 private key.
 */
export function loadSigningKey(keyFile: string | undefined, dataDir: string): SigningKey {
  let file = keyFile;
  let generated = false;
  let publicKeyFile: string | undefined;
  if (file === undefined) {
    const dir = path.join(dataDir, GENERATED_KEY_DIR);
    file = path.join(dir, PRIVATE_KEY_FILE);
    publicKeyFile = path.join(dir, PUBLIC_KEY_FILE);
    if (!fs.existsSync(file)) {
      writeKeyPair(dir);
      generated = true;
    }
  }
  const what = `meshaudit.integrity.keyFile ${file}`;
  let pem: string;
  try {
    const size = fs.statSync(file).size;
    if (size > KEY_FILE_BYTES) throw new Error(`${size} bytes: a PEM key is a few hundred`);
    pem = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new KeyFileError(`can't read ${what}: ${(e as Error).message}`);
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(pem);
  } catch (e) {
    throw new KeyFileError(`${what} is not a PEM private key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new KeyFileError(`${what} is a ${key.asymmetricKeyType} key, not Ed25519 (meshaudit keygen makes one)`);
  }
  const publicKeyPem = crypto.createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string;
  return { key, keyId: keyIdOf(key), publicKeyFile, publicKeyPem, generated };
}
