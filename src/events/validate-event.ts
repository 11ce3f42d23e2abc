// Checks one event from the control plane. An invalid event gets the field and what is wrong with it; it is
// not written and the CP must not retry it (the same bytes would fail again).
import { isAction, isTokenAction, ACTIONS } from '../rules/actions';
import { nearest } from '../rules/suggest';
import type { AuditEvent, EventClaims } from './event';
import { Rfc3339Parser } from './rfc3339';
import type { ValidEvent } from './valid-event';

/**
 * 1024 characters per string field: generous for Kubernetes names (253), emails and group names,
 * and it bounds a record line (and so a batch write) whatever a CP sends.
 */
export const MAX_FIELD_CHARS = 1024;
/** Entries in one list or map field (user groups, token tags, scope). */
export const MAX_LIST_ENTRIES = 64;

/** What is wrong with an event: the field (a path such as `token.claims.tags`) and the problem. */
export interface EventProblem {
  field: string;
  description: string;
}

export type EventCheck = { ok: true; event: ValidEvent } | ({ ok: false } & EventProblem);

/** `field: description`, the form a stream's rejection `reason` takes. */
export function reasonOf(p: EventProblem): string {
  return `${p.field}: ${p.description}`;
}

function problem(field: string, description: string): EventProblem {
  return { field, description };
}

function tooLong(value: string): boolean {
  return value.length > MAX_FIELD_CHARS;
}

function checkList(field: string, list: string[] | undefined): EventProblem | undefined {
  if (list === undefined) return undefined;
  if (list.length > MAX_LIST_ENTRIES) return problem(field, `more than ${MAX_LIST_ENTRIES} entries (${list.length})`);
  for (let i = 0; i < list.length; i++) {
    if (tooLong(list[i])) return problem(`${field}[${i}]`, `longer than ${MAX_FIELD_CHARS} characters`);
  }
  return undefined;
}

function checkClaims(claims: EventClaims): EventProblem | undefined {
  for (const key of ['mesh', 'name', 'zone'] as const) {
    const v = claims[key];
    if (v !== undefined && tooLong(v))
      return problem(`token.claims.${key}`, `longer than ${MAX_FIELD_CHARS} characters`);
  }
  const tags = claims.tags;
  if (tags !== undefined) {
    const keys = Object.keys(tags);
    if (keys.length > MAX_LIST_ENTRIES)
      return problem('token.claims.tags', `more than ${MAX_LIST_ENTRIES} entries (${keys.length})`);
    for (const k of keys) {
      if (tooLong(k) || tooLong(tags[k]))
        return problem(`token.claims.tags["${k.slice(0, 64)}"]`, `longer than ${MAX_FIELD_CHARS} characters`);
    }
  }
  return checkList('token.claims.groups', claims.groups) ?? checkList('token.claims.scope', claims.scope);
}

/** Parsers of an event's times, kept by the caller across events (each remembers its last text). */
export interface EventTimeParsers {
  readonly date: Rfc3339Parser;
  readonly expiresAt: Rfc3339Parser;
}

export function newEventTimeParsers(): EventTimeParsers {
  return { date: new Rfc3339Parser(), expiresAt: new Rfc3339Parser() };
}

/** Validates `raw`; `receivedMs` stands in for a missing date. Never throws. */
export function validateEvent(
  raw: AuditEvent,
  receivedMs: number,
  times: EventTimeParsers = newEventTimeParsers(),
): EventCheck {
  const fail = (field: string, description: string): EventCheck => ({ ok: false, field, description });
  const action = raw.action ?? '';
  if (action === '') return fail('action', 'required');
  if (!isAction(action)) {
    const near = nearest(action, ACTIONS);
    return fail('action', `unknown action "${action.slice(0, 64)}"${near ? `, did you mean "${near}"?` : ''}`);
  }
  const resource = raw.resource ?? null;
  const token = raw.token ?? null;
  if (resource !== null && token !== null) return fail('resource and token', 'set exactly one, not both');
  if (isTokenAction(action)) {
    if (token === null) return fail(`token`, `required for ${action}`);
  } else if (resource === null) {
    return fail(`resource`, `required for ${action}`);
  } else if (token !== null) {
    return fail(`token`, `not allowed for ${action}`);
  }
  if (resource !== null) {
    if (isTokenAction(action)) return fail(`resource`, `not allowed for ${action}; set token`);
    if (!resource.type) return fail('resource.type', 'required');
    if (!resource.name) return fail('resource.name', 'required');
    for (const key of ['type', 'name', 'mesh'] as const) {
      if (tooLong(resource[key] ?? '')) return fail(`resource.${key}`, `longer than ${MAX_FIELD_CHARS} characters`);
    }
  }
  let expiresAtMs: number | undefined;
  if (token !== null) {
    if (!token.id) return fail('token.id', 'required');
    if (tooLong(token.id)) return fail(`token.id`, `longer than ${MAX_FIELD_CHARS} characters`);
    if (token.expiresAt) {
      expiresAtMs = times.expiresAt.parse(token.expiresAt);
      if (Number.isNaN(expiresAtMs))
        return fail(`token.expiresAt`, `not an RFC 3339 time: "${token.expiresAt.slice(0, 64)}"`);
    }
    const claimsProblem = token.claims ? checkClaims(token.claims) : undefined;
    if (claimsProblem) return { ok: false, ...claimsProblem };
  }
  const user = raw.user ?? null;
  if (user === null || !user.name)
    return fail('user.name', 'required (actions the CP does itself carry its own identity)');
  if (tooLong(user.name)) return fail(`user.name`, `longer than ${MAX_FIELD_CHARS} characters`);
  const groupsProblem = checkList('user.groups', user.groups);
  if (groupsProblem) return { ok: false, ...groupsProblem };
  let dateMs = receivedMs;
  if (raw.date) {
    dateMs = times.date.parse(raw.date);
    if (Number.isNaN(dateMs)) return fail(`date`, `not an RFC 3339 time: "${raw.date.slice(0, 64)}"`);
  }
  if (raw.id !== undefined && tooLong(raw.id)) return fail(`id`, `longer than ${MAX_FIELD_CHARS} characters`);
  return {
    ok: true,
    event: {
      dateMs,
      action,
      resource: resource === null ? null : { type: resource.type, name: resource.name, mesh: resource.mesh ?? '' },
      token: token === null ? null : { id: token.id, expiresAtMs, claims: token.claims ?? {} },
      user: { name: user.name, groups: user.groups ?? [] },
    },
  };
}
