// Events as JSON, as grpcurl -d takes them: one per line of a file, each checked against the Event
// message of the contract before it is sent. protobufjs, like any protobuf library, drops fields it does
// not know, so a misspelt "mesch" would otherwise be recorded without its mesh, and a wrong JSON type
// would fail as an opaque serialization error.
import * as protobuf from 'protobufjs';
import { contract, jsonName } from '../contract';
import { entry, field, index, quote, show, unknownField, type Violations } from '../validators';

/** A line of the input that holds an event, numbered as in the file (from 1). */
export interface EventLine {
  line: number;
  text: string;
}

export function eventLines(text: string): EventLine[] {
  const out: EventLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line !== '' && !line.startsWith('#')) out.push({ line: i + 1, text: line });
  });
  return out;
}

/**
 * Checks an event's JSON against the Event message as the .proto file declares it, adding every
 * problem with its field path under `event`. Returns the event with JSON names.
 */
export function checkEvent(value: unknown, problems: Violations): Record<string, unknown> | undefined {
  return checkMessage(contract().type('meshaudit.v1.Event'), value, 'event', problems);
}

/** The protobuf JSON name of a field (`expires_at` -> `expiresAt`): its json_name option, or protoc's. */
function jsonNameOf(field: protobuf.Field): string {
  return (field.options?.json_name as string | undefined) ?? jsonName(field.name);
}

/**
 * Checks `value` against `type` as the protobuf JSON mapping reads it (JSON names and proto names
 * accepted, null meaning "not set"), adding every problem with its field path. Returns the message
 * with JSON names, or undefined when `value` is not an object.
 */
function checkMessage(
  type: protobuf.Type,
  value: unknown,
  at: string,
  problems: Violations,
): Record<string, unknown> | undefined {
  if (!isObject(value)) {
    problems.add(at, mustBeJson('an object', value));
    return undefined;
  }
  const byJsonName = new Map(type.fieldsArray.map((f) => [jsonNameOf(f), f]));
  const givenAs = new Map<protobuf.Field, string>();
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const keyPath = field(at, key);
    const declared = byJsonName.get(key) ?? (Object.hasOwn(type.fields, key) ? type.fields[key] : undefined);
    if (declared === undefined) {
      problems.add(keyPath, unknownField(key, [...byJsonName.keys()]));
      continue;
    }
    const other = givenAs.get(declared);
    if (other !== undefined) {
      problems.add(keyPath, `the same field as ${quote(other)}: give it once`);
      continue;
    }
    givenAs.set(declared, key);
    if (item === null) continue;
    declared.resolve();
    if (declared.map) {
      if (!isObject(item)) problems.add(keyPath, mustBeJson(`an object of ${kindOf(declared).many}`, item));
      else
        out[jsonNameOf(declared)] = Object.fromEntries(
          Object.entries(item).map(([k, v]) => [k, checkValue(declared, v, entry(keyPath, k), problems)]),
        );
    } else if (declared.repeated) {
      if (!Array.isArray(item)) problems.add(keyPath, mustBeJson(`a list of ${kindOf(declared).many}`, item));
      else out[jsonNameOf(declared)] = item.map((v, i) => checkValue(declared, v, index(keyPath, i), problems));
    } else {
      out[jsonNameOf(declared)] = checkValue(declared, item, keyPath, problems);
    }
  }
  return out;
}

/** One value of a field (an element, for lists and maps). */
function checkValue(declared: protobuf.Field, value: unknown, at: string, problems: Violations): unknown {
  const t = declared.resolvedType;
  if (t instanceof protobuf.Type) return checkMessage(t, value, at, problems);
  const ok =
    t instanceof protobuf.Enum
      ? (typeof value === 'string' && Object.hasOwn(t.values, value)) || Number.isInteger(value)
      : declared.type === 'string' || declared.type === 'bytes'
        ? typeof value === 'string'
        : declared.type === 'bool'
          ? typeof value === 'boolean'
          : // Numbers may be strings, as 64-bit integers must be in JSON.
            (typeof value === 'number' || (typeof value === 'string' && value.trim() !== '')) &&
            Number.isFinite(Number(value));
  if (!ok) problems.add(at, mustBeJson(kindOf(declared).one, value));
  return value;
}

/** What a field's values must be, in words: one value, and several in a list or map. */
function kindOf(declared: protobuf.Field): { one: string; many: string } {
  const t = declared.resolvedType;
  if (t instanceof protobuf.Type) return { one: 'an object', many: 'objects' };
  if (t instanceof protobuf.Enum)
    return { one: `one of ${Object.keys(t.values).join(', ')}`, many: `names of ${t.name}` };
  if (declared.type === 'string') return { one: 'a string', many: 'strings' };
  if (declared.type === 'bytes') return { one: 'a base64 string', many: 'base64 strings' };
  if (declared.type === 'bool') return { one: 'true or false', many: 'true or false' };
  return { one: 'a number', many: 'numbers' };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `must be <expected>, got <value>`, in JSON's words (an object, not a mapping). */
function mustBeJson(expected: string, got: unknown): string {
  return `must be ${expected}, got ${show(got, 'an object')}`;
}
