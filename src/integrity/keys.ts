// The zone's signing key (meshaudit.integrity.keyFile): an Ed25519 private key in PEM. Without keyFile a
// key is generated once in <dataDir>/integrity/ with its public key beside it: the trail then shows edits
// made by anyone who cannot read the data directory, not by its owner (docs/integrity.md, threat model).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeDir, type FileModes } from '../backends/file-modes';
import { MeshauditError } from '../errors';
import { keyIdOf } from './format';

/** Where a generated key and its public key are kept, under the data directory. */
export const GENERATED_KEY_DIR = 'integrity';
export const PRIVATE_KEY_FILE = 'meshaudit-signing.key';
export const PUBLIC_KEY_FILE = 'meshaudit-signing.pub';
/** The private key's mode, whatever meshaudit.files says: only the sidecar's user reads it. */
const PRIVATE_KEY_MODE = 0o600;
const PUBLIC_KEY_MODE = 0o644;

/** The key cannot be used: what is configured must change first (exit 2). */
export class SigningKeyError extends MeshauditError {
  readonly kind = 'invalid-argument';
  override readonly exitCode = 2;
}

export interface SigningKey {
  readonly key: crypto.KeyObject;
  readonly keyId: string;
  /** Where its public key is (generated keys), for the start-up line; undefined with a keyFile. */
  readonly publicKeyFile: string | undefined;
  /** The public key, PEM. */
  readonly publicKeyPem: string;
  /** True when this start generated it. */
  readonly generated: boolean;
}

/** Parses an Ed25519 private key (PEM); `what` names its source in the error. */
export function parsePrivateKey(pem: string, what: string): crypto.KeyObject {
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(pem);
  } catch (e) {
    throw new SigningKeyError(`${what} is not a PEM private key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new SigningKeyError(`${what} is a ${key.asymmetricKeyType} key, not Ed25519 (meshaudit keygen makes one)`);
  }
  return key;
}

/** Writes a new key pair into `dir` (made with `modes` when missing); refuses to overwrite either file. */
export function writeKeyPair(
  dir: string,
  modes: FileModes,
): { privateFile: string; publicFile: string; keyId: string } {
  const privateFile = path.join(dir, PRIVATE_KEY_FILE);
  const publicFile = path.join(dir, PUBLIC_KEY_FILE);
  for (const file of [privateFile, publicFile]) {
    if (fs.existsSync(file))
      throw new SigningKeyError(`${file} exists: a key is never overwritten (move it away first)`);
  }
  makeDir(dir, modes);
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  // 'wx': two starts at once never overwrite each other's key.
  fs.writeFileSync(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: PRIVATE_KEY_MODE,
    flag: 'wx',
  });
  fs.writeFileSync(publicFile, publicKey.export({ type: 'spki', format: 'pem' }), {
    mode: PUBLIC_KEY_MODE,
    flag: 'wx',
  });
  // Whatever the umask.
  fs.chmodSync(privateFile, PRIVATE_KEY_MODE);
  fs.chmodSync(publicFile, PUBLIC_KEY_MODE);
  return { privateFile, publicFile, keyId: keyIdOf(privateKey) };
}

/** The key meshaudit.integrity names, or the one generated in the data directory (made on first use). */
export function loadSigningKey(keyFile: string | undefined, dataDir: string, modes: FileModes): SigningKey {
  let file = keyFile;
  let generated = false;
  let publicKeyFile: string | undefined;
  if (file === undefined) {
    const dir = path.join(dataDir, GENERATED_KEY_DIR);
    file = path.join(dir, PRIVATE_KEY_FILE);
    publicKeyFile = path.join(dir, PUBLIC_KEY_FILE);
    if (!fs.existsSync(file)) {
      writeKeyPair(dir, modes);
      generated = true;
    }
  }
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new SigningKeyError(`can't read meshaudit.integrity.keyFile ${file}: ${(e as Error).message}`);
  }
  const key = parsePrivateKey(pem, `meshaudit.integrity.keyFile ${file}`);
  const publicKeyPem = crypto.createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string;
  return { key, keyId: keyIdOf(key), publicKeyFile, publicKeyPem, generated };
}
