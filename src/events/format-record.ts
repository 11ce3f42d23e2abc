// The audit record (spec section 3): one JSON object per line, keys in a fixed order, no extra keys.
// Built by concatenation rather than JSON.stringify of an object: key order is then explicit, and
// optional keys (mesh, claims) are left out rather than written as empty values.
import type { EventClaims } from './event';
import type { RecordDateFormatter } from './rfc3339';
import type { ValidEvent } from './valid-event';

// What JSON.stringify would escape in a string: quotes, backslashes, control characters, and (since
// ES2019) lone surrogates, which the range below over-approximates with every surrogate.
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

function formatClaims(c: EventClaims): string {
  const parts: string[] = [];
  if (c.mesh) parts.push(`"mesh":${q(c.mesh)}`);
  if (c.tags) {
    const keys = Object.keys(c.tags);
    if (keys.length > 0) {
      // Protobuf maps have no order; sorted keys make records of the same token identical.
      keys.sort();
      parts.push(`"tags":{${keys.map((k) => `${q(k)}:${q(c.tags![k])}`).join(',')}}`);
    }
  }
  if (c.name) parts.push(`"name":${q(c.name)}`);
  if (c.groups && c.groups.length > 0) parts.push(`"groups":${stringList(c.groups)}`);
  if (c.zone) parts.push(`"zone":${q(c.zone)}`);
  if (c.scope && c.scope.length > 0) parts.push(`"scope":${stringList(c.scope)}`);
  return `{${parts.join(',')}}`;
}

/** The record line for `e`, with its trailing "\n". */
export function formatRecord(e: ValidEvent, dates: RecordDateFormatter): string {
  let line = `{"date":"${dates.format(e.dateMs)}","action":"${e.action}",`;
  if (e.resource !== null) {
    const r = e.resource;
    line += `"resource":{"name":${q(r.name)},${r.mesh ? `"mesh":${q(r.mesh)},` : ''}"type":${q(r.type)}},`;
  } else if (e.token !== null) {
    const t = e.token;
    line += `"token":{"id":${q(t.id)},`;
    if (t.expiresAtMs !== undefined) line += `"expiresAt":"${dates.formatOther(t.expiresAtMs)}",`;
    line += `"claims":${formatClaims(t.claims)}},`;
  }
  return `${line}"user":{"name":${q(e.user.name)},"groups":${stringList(e.user.groups)}}}\n`;
}
