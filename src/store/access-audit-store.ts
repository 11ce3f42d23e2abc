// The zone's AccessAudit resources, with versions, persisted in <dataDir>/access-audits.json.
//
// Where the rules in force come from, and which wins:
// - The --rules files seed the store at start-up and on SIGHUP: each resource they define is created,
//   or updated to what the file says (the files win for the names they define, even over a change
//   made through the API since). A resource that was last written by the files and that they no
//   longer define is deleted, so that removing it from the file and reloading removes it.
// - Resources created or last changed through the API (RuleService), under names the files do not
//   define, stay across restarts and reloads.
// - Every change is an audit action, whatever its source (src/server/rule-service.ts): through the API
//   by its operator, from the files by the user `meshaudit:rules-files`.
//
// Every change replaces the file durably (src/store/durable-file.ts): a crash at any point leaves either
// the previous state or the new one, never a torn file. Changes are rare and small, so they are written
// synchronously, whole, and always fsynced whatever meshaudit.fsync says.
//
// A change is made in two steps, prepare() then commit(): in between, the caller writes the change's
// audit record, so that no change is ever in force without its record. Nothing here knows of gRPC.
import * as nodeFs from 'node:fs';
import * as path from 'node:path';
import { validateAccessAudit } from '../rules';
import type { AccessAudit, TypeRegistry, ValidAccessAudit } from '../rules';
import { formatViolation, IS_REQUIRED, InvalidArgumentError, index, type Violation, Violations } from '../validators';
import { DEFAULT_FILE_MODES, type FileModes } from '../backends/file-modes';
import { type DurableFs, ReplaceError, replaceFile } from './durable-file';
import {
  AlreadyExistsError,
  NotFoundError,
  StaleVersionError,
  StoreCorruptError,
  StoreError,
  TooManyAccessAuditsError,
} from './errors';

export const ACCESS_AUDITS_FILE = 'access-audits.json';
/** Version of the file's layout, so that a later layout can migrate this one instead of guessing. */
const FILE_FORMAT = 1;

/** Who wrote a resource last: the API, or the --rules files (which remove what they stop defining). */
export type Origin = 'api' | 'file';

export interface StoredAccessAudit extends AccessAudit {
  /** 1 on creation, one more on every change. */
  readonly version: number;
  readonly origin: Origin;
}

export type ChangeAction = 'CREATE' | 'UPDATE' | 'DELETE';

export interface ResourceChange {
  readonly action: ChangeAction;
  readonly name: string;
}

/** A change checked against the current state, not yet in force. */
export interface PreparedChange {
  /** What it does to each resource it touches, in the order asked. */
  readonly changes: readonly ResourceChange[];
  /** Resources it was asked to write that already hold the same rules (not written, version kept). */
  readonly unchanged: readonly string[];
  /** Every resource once committed, sorted by name. */
  readonly after: readonly StoredAccessAudit[];
  /** For a single create or update: the resource as stored once committed. */
  readonly resource?: StoredAccessAudit;
  /** The state it was prepared against: commit refuses it once the store has moved on. */
  readonly baseGeneration: number;
}

/** The file operations the store uses: injected so tests can crash it half-way through a write. */
export type StoreFs = DurableFs & Pick<typeof nodeFs, 'readFileSync'>;

export interface StoreOptions {
  /** Resource types a rule may name: the registry plus meshaudit.extraResourceTypes. */
  readonly knownTypes: TypeRegistry;
  /** Default: node:fs. */
  readonly fs?: StoreFs;
  /**
   * Told when a change is in effect on disk (renamed into place) but the folder could not be fsynced:
   * the change stands, only its survival of a power loss is in doubt. Default: throws, like any failure.
   */
  readonly onSyncError?: (err: Error) => void;
  /** Most resources the store holds (meshaudit.limits.accessAudits); unbounded when absent. */
  readonly maxAccessAudits?: number;
  /** Most rules of a resource given through the API (meshaudit.limits.rulesPerAccessAudit); unbounded when absent. */
  readonly maxRules?: number;
  /** The file's mode (meshaudit.files); DEFAULT_FILE_MODES by default. */
  readonly modes?: FileModes;
}

/**
 * A file store used as the copy of a store kept elsewhere (the PostgreSQL store's cache): its own file
 * name, and what a write that fails does. Apart from StoreOptions, which the sidecar shares with its
 * limits as getters: an object is passed on whole, never spread.
 */
export interface CopyOptions {
  /** The file's name in the folder (ACCESS_AUDITS_FILE for the file store). */
  readonly fileName: string;
  /**
   * Told when the file cannot be written at all, and the change is made in memory all the same: memory
   * follows the store kept elsewhere whether or not the copy can be written. Absent: throws.
   */
  readonly onWriteError?: (err: StoreError) => void;
}

