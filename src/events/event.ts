// An action the control plane executed, as the sidecar sees it after decoding (spec sections 1 and 3).
// Plain data, no gRPC types: the server converts its messages into this shape.

export interface EventResource {
  type: string;
  name: string;
  /** Empty for a global-scoped resource. */
  mesh: string;
}

export interface EventClaims {
  mesh?: string;
  tags?: Record<string, string>;
  name?: string;
  groups?: string[];
  zone?: string;
  scope?: string[];
}

export interface EventToken {
  id: string;
  /** RFC 3339, or empty. */
  expiresAt: string;
  claims?: EventClaims;
}

export interface EventUser {
  name: string;
  groups: string[];
}

/** The event as received: every field may be missing or wrong until validated. */
export interface AuditEvent {
  id?: string;
  /** RFC 3339; empty: receipt time. */
  date?: string;
  action?: string;
  resource?: EventResource | null;
  token?: EventToken | null;
  user?: EventUser | null;
}
