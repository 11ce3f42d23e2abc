// `meshaudit verify`: checks the tamper-evident trail of every backend in an audit folder against the
// zone's public keys, and gives each audit file one verdict (docs/integrity.md has them all). A pure
// function of the folder's bytes, the keys and the clock: files are read in chunks (contentsOf), so a
// folder of 100 MB files is checked in bounded memory.
//
// What a backend's trail is (format.ts): rotated files, each with a signed digest; the digests chained
// in rotation order (each links to the one before by the SHA-256 of its bytes); a signed retention marker
// for each rotated file retention deleted; and the seal of the active file, linked to the newest digest.
import type * as crypto from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { COMPRESSED_SUFFIX, timeFromName } from '../backends/file/rotation-names';
import { parseRfc3339 } from '../events/rfc3339';
import {
  type ChainLink,
  type Contents,
  ContentsCounter,
  DIGEST_KIND,
  DIGEST_SUFFIX,
  type Digest,
  digestName,
  keyIdOf,
  MARKER_KIND,
  MARKER_SUFFIX,
  type RetentionMarker,
  SEAL_KIND,
  MISMATCH_INFIX,
  SEAL_SUFFIX,
  type Seal,
  sealName,
  type SignedDocument,
  sha256Hex,
  signatureValid,
} from './format';
import { contentsOf, gunzippedContents } from './read-contents';

export type Verdict =
  | 'ok'
  | 'deleted-by-retention'
  | 'missing'
  | 'modified'
  | 'out-of-order'
  | 'truncated'
  | 'extended-after-seal'
  | 'unsealed'
  | 'bad-signature'
  | 'chain-broken';

/** The verdicts of an intact trail. */
export const INTACT_VERDICTS: ReadonlySet<Verdict> = new Set(['ok', 'deleted-by-retention']);

export interface FileReport {
  /** The audit file's base name. */
  readonly file: string;
  readonly verdict: Verdict;
  /** Why, for a problem (every finding, the decisive one first); a note, or "", for an intact file. */
  readonly detail: string;
  /** What its digest or seal says it holds (what it holds, for a file without one). */
  readonly records?: number;
  readonly firstRecordAt?: string;
  readonly lastRecordAt?: string;
}

export interface TrailReport {
  /** Every verdict is ok or deleted-by-retention. */
  readonly ok: boolean;
  /** Per backend (by active file name), its rotated files oldest first, then its active file. */
  readonly files: FileReport[];
  /** Files whose verdict is neither ok nor deleted-by-retention. */
  readonly problems: number;
  /** The active files whose trail was found (all of them, whatever from/to leave out of `files`). */
  readonly activeFiles: string[];
}

export interface VerifyOptions {
  /** The audit folder: the audit files and the digests, markers and seals beside them. */
  readonly dir: string;
  /** A document is valid when one of these verifies it (the zone's key, and older keys of the zone). */
  readonly publicKeys: readonly crypto.KeyObject[];
  /** Only files whose [firstRecordAt, lastRecordAt] overlaps [from, to] are reported. */
  readonly from?: Date;
  readonly to?: Date;
  readonly now?: () => Date;
}

/**
 * A seal is stale (the sidecar would have replaced it) this long past sealIntervalSeconds x 2: a seal
 * that missed one beat (a slow disk) is not yet stale.
 */
const SEAL_GRACE_MS = 5_000;
const SEAL_STALE_INTERVALS = 2;
/** A digest, marker or seal is a few KiB (its identifiers); a larger file is not one and is not read whole. */
const DOCUMENT_BYTES = 1024 * 1024;
/** The most telling verdict of a file with several findings comes first. */
const VERDICT_ORDER: readonly Verdict[] = [
  'bad-signature',
  'missing',
  'out-of-order',
  'truncated',
  'modified',
  'extended-after-seal',
  'chain-broken',
  'unsealed',
];
/** The time in a rotated name, as rotation-names.ts writes it. */
const NAME_TIMESTAMP = /-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}/g;

