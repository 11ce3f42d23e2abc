// The user a record of a change names: the authenticated caller (src/server/authn.ts), as the spec's
// `user {name, groups}`.
import type { Principal } from '../auth/principal';
import type { EventUser } from '../events/event';

/** The record's user for a change made by `caller`. */
export function userOf(caller: Principal): EventUser {
  return { name: caller.name, groups: [...caller.groups] };
}
