import { expect } from 'chai';
import { rotatedName, timeFromName } from '../../../src/backends/file/rotation-names';

const T = new Date(Date.UTC(2021, 5, 7, 9, 15, 18, 265)); // 2021-06-07T09:15:18.265Z

describe('rotatedName', () => {
  const table: Array<[string, string]> = [
    ['audit.log', 'audit-2021-06-07T09-15-18.265.log'],
    ['audit.logs', 'audit-2021-06-07T09-15-18.265.logs'],
    ['audit', 'audit-2021-06-07T09-15-18.265'],
    ['a.b.log', 'a.b-2021-06-07T09-15-18.265.log'],
  ];
  for (const [active, rotated] of table) {
    it(`names ${active} rotated at 09:15:18.265 UTC ${rotated}`, () => {
      expect(rotatedName(active, T, 1)).to.equal(rotated);
    });
  }

  it('writes the time in UTC whatever the local zone', () => {
    // 23:59:59.999 UTC is the next day in every zone east of Greenwich: the name must not follow it.
    expect(rotatedName('audit.log', new Date(Date.UTC(2021, 11, 31, 23, 59, 59, 999)), 1)).to.equal(
      'audit-2021-12-31T23-59-59.999.log',
    );
  });

  it('adds (index - 1) ms for a later attempt in the same millisecond, carrying into seconds', () => {
    const t = new Date(Date.UTC(2021, 5, 7, 9, 15, 18, 999));
    expect(rotatedName('audit.log', t, 2)).to.equal('audit-2021-06-07T09-15-19.000.log');
    expect(rotatedName('audit.log', T, 5)).to.equal('audit-2021-06-07T09-15-18.269.log');
  });

  it('gives names that sort in time order and parse back to their time', () => {
    const names = [1, 2, 3, 10, 999].map((i) => rotatedName('audit.log', T, i));
    expect([...names].sort()).to.deep.equal(names);
    expect(names.map((n) => timeFromName('audit.log', n)!.getTime() - T.getTime())).to.deep.equal([0, 1, 2, 9, 998]);
  });
});

describe('timeFromName', () => {
  // After lumberjack's TestTimeFromName.
  const table: Array<{ active: string; name: string; want: Date | undefined }> = [
    { active: 'audit.log', name: 'audit-2021-06-07T09-15-18.265.log', want: T },
    { active: 'audit.logs', name: 'audit-2021-06-07T09-15-18.265.logs', want: T },
    { active: 'audit', name: 'audit-2021-06-07T09-15-18.265', want: T },
    { active: 'a.b.log', name: 'a.b-2021-06-07T09-15-18.265.log', want: T },
    { active: 'audit.log', name: 'audit.log', want: undefined }, // the active file itself
    { active: 'audit.log', name: 'audit-2021-06-07T09-15-18.265.logs', want: undefined }, // wrong ext
    { active: 'audit.logs', name: 'audit-2021-06-07T09-15-18.265.log', want: undefined }, // wrong ext
    { active: 'audit.log', name: 'audit-2021-06-07T09-15-18.265', want: undefined }, // no ext
    { active: 'audit', name: 'audit-2021-06-07T09-15-18.265.log', want: undefined }, // extra ext
    { active: 'audit.log', name: 'foo-2021-06-07T09-15-18.265.log', want: undefined }, // wrong prefix
    { active: 'audit.log', name: 'audits-2021-06-07T09-15-18.265.log', want: undefined }, // wrong prefix
    { active: 'audit.log', name: 'audit2021-06-07T09-15-18.265.log', want: undefined }, // no dash
    { active: 'audit.log', name: 'audit-2021-06-07T09:15:18.265.log', want: undefined }, // colons
    { active: 'audit.log', name: 'audit-2021-06-07T09-15-18.log', want: undefined }, // no millis
    { active: 'audit.log', name: 'audit-2021-06-07T09-15-18.2650.log', want: undefined }, // too long
    { active: 'audit.log', name: 'audit-2021-02-30T09-15-18.265.log', want: undefined }, // no such day
    { active: 'audit.log', name: 'audit-2021-06-07T25-15-18.265.log', want: undefined }, // no such hour
    { active: 'audit.log', name: 'audit-2021-06-07T09-15-18.2x5.log', want: undefined }, // not digits
    { active: 'audit.log', name: 'audit-x-2021-06-07T09-15-18.265.log', want: undefined }, // another name
    { active: 'audit.log', name: 'audit-2021-06-07T09-15-18.265.log.gz', want: undefined }, // compressed by someone else
  ];
  for (const { active, name, want } of table) {
    it(`${want ? 'reads' : 'rejects'} ${name} for active file ${active}`, () => {
      const got = timeFromName(active, name);
      if (want === undefined) expect(got).to.equal(undefined);
      else expect(got?.toISOString()).to.equal(want.toISOString());
    });
  }
});
