// Validation of AccessAudit resources (spec section 2): from a parsed YAML/JSON document in either of
// its two forms, or from an already-typed AccessAudit (the gRPC API). Every violation is collected,
// each with the document's own field path, so that the caller can point at the YAML line.
import { ACTIONS, isAction, isTokenAction, type Action } from './actions';
import { DATAPLANE_TOKEN_ACTION, MESH_RESOURCE_TYPE } from './matcher';
import type { TypeRegistry } from './resource-types';
import {
  field,
  IS_REQUIRED,
  index,
  mustBe,
  quote,
  tooLong,
  tooMany,
  unknown,
  unknownField,
  type Violation,
  Violations,
} from '../validators';
import type { AccessAudit, AccessAuditRule, ValidAccessAudit } from './model';

export const ACCESS_AUDIT_TYPE = 'AccessAudit';
const KUBERNETES_API_VERSION = 'kuma.io/v1alpha1';
/** Longest name: an RFC 1123 subdomain, as Kubernetes object names. */
const MAX_NAME_LENGTH = 253;
const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAME_RULE = 'use lowercase letters, digits, "-" and ".", starting and ending with a letter or digit';

// creationTime, modificationTime and labels are what `kumactl get -o yaml` adds: an export applies back.
const UNIVERSAL_FIELDS: readonly string[] = ['type', 'name', 'rules', 'labels', 'creationTime', 'modificationTime'];
const KUBERNETES_FIELDS: readonly string[] = ['apiVersion', 'kind', 'metadata', 'spec'];
// Everything `kubectl get -o yaml` may put in metadata, for the same reason.
const METADATA_FIELDS: readonly string[] = [
  'name',
  'namespace',
  'labels',
  'annotations',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'finalizers',
  'ownerReferences',
  'managedFields',
  'generateName',
  'selfLink',
];
const SPEC_FIELDS: readonly string[] = ['rules'];
const RULE_FIELDS: readonly string[] = ['types', 'mesh', 'access', 'accessAll'];
/** Where users put `mesh` by habit of mesh-scoped policies. */
const GLOBAL_SCOPED_HINT = 'an AccessAudit is global-scoped, set mesh on a rule';

export interface ValidateOptions {
  /** Resource types a rule may list, with their scope: the registry plus the config's extra types. */
  readonly knownTypes: TypeRegistry;
  /**
   * What a rule that sets `mesh` but lists only global-scoped types is (it can never match): an error
   * (the default: from the API and rules files), or a warning (a resource stored before the check).
   */
  readonly meshOnGlobalTypes?: 'error' | 'warning';
  /** Most rules one AccessAudit may have (meshaudit.limits.rulesPerAccessAudit); unbounded when absent. */
  readonly maxRules?: number;
}

export interface ParseResult {
  /** The normalised audit (lists deduplicated, absent fields defaulted); only when there is no violation. */
  audit?: ValidAccessAudit;
  /** Errors: the audit must not be used. `field` '' is the document itself. */
  violations: Violation[];
  /** Valid but probably not what was meant, e.g. a rule that covers no action. */
  warnings: Violation[];
}

type Mapping = Record<string, unknown>;

interface Context {
  readonly knownTypes: TypeRegistry;
  readonly meshOnGlobalTypes: 'error' | 'warning';
  /** Typed input (the gRPC API) may carry extra properties of its own; documents may not. */
  readonly rejectUnknownFields: boolean;
  readonly maxRules: number;
  readonly violations: Violations;
  readonly warnings: Violations;
}

/**
 * Validates one parsed YAML/JSON document: Universal (`type: AccessAudit`, `name`, `rules`) or
 * Kubernetes (`apiVersion: kuma.io/v1alpha1`, `kind: AccessAudit`, `metadata.name`, `spec.rules`).
 */
