// The client's public surface (the package's "./client" export): what a control plane embeds.
export {
  AuditClient,
  type AuditClientOptions,
  DEFAULT_BATCH_DELAY_MS,
  DEFAULT_BATCH_SIZE,
  DEFAULT_MAX_QUEUED,
  DEFAULT_WINDOW,
  type Identifier,
  isPermanent,
  RejectedEventError,
  type SendResult,
} from './audit-client';
export type { AuditEvent } from '../events/event';
export type { BatchAck, Rejection } from '../contract';
export { fieldViolationsOf } from './status-details';
