// Checks one event from the control plane. An invalid event gets the field and what is wrong with it; it is
// not written and the CP must not retry it (the same bytes would fail again).
import { ACTIONS, isAction, isTokenAction } from '../rules/actions';
import { entry, IS_REQUIRED, index, quote, tooLong, tooMany, unknown, type Violation } from '../validators';
import type { AuditEvent, EventClaims } from './event';
import { parseRfc3339 } from './rfc3339';
import type { ValidEvent } from './valid-event';

/** What one event may carry (meshaudit.limits; the defaults and why: src/config/defaults.ts). */
export interface EventLimits {
  /** Characters of one string field (fieldChars). */
  readonly fieldChars: number;
  /** Entries in one list or map field: user groups, token tags, scope (listEntries). */
  readonly listEntries: number;
}

/** What is wrong with an event: the field's path within the event (`token.claims.tags`) and the problem. */
export type EventCheck = { ok: true; event: ValidEvent } | ({ ok: false } & Violation);

function problem(field: string, description: string): Violation {
  return { field, description };
}

/** A violation when `value` is over limits.fieldChars. */
function length(limits: EventLimits, field: string, value: string): Violation | undefined {
  return value.length > limits.fieldChars ? problem(field, tooLong(limits.fieldChars, value.length)) : undefined;
}

function checkList(limits: EventLimits, field: string, list: string[] | undefined): Violation | undefined {
  if (list === undefined) return undefined;
  if (list.length > limits.listEntries) return problem(field, tooMany(limits.listEntries, list.length));
  for (let i = 0; i < list.length; i++) {
    const long = length(limits, index(field, i), list[i]);
    if (long) return long;
  }
  return undefined;
}

function checkClaims(limits: EventLimits, claims: EventClaims): Violation | undefined {
  for (const key of ['mesh', 'name', 'zone'] as const) {
    const long = length(limits, `token.claims.${key}`, claims[key] ?? '');
    if (long) return long;
  }
  const tags = claims.tags;
  if (tags !== undefined) {
    const keys = Object.keys(tags);
    if (keys.length > limits.listEntries) {
      return problem('token.claims.tags', tooMany(limits.listEntries, keys.length));
    }
    for (const k of keys) {
      const at = entry('token.claims.tags', k);
      const long = length(limits, at, k) ?? length(limits, at, tags[k]);
      if (long) return long;
    }
  }
  return (
    checkList(limits, 'token.claims.groups', claims.groups) ?? checkList(limits, 'token.claims.scope', claims.scope)
  );
}

/** Validates `raw` within `limits`; `receivedMs` stands in for a missing date. Never throws. */
export function validateEvent(raw: AuditEvent, receivedMs: number, limits: EventLimits): EventCheck {
  const fail = (field: string, description: string): EventCheck => ({ ok: false, field, description });
  const refuse = (v: Violation): EventCheck => ({ ok: false, ...v });
  const action = raw.action ?? '';
  if (action === '') return fail('action', IS_REQUIRED);
  if (!isAction(action)) return fail('action', unknown('action', action, ACTIONS));
  const resource = raw.resource ?? null;
  const token = raw.token ?? null;
  if (resource !== null && token !== null) return fail('token', 'not allowed with resource: set exactly one of them');
  if (isTokenAction(action)) {
    if (token === null) return fail('token', `${IS_REQUIRED} for ${action}`);
  } else if (resource === null) {
    return fail('resource', `${IS_REQUIRED} for ${action}`);
  } else if (token !== null) {
    return fail('token', `not allowed for ${action}`);
  }
  if (resource !== null) {
    if (isTokenAction(action)) return fail('resource', `not allowed for ${action}; set token`);
    if (!resource.type) return fail('resource.type', IS_REQUIRED);
    if (!resource.name) return fail('resource.name', IS_REQUIRED);
    for (const key of ['type', 'name', 'mesh'] as const) {
      const long = length(limits, `resource.${key}`, resource[key] ?? '');
      if (long) return refuse(long);
    }
  }
  let expiresAtMs: number | undefined;
  if (token !== null) {
    if (!token.id) return fail('token.id', IS_REQUIRED);
    const long = length(limits, 'token.id', token.id);
    if (long) return refuse(long);
    if (token.expiresAt) {
      expiresAtMs = parseRfc3339(token.expiresAt);
      if (Number.isNaN(expiresAtMs)) return fail('token.expiresAt', `not an RFC 3339 time: ${quote(token.expiresAt)}`);
    }
    const claimsProblem = token.claims ? checkClaims(limits, token.claims) : undefined;
    if (claimsProblem) return refuse(claimsProblem);
  }
  const user = raw.user ?? null;
  if (user === null || !user.name) {
    return fail('user.name', `${IS_REQUIRED} (actions the CP does itself carry its own identity)`);
  }
  const problem = length(limits, 'user.name', user.name) ?? checkList(limits, 'user.groups', user.groups);
  if (problem) return refuse(problem);
  let dateMs = receivedMs;
  if (raw.date) {
    dateMs = parseRfc3339(raw.date);
    if (Number.isNaN(dateMs)) return fail('date', `not an RFC 3339 time: ${quote(raw.date)}`);
  }
  const longId = raw.id === undefined ? undefined : length(limits, 'id', raw.id);
  if (longId) return refuse(longId);
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
