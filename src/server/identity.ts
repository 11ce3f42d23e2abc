// Who is calling: the one place where an operator's identity is resolved from a gRPC call. Changes made
// through RuleService are audited with this identity as their `user`.
import type * as grpc from '@grpc/grpc-js';
import type { EventUser } from '../events/event';

/**
 * The identity of every caller until callers are authenticated (a later issue: mTLS or tokens will
 * resolve the real operator here). Documented in the README: records of changes made through the API
 * carry this user until then.
 */
const DEFAULT_OPERATOR: Readonly<{ name: string; groups: readonly string[] }> = Object.freeze({
  name: 'meshaudit:operator',
  groups: Object.freeze(['meshaudit:operators']),
});

/** The operator behind `call`. */
export function operatorOf(_call: grpc.ServerUnaryCall<unknown, unknown>): EventUser {
  return { name: DEFAULT_OPERATOR.name, groups: [...DEFAULT_OPERATOR.groups] };
}
