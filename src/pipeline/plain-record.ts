// The fast way for the events that make up almost all of a control plane's traffic: a resource action
// whose strings are plain ASCII (nothing JSON must escape). Its record is copied together from the
// request's own bytes and fixed fragments, without decoding the event into objects, building strings
// or encoding them again: those three were most of the cost of a batch.
//
// It gives the same bytes as the reference way (validateEvent + formatRecord), or it steps aside:
// `writePlainRecord` returns FALLBACK for anything it does not fully handle (a token, a non-ASCII or
// escaped character, an invalid or over-long field, an unknown action), and the caller then takes the
// reference way for that event, which also words any rejection. test/plain-record.test.ts compares the
// two on generated and malformed events.
import type { CompiledRules } from '../rules';
import { isTokenAction, ACTIONS, MESH_RESOURCE_TYPE, type Action } from '../rules';
import { MAX_FIELD_CHARS } from '../events/validate-event';
import type { RecordDateFormatter, Rfc3339Parser } from '../events/rfc3339';
import { Field, type ResourceEventScanner } from '../wire/resource-event';
import type { AsciiCache } from '../wire/ascii-cache';

export const RECORDED = 1;
export const SKIPPED = 2;
export const FALLBACK = 3;
export type PlainOutcome = typeof RECORDED | typeof SKIPPED | typeof FALLBACK;

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (ch) => ch.charCodeAt(0));

// The record's fixed parts, in formatRecord's order (src/events/format-record.ts).
const THEN_MESH = ascii('","mesh":"');
const THEN_TYPE = ascii('","type":"');
const THEN_USER = ascii('"},"user":{"name":"');
const THEN_GROUPS = ascii('","groups":[');
const CLOSE = ascii(']}}\n');

/** Action names as bytes, by length: an action is recognised without making a string of it. */
const ACTIONS_BY_LENGTH = new Map<number, Array<{ action: Action; index: number; bytes: Uint8Array }>>();
ACTIONS.forEach((action, index) => {
  const list = ACTIONS_BY_LENGTH.get(action.length) ?? [];
  list.push({ action, index, bytes: ascii(action) });
  ACTIONS_BY_LENGTH.set(action.length, list);
});

/** The action in src[start, end) and its index in ACTIONS, or undefined. */
function actionAt(src: Uint8Array, start: number, end: number): { action: Action; index: number } | undefined {
  const candidates = ACTIONS_BY_LENGTH.get(end - start);
  if (candidates === undefined) return undefined;
  next: for (const candidate of candidates) {
    const bytes = candidate.bytes;
    for (let i = 0; i < bytes.length; i++) if (src[start + i] !== bytes[i]) continue next;
    return candidate;
  }
  return undefined;
}

