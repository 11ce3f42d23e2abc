// The compiled rule matcher (spec section 2): built once per rule change, asked once per event.
// covers() does a handful of Map/Set look-ups whatever the number of AccessAudit resources, and
// allocates nothing: most events are asked about against thousands of rules that do not match.
import { ACTIONS, isAction, isTokenAction, type Action } from './actions';
import type { AccessAudit } from './model';

/** The one token action whose token has a mesh (its claims.mesh); other tokens have none. */
export const DATAPLANE_TOKEN_ACTION: Action = 'GENERATE_DATAPLANE_TOKEN';
/** The resource type whose mesh is its own name. */
export const MESH_RESOURCE_TYPE = 'Mesh';

/** What a rule is matched against: the parts of an event that rules look at. Structural on purpose. */
export interface RuleSubject {
  readonly action: string;
  readonly resource?: { readonly type: string; readonly name: string; readonly mesh: string } | null;
  readonly token?: { readonly claims?: { readonly mesh?: string } | null } | null;
}

/** One rule that covers a subject: the AccessAudit's name and the rule's index in it. */
export interface RuleMatch {
  readonly audit: string;
  readonly ruleIndex: number;
}

export interface CompiledRules {
  /** Whether at least one rule of at least one AccessAudit covers the subject. Never throws: bad input is not covered. */
  covers(subject: RuleSubject): boolean;
  /** Every rule that covers the subject, in audit-name then rule order. Slower than covers(): for dry runs. */
  explain(subject: RuleSubject): RuleMatch[];
  /** The audits compiled, sorted by name. */
  readonly audits: readonly AccessAudit[];
  /** The types rules without `types` do not cover: with `audits`, all it takes to compile these rules again. */
  readonly skipDefaultTypes: readonly string[];
}

interface Entry extends RuleMatch {
  /** Position of the audit in name order, so that explain() sorts without comparing strings. */
  readonly auditOrder: number;
}

/**
 * The rules covering one action, bucketed by the two fields a subject is looked up with. A rule lands
 * in exactly one bucket kind: with or without types, with or without mesh.
 */
interface ActionIndex {
  /** Rules without types nor mesh: every type not skipped, and every token of the action. */
  readonly anyTypeAnyMesh: Entry[];
  /** Rules without types, by mesh. */
  readonly anyTypeByMesh: Map<string, Entry[]>;
  /** Rules with types and without mesh, by type. */
  readonly typedAnyMesh: Map<string, Entry[]>;
  /** Rules with types and mesh, by mesh then type. */
  readonly typedByMesh: Map<string, Map<string, Entry[]>>;
}

/**
 * Compiles AccessAudit resources (already validated) into a matcher. `skipDefaultTypes` are the types
 * that rules without `types` do not cover.
 */
