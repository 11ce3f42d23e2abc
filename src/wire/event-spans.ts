// Where the fields of an encoded Event lie, for well-formed events only. Nothing is decoded or copied:
// the caller reads the few strings it needs and copies the others straight into the record
// (src/record/plain-record.ts). A string or message field sent twice (which no encoder does) is left
// to the reference way, which reads every copy: here every string byte of the event is in a span.
// Anything else (an unexpected wire type, a truncated message, more list entries than an event may
// have) makes scan() return NOT_SCANNED, and the event takes the way every event can take: protobufjs
// decoding and the reference checks, which then decide (src/pipeline/evaluate-batch.ts).
import { contract } from '../contract';

// Field numbers of Event and its messages, from the contract (proto/meshaudit/v1/audit.proto).
const number = (message: string, field: string): number => contract().fieldNumber(message, field);
const EVENT_ID = number('Event', 'id');
const EVENT_DATE = number('Event', 'date');
const EVENT_ACTION = number('Event', 'action');
const EVENT_RESOURCE = number('Event', 'resource');
const EVENT_TOKEN = number('Event', 'token');
const EVENT_USER = number('Event', 'user');
const RESOURCE_TYPE = number('Resource', 'type');
const RESOURCE_NAME = number('Resource', 'name');
const RESOURCE_MESH = number('Resource', 'mesh');
const TOKEN_ID = number('Token', 'id');
const TOKEN_EXPIRES_AT = number('Token', 'expires_at');
const TOKEN_CLAIMS = number('Token', 'claims');
const CLAIMS_MESH = number('Claims', 'mesh');
const CLAIMS_TAGS = number('Claims', 'tags');
const CLAIMS_NAME = number('Claims', 'name');
const CLAIMS_GROUPS = number('Claims', 'groups');
const CLAIMS_ZONE = number('Claims', 'zone');
const CLAIMS_SCOPE = number('Claims', 'scope');
const USER_NAME = number('User', 'name');
const USER_GROUPS = number('User', 'groups');
// A map entry's key and value: fixed by the protobuf encoding of maps, not by the contract.
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;
// The highest number each message's walk looks at: fields above it are skipped unread.
const EVENT_LAST = Math.max(EVENT_ID, EVENT_DATE, EVENT_ACTION, EVENT_RESOURCE, EVENT_TOKEN, EVENT_USER);
const RESOURCE_LAST = Math.max(RESOURCE_TYPE, RESOURCE_NAME, RESOURCE_MESH);
const TOKEN_LAST = Math.max(TOKEN_ID, TOKEN_EXPIRES_AT, TOKEN_CLAIMS);
const CLAIMS_LAST = Math.max(CLAIMS_MESH, CLAIMS_TAGS, CLAIMS_NAME, CLAIMS_GROUPS, CLAIMS_ZONE, CLAIMS_SCOPE);
const USER_LAST = Math.max(USER_NAME, USER_GROUPS);

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** The single strings of an event, as indexes into EventScanner.spans. */
export const Field = {
  Id: 0,
  Date: 1,
  Action: 2,
  Type: 3,
  Name: 4,
  Mesh: 5,
  User: 6,
  TokenId: 7,
  ExpiresAt: 8,
  ClaimsMesh: 9,
  ClaimsName: 10,
  ClaimsZone: 11,
} as const;
export type Field = (typeof Field)[keyof typeof Field];
const FIELD_COUNT = 12;

/** The Field of each string field number of a message. */
const EVENT_STRINGS = fieldsByNumber([EVENT_ID, Field.Id], [EVENT_DATE, Field.Date], [EVENT_ACTION, Field.Action]);
const RESOURCE_STRINGS = fieldsByNumber(
  [RESOURCE_TYPE, Field.Type],
  [RESOURCE_NAME, Field.Name],
  [RESOURCE_MESH, Field.Mesh],
);
const TOKEN_STRINGS = fieldsByNumber([TOKEN_ID, Field.TokenId], [TOKEN_EXPIRES_AT, Field.ExpiresAt]);
const CLAIMS_STRINGS = fieldsByNumber(
  [CLAIMS_MESH, Field.ClaimsMesh],
  [CLAIMS_NAME, Field.ClaimsName],
  [CLAIMS_ZONE, Field.ClaimsZone],
);

function fieldsByNumber(...pairs: Array<[number, Field]>): Field[] {
  const byNumber: Field[] = [];
  for (const [number, field] of pairs) byNumber[number] = field;
  return byNumber;
}

