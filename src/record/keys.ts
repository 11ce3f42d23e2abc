// The record's keys, in the order they are written (spec section 3): the one table that both ways of
// writing a record take their keys from. The reference formatter writes KEY's strings in the table's
// order (test/record/format-record.test.ts holds it to the table); the plain byte path builds its fixed
// fragments from them (test/record/plain-record.test.ts holds the two to the same bytes).

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

/** `"name":` for every key of every object, made once: KEY.resource.mesh is `"mesh":`. */
export const KEY = Object.fromEntries(
  Object.entries(RECORD_KEYS).map(([object, keys]) => [object, Object.fromEntries(keys.map((k) => [k, `"${k}":`]))]),
) as { readonly [O in RecordObject]: { readonly [K in KeyOf<O>]: string } };
