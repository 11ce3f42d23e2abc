// The benchmark's workload, shared by the load generator and the floor so that both send (or read)
// byte-for-byte the same batches: deterministic events, their protobuf encoding, and the names that
// let the exactly-once check find each event in the audit files.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AUDIT_PROTO, contract, type Messages, protoDir } from '../src/contract';

/** The contract's audit.proto: the naive baselines load it their own (naive) way. */
export function protoFile(): string {
  return path.join(protoDir(), AUDIT_PROTO);
}

export type Codec = Pick<Messages, 'StreamEventsRequest' | 'StreamEventsResponse' | 'RecordRequest'>;

/** The contract's message types (camelCase field names), as the sidecar itself encodes and decodes them. */
export function loadCodec(): Codec {
  return contract().messages;
}

export const STREAM_EVENTS_PATH = '/meshaudit.v1.AuditService/StreamEvents';
export const RECORD_PATH = '/meshaudit.v1.AuditService/Record';

// A control plane's everyday mix: mostly policy changes across a few meshes, some inspections, and a
// token generation now and then. Every event is covered by the benchmark's rules (rulesYaml), so every
// acknowledged event must appear in the files exactly once.
const TYPES = [
  'TrafficRoute',
  'TrafficPermission',
  'MeshHTTPRoute',
  'MeshTimeout',
  'Dataplane',
  'MeshTrafficPermission',
  'Secret',
  'MeshRetry',
];
const MESHES = ['default', 'demo', 'payments', 'checkout'];
const RESOURCE_ACTIONS = ['CREATE', 'UPDATE', 'DELETE'];
const VIEW_ACTIONS = ['VIEW_CONFIG_DUMP', 'VIEW_STATS', 'VIEW_CLUSTERS'];
const USERS = [
  { name: 'john.doe@kuma.io', groups: ['team-a', 'mesh-system:authenticated'] },
  { name: 'mesh-system:control-plane', groups: ['mesh-system:control-plane'] },
  { name: 'jane.roe@kuma.io', groups: ['team-b', 'admins', 'mesh-system:authenticated'] },
];
/**
 * How events are dated. `per-event` (every scenario but one): each event is stamped as it happens, an
 * RFC 3339 date with nanoseconds that differs from the last one, as a busy control plane's would.
 * `whole-second` (scenario s1w only): the old workload, one whole-second date shared by 1,000
 * consecutive events, which a sidecar that caches the last date it parsed is rewarded for.
 */
export type DateMode = 'per-event' | 'whole-second';

/** 2024-05-01T10:00:00Z, where every stream's clock starts. */
const BASE_DATE_MS = Date.UTC(2024, 4, 1, 10, 0, 0);
/** Whole-second mode: the date advances one second every 1,000 events. */
const EVENTS_PER_SECOND_OF_DATES = 1000;
/**
 * Per-event mode: the clock advances 15 µs per event on average (~67k events per second of dates),
 * plus a jitter of 0 to 12 µs per event derived from the sequence, so consecutive events are 3 to 27 µs
 * apart: always later, never equal.
 */
const STEP_NS = 15_000;
const JITTER_NS = 12_000;
/** Per-event mode: each control plane's clock is a few µs off the others' (stream s: s × 3.333 µs). */
const STREAM_SKEW_NS = 3_333;
/** Per-event mode: odd streams' control planes run on local time two hours east of UTC. */
const EAST_OFFSET_MIN = 120;
const SECONDS_PER_DAY = 24 * 3600;

/** A deterministic 0..JITTER_NS-1 from the sequence (a 32-bit integer hash). */
function jitterNs(seq: number): number {
  let h = Math.imul(seq ^ (seq >>> 16), 0x45d9f3b);
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  h ^= h >>> 16;
  return (h >>> 0) % JITTER_NS;
}

/**
 * `YYYY-MM-DDTHH:MM:SS` of a whole second after BASE_DATE_MS, on the wall clock of a zone `offsetMin`
 * east of UTC, cached by second: formatting a Date per event would make encoding the workload slower.
 */
