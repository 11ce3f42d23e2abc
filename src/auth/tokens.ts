// Bearer tokens: random, shown once, stored only as their SHA-256 (meshaudit.auth.tokensFile). A
// token is 32 random bytes: a hash of it cannot be turned back by guessing, so no slow hash is needed.
import { createHash, randomBytes } from 'node:crypto';
import type { Principal } from './principal';

/** Marks a meshaudit token, so that a secret scanner (or a person) can tell what leaked. */
export const TOKEN_PREFIX = 'mat_';

/** One line of the tokens file. */
export interface TokenEntry {
  readonly name: string;
  readonly groups: readonly string[];
  /** The zones it may stream for; absent: any zone. */
  readonly zones?: readonly string[];
  /** Hex SHA-256 of the token. */
  readonly sha256: string;
}

/** A new token: `mat_` and 43 characters of base64url (256 random bits). */
export function newToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Whether `sha256` is a hex SHA-256 as tokenHash() writes it. */
export function isTokenHash(sha256: string): boolean {
  return /^[0-9a-f]{64}$/.test(sha256);
}

/**
 * The tokens by hash, each with its principal, made once per read of the file. A call costs one SHA-256
 * and one lookup, however many tokens there are. Looking up by the hash of what the caller sent tells
 * it nothing by its timing: it cannot choose the hash it would have to guess.
 */
export type TokenIndex = ReadonlyMap<string, Principal>;

export function indexTokens(entries: readonly TokenEntry[]): TokenIndex {
  return new Map(
    entries.map((e) => [
      e.sha256,
      Object.freeze({
        name: e.name,
        groups: e.groups,
        ...(e.zones === undefined ? {} : { zones: e.zones }),
        via: 'token',
      }),
    ]),
  );
}

/** The principal of the presented token, or undefined when it is not one of `index`. */
export function tokenPrincipal(index: TokenIndex, presented: string): Principal | undefined {
  return index.get(tokenHash(presented));
}
