import { expect } from 'chai';
import {
  DEFAULT_FIELD_CHARS as MAX_FIELD_CHARS,
  DEFAULT_LIST_ENTRIES as MAX_LIST_ENTRIES,
} from '../../src/config/defaults';
import { defaultLimits } from '../../src/config/load';
import { validateEvent } from '../../src/events/validate-event';
import { formatWithin } from '../../src/validators';
import type { AuditEvent } from '../../src/events/event';

const user = { name: 'ann', groups: [] };
const resource = { type: 'TrafficRoute', name: 'r', mesh: 'default' };
const token = { id: 't', expiresAt: '', claims: { mesh: 'default' } };
const long = 'x'.repeat(MAX_FIELD_CHARS + 1);
const LIMITS = defaultLimits();

describe('event validation', () => {
  const table: Array<[string, AuditEvent, string]> = [
    ['a missing action', { resource, user }, 'action: is required'],
    [
      'an unknown action, with the nearest name',
      { action: 'CREAT', resource, user },
      'action: unknown action "CREAT", did you mean "CREATE"?',
    ],
    [
      'an unknown action with no near name',
      { action: 'FROBNICATE_EVERYTHING', resource, user },
      'action: unknown action "FROBNICATE_EVERYTHING"',
    ],
    [
      'resource and token both',
      { action: 'CREATE', resource, token, user },
      'token: not allowed with resource: set exactly one of them',
    ],
    ['neither resource nor token', { action: 'CREATE', user }, 'resource: is required for CREATE'],
    [
      'a token action without token',
      { action: 'GENERATE_DATAPLANE_TOKEN', resource: null, user },
      'token: is required for GENERATE_DATAPLANE_TOKEN',
    ],
    ['a resource action with a token', { action: 'VIEW_STATS', token, user }, 'resource: is required for VIEW_STATS'],
    [
      'a token action with a resource',
      { action: 'GENERATE_USER_TOKEN', resource, user },
      'token: is required for GENERATE_USER_TOKEN',
    ],
    [
      'a resource without type',
      { action: 'CREATE', resource: { ...resource, type: '' }, user },
      'resource.type: is required',
    ],
    [
      'a resource without name',
      { action: 'CREATE', resource: { ...resource, name: '' }, user },
      'resource.name: is required',
    ],
    [
      'an oversized resource name',
      { action: 'CREATE', resource: { ...resource, name: long }, user },
      `resource.name: must be at most ${MAX_FIELD_CHARS} characters, got ${MAX_FIELD_CHARS + 1}`,
    ],
    [
      'a token without id',
      { action: 'GENERATE_ZONE_TOKEN', token: { ...token, id: '' }, user },
      'token.id: is required',
    ],
    [
      'a bad expiry',
      { action: 'GENERATE_ZONE_TOKEN', token: { ...token, expiresAt: 'tomorrow' }, user },
      'token.expiresAt: not an RFC 3339 time: "tomorrow"',
    ],
    [
      'too many tags',
      {
        action: 'GENERATE_DATAPLANE_TOKEN',
        token: {
          ...token,
          claims: { tags: Object.fromEntries(Array.from({ length: MAX_LIST_ENTRIES + 1 }, (_, i) => [`k${i}`, 'v'])) },
        },
        user,
      },
      `token.claims.tags: must have at most ${MAX_LIST_ENTRIES} entries, got ${MAX_LIST_ENTRIES + 1}`,
    ],
    [
      'a missing user',
      { action: 'CREATE', resource },
      'user.name: is required (actions the CP does itself carry its own identity)',
    ],
    [
      'too many groups',
      { action: 'CREATE', resource, user: { name: 'a', groups: Array(MAX_LIST_ENTRIES + 1).fill('g') } },
      `user.groups: must have at most ${MAX_LIST_ENTRIES} entries, got ${MAX_LIST_ENTRIES + 1}`,
    ],
    [
      'an oversized group',
      { action: 'CREATE', resource, user: { name: 'a', groups: ['ok', long] } },
      `user.groups[1]: must be at most ${MAX_FIELD_CHARS} characters, got ${MAX_FIELD_CHARS + 1}`,
    ],
    [
      'a date that is not RFC 3339',
      { action: 'CREATE', resource, user, date: '21/09/2022' },
      'date: not an RFC 3339 time: "21/09/2022"',
    ],
  ];
  for (const [what, event, reason] of table) {
    it(`rejects ${what}`, () => {
      const check = validateEvent(event, 0, LIMITS);
      expect(check.ok ? 'accepted' : formatWithin(check)).to.equal(reason);
    });
  }

  it('keeps the field apart from the description, even when a tag key holds ": "', () => {
    const key = `a: ${'k'.repeat(MAX_FIELD_CHARS)}`;
    const check = validateEvent(
      { action: 'GENERATE_DATAPLANE_TOKEN', token: { ...token, claims: { tags: { [key]: 'v' } } }, user },
      0,
      LIMITS,
    );
    expect(check).to.deep.equal({
      ok: false,
      field: `token.claims.tags["${key.slice(0, 64)}..."]`,
      description: `must be at most ${MAX_FIELD_CHARS} characters, got ${key.length}`,
    });
  });

  it('accepts a resource action and defaults a missing mesh and groups', () => {
    const res = validateEvent(
      { action: 'CREATE', resource: { type: 'Zone', name: 'z' } as never, user: { name: 'a' } as never },
      5000,
      LIMITS,
    );
    expect(res).to.deep.equal({
      ok: true,
      event: {
        dateMs: 5000,
        action: 'CREATE',
        resource: { type: 'Zone', name: 'z', mesh: '' },
        token: null,
        user: { name: 'a', groups: [] },
      },
    });
  });
});
