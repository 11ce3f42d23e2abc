// What a control plane embeds to stream its events in: identify, resume from the sidecar's acked
// sequence, keep a window of batches in flight, and on any failure reconnect and resend from the new
// resume point. The sidecar makes resending safe (already-acked sequences are not written twice).
import * as grpc from '@grpc/grpc-js';
import type { BatchAck } from '../contract';
import type { AuditEvent } from '../events/event';
import { meshauditClients } from './services';

export interface Identifier {
  zone: string;
  instance: string;
}

export interface SendOptions {
  /** Events per batch (default 100). */
  batchSize?: number;
  /** Unacknowledged batches in flight (default 8). */
  window?: number;
  /** Give up after this long without the whole log acknowledged (default 60 s). */
  deadlineMs?: number;
  /** Called for every batch acknowledgement. */
  onAck?: (ack: BatchAck) => void;
  /** Called when a stream fails and is reopened. */
  onReconnect?: (err: Error) => void;
}

type AuditClient = grpc.Client & { StreamEvents(): grpc.ClientDuplexStream<unknown, BatchAck> };

function auditClient(address: string): AuditClient {
  return new (meshauditClients().AuditService)(address, grpc.credentials.createInsecure()) as unknown as AuditClient;
}

/**
 * Streams one stream session: resolves with the last acked sequence when `events` (event i has
 * sequence i + 1) are all acknowledged; rejects on the first stream error.
 */
function session(
  client: AuditClient,
  id: Identifier,
  events: readonly AuditEvent[],
  opts: SendOptions,
): Promise<number> {
  const batchSize = opts.batchSize ?? 100;
  const window = opts.window ?? 8;
  return new Promise((resolve, reject) => {
    const call = client.StreamEvents() as grpc.ClientDuplexStream<unknown, BatchAck>;
    let next = -1; // next sequence to send; -1 until the resume point arrives
    let inflight = 0;
    let settled = false;
    const finish = (err: Error | null, acked = 0): void => {
      if (settled) return;
      settled = true;
      if (err) {
        call.cancel();
        reject(err);
      } else {
        call.end();
        resolve(acked);
      }
    };
    const pump = (): void => {
      while (inflight < window && next <= events.length) {
        const batch = events.slice(next - 1, next - 1 + batchSize);
        call.write({ firstSeq: next, events: batch });
        next += batch.length;
        inflight++;
      }
    };
    call.on('data', (ack: BatchAck) => {
      if (next === -1) {
        next = ack.ackedSeq + 1;
        if (ack.ackedSeq >= events.length) return finish(null, ack.ackedSeq);
        return pump();
      }
      inflight--;
      opts.onAck?.(ack);
      if (ack.ackedSeq >= events.length) return finish(null, ack.ackedSeq);
      pump();
    });
    call.on('error', (err: Error) => finish(err));
    call.on('end', () => finish(new Error('stream ended before every event was acknowledged')));
    call.write({ identifier: id, firstSeq: 0, events: [] });
  });
}

/**
 * Sends the whole log of `events` (sequence = index + 1), surviving sidecar restarts: on a failure it
 * waits a little, reconnects, and resumes from the acked sequence the sidecar reports.
 */
export async function sendAll(
  address: string,
  id: Identifier,
  events: readonly AuditEvent[],
  opts: SendOptions = {},
): Promise<void> {
  const deadline = Date.now() + (opts.deadlineMs ?? 60_000);
  let delayMs = 20;
  for (;;) {
    // A fresh channel per attempt, so that a restarted sidecar is reached at once, without grpc-js's
    // reconnect backoff.
    const client = auditClient(address);
    try {
      await session(client, id, events, opts);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      opts.onReconnect?.(err as Error);
      await new Promise((r) => setTimeout(r, delayMs));
      delayMs = Math.min(delayMs * 2, 500);
    } finally {
      client.close();
    }
  }
}
