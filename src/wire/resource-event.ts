// Where the fields of an encoded Event lie, for the common case only: a well-formed resource action (no
// token). Nothing is decoded or copied: the caller reads the few strings it needs and copies the others
// straight into the record (src/pipeline/plain-record.ts). A field sent twice counts once, the last,
// as protobufjs decodes it. Anything else (a token, an unexpected wire type, a truncated message)
// makes scan() return false, and the event takes the way every event can take: protobufjs decoding and
// the reference checks, which then decide (src/pipeline/evaluate-batch.ts).

/** Event, Resource and User field numbers (proto/meshaudit/v1/audit.proto). */
const EVENT_ID = 1;
const EVENT_DATE = 2;
const EVENT_ACTION = 3;
const EVENT_RESOURCE = 4;
const EVENT_TOKEN = 5;
const EVENT_USER = 6;
const RESOURCE_TYPE = 1;
const RESOURCE_NAME = 2;
const RESOURCE_MESH = 3;
const USER_NAME = 1;
const USER_GROUPS = 2;

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** The strings of a resource event, as indexes into ResourceEventScanner.spans. */
export const Field = { Id: 0, Date: 1, Action: 2, Type: 3, Name: 4, Mesh: 5, User: 6 } as const;
export type Field = (typeof Field)[keyof typeof Field];
const FIELD_COUNT = 7;

/** The Field of each string field number of Event and of Resource. */
const EVENT_STRINGS: Field[] = [];
EVENT_STRINGS[EVENT_ID] = Field.Id;
EVENT_STRINGS[EVENT_DATE] = Field.Date;
EVENT_STRINGS[EVENT_ACTION] = Field.Action;
const RESOURCE_STRINGS: Field[] = [];
RESOURCE_STRINGS[RESOURCE_TYPE] = Field.Type;
RESOURCE_STRINGS[RESOURCE_NAME] = Field.Name;
RESOURCE_STRINGS[RESOURCE_MESH] = Field.Mesh;

/** Most user groups a plain event may carry; more goes the reference way (which rejects past 64). */
export const MAX_SCANNED_GROUPS = 64;

/** Scans one event at a time; reused from event to event, so that scanning allocates nothing. */
export class ResourceEventScanner {
  /** Start and end offset of each Field's string in the scanned buffer; 0, 0 when absent. */
  readonly spans = new Int32Array(2 * FIELD_COUNT);
  /** Start and end offset of each user group, in pairs. */
  readonly groups = new Int32Array(2 * MAX_SCANNED_GROUPS);
  groupCount = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private end = 0;

  startOf(field: Field): number {
    return this.spans[2 * field];
  }

  endOf(field: Field): number {
    return this.spans[2 * field + 1];
  }

  /**
   * Scans the Event in buf[start, end). True when it is a plain resource event: no token, resource and
   * user present, at most MAX_SCANNED_GROUPS groups, well-formed.
   * It checks nothing else (empty names, lengths, actions): the caller does.
   */
  scan(buf: Uint8Array, start: number, end: number): boolean {
    this.buf = buf;
    this.spans.fill(0);
    this.groupCount = 0;
    this.resourceStart = this.userStart = -1;
    return (
      this.walk(start, end, EVENT_USER, this.eventField) &&
      this.resourceStart >= 0 &&
      this.userStart >= 0 &&
      this.walk(this.resourceStart, this.resourceEnd, RESOURCE_MESH, this.resourceField) &&
      this.walk(this.userStart, this.userEnd, USER_GROUPS, this.userField)
    );
  }

  private resourceStart = -1;
  private resourceEnd = -1;
  private userStart = -1;
  private userEnd = -1;

  // What to do with each field of Event, Resource and User: made once, so that walking allocates nothing.
  private readonly eventField = (field: number, start: number, end: number): boolean => {
    if (field === EVENT_TOKEN) return false;
    if (field === EVENT_RESOURCE) {
      this.resourceStart = start;
      this.resourceEnd = end;
    } else if (field === EVENT_USER) {
      this.userStart = start;
      this.userEnd = end;
    } else {
      this.set(EVENT_STRINGS[field], start, end);
    }
    return true;
  };

  private readonly resourceField = (field: number, start: number, end: number): boolean => {
    this.set(RESOURCE_STRINGS[field], start, end);
    return true;
  };

  private readonly userField = (field: number, start: number, end: number): boolean => {
    if (field === USER_NAME) {
      this.set(Field.User, start, end);
      return true;
    }
    if (this.groupCount === MAX_SCANNED_GROUPS) return false;
    this.groups[2 * this.groupCount] = start;
    this.groups[2 * this.groupCount + 1] = end;
    this.groupCount++;
    return true;
  };

  /**
   * Walks the fields of the message in buf[start, end): each numbered 1 to `lastField` (all of them
   * strings or messages) goes to `visit` with its contents' offsets; others are skipped. False when
   * the message is malformed, such a field has another wire type, or `visit` says so.
   */
  private walk(start: number, end: number, lastField: number, visit: (field: number, start: number, end: number) => boolean): boolean {
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

  private set(field: Field, start: number, end: number): void {
    this.spans[2 * field] = start;
    this.spans[2 * field + 1] = end;
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
