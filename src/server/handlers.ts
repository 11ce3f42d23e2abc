// The one wrapper of every unary gRPC handler (nice-grpc's shape): a handler is a function from the
// request (and its authorized caller) to the reply or a promise of it, and whatever it throws or rejects
// with is mapped to a status by Statuses, which logs (with its stack) anything unexpected. The caller is
// authorized first (src/server/authn.ts): a refused call never reaches the handler.
import type * as grpc from '@grpc/grpc-js';
import type { Permission, Principal } from '../auth/principal';
import type { Authenticator } from './authn';
import { UnreadableRequest } from './requests';
import type { Statuses } from './status';

/** What every handler is wrapped with: who may call, and how errors become statuses. */
export interface HandlerContext {
  readonly statuses: Statuses;
  readonly auth: Authenticator;
}

export type UnaryHandler<Req, Res> = (
  request: Req,
  caller: Principal,
  call: grpc.ServerUnaryCall<Req, Res>,
) => Res | Promise<Res>;

export function unary<Req, Res>(
  rpc: string,
  ctx: HandlerContext,
  permission: Permission,
  handle: UnaryHandler<Req, Res>,
): grpc.handleUnaryCall<Req, Res> {
  const fail = (callback: grpc.sendUnaryData<Res>, err: unknown): void => callback(ctx.statuses.of(err, { rpc }));
  return (call, callback) => {
    let reply: Res | Promise<Res>;
    try {
      // Authorized before the request is looked at: a stranger learns nothing from its errors.
      const caller = ctx.auth.authorize(call, permission, rpc);
      if ((call.request as unknown) instanceof UnreadableRequest) throw (call.request as UnreadableRequest).error;
      reply = handle(call.request, caller, call);
    } catch (err) {
      fail(callback, err);
      return;
    }
    if (!(reply instanceof Promise)) {
      callback(null, reply);
      return;
    }
    reply.then(
      (value) => callback(null, value),
      (err: unknown) => fail(callback, err),
    );
  };
}
