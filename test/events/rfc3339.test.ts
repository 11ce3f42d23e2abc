import { expect } from 'chai';
import { parseRfc3339, Rfc3339Parser } from '../../src/events/rfc3339';

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

  describe('from bytes, keyed on the second (Rfc3339Parser.parseBytes)', () => {
    // Each is parsed after the one before it by one parser: hits and misses of its memory alike.
    const texts = [
      '2022-09-21T09:31:42Z',
      '2022-09-21T09:31:42.5Z',
      '2022-09-21T09:31:42.123456789Z',
      '2022-09-21T09:31:42.12Z',
      '2022-09-21T09:31:42.123456789+02:00',
      '2022-09-21T09:31:42.9+02:00',
      '2022-09-21T09:31:43.000001+02:00',
      '2022-09-21t09:31:43.1z',
      '2022-09-21 09:31:43.1Z',
      '2022-09-21T09:31:43.1234567890Z',
      '2022-09-21T09:31:43.Z',
      '2022-09-21T09:31:43.1x2Z',
      '2022-09-21T09:31:43.1',
      '2022-09-21T09:31:43',
      '2022-09-21T09:31:43.1+0200',
      '2022-13-21T09:31:43.1Z',
      '2022-09-21T09:31:60.5Z',
      '1960-01-01T00:00:00.25Z',
      '2022-09-21T09:31:43.1\u00e9',
      '2022-09-21T09:31:42.7Z',
      '',
      '2022-09-21',
    ];
    it('reads each as parseRfc3339 reads its text, in any order', () => {
      const parser = new Rfc3339Parser();
      const bytes = (t: string) => Buffer.from(`xx${t}yy`, 'latin1');
      for (const order of [texts, [...texts].reverse(), [...texts, ...texts]]) {
        for (const t of order) {
          const got = parser.parseBytes(bytes(t), 2, 2 + Buffer.byteLength(t, 'latin1'));
          expect(Object.is(got, parseRfc3339(t)) || got === parseRfc3339(t), t).to.equal(true);
        }
      }
    });

    it('reads per-event times as a control plane stamps them, a second at a time', () => {
      const parser = new Rfc3339Parser();
      for (let ms = Date.UTC(2024, 4, 1, 9, 59, 58); ms < Date.UTC(2024, 4, 1, 10, 0, 2); ms += 7.3) {
        const text = `${new Date(Math.floor(ms)).toISOString().slice(0, 23)}${String(Math.round(ms * 1000) % 1_000_000).padStart(6, '0')}+02:00`;
        const b = Buffer.from(text);
        expect(parser.parseBytes(b, 0, b.length), text).to.equal(parseRfc3339(text));
      }
    });
  });
});
