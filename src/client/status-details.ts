// The richer error model on the client side: the google.rpc.BadRequest field violations that the
// sidecar puts in the `grpc-status-details-bin` trailer of an INVALID_ARGUMENT.
import type * as grpc from '@grpc/grpc-js';
import { contract } from '../contract';
import type { Violation } from '../validators';

/** The field violations of a failed call's status; none when it carries no BadRequest. */
export function fieldViolationsOf(metadata: grpc.Metadata | undefined): Violation[] {
  const raw = metadata?.get('grpc-status-details-bin')[0];
  if (!(raw instanceof Buffer)) return [];
  const status = contract().type('google.rpc.Status').decode(raw) as unknown as {
    details: Array<{ type_url: string; value: Uint8Array }>;
  };
  const badRequest = contract().type('google.rpc.BadRequest');
  const out: Violation[] = [];
  for (const any of status.details) {
    if (!any.type_url.endsWith('/google.rpc.BadRequest')) continue;
    const decoded = badRequest.decode(any.value) as unknown as { field_violations: Violation[] };
    for (const v of decoded.field_violations) out.push({ field: v.field, description: v.description });
  }
  return out;
}