export function parseAccessAudit(doc: unknown, opts: ValidateOptions): ParseResult {
  const ctx = newContext(opts, true);
  if (!isMapping(doc)) {
    error(ctx, '', mustBe('a mapping (an AccessAudit resource)', doc));
    return result(ctx, undefined);
  }
  if (!isKubernetesForm(doc)) {
    checkConstant(ctx, doc.type, 'type', ACCESS_AUDIT_TYPE);
    checkFields(ctx, doc, UNIVERSAL_FIELDS, '', { mesh: GLOBAL_SCOPED_HINT });
    return checkBody(ctx, doc.name, 'name', doc.rules, 'rules');
  }

  checkConstant(ctx, doc.apiVersion, 'apiVersion', KUBERNETES_API_VERSION);
  checkConstant(ctx, doc.kind, 'kind', ACCESS_AUDIT_TYPE);
  checkFields(ctx, doc, KUBERNETES_FIELDS, '', {});
  const metadata = checkSection(ctx, doc.metadata, 'metadata', METADATA_FIELDS, {});
  if (metadata?.namespace !== undefined && metadata.namespace !== null) {
    warning(ctx, 'metadata.namespace', 'ignored: an AccessAudit is global-scoped (cluster-scoped on Kubernetes)');
  }
  const spec = checkSection(ctx, doc.spec, 'spec', SPEC_FIELDS, { mesh: GLOBAL_SCOPED_HINT });
  // A section that is not a mapping is reported once, not again for the fields it lacks.
  return checkBody(
    ctx,
    metadata === null ? SECTION_REPORTED : metadata?.name,
    'metadata.name',
    spec === null ? SECTION_REPORTED : spec?.rules,
    'spec.rules',
  );
}

/**
 * Validates an already-typed AccessAudit (from the gRPC API) with the same checks and messages as
 * parseAccessAudit; field paths are `name` and `rules[i]...`.
 */
export function validateAccessAudit(audit: AccessAudit, opts: ValidateOptions): ParseResult {
  const ctx = newContext(opts, false);
  const value: unknown = audit;
  if (!isMapping(value)) {
    error(ctx, '', mustBe('an AccessAudit', value));
    return result(ctx, undefined);
  }
  return checkBody(ctx, value.name, 'name', value.rules, 'rules');
}

/** Stands for a field whose enclosing section is already reported as broken. */
const SECTION_REPORTED: unique symbol = Symbol('section reported');

function checkBody(
  ctx: Context,
  nameValue: unknown,
  namePath: string,
  rulesValue: unknown,
  rulesPath: string,
): ParseResult {
  const name = nameValue === SECTION_REPORTED ? undefined : checkName(ctx, nameValue, namePath);
  const rules = rulesValue === SECTION_REPORTED ? undefined : checkRules(ctx, rulesValue, rulesPath);
  return result(ctx, name !== undefined && rules !== undefined ? { name, rules } : undefined);
}

function checkName(ctx: Context, value: unknown, path: string): string | undefined {
  if (value === undefined || value === null || value === '') {
    error(ctx, path, IS_REQUIRED);
    return undefined;
  }
  return checkDnsName(ctx, value, path);
}

/** An RFC 1123 subdomain: the names of Kuma resources, meshes included. */
function checkDnsName(ctx: Context, value: unknown, path: string): string | undefined {
  if (typeof value !== 'string') {
    error(ctx, path, mustBe('a string', value));
    return undefined;
  }
  if (value.length > MAX_NAME_LENGTH) {
    error(ctx, path, tooLong(MAX_NAME_LENGTH, value.length));
    return undefined;
  }
  if (!NAME_PATTERN.test(value)) {
    error(ctx, path, `${quote(value)} is not a lowercase RFC 1123 subdomain: ${NAME_RULE}`);
    return undefined;
  }
  return value;
}

function checkRules(ctx: Context, value: unknown, path: string): AccessAuditRule[] | undefined {
  if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) {
    warning(ctx, path, 'no rules: this AccessAudit covers no action');
    return [];
  }
  if (!Array.isArray(value)) {
    error(ctx, path, mustBe('a list of rules', value));
    return undefined;
  }
  if (value.length > ctx.maxRules) {
    error(ctx, path, `${tooMany(ctx.maxRules, value.length)} (meshaudit.limits.rulesPerAccessAudit)`);
    return undefined;
  }
  const rules: AccessAuditRule[] = [];
  let valid = true;
  value.forEach((item, i) => {
    const rule = checkRule(ctx, item, `${path}[${i}]`);
    if (rule === undefined) valid = false;
    else rules.push(rule);
  });
  return valid ? rules : undefined;
}

