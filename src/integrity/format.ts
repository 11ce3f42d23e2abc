// The signed documents of the tamper-evident trail (meshaudit.integrity, docs/integrity.md), and how they
// are named beside the audit files. Pure: node:crypto and no I/O, so that the sidecar that writes them
// and `meshaudit verify` that checks them share one definition.
//
// For the active file `audit.log` of a backend:
// - `audit-<time>.log.digest.json`: the digest of one rotated file, written once every byte of it is
//   acknowledged: its SHA-256, size, records, first and last record time, the identifiers and sequence
//   ranges it holds, and the link to the digest before it (its file and the SHA-256 of that file's
//   bytes). Digests chain: removing, reordering or replacing a whole file breaks the chain.
// - `audit-<time>.log.deleted.json`: retention's marker for a rotated file it deleted (its digest stays).
// - `audit.log.seal.json`: the seal of the active file, replaced every sealIntervalSeconds, at start-up
//   and at a graceful stop: the size and SHA-256 of its acknowledged bytes so far, linked to the newest
//   digest. A seal found broken at start-up is kept as `audit.log.seal-mismatch-<time>.json`.
// Every document is one JSON object whose `signature` is the Ed25519 signature of the canonical JSON
// (keys sorted, no spaces) of the object without it; `keyId` names the key that signed it.
import * as crypto from 'node:crypto';
import { DIGEST_SUFFIX, MARKER_SUFFIX } from '../backends/file/rotation-names';

export { DIGEST_SUFFIX, MARKER_SUFFIX };
export const SEAL_SUFFIX = '.seal.json';

export const DIGEST_KIND = 'meshaudit.digest/v1';
export const MARKER_KIND = 'meshaudit.retention/v1';
export const SEAL_KIND = 'meshaudit.seal/v1';

/** The sequences of one control-plane identifier (`zone/instance`) acknowledged while a file was active. */
export interface SequenceRange {
  readonly firstSeq: number;
  readonly lastSeq: number;
}

/** A link to the digest before: the chain. Null: the first digest of the backend's history. */
export interface ChainLink {
  /** The digest file's base name. */
  readonly file: string;
  /** SHA-256 (hex) of the digest file's bytes, as written. */
  readonly sha256: string;
}

/** What is common to the content of a digest and of a seal. */
export interface Contents {
  /** The audit file's base name. */
  readonly file: string;
  /** Bytes covered: the whole rotated file, or the active file's acknowledged bytes. */
  readonly sizeBytes: number;
  /** SHA-256 (hex) of those bytes. */
  readonly sha256: string;
  /** Record lines in them. */
  readonly records: number;
  /** The `date` of the first and last record in them; null without records. */
  readonly firstRecordAt: string | null;
  readonly lastRecordAt: string | null;
  /**
   * The control-plane identifiers whose batches were acknowledged while the file was active, with their
   * sequence ranges, to the batch: a batch whose records were split by a rotation is in both files.
   */
  readonly identifiers: Readonly<Record<string, SequenceRange>>;
}

export interface Digest extends Contents {
  readonly kind: typeof DIGEST_KIND;
  readonly zone: string;
  readonly previous: ChainLink | null;
  readonly signedAt: string;
  readonly keyId: string;
  readonly signature: string;
}

export interface Seal extends Contents {
  readonly kind: typeof SEAL_KIND;
  readonly zone: string;
  /** The newest digest when the seal was made (null: no file has rotated yet). */
  readonly previous: ChainLink | null;
  /** `open`: the sidecar was writing and seals again within sealIntervalSeconds; `closed`: it stopped. */
  readonly state: 'open' | 'closed';
  readonly sealIntervalSeconds: number;
  readonly signedAt: string;
  readonly keyId: string;
  readonly signature: string;
}

export interface RetentionMarker {
  readonly kind: typeof MARKER_KIND;
  readonly zone: string;
  /** The deleted rotated file's base name. */
  readonly file: string;
  /** Its digest, as the chain holds it (null: it had none, which verify reports). */
  readonly digest: ChainLink | null;
  /** The retention limits that deleted it. */
  readonly reason: string;
  readonly signedAt: string;
  readonly keyId: string;
  readonly signature: string;
}

export type SignedDocument = Digest | Seal | RetentionMarker;

/** Canonical JSON: keys sorted at every level, no spaces: what is signed, whatever order a parser gives. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The key's id: the first 16 hex digits of the SHA-256 of its public key (SPKI, DER). */
export function keyIdOf(key: crypto.KeyObject): string {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  return crypto
    .createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

/** Signs `doc` (without its signature) with the Ed25519 `key`: the document as written, one line. */
export function signDocument<T extends SignedDocument>(
  doc: Omit<T, 'signature' | 'keyId'>,
  key: crypto.KeyObject,
): string {
  const unsigned = { ...doc, keyId: keyIdOf(key) };
  const signature = crypto.sign(null, Buffer.from(canonicalJson(unsigned)), key).toString('base64');
  return `${JSON.stringify({ ...unsigned, signature })}\n`;
}

/** Whether `doc`'s signature is the public key's over the rest of it. */
export function signatureValid(doc: Record<string, unknown>, publicKey: crypto.KeyObject): boolean {
  const { signature, ...rest } = doc;
  if (typeof signature !== 'string') return false;
  try {
    return crypto.verify(null, Buffer.from(canonicalJson(rest)), publicKey, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

export function sha256Hex(data: Buffer | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** The link to a digest written as `text` under the base name `file`. */
export function linkTo(file: string, text: Buffer | string): ChainLink {
  return { file, sha256: sha256Hex(text) };
}

export function digestName(rotatedFile: string): string {
  return `${rotatedFile}${DIGEST_SUFFIX}`;
}

export function markerName(rotatedFile: string): string {
  return `${rotatedFile}${MARKER_SUFFIX}`;
}

export function sealName(activeFile: string): string {
  return `${activeFile}${SEAL_SUFFIX}`;
}

/**
 * A seal the sidecar found broken at start-up (the active file was edited or cut while it was stopped),
 * kept as evidence: `audit.log.seal-mismatch-<time>.json`. `meshaudit verify` reports every one.
 */
export function mismatchName(activeFile: string, at: Date): string {
  return `${activeFile}${MISMATCH_INFIX}${at.toISOString().replace(/:/g, '-')}.json`;
}

export const MISMATCH_INFIX = '.seal-mismatch-';

/** Hashes and counts acknowledged bytes given in any pieces: a file is read once, in chunks. */
export class ContentsCounter {
  private readonly hash = crypto.createHash('sha256');
  sizeBytes = 0;
  records = 0;

  update(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.hash.update(chunk);
    this.sizeBytes += chunk.length;
    this.records += recordLines(chunk);
  }

  /** The SHA-256 so far, leaving the counter open for more. */
  sha256(): string {
    return this.hash.copy().digest('hex');
  }
}

/** The bytes of a record line that hold its `date`: records start `{"date":"...",`. */
export const DATE_PREFIX_BYTES = 64;

/** A record's `date`, as written, from the start of its line; null for a line that is not a record. */
export function recordDate(lineStart: Buffer): string | null {
  const m = /^\{"date":"([^"]*)"/.exec(lineStart.subarray(0, DATE_PREFIX_BYTES).toString('latin1'));
  return m === null ? null : m[1];
}

/** The record lines a chunk of an audit file ends: its newlines. */
export function recordLines(chunk: Buffer): number {
  let n = 0;
  for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, i + 1)) n++;
  return n;
}
