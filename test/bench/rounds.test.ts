// How `make bench` turns rounds into one row and one ratio per target (bench/rounds.ts).
import { expect } from 'chai';
import { combineRounds, median, parseRounds, representative, roundRatio } from '../../bench/rounds';
import { emptyResult, type ScenarioResult } from '../../bench/report';

function round(id: string, eventsPerSec: number | null, extra: Partial<ScenarioResult> = {}): ScenarioResult {
  return { ...emptyResult(id, id), eventsPerSec, ...extra };
}

describe('bench rounds', () => {
  it('median: the middle value, the lower middle one for an even count', () => {
    expect(median([])).to.equal(null);
    expect(median([5])).to.equal(5);
    expect(median([3, 1, 2])).to.equal(2);
    expect(median([4, 1, 3, 2])).to.equal(2);
  });

  it('a scenario is shown by its median round, or by a failed round when there is one', () => {
    const rounds = [round('s1', 300), round('s1', 100), round('s1', 200)];
    expect(representative(rounds)).to.equal(rounds[2]);
    const failedCheck = round('s1', 400, { check: { ok: false } as ScenarioResult['check'] });
    expect(representative([...rounds, failedCheck])).to.equal(failedCheck);
    const errored = round('s1', null, { errors: ['boom'] });
    expect(representative([rounds[0], errored])).to.equal(errored);
  });

  it('compares round by round and takes the median ratio: one slow round of one side does not decide', () => {
    // Round 2 ran while the machine was slow for s1 only: its ratio is the odd one out.
    const naive = [round('naive', 100), round('naive', 100), round('naive', 80)];
    const s1 = [round('s1', 130), round('s1', 60), round('s1', 104)];
    const r = roundRatio(s1, naive);
    expect(r.perRound).to.deep.equal([1.3, 0.6, 1.3]);
    expect(r.ratio).to.equal(1.3);
  });

  it('compares with a scenario run once (the floor) through the round both ran, the first', () => {
    const s1 = [round('s1', 300), round('s1', 100), round('s1', 200)];
    expect(roundRatio(s1, [round('floor', 400)])).to.deep.equal({ ratio: 0.75, perRound: [0.75] });
  });

  it('BENCH_ROUNDS: a whole number from 1 to 9; unset or empty is the default', () => {
    expect(parseRounds(undefined, 3)).to.equal(3);
    expect(parseRounds(' ', 3)).to.equal(3);
    expect(parseRounds('1', 3)).to.equal(1);
    expect(parseRounds('9', 3)).to.equal(9);
    for (const bad of ['0', '10', 'three', '2.5', '-1', '1e3', 'Infinity']) {
      expect(() => parseRounds(bad, 3), bad).to.throw(`BENCH_ROUNDS must be a whole number from 1 to 9, got "${bad}"`);
    }
  });

  it('one row for the rounds: the median one, every round listed, every failure kept', () => {
    const ok = [round('s1', 300), round('s1', 100), round('s1', 200)];
    const row = combineRounds(ok);
    expect(row.eventsPerSec).to.equal(200);
    expect(row.notes[0]).to.equal(
      '3 rounds: 300/s, 100/s, 200/s; the columns are from the median one (x floor and x naive: medians of round-by-round ratios)',
    );
    expect(ok[2].notes).to.deep.equal([]); // the rounds themselves are left as they were
    // A round that errored and another whose check failed: both count, whichever is shown.
    const broken = { ok: false } as ScenarioResult['check'];
    const mixed = [
      round('s1', 300),
      round('s1', null, { errors: ['sidecar exited'] }),
      round('s1', 200, { check: broken }),
    ];
    const shown = combineRounds(mixed);
    expect(shown.eventsPerSec).to.equal(null);
    expect(shown.errors).to.deep.equal(['sidecar exited']);
    expect(shown.check).to.equal(broken);
    expect(shown.notes[0]).to.contain('the columns are from the failed one');
    // The lower middle of an even count.
    expect(combineRounds([round('s1', 300), round('s1', 100)]).eventsPerSec).to.equal(100);
    expect(combineRounds([ok[0]])).to.equal(ok[0]);
  });

  it('has no ratio when a side did not run or a round failed', () => {
    expect(roundRatio(undefined, [round('a', 1)]).ratio).to.equal(null);
    expect(roundRatio([round('a', 1)], [])).to.deep.equal({ ratio: null, perRound: [] });
    expect(roundRatio([round('a', 1), round('a', null)], [round('b', 1), round('b', 1)]).ratio).to.equal(null);
  });
});
