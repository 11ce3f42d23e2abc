// The rule engine's surface: what the rest of meshaudit uses from src/rules.
export { ACTIONS, isAction, isTokenAction, type Action } from './actions';
export type { AccessAudit, AccessAuditRule, ValidAccessAudit } from './model';
export {
  DEFAULT_SKIP_TYPES,
  type ExtraResourceType,
  isBuiltInType,
  type TypeRegistry,
  typeRegistry,
} from './resource-types';
export { parseAccessAudit, validateAccessAudit, ACCESS_AUDIT_TYPE } from './parse';
export { compileRules, MESH_RESOURCE_TYPE, type CompiledRules, type RuleMatch, type RuleSubject } from './matcher';