function checkRule(ctx: Context, value: unknown, path: string): AccessAuditRule | undefined {
  if (!isMapping(value)) {
    error(ctx, path, mustBe('a mapping of types, mesh, access and accessAll', value));
    return undefined;
  }
  if (ctx.rejectUnknownFields) checkFields(ctx, value, RULE_FIELDS, path, {});
  const types = checkList(ctx, value.types, field(path, 'types'), (item, itemPath) => checkType(ctx, item, itemPath));
  const mesh =
    value.mesh === undefined || value.mesh === null || value.mesh === ''
      ? ''
      : checkDnsName(ctx, value.mesh, field(path, 'mesh'));
  const access = checkList(ctx, value.access, field(path, 'access'), (item, itemPath) =>
    checkAction(ctx, item, itemPath),
  );
  const accessAll = checkBoolean(ctx, value.accessAll, field(path, 'accessAll'));
  if (types === undefined || mesh === undefined || access === undefined || accessAll === undefined) return undefined;

  const rule: AccessAuditRule = { types, mesh, access: access as Action[], accessAll };
  if (!checkMeshScope(ctx, rule, value.types, path)) return undefined;
  warnUncovered(ctx, rule, value.access, path);
  return rule;
}

/**
 * A rule that sets `mesh` covers only what has a mesh: mesh-scoped types and the Mesh resource itself
 * (Kong Mesh's docs restrict `mesh` to mesh-scoped types). Listing only global-scoped ones can never
 * match: refused (or a warning, per meshOnGlobalTypes); each global type in a longer list is a warning.
 */
function checkMeshScope(ctx: Context, rule: AccessAuditRule, rawTypes: unknown, path: string): boolean {
  if (rule.mesh === '' || rule.types.length === 0) return true;
  const hasNoMesh = (type: string): boolean => type !== MESH_RESOURCE_TYPE && ctx.knownTypes.get(type) === 'global';
  const global = rule.types.filter(hasNoMesh);
  if (global.length === rule.types.length) {
    const listed = global.map((t) => quote(t)).join(', ');
    const description =
      `never matches: ${listed} ${global.length === 1 ? 'is' : 'are'} global-scoped (no mesh), and a rule ` +
      'that sets mesh covers only mesh-scoped types and the Mesh resource itself; remove mesh, or list mesh-scoped types';
    if (ctx.meshOnGlobalTypes === 'error') {
      error(ctx, field(path, 'mesh'), description);
      return false;
    }
    warning(ctx, field(path, 'mesh'), description);
    return true;
  }
  (rawTypes as string[]).forEach((type, i) => {
    if (hasNoMesh(type)) {
      warning(
        ctx,
        index(field(path, 'types'), i),
        `${quote(type)} is global-scoped: a rule that sets mesh never covers it`,
      );
    }
  });
  return true;
}

/** Warnings for a valid rule that covers less than it says: never an error, the rule does what the spec says. */
function warnUncovered(ctx: Context, rule: AccessAuditRule, rawAccess: unknown, path: string): void {
  if (rule.accessAll) {
    if (rule.access.length > 0)
      warning(ctx, field(path, 'access'), 'ignored: accessAll is true and covers every action');
    return;
  }
  if (rule.access.length === 0) {
    warning(ctx, path, 'covers no action: set access or accessAll');
    return;
  }
  // rawAccess is a valid list here; walk it again for the document's own indexes, once per action.
  const seen = new Set<string>();
  (rawAccess as Action[]).forEach((action, i) => {
    if (seen.has(action) || !isTokenAction(action)) return;
    seen.add(action);
    const itemPath = index(field(path, 'access'), i);
    if (rule.types.length > 0) {
      warning(ctx, itemPath, `${quote(action)} is a token action: a rule that lists types never covers it`);
    } else if (rule.mesh !== '' && action !== DATAPLANE_TOKEN_ACTION) {
      warning(ctx, itemPath, `${quote(action)} has no mesh: a rule that sets mesh never covers it`);
    }
  });
}