/** Checks the trail of every backend in `opts.dir`. Rejects only when the folder cannot be listed. */
export async function verifyTrail(opts: VerifyOptions): Promise<TrailReport> {
  const now = (opts.now ?? (() => new Date()))();
  const entries = await fsp.readdir(opts.dir, { withFileTypes: true });
  const regular = new Set(entries.filter((e) => e.isFile()).map((e) => e.name));
  const all = new Set(entries.map((e) => e.name));
  const folder = new Folder(opts.dir, regular, opts.publicKeys);
  const actives = activeFilesOf(all);
  const backends: Backend[] = [];
  for (const active of actives) backends.push(await folder.backend(active, [...all]));
  // Bytes found under another file's name are a swap, whatever backend the digest is of. Empty files
  // are all alike: an emptied file is truncated, not another empty file.
  const digestsByContent = new Map<string, string>();
  for (const b of backends) {
    for (const [name, d] of b.digests) {
      if (d.doc !== undefined && d.doc.sizeBytes > 0) digestsByContent.set(contentKey(d.doc), name);
    }
  }
  const files: FileReport[] = [];
  for (const b of backends) files.push(...(await new BackendCheck(folder, b, digestsByContent, now).run()));
  const shown = files.filter((f) => overlaps(f, opts.from, opts.to));
  const problems = shown.filter((f) => !INTACT_VERDICTS.has(f.verdict)).length;
  return { ok: problems === 0, files: shown, problems, activeFiles: actives };
}

/**
 * The active files of a folder: those named by a seal, and those whose rotated files, digests or markers
 * are there (a trail whose seal is gone is still checked).
 */
function activeFilesOf(names: ReadonlySet<string>): string[] {
  const actives = new Set<string>();
  for (const name of names) {
    if (name.endsWith(SEAL_SUFFIX)) actives.add(name.slice(0, -SEAL_SUFFIX.length));
    else {
      const rotated =
        withoutSuffix(name, DIGEST_SUFFIX) ??
        withoutSuffix(name, MARKER_SUFFIX) ??
        withoutSuffix(name, COMPRESSED_SUFFIX) ??
        name;
      const active = activeOf(rotated);
      if (active !== undefined) actives.add(active);
    }
  }
  return [...actives].sort();
}

function withoutSuffix(name: string, suffix: string): string | undefined {
  return name.endsWith(suffix) ? name.slice(0, -suffix.length) : undefined;
}

/** The active file whose rotated file `name` is (`audit-2026-...log` -> `audit.log`); undefined if none. */
function activeOf(name: string): string | undefined {
  for (const m of [...name.matchAll(NAME_TIMESTAMP)].reverse()) {
    const candidate = name.slice(0, m.index) + name.slice(m.index + m[0].length);
    if (candidate !== '' && timeFromName(candidate, name) !== undefined) return candidate;
  }
  return undefined;
}

function contentKey(c: { sizeBytes: number; sha256: string }): string {
  return `${c.sizeBytes}:${c.sha256}`;
}

/** Whether the file's records overlap [from, to]; a file whose records are unknown always does. */
function overlaps(f: FileReport, from: Date | undefined, to: Date | undefined): boolean {
  if (from === undefined && to === undefined) return true;
  const first = f.firstRecordAt === undefined ? NaN : parseRfc3339(f.firstRecordAt);
  const last = f.lastRecordAt === undefined ? NaN : parseRfc3339(f.lastRecordAt);
  if (Number.isNaN(first) || Number.isNaN(last)) return true;
  return (from === undefined || last >= from.getTime()) && (to === undefined || first <= to.getTime());
}

/** A digest, marker or seal as found: its bytes, and the document when it is valid. */
interface Loaded<T> {
  /** The document's base name. */
  readonly name: string;
  readonly bytes: Buffer;
  /** Undefined: not valid, `problem` says why. */
  readonly doc?: T;
  readonly problem?: Finding;
}

/** One backend's trail as found in the folder. */
interface Backend {
  readonly active: string;
  /** Every rotated name of the backend that a file, a digest or a marker has, oldest first. */
  readonly names: readonly string[];
  readonly digests: ReadonlyMap<string, Loaded<Digest>>;
  readonly markers: ReadonlyMap<string, Loaded<RetentionMarker>>;
  readonly seal: Loaded<Seal> | undefined;
  /** Seals the sidecar found broken at start-up and kept as evidence (`<active>.seal-mismatch-<time>.json`). */
  readonly evidence: readonly Loaded<Seal>[];
}

/** The folder: reading its files, checking documents against the keys. */
class Folder {
  private readonly keyIds: ReadonlyMap<string, crypto.KeyObject>;