const secondTexts = new Map<number, string[]>();
function secondText(secondOffset: number, offsetMin: number): string {
  let texts = secondTexts.get(offsetMin);
  if (texts === undefined) {
    texts = [];
    secondTexts.set(offsetMin, texts);
  }
  let text = texts[secondOffset];
  if (text === undefined) {
    text = new Date(BASE_DATE_MS + secondOffset * 1000 + offsetMin * 60_000).toISOString().slice(0, 19);
    texts[secondOffset] = text;
  }
  return text;
}

function zoneText(offsetMin: number): string {
  if (offsetMin === 0) return 'Z';
  const abs = Math.abs(offsetMin);
  const hhmm = `${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${offsetMin < 0 ? '-' : '+'}${hhmm}`;
}

/** `.123456789`, trailing zeros dropped, nothing for zero: how Go's time.RFC3339Nano writes a fraction. */
function fractionText(ns: number): string {
  if (ns === 0) return '';
  const digits = String(ns).padStart(9, '0');
  let end = digits.length;
  while (digits.charCodeAt(end - 1) === 48) end--;
  return `.${digits.slice(0, end)}`;
}

/** The date of event (stream, seq) and its whole second (offset from BASE_DATE_MS, for a token's expiry). */
function eventDate(stream: number, seq: number, dates: DateMode): { text: string; second: number; zone: number } {
  if (dates === 'whole-second') {
    const second = Math.floor(seq / EVENTS_PER_SECOND_OF_DATES);
    return { text: `${secondText(second, 0)}Z`, second, zone: 0 };
  }
  const ns = seq * STEP_NS + jitterNs(seq) + stream * STREAM_SKEW_NS;
  const second = Math.floor(ns / 1e9);
  const zone = stream % 2 === 1 ? EAST_OFFSET_MIN : 0;
  return { text: `${secondText(second, zone)}${fractionText(ns - second * 1e9)}${zoneText(zone)}`, second, zone };
}

/** Event `seq` (1-based) of control-plane `stream`, in the protobufjs (camelCase) object form. */
export function makeEvent(stream: number, seq: number, dates: DateMode = 'per-event'): Record<string, unknown> {
  const date = eventDate(stream, seq, dates);
  const user = USERS[seq % USERS.length];
  const mesh = MESHES[seq % MESHES.length];
  const kind = seq % 10;
  const event: Record<string, unknown> = { id: `evt-${stream}-${seq}`, date: date.text, user };
  if (kind <= 6) {
    event.action = RESOURCE_ACTIONS[seq % RESOURCE_ACTIONS.length];
    event.resource = { type: TYPES[seq % TYPES.length], name: `res-${stream}-${seq}`, mesh };
  } else if (kind <= 8) {
    event.action = VIEW_ACTIONS[seq % VIEW_ACTIONS.length];
    event.resource = { type: 'Dataplane', name: `res-${stream}-${seq}`, mesh };
  } else {
    event.action = 'GENERATE_DATAPLANE_TOKEN';
    // A token's expiry is whole seconds (a JWT's exp is), a day after it was issued.
    event.token = {
      id: `tok-${stream}-${seq}`,
      expiresAt: `${secondText(date.second + SECONDS_PER_DAY, date.zone)}${zoneText(date.zone)}`,
      claims: { mesh, tags: { 'kuma.io/service': 'backend', version: 'v1' } },
    };
  }
  return event;
}

/**
 * The record keys of event (stream, seq): `res-S-N` is a resource name and `tok-S-N` a token id, in
 * meshaudit's records and in the naive server's JSON alike. Event ids are `evt-...`, so never counted.
 */
export const RECORD_KEY = /"(?:name|id)":"(?:res|tok)-(\d+)-(\d+)"/g;

/** Events firstSeq..firstSeq+count-1 of `stream`, encoded as one StreamEventsRequest batch. */
export function encodeBatch(
  codec: Codec,
  stream: number,
  firstSeq: number,
  count: number,
  dates: DateMode = 'per-event',
): Buffer {
  const events = [];
  for (let i = 0; i < count; i++) events.push(makeEvent(stream, firstSeq + i, dates));
  return asBuffer(codec.StreamEventsRequest.encode({ firstSeq, events }).finish());
}

