// A synthetic tamper-evident trail in a folder, as the sidecar leaves it (src/integrity/format.ts): rotated
// files with their chained digests, retention markers for the oldest ones (deleted), and the active file
// with its seal. Records are one a second, so every file's first and last record times differ.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rotatedName } from '../../src/backends/file/rotation-names';
import {
  type ChainLink,
  type Contents,
  DIGEST_KIND,
  type Digest,
  digestName,
  linkTo,
  MARKER_KIND,
  markerName,
  type RetentionMarker,
  recordDate,
  SEAL_KIND,
  type Seal,
  sealName,
  sha256Hex,
  signDocument,
} from '../../src/integrity/format';

export interface TrailOptions {
  /** The active file's base name (audit.log). */
  readonly active?: string;
  readonly zone?: string;
  /** Rotated files, oldest first (3). */
  readonly rotated?: number;
  /** The oldest of them that retention deleted, leaving a marker (0). */
  readonly deletedByRetention?: number;
  readonly recordsPerFile?: number;
  /** Records in the active file, all sealed (4). */
  readonly activeRecords?: number;
  readonly sealState?: 'open' | 'closed';
  readonly sealIntervalSeconds?: number;
  /** The first record's time (2026-03-01T10:00:00Z). */
  readonly start?: Date;
  /** Signs everything (a new key by default). */
  readonly key?: crypto.KeyObject;
}

export interface Trail {
  readonly dir: string;
  readonly active: string;
  /** Rotated files' base names, oldest first, the deleted ones included. */
  readonly rotated: readonly string[];
  readonly key: crypto.KeyObject;
  readonly publicKey: crypto.KeyObject;
  readonly zone: string;
  readonly sealedAt: Date;
  /** A clock `seconds` after the seal was made. */
  now(seconds: number): () => Date;
  /** The next record line after everything written. */
  nextRecord(): string;
  path(name: string): string;
}

const MS_PER_RECORD = 1000;
/** Rotations and signatures land this long after the record before them. */
const LAG_MS = 500;

/** Writes the trail into `dir` (which may hold other backends' trails). */
export function writeTrail(dir: string, opts: TrailOptions = {}): Trail {
  const active = opts.active ?? 'audit.log';
  const zone = opts.zone ?? 'zone-1';
  const key = opts.key ?? crypto.generateKeyPairSync('ed25519').privateKey;
  const perFile = opts.recordsPerFile ?? 5;
  let seq = 0;
  let atMs = (opts.start ?? new Date('2026-03-01T10:00:00Z')).getTime();
  const records = (n: number): string => {
    let text = '';
    for (let i = 0; i < n; i++, seq++, atMs += MS_PER_RECORD) text += record(new Date(atMs), zone, seq);
    return text;
  };
  const rotated: string[] = [];
  let previous: ChainLink | null = null;
  for (let i = 0; i < (opts.rotated ?? 3); i++) {
    const firstSeq = seq;
    const text = records(perFile);
    const rotatedAt = new Date(atMs - MS_PER_RECORD + LAG_MS);
    const name = rotatedName(active, rotatedAt, 1);
    fs.writeFileSync(path.join(dir, name), text);
    const doc: Omit<Digest, 'signature' | 'keyId'> = {
      kind: DIGEST_KIND,
      zone,
      ...contents(name, text, firstSeq),
      previous,
      signedAt: new Date(rotatedAt.getTime() + LAG_MS).toISOString(),
    };
    const signed = signDocument<Digest>(doc, key);
    fs.writeFileSync(path.join(dir, digestName(name)), signed);
    previous = linkTo(digestName(name), signed);
    rotated.push(name);
  }
  for (const name of rotated.slice(0, opts.deletedByRetention ?? 0)) {
    writeMarker(dir, name, zone, linkTo(digestName(name), fs.readFileSync(path.join(dir, digestName(name)))), key);
    fs.rmSync(path.join(dir, name));
  }
  const firstSeq = seq;
  const text = records(opts.activeRecords ?? 4);
  fs.writeFileSync(path.join(dir, active), text);
  const sealedAt = new Date(atMs - MS_PER_RECORD + LAG_MS);
  const seal: Omit<Seal, 'signature' | 'keyId'> = {
    kind: SEAL_KIND,
    zone,
    ...contents(active, text, firstSeq),
    previous,
    state: opts.sealState ?? 'open',
    sealIntervalSeconds: opts.sealIntervalSeconds ?? 60,
    signedAt: sealedAt.toISOString(),
  };
  fs.writeFileSync(path.join(dir, sealName(active)), signDocument<Seal>(seal, key));
  return {
    dir,
    active,
    rotated,
    key,
    publicKey: crypto.createPublicKey(key),
    zone,
    sealedAt,
    now: (seconds) => () => new Date(sealedAt.getTime() + seconds * 1000),
    nextRecord: () => records(1),
    path: (name) => path.join(dir, name),
  };
}

