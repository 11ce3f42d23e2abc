// The AccessAudit resource (spec section 2), after parsing and before compilation.
import type { Action } from './actions';

/** One rule: every field optional; the fields of one rule are ANDed. */
export interface AccessAuditRule {
  /** Resource types covered; empty: every type except the skip list (and every token action). */
  readonly types: readonly string[];
  /** Only actions within this mesh; empty string: any mesh, including none. */
  readonly mesh: string;
  /** Actions covered, unless accessAll. */
  readonly access: readonly Action[];
  /** Every action; wins over access when both are set. */
  readonly accessAll: boolean;
}

/** A global-scoped AccessAudit resource. */
export interface AccessAudit {
  readonly name: string;
  readonly rules: readonly AccessAuditRule[];
}

declare const validated: unique symbol;

/**
 * An AccessAudit as validation returns it: normalised, every check passed. Only parseAccessAudit and
 * validateAccessAudit make one, so what takes it (the store's apply and seed) need not validate again.
 */
export type ValidAccessAudit = AccessAudit & { readonly [validated]: true };
