// The fast way for the events that make up almost all of a control plane's traffic: well-formed
// events whose strings are plain ASCII (nothing JSON must escape). Their record is copied together from
// the request's own bytes and fixed fragments, without decoding the event into objects, building
// strings or encoding them again: those three were most of the cost of a batch.
//
// It gives the same bytes as the reference way (validateEvent + formatRecord), or it steps aside:
// `writePlainRecord` returns FALLBACK for anything it does not fully handle (a non-ASCII or escaped
// character, an invalid or over-long field, an unknown action, a repeated tag key), and the caller then
// takes the reference way for that event, which also words any rejection. test/record/plain-record.test.ts
// compares the two on hand-made, malformed and generated events.
import { Rfc3339Parser } from '../events/rfc3339';
import type { EventLimits } from '../events/validate-event';
import type { CompiledRules } from '../rules';
import { ACTIONS, type Action, isTokenAction, MESH_RESOURCE_TYPE } from '../rules';
import { EventScanner, Field, NOT_SCANNED, RESOURCE_EVENT, type SpanList } from '../wire/event-spans';
import type { AsciiCache } from './ascii-cache';
import type { RecordDateFormatter } from './dates';
import { KEY } from './keys';

export const RECORDED = 1;
export const SKIPPED = 2;
export const FALLBACK = 3;
export type PlainOutcome = typeof RECORDED | typeof SKIPPED | typeof FALLBACK;

/** The bytes of a text known to be ASCII (fixed fragments, action names, formatted dates). */
const ascii = (s: string): Uint8Array => Buffer.from(s, 'latin1');

// The record's fixed parts, keys from RECORD_KEYS (src/record/keys.ts), in its order: a string value
// ends with `"`, then `,` and the next key; a nested object or list opens after its key.
const THEN_MESH = ascii(`",${KEY.resource.mesh}"`);
const THEN_TYPE = ascii(`",${KEY.resource.type}"`);
const RESOURCE_THEN_USER = ascii(`"},${KEY.record.user}{${KEY.user.name}"`);
const THEN_EXPIRES_AT = ascii(`",${KEY.token.expiresAt}"`);
const THEN_CLAIMS = ascii(`",${KEY.token.claims}{`);
const CLAIMS_MESH = ascii(`${KEY.claims.mesh}"`);
const CLAIMS_TAGS = ascii(`${KEY.claims.tags}{`);
const CLAIMS_NAME = ascii(`${KEY.claims.name}"`);
const CLAIMS_GROUPS = ascii(`${KEY.claims.groups}[`);
const CLAIMS_ZONE = ascii(`${KEY.claims.zone}"`);
const CLAIMS_SCOPE = ascii(`${KEY.claims.scope}[`);
const TOKEN_THEN_USER = ascii(`}},${KEY.record.user}{${KEY.user.name}"`);
const THEN_GROUPS = ascii(`",${KEY.user.groups}[`);
const CLOSE = ascii(']}}\n');
const RESOURCE_START = `${KEY.record.resource}{${KEY.resource.name}"`;
const TOKEN_START = `${KEY.record.token}{${KEY.token.id}"`;
const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/** Action names as bytes, by length: an action is recognised without making a string of it. */
const ACTIONS_BY_LENGTH = new Map<number, Array<{ action: Action; index: number; bytes: Uint8Array }>>();
ACTIONS.forEach((action, index) => {
  const list = ACTIONS_BY_LENGTH.get(action.length) ?? [];
  list.push({ action, index, bytes: ascii(action) });
  ACTIONS_BY_LENGTH.set(action.length, list);
});

type ActionAt = { action: Action; index: number };

