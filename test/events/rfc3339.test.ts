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

    it('reads what parseRfc3339 reads on random and adversarial bytes, one parser throughout', () => {
      // Seeded, so a failure names a text that fails again.
      let seed = 20;
      const below = (n: number) => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return (seed >>> 8) % n;
      };
      const pick = <T>(xs: readonly T[]): T => xs[below(xs.length)];
      const digits = (n: number) => Array.from({ length: n }, () => String(below(10))).join('');
      const two = (max: number) => String(below(max + 1)).padStart(2, '0');
      const separators = ['T', 't', ' ', '_', 'TT'];
      const zones = ['Z', 'z', '+02:00', '-01:30', '+14:00', '+24:00', '-00:00', '+0200', '+02', 'Zz', '', ' Z', 'UTC'];
      // Bytes spliced in anywhere: a second fraction, a stray digit or sign, non-ASCII, NUL, a letter.
      const strays = [
        '.',
        '.5',
        '.123',
        '..',
        '0',
        '9',
        '+',
        '-',
        ':',
        'Z',
        'T',
        '\u00e9',
        '\u00b9',
        '\u0000',
        '\u00ff',
        'x',
      ];
      const parser = new Rfc3339Parser();
      const mismatches: string[] = [];
      let times = 0;
      for (let i = 0; i < 200_000 && mismatches.length < 5; i++) {
        // Alternating seconds keep the parser's memory switching between hits and misses.
        const year = pick(['2022', '2024', '1969', '1970', '0000', '9999', digits(4)]);
        const second = below(4) === 0 ? pick(['59', '60', '61', '00']) : two(1) === '00' ? '42' : '43';
        const fraction = below(5) === 0 ? '' : `.${digits(below(13))}`;
        let text = `${year}-${two(13)}-${two(32)}${pick(separators)}${two(24)}:${two(60)}:${second}${fraction}${pick(zones)}`;
        if (below(3) === 0) {
          const at = below(text.length + 1);
          text = text.slice(0, at) + pick(strays) + text.slice(at + below(2));
        }
        if (below(10) === 0) text = text.slice(0, 19 + below(22));
        const bytes = Buffer.from(`\u00e9${text}.5`, 'latin1');
        const got = parser.parseBytes(bytes, 1, 1 + text.length);
        const want = parseRfc3339(text);
        if (!Number.isNaN(want)) times++;
        if (!Object.is(got, want)) mismatches.push(`${JSON.stringify(text)}: ${got}, parseRfc3339 ${want}`);
      }
      expect(mismatches).to.deep.equal([]);
      // The inputs are not all refused: the sum of the second and the fraction is compared too.
      expect(times).to.be.above(10_000);
    });
  });
});
