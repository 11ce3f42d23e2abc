// The reference way to write a record (spec section 3): one JSON object per line, keys from KEY in the
// order of RECORD_KEYS (src/record/keys.ts), no extra keys. Built by concatenation rather than
// JSON.stringify of an object: the order is then explicit, and optional keys (mesh, expiresAt, empty
// claims) are left out rather than written as empty values. Every event the plain byte path leaves
// (any character JSON must escape), every Record the plain path cannot read, Evaluate and the records
// of rule changes take this way.
import type { ValidEvent } from '../events/valid-event';
import type { RecordDateFormatter } from './dates';
import { KEY } from './keys';

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

const R = KEY.record;
const RES = KEY.resource;
const TOK = KEY.token;
const CL = KEY.claims;
const U = KEY.user;

function formatClaims(c: NonNullable<ValidEvent['token']>['claims']): string {
  const parts: string[] = [];
  if (c.mesh) parts.push(CL.mesh + q(c.mesh));
  if (c.tags) {
    const keys = Object.keys(c.tags);
    if (keys.length > 0) {
      // Protobuf maps have no order; sorted keys make records of the same token identical.
      keys.sort();
      parts.push(`${CL.tags}{${keys.map((k) => `${q(k)}:${q(c.tags![k])}`).join(',')}}`);
    }
  }
  if (c.name) parts.push(CL.name + q(c.name));
  if (c.groups && c.groups.length > 0) parts.push(CL.groups + stringList(c.groups));
  if (c.zone) parts.push(CL.zone + q(c.zone));
  if (c.scope && c.scope.length > 0) parts.push(CL.scope + stringList(c.scope));
  return `{${parts.join(',')}}`;
}

/** The record line for `e`, with its trailing "\n". */
export function formatRecord(e: ValidEvent, dates: RecordDateFormatter): string {
  let line = `{${R.date}"${dates.format(e.dateMs)}",${R.action}"${e.action}",`;
  if (e.resource !== null) {
    const r = e.resource;
    line += `${R.resource}{${RES.name}${q(r.name)},${r.mesh ? `${RES.mesh}${q(r.mesh)},` : ''}${RES.type}${q(r.type)}},`;
  } else if (e.token !== null) {
    const t = e.token;
    line += `${R.token}{${TOK.id}${q(t.id)},`;
    if (t.expiresAtMs !== undefined) line += `${TOK.expiresAt}"${dates.formatOther(t.expiresAtMs)}",`;
    line += `${TOK.claims}${formatClaims(t.claims)}},`;
  }
  return `${line}${R.user}{${U.name}${q(e.user.name)},${U.groups}${stringList(e.user.groups)}}}\n`;
}