  constructor(
    readonly dir: string,
    private readonly regular: ReadonlySet<string>,
    private readonly publicKeys: readonly crypto.KeyObject[],
  ) {
    this.keyIds = new Map(publicKeys.map((k) => [keyIdOf(k), k]));
  }

  async backend(active: string, names: readonly string[]): Promise<Backend> {
    const rotated = new Set<string>();
    const digests = new Map<string, Loaded<Digest>>();
    const markers = new Map<string, Loaded<RetentionMarker>>();
    for (const name of names) {
      const digestOf = withoutSuffix(name, DIGEST_SUFFIX);
      const markerOf = withoutSuffix(name, MARKER_SUFFIX);
      if (digestOf !== undefined && timeFromName(active, digestOf) !== undefined) {
        rotated.add(digestOf);
        digests.set(digestOf, await this.load<Digest>(name, DIGEST_KIND, digestOf));
      } else if (markerOf !== undefined && timeFromName(active, markerOf) !== undefined) {
        rotated.add(markerOf);
        markers.set(markerOf, await this.load<RetentionMarker>(name, MARKER_KIND, markerOf));
      } else if (this.regular.has(name) && timeFromName(active, name) !== undefined) rotated.add(name);
      else if (
        this.regular.has(name) &&
        timeFromName(active, withoutSuffix(name, COMPRESSED_SUFFIX) ?? '') !== undefined
      ) {
        rotated.add(name.slice(0, -COMPRESSED_SUFFIX.length));
      }
    }
    const seal = names.includes(sealName(active))
      ? await this.load<Seal>(sealName(active), SEAL_KIND, active)
      : undefined;
    const evidence: Loaded<Seal>[] = [];
    for (const name of names) {
      if (name.startsWith(`${active}${MISMATCH_INFIX}`) && name.endsWith('.json')) {
        evidence.push(await this.load<Seal>(name, SEAL_KIND, active));
      }
    }
    return { active, names: byRotation(active, rotated), digests, markers, seal, evidence };
  }

