// RuleService: operators manage the zone's AccessAudit resources. The store keeps them, the pipeline
// records the changes and holds the rules in force; gRPC appears only in handlers() at the bottom.
//
// Every change runs alone, in the order calls arrive, through the same steps:
//   1. prepare it against the store (validation, versions, what it creates/updates/deletes);
//   2. write its audit record when the rules before or after it cover it, and wait for the commit;
//   3. persist it, then put the recompiled rules in force for the very next event.
// The record comes before the change so that a change is never in force unaudited: when the record
// cannot be written, the change is refused with UNAVAILABLE and nothing changes. The reverse risk, a
// record for a change that then fails to persist (a full disk), is the lesser one: the caller gets an
// error, the log says why, and the trail shows an attempt rather than missing a change.
import type * as grpc from '@grpc/grpc-js';
import { compileRules, ACCESS_AUDIT_TYPE } from '../rules';
import type { AccessAudit, CompiledRules, TypeRegistry, ValidAccessAudit } from '../rules';
import type { AuditEvent, EventUser } from '../events/event';
import type { BatchEvaluator } from '../pipeline/evaluate-batch';
import type { SingleRecords } from '../pipeline/single-records';
import { UnavailableError } from '../errors';
import { formatWithin, IS_REQUIRED, InvalidArgumentError, under, type Violation } from '../validators';
import { namesChanged } from '../store/access-audit-store';
import type { PreparedChange, RuleStore, StoreDiff, StoredAccessAudit } from '../store/access-audit-store';
import { parseAccessAuditYaml, RulesFileError } from '../config/rules-files';
import type { AccessAuditYamlLimits, LoadedAudits } from '../config/rules-files';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import { unary } from './handlers';
import { userOf } from './identity';
import type { Authenticator } from './authn';
import type { ServingState } from './serving-state';
import type { Statuses } from './status';

/** The user of the records of changes that come from the --rules files (the spec names it). */
export const RULES_FILES_USER: Readonly<EventUser> = Object.freeze({
  name: 'meshaudit:rules-files',
  groups: ['meshaudit:system'],
});

/** Names the YAML of an apply in messages; it is also the request field that holds it. */
const YAML_FIELD = 'yaml';

export interface RuleServiceOptions {
  readonly store: RuleStore;
  /** Holds the rules in force: a change puts its recompiled rules there. */
  readonly evaluator: BatchEvaluator;
  /** Writes the records of changes, and answers Evaluate. */
  readonly singles: SingleRecords;
  readonly serving: ServingState;
  /** Resource types a rule may name: the registry plus meshaudit.extraResourceTypes. */
  readonly knownTypes: TypeRegistry;
  /** kmesh.access.audit.skipDefaultTypes, for compiling the rules. */
  readonly skipDefaultTypes: readonly string[];
  /** The YAML and AccessAudit limits an apply is read with (meshaudit.limits). */
  readonly limits: AccessAuditYamlLimits;
  /** Maps errors to statuses (bounded: meshaudit.limits.statusBytes). */
  readonly statuses: Statuses;
  /** Who may call what (meshaudit.auth). */
  readonly auth: Authenticator;
  readonly log: Logger;
  /** Changes by source, and the resources in force after each. */
  readonly metrics: Pick<Metrics, 'ruleChanges' | 'accessAudits'>;
}

export interface ApplyResult {
  created: string[];
  updated: string[];
  unchanged: string[];
  warnings: string[];
}

/** An AccessAudit on the wire (proto-loader, camelCase); unvalidated when it comes in. */
type AccessAuditMessage = AccessAudit & { version: number };