/** Every batch of a stream of `total` events (sequences 1..total), `batchSize` events each (the last may be shorter). */
export function encodeStream(
  codec: Codec,
  stream: number,
  total: number,
  batchSize: number,
  dates: DateMode = 'per-event',
): Buffer[] {
  const out: Buffer[] = [];
  for (let first = 1; first <= total; first += batchSize)
    out.push(encodeBatch(codec, stream, first, Math.min(batchSize, total - first + 1), dates));
  return out;
}

/**
 * encodeStream, cached in `cacheDir` (the run's temp folder): several scenarios send the same 2M
 * events, and encoding them takes seconds that would otherwise come out of the run's time budget.
 * The file is the batches, each prefixed by its length (uint32 LE).
 */
export function cachedStream(
  cacheDir: string,
  codec: Codec,
  stream: number,
  total: number,
  batchSize: number,
  dates: DateMode,
): Buffer[] {
  const file = path.join(cacheDir, `stream-${stream}-${total}-${batchSize}-${dates}.bin`);
  if (fs.existsSync(file)) {
    const all = fs.readFileSync(file);
    const out: Buffer[] = [];
    for (let at = 0; at < all.length; ) {
      const len = all.readUInt32LE(at);
      out.push(all.subarray(at + 4, at + 4 + len));
      at += 4 + len;
    }
    return out;
  }
  const batches = encodeStream(codec, stream, total, batchSize, dates);
  // Written under a temp name and renamed: a run killed mid-write never leaves a short cache behind.
  const fd = fs.openSync(`${file}.tmp`, 'w');
  try {
    const len = Buffer.allocUnsafe(4);
    for (const b of batches) {
      len.writeUInt32LE(b.length);
      fs.writeSync(fd, len);
      fs.writeSync(fd, b);
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(`${file}.tmp`, file);
  return batches;
}

export function encodeIdentify(codec: Codec, zone: string, instance: string): Buffer {
  return asBuffer(codec.StreamEventsRequest.encode({ identifier: { zone, instance } }).finish());
}

/** One RecordRequest per call: call `i` carries event (`stream`, seq i + 1); the benchmark's are stream 0's. */
export function encodeRecord(codec: Codec, seq: number, dates: DateMode, stream = 0): Buffer {
  return asBuffer(codec.RecordRequest.encode({ event: makeEvent(stream, seq, dates) }).finish());
}

function asBuffer(u8: Uint8Array): Buffer {
  return Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/**
 * The rules of every scenario: what a zone typically runs (everything audited, plus a few narrower
 * audits a team adds). Every benchmark event is covered, by the first one at least.
 */
export function baseRulesYaml(): string {
  return `type: AccessAudit
name: audit-everything
rules:
- accessAll: true
---
type: AccessAudit
name: audit-policy-changes
rules:
- types: ["TrafficPermission", "TrafficRoute", "MeshTrafficPermission", "MeshHTTPRoute"]
  access: ["CREATE", "UPDATE", "DELETE"]
- types: ["Secret"]
  mesh: payments
  accessAll: true
---
type: AccessAudit
name: audit-tokens
rules:
- access: ["GENERATE_DATAPLANE_TOKEN", "GENERATE_USER_TOKEN"]
`;
}

/**
 * `count` extra AccessAudit resources, as a large multi-tenant zone might hold: each scoped to a mesh
 * of its own, so almost none matches the benchmark's events; one in a hundred is scoped to a mesh the
 * events use, so the index has real entries to look through on the hot path. Split into files of
 * `perFile` resources: a rules file is at most 1 MiB.
 */
export function manyRulesFiles(count: number, perFile = 2000): string[] {
  const files: string[] = [];
  for (let start = 0; start < count; start += perFile) {
    const docs: string[] = [];
    for (let i = start; i < Math.min(count, start + perFile); i++) {
      const mesh = i % 100 === 0 ? MESHES[(i / 100) % MESHES.length] : `tenant-${i}`;
      const type = TYPES[i % TYPES.length];
      docs.push(
        `type: AccessAudit\nname: tenant-audit-${i}\nrules:\n- types: ["${type}"]\n  mesh: ${mesh}\n  access: ["CREATE", "DELETE"]\n` +
          `- mesh: ${mesh}\n  access: ["GENERATE_DATAPLANE_TOKEN"]\n`,
      );
    }
    files.push(docs.join('---\n'));
  }
  return files;
}
