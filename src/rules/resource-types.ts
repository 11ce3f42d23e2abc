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

/** Registry type names, as the control plane sends them in `resource.type`, with their scope. */
const RESOURCE_TYPES: Readonly<Record<string, ResourceScope>> = {
  // Kuma: meshes, proxies, zones and their insights.
  Mesh: 'global',
  MeshInsight: 'global',
  Dataplane: 'mesh',
  DataplaneInsight: 'mesh',
  ZoneIngress: 'global',
  ZoneIngressInsight: 'global',
  ZoneEgress: 'global',
  ZoneEgressInsight: 'global',
  Zone: 'global',
  ZoneInsight: 'global',
  ServiceInsight: 'mesh',
  ExternalService: 'mesh',
  Secret: 'mesh',
  GlobalSecret: 'global',
  Config: 'global',
  HostnameGenerator: 'global',
  MeshService: 'mesh',
  MeshExternalService: 'mesh',
  MeshMultiZoneService: 'mesh',
  MeshIdentity: 'mesh',
  MeshTrust: 'mesh',
  // Kuma: source/destination (legacy) policies.
  TrafficPermission: 'mesh',
  TrafficRoute: 'mesh',
  TrafficLog: 'mesh',
  TrafficTrace: 'mesh',
  HealthCheck: 'mesh',
  CircuitBreaker: 'mesh',
  FaultInjection: 'mesh',
  Retry: 'mesh',
  Timeout: 'mesh',
  RateLimit: 'mesh',
  ProxyTemplate: 'mesh',
  VirtualOutbound: 'mesh',
  MeshGateway: 'mesh',
  MeshGatewayRoute: 'mesh',
  // Kuma: targetRef policies.
  MeshAccessLog: 'mesh',
  MeshCircuitBreaker: 'mesh',
  MeshFaultInjection: 'mesh',
  MeshHealthCheck: 'mesh',
  MeshHTTPRoute: 'mesh',
  MeshTCPRoute: 'mesh',
  MeshLoadBalancingStrategy: 'mesh',
  MeshProxyPatch: 'mesh',
  MeshRateLimit: 'mesh',
  MeshRetry: 'mesh',
  MeshTimeout: 'mesh',
  MeshTrace: 'mesh',
  MeshTrafficPermission: 'mesh',
  MeshMetric: 'mesh',
  MeshPassthrough: 'mesh',
  MeshTLS: 'mesh',
  // Kong Mesh only.
  AccessRole: 'global',
  AccessRoleBinding: 'global',
  AccessAudit: 'global',
  OPAPolicy: 'mesh',
  MeshOPA: 'mesh',
  MeshGlobalRateLimit: 'mesh',
};

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
  for (const [name, scope] of Object.entries(RESOURCE_TYPES)) registry.set(name, scope);
  for (const { name, scope } of extra) if (!registry.has(name)) registry.set(name, scope);
  return registry;
}

/** Whether `name` is a built-in type of the registry. */
export function isBuiltInType(name: string): boolean {
  return Object.hasOwn(RESOURCE_TYPES, name);
}