export class RuleServiceImpl {
  /** The tail of the chain of changes: each one starts when the previous one is done. */
  private last: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: RuleServiceOptions) {
    opts.metrics.accessAudits.set(opts.store.list().length);
  }

  list(): StoredAccessAudit[] {
    return this.opts.store.list();
  }

  get(name: string): StoredAccessAudit {
    return this.opts.store.get(name);
  }

  async create(audit: AccessAudit, operator: EventUser): Promise<StoredAccessAudit> {
    const change = await this.change(operator, () => this.opts.store.prepareCreate(audit));
    return change.resource!;
  }

  async update(audit: AccessAudit, version: number, operator: EventUser): Promise<StoredAccessAudit> {
    const change = await this.change(operator, () => this.opts.store.prepareUpdate(audit, version));
    return change.resource!;
  }

  async delete(name: string, version: number, operator: EventUser): Promise<void> {
    await this.change(operator, () => this.opts.store.prepareDelete(name, version));
  }

  /** Creates or updates every AccessAudit of `yaml`, all or nothing; with `dryRun`, only says what it would do. */
  async apply(yaml: string, dryRun: boolean, operator: EventUser): Promise<ApplyResult> {
    const loaded = parseApplyYaml(yaml, this.opts.knownTypes, this.opts.limits);
    const prepare = (): PreparedChange => this.opts.store.prepareApply(loaded.audits);
    const change = dryRun ? await this.serially(async () => prepare()) : await this.change(operator, prepare);
    return {
      created: namesChanged(change, 'CREATE'),
      updated: namesChanged(change, 'UPDATE'),
      unchanged: [...change.unchanged],
      warnings: loaded.warnings,
    };
  }

  /** Whether the rules in force would audit `event`, by which rules, and the exact record line. */
  evaluate(event: AuditEvent | null): ReturnType<SingleRecords['evaluate']> {
    if (event === null) throw new InvalidArgumentError([{ field: 'event', description: IS_REQUIRED }]);
    return this.opts.singles.evaluate(event);
  }

  /**
   * Seeds the store from the --rules files, at start-up and on SIGHUP. Each resource it creates,
   * updates or deletes is recorded like an API change, by RULES_FILES_USER: no change to what is
   * audited goes unrecorded, whatever its source.
   */
  seed(audits: readonly ValidAccessAudit[]): Promise<PreparedChange> {
    return this.change(RULES_FILES_USER, () => this.opts.store.prepareSeed(audits), 'rules_files');
  }

  /**
   * Reads the store again (another replica of the zone changed it, or the database answers again) and
   * puts what changed in force, without a record: the sidecar that made the change recorded it. Logs one
   * line when something changed.
   */
  refresh(why: string): Promise<StoreDiff | undefined> {
    return this.serially(async () => {
      const diff = await this.opts.store.refresh();
      if (diff !== undefined) this.adopted(diff, why);
      return diff;
    });
  }

  /** Puts in force what the store holds, after a read found it changed elsewhere. */
  private adopted(diff: StoreDiff, why: string): void {
    const audits = this.opts.store.list();
    this.opts.evaluator.setRules(compileRules(audits, this.opts.skipDefaultTypes));
    this.opts.metrics.accessAudits.set(audits.length);
    this.opts.log.info(
      `AccessAudits changed in the zone's store (${why}): in force now, recorded by the replica that changed them`,
      {
        ...diff,
        store: this.opts.store.location,
      },
    );
  }

  /** Prepares, records, persists and puts in force one change, alone. */
  private change(
    operator: EventUser,
    prepare: () => PreparedChange,
    source: 'api' | 'rules_files' = 'api',
  ): Promise<PreparedChange> {
    return this.serially(async () => {
      // The writer is closing: the change's record could not be written.
      if (this.opts.serving.draining) {
        throw new UnavailableError('the sidecar is shutting down; retry against the restarted sidecar');
      }
      let before = this.opts.evaluator.rules;
      let recorded = 0;
      const change = await this.opts.store
        .change(operator.name, async (refreshed) => {
          // The store moved on elsewhere (another replica): that is in force before this change is judged.
          if (refreshed !== undefined) {
            this.adopted(refreshed, 'read before a change');
            before = this.opts.evaluator.rules;
          }
          const change = prepare();
          if (change.changes.length === 0) return change;
          const after = compileRules(change.after, this.opts.skipDefaultTypes);
          // The new rules take effect in the same tick as the change's record enters the writer's queue:
          // events before the record in the audit file were judged by the old rules, events after it by
          // the new ones. If the change fails, the old rules come back.
          this.opts.evaluator.setRules(after);
          recorded = await this.record(change, operator, before, after);
          return change;
        })
        .catch((err) => {
          this.opts.evaluator.setRules(before);
          throw err;
        });
      if (change.changes.length === 0) return change;
      this.opts.metrics.ruleChanges.labels(source).inc(change.changes.length);
      this.opts.metrics.accessAudits.set(change.after.length);
      this.opts.log.info('AccessAudit changed', { changes: change.changes, user: operator.name, recorded });
      return change;
    });
  }

  private async record(
    change: PreparedChange,
    operator: EventUser,
    before: CompiledRules,
    after: CompiledRules,
  ): Promise<number> {
    const events: AuditEvent[] = change.changes.map(({ action, name }) => ({
      action,
      // AccessAudit is global-scoped: no mesh, so the record leaves it out.
      resource: { type: ACCESS_AUDIT_TYPE, name, mesh: '' },
      user: operator,
    }));
    try {
      return await this.opts.singles.recordChanges(events, before, after);
    } catch (err) {
      this.opts.log.error('the audit record of an AccessAudit change could not be written; the change is refused', {
        err,
        changes: change.changes,
      });
      throw new UnavailableError(
        'the audit record of this change could not be written, so nothing was changed; retry later',
      );
    }
  }

  private serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.last.then(task, task);
    this.last = run.catch(() => {});
    return run;
  }

  handlers(): grpc.UntypedServiceImplementation {
    const ctx = this.opts;
    return {
      ListAccessAudits: unary('ListAccessAudits', ctx, 'read', () => ({ accessAudits: this.list().map(toMessage) })),
      GetAccessAudit: unary('GetAccessAudit', ctx, 'read', (req: { name: string }) => toMessage(this.get(req.name))),
      CreateAccessAudit: unary(
        'CreateAccessAudit',
        ctx,
        'manageRules',
        async (req: { accessAudit: AccessAuditMessage | null }, caller) => {
          const audit = required(req.accessAudit);
          return toMessage(await underField('accessAudit', () => this.create(audit, userOf(caller))));
        },
      ),
      UpdateAccessAudit: unary(
        'UpdateAccessAudit',
        ctx,
        'manageRules',
        async (req: { accessAudit: AccessAuditMessage | null }, caller) => {
          const audit = required(req.accessAudit);
          return toMessage(await underField('accessAudit', () => this.update(audit, audit.version, userOf(caller))));
        },
      ),
      DeleteAccessAudit: unary(
        'DeleteAccessAudit',
        ctx,
        'manageRules',
        async (req: { name: string; version: number }, caller) => {
          await this.delete(req.name, req.version, userOf(caller));
          return {};
        },
      ),
      ApplyAccessAudits: unary(
        'ApplyAccessAudits',
        ctx,
        'manageRules',
        (req: { yaml: string; dryRun: boolean }, caller) => this.apply(req.yaml, req.dryRun, userOf(caller)),
      ),
      Evaluate: unary('Evaluate', ctx, 'read', (req: { event: AuditEvent | null }) => {
        const { matches, record } = this.evaluate(req.event);
        return {
          audited: matches.length > 0,
          matches: matches.map((m) => ({ accessAudit: m.audit, ruleIndex: m.ruleIndex })),
          record,
        };
      }),
    };
  }
}

