import { expect } from 'chai';
import { STREAM_NAME, SUBJECT_TOKEN } from '../../src/config/nats-names';

describe('the names NATS takes (src/config/nats-names.ts)', () => {
  it('takes a subject token without a separator, a wildcard or whitespace, of 1 to 253 characters', () => {
    const table: Array<[string, boolean]> = [
      ['zone-1', true],
      ['cp_0', true],
      ['Zone:1', true],
      ['x'.repeat(253), true],
      ['x'.repeat(254), false],
      ['', false],
      ['eu.west', false],
      ['zone*', false],
      ['zone>', false],
      ['zone 1', false],
      ['zone\t1', false],
    ];
    for (const [token, ok] of table) expect(SUBJECT_TOKEN.test(token), JSON.stringify(token)).to.equal(ok);
  });

  it("takes a stream name of 1 to 255 letters, digits, '-' or '_'", () => {
    const table: Array<[string, boolean]> = [
      ['MESHAUDIT', true],
      ['audit_eu-1', true],
      ['A'.repeat(255), true],
      ['A'.repeat(256), false],
      ['', false],
      ['A.B', false],
      ['a b', false],
      ['A/B', false],
      ['AUDIT!', false],
      ['A*', false],
    ];
    for (const [name, ok] of table) expect(STREAM_NAME.test(name), name).to.equal(ok);
  });
});
