// The benchmark's workload, shared by the load generator and the floor so that both send (or read)
// byte-for-byte the same batches: deterministic events, their protobuf encoding, and the names that
// let the exactly-once check find each event in the audit files.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

/** proto/ at the package root, from dist/bench (the compiled location) or from bench/. */
export function protoFile(): string {
  const fromDist = path.resolve(__dirname, '../../proto/meshaudit/v1/audit.proto');
  const fromSrc = path.resolve(__dirname, '../proto/meshaudit/v1/audit.proto');
  return fs.existsSync(fromDist) ? fromDist : fromSrc;
}

export interface Codec {
  StreamEventsRequest: protobuf.Type;
  StreamEventsResponse: protobuf.Type;
  RecordRequest: protobuf.Type;
}

/** protobufjs types of the public contract (camelCase field names, as protobufjs loads them by default). */
export function loadCodec(): Codec {
  const root = new protobuf.Root().loadSync(protoFile());
  return {
    StreamEventsRequest: root.lookupType('meshaudit.v1.StreamEventsRequest'),
    StreamEventsResponse: root.lookupType('meshaudit.v1.StreamEventsResponse'),
    RecordRequest: root.lookupType('meshaudit.v1.RecordRequest'),
  };
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
/** 2024-05-01T10:00:00Z: event dates advance one second every 1,000 events, as a busy CP's would. */
const BASE_DATE_MS = Date.UTC(2024, 4, 1, 10, 0, 0);
const EVENTS_PER_SECOND_OF_DATES = 1000;

function rfc3339(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

/** Date strings by second offset: toISOString per event would make encoding slower than the sidecar. */
const dateTexts: string[] = [];
function dateText(secondOffset: number): string {
  return (dateTexts[secondOffset] ??= rfc3339(BASE_DATE_MS + secondOffset * 1000));
}

/** Event `seq` (1-based) of control-plane `stream`, in the protobufjs (camelCase) object form. */
export function makeEvent(stream: number, seq: number): Record<string, unknown> {
  const second = Math.floor(seq / EVENTS_PER_SECOND_OF_DATES);
  const user = USERS[seq % USERS.length];
  const mesh = MESHES[seq % MESHES.length];
  const kind = seq % 10;
  const event: Record<string, unknown> = { id: `evt-${stream}-${seq}`, date: dateText(second), user };
  if (kind <= 6) {
    event.action = RESOURCE_ACTIONS[seq % RESOURCE_ACTIONS.length];
    event.resource = { type: TYPES[seq % TYPES.length], name: `res-${stream}-${seq}`, mesh };
  } else if (kind <= 8) {
    event.action = VIEW_ACTIONS[seq % VIEW_ACTIONS.length];
    event.resource = { type: 'Dataplane', name: `res-${stream}-${seq}`, mesh };
  } else {
    event.action = 'GENERATE_DATAPLANE_TOKEN';
    event.token = {
      id: `tok-${stream}-${seq}`,
      expiresAt: dateText(second + 24 * 3600),
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
export function encodeBatch(codec: Codec, stream: number, firstSeq: number, count: number): Buffer {
  const events = [];
  for (let i = 0; i < count; i++) events.push(makeEvent(stream, firstSeq + i));
  return asBuffer(codec.StreamEventsRequest.encode({ firstSeq, events }).finish());
}

/** Every batch of a stream of `total` events (sequences 1..total), `batchSize` events each (the last may be shorter). */
export function encodeStream(codec: Codec, stream: number, total: number, batchSize: number): Buffer[] {
  const out: Buffer[] = [];
  for (let first = 1; first <= total; first += batchSize)
    out.push(encodeBatch(codec, stream, first, Math.min(batchSize, total - first + 1)));
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
): Buffer[] {
  const file = path.join(cacheDir, `stream-${stream}-${total}-${batchSize}.bin`);
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
  const batches = encodeStream(codec, stream, total, batchSize);
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

/** One RecordRequest per call: call `i` carries event (stream 0, seq i + 1). */
export function encodeRecord(codec: Codec, seq: number): Buffer {
  return asBuffer(codec.RecordRequest.encode({ event: makeEvent(0, seq) }).finish());
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