/** The action in src[start, end) and its index in ACTIONS, or undefined. */
function actionAt(src: Uint8Array, start: number, end: number): ActionAt | undefined {
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

  /** Empties the buffer for the next batch, keeping its memory. */
  reset(): void {
    this.pos = 0;
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

  /**
   * A copy of the bytes written, exactly as long: the buffer itself is reused for the next batch, and
   * what the writer queues holds no spare capacity (every large buffer is external memory to V8, and
   * over-sized ones made it run full garbage collections several times a second).
   */
  copy(): Buffer {
    const data = Buffer.allocUnsafe(this.pos);
    this.buf.copy(data, 0, 0, this.pos);
    return data;
  }
}

/**
 * The start of a record, `{"date":"<date>","action":"<action>","resource":{"name":"` (or
 * `"token":{"id":"`), for the date of the last event and each action: consecutive events mostly share
 * their date (to the second), so a record starts with one copy instead of five.
 */
class RecordStarts {
  private date = '';
  private readonly starts: Array<Uint8Array | undefined> = [];

  of(date: string, action: ActionAt): Uint8Array {
    if (date !== this.date) {
      this.date = date;
      this.starts.fill(undefined);
    }
    let start = this.starts[action.index];
    if (start === undefined) {
      const subject = isTokenAction(action.action) ? TOKEN_START : RESOURCE_START;
      start = ascii(`{${KEY.record.date}"${date}",${KEY.record.action}"${action.action}",${subject}`);
      this.starts[action.index] = start;
    }
    return start;
  }
}

/** The bytes of the last text asked for: token expiries repeat like event dates. */
class TextBytes {
  private text = '';
  private bytes: Uint8Array = new Uint8Array(0);

  of(text: string): Uint8Array {
    if (text !== this.text) {
      this.text = text;
      this.bytes = ascii(text);
    }
    return this.bytes;
  }
}

/** What the plain way keeps between events: parsers and caches of one evaluator. */
export interface PlainContext {
  readonly scanner: EventScanner;
  /** meshaudit.limits.fieldChars: a longer string (in bytes, which bound characters) goes the reference way. */
  readonly fieldChars: number;
  readonly dates: RecordDateFormatter;
  readonly times: { readonly date: Rfc3339Parser; readonly expiresAt: Rfc3339Parser };
  readonly starts: RecordStarts;
  readonly expiries: TextBytes;
  /** Strings of types, meshes and dates. */
  readonly strings: AsciiCache;
  /** Tag entries in key order (indexes into the scanner's tags). */
  readonly tagOrder: Int32Array;
  // One subject object of each kind, refilled for every event: covers() needs no fresh one.
  readonly resourceSubject: { action: string; resource: { type: string; name: string; mesh: string } };
  readonly tokenSubject: { action: string; token: { claims: { mesh: string } } };
}

/** `limits`: the same as the reference way checks (src/events/validate-event.ts), so that both agree. */
export function newPlainContext(dates: RecordDateFormatter, limits: EventLimits, strings: AsciiCache): PlainContext {
  return {
    scanner: new EventScanner(limits.listEntries),
    fieldChars: limits.fieldChars,
    dates,
    times: { date: new Rfc3339Parser(), expiresAt: new Rfc3339Parser() },
    starts: new RecordStarts(),
    expiries: new TextBytes(),
    strings,
    tagOrder: new Int32Array(limits.listEntries),
    resourceSubject: { action: '', resource: { type: '', name: '', mesh: '' } },
    tokenSubject: { action: '', token: { claims: { mesh: '' } } },
  };
}

/** The single strings whose length is checked: all but the dates. */
const LIMITED_FIELDS = [
  Field.Id,
  Field.Type,
  Field.Name,
  Field.Mesh,
  Field.User,
  Field.TokenId,
  Field.ClaimsMesh,
  Field.ClaimsName,
  Field.ClaimsZone,
] as const;

function tooLong(maxChars: number, start: number, end: number): boolean {
  // Bytes bound characters from above: within the limit in bytes is within it in characters.
  return end - start > maxChars;
}

function anyTooLong(maxChars: number, list: SpanList): boolean {
  for (let i = 0; i < list.count; i++) if (tooLong(maxChars, list.spans[2 * i], list.spans[2 * i + 1])) return true;
  return false;
}

function isEmpty(s: EventScanner, field: Field): boolean {
  return s.startOf(field) === s.endOf(field);
}

/** Whether src[start, end) holds only ASCII. */
function isAscii(src: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (src[i] > 0x7e) return false;
  return true;
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
  const kind = s.scan(src, start, end);
  if (kind === NOT_SCANNED) return FALLBACK;
  const action = actionAt(src, s.startOf(Field.Action), s.endOf(Field.Action));
  if (action === undefined || isTokenAction(action.action) !== (kind !== RESOURCE_EVENT)) return FALLBACK;
  for (const f of LIMITED_FIELDS) if (tooLong(ctx.fieldChars, s.startOf(f), s.endOf(f))) return FALLBACK;
  if (isEmpty(s, Field.User) || anyTooLong(ctx.fieldChars, s.userGroups)) return FALLBACK;
  const dateMs = dateOf(src, s, Field.Date, ctx.times.date, receivedMs);
  if (Number.isNaN(dateMs)) return FALLBACK;

  const mark = out.pos;
  // The whole line fits: every copied string costs at least as many bytes in the request as in the
  // record, give or take the quotes and separators counted per entry, and the fixed parts and the
  // dates are well within the margin.
  const entries = s.userGroups.count + s.claimsGroups.count + s.scope.count + 2 * s.tagCount;
  out.ensure(end - start + 512 + 4 * entries);
  const outcome =
    kind === RESOURCE_EVENT
      ? writeResource(src, s, ctx, rules, dateMs, action, out)
      : writeToken(src, s, ctx, rules, dateMs, action, out);
  if (
    outcome === RECORDED &&
    // The id is the one string a record leaves out: checked here, as the copied ones are as they go.
    isAscii(src, s.startOf(Field.Id), s.endOf(Field.Id)) &&
    out.copyPlain(src, s.startOf(Field.User), s.endOf(Field.User))
  ) {
    out.put(THEN_GROUPS);
    if (writeList(src, s.userGroups, out)) {
      out.put(CLOSE);
      return RECORDED;
    }
  }
  out.pos = mark;
  // The rules got their strings decoded as Latin-1, which is what UTF-8 decoding gives only for
  // ASCII; and an event with a string that is not UTF-8 is refused, not skipped. A skip stands only
  // when every string of the event is ASCII; anything else is left to the reference way.
  return outcome === SKIPPED && allAscii(src, s) ? SKIPPED : FALLBACK;
}

/** Whether every string of the scanned event is ASCII (so also valid UTF-8). */
function allAscii(src: Uint8Array, s: EventScanner): boolean {
  const spans = s.spans;
  for (let i = 0; i < spans.length; i += 2) if (!isAscii(src, spans[i], spans[i + 1])) return false;
  if (!listAscii(src, s.userGroups) || !listAscii(src, s.claimsGroups) || !listAscii(src, s.scope)) return false;
  // Each tag is key start, key end, value start, value end.
  for (let i = 0; i < 4 * s.tagCount; i += 2) if (!isAscii(src, s.tags[i], s.tags[i + 1])) return false;
  return true;
}

function listAscii(src: Uint8Array, list: SpanList): boolean {
  for (let i = 0; i < 2 * list.count; i += 2) if (!isAscii(src, list.spans[i], list.spans[i + 1])) return false;
  return true;
}

/** The time in a date field, `fallback` when it is empty, NaN when it is not RFC 3339. */
function dateOf(src: Buffer, s: EventScanner, field: Field, parser: Rfc3339Parser, fallback: number): number {
  if (isEmpty(s, field)) return fallback;
  // Read from the bytes, keyed on the second (no string per event); a non-ASCII date cannot parse: its
  // Latin-1 text fails as its UTF-8 text would.
  return parser.parseBytes(src, s.startOf(field), s.endOf(field));
}

/** Checks and asks the rules about a resource event, then writes its record up to the user's name. */
function writeResource(
  src: Buffer,
  s: EventScanner,
  ctx: PlainContext,
  rules: CompiledRules,
  dateMs: number,
  action: ActionAt,
  out: RecordBuffer,
): PlainOutcome {
  if (isEmpty(s, Field.Type) || isEmpty(s, Field.Name)) return FALLBACK;
  const subject = ctx.resourceSubject;
  subject.action = action.action;
  const type = ctx.strings.get(src, s.startOf(Field.Type), s.endOf(Field.Type));
  subject.resource.type = type;
  // The rules read a resource's name only for a Mesh, whose mesh is its name: names are mostly unique,
  // and making a string of each would cost more than everything else the rules do.
  subject.resource.name =
    type === MESH_RESOURCE_TYPE ? src.toString('latin1', s.startOf(Field.Name), s.endOf(Field.Name)) : '';
  subject.resource.mesh = ctx.strings.get(src, s.startOf(Field.Mesh), s.endOf(Field.Mesh));
  // A skip stands only if every string is ASCII (writePlainRecord checks).
  if (!rules.covers(subject)) return SKIPPED;
  out.put(ctx.starts.of(ctx.dates.format(dateMs), action));
  if (!out.copyPlain(src, s.startOf(Field.Name), s.endOf(Field.Name))) return FALLBACK;
  if (!isEmpty(s, Field.Mesh)) {
    out.put(THEN_MESH);
    if (!out.copyPlain(src, s.startOf(Field.Mesh), s.endOf(Field.Mesh))) return FALLBACK;
  }
  out.put(THEN_TYPE);
  if (!out.copyPlain(src, s.startOf(Field.Type), s.endOf(Field.Type))) return FALLBACK;
  out.put(RESOURCE_THEN_USER);
  return RECORDED;
}

/** Checks and asks the rules about a token event, then writes its record up to the user's name. */
function writeToken(
  src: Buffer,
  s: EventScanner,
  ctx: PlainContext,
  rules: CompiledRules,
  dateMs: number,
  action: ActionAt,
  out: RecordBuffer,
): PlainOutcome {
  if (isEmpty(s, Field.TokenId) || anyTooLong(ctx.fieldChars, s.claimsGroups) || anyTooLong(ctx.fieldChars, s.scope))
    return FALLBACK;
  const expiresMs = dateOf(src, s, Field.ExpiresAt, ctx.times.expiresAt, -1);
  if (Number.isNaN(expiresMs)) return FALLBACK;
  if (!sortTags(src, s, ctx.tagOrder, ctx.fieldChars)) return FALLBACK;
  const subject = ctx.tokenSubject;
  subject.action = action.action;
  subject.token.claims.mesh = ctx.strings.get(src, s.startOf(Field.ClaimsMesh), s.endOf(Field.ClaimsMesh));
  if (!rules.covers(subject)) return SKIPPED; // if every string is ASCII (see writeResource)
  out.put(ctx.starts.of(ctx.dates.format(dateMs), action));
  if (!out.copyPlain(src, s.startOf(Field.TokenId), s.endOf(Field.TokenId))) return FALLBACK;
  if (!isEmpty(s, Field.ExpiresAt)) {
    out.put(THEN_EXPIRES_AT);
    out.put(ctx.expiries.of(ctx.dates.formatOther(expiresMs)));
  }
  out.put(THEN_CLAIMS);
  if (!writeClaims(src, s, ctx.tagOrder, out)) return FALLBACK;
  out.put(TOKEN_THEN_USER);
  return RECORDED;
}

/**
 * The claims that are set, in formatClaims' order, comma-separated (without the braces around them).
 * Each step below returns how many claims are written so far, or -1 when a string is not plain.
 */
function writeClaims(src: Uint8Array, s: EventScanner, tagOrder: Int32Array, out: RecordBuffer): boolean {
  let parts = claimString(src, s, Field.ClaimsMesh, CLAIMS_MESH, 0, out);
  if (parts >= 0 && s.tagCount > 0) {
    parts = startClaim(CLAIMS_TAGS, parts, out);
    for (let i = 0; i < s.tagCount; i++) {
      const at = 4 * tagOrder[i];
      if (i > 0) out.putByte(COMMA);
      out.putByte(QUOTE);
      if (!out.copyPlain(src, s.tags[at], s.tags[at + 1])) return false;
      out.putByte(QUOTE);
      out.putByte(COLON);
      out.putByte(QUOTE);
      if (!out.copyPlain(src, s.tags[at + 2], s.tags[at + 3])) return false;
      out.putByte(QUOTE);
    }
    out.putByte(CLOSE_BRACE);
  }
  if (parts >= 0) parts = claimString(src, s, Field.ClaimsName, CLAIMS_NAME, parts, out);
  if (parts >= 0) parts = claimList(src, s.claimsGroups, CLAIMS_GROUPS, parts, out);
  if (parts >= 0) parts = claimString(src, s, Field.ClaimsZone, CLAIMS_ZONE, parts, out);
  if (parts >= 0) parts = claimList(src, s.scope, CLAIMS_SCOPE, parts, out);
  return parts >= 0;
}

/** A comma after the first claim, then `"name":` and what opens its value. */
function startClaim(name: Uint8Array, parts: number, out: RecordBuffer): number {
  if (parts > 0) out.putByte(COMMA);
  out.put(name);
  return parts + 1;
}

/** A string claim, when it is set. */
function claimString(
  src: Uint8Array,
  s: EventScanner,
  field: Field,
  name: Uint8Array,
  parts: number,
  out: RecordBuffer,
): number {
  if (isEmpty(s, field)) return parts;
  parts = startClaim(name, parts, out);
  if (!out.copyPlain(src, s.startOf(field), s.endOf(field))) return -1;
  out.putByte(QUOTE);
  return parts;
}

/** A list claim, when it has entries. */
function claimList(src: Uint8Array, list: SpanList, name: Uint8Array, parts: number, out: RecordBuffer): number {
  if (list.count === 0) return parts;
  parts = startClaim(name, parts, out);
  if (!writeList(src, list, out)) return -1;
  out.putByte(CLOSE_BRACKET);
  return parts;
}

/** `"a","b"`: the strings of a list, quoted, comma-separated; false if one is not plain. */
function writeList(src: Uint8Array, list: SpanList, out: RecordBuffer): boolean {
  for (let i = 0; i < list.count; i++) {
    if (i > 0) out.putByte(COMMA);
    out.putByte(QUOTE);
    if (!out.copyPlain(src, list.spans[2 * i], list.spans[2 * i + 1])) return false;
    out.putByte(QUOTE);
  }
  return true;
}

/**
 * Puts the tag entries in key order into `order`, as the reference sorts an object's keys. False when
 * two entries share a key (the reference keeps the last) or a key or value is over-long: the
 * reference way handles those.
 */
function sortTags(src: Uint8Array, s: EventScanner, order: Int32Array, maxChars: number): boolean {
  const tags = s.tags;
  for (let i = 0; i < s.tagCount; i++) {
    const at = 4 * i;
    if (tooLong(maxChars, tags[at], tags[at + 1]) || tooLong(maxChars, tags[at + 2], tags[at + 3])) return false;
    // Insertion sort: a token has a handful of tags.
    let j = i;
    for (; j > 0; j--) {
      const prev = 4 * order[j - 1];
      const c = compareBytes(src, tags[prev], tags[prev + 1], src, tags[at], tags[at + 1]);
      if (c === 0) return false;
      if (c < 0) break;
      order[j] = order[j - 1];
    }
    order[j] = i;
  }
  return true;
}

/**
 * Byte order of a[aStart, aEnd) and b[bStart, bEnd): for ASCII, the order of JavaScript's sort, and
 * non-ASCII keys are never copied into a plain record anyway.
 */
function compareBytes(
  a: Uint8Array,
  aStart: number,
  aEnd: number,
  b: Uint8Array,
  bStart: number,
  bEnd: number,
): number {
  const n = Math.min(aEnd - aStart, bEnd - bStart);
  for (let i = 0; i < n; i++) {
    const d = a[aStart + i] - b[bStart + i];
    if (d !== 0) return d;
  }
  return aEnd - aStart - (bEnd - bStart);
}