/**
 * Parses the YAML of an apply. Every problem becomes a violation of the `yaml` field, located by its
 * line within it: `line 5: rules[1].access[0]: unknown action "CREAT", did you mean "CREATE"?`.
 */
function parseApplyYaml(
  text: string,
  knownTypes: TypeRegistry,
  limits: AccessAuditYamlLimits,
): { audits: ValidAccessAudit[]; warnings: string[] } {
  const inYaml = (description: string): Violation => ({ field: YAML_FIELD, description });
  let loaded: LoadedAudits;
  try {
    loaded = parseAccessAuditYaml(text, YAML_FIELD, knownTypes, limits);
  } catch (e) {
    if (e instanceof RulesFileError) throw new InvalidArgumentError(e.violations.map((v) => inYaml(formatWithin(v))));
    throw e;
  }
  if (loaded.audits.length === 0) throw new InvalidArgumentError([inYaml('no AccessAudit document: nothing to apply')]);
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const { name } of loaded.audits) (seen.has(name) ? twice : seen).add(name);
  if (twice.size > 0) {
    throw new InvalidArgumentError(
      [...twice].map((name) =>
        inYaml(`AccessAudit "${name}" is defined more than once: an apply defines each name once`),
      ),
    );
  }
  return { audits: loaded.audits, warnings: loaded.warnings.map(formatWithin) };
}

/** Re-roots the field paths of an InvalidArgumentError under the request field that held the resource. */
async function underField<T>(prefix: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    // A store limit (FAILED_PRECONDITION) keeps its code, and its field as it is.
    if (!(e instanceof InvalidArgumentError) || e.kind !== 'invalid-argument') throw e;
    throw new InvalidArgumentError(e.violations.map((v) => ({ ...v, field: under(prefix, v.field) })));
  }
}

function required(audit: AccessAuditMessage | null): AccessAuditMessage {
  if (audit === null) throw new InvalidArgumentError([{ field: 'accessAudit', description: IS_REQUIRED }]);
  return audit;
}

function toMessage({ name, rules, version }: StoredAccessAudit): AccessAuditMessage {
  return { name, rules, version };
}