/** What replacing the whole store changed, by resource name. */
export interface StoreDiff {
  readonly created: readonly string[];
  readonly updated: readonly string[];
  readonly deleted: readonly string[];
}

/**
 * Where the rule service keeps the zone's AccessAudits: this file store, or PostgreSQL
 * (src/store/postgres-store.ts). Changes are planned in memory (prepare*), then made by change().
 */
export interface RuleStore {
  readonly type: 'file' | 'postgres';
  /** Names the store in logs and messages. */
  readonly location: string;
  /** Why the store cannot take changes now (the database is unreachable); undefined: it can. */
  readonly degraded: string | undefined;
  list(): StoredAccessAudit[];
  get(name: string): StoredAccessAudit;
  prepareCreate(input: unknown): PreparedChange;
  prepareUpdate(input: unknown, version: number): PreparedChange;
  prepareDelete(name: string, version: number): PreparedChange;
  prepareApply(audits: readonly ValidAccessAudit[]): PreparedChange;
  prepareSeed(audits: readonly ValidAccessAudit[]): PreparedChange;
  /**
   * Makes one change, alone: `work` prepares it (against the state as the store holds it now: for
   * PostgreSQL, the zone is locked and read again first, and `refreshed` says what that changed) and
   * records it; the change is committed once `work` resolves. Callers serialise their changes.
   * `changedBy` is the user the store writes beside the change.
   */
  change(
    changedBy: string,
    work: (refreshed: StoreDiff | undefined) => Promise<PreparedChange>,
  ): Promise<PreparedChange>;
  /** Reads the whole store again (a change made elsewhere): what it changed in memory, undefined: nothing. */
  refresh(): Promise<StoreDiff | undefined>;
  /** Writes what is in memory again (the data directory was removed while the sidecar ran). */
  persistAgain(): void;
  close(): Promise<void>;
}

interface Upsert {
  readonly audit: AccessAudit;
  readonly origin: Origin;
}

export class AccessAuditStore implements RuleStore {
  readonly type = 'file';
  readonly degraded = undefined;
  readonly file: string;
  private byName = new Map<string, StoredAccessAudit>();
  /** Bumped on every commit. */
  private generation = 0;
  private readonly fs: StoreFs;

  constructor(
    dir: string,
    private readonly opts: StoreOptions,
    private readonly copy?: CopyOptions,
  ) {
    this.file = path.join(dir, copy?.fileName ?? ACCESS_AUDITS_FILE);
    this.fs = opts.fs ?? nodeFs;
  }

  /**
   * Reads the file (none yet: no resources). A file that is not what this store writes throws
   * StoreError. Returns the warnings of the stored resources (paths as `accessAudits[0].rules[0].mesh`):
   * a rule stored before a check became an error (`mesh` on global-scoped types) loads with one.
   */
  load(): Violation[] {
    let text: string;
    try {
      // Read-only: --check-config loads the store too, and must write nothing.
      text = this.fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new StoreError(`can't read the AccessAudit store ${this.file}: ${(e as Error).message}`);
    }
    const warnings = new Violations();
    this.byName = this.decode(text, warnings);
    return [...warnings.list];
  }

  get location(): string {
    return this.file;
  }

  /** The file is this sidecar's alone: what is in memory is what it holds. */
  async change(
    _changedBy: string,
    work: (refreshed: StoreDiff | undefined) => Promise<PreparedChange>,
  ): Promise<PreparedChange> {
    const change = await work(undefined);
    this.commit(change);
    return change;
  }

  async refresh(): Promise<StoreDiff | undefined> {
    return undefined;
  }

  async close(): Promise<void> {}

  /**
   * Replaces every resource with `entries`, as another store holds them (checked as a load checks the
   * file: StoreCorruptError names what this sidecar refuses), and writes the file. Returns what changed
   * (undefined: nothing, and nothing is written), and the warnings of the resources. Without `persist`,
   * nothing is written (--check-config).
   */
  replaceAll(
    entries: readonly unknown[],
    source: string,
    persist = true,
  ): { diff: StoreDiff | undefined; warnings: Violation[] } {
    const warnings = new Violations();
    const next = this.validateEntries(entries, warnings, source);
    const created: string[] = [];
    const updated: string[] = [];
    for (const [name, audit] of next) {
      const old = this.byName.get(name);
      if (old === undefined) created.push(name);
      else if (old.version !== audit.version || old.origin !== audit.origin || !sameRules(old, audit))
        updated.push(name);
    }
    const deleted = [...this.byName.keys()].filter((name) => !next.has(name));
    if (created.length + updated.length + deleted.length === 0)
      return { diff: undefined, warnings: [...warnings.list] };
    // Written first, as commit does: a write that throws changes nothing.
    if (persist) this.writeAtomically(encode(sortedByName(next.values())));
    this.byName = next;
    this.generation++;
    return { diff: { created, updated, deleted }, warnings: [...warnings.list] };
  }

