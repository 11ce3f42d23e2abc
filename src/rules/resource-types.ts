// Resource type names of the Kuma / Kong Mesh resource registry: what `types` of a rule may name.
// A name missing here is a validation error, so that a typo never silently audits nothing; types
// this list does not know yet are added through the config (meshaudit.extraResourceTypes).

/** Registry type names, as the control plane sends them in `resource.type`. */
export const KNOWN_RESOURCE_TYPES: readonly string[] = Object.freeze([
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
]);

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
