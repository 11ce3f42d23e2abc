import { expect } from 'chai';
import { jsonLogger, RateLimitedWarning } from '../src/log';

describe('the log', () => {
  it('says a repeating warning once per interval and key, and counts the ones it left out', () => {
    const lines: Array<Record<string, unknown>> = [];
    let now = 0;
    const warnings = new RateLimitedWarning(
      jsonLogger((l) => lines.push(JSON.parse(l))),
      10_000,
      () => now,
    );
    for (let i = 0; i < 5; i++) warnings.warn('a', 'refused', { i });
    warnings.warn('b', 'other');
    now = 10_000;
    warnings.warn('a', 'refused', { i: 5 });
    expect(lines.map(({ msg, i, alsoSince }) => ({ msg, i, alsoSince }))).to.deep.equal([
      { msg: 'refused', i: 0, alsoSince: undefined },
      { msg: 'other', i: undefined, alsoSince: undefined },
      { msg: 'refused', i: 5, alsoSince: 4 },
    ]);
  });
});
