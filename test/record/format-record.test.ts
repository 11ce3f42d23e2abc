import { expect } from 'chai';
import { parseRfc3339 } from '../../src/events/rfc3339';
import { RECORD_KEYS } from '../../src/record/keys';
import { RecordDateFormatter } from '../../src/record/dates';
import { formatRecord } from '../../src/record/format-record';
import { defaultLimits } from '../../src/config/load';
import { validateEvent } from '../../src/events/validate-event';
import { formatWithin } from '../../src/validators';
import type { AuditEvent } from '../../src/events/event';

const plus2h = new RecordDateFormatter(() => 120);
const utc = new RecordDateFormatter(() => 0);

function line(raw: AuditEvent, dates = plus2h): string {
  const check = validateEvent(raw, Date.parse('2030-01-01T00:00:00Z'), defaultLimits());
  if (!check.ok) throw new Error(formatWithin(check));
  return formatRecord(check.event, dates);
}

const user = { name: 'john.doe@kuma.io', groups: ['team-a'] };

describe('audit record format', () => {
  it('matches the spec example for a resource action byte for byte', () => {
    expect(
      line({
        date: '2022-09-21T09:31:42+02:00',
        action: 'UPDATE',
        resource: { type: 'TrafficPermission', name: 'web-to-backend', mesh: 'default' },
        user,
      }),
    ).to.equal(
      '{"date":"2022-09-21T09:31:42+02:00","action":"UPDATE","resource":{"name":"web-to-backend","mesh":"default","type":"TrafficPermission"},"user":{"name":"john.doe@kuma.io","groups":["team-a"]}}\n',
    );
  });

  it('matches the spec example for a dataplane token byte for byte', () => {
    expect(
      line({
        date: '2022-09-21T07:31:42Z',
        action: 'GENERATE_DATAPLANE_TOKEN',
        token: {
          id: '0e120ec9-6b42-495d-9758-07b59fe86fb9',
          expiresAt: '2022-09-22T09:31:42+02:00',
          claims: { mesh: 'default', tags: { 'kuma.io/service': 'backend' } },
        },
        user,
      }),
    ).to.equal(
      '{"date":"2022-09-21T09:31:42+02:00","action":"GENERATE_DATAPLANE_TOKEN","token":{"id":"0e120ec9-6b42-495d-9758-07b59fe86fb9","expiresAt":"2022-09-22T09:31:42+02:00","claims":{"mesh":"default","tags":{"kuma.io/service":"backend"}}},"user":{"name":"john.doe@kuma.io","groups":["team-a"]}}\n',
    );
  });

  it('leaves mesh out of a global-scoped resource', () => {
    expect(
      line(
        { date: '2022-09-21T09:31:42Z', action: 'CREATE', resource: { type: 'Mesh', name: 'demo', mesh: '' }, user },
        utc,
      ),
    ).to.equal(
      '{"date":"2022-09-21T09:31:42Z","action":"CREATE","resource":{"name":"demo","type":"Mesh"},"user":{"name":"john.doe@kuma.io","groups":["team-a"]}}\n',
    );
  });

  it('writes Z for a zero offset and truncates fractions of a second', () => {
    expect(utc.format(parseRfc3339('2022-09-21T09:31:42.999999Z'))).to.equal('2022-09-21T09:31:42Z');
    expect(new RecordDateFormatter(() => -330).format(parseRfc3339('2022-09-21T09:31:42.5Z'))).to.equal(
      '2022-09-21T04:01:42-05:30',
    );
  });

  it('uses the offset in force at each instant (daylight saving time)', () => {
    const paris = new RecordDateFormatter((ms) => (ms >= Date.parse('2022-03-27T01:00:00Z') ? 120 : 60));
    expect(paris.format(Date.parse('2022-03-27T00:59:59Z'))).to.equal('2022-03-27T01:59:59+01:00');
    expect(paris.format(Date.parse('2022-03-27T01:00:00Z'))).to.equal('2022-03-27T03:00:00+02:00');
  });

  it('sorts token tags by key and keeps only the claims the CP sent', () => {
    const out = line(
      {
        date: '2022-09-21T09:31:42Z',
        action: 'GENERATE_DATAPLANE_TOKEN',
        token: { id: 't1', expiresAt: '', claims: { mesh: 'm', tags: { zz: '1', aa: '2', 'kuma.io/service': 'b' } } },
        user,
      },
      utc,
    );
    expect(out).to.contain(
      '"token":{"id":"t1","claims":{"mesh":"m","tags":{"aa":"2","kuma.io/service":"b","zz":"1"}}}',
    );
  });

  it('writes user and zone token claims in a fixed order', () => {
    expect(
      line(
        {
          date: '2022-09-21T09:31:42Z',
          action: 'GENERATE_ZONE_TOKEN',
          token: { id: 'z', expiresAt: '', claims: { zone: 'east', scope: ['ingress', 'egress'] } },
          user,
        },
        utc,
      ),
    ).to.contain('"claims":{"zone":"east","scope":["ingress","egress"]}');
    expect(
      line(
        {
          date: '2022-09-21T09:31:42Z',
          action: 'GENERATE_USER_TOKEN',
          token: { id: 'u', expiresAt: '', claims: { name: 'ann', groups: ['ops'] } },
          user,
        },
        utc,
      ),
    ).to.contain('"claims":{"name":"ann","groups":["ops"]}');
  });

  it('escapes what JSON must escape, so every line parses', () => {
    const out = line(
      {
        date: '2022-09-21T09:31:42Z',
        action: 'DELETE',
        resource: { type: 'Secret', name: 'a"b\\c\nd', mesh: 'm' },
        user: { name: 'x\u2028y', groups: [] },
      },
      utc,
    );
    expect(out.endsWith('\n')).to.equal(true);
    expect(out.slice(0, -1)).not.to.contain('\n');
    expect(JSON.parse(out).resource.name).to.equal('a"b\\c\nd');
  });

  it('quotes strings exactly as JSON.stringify does, control characters and lone surrogates included', () => {
    for (const name of [
      'plain',
      'tab\there',
      'nul\u0000',
      'quote"',
      'back\\slash',
      'lone\ud800',
      'pair\ud83d\ude00',
      'line\u2028sep',
      'é',
    ]) {
      const out = line(
        {
          date: '2022-09-21T09:31:42Z',
          action: 'DELETE',
          resource: { type: 'Secret', name, mesh: '' },
          user: { name: 'u', groups: [] },
        },
        utc,
      );
      expect(out).to.contain(`"resource":{"name":${JSON.stringify(name)},"type":"Secret"}`);
    }
  });

  it('uses the receipt time when the CP sends no date', () => {
    const check = validateEvent(
      { action: 'DELETE', resource: { type: 'Secret', name: 's', mesh: 'm' }, user },
      Date.parse('2030-01-02T03:04:05.678Z'),
      defaultLimits(),
    );
    expect(check.ok && formatRecord(check.event, utc)).to.match(/^\{"date":"2030-01-02T03:04:05Z"/);
  });
});

describe('the record key order', () => {
  /** The keys of a parsed record and of every object in it, in the order they appear. */
  function keysOf(value: unknown, at: string, out: Map<string, string[]>): Map<string, string[]> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return out;
    out.set(at, Object.keys(value));
    for (const [k, v] of Object.entries(value)) if (at !== 'claims' || k !== 'tags') keysOf(v, k, out);
    return out;
  }

  it('is the table of src/record/keys.ts, in every object, when every optional key is present', () => {
    const resource = line({ action: 'UPDATE', resource: { type: 'Dataplane', name: 'dp', mesh: 'm' }, user });
    const token = line({
      action: 'GENERATE_DATAPLANE_TOKEN',
      token: {
        id: 't',
        expiresAt: '2030-01-02T00:00:00Z',
        claims: { mesh: 'm', tags: { a: 'b' }, name: 'n', groups: ['g'], zone: 'z', scope: ['s'] },
      },
      user,
    });
    const seen = keysOf(JSON.parse(token), 'record', keysOf(JSON.parse(resource), 'record', new Map()));
    const record = [...(keysOf(JSON.parse(resource), 'record', new Map()).get('record') ?? [])];
    const withToken = seen.get('record') ?? [];
    // A record holds resource or token: the table's order with the other one left out.
    expect(record).to.deep.equal(RECORD_KEYS.record.filter((k) => k !== 'token'));
    expect(withToken).to.deep.equal(RECORD_KEYS.record.filter((k) => k !== 'resource'));
    for (const object of ['resource', 'token', 'claims', 'user'] as const) {
      expect(seen.get(object), object).to.deep.equal([...RECORD_KEYS[object]]);
    }
  });
});
