// The soak's pure decisions (bench/soak-plan.ts): when the sidecar is killed, and whether its memory grew.
import { expect } from 'chai';
import { judgeMemory, killTimesS, type RssSample } from '../../bench/soak-plan';

/** A sample every 2 s over `lifeS` seconds, from `mb(atS)`. */
function samples(lifeS: number, mb: (atS: number) => number): RssSample[] {
  const out: RssSample[] = [];
  for (let atS = 0; atS <= lifeS; atS += 2) out.push({ atS, rssMb: mb(atS) });
  return out;
}

describe('soak plan', () => {
  it('kills the default 600 s run three times, so that its last process lives the last 300 s', () => {
    expect(killTimesS(600)).to.deep.equal([100, 200, 300]);
  });

  it('kills a short run once, and a long one about every two minutes', () => {
    expect(killTimesS(60)).to.deep.equal([12]);
    expect(killTimesS(120)).to.deep.equal([24]);
    expect(killTimesS(1800)).to.deep.equal([113, 225, 338, 450, 563, 675, 788, 900]);
  });

  it('compares the medians of the first minute after settling and the last minute', () => {
    // A sawtooth of +-5 MiB around 100 MiB, and a start-up spike that settling leaves out.
    const m = judgeMemory(
      samples(300, (t) => (t < 10 ? 300 : 100 + (t % 4 === 0 ? 5 : -5))),
      300,
    );
    expect(m.firstWindowS).to.deep.equal([10, 70]);
    expect(m.lastWindowS).to.deep.equal([240, 300]);
    // 16 troughs and 15 peaks in the first window, 15 and 16 in the last: the sawtooth's own amplitude.
    expect(m.firstMb).to.equal(95);
    expect(m.lastMb).to.equal(105);
    expect(m.growthMb).to.equal(10);
    expect(m.ok).to.equal(true);
  });

  it('fails growth past the larger of 16 MiB and 10%, and passes growth within it', () => {
    const grew = judgeMemory(
      samples(300, (t) => 100 + t / 10),
      300,
    );
    expect(grew.growthMb).to.be.closeTo(23, 0.5);
    expect(grew.toleranceMb).to.be.closeTo(16, 1e-9);
    expect(grew.ok).to.equal(false);
    const big = judgeMemory(
      samples(300, (t) => (t < 100 ? 400 : 430)),
      300,
    );
    expect(big.toleranceMb).to.equal(40);
    expect(big.ok).to.equal(true);
  });

  it('uses windows of a third of a short life, and fails when a window has no sample', () => {
    const m = judgeMemory(
      samples(40, () => 80),
      40,
    );
    expect(m.firstWindowS).to.deep.equal([10, 20]);
    expect(m.lastWindowS).to.deep.equal([30, 40]);
    expect(m.ok).to.equal(true);
    expect(judgeMemory([], 300).ok).to.equal(false);
    expect(
      judgeMemory(
        samples(8, () => 80),
        8,
      ).ok,
    ).to.equal(false);
  });
});
