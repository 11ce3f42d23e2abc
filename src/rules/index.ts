// The rule engine's surface: what the rest of meshaudit uses from src/rules.
export { ACTIONS, TOKEN_ACTIONS, isAction, isTokenAction, type Action } from './actions';
export type { AccessAudit, AccessAuditRule } from './model';
export {
  DEFAULT_SKIP_TYPES,
  type ExtraResourceType,
  isBuiltInType,
  type ResourceScope,
  type TypeRegistry,
  typeRegistry,
} from './resource-types';
export {
  parseAccessAudit,
  validateAccessAudit,
  ACCESS_AUDIT_TYPE,
  type ParseResult,
  type ValidateOptions,
} from './parse';
export { compileRules, MESH_RESOURCE_TYPE, type CompiledRules, type RuleMatch, type RuleSubject } from './matcher';