function checkType(ctx: Context, value: string, path: string): boolean {
  if (ctx.knownTypes.has(value)) return true;
  error(ctx, path, unknown('type', value, [...ctx.knownTypes.keys()]));
  return false;
}

function checkAction(ctx: Context, value: string, path: string): boolean {
  if (isAction(value)) return true;
  error(ctx, path, unknown('action', value, ACTIONS));
  return false;
}

/** A list of strings, each checked by `checkItem`, deduplicated in first-seen order. Absent: empty. */
function checkList(
  ctx: Context,
  value: unknown,
  path: string,
  checkItem: (item: string, itemPath: string) => boolean,
): string[] | undefined {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    error(ctx, path, mustBe('a list of strings', value));
    return undefined;
  }
  const items = new Set<string>();
  let valid = true;
  value.forEach((item: unknown, i) => {
    const itemPath = index(path, i);
    if (typeof item !== 'string') {
      error(ctx, itemPath, mustBe('a string', item));
      valid = false;
    } else if (!checkItem(item, itemPath)) {
      valid = false;
    } else {
      items.add(item);
    }
  });
  return valid ? [...items] : undefined;
}

function checkBoolean(ctx: Context, value: unknown, path: string): boolean | undefined {
  if (value === undefined || value === null) return false;
  if (typeof value === 'boolean') return value;
  error(ctx, path, mustBe('a boolean', value));
  return undefined;
}

function checkConstant(ctx: Context, value: unknown, path: string, expected: string): void {
  if (value === undefined || value === null) error(ctx, path, `${IS_REQUIRED}, must be ${quote(expected)}`);
  else if (value !== expected) error(ctx, path, mustBe(quote(expected), value));
}

/** An optional mapping: the mapping, undefined when absent, null when reported as not a mapping. */
function checkSection(
  ctx: Context,
  value: unknown,
  path: string,
  allowed: readonly string[],
  hints: Readonly<Record<string, string>>,
): Mapping | undefined | null {
  if (value === undefined || value === null) return undefined;
  if (!isMapping(value)) {
    error(ctx, path, mustBe('a mapping', value));
    return null;
  }
  checkFields(ctx, value, allowed, path, hints);
  return value;
}

function checkFields(
  ctx: Context,
  value: Mapping,
  allowed: readonly string[],
  path: string,
  hints: Readonly<Record<string, string>>,
): void {
  for (const key of Object.keys(value)) {
    if (allowed.includes(key)) continue;
    const hint = Object.hasOwn(hints, key) ? hints[key] : undefined;
    const message = unknownField(key, allowed);
    error(ctx, field(path, key), hint === undefined ? message : `${message}: ${hint}`);
  }
}

/** Kubernetes when it says so; Universal otherwise, the form whose `type` a bare document most likely forgot. */
function isKubernetesForm(doc: Mapping): boolean {
  if ('kind' in doc || 'apiVersion' in doc) return true;
  if ('type' in doc) return false;
  return 'metadata' in doc || 'spec' in doc;
}

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function newContext(opts: ValidateOptions, rejectUnknownFields: boolean): Context {
  return {
    knownTypes: opts.knownTypes,
    meshOnGlobalTypes: opts.meshOnGlobalTypes ?? 'error',
    rejectUnknownFields,
    maxRules: opts.maxRules ?? Number.POSITIVE_INFINITY,
    violations: new Violations(),
    warnings: new Violations(),
  };
}

function result(ctx: Context, audit: AccessAudit | undefined): ParseResult {
  const violations = [...ctx.violations.list];
  const warnings = [...ctx.warnings.list];
  if (audit === undefined || violations.length > 0) return { violations, warnings };
  return { audit: audit as ValidAccessAudit, violations, warnings };
}

function error(ctx: Context, path: string, description: string): void {
  ctx.violations.add(path, description);
}

function warning(ctx: Context, path: string, description: string): void {
  ctx.warnings.add(path, description);
}