  /** Every resource, sorted by name. */
  list(): StoredAccessAudit[] {
    return sortedByName(this.byName.values());
  }

  get(name: string): StoredAccessAudit {
    requireName(name);
    const found = this.byName.get(name);
    if (found === undefined) throw new NotFoundError(name);
    return found;
  }

  /** Creates a resource given through the API (validated here). */
  prepareCreate(input: unknown): PreparedChange {
    const valid = this.validate(input);
    const existing = this.byName.get(valid.name);
    if (existing !== undefined) throw new AlreadyExistsError(valid.name, existing.version);
    return this.plan([{ audit: valid, origin: 'api' }], []);
  }

  /**
   * Replaces the rules of a resource given through the API (validated here); `version` 0 whatever its
   * version, otherwise only at that version.
   */
  prepareUpdate(input: unknown, version: number): PreparedChange {
    const valid = this.validate(input);
    this.checkVersion(valid.name, version);
    return this.plan([{ audit: valid, origin: 'api' }], []);
  }

  /** Deletes a resource; `version` as for updates. */
  prepareDelete(name: string, version: number): PreparedChange {
    requireName(name);
    this.checkVersion(name, version);
    return this.plan([], [name]);
  }

  /**
   * Creates or updates each resource of an apply, all or nothing. They come validated (from YAML, with
   * their lines); the names must differ from each other.
   */
  prepareApply(audits: readonly ValidAccessAudit[]): PreparedChange {
    return this.plan(
      audits.map((audit) => ({ audit, origin: 'api' as const })),
      [],
    );
  }

  /**
   * The --rules files' resources (already validated with their file and line): create or update each,
   * and delete those the files wrote earlier and no longer define (see the top of this file).
   */
  prepareSeed(audits: readonly ValidAccessAudit[]): PreparedChange {
    const defined = new Set(audits.map((a) => a.name));
    const dropped = this.list()
      .filter((a) => a.origin === 'file' && !defined.has(a.name))
      .map((a) => a.name);
    return this.plan(
      audits.map((audit) => ({ audit, origin: 'file' as const })),
      dropped,
    );
  }

  /** Puts a prepared change in force: written to disk first, then in memory. Throws StoreError when it cannot be written. */
  commit(change: PreparedChange): void {
    if (change.baseGeneration !== this.generation) {
      // Callers serialise prepare and commit; reaching this is a bug, and committing would lose a change.
      throw new Error('the AccessAudit store changed between prepare and commit');
    }
    if (change.changes.length === 0) return;
    this.writeAtomically(encode(change.after));
    this.byName = new Map(change.after.map((a) => [a.name, a]));
    this.generation++;
  }

  private checkVersion(name: string, version: number): void {
    const existing = this.byName.get(name);
    if (existing === undefined) throw new NotFoundError(name);
    if (version !== 0 && version !== existing.version) throw new StaleVersionError(name, existing.version, version);
  }

  /** The state after upserting and deleting; resources whose rules do not change keep their version. */
  private plan(upserts: readonly Upsert[], deletes: readonly string[]): PreparedChange {
    const next = new Map(this.byName);
    const changes: ResourceChange[] = [];
    const unchanged: string[] = [];
    let resource: StoredAccessAudit | undefined;
    const seen = new Set<string>();
    for (const { audit, origin } of upserts) {
      // Callers refuse duplicate names with a message in their own terms (YAML documents, files).
      if (seen.has(audit.name)) throw new Error(`AccessAudit "${audit.name}" is given twice in one change`);
      seen.add(audit.name);
      const existing = next.get(audit.name);
      if (existing !== undefined && sameRules(existing, audit)) {
        unchanged.push(audit.name);
        resource = existing;
        continue;
      }
      resource = { name: audit.name, rules: audit.rules, version: (existing?.version ?? 0) + 1, origin };
      next.set(audit.name, resource);
      changes.push({ action: existing === undefined ? 'CREATE' : 'UPDATE', name: audit.name });
    }
    for (const name of deletes) {
      next.delete(name);
      changes.push({ action: 'DELETE', name });
    }
    // Only growth is refused: with a lowered limit, the resources already stored stay and can be changed.
    const max = this.opts.maxAccessAudits ?? Number.POSITIVE_INFINITY;
    if (next.size > max && next.size > this.byName.size) throw new TooManyAccessAuditsError(max, next.size);
    return {
      changes,
      unchanged,
      after: sortedByName(next.values()),
      resource: upserts.length === 1 ? resource : undefined,
      baseGeneration: this.generation,
    };
  }