export function compileRules(audits: readonly AccessAudit[], skipDefaultTypes: readonly string[]): CompiledRules {
  // Array.prototype.sort is stable: audits with the same name keep their given order.
  const sorted = Object.freeze([...audits].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
  const index = new Map<string, ActionIndex>();
  sorted.forEach((audit, auditOrder) => {
    audit.rules.forEach((rule, ruleIndex) => {
      const entry: Entry = { audit: audit.name, ruleIndex, auditOrder };
      const typed = rule.types.length > 0;
      for (const action of new Set<string>(rule.accessAll ? ACTIONS : rule.access)) {
        // Validation rejects unknown actions; one slipping through could never be asked about anyway.
        if (!isAction(action)) continue;
        // A token concerns no resource, so a rule naming types never covers it: nothing would look it up.
        if (typed && isTokenAction(action)) continue;
        const byAction = actionIndex(index, action);
        if (!typed) {
          if (rule.mesh === '') byAction.anyTypeAnyMesh.push(entry);
          else push(byAction.anyTypeByMesh, rule.mesh, entry);
          continue;
        }
        const byType = rule.mesh === '' ? byAction.typedAnyMesh : nested(byAction.typedByMesh, rule.mesh);
        for (const type of new Set(rule.types)) push(byType, type, entry);
      }
    });
  });
  const skip: ReadonlySet<string> = new Set(skipDefaultTypes);

  return Object.freeze({
    audits: sorted,
    skipDefaultTypes: Object.freeze([...skipDefaultTypes]),
    covers(subject: RuleSubject): boolean {
      // Subjects come straight from the network decoder: a hostile getter must not break the stream.
      try {
        return lookup(index, skip, subject, undefined);
      } catch {
        return false;
      }
    },
    explain(subject: RuleSubject): RuleMatch[] {
      const found: Entry[] = [];
      try {
        lookup(index, skip, subject, found);
      } catch {
        return [];
      }
      found.sort((a, b) => a.auditOrder - b.auditOrder || a.ruleIndex - b.ruleIndex);
      return found.map(({ audit, ruleIndex }) => ({ audit, ruleIndex }));
    },
  });
}

/**
 * The one place that decides coverage, for covers() and explain() alike. Without `out` it answers at
 * the first covering bucket; with `out` it appends every covering rule to it.
 */
function lookup(
  index: ReadonlyMap<string, ActionIndex>,
  skip: ReadonlySet<string>,
  subject: RuleSubject,
  out: Entry[] | undefined,
): boolean {
  if (typeof subject !== 'object' || subject === null) return false;
  const action = subject.action;
  if (typeof action !== 'string' || !isAction(action)) return false;
  const byAction = index.get(action);
  if (byAction === undefined) return false;

  let type: string | undefined;
  let mesh: unknown;
  if (isTokenAction(action)) {
    const token = subject.token;
    if (typeof token !== 'object' || token === null) return false;
    if (action === DATAPLANE_TOKEN_ACTION) {
      const claims = token.claims;
      mesh = typeof claims === 'object' && claims !== null ? claims.mesh : undefined;
    }
  } else {
    const resource = subject.resource;
    if (typeof resource !== 'object' || resource === null) return false;
    type = resource.type;
    if (typeof type !== 'string' || type === '') return false;
    mesh = type === MESH_RESOURCE_TYPE ? resource.name : resource.mesh;
  }
  if (mesh === undefined || mesh === null) mesh = '';
  if (typeof mesh !== 'string') return false;

  // covers() needs one covering rule: a rule without types nor mesh, the broadest kind, answers
  // without looking the mesh up in maps that thousands of mesh-scoped rules make large.
  if (out === undefined && byAction.anyTypeAnyMesh.length > 0 && (type === undefined || !skip.has(type))) return true;
  let covered = false;
  if (type !== undefined) {
    covered = take(byAction.typedAnyMesh.get(type), out) || covered;
    if (covered && out === undefined) return true;
    if (mesh !== '') {
      covered = take(byAction.typedByMesh.get(mesh)?.get(type), out) || covered;
      if (covered && out === undefined) return true;
    }
    if (skip.has(type)) return covered;
  }
  covered = take(byAction.anyTypeAnyMesh, out) || covered;
  if (covered && out === undefined) return true;
  // An action without a mesh never matches a rule that sets one.
  if (mesh !== '') covered = take(byAction.anyTypeByMesh.get(mesh), out) || covered;
  return covered;
}

function take(entries: readonly Entry[] | undefined, out: Entry[] | undefined): boolean {
  if (entries === undefined || entries.length === 0) return false;
  // A loop, not push(...entries): spreading thousands of arguments can overflow the stack.
  if (out !== undefined) for (const entry of entries) out.push(entry);
  return true;
}

function actionIndex(index: Map<string, ActionIndex>, action: Action): ActionIndex {
  let byAction = index.get(action);
  if (byAction === undefined) {
    byAction = { anyTypeAnyMesh: [], anyTypeByMesh: new Map(), typedAnyMesh: new Map(), typedByMesh: new Map() };
    index.set(action, byAction);
  }
  return byAction;
}

function nested(map: Map<string, Map<string, Entry[]>>, key: string): Map<string, Entry[]> {
  let inner = map.get(key);
  if (inner === undefined) {
    inner = new Map();
    map.set(key, inner);
  }
  return inner;
}

function push(map: Map<string, Entry[]>, key: string, entry: Entry): void {
  const entries = map.get(key);
  if (entries === undefined) map.set(key, [entry]);
  else entries.push(entry);
}
