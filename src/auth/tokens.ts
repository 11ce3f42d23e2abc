// Bearer tokens: random, shown once, stored only as their SHA-256 (meshaudit.auth.tokensFile). A
// token is 32 random bytes: a hash of it cannot be turned back by guessing, so no slow hash is needed.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
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

/** The principal of the entry whose hash is the presented token's; compared in constant time. */
export function tokenPrincipal(entries: readonly TokenEntry[], presented: string): Principal | undefined {
  const hash = Buffer.from(tokenHash(presented), 'hex');
  let found: TokenEntry | undefined;
  for (const entry of entries) {
    const stored = Buffer.from(entry.sha256, 'hex');
    // Every entry is compared, so that the time taken does not tell which one (or whether one) matched.
    if (stored.length === hash.length && timingSafeEqual(stored, hash) && found === undefined) found = entry;
  }
  if (found === undefined) return undefined;
  return {
    name: found.name,
    groups: found.groups,
    ...(found.zones === undefined ? {} : { zones: found.zones }),
    via: 'token',
  };
}
