// Domain errors of the AccessAudit store. They know nothing of gRPC: their kind says which status they
// become (src/server/status.ts); StoreError stops start-up.
import { type ErrorKind, MeshauditError } from '../errors';
import { InvalidArgumentError } from '../validators';

/** The named AccessAudit does not exist. */
export class NotFoundError extends MeshauditError {
  readonly kind = 'not-found';

  constructor(readonly resourceName: string) {
    super(`AccessAudit "${resourceName}" not found`);
  }
}

/** An AccessAudit with that name exists already. */
export class AlreadyExistsError extends MeshauditError {
  readonly kind = 'already-exists';

  constructor(
    readonly resourceName: string,
    readonly currentVersion: number,
  ) {
    super(`AccessAudit "${resourceName}" already exists (version ${currentVersion}); update it instead`);
  }
}

/** Optimistic concurrency: the resource changed since the version the caller read. */
export class StaleVersionError extends MeshauditError {
  readonly kind = 'aborted';

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

/** The store's file cannot be read or written; the message names the file. Exit 1 when it stops start-up. */
export class StoreError extends MeshauditError {
  readonly kind = 'unavailable';
}

/** The store file holds what this sidecar refuses to load: restarting will not help (exit 2). */
export class StoreCorruptError extends StoreError {
  override readonly exitCode = 2;
}

/**
 * A change would make the store hold more resources than meshaudit.limits.accessAudits: FAILED_PRECONDITION
 * (deleting some first makes room; retrying as it is never helps), with the field violation; exit 2 at start-up.
 */
export class TooManyAccessAuditsError extends InvalidArgumentError {
  override readonly kind: ErrorKind = 'failed-precondition';

  constructor(max: number, wouldHold: number) {
    super([
      {
        field: 'name',
        description: `would make ${wouldHold} AccessAudits: meshaudit.limits.accessAudits allows ${max}; delete some first`,
      },
    ]);
  }
}
