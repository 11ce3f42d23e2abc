// The record's keys, in the order they are written (spec section 3): the one table that both ways of
// writing a record take their keys from. The reference formatter walks it; the plain byte path builds
// its fixed fragments from it (test/record/plain-record.test.ts holds the two to the same bytes).

export const RECORD_KEYS = {
  record: ['date', 'action', 'resource', 'token', 'user'],
  resource: ['name', 'mesh', 'type'],
  token: ['id', 'expiresAt', 'claims'],
  claims: ['mesh', 'tags', 'name', 'groups', 'zone', 'scope'],
  user: ['name', 'groups'],
} as const;

/** An object of the record: the record itself, or one nested in it. */
export type RecordObject = keyof typeof RECORD_KEYS;
export type KeyOf<O extends RecordObject> = (typeof RECORD_KEYS)[O][number];

/** `"name":`, for a key of `object` (a key the table does not have is a type error). */
export function key<O extends RecordObject>(_object: O, name: KeyOf<O>): string {
  return `"${name}":`;
}
