// Domain errors of the AccessAudit store. They know nothing of gRPC: src/server/status.ts maps them
// (NOT_FOUND, ALREADY_EXISTS, ABORTED); StoreError stops start-up.

/** The named AccessAudit does not exist. */
export class NotFoundError extends Error {
  constructor(readonly resourceName: string) {
    super(`AccessAudit "${resourceName}" not found`);
  }
}

/** An AccessAudit with that name exists already. */
export class AlreadyExistsError extends Error {
  constructor(
    readonly resourceName: string,
    readonly currentVersion: number,
  ) {
    super(`AccessAudit "${resourceName}" already exists (version ${currentVersion}); update it instead`);
  }
}

/** Optimistic concurrency: the resource changed since the version the caller read. */
export class StaleVersionError extends Error {
  constructor(
    readonly resourceName: string,
    readonly currentVersion: number,
    readonly requestedVersion: number,
  ) {
    super(
      `AccessAudit "${resourceName}" is at version ${currentVersion}, not ${requestedVersion}: ` +
        'read it again and retry (version 0 changes it whatever its version)',
    );
  }
}

/** The store's file cannot be read, parsed or written; the message names the file. */
export class StoreError extends Error {}

/** The store file holds what this sidecar refuses to load: restarting will not help (exit 2). */
export class StoreCorruptError extends StoreError {}