/** Start and end offsets of a list's strings, in pairs, with their count. */
export class SpanList {
  readonly spans: Int32Array;
  count = 0;

  /** `capacity`: most entries; more goes the reference way, which rejects them by the same limit. */
  constructor(private readonly capacity: number) {
    this.spans = new Int32Array(2 * capacity);
  }

  /** False when the list is full. */
  add(start: number, end: number): boolean {
    if (this.count === this.capacity) return false;
    this.spans[2 * this.count] = start;
    this.spans[2 * this.count + 1] = end;
    this.count++;
    return true;
  }
}

export const NOT_SCANNED = 0;
export const RESOURCE_EVENT = 1;
export const TOKEN_EVENT = 2;
export type ScanResult = typeof NOT_SCANNED | typeof RESOURCE_EVENT | typeof TOKEN_EVENT;

/** Scans one event at a time; reused from event to event, so that scanning allocates nothing. */
export class EventScanner {
  /** Start and end offset of each Field's string in the scanned buffer; 0, 0 when absent. */
  readonly spans = new Int32Array(2 * FIELD_COUNT);
  readonly userGroups: SpanList;
  readonly claimsGroups: SpanList;
  readonly scope: SpanList;
  /** Token claims tags: key start, key end, value start, value end of each entry, as sent. */
  readonly tags: Int32Array;
  tagCount = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private end = 0;
  // Where the nested messages lie, once the top level is walked.
  private resourceStart = -1;
  private resourceEnd = -1;
  private tokenStart = -1;
  private tokenEnd = -1;
  private claimsStart = -1;
  private claimsEnd = -1;
  private userStart = -1;
  private userEnd = -1;

  /**
   * `maxEntries`: most entries of one list or map a scanned event may carry (meshaudit.limits.listEntries,
   * the same as the reference checks); an event with more goes the reference way, which rejects it.
   */
  constructor(private readonly maxEntries: number) {
    this.userGroups = new SpanList(maxEntries);
    this.claimsGroups = new SpanList(maxEntries);
    this.scope = new SpanList(maxEntries);
    this.tags = new Int32Array(4 * maxEntries);
  }

  startOf(field: Field): number {
    return this.spans[2 * field];
  }

  endOf(field: Field): number {
    return this.spans[2 * field + 1];
  }

  /**
   * Scans the Event in buf[start, end). RESOURCE_EVENT or TOKEN_EVENT when it is well-formed, has a
   * user and exactly one of resource and token, and no list or map of more than `maxEntries`.
   * It checks nothing else (empty names, lengths, actions): the caller does.
   */
  scan(buf: Uint8Array, start: number, end: number): ScanResult {
    this.buf = buf;
    this.spans.fill(0);
    this.userGroups.count = this.claimsGroups.count = this.scope.count = this.tagCount = 0;
    this.resourceStart = this.tokenStart = this.claimsStart = this.userStart = -1;
    if (!this.walk(start, end, EVENT_LAST, this.eventField) || this.userStart < 0) return NOT_SCANNED;
    if (!this.walk(this.userStart, this.userEnd, USER_LAST, this.userField)) return NOT_SCANNED;
    if (this.resourceStart >= 0 && this.tokenStart < 0) {
      return this.walk(this.resourceStart, this.resourceEnd, RESOURCE_LAST, this.resourceField)
        ? RESOURCE_EVENT
        : NOT_SCANNED;
    }
    if (this.tokenStart < 0 || this.resourceStart >= 0) return NOT_SCANNED;
    if (!this.walk(this.tokenStart, this.tokenEnd, TOKEN_LAST, this.tokenField)) return NOT_SCANNED;
    if (this.claimsStart >= 0 && !this.walk(this.claimsStart, this.claimsEnd, CLAIMS_LAST, this.claimsField))
      return NOT_SCANNED;
    return TOKEN_EVENT;
  }

  // What to do with each field of each message: made once, so that walking allocates nothing.
  private readonly eventField = (field: number, start: number, end: number): boolean => {
    if (field === EVENT_RESOURCE) {
      if (this.resourceStart >= 0) return false;
      this.resourceStart = start;
      this.resourceEnd = end;
    } else if (field === EVENT_TOKEN) {
      if (this.tokenStart >= 0) return false;
      this.tokenStart = start;
      this.tokenEnd = end;
    } else if (field === EVENT_USER) {
      if (this.userStart >= 0) return false;
      this.userStart = start;
      this.userEnd = end;
    } else {
      return this.set(EVENT_STRINGS[field], start, end);
    }
    return true;
  };

