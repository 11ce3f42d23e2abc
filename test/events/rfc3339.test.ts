import { expect } from 'chai';
import { parseRfc3339 } from '../../src/events/rfc3339';

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
