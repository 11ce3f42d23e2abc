// A validated event: every field present and checked, ready to match and format.
import type { Action } from '../rules/actions';
import type { EventClaims, EventResource, EventUser } from './event';

export interface ValidToken {
  id: string;
  /** Epoch ms, or undefined when the CP sent no expiry. */
  expiresAtMs: number | undefined;
  claims: EventClaims;
}

export interface ValidEvent {
  /** When the CP executed the action (or when it was received), epoch ms. */
  dateMs: number;
  action: Action;
  resource: EventResource | null;
  token: ValidToken | null;
  user: EventUser;
}
