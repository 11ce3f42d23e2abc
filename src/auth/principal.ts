// Who a caller is, and what its groups let it do. Pure: the transport (src/server) finds the principal
// from a certificate, a token or the socket it came by; this module only decides.

/** The group of the administrator: every permission by default (Kong Mesh's `mesh-system:admin`). */
export const ADMIN_GROUP = 'mesh-system:admin';
/** The group of control planes: they stream their events in. */
export const CONTROL_PLANE_GROUP = 'mesh-system:control-plane';
/** The user a loopback caller is, with no authentication configured (Kong Mesh's localhost rule). */
export const LOCALHOST_ADMIN = 'mesh-system:admin';

/** What a call needs (meshaudit.auth.permissions: each a list of groups). */
export const PERMISSIONS = ['stream', 'manageRules', 'read', 'admin'] as const;
export type Permission = (typeof PERMISSIONS)[number];
export type Permissions = Readonly<Record<Permission, readonly string[]>>;

/**
 * By default control planes stream, and the administrator does everything: the rules decide what an
 * audit trail holds, so changing or reading them is not a control plane's business.
 */
export const DEFAULT_PERMISSIONS: Permissions = Object.freeze({
  stream: Object.freeze([CONTROL_PLANE_GROUP, ADMIN_GROUP]),
  manageRules: Object.freeze([ADMIN_GROUP]),
  read: Object.freeze([ADMIN_GROUP]),
  admin: Object.freeze([ADMIN_GROUP]),
});

/** How a principal was identified. */
export type Credential = 'certificate' | 'token' | 'unix-socket' | 'localhost';

export interface Principal {
  /** The user a record of its changes names. */
  readonly name: string;
  readonly groups: readonly string[];
  /** The zones it may stream for; absent: any zone. */
  readonly zones?: readonly string[];
  /** The control-plane instances it may stream for; absent: any instance. */
  readonly instances?: readonly string[];
  readonly via: Credential;
}

/** Whether one of the principal's groups holds `permission`. */
export function holds(principal: Principal, permission: Permission, permissions: Permissions): boolean {
  const allowed = permissions[permission];
  return principal.groups.some((g) => allowed.includes(g));
}

/**
 * Whether the principal may stream for a control plane's identifier: its zones (and instances, where
 * they are named) cover it. A stream that claims another zone's identifier must not take its sequence.
 */
export function covers(principal: Principal, zone: string, instance: string): boolean {
  if (principal.zones !== undefined && !principal.zones.includes(zone)) return false;
  return principal.instances === undefined || principal.instances.includes(instance);
}

/**
 * Whether `host:port` (`127.0.0.1:5690`, `[::1]:5690`, `::ffff:127.0.0.1:40000`, `localhost:5690`) is
 * this host's loopback: the listen address the config allows without TLS, and the peer the localhost
 * rule admits. One rule for both, so that what the sidecar listens on and whom it trusts cannot differ.
 */
export function isLoopback(hostPort: string): boolean {
  const host = hostPort.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