  /** Reads the document `name` of kind `kind` about the audit file `about`, and checks it. */
  private async load<T extends SignedDocument>(name: string, kind: string, about: string): Promise<Loaded<T>> {
    const what = `${kind === DIGEST_KIND ? 'digest' : kind === MARKER_KIND ? 'retention marker' : 'seal'} ${name}`;
    const invalid = (bytes: Buffer, detail: string, verdict: Verdict = 'bad-signature'): Loaded<T> => ({
      name,
      bytes,
      problem: { verdict, detail: `its ${what} ${detail}` },
    });
    let bytes: Buffer;
    try {
      const file = path.join(this.dir, name);
      const { size } = await fsp.stat(file);
      if (size > DOCUMENT_BYTES) return invalid(Buffer.alloc(0), `is ${size} bytes: not a document`);
      bytes = await fsp.readFile(file);
    } catch (e) {
      return invalid(Buffer.alloc(0), `cannot be read: ${(e as Error).message}`);
    }
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(bytes.toString('utf8'));
      if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('not a JSON object');
    } catch (e) {
      return invalid(bytes, `is not a signed document (${(e as Error).message})`);
    }
    const keyId = typeof doc.keyId === 'string' ? doc.keyId : '(none)';
    if (!this.publicKeys.some((k) => signatureValid(doc, k))) {
      return invalid(
        bytes,
        this.keyIds.has(keyId)
          ? `does not verify with key ${keyId}: changed after it was signed`
          : `is signed with key ${keyId}, which no given public key is (given: ${[...this.keyIds.keys()].join(', ')})`,
      );
    }
    // Signed with the zone's key, so written by a sidecar: well formed unless a bug, checked all the same.
    const wrong = shapeProblem(doc, kind);
    if (wrong !== undefined) return invalid(bytes, `is signed, but ${wrong}`);
    // A valid document under another file's name: renamed, as a file swapped with another is.
    if (doc.file !== about) return invalid(bytes, `is about ${JSON.stringify(doc.file)}, not ${about}`, 'out-of-order');
    return { name, bytes, doc: doc as unknown as T };
  }

  /** `<name>.gz` when the folder holds it (rotation.compress). */
  compressed(name: string): string | undefined {
    const gz = `${name}${COMPRESSED_SUFFIX}`;
    return this.regular.has(gz) ? gz : undefined;
  }

  /** Opens the audit file `name`; undefined when it is not there. */
  async open(name: string): Promise<fsp.FileHandle | undefined> {
    if (!this.regular.has(name)) return undefined;
    try {
      return await fsp.open(path.join(this.dir, name), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }
}

function byRotation(active: string, names: Iterable<string>): string[] {
  return [...names].sort((a, b) => rotatedAtMs(active, a) - rotatedAtMs(active, b));
}

function rotatedAtMs(active: string, name: string): number {
  return timeFromName(active, name)?.getTime() ?? NaN;
}

/** What is wrong with the form of a validly signed document, if anything. */
function shapeProblem(doc: Record<string, unknown>, kind: string): string | undefined {
  if (doc.kind !== kind) return `of kind ${JSON.stringify(doc.kind)}, not ${kind}`;
  const isLink = (v: unknown): boolean =>
    v === null ||
    (typeof v === 'object' && typeof (v as ChainLink).file === 'string' && typeof (v as ChainLink).sha256 === 'string');
  if (kind === MARKER_KIND) return isLink(doc.digest) ? undefined : 'its digest link is malformed';
  if (typeof doc.sizeBytes !== 'number' || typeof doc.sha256 !== 'string' || typeof doc.records !== 'number') {
    return 'without sizeBytes, sha256 or records';
  }
  if (!isLink(doc.previous)) return 'its previous link is malformed';
  if (
    kind === SEAL_KIND &&
    (typeof doc.sealIntervalSeconds !== 'number' || Number.isNaN(Date.parse(String(doc.signedAt))))
  ) {
    return 'without sealIntervalSeconds or signedAt';
  }
  return undefined;
}

/** What a digest or a seal says of the bytes it covers. */
type Covered = Pick<Contents, 'sizeBytes' | 'sha256' | 'records' | 'firstRecordAt' | 'lastRecordAt'>;

/** What one audit file holds, read once: all of it, and its first bytes up to a seal's size. */
interface Read extends Covered {
  /** Whether it ends with a whole line. */
  readonly endsWithNewline: boolean;
  /** Its first `prefixBytes` (undefined: it is shorter). */
  readonly prefix?: { readonly sha256: string };
}

/** Reads the file in chunks; undefined when it shrinks while it is read. */
async function readFile(handle: fsp.FileHandle, name: string, prefixBytes?: number): Promise<Read | undefined> {
  const { size } = await handle.stat();
  const counter = new ContentsCounter();
  let prefix: Read['prefix'];
  if (prefixBytes !== undefined && prefixBytes <= size) {
    const covered = await contentsOf(handle, name, prefixBytes, counter);
    if (covered === undefined) return undefined;
    prefix = { sha256: covered.sha256 };
  }
  const whole = await contentsOf(handle, name, size, counter);
  if (whole === undefined) return undefined;
  const last = Buffer.alloc(1);
  const endsWithNewline = size > 0 && (await handle.read(last, 0, 1, size - 1)).bytesRead === 1 && last[0] === 0x0a;
  return { ...whole, endsWithNewline, prefix };
}

/** A compressed rotated file (rotation.compress) as readFile reads a plain one: its uncompressed bytes. */
async function readCompressed(gzFile: string, name: string, prefixBytes?: number): Promise<Read> {
  const { endsWithNewline, prefixSha256, ...whole } = await gunzippedContents(gzFile, name, prefixBytes);
  return { ...whole, endsWithNewline, prefix: prefixSha256 === undefined ? undefined : { sha256: prefixSha256 } };
}

interface Finding {
  readonly verdict: Verdict;
  readonly detail: string;
}

/** What is known of one audit file while its backend is checked. */
interface Entry {
  readonly file: string;
  readonly findings: Finding[];
  /** Said of an intact file. */
  readonly notes: string[];
  deleted: boolean;
  covered?: Covered;
}

/** What the seal covers: the active file, or (a seal made before a rotation, not yet replaced) a rotated file. */
interface SealCover {
  readonly seal: Seal;
  /** The file that was active when the seal was made. */
  readonly file: string;
  /** Open, and not older than the sidecar would leave it: bytes after it are not yet due to be sealed. */
  readonly recent: boolean;
}

/** The checks of one backend's trail, each finding put on the file it concerns. */
class BackendCheck {
  private readonly entries = new Map<string, Entry>();
  /** The rotated names whose digest a digest, the seal or a marker links to, with who links. */
  private readonly linkedBy = new Map<string, string[]>();
  /** The backend's rotated names, those named by a link alone (the file and its digest gone) included. */
  private names: string[] = [];
  /** The rotated names whose digest is, or is linked to: the chain, in rotation order. */
  private chain: string[] = [];
  /** Each rotated name's place in the rotation order (a trail keeps its digests for years: thousands). */
  private readonly position = new Map<string, number>();

  constructor(
    private readonly folder: Folder,
    private readonly b: Backend,
    private readonly digestsByContent: ReadonlyMap<string, string>,
    private readonly now: Date,
  ) {}

  async run(): Promise<FileReport[]> {
    this.collectLinks();
    this.chain = this.names.filter((n) => this.b.digests.has(n) || this.linkedBy.has(n));
    this.checkDocuments();
    this.checkChain();
    const cover = this.checkSeal();
    for (const name of this.names) await this.checkRotated(name, cover);
    await this.checkActive(cover);
    // The sidecar itself found the active file changed while it was stopped: the old seal is the proof.
    for (const e of this.b.evidence) {
      const at = e.doc === undefined ? '' : ` of ${e.doc.signedAt} (${e.doc.sizeBytes} bytes)`;
      this.find(
        this.b.active,
        'modified',
        `at a start-up the sidecar found that ${this.b.active} no longer held what its seal${at} sealed; that seal is kept as ${e.name}`,
      );
    }
    return [...this.names, this.b.active].map((n) => report(this.entry(n)));
  }

  private entry(file: string): Entry {
    let e = this.entries.get(file);
    if (e === undefined) {
      e = { file, findings: [], notes: [], deleted: false };
      this.entries.set(file, e);
    }
    return e;
  }

  private find(file: string, verdict: Verdict, detail: string): void {
    this.entry(file).findings.push({ verdict, detail });
  }

  /** The rotated file of this backend whose digest `link` names; undefined when it names none. */
  private linked(link: ChainLink): string | undefined {
    const rotated = withoutSuffix(link.file, DIGEST_SUFFIX);
    return rotated !== undefined && timeFromName(this.b.active, rotated) !== undefined ? rotated : undefined;
  }

  private linkers(name: string): string {
    return (this.linkedBy.get(name) ?? []).join(', ');
  }

  private collectLinks(): void {
    const add = (link: ChainLink | null, by: string): void => {
      const rotated = link === null ? undefined : this.linked(link);
      if (rotated === undefined) return;
      this.linkedBy.set(rotated, [...(this.linkedBy.get(rotated) ?? []), by]);
    };
    for (const [name, d] of this.b.digests) if (d.doc !== undefined) add(d.doc.previous, `the digest of ${name}`);
    if (this.b.seal?.doc !== undefined) add(this.b.seal.doc.previous, 'the seal');
    for (const [name, m] of this.b.markers)
      if (m.doc !== undefined) add(m.doc.digest, `the retention marker of ${name}`);
    // A file named by a link alone (it and its digest gone) has its place in the order by its name.
    this.names = byRotation(this.b.active, new Set([...this.b.names, ...this.linkedBy.keys()]));
    for (const [i, n] of this.names.entries()) this.position.set(n, i);
  }

  /** Invalid documents, and markers that disagree with the digest they name. */
  private checkDocuments(): void {
    for (const [name, d] of [...this.b.digests, ...this.b.markers])
      if (d.problem !== undefined) this.find(name, d.problem.verdict, d.problem.detail);
    const seal = this.b.seal?.problem;
    if (seal !== undefined) this.find(this.b.active, seal.verdict, seal.detail);
    for (const [name, m] of this.b.markers) {
      const link = m.doc?.digest;
      if (link === undefined || link === null) continue;
      if (this.linked(link) === name) this.checkLinkBytes(name, link, 'its retention marker');
      else this.find(name, 'chain-broken', `its retention marker links to ${link.file}, not to ${digestName(name)}`);
    }
  }

  /** A link to `rotated`'s digest whose SHA-256 is not that of the digest's bytes: the digest was replaced. */
  private checkLinkBytes(rotated: string, link: ChainLink, by: string): void {
    const digest = this.b.digests.get(rotated);
    if (digest === undefined || digest.bytes.length === 0) return;
    if (sha256Hex(digest.bytes) !== link.sha256) {
      this.find(
        rotated,
        'chain-broken',
        `its digest is not the one ${by} links to (SHA-256 ${short(link.sha256)}...): replaced`,
      );
    }
  }

  /** Each valid digest links to the one before it in rotation order; the first of the history to none. */
  private checkChain(): void {
    this.chain.forEach((name, i) => {
      const previous = this.b.digests.get(name)?.doc?.previous;
      if (previous === undefined) return;
      const before = i === 0 ? undefined : this.chain[i - 1];
      if (previous === null) {
        if (before !== undefined)
          this.find(name, 'chain-broken', `its digest starts a new chain, yet ${before} comes before it`);
        return;
      }
      const linked = this.linked(previous);
      if (linked === undefined) {
        this.find(name, 'chain-broken', `its digest links to ${previous.file}, no digest of ${this.b.active}`);
      } else if (linked === before) {
        this.checkLinkBytes(before, previous, `the digest of ${name}`);
      } else {
        this.find(
          name,
          'out-of-order',
          `its digest links to the digest of ${linked}, yet ${before ?? 'no digest'} comes before it: the digests do not chain in rotation order`,
        );
      }
    });
  }

  /**
   * The seal's link to the newest digest, and what it covers: the file that was active when it was made,
   * which is the active file unless a rotation came after it (the first file rotated since).
   */
  private checkSeal(): SealCover | undefined {
    const seal = this.b.seal?.doc;
    if (seal === undefined) return undefined;
    const signedAtMs = Date.parse(seal.signedAt);
    const staleAfterMs = SEAL_STALE_INTERVALS * seal.sealIntervalSeconds * 1000 + SEAL_GRACE_MS;
    const recent = seal.state === 'open' && this.now.getTime() - signedAtMs <= staleAfterMs;
    const linked = seal.previous === null ? undefined : this.linked(seal.previous);
    const newest = this.chain.at(-1);
    if (seal.previous !== null && linked === undefined) {
      this.find(
        this.b.active,
        'chain-broken',
        `its seal links to ${seal.previous.file}, no digest of ${this.b.active}`,
      );
    } else if (linked !== newest && !recent) {
      // A digest written since the seal is the sidecar's work of the last moments, not yet in a seal.
      this.find(
        this.b.active,
        'chain-broken',
        `its seal of ${seal.signedAt} links to ${linked === undefined ? 'no digest' : `the digest of ${linked}`}, yet ${newest}'s is the newest`,
      );
    } else if (linked !== undefined && linked === newest && seal.previous !== null) {
      this.checkLinkBytes(linked, seal.previous, 'the seal');
    }
    const since = linked === undefined ? 0 : this.position.get(linked)! + 1;
    const rotatedSince = this.names.slice(since).find((n) => rotatedAtMs(this.b.active, n) >= signedAtMs);
    return { seal, recent, file: rotatedSince ?? this.b.active };
  }

  private async checkRotated(name: string, cover: SealCover | undefined): Promise<void> {
    const e = this.entry(name);
    const digest = this.b.digests.get(name);
    const marker = this.b.markers.get(name);
    if (digest?.doc !== undefined) e.covered = digest.doc;
    const prefixBytes = cover?.file === name ? cover.seal.sizeBytes : undefined;
    const compressed = this.folder.compressed(name);
    const handle = await this.folder.open(name);
    let read: Read | undefined;
    if (handle !== undefined) {
      try {
        read = await readFile(handle, name, prefixBytes);
      } finally {
        await handle.close();
      }
      // The sidecar removes one of the two at its next start (a compression cut short by a crash).
      if (compressed !== undefined) e.notes.push(`${compressed} is beside it`);
    } else if (compressed !== undefined) {
      try {
        read = await readCompressed(path.join(this.folder.dir, compressed), name, prefixBytes);
      } catch (err) {
        this.find(name, 'modified', `${compressed} does not gunzip whole: ${(err as Error).message}`);
        return;
      }
    } else {
      this.checkGone(e, digest, marker);
      return;
    }
    if (read === undefined) {
      this.find(name, 'modified', 'it shrank while it was read');
      return;
    }
    e.covered ??= read;
    if (marker?.doc !== undefined) e.notes.push('a retention marker names it, yet it is here');
    if (digest?.doc !== undefined) this.compare(name, read, digest.doc, 'its digest');
    else if (digest === undefined) this.checkUndigested(name, read, cover);
  }

  /** A rotated file that is gone: deleted by retention (a valid marker names it), or missing. */
  private checkGone(e: Entry, digest: Loaded<Digest> | undefined, marker: Loaded<RetentionMarker> | undefined): void {
    const name = e.file;
    const digestGone = digest === undefined && this.linkedBy.has(name);
    if (marker?.doc !== undefined) {
      e.deleted = true;
      e.notes.push(`deleted by retention (${marker.doc.reason}) at ${marker.doc.signedAt}`);
      if (marker.doc.digest === null) {
        e.notes.push(
          digest === undefined ? 'before its digest was written' : 'its marker says before its digest was written',
        );
      }
      if (digestGone) e.notes.push(`its digest is gone too (${this.linkers(name)} links to it)`);
      return;
    }
    this.find(
      name,
      'missing',
      digestGone
        ? `gone with its digest ${digestName(name)} (${this.linkers(name)} links to it), and no retention marker names it`
        : `gone, and no${marker === undefined ? '' : ' valid'} retention marker names it`,
    );
  }

  /** A rotated file without a digest: one the chain names is missing; else added, or newer than the last digest. */
  private checkUndigested(name: string, read: Read, cover: SealCover | undefined): void {
    const elsewhere = this.digestsByContent.get(contentKey(read));
    if (elsewhere !== undefined) {
      this.find(name, 'out-of-order', `its bytes are those of ${elsewhere} (its digest): files swapped or renamed`);
    }
    if (this.linkedBy.has(name)) {
      this.find(name, 'missing', `its digest ${digestName(name)} is gone (${this.linkers(name)} links to it)`);
      return;
    }
    const index = this.position.get(name)!;
    const first = this.chain.at(0);
    const newest = this.chain.at(-1);
    if (first !== undefined && index < this.position.get(first)!) {
      this.find(name, 'unsealed', 'no digest: older than the first digest (rotated before integrity was on, or added)');
    } else if (newest !== undefined && index < this.position.get(newest)!) {
      this.find(name, 'unsealed', 'no digest, and the digests around it chain without it: added');
    } else if (cover === undefined || !cover.recent) {
      this.find(
        name,
        'unsealed',
        newest === undefined
          ? 'no digest, nor any before it: rotated while integrity was off, or every digest removed'
          : 'no digest, and no recent seal: rotated after the last digest was written',
      );
    } else if (cover.file !== name) {
      this.entry(name).notes.push(rotatedAfter(cover.seal));
    } else if (read.prefix === undefined) {
      this.find(name, ...shorter(read, cover.seal, `its seal of ${cover.seal.signedAt}, before it rotated,`));
    } else if (read.prefix.sha256 !== cover.seal.sha256) {
      this.find(
        name,
        'modified',
        `its first ${cover.seal.sizeBytes} bytes differ from its seal of ${cover.seal.signedAt}`,
      );
    } else {
      this.entry(name).notes.push(rotatedAfter(cover.seal));
    }
  }

  /** A file's bytes against what its digest says. */
  private compare(name: string, read: Read, says: Covered, what: string): void {
    if (read.sizeBytes === says.sizeBytes && read.sha256 === says.sha256) {
      if (summary(read) !== summary(says)) {
        this.find(
          name,
          'modified',
          `its bytes match ${what}, yet ${what} says ${summary(says)} and they hold ${summary(read)}`,
        );
      }
      return;
    }
    const elsewhere = this.digestsByContent.get(contentKey(read));
    if (elsewhere !== undefined && elsewhere !== name) {
      this.find(name, 'out-of-order', `its bytes are those of ${elsewhere} (its digest): files swapped or renamed`);
    } else if (read.sizeBytes < says.sizeBytes) {
      this.find(name, ...shorter(read, says, what));
    } else {
      this.find(
        name,
        'modified',
        read.sizeBytes === says.sizeBytes
          ? `its SHA-256 differs from ${what}'s (the same ${read.sizeBytes} bytes)`
          : `${read.sizeBytes} bytes, ${what} says ${says.sizeBytes}`,
      );
    }
  }

  private async checkActive(cover: SealCover | undefined): Promise<void> {
    const active = this.b.active;
    const e = this.entry(active);
    const handle = await this.folder.open(active);
    try {
      const sealed = cover?.file === active ? cover.seal.sizeBytes : 0;
      const read = handle === undefined ? undefined : await readFile(handle, active, sealed);
      if (read !== undefined) e.covered = read;
      if (this.b.seal === undefined) {
        if (handle === undefined) this.find(active, 'missing', `neither it nor its seal ${sealName(active)} is here`);
        else this.find(active, 'unsealed', `no seal (${sealName(active)})`);
        return;
      }
      if (cover === undefined) return; // its seal is not valid, which is said
      const s = cover.seal;
      if (handle === undefined) {
        if (sealed > 0) this.find(active, 'missing', `gone, yet its seal of ${s.signedAt} covers ${s.sizeBytes} bytes`);
        else e.notes.push('not created yet');
        return;
      }
      if (read === undefined) this.find(active, 'modified', 'it shrank while it was read');
      else if (read.prefix === undefined) this.find(active, ...shorter(read, s, `its seal of ${s.signedAt}`));
      else if (read.prefix.sha256 !== s.sha256 && sealed > 0) {
        this.find(active, 'modified', `its first ${s.sizeBytes} bytes differ from its seal of ${s.signedAt}`);
      } else if (read.sizeBytes > sealed) this.checkTail(e, read.sizeBytes - sealed, cover);
    } finally {
      await handle?.close();
    }
  }

  /** Bytes of the active file that its seal does not cover. */
  private checkTail(e: Entry, tailBytes: number, cover: SealCover): void {
    const s = cover.seal;
    const after =
      cover.file === e.file
        ? `${tailBytes} bytes written after the seal at ${s.signedAt}`
        : `${tailBytes} bytes written after the seal at ${s.signedAt}, which is of ${cover.file} before it rotated`;
    if (cover.recent) {
      e.notes.push(`${after} (the sidecar seals them within sealIntervalSeconds, ${s.sealIntervalSeconds} s)`);
    } else if (cover.file !== e.file) {
      this.find(e.file, 'unsealed', `${after}, and no seal of its own`);
    } else if (s.state === 'closed') {
      this.find(e.file, 'extended-after-seal', `${after}, closed when the sidecar stopped`);
    } else {
      this.find(
        e.file,
        'extended-after-seal',
        `${after}, more than 2 x sealIntervalSeconds + ${SEAL_GRACE_MS / 1000} s ago: the sidecar would have sealed them ` +
          '(unless it was killed and has not started since: its start-up cuts back unacknowledged bytes)',
      );
    }
  }
}

function rotatedAfter(seal: Seal): string {
  return `rotated after the seal at ${seal.signedAt}: its digest follows within sealIntervalSeconds (${seal.sealIntervalSeconds} s)`;
}

/**
 * A file shorter than its digest or seal: truncated when its end is cut (a torn last line, or another last
 * record); modified when it still ends with the last record (lines taken out of the middle).
 */
function shorter(read: Read, says: Covered, what: string): [Verdict, string] {
  const fewer = `${read.sizeBytes} bytes, ${says.sizeBytes - read.sizeBytes} fewer than ${what} says (${says.sizeBytes})`;
  if (!read.endsWithNewline || read.lastRecordAt !== says.lastRecordAt)
    return ['truncated', `${fewer}: its end is cut`];
  return ['modified', `${fewer}, yet it still ends with its last record: lines taken out`];
}

function summary(c: Covered): string {
  return `${c.records} records, ${c.firstRecordAt ?? '-'} .. ${c.lastRecordAt ?? '-'}`;
}

function short(hex: string): string {
  return hex.slice(0, 12);
}

function report(e: Entry): FileReport {
  const findings = [...e.findings].sort((a, b) => VERDICT_ORDER.indexOf(a.verdict) - VERDICT_ORDER.indexOf(b.verdict));
  const verdict = findings[0]?.verdict ?? (e.deleted ? 'deleted-by-retention' : 'ok');
  const detail = [...new Set(findings.length > 0 ? findings.map((f) => f.detail) : e.notes)].join('; ');
  const c = e.covered;
  return {
    file: e.file,
    verdict,
    detail,
    ...(c === undefined
      ? {}
      : {
          records: c.records,
          ...(c.firstRecordAt === null ? {} : { firstRecordAt: c.firstRecordAt }),
          ...(c.lastRecordAt === null ? {} : { lastRecordAt: c.lastRecordAt }),
        }),
  };
}
