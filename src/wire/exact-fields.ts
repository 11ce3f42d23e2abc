// What proto3 asks of a message and protobufjs lets through unsaid. protobufjs decodes a string whose
// bytes are not UTF-8 with U+FFFD in place of them, and proto-loader turns a uint64 past 2^53 into a
// rounded number: a request would be handled as something its sender did not send, and a message
// would quote a value it never had (`got 18446744073709552000`). This walks a message's bytes by its
// type and names such fields, so that the request is refused instead (INVALID_ARGUMENT). It names the
// first MAX_NAMED and counts the rest: a 4 MiB request can hold a million bad strings, and a violation
// for each (a path and a description) took 1.7 GB.
import { isUtf8 } from 'node:buffer';
import * as protobuf from 'protobufjs';
import { MAX_EXACT_INTEGER, NOT_UTF8, pastExact, type Violation } from '../validators';

const LENGTH_DELIMITED = 2;
const INTEGERS_64 = new Set(['uint64', 'int64', 'sint64', 'fixed64', 'sfixed64']);
/** How many inexact fields are named; a last violation counts the others. */
export const MAX_NAMED = 5;

/** The violations named so far, and how many more were found. */
class Found {
  readonly named: Violation[] = [];
  unnamed = 0;

  /** `path` is built only while it will be named: past MAX_NAMED a field is only counted. */
  add(path: () => string, description: string): void {
    if (this.named.length < MAX_NAMED) this.named.push({ field: path(), description });
    else this.unnamed++;
  }

  get all(): Violation[] {
    if (this.unnamed === 0) return this.named;
    return [...this.named, { field: '', description: `and ${this.unnamed} more field(s) like these` }];
  }
}

/**
 * The string fields of `bytes` (a `type` message) that are not UTF-8, and the 64-bit integers a JS
 * number cannot hold exactly, by path as handlers name fields (`accessAudit.rules[0].mesh`): the first
 * MAX_NAMED of them, then one that counts the rest. Unknown fields are skipped, as decoders skip them.
 * Throws where the bytes are not a message at all: the caller refuses the request as unreadable.
 */
export function inexactFields(type: protobuf.Type, bytes: Uint8Array): Violation[] {
  const out = new Found();
  const r = protobuf.Reader.create(bytes);
  walk(type, r, r.len, '', out);
  return out.all;
}

function walk(type: protobuf.Type, r: protobuf.Reader, end: number, prefix: string, out: Found): void {
  const seen = new Map<number, number>();
  while (r.pos < end) {
    const tag = r.uint32();
    const wire = tag & 7;
    const field = type.fieldsById[tag >>> 3];
    if (field === undefined) {
      r.skipType(wire);
      continue;
    }
    const n = seen.get(field.id) ?? 0;
    seen.set(field.id, n + 1);
    const path = (): string => `${prefix}${field.name}${field.repeated ? `[${n}]` : ''}`;
    field.resolve();
    if (field instanceof protobuf.MapField && wire === LENGTH_DELIMITED) {
      mapEntry(field, r, path, out);
    } else if (field.type === 'string' && wire === LENGTH_DELIMITED) {
      if (!isUtf8(r.bytes())) out.add(path, NOT_UTF8);
    } else if (INTEGERS_64.has(field.type) && wire !== LENGTH_DELIMITED) {
      const value = BigInt(String((r as unknown as Record<string, () => unknown>)[field.type]()));
      if (value > BigInt(MAX_EXACT_INTEGER) || value < -BigInt(MAX_EXACT_INTEGER)) {
        out.add(path, pastExact(value));
      }
    } else if (field.resolvedType instanceof protobuf.Type && wire === LENGTH_DELIMITED) {
      const length = r.uint32();
      walk(field.resolvedType, r, r.pos + length, `${path()}.`, out);
    } else {
      r.skipType(wire);
    }
  }
  if (r.pos !== end) throw new Error(`the ${type.name} message runs past the message that holds it`);
}

/** A map entry (key 1, value 2): a string key or value that is not UTF-8 names the map. */
function mapEntry(field: protobuf.MapField, r: protobuf.Reader, path: () => string, out: Found): void {
  const end = r.uint32() + r.pos;
  let bad = false;
  while (r.pos < end) {
    const tag = r.uint32();
    const type = tag >>> 3 === 1 ? field.keyType : tag >>> 3 === 2 ? field.type : undefined;
    if (type === 'string' && (tag & 7) === LENGTH_DELIMITED) bad = !isUtf8(r.bytes()) || bad;
    else r.skipType(tag & 7);
  }
  if (bad) out.add(path, `holds a key or value that ${NOT_UTF8}`);
}