/** The records of one batch, written into one buffer that grows as needed. */
export class RecordBuffer {
  buf: Buffer;
  pos = 0;

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  ensure(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + bytes));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  put(bytes: Uint8Array): void {
    // A native copy: a byte loop here was the largest single line of a batch's profile.
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  putByte(byte: number): void {
    this.buf[this.pos++] = byte;
  }

  /** Copies src[start, end) if every byte is printable ASCII other than `"` and `\`; else false. */
  copyPlain(src: Uint8Array, start: number, end: number): boolean {
    const buf = this.buf;
    let pos = this.pos;
    for (let i = start; i < end; i++) {
      const b = src[i];
      if (b < 0x20 || b > 0x7e || b === 0x22 || b === 0x5c) return false;
      buf[pos++] = b;
    }
    this.pos = pos;
    return true;
  }

  /** Appends a line made the reference way (any characters). */
  putString(s: string): void {
    this.ensure(3 * s.length);
    this.pos += this.buf.write(s, this.pos);
  }

  /** The bytes written. */
  contents(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/**
 * The start of a record, `{"date":"<date>","action":"<action>","resource":{"name":"`, for the date of
 * the last event and each action: consecutive events mostly share their date (to the second), so a
 * record starts with one copy instead of five.
 */
export class RecordStarts {
  private date = '';
  private readonly starts: Array<Uint8Array | undefined> = [];

  of(date: string, action: { action: Action; index: number }): Uint8Array {
    if (date !== this.date) {
      this.date = date;
      this.starts.fill(undefined);
    }
    return (this.starts[action.index] ??= ascii(`{"date":"${date}","action":"${action.action}","resource":{"name":"`));
  }
}

/** What the plain way keeps between events: parsers and caches of one evaluator. */
export interface PlainContext {
  readonly scanner: ResourceEventScanner;
  readonly dates: RecordDateFormatter;
  readonly dateParser: Rfc3339Parser;
  readonly starts: RecordStarts;
  /** Strings of types, meshes and dates. */
  readonly strings: AsciiCache;
  /** One subject object, refilled for every event: covers() needs no fresh one. */
  readonly subject: { action: string; resource: { type: string; name: string; mesh: string } };
}

/** The fields whose length is checked: every string of a resource event but the date. */
const LIMITED_FIELDS = [Field.Id, Field.Type, Field.Name, Field.Mesh, Field.User] as const;

function tooLong(start: number, end: number): boolean {
  // Bytes bound characters from above: within the limit in bytes is within it in characters.
  return end - start > MAX_FIELD_CHARS;
}

/**
 * Evaluates the event in src[start, end) the plain way, appending its record to `out` when a rule
 * covers it. FALLBACK leaves `out` as it was.
 */
export function writePlainRecord(
  src: Buffer,
  start: number,
  end: number,
  receivedMs: number,
  rules: CompiledRules,
  ctx: PlainContext,
  out: RecordBuffer,
): PlainOutcome {
  const s = ctx.scanner;
  if (!s.scan(src, start, end)) return FALLBACK;
  const action = actionAt(src, s.startOf(Field.Action), s.endOf(Field.Action));
  if (action === undefined || isTokenAction(action.action)) return FALLBACK;
  for (const f of LIMITED_FIELDS) if (tooLong(s.startOf(f), s.endOf(f))) return FALLBACK;
  if (s.startOf(Field.Type) === s.endOf(Field.Type) || s.startOf(Field.Name) === s.endOf(Field.Name)) return FALLBACK;
  if (s.startOf(Field.User) === s.endOf(Field.User)) return FALLBACK;
  for (let g = 0; g < s.groupCount; g++) if (tooLong(s.groups[2 * g], s.groups[2 * g + 1])) return FALLBACK;

  let dateMs = receivedMs;
  if (s.endOf(Field.Date) > s.startOf(Field.Date)) {
    dateMs = ctx.dateParser.parse(ctx.strings.get(src, s.startOf(Field.Date), s.endOf(Field.Date)));
    if (Number.isNaN(dateMs)) return FALLBACK;
  }

  const subject = ctx.subject;
  subject.action = action.action;
  const type = ctx.strings.get(src, s.startOf(Field.Type), s.endOf(Field.Type));
  subject.resource.type = type;
  // The rules read a resource's name only for a Mesh, whose mesh is its name: names are mostly unique,
  // and making a string of each would cost more than everything else the rules do.
  subject.resource.name = type === MESH_RESOURCE_TYPE ? src.toString('latin1', s.startOf(Field.Name), s.endOf(Field.Name)) : '';
  subject.resource.mesh = ctx.strings.get(src, s.startOf(Field.Mesh), s.endOf(Field.Mesh));
  if (!rules.covers(subject)) return asciiStrings(src, s) ? SKIPPED : FALLBACK;

  const mark = out.pos;
  // The whole line fits: every copied string costs at least as many bytes in the request, and the
  // fixed parts, the date and a separator per group are well within this margin.
  out.ensure(end - start + 256 + 2 * s.groupCount);
  out.put(ctx.starts.of(ctx.dates.format(dateMs), action));
  let plain = out.copyPlain(src, s.startOf(Field.Name), s.endOf(Field.Name));
  if (plain && s.endOf(Field.Mesh) > s.startOf(Field.Mesh)) {
    out.put(THEN_MESH);
    plain = out.copyPlain(src, s.startOf(Field.Mesh), s.endOf(Field.Mesh));
  }
  if (plain) {
    out.put(THEN_TYPE);
    plain = out.copyPlain(src, s.startOf(Field.Type), s.endOf(Field.Type));
  }
  if (plain) {
    out.put(THEN_USER);
    plain = out.copyPlain(src, s.startOf(Field.User), s.endOf(Field.User));
  }
  if (plain) {
    out.put(THEN_GROUPS);
    for (let g = 0; plain && g < s.groupCount; g++) {
      if (g > 0) out.putByte(0x2c); // ,
      out.putByte(0x22); // "
      plain = out.copyPlain(src, s.groups[2 * g], s.groups[2 * g + 1]);
      out.putByte(0x22);
    }
  }
  if (!plain) {
    out.pos = mark;
    return FALLBACK;
  }
  out.put(CLOSE);
  return RECORDED;
}

/**
 * Whether the strings the rules were asked about are ASCII. The rules got them decoded as Latin-1,
 * which is what UTF-8 decoding gives only for ASCII: a skip decided on anything else is left to the
 * reference way.
 */
function asciiStrings(src: Uint8Array, s: ResourceEventScanner): boolean {
  for (let f = Field.Type; f <= Field.User; f++) {
    for (let i = s.startOf(f as Field); i < s.endOf(f as Field); i++) if (src[i] > 0x7e) return false;
  }
  for (let g = 0; g < s.groupCount; g++) {
    for (let i = s.groups[2 * g]; i < s.groups[2 * g + 1]; i++) if (src[i] > 0x7e) return false;
  }
  return true;
}
