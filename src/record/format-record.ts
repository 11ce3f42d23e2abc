// The reference way to write a record (spec section 3): one JSON object per line, keys in the order of
// RECORD_KEYS, no extra keys. Built by concatenation rather than JSON.stringify of an object: the
// order is then the table's, and optional keys (mesh, expiresAt, empty claims) are left out rather
// than written as empty values.
import type { ValidEvent } from '../events/valid-event';
import type { RecordDateFormatter } from './dates';
import { type KeyOf, key, RECORD_KEYS, type RecordObject } from './keys';

// What JSON.stringify would escape in a string: quotes, backslashes, control characters, and (since
// ES2019) lone surrogates, which the range below over-approximates with every surrogate.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must be escaped
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** JSON.stringify of a string; about twice as fast for the plain names and ids that make up records. */
function q(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

function stringList(list: readonly string[]): string {
  let out = '[';
  for (let i = 0; i < list.length; i++) out += (i === 0 ? '' : ',') + q(list[i]);
  return `${out}]`;
}

/** A JSON object of `object`'s keys in table order; a key whose value is undefined is left out. */
function object<O extends RecordObject>(o: O, valueAt: (k: KeyOf<O>) => string | undefined): string {
  let out = '';
  for (const k of RECORD_KEYS[o] as readonly KeyOf<O>[]) {
    const value = valueAt(k);
    if (value === undefined) continue;
    out += `${out === '' ? '' : ','}${key(o, k)}${value}`;
  }
  return `{${out}}`;
}

/** A set string, or undefined (left out). */
function optional(s: string | undefined): string | undefined {
  return s ? q(s) : undefined;
}

/** A list with entries, or undefined (left out). */
function optionalList(list: readonly string[] | undefined): string | undefined {
  return list !== undefined && list.length > 0 ? stringList(list) : undefined;
}

/** The record line for `e`, with its trailing "\n". */
export function formatRecord(e: ValidEvent, dates: RecordDateFormatter): string {
  const record = object('record', (k) => {
    switch (k) {
      case 'date':
        return `"${dates.format(e.dateMs)}"`;
      case 'action':
        return `"${e.action}"`;
      case 'resource': {
        const r = e.resource;
        if (r === null) return undefined;
        return object('resource', (rk) => (rk === 'mesh' ? optional(r.mesh) : q(r[rk])));
      }
      case 'token': {
        const t = e.token;
        if (t === null) return undefined;
        return object('token', (tk) => {
          if (tk === 'id') return q(t.id);
          if (tk === 'expiresAt')
            return t.expiresAtMs === undefined ? undefined : `"${dates.formatOther(t.expiresAtMs)}"`;
          return claims(t.claims);
        });
      }
      case 'user':
        return object('user', (uk) => (uk === 'name' ? q(e.user.name) : stringList(e.user.groups)));
    }
  });
  return `${record}\n`;
}

function claims(c: NonNullable<ValidEvent['token']>['claims']): string {
  return object('claims', (k) => {
    switch (k) {
      case 'tags': {
        const tags = c.tags;
        if (tags === undefined) return undefined;
        // Protobuf maps have no order; sorted keys make records of the same token identical.
        const keys = Object.keys(tags).sort();
        return keys.length === 0 ? undefined : `{${keys.map((t) => `${q(t)}:${q(tags[t])}`).join(',')}}`;
      }
      case 'groups':
      case 'scope':
        return optionalList(c[k]);
      default:
        return optional(c[k]);
    }
  });
}
