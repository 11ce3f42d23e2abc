// The benchmark's workload (bench/events.ts): how its events are dated.
import { expect } from 'chai';
import * as fs from 'node:fs';
import { cachedStream, loadCodec, makeEvent } from '../../bench/events';
import { parseRfc3339 } from '../../src/events/rfc3339';
import { tempDir } from '../support/helpers';

/** Nanoseconds since 2024-05-01T10:00:00Z of an RFC 3339 date, exactly (parseRfc3339 keeps milliseconds). */
function nsOf(date: string): number {
  const m = /^(.*:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(date);
  if (m === null) throw new Error(`not a date: ${date}`);
  const seconds = (parseRfc3339(`${m[1]}${m[3]}`) - Date.UTC(2024, 4, 1, 10, 0, 0)) / 1000;
  return seconds * 1e9 + Number((m[2] ?? '').padEnd(9, '0'));
}

describe('bench workload dates', function () {
  this.timeout(20_000); // 300k dates checked: ~1.5 s here, more on a busy machine

  it('stamps each event with its own RFC 3339 date with a fraction, 3 to 27 µs after the previous one', () => {
    for (const stream of [0, 1, 2]) {
      let last = makeEvent(stream, 1).date as string;
      for (let seq = 2; seq <= 100_000; seq++) {
        const date = makeEvent(stream, seq).date as string;
        const step = nsOf(date) - nsOf(last);
        if (!(step > 3000 && step < 27_000) || Number.isNaN(parseRfc3339(date))) {
          expect.fail(`stream ${stream} seq ${seq}: ${last} then ${date} (${step} ns)`);
        }
        last = date;
      }
    }
    expect(makeEvent(0, 9).date).to.equal('2024-05-01T10:00:00.000139587Z');
    expect(makeEvent(1, 9).date).to.equal('2024-05-01T12:00:00.00014292+02:00'); // trailing zero dropped
  });

  it('is deterministic, and gives a token a whole-second expiry a day later in the same offset', () => {
    expect(makeEvent(3, 12_345)).to.deep.equal(makeEvent(3, 12_345));
    expect((makeEvent(1, 19).token as { expiresAt: string }).expiresAt).to.equal('2024-05-02T12:00:00+02:00');
  });

  it('shares one whole-second date among 1,000 consecutive events in whole-second mode (scenario s1w)', () => {
    const dates = new Set<string>();
    for (let seq = 1000; seq < 3000; seq++) dates.add(makeEvent(0, seq, 'whole-second').date as string);
    expect([...dates]).to.deep.equal(['2024-05-01T10:00:01Z', '2024-05-01T10:00:02Z']);
    expect(makeEvent(5, 1999, 'whole-second').date).to.equal('2024-05-01T10:00:01Z');
  });

  it('caches the encoded streams of the two date modes apart', () => {
    const dir = tempDir('meshaudit-bench-events-');
    try {
      const codec = loadCodec();
      const perEvent = cachedStream(dir, codec, 0, 1000, 100, 'per-event');
      const wholeSecond = cachedStream(dir, codec, 0, 1000, 100, 'whole-second');
      expect(fs.readdirSync(dir).sort()).to.deep.equal([
        'stream-0-1000-100-per-event.bin',
        'stream-0-1000-100-whole-second.bin',
      ]);
      expect(Buffer.concat(perEvent).equals(Buffer.concat(wholeSecond))).to.equal(false);
      // Read back from the cache, byte for byte.
      expect(Buffer.concat(cachedStream(dir, codec, 0, 1000, 100, 'per-event'))).to.deep.equal(Buffer.concat(perEvent));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
