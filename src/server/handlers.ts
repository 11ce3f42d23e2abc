// The one wrapper of every unary gRPC handler (nice-grpc's shape): a handler is a function from the
// request to the reply or a promise of it, and whatever it throws or rejects with is mapped to a status
// by Statuses, which logs (with its stack) anything unexpected.
import type * as grpc from '@grpc/grpc-js';
import { UnreadableRequest } from './requests';
import type { Statuses } from './status';

export type UnaryHandler<Req, Res> = (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>;

export function unary<Req, Res>(
  rpc: string,
  statuses: Statuses,
  handle: UnaryHandler<Req, Res>,
): grpc.handleUnaryCall<Req, Res> {
  const fail = (callback: grpc.sendUnaryData<Res>, err: unknown): void => callback(statuses.of(err, { rpc }));
  return (call, callback) => {
    let reply: Res | Promise<Res>;
    try {
      if ((call.request as unknown) instanceof UnreadableRequest) throw (call.request as UnreadableRequest).error;
      reply = handle(call.request, call);
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
