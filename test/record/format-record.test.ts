import { expect } from 'chai';
import { parseRfc3339 } from '../../src/events/rfc3339';
import { RecordDateFormatter } from '../../src/record/dates';
import { formatRecord } from '../../src/record/format-record';
import { reasonOf, validateEvent } from '../../src/events/validate-event';
import type { AuditEvent } from '../../src/events/event';

const plus2h = new RecordDateFormatter(() => 120);
const utc = new RecordDateFormatter(() => 0);

function line(raw: AuditEvent, dates = plus2h): string {
  const check = validateEvent(raw, Date.parse('2030-01-01T00:00:00Z'));
  if (!check.ok) throw new Error(reasonOf(check));
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
    );
    expect(check.ok && formatRecord(check.event, utc)).to.match(/^\{"date":"2030-01-02T03:04:05Z"/);
  });
});

describe('RFC 3339 parsing', () => {
  const table: Array<[string, number]> = [
    ['2022-09-21T09:31:42Z', Date.parse('2022-09-21T09:31:42Z')],
    ['2022-09-21t09:31:42z', Date.parse('2022-09-21T09:31:42Z')],
    ['2022-09-21T09:31:42.123456789+02:00', Date.parse('2022-09-21T07:31:42.123Z')],
    ['2022-09-21 09:31:42-01:30', Date.parse('2022-09-21T11:01:42Z')],
  ];
  for (const [text, ms] of table) it(`reads ${text}`, () => expect(parseRfc3339(text)).to.equal(ms));
  for (const bad of [
    '2022-09-21',
    'Sep 21 2022',
    '2022-13-01T00:00:00Z',
    '2022-09-21T09:31:42',
    '2022-09-21T25:00:00Z',
    '',
  ]) {
    it(`refuses "${bad}"`, () => expect(Number.isNaN(parseRfc3339(bad))).to.equal(true));
  }
});
