// The ten actions a mesh RBAC controls (spec section 1). Their names are part of the contract.

export const RESOURCE_ACTIONS = ['CREATE', 'UPDATE', 'DELETE'] as const;
const INSPECT_ACTIONS = ['VIEW_CONFIG_DUMP', 'VIEW_STATS', 'VIEW_CLUSTERS'] as const;
export const TOKEN_ACTIONS = [
  'GENERATE_DATAPLANE_TOKEN',
  'GENERATE_USER_TOKEN',
  'GENERATE_ZONE_CP_TOKEN',
  'GENERATE_ZONE_TOKEN',
] as const;

export const ACTIONS = [...RESOURCE_ACTIONS, ...INSPECT_ACTIONS, ...TOKEN_ACTIONS] as const;
export type Action = (typeof ACTIONS)[number];

const ACTION_SET: ReadonlySet<string> = new Set(ACTIONS);
const TOKEN_ACTION_SET: ReadonlySet<string> = new Set(TOKEN_ACTIONS);

export function isAction(value: string): value is Action {
  return ACTION_SET.has(value);
}

/** Token actions concern a token; every other action concerns a resource. */
export function isTokenAction(action: Action): boolean {
  return TOKEN_ACTION_SET.has(action);
}
