// Which audit records a query wants (ReadService.Query's filter): checked once per query, every
// problem named with its field, then tried on each record line as the files hold it. Pure.
import { parseRfc3339 } from '../events/rfc3339';
import { ACCESS_AUDIT_TYPE, ACTIONS, isAction, type TypeRegistry } from '../rules';
import { field, index, unknown, Violations } from '../validators';

/** A query's filter as it comes (QueryFilter, camelCase): every field optional, '' and [] meaning "any". */
export interface RecordFilterInput {
  readonly from?: string;
  readonly to?: string;
  readonly actions?: readonly string[];
  readonly types?: readonly string[];
  readonly mesh?: string;
  readonly name?: string;
  readonly tokenId?: string;
  readonly user?: string;
}

/** A record line as much as a filter reads of it. */
interface RecordFields {
  date?: unknown;
  action?: unknown;
  resource?: { type?: unknown; name?: unknown; mesh?: unknown };
  token?: { id?: unknown };
  user?: { name?: unknown };
}

/** Decides, line by line, whether a record is wanted. */
export interface RecordFilter {
  /** Whether the record `line` (one JSON line of an audit file) matches; a line that is not a record never does. */
  matches(line: string): boolean;
  /** True when it matches every line: a reader need not decode them. */
  readonly everyRecord?: boolean;
}

const EVERY_RECORD: RecordFilter = { matches: () => true, everyRecord: true };

/**
 * The filter of `input`, its fields under `at` in violations (`filter.actions[0]: unknown action
 * "CREAT", did you mean "CREATE"?`). Throws InvalidArgumentError with every problem found.
 */
export function compileRecordFilter(input: RecordFilterInput, knownTypes: TypeRegistry, at = 'filter'): RecordFilter {
  const problems = new Violations();
  const time = (name: 'from' | 'to'): number | undefined => {
    const text = input[name] ?? '';
    if (text === '') return undefined;
    const ms = parseRfc3339(text);
    if (Number.isNaN(ms)) problems.add(field(at, name), `must be an RFC 3339 time, got ${JSON.stringify(text)}`);
    return ms;
  };
  const fromMs = time('from');
  const toMs = time('to');
  const actions = input.actions ?? [];
  actions.forEach((a, i) => {
    if (!isAction(a)) problems.add(index(field(at, 'actions'), i), unknown('action', a, ACTIONS));
  });
  const types = input.types ?? [];
  const typeNames = [...knownTypes.keys(), ACCESS_AUDIT_TYPE];
  types.forEach((t, i) => {
    if (!typeNames.includes(t)) problems.add(index(field(at, 'types'), i), unknown('type', t, typeNames));
  });
  problems.throwIfAny();
  const checks: Array<(r: RecordFields) => boolean> = [];
  const anyOf = (values: readonly string[], get: (r: RecordFields) => unknown): void => {
    if (values.length === 0) return;
    const wanted = new Set(values);
    checks.push((r) => {
      const v = get(r);
      return typeof v === 'string' && wanted.has(v);
    });
  };
  const equal = (value: string | undefined, get: (r: RecordFields) => unknown): void => {
    if (value === undefined || value === '') return;
    checks.push((r) => get(r) === value);
  };
  if (fromMs !== undefined || toMs !== undefined) {
    const from = fromMs ?? -Infinity;
    const to = toMs ?? Infinity;
    checks.push((r) => {
      const ms = typeof r.date === 'string' ? parseRfc3339(r.date) : Number.NaN;
      return ms >= from && ms < to;
    });
  }
  anyOf(actions, (r) => r.action);
  anyOf(types, (r) => r.resource?.type);
  equal(input.mesh, (r) => r.resource?.mesh);
  equal(input.name, (r) => r.resource?.name);
  equal(input.tokenId, (r) => r.token?.id);
  equal(input.user, (r) => r.user?.name);
  // No filter: no line is parsed.
  if (checks.length === 0) return EVERY_RECORD;
  return {
    matches(line) {
      let record: RecordFields;
      try {
        record = JSON.parse(line) as RecordFields;
      } catch {
        return false;
      }
      if (typeof record !== 'object' || record === null) return false;
      return checks.every((check) => check(record));
    },
  };
}
