// Rounds: the scenarios that targets compare with each other run several times, one after the other,
// and each comparison is the median of the ratios taken round by round. This machine's speed drifts
// by a third within minutes; two scenarios measured seconds apart drift together, so a ratio of one
// round is fairer than a ratio of results minutes apart, and the median of three drops one odd round.
import type { ScenarioResult } from './report';

/** The middle value (the lower of the two middle ones for an even count); null for none. */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/**
 * The round that stands for a scenario in the table: a failed one if any (an error or a failed
 * exactly-once check must show), otherwise the round of median throughput, so that every column of
 * its row comes from one real measurement.
 */
export function representative(rounds: readonly ScenarioResult[]): ScenarioResult {
  const failed = rounds.find((r) => r.eventsPerSec === null || r.errors.length > 0 || (r.check !== null && !r.check.ok));
  if (failed !== undefined) return failed;
  const mid = median(rounds.map((r) => r.eventsPerSec!));
  return rounds.find((r) => r.eventsPerSec === mid)!;
}

/**
 * `a`'s throughput over `b`'s: the median of the round-by-round ratios when both ran the same rounds,
 * otherwise (one ran once, like the floor) the ratio of their representative rounds.
 */
export function roundRatio(a: readonly ScenarioResult[] | undefined, b: readonly ScenarioResult[] | undefined): { ratio: number | null; perRound: number[] } {
  if (a === undefined || b === undefined || a.length === 0 || b.length === 0) return { ratio: null, perRound: [] };
  const rate = (r: ScenarioResult): number | null => (r.eventsPerSec !== null && r.eventsPerSec > 0 ? r.eventsPerSec : null);
  if (a.length === b.length) {
    const perRound: number[] = [];
    for (let i = 0; i < a.length; i++) {
      const x = rate(a[i]);
      const y = rate(b[i]);
      if (x === null || y === null) return { ratio: null, perRound: [] };
      perRound.push(x / y);
    }
    return { ratio: median(perRound), perRound };
  }
  const x = rate(representative(a));
  const y = rate(representative(b));
  return { ratio: x !== null && y !== null ? x / y : null, perRound: [] };
}