  private readonly resourceField = (field: number, start: number, end: number): boolean =>
    this.set(RESOURCE_STRINGS[field], start, end);

  private readonly tokenField = (field: number, start: number, end: number): boolean => {
    if (field !== TOKEN_CLAIMS) return this.set(TOKEN_STRINGS[field], start, end);
    if (this.claimsStart >= 0) return false;
    this.claimsStart = start;
    this.claimsEnd = end;
    return true;
  };

  private readonly claimsField = (field: number, start: number, end: number): boolean => {
    if (field === CLAIMS_GROUPS) return this.claimsGroups.add(start, end);
    if (field === CLAIMS_SCOPE) return this.scope.add(start, end);
    if (field !== CLAIMS_TAGS) return this.set(CLAIMS_STRINGS[field], start, end);
    if (this.tagCount === this.maxEntries) return false;
    // A map entry without a key or a value has "" for it, as protobufjs decodes it.
    const at = 4 * this.tagCount++;
    this.tags.fill(0, at, at + 4);
    // The entry is walked inside the walk of the claims: their place is put back afterwards.
    const claimsPos = this.pos;
    const claimsEnd = this.end;
    const ok = this.walk(start, end, ENTRY_VALUE, this.entryField);
    this.pos = claimsPos;
    this.end = claimsEnd;
    return ok;
  };

  private readonly entryField = (field: number, start: number, end: number): boolean => {
    const at = 4 * (this.tagCount - 1) + (field === ENTRY_KEY ? 0 : 2);
    if (this.tags[at + 1] !== 0) return false; // sent twice in one entry
    this.tags[at] = start;
    this.tags[at + 1] = end;
    return true;
  };

  private readonly userField = (field: number, start: number, end: number): boolean => {
    if (field === USER_GROUPS) return this.userGroups.add(start, end);
    if (field === USER_NAME) return this.set(Field.User, start, end);
    return true;
  };

  /**
   * Walks the fields of the message in buf[start, end): each numbered 1 to `lastField` (all of them
   * strings or messages) goes to `visit` with its contents' offsets; others are skipped. False when
   * the message is malformed, such a field has another wire type, or `visit` says so.
   */
  private walk(
    start: number,
    end: number,
    lastField: number,
    visit: (field: number, start: number, end: number) => boolean,
  ): boolean {
    this.pos = start;
    this.end = end;
    while (this.pos < end) {
      const tag = this.varint();
      if (this.pos < 0 || tag > 0xffffffff) return false;
      const field = Math.floor(tag / 8);
      if (field < 1 || field > lastField) {
        if (!this.skip(tag & 7)) return false;
        continue;
      }
      if ((tag & 7) !== LENGTH_DELIMITED) return false;
      const fieldEnd = this.fieldEnd();
      if (fieldEnd < 0 || !visit(field, this.pos, fieldEnd)) return false;
      this.pos = fieldEnd;
    }
    return true;
  }

  /** Records where `field` lies; false when it was sent already. */
  private set(field: Field, start: number, end: number): boolean {
    // A field present has a tag before it, so its end is never 0.
    if (this.spans[2 * field + 1] !== 0) return false;
    this.spans[2 * field] = start;
    this.spans[2 * field + 1] = end;
    return true;
  }

  /** A varint of up to 35 bits; pos becomes -1 when it is malformed or runs past the end. */
  private varint(): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) break;
      const b = this.buf[this.pos++];
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
    this.pos = -1;
    return 0;
  }

  /** The end of the length-delimited field whose length is next, or -1. */
  private fieldEnd(): number {
    const length = this.varint();
    if (this.pos < 0 || length > this.end - this.pos) return -1;
    return this.pos + length;
  }

  /** Skips a field of a number not looked at; false for groups, unknown wire types and overruns. */
  private skip(wireType: number): boolean {
    if (wireType === VARINT) this.varint();
    else if (wireType === FIXED64) this.pos += 8;
    else if (wireType === FIXED32) this.pos += 4;
    else if (wireType === LENGTH_DELIMITED) this.pos = this.fieldEnd();
    else return false;
    return this.pos >= 0 && this.pos <= this.end;
  }
}
