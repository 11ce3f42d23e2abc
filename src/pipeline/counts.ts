// What the sidecar has done with the events it was given, since it started: in the stop line today,
// and the source of the metrics to come. One object, shared by streams and single records.

export interface AuditCounts {
  /** Events written to the audit files (and rule-change records). */
  recorded: number;
  /** Valid events that no rule covers. */
  skipped: number;
  /** Events refused as invalid: never written, never resent. */
  rejected: number;
  /** Stream events accepted earlier and sent again after a reconnect: not written twice. */
  duplicates: number;
}

export function newAuditCounts(): AuditCounts {
  return { recorded: 0, skipped: 0, rejected: 0, duplicates: 0 };
}
