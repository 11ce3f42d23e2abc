// One audit record as a JetStream message, per the message contract of the forwarder (docs/forwarding.md):
// its subject `meshaudit.<zone>.<instance>.<kind>`, its payload (the line's bytes as in the file, without
// the newline) and its headers, the message id among them. The forwarder writes by it and `meshaudit query
// --nats` reads by it. What a zone, an instance and a stream name may be is config/nats-names.ts's.
// Pure: no I/O, no client.
import { ACTIONS, RESOURCE_ACTIONS, TOKEN_ACTIONS } from '../rules/actions';

/** Every subject of the contract starts with this token. */
export const SUBJECT_PREFIX = 'meshaudit';
/** The subjects of the stream: every zone's records (a forwarder creates the stream with them). */
export const STREAM_SUBJECTS = `${SUBJECT_PREFIX}.>`;

/** The three subjects' last token, by what the record's action concerns. */
export type RecordKind = 'resource' | 'token' | 'view';
export const RECORD_KINDS: readonly RecordKind[] = ['resource', 'token', 'view'];

/** The headers every message carries (Nats-Msg-Id is JetStream's own: the duplicate window dedupes by it). */
export const MSG_ID_HEADER = 'Nats-Msg-Id';
export const ZONE_HEADER = 'Meshaudit-Zone';
export const INSTANCE_HEADER = 'Meshaudit-Instance';
export const POSITION_HEADER = 'Meshaudit-Position';
export const DATE_HEADER = 'Meshaudit-Date';
/** With integrity on: the chain link of the digest before the record's file (`<file>@<sha256>`, `-`: none). */
export const CHAIN_HEADER = 'Meshaudit-Chain';

const KIND_OF_ACTION: ReadonlyMap<string, RecordKind> = new Map(
  ACTIONS.map((a) => [
    a,
    (RESOURCE_ACTIONS as readonly string[]).includes(a)
      ? 'resource'
      : (TOKEN_ACTIONS as readonly string[]).includes(a)
        ? 'token'
        : 'view',
  ]),
);

/** The kind of the records of `action`; undefined for an action the contract does not know. */
export function kindOfAction(action: string): RecordKind | undefined {
  return KIND_OF_ACTION.get(action);
}

/** `meshaudit.<zone>.<instance>.<kind>`; in a filter, any of the three may be `*` (every one). */
export function subjectOf(zone: string, instance: string, kind: string): string {
  return `${SUBJECT_PREFIX}.${zone}.${instance}.${kind}`;
}

/** The subject of each kind for one sidecar (zone and instance are subject tokens: config/load.ts checks). */
export function subjectsOf(zone: string, instance: string): Readonly<Record<RecordKind, string>> {
  return Object.freeze({
    resource: subjectOf(zone, instance, 'resource'),
    token: subjectOf(zone, instance, 'token'),
    view: subjectOf(zone, instance, 'view'),
  });
}

/** The tokens of a subject of the contract; undefined for any other subject. */
export function parseSubject(subject: string): { zone: string; instance: string; kind: string } | undefined {
  const [prefix, zone, instance, kind, ...more] = subject.split('.');
  return prefix === SUBJECT_PREFIX && kind !== undefined && more.length === 0 ? { zone, instance, kind } : undefined;
}

/** A record's place in this sidecar's trail: its file's start and the offset of its first byte. */
export interface RecordPosition {
  readonly startMs: number;
  readonly offset: number;
}

/** `<fileStartMs>.<offset>`: the Meshaudit-Position header, and the message id after `<zone>.<instance>.`. */
export function formatPosition(startMs: number, offset: number): string {
  return `${startMs}.${offset}`;
}

/** A Meshaudit-Position header's position; undefined when it is not one. */
export function parsePosition(value: string | undefined): RecordPosition | undefined {
  const m = value === undefined ? null : /^([0-9]{1,16})\.([0-9]{1,16})$/.exec(value);
  if (m === null) return undefined;
  const position = { startMs: Number(m[1]), offset: Number(m[2]) };
  return Number.isSafeInteger(position.startMs) && Number.isSafeInteger(position.offset) ? position : undefined;
}

/** Positions order by file start, then offset: -1, 0 or 1. */
export function comparePositions(a: RecordPosition, b: RecordPosition): number {
  if (a.startMs !== b.startMs) return a.startMs < b.startMs ? -1 : 1;
  return a.offset === b.offset ? 0 : a.offset < b.offset ? -1 : 1;
}

/** What the headers and the subject need of a record: its date as written, and its kind. */
export interface RecordFields {
  date: string;
  kind: RecordKind;
}

const QUOTE = 0x22;
/** Every record line starts so (src/record/format-record.ts writes the date first, then the action). */
const DATE_START = Buffer.from('{"date":"');
const ACTION_START = Buffer.from(',"action":"');

/**
 * The date and kind of the record `line[start, end)`, read from its first bytes without parsing it whole
 * (records start `{"date":"...","action":"...",`); a line of another shape is parsed as JSON. Undefined:
 * not a record (no date, or no known action). Fills `out` (one object per forwarder, not one per record).
 */
export function recordFields(line: Buffer, start: number, end: number, out: RecordFields): boolean {
  if (line.compare(DATE_START, 0, DATE_START.length, start, start + DATE_START.length) === 0) {
    const dateStart = start + DATE_START.length;
    const dateEnd = line.indexOf(QUOTE, dateStart);
    const actionStart = dateEnd + 1 + ACTION_START.length;
    if (
      dateEnd > 0 &&
      dateEnd < end &&
      line.compare(ACTION_START, 0, ACTION_START.length, dateEnd + 1, actionStart) === 0
    ) {
      const actionEnd = line.indexOf(QUOTE, actionStart);
      const kind =
        actionEnd > 0 && actionEnd < end ? kindOfAction(line.toString('latin1', actionStart, actionEnd)) : undefined;
      if (kind !== undefined) {
        out.date = line.toString('latin1', dateStart, dateEnd);
        out.kind = kind;
        return true;
      }
    }
  }
  return parsedFields(line.subarray(start, end), out);
}

function parsedFields(line: Buffer, out: RecordFields): boolean {
  let record: unknown;
  try {
    record = JSON.parse(line.toString('utf8'));
  } catch {
    return false;
  }
  const { date, action } = (typeof record === 'object' && record !== null ? record : {}) as Record<string, unknown>;
  const kind = typeof action === 'string' ? kindOfAction(action) : undefined;
  if (typeof date !== 'string' || kind === undefined) return false;
  out.date = date;
  out.kind = kind;
  return true;
}
