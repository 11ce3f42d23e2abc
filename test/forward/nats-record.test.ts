import { expect } from 'chai';
import {
  comparePositions,
  formatPosition,
  kindOfAction,
  parsePosition,
  parseSubject,
  type RecordFields,
  recordFields,
  STREAM_SUBJECTS,
  subjectOf,
  subjectsOf,
} from '../../src/forward/nats-record';

describe('a record as a JetStream message (src/forward/nats-record.ts)', () => {
  it('names a subject per kind: meshaudit.<zone>.<instance>.<kind>', () => {
    expect(subjectsOf('zone-1', 'cp-0')).to.deep.equal({
      resource: 'meshaudit.zone-1.cp-0.resource',
      token: 'meshaudit.zone-1.cp-0.token',
      view: 'meshaudit.zone-1.cp-0.view',
    });
    expect(subjectOf('zone-1', '*', 'token')).to.equal('meshaudit.zone-1.*.token');
    expect(STREAM_SUBJECTS).to.equal('meshaudit.>');
  });

  it('reads the tokens of a subject of the contract back, and no other subject', () => {
    const table: Array<[string, ReturnType<typeof parseSubject>]> = [
      ['meshaudit.zone-1.cp-0.resource', { zone: 'zone-1', instance: 'cp-0', kind: 'resource' }],
      ['meshaudit.zone-1.cp-0', undefined],
      ['meshaudit.zone-1.cp-0.view.more', undefined],
      ['audit.zone-1.cp-0.view', undefined],
    ];
    for (const [subject, tokens] of table) expect(parseSubject(subject), subject).to.deep.equal(tokens);
  });

  it('names the kind of each action, and none for an action it does not know', () => {
    const table: Array<[string, string | undefined]> = [
      ['DELETE', 'resource'],
      ['GENERATE_USER_TOKEN', 'token'],
      ['VIEW_CLUSTERS', 'view'],
      ['DELET', undefined],
      ['', undefined],
    ];
    for (const [action, kind] of table) expect(kindOfAction(action), action).to.equal(kind);
  });

  const cases: Array<{ name: string; line: string; want: RecordFields | undefined }> = [
    {
      name: 'a resource change',
      line: '{"date":"2022-09-21T07:31:42Z","action":"UPDATE","resource":{"name":"web","mesh":"default","type":"Mesh"}}',
      want: { date: '2022-09-21T07:31:42Z', kind: 'resource' },
    },
    {
      name: 'a token',
      line: '{"date":"2022-09-21T09:31:42+02:00","action":"GENERATE_ZONE_TOKEN","token":{}}',
      want: { date: '2022-09-21T09:31:42+02:00', kind: 'token' },
    },
    {
      name: 'an inspection',
      line: '{"date":"2022-09-21T07:31:42Z","action":"VIEW_CONFIG_DUMP","resource":{}}',
      want: { date: '2022-09-21T07:31:42Z', kind: 'view' },
    },
    {
      name: 'keys in another order (parsed whole)',
      line: '{"action":"DELETE","date":"2022-09-21T07:31:42Z"}',
      want: { date: '2022-09-21T07:31:42Z', kind: 'resource' },
    },
    { name: 'an unknown action', line: '{"date":"2022-09-21T07:31:42Z","action":"CREAT"}', want: undefined },
    { name: 'no date', line: '{"action":"CREATE"}', want: undefined },
    { name: 'not JSON', line: 'garbage', want: undefined },
    { name: 'a cut line', line: '{"date":"2022-09-21T07:31:42Z","acti', want: undefined },
  ];
  for (const c of cases) {
    it(`reads the date and kind of ${c.name}`, () => {
      // Inside a larger buffer, as the follower hands lines over.
      const data = Buffer.from(`xx\n${c.line}\n{"date":"other"}`);
      const out: RecordFields = { date: '', kind: 'view' };
      const found = recordFields(data, 3, 3 + Buffer.byteLength(c.line), out);
      expect(found ? out : undefined).to.deep.equal(c.want);
    });
  }

  it('orders positions by file start, then offset, and reads back what it writes', () => {
    expect(formatPosition(1765000000123, 4096)).to.equal('1765000000123.4096');
    expect(parsePosition('1765000000123.4096')).to.deep.equal({ startMs: 1765000000123, offset: 4096 });
    for (const bad of [undefined, '', '1.2.3', '-1.2', '1.', 'a.b', '99999999999999999.1']) {
      expect(parsePosition(bad), String(bad)).to.equal(undefined);
    }
    expect(comparePositions({ startMs: 1, offset: 900 }, { startMs: 2, offset: 0 })).to.equal(-1);
    expect(comparePositions({ startMs: 2, offset: 10 }, { startMs: 2, offset: 9 })).to.equal(1);
    expect(comparePositions({ startMs: 2, offset: 10 }, { startMs: 2, offset: 10 })).to.equal(0);
  });
});
