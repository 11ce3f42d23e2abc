// Resource type names of the Kuma / Kong Mesh resource registry: what `types` of a rule may name, and
// each type's scope. A name missing here is a validation error, so that a typo never silently audits
// nothing; types this list does not know yet are added through the config (meshaudit.extraResourceTypes).

/**
 * Where a resource lives: in a mesh (a policy, a dataplane: its events carry `resource.mesh`), or
 * global (a zone, a mesh itself, an AccessAudit: no mesh). A rule that sets `mesh` covers only
 * mesh-scoped types, the `Mesh` resource itself (whose mesh is its name) and dataplane tokens.
 */
export type ResourceScope = 'mesh' | 'global';

/** Type name -> scope: the types a rule may list. */
export type TypeRegistry = ReadonlyMap<string, ResourceScope>;

/** The global-scoped types of the registry below; every other one is mesh-scoped. */
const GLOBAL_TYPES: ReadonlySet<string> = new Set([
  'Mesh',
  'MeshInsight',
  'Zone',
  'ZoneInsight',
  'ZoneIngress',
  'ZoneIngressInsight',
  'ZoneEgress',
  'ZoneEgressInsight',
  'GlobalSecret',
  'Config',
  'HostnameGenerator',
  'AccessRole',
  'AccessRoleBinding',
  'AccessAudit',
]);

/** Registry type names, as the control plane sends them in `resource.type`. */
const KNOWN_RESOURCE_TYPES: readonly string[] = [
  // Kuma: meshes, proxies, zones and their insights.
  'Mesh',
  'MeshInsight',
  'Dataplane',
  'DataplaneInsight',
  'ZoneIngress',
  'ZoneIngressInsight',
  'ZoneEgress',
  'ZoneEgressInsight',
  'Zone',
  'ZoneInsight',
  'ServiceInsight',
  'ExternalService',
  'Secret',
  'GlobalSecret',
  'Config',
  'HostnameGenerator',
  'MeshService',
  'MeshExternalService',
  'MeshMultiZoneService',
  'MeshIdentity',
  'MeshTrust',
  // Kuma: source/destination (legacy) policies.
  'TrafficPermission',
  'TrafficRoute',
  'TrafficLog',
  'TrafficTrace',
  'HealthCheck',
  'CircuitBreaker',
  'FaultInjection',
  'Retry',
  'Timeout',
  'RateLimit',
  'ProxyTemplate',
  'VirtualOutbound',
  'MeshGateway',
  'MeshGatewayRoute',
  // Kuma: targetRef policies.
  'MeshAccessLog',
  'MeshCircuitBreaker',
  'MeshFaultInjection',
  'MeshHealthCheck',
  'MeshHTTPRoute',
  'MeshTCPRoute',
  'MeshLoadBalancingStrategy',
  'MeshProxyPatch',
  'MeshRateLimit',
  'MeshRetry',
  'MeshTimeout',
  'MeshTrace',
  'MeshTrafficPermission',
  'MeshMetric',
  'MeshPassthrough',
  'MeshTLS',
  // Kong Mesh only.
  'AccessRole',
  'AccessRoleBinding',
  'AccessAudit',
  'OPAPolicy',
  'MeshOPA',
  'MeshGlobalRateLimit',
];

/**
 * Types that a rule without `types` does not cover (spec section 4, kmesh.access.audit.skipDefaultTypes):
 * insights change on every proxy heartbeat and would drown the trail.
 */
export const DEFAULT_SKIP_TYPES: readonly string[] = Object.freeze([
  'DataplaneInsight',
  'ZoneIngressInsight',
  'ZoneEgressInsight',
  'ZoneInsight',
  'ServiceInsight',
  'MeshInsight',
]);

/** A type the configuration adds to the registry (meshaudit.extraResourceTypes). */
export interface ExtraResourceType {
  readonly name: string;
  readonly scope: ResourceScope;
}

/** The built-in registry, with `extra` types added; a built-in name keeps its own scope. */
export function typeRegistry(extra: readonly ExtraResourceType[] = []): TypeRegistry {
  const registry = new Map<string, ResourceScope>();
  for (const name of KNOWN_RESOURCE_TYPES) registry.set(name, GLOBAL_TYPES.has(name) ? 'global' : 'mesh');
  for (const { name, scope } of extra) if (!registry.has(name)) registry.set(name, scope);
  return registry;
}

/** Whether `name` is a built-in type of the registry. */
export function isBuiltInType(name: string): boolean {
  return KNOWN_RESOURCE_TYPES.includes(name);
}