  /** The normalised resource, or InvalidArgumentError with every violation (paths as `rules[1].access[0]`). */
  private validate(input: unknown): AccessAudit {
    const res = validateAccessAudit(input as AccessAudit, {
      knownTypes: this.opts.knownTypes,
      ...(this.opts.maxRules === undefined ? {} : { maxRules: this.opts.maxRules }),
    });
    if (res.audit === undefined) throw new InvalidArgumentError(res.violations);
    return res.audit;
  }

  private decode(text: string, warnings: Violations): Map<string, StoredAccessAudit> {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw this.corrupt(`not JSON (${(e as Error).message})`);
    }
    const root = doc as { format?: unknown; accessAudits?: unknown };
    if (typeof doc !== 'object' || doc === null || root.format !== FILE_FORMAT || !Array.isArray(root.accessAudits)) {
      throw this.corrupt(`not an AccessAudit store of format ${FILE_FORMAT}`);
    }
    return this.validateEntries(root.accessAudits, warnings, `the AccessAudit store ${this.file}`);
  }

  /** Stored resources, validated again: the configuration (extraResourceTypes) may have changed since they were written. */
  private validateEntries(
    entries: readonly unknown[],
    warnings: Violations,
    source: string,
  ): Map<string, StoredAccessAudit> {
    const byName = new Map<string, StoredAccessAudit>();
    const problems = new Violations();
    entries.forEach((entry: unknown, i) => {
      const at = index('accessAudits', i);
      const { version, origin } = (entry ?? {}) as { version?: unknown; origin?: unknown };
      if (!Number.isSafeInteger(version) || (version as number) < 1)
        problems.add(`${at}.version`, 'must be a positive integer');
      if (origin !== 'api' && origin !== 'file') problems.add(`${at}.origin`, 'must be "api" or "file"');
      const res = validateAccessAudit(entry as AccessAudit, {
        knownTypes: this.opts.knownTypes,
        meshOnGlobalTypes: 'warning',
      });
      problems.addAll(res.violations, at);
      warnings.addAll(res.warnings, at);
      if (res.audit === undefined || !problems.isEmpty) return;
      if (byName.has(res.audit.name)) problems.add(`${at}.name`, `"${res.audit.name}" is stored twice`);
      byName.set(res.audit.name, { ...res.audit, version: version as number, origin: origin as Origin });
    });
    if (!problems.isEmpty) {
      throw new StoreCorruptError(
        `${source} holds resources this sidecar refuses ` +
          `(a type missing from meshaudit.extraResourceTypes, or a hand edit?):\n  ${problems.list.map(formatViolation).join('\n  ')}`,
      );
    }
    return byName;
  }

  private corrupt(reason: string): StoreError {
    return new StoreCorruptError(
      `the AccessAudit store ${this.file} is corrupt: ${reason}; restore it, or move it away to start ` +
        'with only the --rules files',
    );
  }

  /** Writes the resources in force again (the data directory was removed while the sidecar ran). */
  persistAgain(): void {
    this.writeAtomically(encode(this.list()));
  }

  /** The whole state, replaced durably (src/store/durable-file.ts). */
  private writeAtomically(text: string): void {
    try {
      const modes = this.opts.modes ?? DEFAULT_FILE_MODES;
      replaceFile(this.fs, this.file, text, { mode: modes.file, dirMode: modes.dir });
    } catch (e) {
      if (!(e instanceof ReplaceError)) throw e;
      if (!e.renamed) {
        const err = new StoreError(`can't write the AccessAudit store ${this.file}: ${e.message}`);
        if (this.copy?.onWriteError === undefined) throw err;
        this.copy.onWriteError(err);
        return;
      }
      // From the rename on, the new state is what the file holds: reporting failure now would tell the
      // caller "nothing changed" while the next start loads the change.
      const err = new StoreError(`the AccessAudit store ${this.file} was changed, but ${e.message}`);
      if (this.opts.onSyncError === undefined) throw err;
      this.opts.onSyncError(err);
    }
  }
}

/** The names of the resources a change creates, updates or deletes, in its order. */
export function namesChanged(change: PreparedChange, action: ChangeAction): string[] {
  return change.changes.filter((c) => c.action === action).map((c) => c.name);
}

function requireName(name: string): void {
  if (name === '') throw new InvalidArgumentError([{ field: 'name', description: IS_REQUIRED }]);
}

function sameRules(a: AccessAudit, b: AccessAudit): boolean {
  // Both are normalised by validation, with their keys in the same order.
  return JSON.stringify(a.rules) === JSON.stringify(b.rules);
}

function sortedByName(audits: Iterable<StoredAccessAudit>): StoredAccessAudit[] {
  return [...audits].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Pretty-printed: operators read this file when they wonder where a rule comes from. */
function encode(audits: readonly StoredAccessAudit[]): string {
  const accessAudits = audits.map(({ name, version, origin, rules }) => ({ name, version, origin, rules }));
  return `${JSON.stringify({ format: FILE_FORMAT, accessAudits }, null, 2)}\n`;
}