/** A record line as the sidecar writes them: `{"date":...` first. */
function record(at: Date, zone: string, seq: number): string {
  const date = at.toISOString().replace('.000Z', 'Z');
  return `{"date":"${date}","action":"create","zone":"${zone}","type":"Mesh","name":"mesh-${String(seq).padStart(4, '0')}","user":"admin"}\n`;
}

/** What a digest or a seal says of `text`, the content of `file`. */
function contents(file: string, text: string, firstSeq: number): Contents {
  const lines = text.split('\n').slice(0, -1);
  return {
    file,
    sizeBytes: Buffer.byteLength(text),
    sha256: sha256Hex(text),
    records: lines.length,
    firstRecordAt: lines.length === 0 ? null : recordDate(Buffer.from(lines[0])),
    lastRecordAt: lines.length === 0 ? null : recordDate(Buffer.from(lines[lines.length - 1])),
    identifiers: lines.length === 0 ? {} : { 'zone-1/cp-0': { firstSeq, lastSeq: firstSeq + lines.length - 1 } },
  };
}

/** The retention marker of the rotated file `name`, deleted (the file itself is left to the caller). */
export function writeMarker(
  dir: string,
  name: string,
  zone: string,
  digest: ChainLink | null,
  key: crypto.KeyObject,
): void {
  const marker: Omit<RetentionMarker, 'signature' | 'keyId'> = {
    kind: MARKER_KIND,
    zone,
    file: name,
    digest,
    reason: 'maxRetainedFiles 2',
    signedAt: new Date('2026-03-02T00:00:00Z').toISOString(),
  };
  fs.writeFileSync(path.join(dir, markerName(name)), signDocument<RetentionMarker>(marker, key));
}

/** Signs the document in `file` again, as it is, with `key`: what an attacker with another key can do. */
export function resign(file: string, key: crypto.KeyObject): void {
  const { signature: _signature, keyId: _keyId, ...doc } = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.writeFileSync(file, signDocument(doc, key));
}

/**
 * Replaces the digest of the rotated file `name` with one of the file as it is now, signed with `key`,
 * keeping its link: what an attacker who edited the file and holds some key writes.
 */
export function redigest(trail: Trail, name: string, key: crypto.KeyObject): void {
  const file = trail.path(digestName(name));
  const old = JSON.parse(fs.readFileSync(file, 'utf8')) as Digest;
  const text = fs.readFileSync(trail.path(name), 'utf8');
  const doc: Omit<Digest, 'signature' | 'keyId'> = {
    ...contents(name, text, 0),
    kind: DIGEST_KIND,
    zone: old.zone,
    previous: old.previous,
    signedAt: old.signedAt,
  };
  fs.writeFileSync(file, signDocument<Digest>(doc, key));
}

/** Writes `key`'s public key (SPKI PEM) to `file`. */
export function writePublicKey(file: string, key: crypto.KeyObject): void {
  fs.writeFileSync(file, crypto.createPublicKey(key).export({ type: 'spki', format: 'pem' }));
}
